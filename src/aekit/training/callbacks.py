"""What the trainer does besides training: progress, logs, checkpoints, early stopping."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from aekit.fileio import atomic_write_text
from aekit.progress import STEPS, Milestones, is_live, live_bar
from aekit.training.checkpoint import METRICS, save_checkpoint, save_weights


def format_record(record: dict[str, float], epochs: int) -> str:
    """``epoch 3/5  train loss 0.0213  val loss 0.0209  (1.2 s)``"""
    parts = [f"epoch {int(record['epoch'])}/{epochs}"]
    for split in ("train", "val"):
        if f"{split}/loss" in record:
            parts.append(f"{split} loss {record[f'{split}/loss']:.5f}")
    parts.append(f"({record['seconds']:.1f} s)")
    return "  ".join(parts)


class ProgressBar:
    """Progress by aekit's one rule (:mod:`aekit.progress`): a bar over each epoch's batches on a
    terminal, and one printed line per epoch. Off a terminal, a run of fewer than 10 epochs also
    prints a line at each 10% of its steps, so that a long epoch is not silent in a log."""

    def __init__(self, enabled: bool = True, stream: Any = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.bar: Any = None
        self.live = enabled and is_live()
        self.milestones: Milestones | None = None
        self.start = 0.0

    def _open(self, trainer) -> None:
        if self.live:
            self.bar = live_bar(
                trainer.batches_per_epoch, f"epoch {trainer.epoch + 1}/{trainer.config.epochs}", unit="batch"
            )

    def on_fit_start(self, trainer) -> None:
        if self.enabled and not self.live and trainer.config.epochs - trainer.epoch < STEPS:
            self.milestones = Milestones(trainer.config.epochs * trainer.batches_per_epoch)
            self.milestones.passed(trainer.step)  # a resumed run: the milestones already behind it
            self.start = time.perf_counter()
        self._open(trainer)

    def on_batch_end(self, trainer, terms: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if self.bar.n % 20 == 0:
                self.bar.set_postfix(loss=f"{terms['loss']:.4f}", refresh=False)
        done = trainer.step  # steps taken, this one included
        at_epoch_end = done % max(1, trainer.batches_per_epoch) == 0
        if self.milestones is not None and self.milestones.passed(done) and not at_epoch_end:
            print(
                f"epoch {trainer.epoch + 1}/{trainer.config.epochs}: {self.milestones.percent}% of training "
                f"(step {done}, loss {terms['loss']:.5f}, {time.perf_counter() - self.start:.1f} s)",
                file=self.stream,
                flush=True,
            )

    def on_epoch_end(self, trainer, record: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.enabled:
            print(format_record(record, trainer.config.epochs), file=self.stream, flush=True)
        if trainer.epoch < trainer.config.epochs:
            self._open(trainer)

    def on_fit_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsLog:
    """``metrics.jsonl``: one JSON line per epoch, rewritten atomically from the trainer's history."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / METRICS

    def on_epoch_end(self, trainer, record: dict[str, float]) -> None:
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in trainer.history))


class Checkpointer:
    """After each epoch: the weights (``model.safetensors``) and all state to resume (``checkpoint.pt``)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def on_epoch_end(self, trainer, record: dict[str, float]) -> None:
        save_checkpoint(self.run_dir, trainer.state_dict())
        save_weights(self.run_dir, trainer.model)

    def on_fit_end(self, trainer) -> None:  # after EarlyStopping may have restored the best weights
        save_weights(self.run_dir, trainer.model)


class EarlyStopping:
    """Stop after ``patience`` epochs without a lower ``monitor``, and restore the best weights."""

    def __init__(self, patience: int, monitor: str = "val/loss") -> None:
        self.patience = patience
        self.monitor = monitor
        self.best = float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0

    def on_epoch_end(self, trainer, record: dict[str, float]) -> None:
        value = record.get(self.monitor, record.get("train/loss"))
        if value < self.best:
            self.best, self.bad_epochs = value, 0
            self.best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                trainer.should_stop = True

    def on_fit_end(self, trainer) -> None:
        if self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        """Kept in the checkpoint, so that a resumed run counts patience and keeps the best weights."""
        return {"best": self.best, "bad_epochs": self.bad_epochs, "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])
        self.best_state = state["best_state"]
