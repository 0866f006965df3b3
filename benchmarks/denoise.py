"""aekit's denoiser against classical denoisers on the Fashion-MNIST test set.

For gaussian noise at sigma 0.1, 0.2, 0.3 and 0.5 (pixels in [0, 1]) and salt-and-pepper at
10%, prints PSNR and SSIM of the noisy input, of aekit's denoising autoencoder, and, on the
same noisy images in the same run, of scikit-image's non-local means, a Gaussian blur and a
median filter (BM3D too when the optional, non-commercial ``bm3d`` package is installed),
with images per second for each.

Fairness: every classical method has its parameter tuned per noise level on 100 *training*
images (never the test images): non-local means its filter strength h as a multiple of its
own sigma estimate (``estimate_sigma``) and its patch distance, the blur its sigma, the median
its size. aekit trains conv denoising autoencoders on the training set: one blind over
gaussian sigma 0-0.55 (the same weights serve all four gaussian levels) and one for
salt-and-pepper 0-20%, and the same two with a dense backbone (faster, a little less exact).

Run: ``.venv/bin/python benchmarks/denoise.py [--n 1000] [--epochs 10] [--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from cached_run import train_or_reuse  # benchmarks/cached_run.py
from scipy import ndimage
from skimage.restoration import denoise_nl_means, estimate_sigma

from aekit.apps.denoise import Denoiser
from aekit.data.corrupt import corrupt
from aekit.data.sources import load_dataset
from aekit.evaluation.metrics import summarize
from aekit.report.figures import comparison_grid, save_figure

LEVELS = [
    ("gaussian", 0.1),
    ("gaussian", 0.2),
    ("gaussian", 0.3),
    ("gaussian", 0.5),
    ("salt_and_pepper", 0.1),
]
TUNE_IMAGES = 100


def nlm(images: np.ndarray, h_factor: float, distance: int) -> np.ndarray:
    out = np.empty_like(images)
    for i, im in enumerate(images):
        s = float(estimate_sigma(im))
        out[i] = denoise_nl_means(
            im, h=h_factor * s, sigma=s, patch_size=5, patch_distance=distance, fast_mode=True
        )
    return out


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(images, sigma=(0, sigma, sigma))


def median(images: np.ndarray, size: int) -> np.ndarray:
    return ndimage.median_filter(images, size=(1, size, size))


def bm3d_method():
    try:
        import bm3d  # optional; non-commercial licence, never a runtime dependency
    except ImportError:
        return None

    def run(images: np.ndarray, factor: float) -> np.ndarray:
        return np.stack([bm3d.bm3d(im, sigma_psd=factor * float(estimate_sigma(im))) for im in images])

    return run


def psnr_of(clean: np.ndarray, out: np.ndarray) -> float:
    return summarize(torch.from_numpy(clean[:, None]), torch.from_numpy(np.clip(out, 0, 1)[:, None]))["psnr"]


def tune(fn, grid, clean: np.ndarray, noisy: np.ndarray):
    """The parameter in ``grid`` with the best PSNR on the tuning images."""
    return max(grid, key=lambda p: psnr_of(clean, fn(noisy, *p)))


def noisy_of(clean: np.ndarray, kind: str, level, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    return corrupt(torch.from_numpy(clean[:, None]), kind, level, g)[:, 0].numpy()


def train_denoiser(train, kind: str, low: float, high: float, args, arch: str = "conv") -> Denoiser:
    """Train (or reuse, from ``--out``, a run trained with the same settings) a denoiser."""
    settings = {"name": "denoising", "arch": arch, "noise": kind, "noise_level": low, "noise_level_max": high}
    if arch == "conv":
        settings |= {"channels": args.channels, "latent_dim": args.latent_dim}
        tag = "-".join(map(str, [kind, *args.channels, args.latent_dim, args.epochs]))
    else:
        settings |= {"hidden": args.hidden, "latent_dim": args.dense_latent_dim}
        tag = "-".join(map(str, [kind, "dense", *args.hidden, args.dense_latent_dim, args.dense_epochs]))
    epochs = args.epochs if arch == "conv" else args.dense_epochs
    run_dir = Path(args.out) / f"denoiser-{tag}"
    return Denoiser(train_or_reuse(run_dir, settings, train, epochs, f"the {arch} {kind} denoiser"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="test images (all methods, the same ones)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--latent-dim", type=int, default=256)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 256], help="the dense denoiser's")
    parser.add_argument("--dense-latent-dim", type=int, default=128)
    parser.add_argument("--dense-epochs", type=int, default=25)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())

    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    clean = test.take(torch.arange(args.n))[0][:, 0].numpy()
    tune_clean = train.take(torch.arange(len(train) - TUNE_IMAGES, len(train)))[0][:, 0].numpy()
    print(f"Fashion-MNIST: {args.n} test images; classical parameters tuned on {TUNE_IMAGES} training images")

    denoisers = {
        (arch, kind): train_denoiser(train, kind, 0.0, high, args, arch)
        for arch in ("conv", "dense")
        for kind, high in (("gaussian", 0.55), ("salt_and_pepper", 0.2))
    }
    methods = {
        "non-local means (skimage)": (nlm, [(h, d) for h in (0.6, 0.8, 1.0, 1.2) for d in (3, 6)]),
        "gaussian blur (scipy)": (blur, [(s,) for s in (0.4, 0.6, 0.8, 1.0, 1.3, 1.6)]),
        "median filter (scipy)": (median, [(s,) for s in (2, 3, 4, 5)]),
    }
    if (bm3d_fn := bm3d_method()) is not None:
        methods["BM3D (bm3d)"] = (bm3d_fn, [(f,) for f in (0.8, 1.0, 1.2)])

    rows, examples = [], []
    for li, (kind, level) in enumerate(LEVELS):
        noisy = noisy_of(clean, kind, level, seed=100 + li)
        tune_noisy = noisy_of(tune_clean, kind, level, seed=200 + li)
        name = f"{kind} {level:g}"
        results = {"noisy input": (noisy, 0.0)}
        for arch in ("conv", "dense"):
            denoiser = denoisers[arch, kind]
            denoiser(noisy[:100, None], batch_size=1000)  # warm-up: first-call set-up is not denoising
            start = time.perf_counter()
            out = denoiser(noisy[:, None], batch_size=1000)[:, 0]
            results[f"aekit denoising AE ({arch})"] = (out, time.perf_counter() - start)
        den = results["aekit denoising AE (conv)"][0]
        for label, (fn, grid) in methods.items():
            best = tune(fn, grid, tune_clean, tune_noisy)
            start = time.perf_counter()
            out = fn(noisy, *best)
            results[f"{label} {best}"] = (out, time.perf_counter() - start)
        for label, (out, seconds) in results.items():
            m = summarize(torch.from_numpy(clean[:, None]), torch.from_numpy(np.clip(out, 0, 1)[:, None]))
            rate = args.n / seconds if seconds else float("nan")
            rows.append((name, label, m["psnr"], m["ssim"], rate))
            print(f"  {name:18s} {label:40s} PSNR {m['psnr']:6.2f}  SSIM {m['ssim']:.4f}  {rate:10.0f} img/s")
        nlm_out = next(out for label, (out, _) in results.items() if label.startswith("non-local"))
        examples.append((name, noisy[:8], nlm_out[:8], den[:8]))

    print("\n| noise | method | PSNR (dB) | SSIM | images/s |\n|---|---|---:|---:|---:|")
    for name, label, p, s, rate in rows:
        print(f"| {name} | {label} | {p:.2f} | {s:.4f} | {'' if np.isnan(rate) else f'{rate:,.0f}'} |")

    for name in ("gaussian 0.3",):
        level_rows = {label: (p, rate) for n, label, p, _, rate in rows if n == name}
        nl = next(v for k, v in level_rows.items() if k.startswith("non-local"))
        for arch in ("conv", "dense"):
            ours = level_rows[f"aekit denoising AE ({arch})"]
            print(
                f"\nat {name}, aekit {arch}: {ours[0] - nl[0]:+.2f} dB over non-local means "
                "(target >= +3 dB), "
                f"{ours[1] / nl[1]:,.0f}x its speed (target >= 100x)"
            )

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid_rows = [("clean", clean[:8, None])]
    for name, noisy, nl, den in examples:
        grid_rows += [(f"{name}\nnoisy", noisy[:, None]), ("NLM", nl[:, None]), ("aekit", den[:, None])]
    save_figure(comparison_grid(grid_rows, 8), out_dir / "denoise_examples.png")
    print(f"figure: {out_dir / 'denoise_examples.png'}")


if __name__ == "__main__":
    main()
