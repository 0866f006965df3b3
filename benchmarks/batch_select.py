"""Choosing a larger batch's learning rate for the VAE family on a validation split of the TRAIN set.

A larger batch makes a CPU step cheaper per sample (``benchmarks/vae_step_speed.py``) but takes
fewer steps per epoch, so at the same epochs the learning rate must grow for the NLL to hold. This
trains each model at the settings of ``benchmarks/models.py --epochs 5`` (batch 128, Adam 1e-3,
float32: the baseline) and at a larger batch under ``--cpu-bf16`` with several learning rates, on
the fixed 54,000/6,000 split of the Fashion-MNIST training images that ``benchmarks/vamp_select.py``
uses, and scores the importance-weighted NLL of the first 2,000 validation images. The test set is
never touched; the chosen setting is then measured on it by ``benchmarks/models.py``.

Cached in ``benchmarks/results/batch_select.json``.

Run: ``.venv/bin/python benchmarks/batch_select.py [--models vae iwae vampprior tcvae] [--seeds 0 1 2]
[--batch 512] [--lrs 0.001 0.002 0.003 0.004] [--schedule onecycle]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from models import model_settings  # benchmarks/models.py
from vamp_select import SPLIT_SEED, VAL_FRACTION, val_nll  # benchmarks/vamp_select.py

from aekit.config import TrainConfig
from aekit.data.sources import load_dataset
from aekit.fileio import atomic_write_text
from aekit.models import build_model
from aekit.training.trainer import Trainer

CACHE = Path(__file__).parent / "results" / "batch_select.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vae", "iwae", "vampprior", "tcvae"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 2e-3, 3e-3, 4e-3])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--compile-step", action="store_true", help="the larger batch with --compile-step (and --cpu-bf16)"
    )
    parser.add_argument(
        "--set", nargs="*", default=[], help="model field=value for every run (e.g. pseudo_inputs=linear)"
    )
    parser.add_argument(
        "--schedule",
        default="constant",
        choices=["constant", "cosine", "onecycle"],
        help="the larger batch's learning-rate schedule (the batch 128 reference stays constant)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    changes = dict(kv.split("=", 1) for kv in args.set)
    fit_set, val = load_dataset("fashion-mnist", "train").split(VAL_FRACTION, seed=SPLIT_SEED)
    cache = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    settings = [(128, 1e-3, False)] + [(args.batch, lr, True) for lr in args.lrs]
    tag = "".join(f"|{k}={v}" for k, v in sorted(changes.items()))

    def key(name: str, batch: int, lr: float, bf16: bool, seed: int) -> str:
        precision = ("bf16 compile-step" if args.compile_step else "bf16") if bf16 else "fp32"
        schedule = f"|{args.schedule}" if bf16 and args.schedule != "constant" else ""
        return f"{name}{tag}|{args.epochs}|batch {batch}|lr {lr:g}{schedule}|{precision}|seed {seed}"

    for seed in args.seeds:
        for name in args.models:
            for batch, lr, bf16 in settings:
                k = key(name, batch, lr, bf16, seed)
                if k in cache:
                    continue
                torch.manual_seed(seed)
                config = model_settings(name, fit_set)
                fields = {f.name: f.type for f in dataclasses.fields(config)}
                config = dataclasses.replace(config, **{f: v for f, v in changes.items() if f in fields})
                model = build_model(name, config)
                cfg = TrainConfig(
                    epochs=args.epochs,
                    batch_size=batch,
                    lr=lr,
                    val_fraction=0,
                    device="cpu",
                    cpu_bf16=bf16,
                    compile_step=bf16 and args.compile_step,
                    schedule=args.schedule if bf16 else "constant",
                    seed=seed,
                )
                start = time.process_time()
                Trainer(model, cfg).fit(fit_set)
                seconds = time.process_time() - start
                cache[k] = {"val_nll": val_nll(model, val), "samples/s": len(fit_set) * args.epochs / seconds}
                print(k, cache[k], flush=True)
                CACHE.parent.mkdir(exist_ok=True)
                on_disk = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
                atomic_write_text(CACHE, json.dumps({**on_disk, k: cache[k]}, indent=1))
    print(f"\nvalidation NLL (nats), first 2000 of {len(val)} held-out TRAIN images; {args.epochs} epochs")
    print(
        "| model | batch | lr | bf16 | seeds | val NLL mean ± sd | vs batch 128 fp32, paired mean ± se "
        "| samples per CPU-s |"
    )
    print("|---|---:|---:|---|---:|---|---:|---:|")
    for name in args.models:
        base = [cache.get(key(name, 128, 1e-3, False, s), {}).get("val_nll", math.nan) for s in args.seeds]
        for batch, lr, bf16 in settings:
            rows = [cache.get(key(name, batch, lr, bf16, s)) for s in args.seeds]
            got = [(r["val_nll"], b, r["samples/s"]) for r, b in zip(rows, base, strict=True) if r]
            if not got:
                continue
            nll, b, speed = (np.array(v) for v in zip(*got, strict=True))
            diff = nll - b
            se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
            sd = nll.std(ddof=1) if len(nll) > 1 else math.nan
            vs = "" if (batch, bf16) == (128, False) else f"{diff.mean():+.2f} ± {se:.2f}"
            print(
                f"| {name} | {batch} | {lr:g} | {'yes' if bf16 else 'no'} | {len(nll)} "
                f"| {nll.mean():.2f} ± {sd:.2f} "
                f"| {vs} | {speed.mean():,.0f} |"
            )


if __name__ == "__main__":
    main()
