"""``gru``: a recurrent autoencoder for windows of signals, (channels, length).

The encoder-decoder of Malhotra et al. ("LSTM-based encoder-decoder for multi-sensor anomaly
detection", 2016) with gated recurrent units: a GRU reads the window step by step and its last
hidden state, through a linear map, is the code; the decoder starts a second GRU from the code
(a linear map to its initial state), feeds it the code at every step, and a linear map turns each
hidden state into the channels of that step. Input shapes are read as :mod:`aekit.models.conv1d`
reads them, and ``channel_mask`` trains it for the cross-channel score the same way.

It is registered for series detectors (``aekit detect fit --model gru``); the default stays
``conv1d``, which was as good or better on the validation signals and trains several times faster
on a CPU (docs/benchmarks/series.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from aekit.errors import ConfigError
from aekit.models.conv1d import SignalAutoencoder, SignalConfig
from aekit.models.layers import activation
from aekit.models.registry import register_model


@dataclass(frozen=True)
class RecurrentConfig(SignalConfig):
    """``units`` hidden units in each of ``layers`` stacked GRU layers; ``latent_dim`` code."""

    arch: str = "gru"
    units: int = 64
    layers: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.units < 1 or self.layers < 1:
            raise ConfigError(
                f"model 'gru': units and layers must be 1 or more, not {self.units}, {self.layers}"
            )


class GRUEncoder(nn.Module):
    """(B, *input_shape) -> (B, latent_dim): the last hidden states of every layer, mapped."""

    def __init__(self, c: RecurrentConfig) -> None:
        super().__init__()
        self.shape = c.signal_shape
        self.rnn = nn.GRU(self.shape[0], c.units, c.layers, batch_first=True)
        self.out = nn.Linear(c.units * c.layers, c.latent_dim)

    def forward(self, x: Tensor) -> Tensor:
        steps = x.reshape(len(x), *self.shape).transpose(1, 2)  # (B, L, C)
        _, h = self.rnn(steps)  # (layers, B, units)
        return self.out(h.transpose(0, 1).reshape(len(x), -1))


class GRUDecoder(nn.Module):
    """(B, latent_dim) -> (B, *input_shape): a GRU started from the code, fed the code at each step."""

    def __init__(self, c: RecurrentConfig) -> None:
        super().__init__()
        self.shape, self.input_shape, self.layers, self.units = (
            c.signal_shape,
            c.input_shape,
            c.layers,
            c.units,
        )
        self.start = nn.Linear(c.latent_dim, c.units * c.layers)
        self.rnn = nn.GRU(c.latent_dim, c.units, c.layers, batch_first=True)
        self.out = nn.Linear(c.units, self.shape[0])
        self.final = activation(c.output_activation)

    def forward(self, z: Tensor) -> Tensor:
        h0 = torch.tanh(self.start(z)).reshape(len(z), self.layers, self.units).transpose(0, 1).contiguous()
        y, _ = self.rnn(z[:, None, :].expand(len(z), self.shape[1], z.shape[1]), h0)  # (B, L, units)
        return self.final(self.out(y).transpose(1, 2)).reshape(len(z), *self.input_shape)


@register_model("gru")
class RecurrentAutoencoder(SignalAutoencoder):
    """Recurrent (GRU) encoder-decoder for signals and windows of time series, (channels, length)."""

    config_class = RecurrentConfig

    def __init__(self, config: RecurrentConfig) -> None:
        super().__init__(config)
        self.encoder = GRUEncoder(config)
        self.decoder = GRUDecoder(config)
