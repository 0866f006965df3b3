"""One small image per ``.aek`` file: file size against the estimate, and what the v2 layouts cost.

For each quality, codes each of ``--n`` Fashion-MNIST test images (28x28) as its own file and
reports: the file's bytes, :class:`HyperCodec`'s estimate (which models the whole file: exact
header, the coder's frequencies and start from state 0, the stream in whole bytes), the ratio;
and what the same symbols cost in layout 1 (44-byte header, 9-byte shape entry, whole 32-bit
words; the ANS words are identical) with layout 1's estimate (information + header only).

Run: ``python benchmarks/rd_single_files.py RUN_DIR [--n 1000]`` (one thread; a minute or so).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from aekit.apps.hypercodec import HEADER, PRECISION, RUN, HyperCodec
from aekit.data.sources import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    codec = HyperCodec.load(args.run)
    test = load_dataset(args.data, "test", limit=args.n)
    images = list(test.raw(torch.arange(len(test))).numpy())
    tables = codec.model.y_tables.numpy().astype(np.float64) / (1 << PRECISION)
    z_tables = codec.model.z_tables.numpy().astype(np.float64) / (1 << PRECISION)
    c, rows = codec.model.config, []
    print(
        "| quality | bytes a file | estimate | file / estimate | worst file | layout 1: bytes | its ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for q in range(1, codec.model.qualities + 1):
        sizes, estimates, old, old_est = [], [], [], []
        for im in images:
            enc = codec.encode([im], q)
            sizes.append(len(enc.data))
            estimates.append(enc.estimated_bytes)
            header, shapes, start = codec.read_header(enc.data)
            old.append(HEADER.size + RUN.size + 4 * ((len(enc.data) - start + 3) // 4))
            ys, zs, ks = codec.symbols([im], codec._segments(shapes), q, scales=True)
            k = ks[0].ravel()
            bits = -np.log2(tables[k, ys[0].ravel() + c.max_symbol]).sum()
            z = zs[0][0].reshape(c.hyper_channels, -1) + c.max_side
            bits += -np.log2(z_tables[np.arange(c.hyper_channels)[:, None], z]).sum()
            old_est.append(bits / 8 + HEADER.size + RUN.size)
        sizes, estimates, old, old_est = map(np.array, (sizes, estimates, old, old_est))
        r = sizes / estimates
        row = {
            "quality": q, "bytes": sizes.mean(), "estimate": estimates.mean(),
            "ratio": sizes.sum() / estimates.sum(), "worst": float(r[np.argmax(np.abs(r - 1))]),
            "layout1_bytes": old.mean(), "layout1_ratio": old.sum() / old_est.sum(),
        }  # fmt: skip
        rows.append(row)
        print(
            f"| {q} | {row['bytes']:.1f} | {row['estimate']:.1f} | {row['ratio']:.4f} | {row['worst']:.3f} | "
            f"{row['layout1_bytes']:.1f} | {row['layout1_ratio']:.4f} |",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
