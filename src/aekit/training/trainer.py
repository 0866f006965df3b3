"""The one training loop for every model.

It knows nothing of any model beyond the contract: ``loss(batch, phase)`` returns
named terms with a ``"loss"`` key, and ``phases`` / ``phase_parameters`` say which
optimizer updates what. Logging, checkpoints, early stopping and progress bars are
callbacks (see :mod:`aekit.training.callbacks`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from aekit.config import TrainConfig
from aekit.data.batches import Batch, Batches
from aekit.data.dataset import ArrayDataset
from aekit.errors import AekitError, ConfigError
from aekit.training import allocator, distributed


class TrainingError(AekitError):
    """Training cannot go on (a non-finite loss under ``nan_policy="stop"``).

    ``reason`` is the message without its ``advice``, so that a caller (the CLI) can give the
    advice in its own terms (flags rather than setting names).
    """

    def __init__(self, reason: str, advice: str = "") -> None:
        super().__init__(f"{reason}. {advice}" if advice else reason)
        self.reason = reason


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (expected auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but no CUDA GPU is available (use --device auto or cpu)"
        )
    return device


def make_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``cfg`` names; the fused (one kernel for all parameters) variant when it applies.

    Fused Adam takes a quarter off a small model's step on the CPU and gives the same numbers run to run.
    """
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    fused = all(p.dtype == torch.float32 and p.device.type in ("cpu", "cuda") for p in params)
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)


def lr_factor(schedule: str, progress: float, warmup: float = 0.15) -> float:
    """The share of the base learning rate at ``progress`` (0 to 1) through training.

    ``cosine`` decays to zero; ``onecycle`` warms up linearly over the first ``warmup``
    of training, then decays as a cosine. Both are functions of the step count alone, so a
    resumed run needs no scheduler state.
    """
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "onecycle":
        if progress < warmup:
            return progress / warmup
        return 0.5 * (1 + math.cos(math.pi * (progress - warmup) / (1 - warmup)))
    return 1.0


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    """The epoch-level scheduler (``plateau``), or None: the others are set per step by :func:`lr_factor`."""
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    return None


class _LossModule(nn.Module):
    """The model's loss as ``forward``, so that DistributedDataParallel sees (and syncs) its backward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x, y, phase: str) -> dict[str, torch.Tensor]:
        return self.model.loss(Batch(x, y), phase)


class Trainer:
    """Fit a model to a dataset.

    Args:
        model: Any model that keeps the contract in :mod:`aekit.models.base`.
        config: The training settings.
        callbacks: Objects with any of ``on_fit_start``, ``on_batch_end``, ``on_epoch_end``,
            ``on_fit_end`` (each called with the trainer, and the record or terms).
    """

    def __init__(self, model: nn.Module, config: TrainConfig, callbacks: Sequence[Any] = ()) -> None:
        self.config = config
        self.device = distributed.local_device(resolve_device(config.device))
        if self.device.type == "cpu":  # each step's large tensors reuse the last step's memory
            allocator.keep_freed_memory()
        self.model = model.to(self.device)
        self.ddp = None
        if distributed.world_size() > 1:  # under torchrun: gradients averaged across the ranks
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                _LossModule(self.model),
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=len(model.phases) > 1,  # each phase updates part of the model
            )
        self.callbacks = list(callbacks)
        self.optimizers = {p: make_optimizer(model.phase_parameters(p), config) for p in model.phases}
        self.schedulers = {p: make_scheduler(o, config) for p, o in self.optimizers.items()}
        self.generator = torch.Generator().manual_seed(config.seed)
        cuda = self.device.type == "cuda"
        amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
        self.amp = config.amp and cuda
        self._autocast = nullcontext
        if self.amp:
            self._autocast = lambda: torch.autocast("cuda", dtype=amp_dtype)
        elif config.cpu_bf16 and self.device.type == "cpu":
            self._autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and amp_dtype == torch.float16)
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.history: list[dict[str, float]] = []
        self.should_stop = False
        self.batches_per_epoch = 0
        self._compiled: Any = None  # config.compile_step: the compiled step, False when it does not apply

    # --- the loop ---------------------------------------------------------------------------------

    def fit(self, train: ArrayDataset, val: ArrayDataset | None = None) -> list[dict[str, float]]:
        """Train until ``config.epochs`` epochs are done (counting resumed ones) or a callback stops it."""
        batches = Batches(
            train,
            self.config.batch_size,
            shuffle=True,
            generator=self.generator,
            device=self.device,
            shard=distributed.shard() if self.ddp is not None else None,
        )
        self.batches_per_epoch = len(batches)
        self._call("on_fit_start")
        while self.epoch < self.config.epochs and not self.should_stop:
            start = time.perf_counter()
            record: dict[str, float] = {"epoch": self.epoch + 1}
            record |= {f"train/{k}": v for k, v in self.train_epoch(batches).items()}
            if val is not None:
                record |= {f"val/{k}": v for k, v in self.evaluate(val).items()}
            record["lr"] = self.optimizers[self.model.phases[0]].param_groups[0]["lr"]
            record["seconds"] = time.perf_counter() - start
            self.epoch += 1
            self.model.finalize()  # e.g. a codec's integer entropy tables, before the checkpoint
            self._step_schedulers(record)
            self.history.append(record)
            self._call("on_epoch_end", record)
        self._call("on_fit_end")
        return self.history

    def train_epoch(self, batches: Batches) -> dict[str, float]:
        self.model.train()
        sums: dict[str, float] = {}
        seen = 0
        for batch in batches:
            terms = self.train_step(batch)
            if terms is None:
                continue
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v * len(batch)
            seen += len(batch)
            self._call("on_batch_end", terms)
        means = {k: v / max(seen, 1) for k, v in sums.items()}
        return distributed.mean_across_ranks(means, float(seen)) if self.ddp is not None else means

    def train_step(self, batch: Batch) -> dict[str, float] | None:
        """One optimizer step a phase; returns the terms as floats, or None for a skipped batch."""
        if self.config.compile_step and (compiled := self._compiled_step(batch)) is not None:
            return compiled
        out: dict[str, float] = {}
        for phase, opt in self.optimizers.items():
            with self._autocast():
                terms = (
                    self.ddp(batch.x, batch.y, phase)
                    if self.ddp is not None
                    else self.model.loss(batch, phase)
                )
            loss = terms["loss"]
            values = dict(
                zip(terms, torch.stack([v.detach().float() for v in terms.values()]).tolist(), strict=True)
            )
            finite = math.isfinite(values["loss"])  # one device sync a step, for all terms
            if self.ddp is not None:  # every rank skips or stops together, or the gradient sync would hang
                finite = distributed.all_true(finite)
            if not finite:
                if self.config.nan_policy == "skip":
                    opt.zero_grad(set_to_none=True)
                    return None
                raise self._non_finite(phase, values["loss"])
            self._set_lr(opt)
            opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.config.grad_clip > 0:
                self.scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(self.model.phase_parameters(phase), self.config.grad_clip)
            self.scaler.step(opt)
            self.scaler.update()
            prefix = "" if phase == "main" else f"{phase}_"
            out |= {prefix + k: v for k, v in values.items()}
        self.step += 1
        return out

    def _non_finite(self, phase: str, loss: float) -> TrainingError:
        return TrainingError(
            f"the {phase} loss became {loss:g} at epoch {self.epoch + 1}, "
            f"step {self.step + 1}; training stopped (the last good checkpoint is kept)",
            advice="Try a lower lr, a grad_clip, or nan_policy='skip'",
        )

    def _set_lr(self, opt: torch.optim.Optimizer) -> None:
        """The per-step schedules (cosine, onecycle) set the learning rate before each step."""
        if self.config.schedule in ("cosine", "onecycle"):
            progress = (self.step + 1) / max(1, self.config.epochs * self.batches_per_epoch)
            for group in opt.param_groups:
                group["lr"] = self.config.lr * lr_factor(self.config.schedule, min(progress, 1.0))

    def _compiled_step(self, batch: Batch) -> dict[str, float] | None:
        """``config.compile_step``: the step as one compiled graph (:mod:`aekit.training.compiled_step`);
        None when the normal step must take this batch (it does not apply, or a batch of another size)."""
        from aekit.training import compiled_step

        if self._compiled is None:
            self._compiled, why = compiled_step.build(self)
            if why is not None:
                warnings.warn(f"compile_step: not used ({why}); the normal step runs", stacklevel=3)
                self._compiled = False
        if not self._compiled:
            return None
        opt = self.optimizers["main"]
        self._set_lr(opt)
        try:
            values = self._compiled(batch, opt.param_groups[0]["lr"])
        except Exception as e:  # the first call compiles: no compiler, or a loss dynamo cannot trace
            if self._compiled.keys:  # it ran before: a real error of the step
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            warnings.warn(f"compile_step: not used ({first[:200]}); the normal step runs", stacklevel=3)
            self._compiled = False
            return None
        if values is None:
            return None
        if not math.isfinite(values["loss"]):
            raise self._non_finite("main", values["loss"])
        self.step += 1
        return values

    @torch.no_grad()
    def evaluate(self, data: ArrayDataset) -> dict[str, float]:
        """Average loss terms over ``data`` with the model in eval mode."""
        self.model.eval()
        sums: dict[str, float] = {}
        for batch in Batches(data, max(self.config.batch_size, 1024), device=self.device):
            for phase in self.model.phases:
                prefix = "" if phase == "main" else f"{phase}_"
                with self._autocast():
                    terms = self.model.loss(batch, phase)
                for k, v in terms.items():
                    key = prefix + k
                    sums[key] = sums.get(key, 0.0) + float(v) * len(batch)
        return {k: v / len(data) for k, v in sums.items()}

    def _step_schedulers(self, record: dict[str, float]) -> None:
        for sched in self.schedulers.values():
            if sched is not None:
                sched.step(record.get("val/loss", record.get("train/loss", math.inf)))

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    # --- state for checkpoints and resume --------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly: weights, optimizers, RNGs, history."""
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizers": {p: o.state_dict() for p, o in self.optimizers.items()},
            "schedulers": {p: s.state_dict() for p, s in self.schedulers.items() if s is not None},
            "scaler": self.scaler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "callbacks": {
                type(cb).__name__: cb.state_dict() for cb in self.callbacks if hasattr(cb, "state_dict")
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for p, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][p])
        for p, s in self.schedulers.items():
            if s is not None and p in state["schedulers"]:
                s.load_state_dict(state["schedulers"][p])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history = list(state["history"])
        for cb in self.callbacks:
            saved = state.get("callbacks", {}).get(type(cb).__name__)
            if saved is not None and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(saved)
