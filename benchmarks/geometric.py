"""An experiment, registered only by the benchmarks that import it (benchmarks/one_class_tune.py):
``geoconv``, the conv autoencoder plus a self-supervised head that tells which of the
geometric transforms (the four quarter-turn rotations, GEOM-style: Golan & El-Yaniv, NeurIPS
2018) was applied to an image, trained on the code.

Loss: the conv autoencoder's reconstruction loss on the untransformed batch, plus ``aux_weight``
times the cross-entropy of the head on the code of a transformed copy of the batch (one transform
drawn per image). The head shapes the code around the orientation of the normal class's
objects, which reconstruction alone does not; :meth:`transform_nll` is GEOM's score
(minus the log-probability of the right transform, summed over the transforms), an anomaly score
that needs no reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.data.batches import Batch
from aekit.models.autoencoder import ConvAutoencoder, ConvConfig
from aekit.models.registry import register_model


def rotate(x: Tensor, k: int) -> Tensor:
    """``x`` (B, C, H, W) turned by ``k`` quarter turns (square images)."""
    return torch.rot90(x, k, dims=(-2, -1))


@dataclass(frozen=True)
class GeoConvConfig(ConvConfig):
    """``transforms``: 4 (quarter-turn rotations); ``aux_weight``: the head's share of the loss;
    ``aux_hidden``: the head's hidden width (0: linear)."""

    transforms: int = 4
    aux_weight: float = 0.1
    aux_hidden: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.transforms != 4:
            raise ValueError("transforms must be 4 (the quarter-turn rotations)")
        if self.aux_weight < 0 or self.aux_hidden < 0:
            raise ValueError("aux_weight and aux_hidden must not be negative")
        if len(self.input_shape) != 3 or self.input_shape[-1] != self.input_shape[-2]:
            raise ValueError(f"geoconv needs square images (C, H, H), not {tuple(self.input_shape)}")


@register_model("geoconv")
class GeoConvAutoencoder(ConvAutoencoder):
    """Conv autoencoder with a rotation-prediction head on the code (see the module docstring)."""

    config_class = GeoConvConfig
    fully_convolutional = False

    def __init__(self, config: GeoConvConfig) -> None:
        super().__init__(config)
        d, h, n = config.latent_dim, config.aux_hidden, config.transforms
        self.head = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, n)) if h else nn.Linear(d, n)

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        terms = super().loss(batch, phase)
        x = batch.x
        k = torch.randint(0, self.config.transforms, (len(x),), device=x.device)
        turned = torch.stack([rotate(x, i) for i in range(self.config.transforms)])[k, torch.arange(len(x))]
        logits = self.head(self.encode(turned))
        ce = F.cross_entropy(logits, k)
        terms["loss"] = terms["loss"] + self.config.aux_weight * ce
        terms["transform_ce"] = ce.detach()
        return terms

    @torch.no_grad()
    def transform_nll(self, x: Tensor) -> Tensor:
        """(B,) GEOM's score: minus the summed log-probability of each transform's own label."""
        out = torch.zeros(len(x), device=x.device)
        for k in range(self.config.transforms):
            out -= F.log_softmax(self.head(self.encode(rotate(x, k))), dim=1)[:, k]
        return out


__all__ = ["GeoConvAutoencoder", "GeoConvConfig", "rotate"]
