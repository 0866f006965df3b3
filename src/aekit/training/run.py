"""The one way to train: :func:`configure` settings for some data, :func:`fit` a model, get a :class:`Run`.

``aekit.train`` / ``aekit.resume``, ``AnomalyDetector.fit``, ``AutoencoderTransformer.fit`` and every
CLI command go through :func:`fit`; they differ only in the settings and the callbacks they pass.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aekit.config import RunConfig, resolve
from aekit.data.batches import Batches
from aekit.data.dataset import ArrayDataset, DataInfo, held_out
from aekit.data.patches import PatchDataset
from aekit.errors import DataError
from aekit.evaluation.metrics import summarize
from aekit.models.fcn import check_training_size, geometry, whole_images
from aekit.models.registry import build_model, get_spec
from aekit.training import checkpoint
from aekit.training.callbacks import EarlyStopping
from aekit.training.trainer import Trainer, resolve_device


@dataclass
class Run:
    """A trained model with its config and the description of its data.

    Attributes:
        config: The resolved run config.
        dataset: What the model was trained on: shape, scaling, classes, a table's schema.
        model: The model, in eval mode.
        path: The run directory, when there is one.
        history: One dict of metrics per epoch.

    Example:
        >>> import aekit
        >>> run = aekit.train("mnist-5k", model_options={"latent_dim": 8}, limit=200, epochs=1,
        ...                   out="runs/run", progress=False)
        >>> test = aekit.load_dataset("mnist-5k", "test", limit=10)
        >>> run.encode(test).shape, run.reconstruct(test).shape
        ((10, 8), (10, 1, 28, 28))
        >>> sorted(run.evaluate(test))
        ['mse', 'n', 'psnr', 'ssim']
    """

    config: RunConfig
    dataset: DataInfo
    model: nn.Module
    path: Path | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def schema(self):
        """The training table's :class:`~aekit.data.tabular.TableSchema`, or None for other data."""
        if self.dataset.schema is None:
            return None
        from aekit.data.tabular import TableSchema

        return TableSchema.from_dict(self.dataset.schema)

    def load_data(
        self, name: str, split: str = "test", limit: int | None = None, missing: str | None = None
    ) -> ArrayDataset:
        """Load data for this model: tables are encoded with the columns, scales and categories
        the model was trained on (a category it never saw is an error naming the cell).
        ``missing`` overrides the run's rule for missing table values (``error``, ``drop``, ``impute``)."""
        from aekit.data.sources import load_dataset

        missing = missing or self.config.data.missing
        return load_dataset(name, split, limit=limit, missing=missing, schema=self.schema())

    def prepare(self, data: ArrayDataset | np.ndarray) -> ArrayDataset:
        """Check that ``data`` fits the model (reshaping flat images) and scale tables as in training.

        Raises:
            DataError: samples whose size does not match the model's input.
        """
        if not isinstance(data, ArrayDataset | PatchDataset):
            from aekit.data.files import from_array

            data = from_array(np.asarray(data), "array")
        want = tuple(self.model.input_shape)
        if data.is_image and len(want) == 3 and data.shape[0] != want[0]:  # grey <-> RGB, said on stderr
            from aekit.data.images import convert_channels

            data = convert_channels(data, want[0])
        if self.model.any_size and data.is_image:  # any size: only the channels must fit
            want = data.shape
        if data.shape != want:
            if int(np.prod(data.shape)) != int(np.prod(want)):
                raise DataError(
                    f"{data.name}: samples of shape {data.shape} do not fit this model, which takes {want}"
                )
            data = dataclasses.replace(data, x=data.raw(torch.arange(len(data))).reshape(len(data), *want))
        schema = self.schema()
        if schema is not None and data.schema is not None and data.schema.layout() != schema.layout():
            raise DataError(
                f"{data.name}: its columns or categories differ from the training table's; read it with "
                "Run.load_data (aekit does for the CLI) so that it is encoded as in training"
            )
        if len(want) == 1 and self.dataset.is_table:  # tables: the scaling learned in training
            data = dataclasses.replace(data, scaling=self.dataset.scaling)
        return data

    @torch.no_grad()
    def _map(
        self, data: ArrayDataset | np.ndarray, fn: Callable, batch_size: int, progress: bool | str = False
    ) -> np.ndarray:
        """``fn(x, y)`` over ``data`` in batches; ``progress`` (True or a label) shows a bar."""
        from aekit.progress import track

        self.model.eval()
        data = self.prepare(data)
        if self.model.any_size:  # any size: padded to the stride (outputs cropped back)
            fn = partial(whole_images, fn, geometry(self.model)[0], crop=fn == self.model.reconstruct)
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
        """Latent codes, shape (N, *code_shape)."""
        return self._map(data, self.model.encode, batch_size, progress)

    def evaluate(self, data: ArrayDataset, batch_size: int = 1024, iw_samples: int = 0) -> dict[str, float]:
        """Test MSE, PSNR (dB) and SSIM (images) of the reconstructions of ``data``; for tables
        instead the per-column errors of :func:`aekit.evaluation.tables.table_metrics`.

        For models with a likelihood (the VAE family) also the ELBO, and with ``iw_samples`` > 0
        the importance-weighted estimate of the negative log-likelihood, both in nats per sample.
        """
        data = self.prepare(data)
        x = data.take(torch.arange(len(data)))[0]
        x_hat = torch.from_numpy(self.reconstruct(data, batch_size))
        schema = self.schema()
        if schema is not None:  # tables: per-column errors and category accuracy, in the table's terms
            from aekit.evaluation.tables import table_metrics

            quality = table_metrics(schema, x.numpy(), x_hat.numpy())
        else:
            quality = summarize(x, x_hat)
        metrics: dict[str, float] = {"n": len(data), **quality}
        if self.model.has_likelihood:
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
    """Load a run directory without executing any stored code.

    Example:
        >>> import aekit
        >>> _ = aekit.train("mnist-5k", limit=200, epochs=1, out="runs/small", progress=False)
        >>> run = aekit.load("runs/small")  # on the CPU, whatever trained it
        >>> run.config.model, run.model.training, len(run.history)
        ('dense', False, 1)
    """
    config, dataset, model = checkpoint.load_run(run_dir, resolve_device(device))
    history_path = Path(run_dir) / checkpoint.METRICS
    history = []
    if history_path.is_file():
        history = [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]
    return Run(config, DataInfo.from_dict(dataset), model, Path(run_dir), history)


def default_model(data: ArrayDataset, images: str | None = None) -> str | None:
    """The model a data set gets when no layer names one: ``tabular`` for a table with
    categorical columns, ``images`` for images when given; None leaves the config's default."""
    if data.schema is not None and data.schema.blocks:
        return "tabular"
    if data.is_image and images:
        return images
    return None


def patches_make_fcn(layers: list[dict[str, Any]]) -> bool:
    """Whether training on patches makes the model fully convolutional (``model.arch=fcn``): the
    data config asks for ``patch``, no layer chooses ``model.arch``, and the model has a fully
    convolutional form. Patches exist to apply a model to whole images of any size afterwards,
    which only a fully convolutional model can; one of the patch's size stays a choice away."""
    if any("arch" in (layer.get("model") or {}) for layer in layers):
        return False
    config = resolve(layers)
    return bool(config.data.patch) and get_spec(config.model).cls.fully_convolutional


def configure(layers: list[dict[str, Any]], data: ArrayDataset, *, images: str | None = None) -> RunConfig:
    """Resolve settings for ``data``: its shape, its classes, what a table decides, the number of
    samples trained on (after the validation split; e.g. the beta-TCVAE's ``mss_dataset_size``),
    the model :func:`default_model` picks when no layer names one, and ``arch=fcn`` for training on
    patches (:func:`patches_make_fcn`)."""
    if not any((layer.get("model") or {}).get("name") for layer in layers):
        name = default_model(data, images)
        if name is not None:
            layers = [{"model": {"name": name}}, *layers]
    if patches_make_fcn(layers):
        layers = [{"model": {"arch": "fcn"}}, *layers]
    decided: dict[str, Any] = {
        "input_shape": data.shape,
        "num_classes": len(data.classes) if data.classes else None,
        "data_fields": {"categories": data.schema.blocks} if data.schema is not None else {},
    }
    held_out = validation_size(len(data), resolve(layers, **decided).train.val_fraction)
    return resolve(layers, **decided, train_size=len(data) - held_out)


def validation_split(data: ArrayDataset, config: RunConfig) -> tuple[ArrayDataset, ArrayDataset | None]:
    """The training and validation sets :func:`fit` uses (the same seed gives the same split).

    Data too small to hold out anything (a single image) trains without validation."""
    fraction = config.train.val_fraction
    if fraction > 0 and validation_size(len(data), fraction) == 0:
        return data, None
    return data.split(fraction, seed=config.train.seed)


def validation_size(n: int, fraction: float) -> int:
    """How many of ``n`` samples :func:`validation_split` holds out for ``fraction`` (0: none)."""
    held = held_out(n, fraction)
    return held if n - held >= 1 else 0


def fit(
    data: ArrayDataset,
    config: RunConfig,
    callbacks: Sequence[Any] = (),
    *,
    state: dict[str, Any] | None = None,
    path: Path | None = None,
) -> Run:
    """Build the model ``config`` names, train it on ``data`` and return the :class:`Run`.

    Args:
        data: The training data; ``config.train.val_fraction`` of it is held out for validation.
        config: The resolved settings (see :func:`configure`).
        callbacks: Progress, logs, checkpoints... (see :mod:`aekit.training.callbacks`); early
            stopping is added when ``config.train.patience`` > 0.
        state: A checkpoint's trainer state, to continue a run exactly where it stopped.
        path: The run directory the callbacks write to, recorded in the returned Run.
    """
    train_set, val_set = validation_split(data, config)
    torch.manual_seed(config.train.seed)
    model = build_model(config.model, config.model_config)
    check_training_size(model, data.shape)
    if config.train.patience > 0:
        callbacks = [EarlyStopping(config.train.patience), *callbacks]
    trainer = Trainer(model, config.train, callbacks)
    if state is not None:
        trainer.load_state_dict(state)
    trainer.fit(train_set, val_set)
    return Run(config, data.describe(), trainer.model.eval(), path, trainer.history)
