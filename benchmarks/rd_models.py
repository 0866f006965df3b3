"""The hyperprior codecs the rate-distortion benchmark trains (once; cached as run directories).

- Fashion-MNIST: one variable-rate model (8 qualities) on the 60,000 training images; and the
  same with a mean-and-scale hyperprior (``mean_scale``), same settings and budget.
- Photos: one colour model on random 64x64 patches of the TRAIN photos of ``photos.py`` (grayscale
  photos replicated to three channels), never on a TEST photo.

Run alone to train both ahead of the benchmark: ``python benchmarks/rd_models.py``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import photos  # benchmarks/photos.py
import torch

import aekit
from aekit.apps.hypercodec import HyperCodec
from aekit.training import checkpoint

RESULTS = Path(__file__).parent / "results"
FASHION = {
    "name": "hyperprior",
    "channels": 32,  # 48 decoded 10,000 images in ~2x the time (measured), for the 5 s target
    "latent_channels": 32,
    "hyper_channels": 16,
    "hyper_width": 24,  # h_s is integer float64 arithmetic at decode: narrow keeps decoding fast
    "levels": 2,
    "hyper_levels": 2,
    # geometric, 0.0008 .. 0.35: the top level is there to pass 36 dB
    "lambdas": [0.0008, 0.0019, 0.0045, 0.0108, 0.0257, 0.061, 0.146, 0.35],
    "mean_scale": False,  # the scale-only model of the earlier passes (the model's default is now on)
    "latent_padding": False,
}
FASHION_MS = {**FASHION, "mean_scale": True}  # the same, h_s predicting a mean as well as a scale
FASHION_MS_LP = {**FASHION_MS, "latent_padding": True}  # ... and a 7x7 y for 28x28 (no padded latents)
FASHION_CB = {**FASHION_MS_LP, "checkerboard": True}  # ... and a checkerboard context model
# (runs "fashion-cb2": "fashion-cb-b16-12" was trained by the context's first training, commit 4914966)
# many small steps (batch 16) rather than few large ones: what a one-thread CPU budget buys
FASHION_TRAIN = {"batch_size": 16, "lr": 1e-3, "grad_clip": 1.0, "nan_policy": "skip"}
PHOTOS = {
    "name": "hyperprior",
    "channels": 40,
    "latent_channels": 48,
    "hyper_channels": 24,
    "hyper_width": 32,
    "levels": 3,
    "hyper_levels": 2,
    "lambdas": [0.001, 0.0024, 0.0058, 0.014, 0.034, 0.082, 0.2, 0.48],
    "mean_scale": False,  # scale-only, trained before the default changed (no CPU for a second photo model)
    "latent_padding": False,
}
PHOTOS_TRAIN = {"batch_size": 8, "lr": 1e-3, "grad_clip": 1.0, "nan_policy": "skip"}


def _train_checkpointed(run_dir: Path, data: str, settings: dict, epochs: int, options: dict) -> HyperCodec:
    """``settings`` trained on ``data`` (seed 0, Adam with the one-cycle schedule, no validation
    split, on the CPU), checkpointed every epoch; an interrupted run continues from its last
    epoch when called again, and a finished one is reused."""
    metrics = run_dir / checkpoint.METRICS
    if metrics.is_file() and len(metrics.read_text().splitlines()) >= epochs:
        print(f"  reusing {run_dir}", flush=True)
        return HyperCodec(aekit.load(run_dir))
    if (run_dir / checkpoint.CHECKPOINT).is_file():  # the epoch total may have grown: see ``_extend``
        return HyperCodec(aekit.resume(run_dir, epochs=epochs, progress=False))
    model = {k: v for k, v in settings.items() if k != "name"}
    run = aekit.train(
        data, settings["name"], model_options=model, out=run_dir, progress=False,
        epochs=epochs, schedule="onecycle", val_fraction=0, device="cpu", seed=0, **options,
    )  # fmt: skip
    return HyperCodec(run)


def _extend(run_dir: Path, pattern: str, epochs: int) -> None:
    """Start ``run_dir`` (``epochs`` in all) as a copy of the longest shorter run of the same
    settings (``pattern`` with ``{}`` for its epochs), if there is one: training then continues
    from its weights and optimizer, the schedule restarted over the new total (a warm restart of
    the one-cycle learning rate), instead of from scratch."""
    if run_dir.exists():
        return
    shorter = [(e, run_dir.parent / pattern.format(e)) for e in range(epochs - 1, 0, -1)]
    shorter = [(e, d) for e, d in shorter if (d / checkpoint.CHECKPOINT).is_file()]
    if shorter:
        print(f"  continuing {shorter[0][1]} to {epochs} epochs in {run_dir}", flush=True)
        shutil.copytree(shorter[0][1], run_dir, symlinks=True)


def fashion_codec(
    epochs: int = 12,
    out: Path = RESULTS,
    mean_scale: bool = False,
    latent_padding: bool = False,
    checkerboard: bool = False,
    hyper_channels: int = 16,
) -> HyperCodec:
    """The Fashion-MNIST model: ``epochs`` x 3,750 steps of 16 training images (``mean_scale``: the
    mean-and-scale variant, ``latent_padding`` too: with latent padding, ``checkerboard`` too: with
    the checkerboard context, ``hyper_channels`` 8 too: a smaller z; each its own run directory).
    More than 12 epochs: continued from the longest shorter run of the same settings (a warm
    restart of the schedule), if there is one."""
    name, settings = ("fashion-ms", FASHION_MS) if mean_scale else ("fashion", FASHION)
    if latent_padding:
        name, settings = "fashion-ms-lp", FASHION_MS_LP
    if checkerboard:
        name, settings = "fashion-cb2", FASHION_CB
    if hyper_channels != 16:  # a smaller z (8: half the side information's channels)
        if not latent_padding:
            raise ValueError(f"hyper_channels {hyper_channels}: only with latent_padding in this benchmark")
        name, settings = f"{name}-z{hyper_channels}", {**settings, "hyper_channels": hyper_channels}
    pattern = f"hyperprior-{name}-b16-{{}}"
    _extend(out / pattern.format(epochs), pattern, epochs)  # more epochs: continue a shorter run
    return _train_checkpointed(out / pattern.format(epochs), "fashion-mnist", settings, epochs, FASHION_TRAIN)


def photo_patches(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` random ``size`` x ``size`` crops of the TRAIN photos, uint8 (n, 3, size, size)."""
    rng = np.random.default_rng(seed)
    images = [photos.load(name) for name in photos.TRAIN]
    images = [np.repeat(im[..., None], 3, 2) if im.ndim == 2 else im[..., :3] for im in images]
    out = np.empty((n, 3, size, size), np.uint8)
    for i in range(n):
        im = images[rng.integers(len(images))]
        r, c = rng.integers(im.shape[0] - size + 1), rng.integers(im.shape[1] - size + 1)
        out[i] = im[r : r + size, c : c + size].transpose(2, 0, 1)
    return out


def photo_codec(epochs: int = 12, n: int = 16000, out: Path = RESULTS) -> HyperCodec:
    """The photo model: ``epochs`` x ``n`` / 8 steps of 8 random 64x64 patches of the TRAIN photos."""
    out.mkdir(parents=True, exist_ok=True)
    patches = out / f"photo-patches-{n}.npy"
    if not patches.is_file():
        np.save(patches, photo_patches(n))
    pattern = f"hyperprior-photos-b8-{n}-{{}}"
    _extend(out / pattern.format(epochs), pattern, epochs)
    return _train_checkpointed(out / pattern.format(epochs), str(patches), PHOTOS, epochs, PHOTOS_TRAIN)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "which",
        nargs="*",
        default=["fashion", "photos"],
        help="fashion, fashion-ms, fashion-ms-lp, fashion-ms-lp-z8, fashion-cb, fashion-cb-z8 "
        "(runs fashion-cb2*), photos",
    )
    parser.add_argument("--photo-epochs", type=int, default=12, help="epochs of 2,000 steps (default 12)")
    parser.add_argument(
        "--fashion-epochs",
        type=int,
        default=12,
        help="epochs of 3,750 steps (default 12; more: continues the 12)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # on a shared CPU, two threads thrash (measured: 9x slower per batch)
    if "fashion" in args.which:
        fashion_codec(args.fashion_epochs)
    if "fashion-ms" in args.which:
        fashion_codec(args.fashion_epochs, mean_scale=True)
    if "fashion-ms-lp" in args.which:
        fashion_codec(args.fashion_epochs, mean_scale=True, latent_padding=True)
    if "fashion-cb" in args.which:
        fashion_codec(args.fashion_epochs, mean_scale=True, latent_padding=True, checkerboard=True)
    if "fashion-ms-lp-z8" in args.which:
        fashion_codec(args.fashion_epochs, mean_scale=True, latent_padding=True, hyper_channels=8)
    if "fashion-cb-z8" in args.which:
        fashion_codec(
            args.fashion_epochs, mean_scale=True, latent_padding=True, checkerboard=True, hyper_channels=8
        )
    if "photos" in args.which:
        photo_codec(args.photo_epochs)
