"""Music: MIDI in and out, token segments, the recurrent VAE's contract, aekit generate --music."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch

import aekit
from aekit.cli import main
from aekit.data import music
from aekit.data.batches import Batch
from aekit.errors import DataError
from aekit.models import build_model

SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


def _write_song(path: Path, seed: int, bars: int = 8, tempo: float = 120.0) -> None:
    """A melody of quarter and eighth notes on the C major scale, with a rest now and then."""
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    inst = pretty_midi.Instrument(program=0)
    sixteenth = 60 / tempo / 4
    t = 0
    while t < bars * 16:
        length = int(rng.choice([2, 4, 4, 8]))
        if rng.random() > 0.1:
            pitch = SCALE[int(rng.integers(len(SCALE)))]
            inst.notes.append(pretty_midi.Note(90, pitch, t * sixteenth, (t + length) * sixteenth))
        t += length
    pm.instruments.append(inst)
    pm.write(str(path))


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("midi")
    for i in range(24):
        _write_song(folder / f"song{i:02d}.mid", seed=i)
    return folder


def test_tokens_round_trip_through_notes_and_midi(tmp_path):
    roll = np.array([[60], [60], [0], [64], [64], [64], [67], [67]])
    onsets = np.array([[1], [0], [0], [1], [0], [0], [1], [0]], dtype=bool)
    tokens = music.roll_to_tokens(roll, onsets)
    assert tokens[:, 0].tolist() == [
        music.FIRST_NOTE + 60 - music.LOW, music.HOLD, music.REST,
        music.FIRST_NOTE + 64 - music.LOW, music.HOLD, music.HOLD,
        music.FIRST_NOTE + 67 - music.LOW, music.HOLD,
    ]  # fmt: skip
    assert music.tokens_to_notes(tokens) == [[(60, 0, 2), (64, 3, 6), (67, 6, 8)]]
    path = music.write_midi(tmp_path / "x.mid", tokens[:, 0], tempo=120)
    back = pretty_midi.PrettyMIDI(str(path)).instruments[0].notes
    assert [(n.pitch, round(n.start / 0.125), round(n.end / 0.125)) for n in back] == [
        (60, 0, 2),
        (64, 3, 6),
        (67, 6, 8),
    ]
    high = music.roll_to_tokens(np.array([[100]]), np.array([[True]]))  # folded by octaves into range
    assert music.LOW <= int(high[0, 0]) - music.FIRST_NOTE + music.LOW <= music.HIGH


def test_midi_folders_give_segments_and_bad_files_a_clear_error(songs, tmp_path):
    data = aekit.load_dataset(f"midi:{songs}")
    assert data.shape == (32,) and len(data) >= 24 * 5
    x = data.raw(torch.arange(len(data))).numpy()
    assert x.max() < music.VOCAB and (x >= music.FIRST_NOTE).any() and (x == music.HOLD).any()
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(DataError, match="bad.mid: not a readable MIDI file"):
        aekit.load_dataset(f"midi:{tmp_path}")
    with pytest.raises(DataError, match="no .mid files"):
        aekit.load_dataset(f"midi:{tmp_path / 'nowhere'}")


@pytest.mark.parametrize("shape", [(32,), (32, 4)])
def test_music_vae_contract(shape, tmp_path):
    from aekit.config import resolve

    config = resolve([{"model": {"name": "music-vae", "hidden": 32, "latent_dim": 4}}], input_shape=shape)
    torch.manual_seed(0)
    model = build_model("music-vae", config.model_config)
    x = torch.randint(0, music.VOCAB, (6, *shape)).float()
    with torch.no_grad():
        out = model(x)
    assert out.x_hat.shape == x.shape and out.z.shape == (6, 4)
    assert float(out.x_hat.min()) >= 0 and float(out.x_hat.max()) < music.VOCAB
    terms = model.loss(Batch(x))
    assert all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
    from aekit.training.checkpoint import load_run, save_weights, write_config

    write_config(tmp_path, config, {"shape": list(shape)})
    save_weights(tmp_path, model)
    _, _, back = load_run(tmp_path)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(back(x).x_hat, model(x).x_hat)
        assert torch.isfinite(back.nll(x[:2], k=3)).all()


def test_training_learns_the_melodies_and_generate_writes_midi(songs, tmp_path, capsys):
    run = tmp_path / "mvae"
    argv = ["train", "--model", "music-vae", "--data", f"midi:{songs}", "--epochs", "25", "--lr", "0.003"]
    argv += [
        "--batch-size",
        "32",
        "--latent-dim",
        "16",
        "--set",
        "model.hidden=128",
        "--out",
        str(run),
        "--quiet",
    ]
    assert main(argv) == 0
    log = aekit.load(run).history
    assert log[-1]["train/note_accuracy"] > log[0]["train/note_accuracy"] + 0.08  # random tunes: slow
    assert log[-1]["train/accuracy"] > 0.6
    out = tmp_path / "gen"
    assert main(["generate", str(run), "--music", "-n", "3", "-o", str(out), "--temperature", "0.8"]) == 0
    mids = sorted(out.glob("*.mid"))
    assert len(mids) == 3 and len(list(out.glob("*.png"))) == 3
    assert all(pretty_midi.PrettyMIDI(str(m)).instruments[0].notes for m in mids)
    walk = tmp_path / "walk"
    argv = ["generate", str(run), "--interpolate", str(songs / "song00.mid"), str(songs / "song01.mid")]
    assert main([*argv, "--steps", "4", "-o", str(walk)]) == 0
    assert len(list(walk.glob("*.mid"))) == 4
    assert main(["generate", str(run), "-o", str(out)]) == 2  # a non-empty folder is kept
    assert "not empty" in capsys.readouterr().err
