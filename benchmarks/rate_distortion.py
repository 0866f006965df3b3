"""Rate-distortion on the Fashion-MNIST test set: aekit's codec beside JPEG, WebP and PNG.

For three or more lambdas, a ``codec`` run compresses all 10,000 test images into one
``.aek`` file; bits per pixel come from the file's size (header included), PSNR/SSIM from
the decoded file. Beside it, on the same images in the same run, through Pillow: JPEG and
WebP at several qualities, WebP lossless and PNG, with their real file sizes counted two ways:

- **per image**: every image its own file, as a user storing images would (each pays its
  container's header: about 300-600 bytes for JPEG, tens for WebP);
- **mosaic**: all images tiled into one 2800x2800 image and coded as one file, which shares
  one header (JPEG's 8x8 blocks straddle image borders there, a small quality cost).

The headline compares at equal PSNR, interpolating each baseline's curve (bpp on a log scale),
against the better of the two countings of JPEG and WebP. Encode and decode rates are images
per second. A rate-distortion plot is written as PNG.

Run: ``.venv/bin/python benchmarks/rate_distortion.py [--lambdas 0.003 0.01 0.03] [--epochs 8]``
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
from cached_run import train_or_reuse  # benchmarks/cached_run.py
from PIL import Image

from aekit.apps.codec import Codec
from aekit.data.sources import load_dataset
from aekit.evaluation.metrics import summarize


def quality(clean: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
    a = torch.from_numpy(clean.astype(np.float32) / 255)
    b = torch.from_numpy(decoded.astype(np.float32) / 255)
    return summarize(a, b)


def train_codec(train, lam: float, args) -> Codec:
    """Train (or reuse, from ``--out``, a run trained with the same settings) a codec."""
    settings = {"name": "codec", "latent_dim": args.latent_dim, "rd_lambda": lam, "channels": args.channels}
    run_dir = Path(args.out) / f"codec-{lam:g}-{args.latent_dim}-{args.epochs}"
    return Codec(train_or_reuse(run_dir, settings, train, args.epochs, f"lambda {lam:g}"))


def pillow_per_image(images: np.ndarray, fmt: str, **opts) -> tuple[int, np.ndarray, float, float]:
    """Each image its own file: total bytes, decoded images, encode and decode seconds."""
    blobs = []
    start = time.perf_counter()
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format=fmt, **opts)
        blobs.append(buf.getvalue())
    enc = time.perf_counter() - start
    start = time.perf_counter()
    out = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("L")) for b in blobs])
    dec = time.perf_counter() - start
    return sum(map(len, blobs)), out, enc, dec


def pillow_mosaic(images: np.ndarray, fmt: str, **opts) -> tuple[int, np.ndarray]:
    """All images tiled into one picture and coded as one file."""
    n, h, w = images.shape
    side = int(np.ceil(np.sqrt(n)))
    canvas = np.zeros((side * h, side * w), np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, side)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = im
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format=fmt, **opts)
    back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))
    out = np.stack(
        [back[(i // side) * h : (i // side + 1) * h, (i % side) * w : (i % side + 1) * w] for i in range(n)]
    )
    return len(buf.getvalue()), out


def bpp_at(psnr: float, points: list[tuple[float, float]]) -> float:
    """A baseline's bits per pixel at ``psnr``, interpolating its curve (log bpp); nan outside it."""
    pts = sorted((p, b) for b, p in points)
    ps, bs = np.array([p for p, _ in pts]), np.log([b for _, b in pts])
    if psnr < ps[0] or psnr > ps[-1]:
        return float("nan")
    return float(np.exp(np.interp(psnr, ps, bs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.003, 0.01, 0.03])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)

    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test", limit=args.n)
    images = test.raw(torch.arange(len(test))).numpy()  # uint8 (N, 1, 28, 28)
    flat = images[:, 0]
    pixels = flat.size
    rows = []  # (method, counting, bpp, psnr, ssim, enc img/s, dec img/s)

    for lam in args.lambdas:
        codec = train_codec(train, lam, args)
        codec.compress(images[:100])  # warm-up
        start = time.perf_counter()
        blob = codec.compress(images)
        enc = time.perf_counter() - start
        start = time.perf_counter()
        decoded = codec.decompress(blob)
        dec = time.perf_counter() - start
        estimated = codec.estimated_bytes(images)
        q = quality(images, decoded)
        bpp = 8 * len(blob) / pixels
        rows.append(
            (
                f"aekit codec, lambda {lam:g}",
                "one file",
                bpp,
                q["psnr"],
                q["ssim"],
                len(flat) / enc,
                len(flat) / dec,
            )
        )
        print(
            f"  aekit lambda {lam:g}: {len(blob):,} bytes ({bpp:.4f} bpp), estimated {estimated:,.0f} bytes "
            f"(file/estimate {len(blob) / estimated:.4f}); encode {enc:.2f} s, decode {dec:.2f} s "
            f"for {len(flat):,}",
            flush=True,
        )

    baselines = [("JPEG", "JPEG", {"quality": q}) for q in (1, 3, 5, 10, 20, 30, 50, 70, 90)]
    baselines += [("WebP", "WEBP", {"quality": q, "method": 6}) for q in (0, 2, 5, 10, 20, 30, 50, 70, 90)]
    baselines += [
        ("WebP lossless", "WEBP", {"lossless": True, "method": 6}),
        ("PNG", "PNG", {"optimize": True}),
    ]
    for name, fmt, opts in baselines:
        label = f"{name} q{opts['quality']}" if "quality" in opts else name
        size, out, enc, dec = pillow_per_image(flat, fmt, **opts)
        q = quality(images, out[:, None])
        rows.append(
            (label, "per image", 8 * size / pixels, q["psnr"], q["ssim"], len(flat) / enc, len(flat) / dec)
        )
        size, out = pillow_mosaic(flat, fmt, **opts)
        q = quality(images, out[:, None])
        rows.append((label, "mosaic", 8 * size / pixels, q["psnr"], q["ssim"], float("nan"), float("nan")))

    print("\n| method | counting | bits/pixel | PSNR (dB) | SSIM | encode img/s | decode img/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, how, bpp, p, s, e, d in rows:
        speed = "" if np.isnan(e) else f"{e:,.0f} | {d:,.0f}"
        print(f"| {name} | {how} | {bpp:.4f} | {p:.2f} | {s:.4f} | {speed or ' | '} |")

    print("\nat equal PSNR (baseline curves interpolated; the better counting of each):")
    for name, _, bpp, p, *_ in rows:
        if not name.startswith("aekit"):
            continue
        best = []
        for base in ("JPEG", "WebP"):
            for how in ("per image", "mosaic"):
                pts = [(b, q) for n, h, b, q, *_ in rows if n.startswith(base + " q") and h == how]
                best.append((bpp_at(p, pts), f"{base} {how}"))
        finite = [b for b in best if not np.isnan(b[0])]
        if finite:
            b, which = min(finite)
            print(
                f"  {name}: PSNR {p:.2f} dB at {bpp:.4f} bpp; best baseline {which} needs {b:.4f} bpp "
                f"-> {b / bpp:.1f}x"
            )
        else:
            print(f"  {name}: PSNR {p:.2f} dB lies outside the baselines' measured curves")

    from matplotlib.figure import Figure

    from aekit.report.figures import save_figure

    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.subplots()
    for base, how, style in [
        ("JPEG", "per image", "o-"),
        ("JPEG", "mosaic", "o--"),
        ("WebP", "per image", "s-"),
        ("WebP", "mosaic", "s--"),
    ]:
        pts = sorted((b, q) for n, h, b, q, *_ in rows if n.startswith(base + " q") and h == how)
        ax.plot(*zip(*pts, strict=True), style, ms=3, label=f"{base} ({how})")
    pts = sorted((b, q) for n, _, b, q, *_ in rows if n.startswith("aekit"))
    ax.plot(*zip(*pts, strict=True), "k*-", ms=8, label="aekit codec")
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel (from file sizes)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("Fashion-MNIST test set")
    ax.legend(fontsize=7)
    path = save_figure(fig, Path(args.out) / "rate_distortion.png")
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
