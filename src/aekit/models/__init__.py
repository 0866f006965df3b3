"""Models: import this package and every model file has registered itself in :data:`MODELS`."""

from aekit.models import (  # noqa: F401  (each registers)
    aae,
    autoencoder,
    codec,
    conductor,
    conv1d,
    geoconv,
    hyperprior,
    iwae,
    music,
    recurrent,
    regularized,
    tabular,
    tcvae,
    twolevel,
    vae,
    vampprior,
    vqvae,
)
from aekit.models.base import Autoencoder, Output
from aekit.models.registry import MODELS, ModelSpec, build_model, get_spec, register_model

__all__ = ["MODELS", "Autoencoder", "ModelSpec", "Output", "build_model", "get_spec", "register_model"]
