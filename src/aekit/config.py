"""Settings: frozen dataclasses with a default for every field, presets, and their resolution.

Precedence is defaults < preset < config file (TOML or JSON) < command-line flags;
the resolved result is written to the run directory as ``config.json``, which is
itself a valid config file.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from aekit.data.images import parse_hw
from aekit.errors import ConfigError, DataError
from aekit.models.registry import get_spec, make_config


@dataclass(frozen=True)
class TrainConfig:
    """How to train; every model uses the same loop.

    Attributes:
        epochs: Passes over the training data.
        batch_size: Samples per optimizer step.
        lr: Learning rate.
        optimizer: ``adam``, ``adamw`` or ``sgd`` (momentum 0.9).
        weight_decay: L2 penalty (decoupled for adamw).
        schedule: ``constant``, ``cosine`` (to zero over the run), ``onecycle`` (linear warm-up over the
            first 15%, then cosine to zero) or ``plateau`` (halve when the validation loss stalls).
        grad_clip: Clip the gradient norm to this value; 0 turns it off.
        patience: Stop after this many epochs without a better validation loss (and keep the best
            weights); 0 turns early stopping off.
        val_fraction: Share of the training data held out for validation.
        seed: Seeds initialisation, the validation split and the batch order.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: Mixed precision on CUDA (ignored on the CPU).
        cpu_bf16: bfloat16 autocast when training on the CPU: about 2x faster on CPUs with AVX-512
            BF16 or AMX (measured in docs/benchmarks/photo_denoise.md, PSNR held), slower on CPUs
            without them; the weights and the optimizer stay float32. Off by default.
        compile_step: Compile the whole training step (forward, backward, Adam and, with ``cpu_bf16``,
            the weights' bfloat16 copy) into one graph with inductor, on the CPU (see
            :mod:`aekit.training.compiled_step`): a small model's step costs about half (measured in
            docs/benchmarks/models.md); the first step compiles (seconds to a minute). Falls back
            to the normal step, with a warning, where it does not apply. Off by default.
        nan_policy: ``stop`` at a non-finite loss (the last good checkpoint is kept) or ``skip`` the batch.
        log: Experiment trackers to log to: ``tensorboard`` (into ``RUN/tensorboard``), ``mlflow`` (to
            ``$MLFLOW_TRACKING_URI``, else ``./mlruns``); see :mod:`aekit.training.tracking`.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "constant"
    grad_clip: float = 0.0
    patience: int = 0
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    cpu_bf16: bool = False
    compile_step: bool = False
    nan_policy: str = "stop"
    log: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.lr > 0, "lr must be positive"),
            (self.optimizer in ("adam", "adamw", "sgd"), "optimizer must be adam, adamw or sgd"),
            (
                self.schedule in ("constant", "cosine", "onecycle", "plateau"),
                "schedule must be constant, cosine, onecycle or plateau",
            ),
            (0 <= self.val_fraction < 1, "val_fraction must be in [0, 1)"),
            (self.patience >= 0 and self.grad_clip >= 0, "patience and grad_clip must not be negative"),
            (self.nan_policy in ("stop", "skip"), "nan_policy must be stop or skip"),
            (
                set(self.log) <= {"tensorboard", "mlflow"},
                f"log must be tensorboard and/or mlflow, not {','.join(self.log)!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"train config: {message}")


@dataclass(frozen=True)
class DataConfig:
    """Which data: a dataset name, ``scheme:PATH`` or a path; ``limit`` keeps N samples (a seeded
    random subset, stratified by label); ``missing`` says what to do with a table's missing values
    (error, drop or impute); ``id_column`` names the column of a table that identifies its rows
    (None: a text column with a different value in every row, if any).

    Image folders (see :mod:`aekit.data.images`): ``channels`` 1 or 3 (0: what most images are);
    ``patch`` trains on random N x N crops (fully convolutional models, images of any size);
    ``resize`` / ``center_crop`` ("HxW") make every image one size; ``skip_bad`` leaves out
    unreadable files (counted) instead of stopping at the first."""

    source: str = "mnist-5k"
    limit: int | None = None
    missing: str = "error"
    id_column: str | None = None
    channels: int = 0
    patch: int = 0
    resize: str = ""
    center_crop: str = ""
    skip_bad: bool = False

    def __post_init__(self) -> None:
        if self.missing not in ("error", "drop", "impute"):
            raise ConfigError(f"data config: missing must be error, drop or impute, not {self.missing!r}")
        if self.channels not in (0, 1, 3):
            raise ConfigError(f"data config: channels must be 1 or 3 (0: the majority), not {self.channels}")
        if self.patch < 0:
            raise ConfigError(f"data config: patch must be a size in pixels, not {self.patch}")
        if sum(bool(v) for v in (self.patch, self.resize, self.center_crop)) > 1:
            raise ConfigError("data config: choose one of patch, resize and center_crop")
        for name in ("resize", "center_crop"):
            if getattr(self, name):
                try:
                    parse_hw(getattr(self, name), name)
                except DataError as e:
                    raise ConfigError(f"data config: {e}") from None


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run: the model (its name and config), the data and the training."""

    model: str = "dense"
    model_config: Any = None
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": {"name": self.model, **_plain(dataclasses.asdict(self.model_config))},
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
        }


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass(frozen=True)
class Preset:
    """A named starting point: a model and its settings, plus training settings."""

    summary: str
    model: str
    model_config: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "seed": Preset(
        "the classic MNIST autoencoder: 784-128-64-32 with ReLU, sigmoid output, Adam lr 1e-3, MSE",
        model="dense",
        model_config={
            "hidden": (128, 64),
            "latent_dim": 32,
            "activation": "relu",
            "latent_activation": "relu",
            "output_activation": "sigmoid",
            "loss": "mse",
        },
        train={"optimizer": "adam", "lr": 1e-3, "batch_size": 64},
    ),
}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON config file shaped like a run's ``config.json``.

    A run's own ``config.json`` is a valid config file: its record of the data it trained on
    (``dataset``), of the aekit version (``aekit``) and the model fields that data decided (input shape,
    table categories, number of classes) are left out: the new run's data decides those.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror or e})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'} ({e})") from None
    if isinstance(data, dict) and "dataset" in data and path.suffix == ".json":  # a run's config.json
        data = {k: v for k, v in data.items() if k not in RUN_RECORDS}
        if isinstance(data.get("model"), dict):
            data["model"] = {k: v for k, v in data["model"].items() if k not in DATA_DECIDES}
    if not isinstance(data, dict) or not set(data) <= {"model", "data", "train"}:
        raise ConfigError(f"{path}: expected tables 'model', 'data' and 'train' only")
    return data


RUN_RECORDS = ("dataset", "aekit")  # what a run's config.json records beside its settings
DATA_DECIDES = ("input_shape", "categories", "num_classes")  # model fields the new run's data sets
TRAIN_SIZE_FIELDS = ("mss_dataset_size",)  # model fields the number of training samples fills unless set


def resolve(
    layers: list[dict[str, Any]],
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    data_fields: dict[str, Any] | None = None,
    train_size: int | None = None,
) -> RunConfig:
    """Merge layers of settings, later ones winning, into a validated :class:`RunConfig`.

    Each layer looks like ``config.json``: ``{"model": {"name": ..., field: value}, "data": {...},
    "train": {...}}``. ``input_shape``, when given, is the data's and sets the model's;
    ``num_classes`` fills the model's field of that name (conditional models) unless set, and
    ``data_fields`` other fields the data decides (a table's ``categories``) where the model has them.
    ``train_size``, the number of samples a new run trains on, fills the model's
    :data:`TRAIN_SIZE_FIELDS` that no layer sets (a value of 0 set in a layer stays 0).
    """
    merged: dict[str, dict[str, Any]] = {"model": {}, "data": {}, "train": {}}
    for layer in layers:
        for section, values in layer.items():
            if section not in merged:
                raise ConfigError(f"unknown config section {section!r} (expected model, data, train)")
            if not isinstance(values, dict):
                raise ConfigError(f"config section {section!r} must be a table of settings")
            merged[section].update({k: v for k, v in values.items() if v is not None})
    model_values = dict(merged["model"])
    name = model_values.pop("name", "dense")
    spec = get_spec(name)
    if input_shape is not None:
        model_values["input_shape"] = tuple(input_shape)
    names = {f.name for f in dataclasses.fields(spec.config_cls)}
    if num_classes is not None and "num_classes" in names and not model_values.get("num_classes"):
        model_values["num_classes"] = num_classes
    for key, value in (data_fields or {}).items():
        if key in names:
            model_values[key] = value
    for key in TRAIN_SIZE_FIELDS:
        if train_size is not None and key in names and key not in model_values:
            model_values[key] = train_size
    return RunConfig(
        model=name,
        model_config=make_config(spec.config_cls, model_values, where=f"model {name!r}"),
        data=make_config(DataConfig, merged["data"], where="data"),
        train=make_config(TrainConfig, merged["train"], where="train"),
    )


def preset_layer(name: str) -> dict[str, Any]:
    """A preset as a config layer."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    p = PRESETS[name]
    return {"model": {"name": p.model, **p.model_config}, "train": dict(p.train)}
