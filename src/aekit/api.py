"""The Python API the CLI is a shell over: :func:`train`, :func:`load` and :class:`Run`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aekit.config import RunConfig, preset_layer, read_config_file, resolve
from aekit.data.batches import Batches
from aekit.data.dataset import ArrayDataset, Scaling
from aekit.data.sources import load_dataset
from aekit.data.tabular import TableSchema
from aekit.errors import ConfigError, DataError
from aekit.evaluation.metrics import summarize
from aekit.models.registry import build_model
from aekit.report.figures import image_grid, loss_curves, reconstruction_grid, save_figure
from aekit.training import checkpoint, distributed
from aekit.training.callbacks import Checkpointer, EarlyStopping, MetricsLog, ProgressBar
from aekit.training.trainer import Trainer, resolve_device


@dataclass
class Run:
    """A trained model with its config and the description of its data.

    Attributes:
        config: The resolved run config.
        dataset: What the model was trained on: shape, scaling, classes.
        model: The model, in eval mode.
        path: The run directory, when there is one.
        history: One dict of metrics per epoch.
    """

    config: RunConfig
    dataset: dict[str, Any]
    model: nn.Module
    path: Path | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def load_data(
        self, name: str, split: str = "test", limit: int | None = None, missing: str | None = None
    ) -> ArrayDataset:
        """Load data for this model: tables are encoded with the columns, scales and categories
        the model was trained on (a category it never saw is an error naming the cell).
        ``missing`` overrides the run's rule for missing table values (``error``, ``drop``, ``impute``)."""
        schema = self.dataset.get("schema")
        return load_dataset(
            name,
            split,
            limit=limit,
            missing=missing or self.config.data.missing,
            schema=TableSchema.from_dict(schema) if schema else None,
        )

    def prepare(self, data: ArrayDataset | np.ndarray) -> ArrayDataset:
        """Check that ``data`` fits the model (reshaping flat images) and scale tables as in training.

        Raises:
            DataError: samples whose size does not match the model's input.
        """
        if not isinstance(data, ArrayDataset):
            from aekit.data.files import from_array

            data = from_array(np.asarray(data), "array")
        want = tuple(self.model.input_shape)
        if data.shape != want:
            if int(np.prod(data.shape)) != int(np.prod(want)):
                raise DataError(
                    f"{data.name}: samples of shape {data.shape} do not fit this model, which takes {want}"
                )
            data = dataclasses.replace(data, x=data.raw(torch.arange(len(data))).reshape(len(data), *want))
        schema = self.dataset.get("schema")
        if (
            schema
            and data.schema is not None
            and data.schema.layout() != TableSchema.from_dict(schema).layout()
        ):
            raise DataError(
                f"{data.name}: its columns or categories differ from the training table's; read it with "
                "Run.load_data (aekit does for the CLI) so that it is encoded as in training"
            )
        if len(want) == 1 and self.dataset.get("scaling"):  # tables: the scaling learned in training
            data = dataclasses.replace(data, scaling=Scaling.from_dict(self.dataset["scaling"]))
        return data

    @torch.no_grad()
    def _map(
        self, data: ArrayDataset | np.ndarray, fn, batch_size: int, progress: bool | str = False
    ) -> np.ndarray:
        """``fn(x, y)`` over ``data`` in batches; ``progress`` (True or a label) shows a bar."""
        from aekit.progress import track

        self.model.eval()
        data = self.prepare(data)
        batches = Batches(data, batch_size, device=self.device)
        label = progress if isinstance(progress, str) else "batches"
        out = [fn(b.x, b.y).float().cpu() for b in track(batches, label, enabled=bool(progress))]
        return torch.cat(out).numpy()

    def reconstruct(
        self, data: ArrayDataset | np.ndarray, batch_size: int = 1024, progress: bool | str = False
    ) -> np.ndarray:
        """Reconstructions in model space (pixels in [0, 1]), shape (N, *input_shape)."""
        return self._map(data, self.model.reconstruct, batch_size, progress)

    def encode(
        self, data: ArrayDataset | np.ndarray, batch_size: int = 1024, progress: bool | str = False
    ) -> np.ndarray:
        """Latent codes, shape (N, latent_dim)."""
        return self._map(data, self.model.encode, batch_size, progress)

    def evaluate(self, data: ArrayDataset, batch_size: int = 1024, iw_samples: int = 0) -> dict[str, float]:
        """Test MSE, PSNR (dB) and SSIM (images) of the reconstructions of ``data``.

        For models with a likelihood (the VAE family) also the ELBO, and with ``iw_samples`` > 0
        the importance-weighted estimate of the negative log-likelihood, both in nats per sample.
        """
        data = self.prepare(data)
        x = data.take(torch.arange(len(data)))[0]
        x_hat = torch.from_numpy(self.reconstruct(data, batch_size))
        metrics: dict[str, float] = {"n": len(data), **summarize(x, x_hat)}
        if hasattr(self.model, "nll"):
            with torch.no_grad():
                torch.manual_seed(self.config.train.seed)  # the estimates sample: fix them
                batches = list(Batches(data, batch_size, device=self.device))
                elbo = sum(float(self.model.loss(b)["elbo"]) * len(b) for b in batches)
                metrics["elbo"] = elbo / len(data)
                if iw_samples > 0:
                    nll = sum(float(self.model.nll(b.x, b.y, k=iw_samples).sum()) for b in batches)
                    metrics["nll"] = nll / len(data)
        return metrics


def load(run_dir: str | Path, device: str = "cpu") -> Run:
    """Load a run directory without executing any stored code."""
    config, dataset, model = checkpoint.load_run(run_dir, resolve_device(device))
    history_path = Path(run_dir) / checkpoint.METRICS
    history = []
    if history_path.is_file():
        import json

        history = [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]
    return Run(config, dataset, model, Path(run_dir), history)


def train(
    data: str = "mnist-5k",
    model: str | None = None,
    *,
    preset: str | None = None,
    out: str | Path | None = None,
    config_file: str | Path | None = None,
    model_options: dict[str, Any] | None = None,
    limit: int | None = None,
    progress: bool = True,
    **train_options: Any,
) -> Run:
    """Train a model and write its run directory.

    Args:
        data: A dataset name (``aekit datasets``), ``scheme:PATH`` or a path.
        model: A registered model name (``aekit models``); the preset's or ``dense`` by default.
        preset: A named starting point, e.g. ``"seed"`` for the classic 784-128-64-32 model.
        out: The run directory to create; it must not exist yet.
        config_file: A TOML/JSON file of settings (between the preset and these arguments).
        model_options: Model settings, e.g. ``{"latent_dim": 16}``.
        limit: Train on the first ``limit`` samples only.
        progress: Show a progress bar and print a line per epoch.
        **train_options: Training settings (:class:`aekit.config.TrainConfig`), e.g. ``epochs=5``.

    Example:
        >>> run = aekit.train("fashion-mnist", preset="seed", epochs=5, out="runs/seed")
    """
    layers: list[dict[str, Any]] = []
    if preset:
        layers.append(preset_layer(preset))
    if config_file:
        layers.append(read_config_file(config_file))
    layers.append(
        {
            "model": {"name": model, **(model_options or {})},
            "data": {"source": data, "limit": limit},
            "train": train_options,
        }
    )
    return train_from_layers(layers, out=out, progress=progress)


def data_fields(data: ArrayDataset) -> dict[str, Any]:
    """Model settings the data decides beyond its shape: a table's one-hot ``categories``."""
    return {"categories": data.schema.blocks} if data.schema is not None else {}


def _prepare_out(out: str | Path | None, config: RunConfig) -> Path:
    if out is None:
        import time

        out = Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: already exists; choose another --out, or continue it with --resume {out}")
    out.mkdir(parents=True, exist_ok=True)
    return out


def train_from_layers(
    layers: list[dict[str, Any]], *, out: str | Path | None = None, progress: bool = True
) -> Run:
    """Resolve config layers, load the data, train, and write the run directory."""
    config = resolve(layers)
    distributed.setup(config.train.device)  # under torchrun: join the process group
    data = load_dataset(config.data.source, "train", limit=config.data.limit, missing=config.data.missing)
    if (
        data.schema is not None
        and data.schema.blocks
        and not any(layer.get("model", {}).get("name") for layer in layers)
    ):
        layers = [{"model": {"name": "tabular"}}, *layers]  # categorical columns: the model made for them
    config = resolve(
        layers,
        input_shape=data.shape,
        num_classes=len(data.classes) if data.classes else None,
        data_fields=data_fields(data),
    )
    run_dir = None
    if distributed.is_main():  # only rank 0 writes; the others learn its directory
        run_dir = _prepare_out(out, config)
        checkpoint.write_config(run_dir, config, data.describe())
    run_dir = Path(distributed.from_main(str(run_dir)))
    torch.manual_seed(config.train.seed)
    model = build_model(config.model, config.model_config)
    return _fit(run_dir, config, data, model, state=None, progress=progress)


def resume(run_dir: str | Path, *, epochs: int | None = None, progress: bool = True) -> Run:
    """Continue a run from its last checkpoint (optimizer, schedule, RNG and data order included).

    Args:
        run_dir: A run directory written by :func:`train`.
        epochs: A new total number of epochs (to extend a finished run).
    """
    run_dir = Path(run_dir)
    raw = checkpoint.read_config(run_dir)
    state = checkpoint.load_checkpoint(run_dir)
    layers = [{k: raw[k] for k in ("model", "data", "train") if k in raw}]
    if epochs is not None:
        layers.append({"train": {"epochs": epochs}})
    config = resolve(layers)
    distributed.setup(config.train.device)
    schema = raw.get("dataset", {}).get("schema")
    data = load_dataset(
        config.data.source,
        "train",
        limit=config.data.limit,
        missing=config.data.missing,
        schema=TableSchema.from_dict(schema) if schema else None,
    )
    if list(data.shape) != list(raw.get("dataset", {}).get("shape", data.shape)):
        raise DataError(
            f"{config.data.source}: the data's shape {data.shape} is not the one this run trained on"
        )
    if epochs is not None and distributed.is_main():
        checkpoint.write_config(run_dir, config, raw.get("dataset", data.describe()))
    model = build_model(config.model, config.model_config)
    return _fit(run_dir, config, data, model, state=state, progress=progress)


def _fit(
    run_dir: Path, config: RunConfig, data: ArrayDataset, model: nn.Module, *, state, progress: bool
) -> Run:
    train_set, val_set = data.split(config.train.val_fraction, seed=config.train.seed)
    callbacks: list[Any] = []
    if config.train.patience > 0:
        callbacks.append(EarlyStopping(config.train.patience))
    if distributed.is_main():  # under torchrun only rank 0 writes checkpoints, logs and figures
        callbacks += [Checkpointer(run_dir), MetricsLog(run_dir), ProgressBar(progress)]
    trainer = Trainer(model, config.train, callbacks)
    if state is not None:
        trainer.load_state_dict(state)
    trainer.fit(train_set, val_set)
    run = Run(config, data.describe(), trainer.model.eval(), run_dir, trainer.history)
    if not distributed.is_main():
        return run
    from aekit.progress import status

    status(f"writing figures to {run_dir}", enabled=progress)
    shown = (val_set or train_set).subset(torch.arange(min(10, len(val_set or train_set))))
    originals = shown.take(torch.arange(len(shown)))[0].numpy()
    save_figure(reconstruction_grid(originals, run.reconstruct(shown)), run_dir / "reconstructions.png")
    if run.history:
        save_figure(loss_curves(run.history), run_dir / "loss_curves.png")
    if getattr(run.model, "generative", False) and data.is_image:
        with torch.no_grad():
            generator = torch.Generator(run.device).manual_seed(config.train.seed)
            labels = (
                torch.arange(64, device=run.device) % run.model.config.num_classes
                if run.model.conditional
                else None
            )
            samples = run.model.sample(64, generator=generator, y=labels).float().cpu().numpy()
        save_figure(image_grid(samples, nrow=8), run_dir / "samples.png")
    from aekit.report.html import REPORT, write_report

    status(f"writing {run_dir / REPORT}", enabled=progress)
    write_report([run], run_dir / REPORT, [val_set])
    return run
