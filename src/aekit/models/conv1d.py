"""``conv1d``: a 1-D convolutional autoencoder for windows of signals, (channels, length).

Any input shape works: (C, L) is C channels over L steps, (F,) is one channel of F steps, and
(C, H, W) is read as C channels of H*W steps (so the model contract tests run on it as on every
model). Stride-2 convolutions halve the length each layer, a linear map makes the code, and
transposed convolutions (their output padding chosen so that odd lengths come back exactly)
mirror the encoder. Series detectors use it with a linear output (``output_activation="none"``),
since their windows are standardised, not in [0, 1].

``channel_mask`` > 0 hides one channel of a window (sets it to zero, its mean once standardised)
with that probability in training, the target staying the whole window: the model then also
learns each channel from the others, which is what a series detector's cross-channel score asks
of it (:func:`aekit.apps.series.channel_errors`). It changes training only, never ``forward``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.data.batches import Batch
from aekit.errors import ConfigError
from aekit.models.base import Autoencoder, reconstruction_loss
from aekit.models.layers import Backbone, Reshape, activation, conv_sizes
from aekit.models.registry import register_model


@dataclass(frozen=True)
class SignalConfig(Backbone):
    """What every model of signals shares: the input read as (channels, length), and
    ``channel_mask``, the training probability of hiding one channel of a window."""

    channel_mask: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.channel_mask <= 1:
            raise ConfigError(
                f"model {self.arch!r}: channel_mask must lie in [0, 1], not {self.channel_mask}"
            )

    @property
    def signal_shape(self) -> tuple[int, int]:
        """(channels, length) that the input shape is read as."""
        s = self.input_shape
        return (1, s[0]) if len(s) == 1 else (s[0], math.prod(s[1:]))


@dataclass(frozen=True)
class Conv1dConfig(SignalConfig):
    """Strided 1-D convolutions through ``channels`` with odd ``kernel_size``; ``latent_dim`` code."""

    arch: str = "conv1d"
    channels: tuple[int, ...] = (32, 64)
    kernel_size: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"model 'conv1d': kernel_size must be odd and positive, not {self.kernel_size}")


def conv1d_encoder(c: Conv1dConfig) -> nn.Module:
    """(B, *input_shape) -> (B, latent_dim).

    Shape:
        (B, C, L) -> conv layers (B, channels[i], L_i), L_i = ceil(L_{i-1} / 2) -> (B, latent_dim)
    """
    ch, length = c.signal_shape
    k = c.kernel_size
    layers: list[nn.Module] = [Reshape(ch, length)]
    for c_in, c_out in zip((ch, *c.channels[:-1]), c.channels, strict=True):
        layers += [nn.Conv1d(c_in, c_out, k, stride=2, padding=k // 2), activation(c.activation)]
    sizes = conv_sizes(length, len(c.channels))  # an odd kernel with padding k // 2 halves like 3 with 1
    layers += [nn.Flatten(), nn.Linear(c.channels[-1] * sizes[-1], c.latent_dim)]
    return nn.Sequential(*layers)


def conv1d_decoder(c: Conv1dConfig) -> nn.Module:
    """(B, latent_dim) -> (B, *input_shape), the mirror of :func:`conv1d_encoder`."""
    ch, length = c.signal_shape
    k = c.kernel_size
    sizes = conv_sizes(length, len(c.channels))
    rev = c.channels[::-1]
    layers: list[nn.Module] = [
        nn.Linear(c.latent_dim, rev[0] * sizes[-1]),
        activation(c.activation),
        Reshape(rev[0], sizes[-1]),
    ]
    outs = (*rev[1:], ch)
    for i, (c_in, c_out) in enumerate(zip(rev, outs, strict=True)):
        level = len(c.channels) - i  # from sizes[level] up to sizes[level - 1]
        pad = sizes[level - 1] - ((sizes[level] - 1) * 2 + 1)
        layers.append(nn.ConvTranspose1d(c_in, c_out, k, stride=2, padding=k // 2, output_padding=pad))
        last = i == len(rev) - 1
        if not last or c.output_activation != "none":
            layers.append(activation(c.output_activation if last else c.activation))
    layers.append(Reshape(*c.input_shape))
    return nn.Sequential(*layers)


class SignalAutoencoder(Autoencoder):
    """An autoencoder of signals (channels, length) whose training can hide one channel of a window
    (``channel_mask``) while the target stays the whole window."""

    config_class = SignalConfig

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        p = self.config.channel_mask
        channels = self.config.signal_shape[0]
        if not (self.training and p > 0 and channels > 1):
            return super().loss(batch, phase)
        x = batch.x.reshape(len(batch.x), channels, -1)
        hide = torch.rand(len(x), device=x.device) < p  # which windows lose a channel
        which = torch.randint(channels, (len(x),), device=x.device)  # and which channel
        keep = torch.ones_like(x[:, :, :1])
        keep[hide, which[hide]] = 0
        x_hat = self(x.mul(keep).reshape(batch.x.shape)).x_hat
        rec = reconstruction_loss(x_hat, batch.x, self.config.loss)
        return {"loss": rec, "mse": F.mse_loss(x_hat.detach(), batch.x)}


@register_model("conv1d")
class Conv1dAutoencoder(SignalAutoencoder):
    """1-D convolutional autoencoder for signals and windows of time series, (channels, length)."""

    config_class = Conv1dConfig

    def __init__(self, config: Conv1dConfig) -> None:
        super().__init__(config)
        self.encoder = conv1d_encoder(config)
        self.decoder = conv1d_decoder(config)
