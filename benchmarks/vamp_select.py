"""Choosing the VampPrior's defaults on a validation split of the Fashion-MNIST TRAIN set.

The settings of ``benchmarks/models.py --epochs 5`` (batch 128, Adam 1e-3, latent 32, hidden
256-128, one thread), but trained on 54,000 of the 60,000 training images and scored on the other
6,000 (a fixed split, the same for every seed and variant): the importance-weighted NLL (100
samples) of the first 2,000 validation images. The test set is never touched here; the chosen
default is then measured on the test set by ``benchmarks/models.py``.

Each variant changes one thing against aekit's VampPrior as it was before this benchmark (``free``
pseudo-inputs, no KL warm-up; every variant names its warm-up, so the table stays what it was
after the default became a 1000-step warm-up, chosen here):

- ``linear``: pseudo-inputs u_k = hardtanh(W e_k + b), pythae's parameterisation (``pseudo_inputs="linear"``);
- ``free, init near 0``: free pseudo-inputs started where pythae's start (the sum of two
  U(-1/sqrt(K), 1/sqrt(K)) draws), to separate the initialisation from the shared bias;
- ``linear, K=100`` / ``linear, K=25``: the number of pseudo-inputs;
- ``..., warm-up 1 epoch`` (or 2): the KL weight ramps from 0 to 1 over the first epoch(s);
- ``tcvae, MSS`` against ``tcvae``: the beta-TCVAE's q(z) by the paper's minibatch-stratified
  sampling (``mss_dataset_size`` = 54,000, the images trained on) against minibatch-weighted
  sampling (its default); rows "vs free" do not apply to these two.

Seeds pair the runs (same network initialisation, batch order and noise), so differences are
reported per seed as well as in the mean. Cached in ``benchmarks/results/vamp_select.json``.

Run: ``.venv/bin/python benchmarks/vamp_select.py [--seeds 0 1 2 3 4] [--variants ...]``
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
from torch import nn

from aekit.config import TrainConfig
from aekit.data.batches import Batches
from aekit.data.sources import load_dataset
from aekit.fileio import atomic_write_text
from aekit.models.tcvae import TCVAE
from aekit.models.vampprior import VampPriorVAE
from aekit.training.trainer import Trainer

CACHE = Path(__file__).parent / "results" / "vamp_select.json"
VAL_FRACTION, SPLIT_SEED, VAL_IMAGES = 0.1, 12345, 2000


class NearZeroFree(VampPriorVAE):
    """Free pseudo-inputs started where pythae's linear ones start (W e_k + b at PyTorch's init)."""

    def __init__(self, config) -> None:
        super().__init__(config)
        a = 1 / math.sqrt(config.components)
        shape = (config.components, *config.input_shape)
        self.pseudo = nn.Parameter((torch.rand(shape) * 2 - 1) * a + (torch.rand(shape) * 2 - 1) * a)


EPOCH_STEPS = math.ceil(54_000 / 128)
VARIANTS = {  # name: (config changes, class); the model is the class's
    "free": ({"pseudo_inputs": "free", "kl_warmup_steps": 0}, VampPriorVAE),
    "linear": ({"pseudo_inputs": "linear", "kl_warmup_steps": 0}, VampPriorVAE),
    "free, init near 0": ({"pseudo_inputs": "free", "kl_warmup_steps": 0}, NearZeroFree),
    "linear, K=100": ({"pseudo_inputs": "linear", "components": 100, "kl_warmup_steps": 0}, VampPriorVAE),
    "linear, K=25": ({"pseudo_inputs": "linear", "components": 25, "kl_warmup_steps": 0}, VampPriorVAE),
    "linear, warm-up 1 epoch": ({"pseudo_inputs": "linear", "kl_warmup_steps": EPOCH_STEPS}, VampPriorVAE),
    "free, warm-up 1 epoch": ({"pseudo_inputs": "free", "kl_warmup_steps": EPOCH_STEPS}, VampPriorVAE),
    "free, warm-up 2 epochs": ({"pseudo_inputs": "free", "kl_warmup_steps": 2 * EPOCH_STEPS}, VampPriorVAE),
    "free, warm-up 1000 steps": ({"pseudo_inputs": "free", "kl_warmup_steps": 1000}, VampPriorVAE),
    "free, warm-up 2000 steps": ({"pseudo_inputs": "free", "kl_warmup_steps": 2000}, VampPriorVAE),
    "tcvae": ({"mss_dataset_size": 0}, TCVAE),
    "tcvae, MSS": ({"mss_dataset_size": 54_000}, TCVAE),
}


@torch.no_grad()
def val_nll(model, data, k: int = 100) -> float:
    torch.manual_seed(0)
    model.eval()
    sub = data.subset(torch.arange(VAL_IMAGES))
    return float(sum(float(model.nll(b.x, b.y, k=k).sum()) for b in Batches(sub, 250)) / len(sub))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    fit_set, val = load_dataset("fashion-mnist", "train").split(VAL_FRACTION, seed=SPLIT_SEED)
    cache = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    for seed in args.seeds:
        for name in args.variants:
            key = f"{name}|{args.epochs}|seed {seed}"
            if key in cache:
                continue
            changes, cls = VARIANTS[name]
            torch.manual_seed(seed)
            model = cls(dataclasses.replace(model_settings(cls.model_name, fit_set), **changes))
            cfg = TrainConfig(
                epochs=args.epochs, batch_size=128, lr=1e-3, val_fraction=0, device="cpu", seed=seed
            )
            start = time.process_time()
            Trainer(model, cfg).fit(fit_set)
            cache[key] = {"val_nll": val_nll(model, val), "cpu_s": time.process_time() - start}
            print(key, cache[key], flush=True)
            CACHE.parent.mkdir(exist_ok=True)
            on_disk = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
            atomic_write_text(CACHE, json.dumps({**on_disk, key: cache[key]}, indent=1))
    print(f"\nvalidation NLL (nats), {len(val)} held-out TRAIN images (first {VAL_IMAGES} scored)")
    print("| variant | seeds | val NLL, mean ± sd (per seed) | vs free, paired mean ± se |")
    print("|---|---:|---|---:|")
    base = np.array(
        [cache.get(f"free|{args.epochs}|seed {s}", {}).get("val_nll", np.nan) for s in args.seeds]
    )
    for name in args.variants:
        seeds = [s for s in args.seeds if f"{name}|{args.epochs}|seed {s}" in cache]
        nll = np.array([cache[f"{name}|{args.epochs}|seed {s}"]["val_nll"] for s in seeds])
        diff = nll - base[[args.seeds.index(s) for s in seeds]]
        se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        vs = f"{diff.mean():+.2f} ± {se:.2f}" if name != "free" and len(diff) else ""
        sd = nll.std(ddof=1) if len(nll) > 1 else float("nan")
        per = ", ".join(f"{v:.2f}" for v in nll)
        print(f"| {name} | {len(nll)} | {nll.mean():.2f} ± {sd:.2f} ({per}) | {vs} |")


if __name__ == "__main__":
    main()
