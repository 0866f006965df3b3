"""The recurrent music VAE on the Bach chorales that music21 ships: reconstruction and samples,
with the data's own values beside ours.

Data: soprano lines (``bach``), 2-bar segments at 16th notes, transposed to C major / A minor;
every tenth chorale held out; the training split augmented by transpositions of +-2 semitones.

Printed:
- held-out reconstruction accuracy: per 16th-note step (rest / hold / pitch all exact), and
  per note onset (the right pitch at the right step);
- for samples from the prior (greedy decoding) and the held-out data: the share of notes in
  the key (C major / A minor pitch classes), the pitch-class histogram's distance to the
  training data's (total variation; the held-out data's own distance is the floor), notes
  per bar, and the share of bars that copy a training bar exactly (a memorisation check), and
  how many samples copy a whole training segment;
- the training time.

Targets: reconstruction note accuracy of 90% or more; in-key share and histogram within 10%
of the data's; no sample copying a training segment whole; training in under 15 minutes.

With ``--data bach-16bars --model music-conductor`` (16-bar segments, the hierarchical decoder) it
also prints the onset accuracy bar by bar and repetition statistics (the share of bars that repeat
an earlier bar of the same piece exactly, distinct bars per piece) of samples and held-out chorales.
Training time is CPU time of this process (torch on one thread), which a shared machine disturbs less.

Run: ``.venv/bin/python benchmarks/music.py [--epochs 24] [--samples 500] [--beta 0.02]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from aekit.config import TrainConfig, resolve
from aekit.data import music
from aekit.data.sources import load_dataset
from aekit.models import build_model
from aekit.training.callbacks import ProgressBar
from aekit.training.checkpoint import save_weights
from aekit.training.trainer import Trainer

IN_KEY = {0, 2, 4, 5, 7, 9, 11}  # C major = A natural minor (each segment is first moved to C by its key)


def onsets(tokens: np.ndarray) -> np.ndarray:
    """MIDI pitches of the note onsets in tokens (N, steps)."""
    t = tokens[tokens >= music.FIRST_NOTE]
    return music.LOW + t.astype(int) - music.FIRST_NOTE


def key_shift(pitches: np.ndarray) -> int:
    """The transposition (0-11) that puts the most of ``pitches`` on C major's notes: the piece's key."""
    pcs = pitches % 12
    return max(range(12), key=lambda k: (np.isin((pcs - k) % 12, list(IN_KEY)).sum(), -k))


def in_key_share(tokens: np.ndarray) -> float:
    """The share of note onsets in each segment's own key (its best major/relative-minor scale)."""
    hits = total = 0
    for seq in tokens:
        p = onsets(seq)
        if len(p):
            hits += int(np.isin((p - key_shift(p)) % 12, list(IN_KEY)).sum())
            total += len(p)
    return hits / max(1, total)


def pc_histogram(tokens: np.ndarray) -> np.ndarray:
    """Pitch classes of the onsets, each segment moved to C by its own key (a key-free histogram)."""
    counts = np.zeros(12)
    for seq in tokens:
        p = onsets(seq)
        if len(p):
            counts += np.bincount((p - key_shift(p)) % 12, minlength=12)
    return counts / max(1.0, counts.sum())


def stats(tokens: np.ndarray, train_hist: np.ndarray, train_bars: set, train_segments: set) -> dict:
    p = onsets(tokens)
    bars = [b.tobytes() for seq in tokens for b in seq.reshape(-1, music.STEPS_PER_BAR) if (b >= 2).any()]
    return {
        "in_key": in_key_share(tokens),
        "pc_distance": 0.5 * float(np.abs(pc_histogram(tokens) - train_hist).sum()),
        "notes_per_bar": len(p) / (len(tokens) * tokens.shape[1] / music.STEPS_PER_BAR),
        "copied_bars": float(np.mean([b in train_bars for b in bars])) if bars else float("nan"),
        "copied_segments": int(sum(seq.tobytes() in train_segments for seq in tokens)),
    }


def per_bar_accuracy(rec: np.ndarray, truth: np.ndarray) -> list[float]:
    """Note-onset accuracy in each bar. Shape: (N, steps) twice -> bars values."""
    out = []
    for b in range(truth.shape[1] // music.STEPS_PER_BAR):
        sl = slice(b * music.STEPS_PER_BAR, (b + 1) * music.STEPS_PER_BAR)
        t, r = truth[:, sl], rec[:, sl]
        on = t >= music.FIRST_NOTE
        out.append(float((r[on] == t[on]).mean()) if on.any() else float("nan"))
    return out


def repetition(tokens: np.ndarray) -> dict:
    """The share of bars equal to an earlier bar of the same piece, and distinct bars per piece."""
    repeats = distinct = total = 0
    for seq in tokens:
        bars = [b.tobytes() for b in seq.reshape(-1, music.STEPS_PER_BAR)]
        seen: set = set()
        for b in bars:
            repeats += b in seen
            seen.add(b)
        distinct += len(seen)
        total += len(bars)
    return {"repeated_bars": repeats / max(1, total), "distinct_per_piece": distinct / max(1, len(tokens))}


BARS = {"bach": 2, "bach-4bars": 4, "bach-16bars": 16}


def validation_split(data: str):
    """(train, validation) from the training chorales only: every tenth of them (index % 10 == 5 among
    the chorales whose index % 10 != 0) is held out for tuning; the test chorales are not used."""
    if data not in BARS:
        raise SystemExit(f"--validate works for {', '.join(BARS)}, not {data}")
    pieces = [p for i, p in enumerate(music.bach_chorales()) if i % 10 != 0]
    fit = [p for i, p in enumerate(pieces) if i % 10 != 5]
    val = [p for i, p in enumerate(pieces) if i % 10 == 5]
    bars = BARS[data]
    return (
        music.music_dataset(data, music.segments(fit, bars, (0,), transpose=2, name=data)),
        music.music_dataset(data, music.segments(val, bars, (0,), name=data)),
    )


def onset_accuracy(model, data) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Greedy reconstruction of ``data`` from the posterior means: (per-step accuracy, per-onset
    accuracy, reconstructions, truth)."""
    model.eval()
    xt = data.raw(torch.arange(len(data))).float()
    with torch.no_grad():
        rec = torch.cat([model.decode(model.encode(c)) for c in xt.split(512)]).numpy().astype(np.uint8)
    truth = xt.numpy().astype(np.uint8)
    is_onset = truth >= music.FIRST_NOTE
    return float((rec == truth).mean()), float((rec[is_onset] == truth[is_onset]).mean()), rec, truth


def forced_onset_accuracy(model, data) -> float:
    """Onset accuracy with teacher forcing (each step predicted from the true previous ones)."""
    model.eval()
    x = data.raw(torch.arange(len(data))).float()
    with torch.no_grad():
        tokens = model._tokens(x)
        pred = torch.cat(
            [
                model._logits(model.encode(c), t).argmax(-1)
                for c, t in zip(x.split(512), tokens.split(512), strict=True)
            ]
        )
    on = tokens >= music.FIRST_NOTE
    return float((pred[on] == tokens[on]).float().mean())


class SaveWeights:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_epoch_end(self, trainer, record: dict[str, float]) -> None:
        save_weights(self.folder, trainer.model)


class EpochAccuracy:
    """Prints onset accuracies after each epoch: greedy and teacher-forced, on the held-out data and on
    as many training segments (a diagnostic of over-fitting and of exposure bias; cheap for 2 bars)."""

    def __init__(self, data, train) -> None:
        self.data = data
        self.train = train.subset(torch.arange(0, len(train), max(1, len(train) // len(data)))[: len(data)])

    def on_epoch_end(self, trainer, record: dict[str, float]) -> None:
        m = trainer.model
        _, held, _, _ = onset_accuracy(m, self.data)
        _, fit, _, _ = onset_accuracy(m, self.train)
        held_tf, fit_tf = forced_onset_accuracy(m, self.data), forced_onset_accuracy(m, self.train)
        m.train()
        print(
            f"  epoch {trainer.epoch}: onset accuracy greedy held-out {held:.3f} train {fit:.3f}; "
            f"teacher-forced held-out {held_tf:.3f} train {fit_tf:.3f}; "
            f"loss {record.get('train/loss', 0):.2f} rec {record.get('train/rec', 0):.2f} "
            f"kl {record.get('train/kl', 0):.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--beta", type=float, default=0.02)
    parser.add_argument("--free-bits", type=float, default=0.1)
    parser.add_argument("--kl-warmup", type=int, default=2000, help="steps over which beta ramps up")
    parser.add_argument("--data", default="bach", help="bach (2 bars), bach-4bars or bach-16bars")
    parser.add_argument("--model", default="music-vae", choices=("music-vae", "music-conductor"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--validate",
        action="store_true",
        help="for tuning: hold out every tenth of the TRAINING chorales (index %% 10 == 5) and report on "
        "them instead of the test chorales, which are then not touched",
    )
    parser.add_argument(
        "--test-too",
        action="store_true",
        help="with --validate: after choosing by the validation table, also score the test chorales once",
    )
    parser.add_argument("--save", help="directory: the weights after every epoch (model.safetensors)")
    parser.add_argument("--load", help="directory of --save: evaluate those weights, do not train")
    parser.add_argument(
        "--init",
        help="directory of --save from another run (e.g. the 2-bar music-vae): start from its weights "
        "where names and shapes match (the conductor's bar decoder and encoder), train the rest afresh",
    )
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--every-epoch", action="store_true", help="print held-out onset accuracy each epoch")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)

    start = time.perf_counter()
    if args.validate:
        train, test = validation_split(args.data)
    else:
        train, test = load_dataset(args.data, "train"), load_dataset(args.data, "test")
    print(
        f"parsed/loaded the chorales in {time.perf_counter() - start:.0f} s: {len(train):,} training "
        f"segments (with transpositions), {len(test):,} held-out segments"
    )
    settings = {
        "name": args.model,
        "hidden": args.hidden,
        "latent_dim": args.latent_dim,
        "beta": args.beta,
        "free_bits": args.free_bits,
        "kl_warmup_steps": args.kl_warmup,
    }
    config = resolve([{"model": settings}], input_shape=train.shape)
    model = build_model(args.model, config.model_config)
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule="onecycle",
        val_fraction=0,
        device="cpu",
    )
    start = time.process_time()
    callbacks: list = [ProgressBar(True)]  # one line per epoch: training loss, KL, teacher-forced accuracy
    if args.every_epoch:
        callbacks.append(EpochAccuracy(test, train))
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        callbacks.append(SaveWeights(Path(args.save)))
    if args.init:
        own = model.state_dict()
        given = load_file(str(Path(args.init) / "model.safetensors"))
        shared = {k: v for k, v in given.items() if k in own and own[k].shape == v.shape and k != "updates"}
        model.load_state_dict(shared, strict=False)
        print(f"started {len(shared)} of {len(own)} weight tensors from {args.init}")
    if args.load:
        model.load_state_dict(load_file(str(Path(args.load) / "model.safetensors")))
    else:
        Trainer(model, cfg, callbacks).fit(train)
    minutes = (time.process_time() - start) / 60
    model.eval()

    step_acc, note_acc, rec, truth = onset_accuracy(model, test)

    tokens_train = train.raw(torch.arange(len(train))).numpy().astype(np.uint8)
    train_hist = pc_histogram(tokens_train)
    train_bars = {
        b.tobytes() for seq in tokens_train for b in seq.reshape(-1, music.STEPS_PER_BAR) if (b >= 2).any()
    }
    train_segments = {seq.tobytes() for seq in tokens_train}
    g = torch.Generator().manual_seed(0)
    samples = model.sample(args.samples, generator=g).numpy().astype(np.uint8)
    warm = model.sample(args.samples, generator=g, temperature=0.7).numpy().astype(np.uint8)
    data_stats = stats(truth, train_hist, train_bars, train_segments)
    ours = stats(samples, train_hist, train_bars, train_segments)
    ours_warm = stats(warm, train_hist, train_bars, train_segments)

    print(
        f"\n{args.model} on {args.data}, beta {args.beta}, free bits {args.free_bits}, "
        f"latent {args.latent_dim}"
    )
    if args.load:
        print(f"weights loaded from {args.load} (not trained here)\n")
    else:
        print(f"trained {args.epochs} epochs in {minutes:.1f} CPU-min on one thread (target: under 15)\n")
    print("| held-out reconstruction | accuracy |\n|---|---:|")
    print(f"| per 16th-note step | {step_acc:.3f} |\n| per note onset (target >= 0.90) | {note_acc:.3f} |\n")
    print(
        "| | in key | pitch-class distance to training | notes per bar | bars copied from training "
        "| whole segments copied |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    rows = (
        (f"held-out chorales ({len(truth)})", data_stats),
        (f"samples, greedy ({len(samples)})", ours),
        (f"samples, temperature 0.7 ({len(warm)})", ours_warm),
    )
    for label, s in rows:
        print(
            f"| {label} | {s['in_key']:.3f} | {s['pc_distance']:.3f} | {s['notes_per_bar']:.2f} "
            f"| {s['copied_bars']:.3f} | {s['copied_segments']} |"
        )
    if truth.shape[1] > 2 * music.STEPS_PER_BAR:
        accs = per_bar_accuracy(rec, truth)
        print("\n| bar | " + " | ".join(str(i + 1) for i in range(len(accs))) + " |")
        print("|---" * (len(accs) + 1) + "|")
        print("| held-out onset accuracy | " + " | ".join(f"{a:.2f}" for a in accs) + " |")
        print("\n| | repeated bars (same piece) | distinct bars per piece |\n|---|---:|---:|")
        for label, toks in (
            ("held-out chorales", truth),
            ("samples, greedy", samples),
            ("samples, t 0.7", warm),
        ):
            r = repetition(toks)
            print(f"| {label} | {r['repeated_bars']:.3f} | {r['distinct_per_piece']:.1f} |")
    if args.validate and args.test_too:
        final = load_dataset(args.data, "test")
        step_t, note_t, rec_t, truth_t = onset_accuracy(model, final)
        print(
            f"\nTEST chorales ({len(final)} segments, the model trained on the fit split only): per step "
            f"{step_t:.3f}, per note onset {note_t:.3f} (target >= 0.90)"
        )
        if truth_t.shape[1] > 2 * music.STEPS_PER_BAR:
            print(
                "test per-bar onset accuracy: "
                + " ".join(f"{a:.2f}" for a in per_bar_accuracy(rec_t, truth_t))
            )
    rel = abs(ours["in_key"] - data_stats["in_key"]) / data_stats["in_key"]
    print(
        f"\nin-key share within {rel:.1%} of the data's (target 10%); "
        f"{ours['copied_segments']} samples copy a training segment whole (target 0)"
    )


if __name__ == "__main__":
    main()
