"""Experiment tracking: trainer callbacks that log a run to TensorBoard or MLflow.

``aekit train --log tensorboard`` (or ``train.log = ["tensorboard"]`` in a config) writes event
files into ``RUN/tensorboard/``: the losses per step and per epoch, the learning rate, a grid of
validation inputs above their reconstructions and, for generative image models, samples from the
prior after every epoch, and the resolved config as text. View them with
``tensorboard --logdir runs/``.

``--log mlflow`` logs the config as parameters, the epoch metrics, and at the end the whole run
directory as artifacts, to ``$MLFLOW_TRACKING_URI`` when set, else to a local ``./mlruns`` store
(experiment ``aekit``, run name = the run directory's name). View it with ``mlflow ui``.

Both are optional extras (``pip install "aekit[tensorboard]"`` / ``"aekit[mlflow]"``); asking for
one that is not installed is a one-line :class:`~aekit.errors.ConfigError`. Only rank 0 of a
distributed run logs (the trainer gets these callbacks on rank 0 only).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.data.dataset import ArrayDataset
from aekit.errors import ConfigError

TENSORBOARD_DIR = "tensorboard"
EXAMPLES = 8  # validation inputs shown with their reconstructions
SAMPLES = 16  # images drawn from the prior per epoch (generative image models)


def flat_params(config_dict: dict[str, Any]) -> dict[str, str]:
    """``{"model": {"latent_dim": 32}}`` -> ``{"model.latent_dim": "32"}`` (lists as JSON)."""
    out = {}
    for section, values in config_dict.items():
        for key, value in values.items():
            out[f"{section}.{key}"] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return out


def image_grid(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Rows of images (each (N, C, H, W) in [0, 1]) tiled into one (C, rows*H, N*W) array."""
    tiled = [np.concatenate(list(np.clip(r, 0, 1)), axis=-1) for r in rows]  # each (C, H, N*W)
    return np.concatenate(tiled, axis=-2)


class _Images:
    """The figures both trackers log: fixed validation inputs with their reconstructions, and samples."""

    def __init__(self, data: ArrayDataset | None) -> None:
        self.examples: torch.Tensor | None = None
        if data is not None and data.is_image:
            self.examples = data.take(torch.arange(min(EXAMPLES, len(data))))[0]  # (N, C, H, W), model space

    @torch.no_grad()
    def reconstructions(self, model: torch.nn.Module) -> np.ndarray | None:
        if self.examples is None:
            return None
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        x_hat = model.reconstruct(self.examples.to(device)).float().cpu()
        model.train(was_training)
        return image_grid([self.examples.numpy(), x_hat.reshape(self.examples.shape).numpy()])

    @torch.no_grad()
    def samples(self, model: torch.nn.Module, seed: int) -> np.ndarray | None:
        if self.examples is None or not model.generative:
            return None
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        generator = torch.Generator(device).manual_seed(seed)
        labels = (
            torch.arange(SAMPLES, device=device) % model.config.num_classes if model.conditional else None
        )
        images = model.sample(SAMPLES, generator=generator, y=labels).float().cpu().numpy()
        model.train(was_training)
        return image_grid([images[: SAMPLES // 2], images[SAMPLES // 2 :]])


class TensorBoardLogger:
    """Trainer callback: scalars per step and per epoch, images per epoch, the config as text.

    Args:
        log_dir: Where the event files go (``RUN/tensorboard``).
        config: The resolved run config as a dict (``config.json``'s content).
        data: Validation (or training) data; its first images are shown with their reconstructions.
    """

    def __init__(self, log_dir: str | Path, config: dict[str, Any], data: ArrayDataset | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                '--log tensorboard needs the tensorboard package: pip install "aekit[tensorboard]"'
            ) from None
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.config = config
        self.images = _Images(data)

    def on_fit_start(self, trainer) -> None:
        text = json.dumps(self.config, indent=2)
        self.writer.add_text("config", "```json\n" + text + "\n```", global_step=trainer.step)

    def on_batch_end(self, trainer, terms: dict[str, float]) -> None:
        for name, value in terms.items():
            self.writer.add_scalar(f"step/{name}", value, global_step=trainer.step)

    def on_epoch_end(self, trainer, record: dict[str, float]) -> None:
        epoch = int(record["epoch"])
        for name, value in record.items():
            if name != "epoch":
                self.writer.add_scalar(f"epoch/{name}", value, global_step=epoch)
        grid = self.images.reconstructions(trainer.model)
        if grid is not None:
            self.writer.add_image("reconstructions", grid, global_step=epoch, dataformats="CHW")
        samples = self.images.samples(trainer.model, trainer.config.seed)
        if samples is not None:
            self.writer.add_image("samples", samples, global_step=epoch, dataformats="CHW")
        self.writer.flush()

    def on_fit_end(self, trainer) -> None:
        self.writer.close()

    def finish(self, run_dir: Path) -> None:
        """Nothing to add once the run directory is complete: the event files are in it already."""


class MLflowLogger:
    """Trainer callback: the config as params, epoch metrics, and the run directory as artifacts.

    Args:
        run_dir: The run directory (its name becomes the MLflow run name; its files the artifacts).
        config: The resolved run config as a dict.
        tracking_uri: Where to log; default ``$MLFLOW_TRACKING_URI``, else ``./mlruns``.
        experiment: The MLflow experiment name.
    """

    def __init__(
        self,
        run_dir: str | Path,
        config: dict[str, Any],
        tracking_uri: str | None = None,
        experiment: str = "aekit",
    ) -> None:
        try:
            import mlflow
        except ImportError:
            raise ConfigError('--log mlflow needs the mlflow package: pip install "aekit[mlflow]"') from None
        self.mlflow = mlflow
        self.run_dir = Path(run_dir)
        self.config = config
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()
        if uri.startswith("file:"):  # MLflow 3 refuses its local file store unless told it is wanted
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.run_id: str | None = None

    def on_fit_start(self, trainer) -> None:
        run = self.client.create_run(self.experiment_id, run_name=self.run_dir.name)
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        params = [Param(k, v[:6000]) for k, v in flat_params(self.config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def on_epoch_end(self, trainer, record: dict[str, float]) -> None:
        from mlflow.entities import Metric

        epoch = int(record["epoch"])
        stamp = int(time.time() * 1000)
        metrics = [Metric(k, float(v), stamp, epoch) for k, v in record.items() if k != "epoch"]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, run_dir: Path) -> None:
        """Upload the finished run directory (weights, config, figures, report) and close the run."""
        if self.run_id is None:
            return
        self.client.log_artifacts(self.run_id, str(run_dir))
        self.client.set_terminated(self.run_id)


def require(names: Sequence[str]) -> None:
    """Fail before anything is written when a tracker in ``names`` is not installed.

    Raises:
        ConfigError: naming the extra to install.
    """
    import importlib.util

    for name in names:
        module = "tensorboard" if name == "tensorboard" else "mlflow"
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, or half-installed
            found = False
        if not found:
            raise ConfigError(f'--log {name} needs the {module} package: pip install "aekit[{name}]"')


def trackers(names: Sequence[str], run_dir: Path, config: dict[str, Any], data: ArrayDataset | None) -> list:
    """The tracking callbacks ``names`` asks for (``config.train.log``), for the run in ``run_dir``."""
    out: list[Any] = []
    for name in names:
        if name == "tensorboard":
            out.append(TensorBoardLogger(Path(run_dir) / TENSORBOARD_DIR, config, data))
        elif name == "mlflow":
            out.append(MLflowLogger(run_dir, config))
        else:
            raise ConfigError(f"unknown tracker {name!r} (expected tensorboard or mlflow)")
    return out


def finish(callbacks: Sequence[Any], run_dir: Path) -> None:
    """Tell the trackers among ``callbacks`` that the run directory is complete."""
    for callback in callbacks:
        if isinstance(callback, TensorBoardLogger | MLflowLogger):
            callback.finish(run_dir)
