"""Regularised autoencoders: ``denoising``, ``sparse`` and ``contractive``.

Each is the plain autoencoder of :mod:`aekit.models.autoencoder` with one extra term in
its loss; the architecture (dense or conv) comes from the shared :class:`Backbone`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from aekit.data.batches import Batch
from aekit.data.corrupt import corrupt
from aekit.models.base import Autoencoder, Output, reconstruction_loss
from aekit.models.layers import Backbone, build_decoder, build_encoder
from aekit.models.registry import register_model


class _Plain(Autoencoder):
    """Encoder and decoder from the backbone, no activation on the code unless asked."""

    def __init__(self, config: Backbone, code_activation: str = "none") -> None:
        super().__init__(config)
        self.encoder = build_encoder(config, config.latent_dim, final=code_activation)
        self.decoder = build_decoder(config, config.latent_dim)


@dataclass(frozen=True)
class DenoisingConfig(Backbone):
    """``noise``: gaussian, salt_and_pepper, masking, occlusion or mixture; ``noise_level`` its
    sigma, rate or fraction; a ``noise_level_max`` above it trains blind over that range.
    With ``arch="fcn"``: ``skips`` adds the encoder's features to the decoder's at each scale
    (RED-Net / U-Net), ``residual`` predicts the noise and subtracts it (DnCNN's residual learning)."""

    noise: str = "gaussian"
    noise_level: float = 0.3
    noise_level_max: float = 0.0
    skips: bool = True
    residual: bool = True


@register_model("denoising")
class DenoisingAutoencoder(_Plain):
    """Denoising autoencoder: reconstructs clean inputs from corrupted ones."""

    config_class = DenoisingConfig
    fully_convolutional = True

    def __init__(self, config: DenoisingConfig) -> None:
        residual = config.arch == "fcn" and config.residual  # the decoder then outputs minus the noise
        super().__init__(dataclasses.replace(config, output_activation="none") if residual else config)
        self.config = config  # as given: it rebuilds the model
        self.residual = residual

    def restore(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The denoised image before clipping to [0, 1] (what the loss sees), and the code."""
        c = self.config
        if c.arch == "fcn" and c.skips:  # U-Net: the decoder also gets the features at each scale
            z, feats = self.encoder.features(x)
            out = self.decoder(z, feats)
        else:
            z = self.encoder(x)
            out = self.decoder(z)
        return (x + out if self.residual else out), z

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        x_hat, z = self.restore(x)
        return Output(x_hat.clamp(0, 1) if self.residual else x_hat, z)

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        c = self.config
        level = (c.noise_level, c.noise_level_max) if c.noise_level_max > c.noise_level else c.noise_level
        noisy = corrupt(batch.x, c.noise, level)  # validation corrupts too: it measures denoising
        x_hat = self.restore(noisy)[0]
        rec = reconstruction_loss(x_hat, batch.x, c.loss)
        return {
            "loss": rec,
            "mse": F.mse_loss(x_hat.detach().clamp(0, 1), batch.x),
            "noisy_mse": F.mse_loss(noisy, batch.x),
        }


@dataclass(frozen=True)
class SparseConfig(Backbone):
    """``penalty``: ``l1`` on the code, or ``kl`` between a sigmoid code's mean activation and ``rho``."""

    penalty: str = "l1"
    sparsity_weight: float = 1e-3
    rho: float = 0.05


@register_model("sparse")
class SparseAutoencoder(_Plain):
    """Sparse autoencoder: an L1 or KL penalty keeps most code units near zero."""

    config_class = SparseConfig

    def __init__(self, config: SparseConfig) -> None:
        if config.penalty not in ("l1", "kl"):
            raise ValueError(f"sparse penalty must be l1 or kl, got {config.penalty!r}")
        super().__init__(config, code_activation="sigmoid" if config.penalty == "kl" else "none")

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        c = self.config
        out = self(batch.x)
        rec = reconstruction_loss(out.x_hat, batch.x, c.loss)
        if c.penalty == "l1":
            sparsity = out.z.abs().sum(1).mean()
        else:  # KL(rho || rho_hat) summed over code units, rho_hat their mean activation in the batch
            rho_hat = out.z.mean(0).clamp(1e-6, 1 - 1e-6)
            sparsity = (
                c.rho * (c.rho / rho_hat).log() + (1 - c.rho) * ((1 - c.rho) / (1 - rho_hat)).log()
            ).sum()
        threshold = 0.1 if c.penalty == "kl" else 1e-2
        return {
            "loss": rec + c.sparsity_weight * sparsity,
            "rec": rec.detach(),
            "sparsity": sparsity.detach(),
            "active": (out.z.detach().abs() > threshold).float().mean(),
            "mse": F.mse_loss(out.x_hat.detach(), batch.x),
        }


@dataclass(frozen=True)
class ContractiveConfig(Backbone):
    """``contractive_weight`` scales the squared Frobenius norm of the encoder's Jacobian;
    ``projections``: 0 computes it exactly (one backward pass per code unit), k > 0 estimates
    it without bias from k random projections (k backward passes; the default, 1, costs about
    twice a plain step and averages over the batch)."""

    contractive_weight: float = 1e-4
    projections: int = 1


def jacobian_penalty(encoder: torch.nn.Module, x: Tensor, projections: int = 0) -> tuple[Tensor, Tensor]:
    """The code and ``||dz/dx||_F^2`` per sample, differentiable for training.

    Exact with ``projections=0``: one vector-Jacobian product per code unit. Otherwise the
    Hutchinson estimate ``E_v ||v^T J||^2`` with ``v ~ N(0, I)``, from ``projections`` draws.

    Shape:
        x: (B, *input_shape) -> z: (B, latent_dim), penalty: (B,)
    """
    x = x.detach().requires_grad_(True)
    z = encoder(x)
    exact = projections <= 0
    vectors = torch.eye(z.shape[1], device=z.device) if exact else None
    penalty = torch.zeros(len(x), device=x.device, dtype=z.dtype)
    for k in range(z.shape[1] if exact else projections):
        v = vectors[k].expand_as(z) if exact else torch.randn_like(z)
        (row,) = torch.autograd.grad(z, x, grad_outputs=v, create_graph=True)  # v^T dz/dx per sample
        penalty = penalty + row.pow(2).flatten(1).sum(1)
    return z, penalty if exact else penalty / projections


@register_model("contractive")
class ContractiveAutoencoder(_Plain):
    """Contractive autoencoder: penalises the encoder's sensitivity to its input (Rifai et al. 2011)."""

    config_class = ContractiveConfig

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        with torch.enable_grad():  # the penalty needs input gradients, in validation too
            z, penalty = jacobian_penalty(self.encoder, batch.x, self.config.projections)
        x_hat = self.decode(z)
        rec = reconstruction_loss(x_hat, batch.x, self.config.loss)
        contractive = penalty.mean()
        return {
            "loss": rec + self.config.contractive_weight * contractive,
            "rec": rec.detach(),
            "contractive": contractive.detach(),
            "mse": F.mse_loss(x_hat.detach(), batch.x),
        }
