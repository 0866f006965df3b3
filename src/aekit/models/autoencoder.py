"""Plain autoencoders: ``dense`` (the classic 784-128-64-32 is its ``seed`` preset) and ``conv``."""

from __future__ import annotations

from dataclasses import dataclass

from aekit.models.base import Autoencoder
from aekit.models.layers import Backbone, build_decoder, build_encoder
from aekit.models.registry import register_model


@dataclass(frozen=True)
class DenseConfig(Backbone):
    """A fully connected autoencoder; ``latent_activation`` is applied to the code
    (the classic model has a ReLU there)."""

    hidden: tuple[int, ...] = (128, 64)
    latent_activation: str = "none"


@register_model("dense")
class DenseAutoencoder(Autoencoder):
    """Fully connected autoencoder with any layer sizes (preset `seed`: the classic 784-128-64-32)."""

    config_class = DenseConfig
    fully_convolutional = True

    def __init__(self, config: DenseConfig) -> None:
        super().__init__(config)
        self.encoder = build_encoder(config, config.latent_dim, final=config.latent_activation)
        self.decoder = build_decoder(config, config.latent_dim)


@dataclass(frozen=True)
class ConvConfig(Backbone):
    """Strided conv encoder, transposed-conv decoder; any (C, H, W)."""

    arch: str = "conv"


@register_model("conv")
class ConvAutoencoder(Autoencoder):
    """Convolutional autoencoder: stride-2 convolutions down, transposed convolutions up."""

    config_class = ConvConfig
    fully_convolutional = True

    def __init__(self, config: ConvConfig) -> None:
        super().__init__(config)
        self.encoder = build_encoder(config, config.latent_dim)
        self.decoder = build_decoder(config, config.latent_dim)
