"""The adversarial autoencoder (Makhzani et al. 2016): a discriminator pushes the codes
towards a chosen prior, so that decoding prior samples generates data.

Two phases share the one trainer: ``main`` updates encoder and decoder (reconstruction
plus fooling the discriminator), ``disc`` updates the discriminator (prior samples are
real, codes are fake).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.data.batches import Batch
from aekit.models.base import Autoencoder, reconstruction_loss
from aekit.models.layers import Backbone, build_decoder, build_encoder, mlp
from aekit.models.registry import register_model


@dataclass(frozen=True)
class AAEConfig(Backbone):
    """``prior``: ``gaussian`` N(0, I) or ``mixture`` of ``n_components`` Gaussians (std
    ``component_std``) on a circle of radius ``radius`` in the first two code dimensions.
    ``supervised``: the discriminator sees the label too, and with the mixture prior the codes
    of class c are pushed to component c (``num_classes`` is filled from the data)."""

    latent_dim: int = 8
    prior: str = "gaussian"
    n_components: int = 10
    component_std: float = 0.5
    radius: float = 4.0
    adversarial_weight: float = (
        1e-3  # the reconstruction term is a per-pixel mean, ~0.02: keep them in balance
    )
    disc_hidden: tuple[int, ...] = (256, 256)
    supervised: bool = False
    num_classes: int = 0


@register_model("aae")
class AdversarialAutoencoder(Autoencoder):
    """Adversarial autoencoder: a latent discriminator matches the codes to a Gaussian or mixture prior."""

    config_class = AAEConfig
    phases = ("main", "disc")
    generative = True

    def __init__(self, config: AAEConfig) -> None:
        super().__init__(config)
        if config.prior not in ("gaussian", "mixture"):
            raise ValueError(f"aae prior must be gaussian or mixture, got {config.prior!r}")
        if config.supervised and config.num_classes < 1:
            raise ValueError("a supervised aae needs labelled data (num_classes >= 1)")
        self.encoder = build_encoder(config, config.latent_dim)
        self.decoder = build_decoder(config, config.latent_dim)
        extra = config.num_classes if config.supervised else 0
        self.discriminator = mlp((config.latent_dim + extra, *config.disc_hidden, 1), "leaky_relu")

    def component_means(self) -> Tensor:
        """The mixture's means: (n_components, latent_dim), on a circle in dims 0 and 1."""
        c = self.config
        angle = 2 * math.pi * torch.arange(c.n_components) / c.n_components
        means = torch.zeros(c.n_components, c.latent_dim)
        means[:, 0], means[:, 1] = c.radius * angle.cos(), c.radius * angle.sin()
        return means

    def prior_sample(
        self, n: int, generator: torch.Generator | None = None, y: Tensor | None = None
    ) -> Tensor:
        """Codes from the prior; with the mixture, from component ``y`` (random when None). Shape: (n, D)."""
        device = next(self.parameters()).device
        eps = torch.randn(n, self.config.latent_dim, generator=generator, device=device)
        if self.config.prior == "gaussian":
            return eps
        if y is None:
            y = torch.randint(self.config.n_components, (n,), generator=generator, device=device)
        means = self.component_means().to(device)[y.long() % self.config.n_components]
        return means + self.config.component_std * eps

    def _discriminate(self, z: Tensor, y: Tensor | None) -> Tensor:
        if self.config.supervised:
            if y is None:
                raise ValueError("a supervised aae needs labels y")
            z = torch.cat([z, F.one_hot(y.long(), self.config.num_classes).float()], dim=1)
        return self.discriminator(z).squeeze(1)

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        if phase == "disc":
            return list(self.discriminator.parameters())
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        y = batch.y if self.config.supervised else None
        if phase == "disc":
            fake = self.encode(batch.x).detach()
            real = self.prior_sample(len(batch), y=y)
            d_real, d_fake = self._discriminate(real, y), self._discriminate(fake, y)
            loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
            loss = loss + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            acc = 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean())
            return {"loss": loss, "acc": acc.detach()}
        z = self.encode(batch.x)
        x_hat = self.decode(z)
        rec = reconstruction_loss(x_hat, batch.x, self.config.loss)
        d_fake = self._discriminate(z, y)
        fool = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        return {
            "loss": rec + self.config.adversarial_weight * fool,
            "rec": rec.detach(),
            "adversarial": fool.detach(),
            "mse": F.mse_loss(x_hat.detach(), batch.x),
        }

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """Decode ``n`` prior samples. Shape: -> (n, *input_shape)."""
        return self.decode(self.prior_sample(n, generator, y))
