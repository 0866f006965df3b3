"""``codec``: a compression autoencoder, quantised latents with a learned factorised entropy model.

Training minimises ``rate + rd_lambda * 255^2 * MSE``: the rate, in bits per pixel, is the
code's cost under the entropy model (each latent dimension a logistic density with its own
location and scale, integrated over the quantisation bin), with uniform noise standing in
for rounding; the decoder sees the rounded code through a straight-through estimator.

After training, :meth:`CodecModel.finalize` turns each dimension's density into an integer
frequency table over the symbols ``-max_symbol..max_symbol`` (summing to 2^16): these tables,
saved with the weights, are all the entropy coder uses, so encoder and decoder cannot drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.data.batches import Batch
from aekit.models.base import Autoencoder
from aekit.models.layers import Backbone, build_decoder, build_encoder
from aekit.models.registry import register_model

TABLE_TOTAL = 1 << 16  # integer frequencies per dimension sum to this


@dataclass(frozen=True)
class CodecConfig(Backbone):
    """``rd_lambda`` trades distortion against rate (``--lambda``); ``max_symbol`` bounds the
    integer symbols each latent dimension can take."""

    arch: str = "conv"
    latent_dim: int = 64
    rd_lambda: float = 0.01
    max_symbol: int = 63


def _logistic_mass(y: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
    """Probability of the unit bin around ``y`` under a logistic(loc, scale)."""
    inv = torch.exp(-log_scale)
    upper = torch.sigmoid((y + 0.5 - loc) * inv)
    lower = torch.sigmoid((y - 0.5 - loc) * inv)
    return (upper - lower).clamp_min(1e-9)


@register_model("codec")
class CodecModel(Autoencoder):
    """Compression: quantised latents, a learned factorised entropy model, rate + lambda x distortion."""

    config_class = CodecConfig

    def __init__(self, config: CodecConfig) -> None:
        super().__init__(config)
        self.encoder = build_encoder(config, config.latent_dim)
        self.decoder = build_decoder(config, config.latent_dim)
        self.loc = nn.Parameter(torch.zeros(config.latent_dim))
        self.log_scale = nn.Parameter(torch.zeros(config.latent_dim))
        symbols = 2 * config.max_symbol + 1
        self.register_buffer("tables", torch.zeros(config.latent_dim, symbols, dtype=torch.int32))

    @property
    def pixels(self) -> int:
        return math.prod(self.input_shape[-2:])

    def quantize(self, y: Tensor) -> Tensor:
        """Round and clip to the symbol range, with straight-through gradients."""
        m = self.config.max_symbol
        q = torch.round(y).clamp(-m, m)
        return y + (q - y).detach()

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The quantised code (integers stored as floats). Shape: (B, latent_dim)."""
        return self.quantize(self.encoder(x))

    def symbols(self, x: Tensor) -> Tensor:
        """Integer symbols 0..2*max_symbol for the entropy coder. Shape: (B, latent_dim) int32."""
        return (self.encode(x).round() + self.config.max_symbol).to(torch.int32)

    def decode_symbols(self, s: Tensor) -> Tensor:
        return self.decode(s.float() - self.config.max_symbol)

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        y = self.encoder(batch.x)
        noisy = y + torch.rand_like(y) - 0.5 if self.training else torch.round(y)
        bits = -torch.log2(_logistic_mass(noisy, self.loc, self.log_scale)).sum(1)
        bpp = bits.mean() / self.pixels
        x_hat = self.decode(self.quantize(y))
        mse = F.mse_loss(x_hat, batch.x)
        return {
            "loss": bpp + self.config.rd_lambda * 255.0**2 * mse,
            "bpp": bpp.detach(),
            "mse": mse.detach(),
            "psnr": (10 * torch.log10(1 / mse.detach().clamp_min(1e-10))),
        }

    @torch.no_grad()
    def finalize(self) -> None:
        """Integer frequency tables from the learned densities (every symbol at least 1; tails
        folded into the end symbols); the trainer calls it after every epoch, so that every
        checkpoint holds tables that match its weights."""
        m = self.config.max_symbol
        k = torch.arange(-m, m + 1, dtype=torch.float64, device=self.loc.device)
        loc, scale = self.loc.double()[:, None], self.log_scale.double().exp()[:, None]
        cdf = torch.sigmoid((torch.cat([k - 0.5, k[-1:] + 0.5]) - loc) / scale)
        p = cdf[:, 1:] - cdf[:, :-1]
        p[:, 0] += cdf[:, 0]  # the lower tail
        p[:, -1] += 1 - cdf[:, -1]  # the upper tail
        spare = TABLE_TOTAL - p.shape[1]  # one count per symbol is reserved
        counts = torch.floor(p * spare).long() + 1
        short = TABLE_TOTAL - counts.sum(1)
        counts[torch.arange(len(counts)), p.argmax(1)] += short  # exact total, on the likeliest symbol
        self.tables.copy_(counts.to(torch.int32))

    def estimated_bits(self, s: Tensor) -> Tensor:
        """Bits per image of symbols ``s`` (B, latent_dim) under the integer tables. Shape: (B,)."""
        freq = self.tables.double().gather(1, s.long().T.contiguous()).T / TABLE_TOTAL
        return -torch.log2(freq).sum(1)
