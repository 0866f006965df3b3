"""Run directories: ``config.json`` + ``model.safetensors`` (+ ``checkpoint.pt`` to resume).

Nothing here executes stored code: weights are safetensors; the resume state is
read with ``torch.load(weights_only=True)``, which refuses pickled objects; the
config names a model that must be in the registry. Every file is written atomically.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from aekit._version import __version__
from aekit.config import RunConfig, resolve
from aekit.data.dataset import DataInfo
from aekit.errors import AekitError, CheckpointError
from aekit.fileio import atomic_path, atomic_write_json
from aekit.models.registry import MODELS, build_model

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


def write_config(run_dir: Path, config: RunConfig, dataset: DataInfo | dict[str, Any]) -> Path:
    """Write the resolved config and a description of the training data (shape, scaling, classes)."""
    described = dataset.to_dict() if isinstance(dataset, DataInfo) else dataset
    record = {**config.to_dict(), "dataset": described, "aekit": __version__}
    return atomic_write_json(run_dir / CONFIG, record)


def save_weights(run_dir: Path, model: nn.Module) -> Path:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(run_dir / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"model": type(model).model_name, "aekit": __version__})
    return run_dir / WEIGHTS


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    """The trainer's full state, for ``--resume``; one atomic file, so weights and optimizer agree."""
    with atomic_path(run_dir / CHECKPOINT) as tmp:
        torch.save(state, tmp)
    return run_dir / CHECKPOINT


def load_checkpoint(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no checkpoint to resume from (the run stopped before its first epoch ended); "
            f"start it again with the same train command and --out {Path(run_dir)}"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused: it holds objects other than tensors and plain values ({e})"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({e})") from None


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The raw ``config.json`` of a run, checked to be a JSON object."""
    path = Path(run_dir) / CONFIG
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"{run_dir}: not a run directory")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (is {run_dir} a run directory?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise CheckpointError(f"{path}: not an aekit run config (no 'model' table)")
    name = data["model"].get("name")
    spec = MODELS.get(name) if isinstance(name, str) else None  # a bad name is refused by load_run
    if spec is not None:  # fields added to a model since: the values its older runs were trained with
        data["model"] = {**getattr(spec.config_cls, "SAVED_WITHOUT", {}), **data["model"]}
    return data


def load_run(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[RunConfig, dict[str, Any], nn.Module]:
    """Rebuild a run's model from its config alone and load its weights.

    Returns:
        The run config, the description of its training data, and the model in eval mode.

    Raises:
        CheckpointError: missing or corrupt files, an unknown model, or weights that do not fit.
    """
    run_dir = Path(run_dir)
    raw = read_config(run_dir)
    try:
        config = resolve([{k: raw[k] for k in ("model", "data", "train") if k in raw}])
        model = build_model(config.model, config.model_config)
    except AekitError as e:
        raise CheckpointError(f"{run_dir / CONFIG}: {e}") from None
    path = run_dir / WEIGHTS
    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt weights file ({e})") from None
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or extra or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}"
            for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
            if keys
        )
        raise CheckpointError(f"{path}: weights do not fit the {config.model!r} model in {CONFIG} ({detail})")
    model.load_state_dict(tensors)
    return config, raw.get("dataset", {}), model.to(device).eval()
