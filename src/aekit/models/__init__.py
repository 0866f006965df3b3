"""Models: import this package and every model file has registered itself in :data:`MODELS`."""

from aekit.models import aae, autoencoder, codec, hyperprior, music, regularized, tabular, vae, vqvae  # noqa: F401  (each registers)
from aekit.models.base import Autoencoder, Output
from aekit.models.registry import MODELS, ModelSpec, build_model, get_spec, register_model

__all__ = ["MODELS", "Autoencoder", "ModelSpec", "Output", "build_model", "get_spec", "register_model"]
