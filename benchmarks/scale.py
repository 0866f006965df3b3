"""Data larger than memory: a synthetic uint8 data set memory-mapped from disk, beside in-memory.

Writes a synthetic set of 28x28 uint8 images as one .npy file (10 GB by default, then twice
that with ``--double``), and in a fresh process for each: trains the dense autoencoder for a
fixed number of steps reading batches straight from the memory-mapped file, printing the
peak resident memory (anonymous memory, i.e. what the process itself allocated, and the total
including the file pages it touched) beside the data size, and the training rate against the
same training on an in-memory copy of the first ``--in-memory-gb`` of the same data.

Targets: peak memory under 1.5 GB and flat as the data doubles; memory-mapped throughput at
least 80% of in-memory.

Run: ``.venv/bin/python benchmarks/scale.py [--gb 10] [--double] [--steps 1500] [--dir /tmp/aekit-scale]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHAPE = (1, 28, 28)


def make_data(path: Path, gb: float) -> Path:
    """Images of blurred blobs with noise (structure for the model to learn), written in chunks."""
    n = int(gb * 1e9) // int(np.prod(SHAPE))
    if path.is_file() and np.load(path, mmap_mode="r").shape[0] == n:
        return path
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, *SHAPE))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:28, :28]
    cy, cx = rng.uniform(6, 22, (2, 8192, 1, 1))
    blobs = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0) * 230 + rng.integers(0, 25, (8192, 28, 28))
    bank = np.clip(blobs, 0, 255).astype(np.uint8)  # 8,192 distinct images, drawn at random below
    chunk = 500_000
    start = time.perf_counter()
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        out[lo : lo + m, 0] = bank[rng.integers(0, len(bank), m)]
    out.flush()
    del out
    print(f"  wrote {path} ({n:,} images, {gb:g} GB) in {time.perf_counter() - start:.0f} s", flush=True)
    return path


def child(path: str, steps: int, batch: int, in_memory_gb: float, advice: str = "normal") -> None:
    """Train for ``steps`` steps in this (fresh) process and print one JSON line of measurements."""
    import torch

    from aekit.config import TrainConfig
    from aekit.data.dataset import ArrayDataset, Scaling
    from aekit.models import build_model
    from aekit.training.trainer import Trainer

    torch.set_num_threads(2)
    x = np.load(path, mmap_mode="r")
    if in_memory_gb > 0:
        n = int(in_memory_gb * 1e9) // int(np.prod(SHAPE))
        x = torch.from_numpy(np.array(x[:n]))  # a copy in memory
    data = ArrayDataset(x, name=path, scaling=Scaling.uint8())
    if advice == "random" and isinstance(x, np.memmap):  # tried: no read-ahead, no fault-around
        import mmap

        x._mmap.madvise(mmap.MADV_RANDOM)
    model = build_model("dense", input_shape=SHAPE, hidden=(256, 128), latent_dim=32)
    cfg = TrainConfig(epochs=1, batch_size=batch, lr=1e-3, val_fraction=0, device="cpu")

    class Done(Exception):
        pass

    class StopAfter:
        def __init__(self) -> None:
            self.start = None

        def on_batch_end(self, trainer, terms) -> None:
            if trainer.step == 50:  # warm-up excluded from the clock
                self.start = time.perf_counter()
            if trainer.step % 100 == 0:
                self.anon = max(getattr(self, "anon", 0.0), _status("RssAnon"))  # the peak, sampled
            if trainer.step >= steps + 50:
                raise Done

    stop = StopAfter()
    trainer = Trainer(model, cfg, [stop])
    with contextlib.suppress(Done):
        trainer.fit(data)
    seconds = time.perf_counter() - stop.start
    print(
        json.dumps(
            {
                "samples_per_s": steps * batch / seconds,
                "peak_rss_gb": _status("VmHWM"),  # this process's peak (ru_maxrss would count the parent's)
                "rss_anon_gb": max(getattr(stop, "anon", 0.0), _status("RssAnon")),
                "rss_file_gb": _status("RssFile"),
                "images": len(data),
            }
        )
    )


def _status(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e9
    return 0.0


def measure(path: Path, args, in_memory_gb: float = 0.0, advice: str = "normal") -> dict:
    cmd = [sys.executable, __file__, "--child", str(path), "--steps", str(args.steps)]
    cmd += ["--batch", str(args.batch), "--in-memory-gb", str(in_memory_gb), "--advice", advice]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=10.0)
    parser.add_argument("--double", action="store_true", help="also measure twice the data")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--in-memory-gb", type=float, default=2.0)
    parser.add_argument("--dir", default="/tmp/aekit-scale")
    parser.add_argument("--child")
    parser.add_argument("--advice", default="normal", choices=("random", "normal"))
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.batch, args.in_memory_gb, args.advice)
        return
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [args.gb, 2 * args.gb] if args.double else [args.gb]
    rows = []
    for gb in sizes:
        path = make_data(folder / f"synthetic-{gb:g}gb.npy", gb)
        rows.append((f"memory-mapped, {gb:g} GB on disk", measure(path, args)))
        label = f"memory-mapped, {gb:g} GB, advised MADV_RANDOM (tried, not used)"
        rows.append((label, measure(path, args, advice="random")))
    first = folder / f"synthetic-{sizes[0]:g}gb.npy"
    rows.append(
        (f"in memory, first {args.in_memory_gb:g} GB copied", measure(first, args, args.in_memory_gb))
    )
    base = rows[-1][1]["samples_per_s"]
    print(f"\n{args.steps} steps of batch {args.batch}, dense 784-256-128-32, 2 threads\n")
    print(
        "| data | images | samples/s | vs in-memory | peak RSS (GB) | peak anonymous (GB) "
        "| file pages at the end (GB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in rows:
        print(
            f"| {label} | {r['images']:,} | {r['samples_per_s']:,.0f} | {r['samples_per_s'] / base:.0%} "
            f"| {r['peak_rss_gb']:.2f} | {r['rss_anon_gb']:.2f} | {r['rss_file_gb']:.2f} |"
        )


if __name__ == "__main__":
    main()
