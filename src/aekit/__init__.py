"""aekit: autoencoders on PyTorch. Train, show, compress, denoise, detect, generate.

>>> import aekit
>>> data = aekit.load_dataset("fashion-mnist")
>>> run = aekit.train("fashion-mnist", preset="seed", epochs=5, out="runs/seed")
>>> run = aekit.load("runs/seed"); run.evaluate(aekit.load_dataset("fashion-mnist", "test"))
"""

from typing import TYPE_CHECKING, Any

from aekit._version import __version__  # noqa: F401
from aekit.api import Run, load, resume, train  # noqa: E402
from aekit.apps.anomaly import AnomalyDetector  # noqa: E402
from aekit.apps.codec import Codec  # noqa: E402
from aekit.apps.denoise import Denoiser  # noqa: E402
from aekit.data.dataset import ArrayDataset  # noqa: E402
from aekit.data.sources import load_dataset  # noqa: E402
from aekit.errors import AekitError, CheckpointError, ConfigError, DataError  # noqa: E402
from aekit.models import MODELS, build_model  # noqa: E402

if TYPE_CHECKING:  # for type checkers; at run time it is imported on first use (below)
    from aekit.apps.transformer import AutoencoderTransformer


def __getattr__(name: str) -> Any:
    if name == "AutoencoderTransformer":  # imported on first use: it loads scikit-learn
        from aekit.apps.transformer import AutoencoderTransformer

        return AutoencoderTransformer
    raise AttributeError(f"module 'aekit' has no attribute {name!r}")


__all__ = [
    "MODELS",
    "AekitError",
    "AnomalyDetector",
    "AutoencoderTransformer",
    "ArrayDataset",
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
