"""Where a hyperprior model's bits go on Fashion-MNIST test images: side information, the latent
positions that see only the image's padding, and the rest.

A 28x28 image is padded (reflect) to the model's stride, 32x32, so ``y`` is 8x8 where 7x7 would
cover the image: its last row and column (15 of 64 positions) describe padding only. For each
quality the symbols of ``--n`` test images are coded as ``HyperCodec`` codes them and their
information (under the coder's own frequencies, as the estimate counts it) is split into z, the
y positions over the image (a checkerboard model: anchors and others), and the y positions over
padding only. Measurement, not tuning: no setting is chosen from it.

Run: ``python benchmarks/rd_gap.py RUN_DIR [--n 10000] [--json out.json]`` (one thread).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from aekit.apps.hypercodec import PRECISION, HyperCodec
from aekit.data.sources import load_dataset
from aekit.models.hyperprior import anchors


def split_bits(codec: HyperCodec, images: list[np.ndarray], quality: float) -> dict[str, float]:
    """Bits per image of z, of y over the image and of y over padding only, at ``quality``."""
    c, total = codec.model.config, float(1 << PRECISION)
    segments = codec._segments([im.shape for im in images])
    ys, zs = codec.symbols(images, segments, quality)
    out = {"z": 0.0, "y image": 0.0, "y padding": 0.0}
    if c.checkerboard:  # y over the image split into anchors and the rest (coded with their context)
        out |= {"y anchors": 0.0, "y others": 0.0}
    for y, z, seg in zip(ys, zs, segments, strict=True):
        k = codec.model.scale_index(torch.from_numpy(z), y.shape[-2:], torch.from_numpy(y)).numpy()
        bits = -np.log2(codec._y_counts[k, y + c.max_symbol] / total)  # (n, M, h, w)
        h, w = seg.shape[1:]
        inside = np.zeros(bits.shape[-2:], bool)
        inside[: -(-h >> c.levels), : -(-w >> c.levels)] = (
            True  # positions whose receptive centre is in the image
        )
        out["y image"] += float(bits[..., inside].sum())
        out["y padding"] += float(bits[..., ~inside].sum())
        if c.checkerboard:
            a = anchors(*bits.shape[-2:]).numpy()
            out["y anchors"] += float(bits[..., inside & a].sum())
            out["y others"] += float(bits[..., inside & ~a].sum())
        zc = z + c.max_side
        out["z"] += float(
            -np.log2(codec._z_counts[np.arange(c.hyper_channels)[:, None, None], zc] / total).sum()
        )
    return {key: v / len(images) for key, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    codec = HyperCodec.load(args.run)
    test = load_dataset("fashion-mnist", "test", limit=args.n)
    images = list(test.raw(torch.arange(len(test))).numpy())
    rows = []
    extra = " y anchors | y others |" if codec.model.config.checkerboard else ""
    print("| quality | bits an image | z | y over the image | y over padding only |" + extra)
    print("|---|---:|---:|---:|---:|" + "---:|" * (2 if extra else 0))
    for q in range(1, codec.model.qualities + 1):
        parts = split_bits(codec, images, q)
        all_bits = parts["z"] + parts["y image"] + parts["y padding"]
        rows.append({"quality": q, "bits": all_bits, **parts})
        shares = " | ".join(f"{parts[k]:.1f} ({100 * parts[k] / all_bits:.1f}%)" for k in parts)
        print(f"| {q} | {all_bits:.1f} | {shares} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
