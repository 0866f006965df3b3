"""``tabular``: an autoencoder for tables of numeric and categorical columns.

The features are the numeric columns (min-max scaled) followed by one one-hot block per
categorical column (see :mod:`aekit.data.tabular`); ``categories`` holds the block sizes and
is filled from the data. The decoder's numeric outputs pass through a sigmoid and each block
through a softmax; the loss is the squared error on the numeric columns plus the
cross-entropy of each categorical column, averaged over the table's columns.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from aekit.data.batches import Batch
from aekit.errors import ConfigError
from aekit.models.autoencoder import DenseConfig
from aekit.models.base import Autoencoder
from aekit.models.layers import build_decoder, build_encoder
from aekit.models.registry import register_model


@dataclass(frozen=True)
class TabularConfig(DenseConfig):
    """``categories``: the one-hot block sizes after the numeric features (filled from the data)."""

    input_shape: tuple[int, ...] = (16,)
    hidden: tuple[int, ...] = (64, 32)
    latent_dim: int = 8
    categories: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(k < 1 for k in self.categories) or sum(self.categories) > math.prod(self.input_shape):
            raise ConfigError(
                f"model 'tabular': categories {self.categories} do not fit {self.input_shape} features"
            )


@register_model("tabular")
class TabularAutoencoder(Autoencoder):
    """Tables: numeric columns with squared error, categorical columns with cross-entropy."""

    config_class = TabularConfig

    def __init__(self, config: TabularConfig) -> None:
        super().__init__(config)
        self.n_numeric = math.prod(config.input_shape) - sum(config.categories)
        self.encoder = build_encoder(config, config.latent_dim, final=config.latent_activation)
        self.decoder = build_decoder(dataclasses.replace(config, output_activation="none"), config.latent_dim)

    def _split(self, t: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, ...) -> the numeric features (B, n_numeric) and each one-hot block (B, k)."""
        t = t.flatten(1)
        return t[:, : self.n_numeric], list(t[:, self.n_numeric :].split(list(self.config.categories), 1))

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        numeric, blocks = self._split(self.decoder(z))
        out = torch.cat([torch.sigmoid(numeric), *(b.softmax(1) for b in blocks)], 1)
        return out.reshape(len(z), *self.input_shape)

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        logits = self.decoder(self.encode(batch.x))
        numeric, blocks = self._split(logits)
        x_num, x_blocks = self._split(batch.x)
        sq = F.mse_loss(torch.sigmoid(numeric), x_num, reduction="none").sum(1)
        ce = [
            F.cross_entropy(b, t.argmax(1), reduction="none") for b, t in zip(blocks, x_blocks, strict=True)
        ]
        columns = self.n_numeric + len(blocks)
        total = (sq + sum(ce, torch.zeros_like(sq))) / columns
        with torch.no_grad():
            x_hat = torch.cat([torch.sigmoid(numeric), *(b.softmax(1) for b in blocks)], 1)
            terms = {"mse": F.mse_loss(x_hat, batch.x.flatten(1))}
            if self.n_numeric:
                terms["numeric_mse"] = sq.mean() / self.n_numeric
            if blocks:
                accuracy = [
                    (b.argmax(1) == t.argmax(1)).float().mean() for b, t in zip(blocks, x_blocks, strict=True)
                ]
                terms["category_accuracy"] = torch.stack(accuracy).mean()
        return {"loss": total.mean(), **terms}
