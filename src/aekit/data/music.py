"""Music as token sequences: the Bach chorales that music21 ships, and folders of MIDI files.

A piece becomes a piano roll at 16th-note steps: per voice and step a MIDI pitch, 0 for rest.
Segments of ``bars`` 4/4 bars are cut from it and coded as tokens per step and voice:
``0`` rest, ``1`` hold (the previous note goes on), ``2 + p - LOW`` a new note of pitch ``p``
(``LOW`` to ``HIGH``; notes outside are moved by octaves). Pieces are transposed to C major or
A minor (by music21's key analysis), or augmented with transpositions.

Parsing the 371 chorales takes a minute or two, so the piano rolls are cached in
``$AEKIT_CACHE/bach-chorales-v1.npz`` (plain arrays, no pickle).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aekit.data.dataset import ArrayDataset
from aekit.errors import DataError

LOW, HIGH = 36, 84  # C2..C6
REST, HOLD, FIRST_NOTE = 0, 1, 2
VOCAB = FIRST_NOTE + HIGH - LOW + 1
STEPS_PER_BAR = 16
CACHE = "bach-chorales-v1.npz"


def roll_to_tokens(roll: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    """A piano roll (T, V) of pitches with its onset mask -> tokens (T, V) uint8."""
    tokens = np.full(roll.shape, REST, dtype=np.uint8)
    sounding = roll > 0
    folded = np.where(sounding, roll, LOW).astype(np.int64)
    folded = folded + 12 * np.clip(np.ceil((LOW - folded) / 12), 0, None).astype(np.int64)  # octaves up
    folded = folded - 12 * np.clip(np.ceil((folded - HIGH) / 12), 0, None).astype(np.int64)  # octaves down
    tokens[sounding & ~onsets] = HOLD
    tokens[sounding & onsets] = (FIRST_NOTE + folded - LOW)[sounding & onsets]
    return tokens


def tokens_to_notes(tokens: np.ndarray) -> list[list[tuple[int, int, int]]]:
    """Tokens (T, V) -> per voice a list of notes (pitch, start step, end step)."""
    voices = []
    for v in range(tokens.shape[1]):
        notes, current = [], None
        for t, tok in enumerate(tokens[:, v].tolist()):
            if tok >= FIRST_NOTE or tok == REST or (tok == HOLD and current is None):
                if current is not None:
                    notes.append((current[0], current[1], t))
                    current = None
                if tok >= FIRST_NOTE:
                    current = (LOW + tok - FIRST_NOTE, t)
        if current is not None:
            notes.append((current[0], current[1], len(tokens)))
        voices.append(notes)
    return voices


def _parse_chorale(score) -> tuple[np.ndarray, np.ndarray] | None:
    """A four-part 4/4 chorale -> (roll, onsets), each (T, 4), transposed to C major / A minor."""
    from music21 import interval, pitch

    parts = list(score.parts)
    if len(parts) != 4:
        return None
    sigs = score.recurse().getElementsByClass("TimeSignature")
    if not sigs or sigs[0].ratioString != "4/4":
        return None
    key = score.analyze("key")
    target = pitch.Pitch("C") if key.mode == "major" else pitch.Pitch("A")
    shift = interval.Interval(key.tonic, target).semitones % 12
    shift = shift - 12 if shift > 6 else shift
    length = int(round(float(score.highestTime) * 4))
    roll = np.zeros((length, 4), dtype=np.int16)
    onsets = np.zeros((length, 4), dtype=bool)
    for v, part in enumerate(parts):
        for n in part.flatten().notes:
            if not n.isNote:  # chords do not occur in the chorale parts; skip if one does
                continue
            start = int(round(float(n.offset) * 4))
            stop = max(start + 1, int(round(float(n.offset + n.quarterLength) * 4)))
            roll[start:stop, v] = n.pitch.midi + shift
            onsets[start, v] = True
    return roll, onsets


def bach_chorales(progress: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every four-part 4/4 chorale in music21's corpus as (roll, onsets), cached after the first parse."""
    from aekit.data.download import cache_dir
    from aekit.fileio import atomic_path

    path = cache_dir() / CACHE
    if path.is_file():
        try:
            z = np.load(path, allow_pickle=False)
            bounds = z["bounds"]
            return [(z["rolls"][a:b], z["onsets"][a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        except (OSError, KeyError, ValueError):
            path.unlink(missing_ok=True)  # a damaged cache is parsed again
    try:
        from music21 import corpus
    except ImportError:
        raise DataError('bach: needs music21 (pip install -c constraints.txt -e ".[music]")') from None
    from aekit.progress import track

    pieces = []
    for score in track(
        corpus.chorales.Iterator(), "parsing chorales", total=371, unit="piece", enabled=progress
    ):
        parsed = _parse_chorale(score)
        if parsed is not None:
            pieces.append(parsed)
    bounds = np.cumsum([0] + [len(r) for r, _ in pieces])
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            rolls=np.concatenate([r for r, _ in pieces]),
            onsets=np.concatenate([o for _, o in pieces]),
            bounds=bounds,
        )
    return pieces


def midi_folder(
    folder: str | Path, voices: int = 1, only: str | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each MIDI file in ``folder`` (or only the one named ``only``) as (roll, onsets) with ``voices``
    voices: the highest sounding note for one voice, else the instruments' lines in order."""
    import pretty_midi

    folder = Path(folder)
    files = (
        sorted(p for p in folder.iterdir() if p.suffix.lower() in (".mid", ".midi"))
        if folder.is_dir()
        else []
    )
    if only is not None:
        files = [p for p in files if p.name == only]
    if not files:
        raise DataError(f"{folder}: no .mid files here")
    pieces = []
    for path in files:
        try:
            pm = pretty_midi.PrettyMIDI(str(path))
        except Exception as e:  # pretty_midi raises many kinds on a damaged file
            raise DataError(f"{path}: not a readable MIDI file ({type(e).__name__}: {e})") from None
        step = pm.get_beats()[1] / 4 if len(pm.get_beats()) > 1 else 0.125  # a 16th of the first beat
        insts = [i for i in pm.instruments if not i.is_drum and i.notes]
        if not insts:
            continue
        end = int(np.ceil(pm.get_end_time() / step))
        roll = np.zeros((end, voices), dtype=np.int16)
        onsets = np.zeros((end, voices), dtype=bool)
        groups = [[n for i in insts for n in i.notes]] if voices == 1 else [i.notes for i in insts[:voices]]
        for v, notes in enumerate(groups):
            for n in sorted(notes, key=lambda n: n.pitch):  # higher notes written last: the top line wins
                a = int(round(n.start / step))
                b = max(a + 1, int(round(n.end / step)))
                roll[a:b, v] = n.pitch
                onsets[a, v] = True
        pieces.append((roll, onsets))
    if not pieces:
        raise DataError(f"{folder}: the MIDI files hold no notes")
    return pieces


def segments(
    pieces: list[tuple[np.ndarray, np.ndarray]],
    bars: int = 2,
    voices: tuple[int, ...] = (0,),
    transpose: int = 0,
    name: str = "these pieces",
) -> np.ndarray:
    """Segments of ``bars`` bars starting at every bar (so they overlap) of the chosen voices, as tokens.

    Segments that are silent in a chosen voice for more than half their length are dropped.
    ``transpose`` > 0 adds copies shifted by -transpose..+transpose semitones (augmentation).

    Returns:
        uint8 tokens (N, steps, len(voices)).
    """
    steps = bars * STEPS_PER_BAR
    out = []
    for roll, onsets in pieces:
        r, o = roll[:, list(voices)], onsets[:, list(voices)]
        for start in range(0, len(r) - steps + 1, STEPS_PER_BAR):
            seg_r, seg_o = r[start : start + steps], o[start : start + steps]
            if ((seg_r > 0).mean(0) < 0.5).any():
                continue
            first = (seg_r > 0) & ~seg_o
            seg_o = seg_o | (
                first & (np.arange(steps)[:, None] == 0)
            )  # a note held into the segment starts it
            for shift in range(-transpose, transpose + 1):
                out.append(roll_to_tokens(np.where(seg_r > 0, seg_r + shift, 0), seg_o))
    if not out:
        raise DataError(
            f"{name}: no {bars}-bar segment in which every chosen voice sounds at least half the time"
        )
    return np.stack(out)


def music_dataset(name: str, tokens: np.ndarray) -> ArrayDataset:
    """Tokens (N, steps, voices) as a dataset (one voice: (N, steps))."""
    x = tokens[:, :, 0] if tokens.shape[2] == 1 else tokens
    return ArrayDataset(np.ascontiguousarray(x), name=name)


def write_midi(path: str | Path, tokens: np.ndarray, tempo: float = 100.0, program: int = 0) -> Path:
    """Tokens (steps,) or (steps, voices) -> a playable .mid file (one instrument per voice), atomically.

    ``tempo`` in quarter notes per minute; ``program`` the General MIDI instrument (0-127, 0 = piano).
    """
    if not 0 <= program <= 127 or tempo <= 0:
        raise ValueError(f"MIDI program must be 0-127 and tempo positive, not {program} and {tempo}")
    import pretty_midi

    from aekit.fileio import atomic_path

    tokens = tokens[:, None] if tokens.ndim == 1 else tokens
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    step = 60.0 / tempo / 4
    for notes in tokens_to_notes(tokens):
        inst = pretty_midi.Instrument(program=program)
        for p, a, b in notes:
            inst.notes.append(pretty_midi.Note(velocity=80, pitch=int(p), start=a * step, end=b * step))
        pm.instruments.append(inst)
    with atomic_path(path) as tmp:
        pm.write(str(tmp))
    return Path(path)
