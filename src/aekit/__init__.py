"""aekit: autoencoders on PyTorch. Train, show, compress, denoise, detect, generate.

>>> import aekit
>>> data = aekit.load_dataset("fashion-mnist")
>>> run = aekit.train("fashion-mnist", preset="seed", epochs=5, out="runs/seed")
>>> run = aekit.load("runs/seed"); run.evaluate(aekit.load_dataset("fashion-mnist", "test"))

The names below are imported on first use, so that ``import aekit`` (and ``aekit --help``)
does not wait seconds for PyTorch; ``from aekit import train`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aekit._version import __version__  # noqa: F401  (aekit.__version__)

_LAZY = {  # public name -> the module that defines it
    "Run": "aekit.api",
    "load": "aekit.api",
    "resume": "aekit.api",
    "train": "aekit.api",
    "AnomalyDetector": "aekit.apps.anomaly",
    "AutoencoderTransformer": "aekit.apps.transformer",
    "Codec": "aekit.apps.codec",
    "Denoiser": "aekit.apps.denoise",
    "ArrayDataset": "aekit.data.dataset",
    "load_dataset": "aekit.data.sources",
    "AekitError": "aekit.errors",
    "CheckpointError": "aekit.errors",
    "ConfigError": "aekit.errors",
    "DataError": "aekit.errors",
    "MODELS": "aekit.models",
    "build_model": "aekit.models",
}

if TYPE_CHECKING:  # what type checkers and IDEs see
    from aekit.api import Run, load, resume, train
    from aekit.apps.anomaly import AnomalyDetector
    from aekit.apps.codec import Codec
    from aekit.apps.denoise import Denoiser
    from aekit.apps.transformer import AutoencoderTransformer
    from aekit.data.dataset import ArrayDataset
    from aekit.data.sources import load_dataset
    from aekit.errors import AekitError, CheckpointError, ConfigError, DataError
    from aekit.models import MODELS, build_model


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # the next access is a plain attribute
        return value
    raise AttributeError(f"module 'aekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "MODELS",
    "AekitError",
    "AnomalyDetector",
    "ArrayDataset",
    "AutoencoderTransformer",
    "CheckpointError",
    "Codec",
    "ConfigError",
    "DataError",
    "Denoiser",
    "Run",
    "build_model",
    "load",
    "load_dataset",
    "resume",
    "train",
]
