"""For benchmarks: train a model once on the full training set and keep it as a run directory.

A later run of the benchmark with the same settings (the same ``run_dir`` name) reuses it.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from aekit.api import Run, load
from aekit.config import TrainConfig, resolve
from aekit.models import build_model
from aekit.training import checkpoint
from aekit.training.trainer import Trainer


def train_or_reuse(
    run_dir: Path, settings: dict[str, Any], train, epochs: int, label: str, batch_size: int = 128
) -> Run:
    """The run in ``run_dir`` if it is there, else ``settings`` trained on ``train`` (seed 0,
    batch ``batch_size``, Adam 2e-3 with the one-cycle schedule, on the CPU) and saved there."""
    if (run_dir / checkpoint.WEIGHTS).is_file():
        print(f"  reusing {run_dir}", flush=True)
        return load(run_dir)
    config = resolve([{"model": settings, "data": {"source": train.name}}], input_shape=train.shape)
    torch.manual_seed(0)
    model = build_model(config.model, config.model_config)
    cfg = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=2e-3, schedule="onecycle", val_fraction=0, device="cpu"
    )
    start = time.perf_counter()
    Trainer(model, cfg).fit(train)
    print(f"  trained {label} in {time.perf_counter() - start:.0f} s", flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(config, train=cfg)
    checkpoint.write_config(run_dir, config, train.describe())
    checkpoint.save_weights(run_dir, model)
    return Run(config, train.describe(), model.eval(), run_dir)
