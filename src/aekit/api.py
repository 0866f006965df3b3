"""The Python API the CLI is a shell over: :func:`train`, :func:`resume` and :func:`load`.

Training itself is :func:`aekit.training.run.fit`; this module adds what a run directory needs:
the folder, checkpoints, the metrics log, progress, and the figures and report at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aekit.config import RunConfig, preset_layer, read_config_file, resolve
from aekit.data.dataset import ArrayDataset, DataInfo
from aekit.data.images import load_image_options
from aekit.data.sources import load_dataset
from aekit.data.tabular import TableSchema
from aekit.errors import ConfigError, DataError
from aekit.models.fcn import check_training_size
from aekit.models.registry import build_model
from aekit.training import checkpoint, distributed, tracking
from aekit.training.callbacks import Checkpointer, MetricsLog, ProgressBar
from aekit.training.run import Run, configure, fit, load, validation_split
from aekit.training.trainer import resolve_device

__all__ = ["Run", "load", "resume", "train", "train_from_layers"]


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
        limit: Train on ``limit`` samples only (a seeded random subset, stratified by label).
        progress: Show a progress bar and print a line per epoch.
        **train_options: Training settings (:class:`aekit.config.TrainConfig`), e.g. ``epochs=5``.

    Example:
        >>> import aekit
        >>> run = aekit.train("mnist-5k", preset="seed", limit=500, epochs=1, out="runs/seed", progress=False)
        >>> sorted(p.name for p in run.path.iterdir())
        ['checkpoint.pt', 'config.json', 'loss_curves.png', 'metrics.jsonl', 'model.safetensors', ...]
        >>> run.encode(aekit.load_dataset("mnist-5k", "test", limit=10)).shape
        (10, 32)
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


def _prepare_out(out: str | Path | None, config: RunConfig) -> Path:
    """The run directory, created; one left by a run that never finished an epoch (only
    ``config.json``, no weights) is started again in place."""
    if out is None:
        import time

        out = Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        names = {p.name for p in out.iterdir()}
        unfinished = names <= {checkpoint.CONFIG, checkpoint.METRICS}
        if not unfinished:
            raise ConfigError(
                f"{out}: already exists; choose another --out, or continue it with --resume {out}"
            )
        for name in names:  # a failed start: nothing trained is lost
            (out / name).unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def train_from_layers(
    layers: list[dict[str, Any]], *, out: str | Path | None = None, progress: bool = True
) -> Run:
    """Resolve config layers, load the data, train, and write the run directory.

    Everything that can fail before training (settings, device, data, the model's shape) is
    checked before the run directory is created, so a failed start leaves nothing behind.
    """
    config = resolve(layers)
    resolve_device(config.train.device)  # e.g. --device cuda without a GPU: fail before any file exists
    distributed.setup(config.train.device)  # under torchrun: join the process group
    data = _training_data(config, progress)
    config = configure(layers, data)
    model = build_model(config.model, config.model_config)  # sizes that do not fit fail here, not after mkdir
    check_training_size(model, data.shape)
    run_dir = None
    if distributed.is_main():  # only rank 0 writes; the others learn its directory
        tracking.require(config.train.log)
        run_dir = _prepare_out(out, config)
        checkpoint.write_config(run_dir, config, data.describe())
    run_dir = Path(distributed.from_main(str(run_dir)))
    return _fit(run_dir, config, data, state=None, progress=progress)


def resume(run_dir: str | Path, *, epochs: int | None = None, progress: bool = True) -> Run:
    """Continue a run from its last checkpoint (optimizer, schedule, RNG and data order included).

    Args:
        run_dir: A run directory written by :func:`train`.
        epochs: A new total number of epochs (to extend a finished run).

    Example:
        >>> import aekit
        >>> run = aekit.train("mnist-5k", limit=200, epochs=1, out="runs/short", progress=False)
        >>> run = aekit.resume("runs/short", epochs=2, progress=False)  # one more epoch
        >>> len(run.history), run.history[-1]["epoch"]
        (2, 2)
    """
    run_dir = Path(run_dir)
    raw = checkpoint.read_config(run_dir)
    state = checkpoint.load_checkpoint(run_dir)
    layers = [{k: raw[k] for k in ("model", "data", "train") if k in raw}]
    if epochs is not None:
        layers.append({"train": {"epochs": epochs}})
    config = resolve(layers)
    distributed.setup(config.train.device)
    recorded = DataInfo.from_dict(raw.get("dataset"))
    data = _training_data(
        config, progress, TableSchema.from_dict(recorded.schema) if recorded.schema else None
    )
    if recorded.shape and data.shape != recorded.shape:
        raise DataError(
            f"{config.data.source}: the data's shape {data.shape} is not the one this run trained on"
        )
    if epochs is not None and distributed.is_main():
        checkpoint.write_config(run_dir, config, raw.get("dataset") or data.describe())
    return _fit(run_dir, config, data, state=state, progress=progress)


def _training_data(config: RunConfig, progress: bool, schema: TableSchema | None = None) -> ArrayDataset:
    """The training data the config names (image folders with their options); a table is encoded
    with ``schema`` when given (resume), else its encoding is learned."""
    table = {"schema": schema} if schema is not None else {"id_column": config.data.id_column}
    return load_image_options(config.data, progress) or load_dataset(
        config.data.source, "train", limit=config.data.limit, missing=config.data.missing, **table
    )


def _fit(run_dir: Path, config: RunConfig, data: ArrayDataset, *, state, progress: bool) -> Run:
    if not distributed.is_main():  # under torchrun only rank 0 writes checkpoints, logs and figures
        return fit(data, config, state=state, path=run_dir)
    train_set, val_set = validation_split(data, config)  # the split fit makes: what the figures show
    shown = val_set if val_set is not None else train_set
    callbacks: list[Any] = [Checkpointer(run_dir), MetricsLog(run_dir), ProgressBar(progress)]
    callbacks += tracking.trackers(config.train.log, run_dir, config.to_dict(), shown)
    run = fit(data, config, callbacks, state=state, path=run_dir)
    _write_artifacts(run, shown, progress)
    tracking.finish(callbacks, run_dir)  # after the figures and report: MLflow uploads them too
    return run


def _write_artifacts(run: Run, shown: ArrayDataset, progress: bool = False) -> None:
    """The figures and report.html of a finished run, from ``shown`` (its held-out data, or the
    training data when there is none), computed once (:func:`aekit.report.artifacts.write_run_files`)."""
    from aekit.progress import status
    from aekit.report.artifacts import write_run_files

    log = status if progress else None  # "writing ... report.html ...": what the last seconds are for
    write_run_files(run, shown, log=log)
