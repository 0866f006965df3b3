"""``two-level-vae``: a VAE with two stochastic layers (the two-layer model of Burda et al. 2016).

Generative model: ``p(z2) = N(0, I)``, ``p(z1 | z2)`` a diagonal Gaussian from a small network,
``p(x | z1)`` the VAE's decoder. Inference: ``q(z1 | x)`` the VAE's encoder, ``q(z2 | z1)`` a small
network on the drawn z1. The prior of the image code z1 is thereby learned (a continuous mixture of
Gaussians) instead of fixed at N(0, I). Trained on the one-sample ELBO
``log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1)``; the importance-weighted
NLL (:meth:`VAE.nll`) uses the same log weights with K draws of (z1, z2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.data.batches import Batch
from aekit.errors import ConfigError
from aekit.models.registry import register_model
from aekit.models.vae import LOG_2PI, VAE, VAEConfig


@dataclass(frozen=True)
class TwoLevelVAEConfig(VAEConfig):
    """``top_dim``: size of the upper code z2; ``top_hidden``: width of the two small networks between
    the codes, q(z2|z1) and p(z1|z2)."""

    top_dim: int = 16
    top_hidden: int = 128


def gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last axis."""
    return (-0.5 * ((z - mu).pow(2) * (-logvar).exp() + logvar + LOG_2PI)).sum(-1)


@register_model("two-level-vae")
class TwoLevelVAE(VAE):
    """VAE with a second stochastic layer above the code: p(z2) p(z1|z2) p(x|z1) (Burda et al. 2016)."""

    config_class = TwoLevelVAEConfig
    fully_convolutional = False  # the upper level works on flat codes

    def __init__(self, config: TwoLevelVAEConfig) -> None:
        if config.top_dim < 1 or config.top_hidden < 1:
            raise ConfigError(
                f"model 'two-level-vae': top_dim and top_hidden must be at least 1, "
                f"not {config.top_dim} and {config.top_hidden}"
            )
        if config.arch == "fcn":
            raise ConfigError("model 'two-level-vae' needs a flat code: arch dense or conv, not fcn")
        super().__init__(config)
        d, t, h = config.latent_dim, config.top_dim, config.top_hidden
        self.up = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, 2 * t))  # q(z2 | z1)
        self.down = nn.Sequential(nn.Linear(t, h), nn.Tanh(), nn.Linear(h, 2 * d))  # p(z1 | z2)

    @staticmethod
    def _gaussian(out: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar.clamp(-12, 8)

    def upper_posterior(self, z1: Tensor) -> tuple[Tensor, Tensor]:
        """mu, logvar of q(z2 | z1). Shape: (..., latent_dim) -> (..., top_dim) twice."""
        return self._gaussian(self.up(z1))

    def conditional_prior(self, z2: Tensor) -> tuple[Tensor, Tensor]:
        """mu, logvar of p(z1 | z2). Shape: (..., top_dim) -> (..., latent_dim) twice."""
        return self._gaussian(self.down(z2))

    def _log_terms(self, x: Tensor, y: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
        """log p(x|z1) and log p(z1, z2) - log q(z1, z2 | x) for ``k`` draws. Shape: -> (k, B) twice."""
        mu, logvar = self.posterior(x, y)
        eps1 = torch.randn(k, *mu.shape, dtype=mu.dtype, device=mu.device)
        z1 = mu + eps1 * (0.5 * logvar).exp()  # (k, B, D)
        log_q1 = (-0.5 * eps1.pow(2) - 0.5 * logvar - 0.5 * LOG_2PI).sum(-1)
        mu2, logvar2 = self.upper_posterior(z1)
        eps2 = torch.randn_like(mu2)
        z2 = mu2 + eps2 * (0.5 * logvar2).exp()
        log_q2 = (-0.5 * eps2.pow(2) - 0.5 * logvar2 - 0.5 * LOG_2PI).sum(-1)
        log_p1 = gaussian_log_density(z1, *self.conditional_prior(z2))
        log_p2 = (-0.5 * z2.pow(2) - 0.5 * LOG_2PI).sum(-1)
        xs = x.expand(k, *x.shape).flatten(0, 1)
        ys = None if y is None else y.expand(k, *y.shape).flatten(0, 1)
        log_px = self._log_px(xs, self.logits(z1.flatten(0, 1), ys)).view(k, -1)
        return log_px, log_p1 + log_p2 - log_q1 - log_q2

    def log_weights(self, x: Tensor, y: Tensor | None = None, k: int = 1) -> Tensor:
        """log p(x, z1, z2) - log q(z1, z2 | x) for ``k`` reparameterised draws. Shape: -> (k, B)."""
        log_px, log_ratio = self._log_terms(x, y, k)
        return log_px + log_ratio

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        log_px, log_ratio = self._log_terms(batch.x, batch.y, 1)
        rec, kl = -log_px.mean(), -log_ratio.mean()  # kl: the one-sample estimate of both levels' KL
        with torch.no_grad():
            mse = F.mse_loss(self.decode(self.posterior(batch.x, batch.y)[0], batch.y), batch.x)
        if self.training:
            self.steps += 1
        return {
            "loss": rec + self.beta_now() * kl,
            "rec": rec.detach(),
            "kl": kl.detach(),
            "elbo": -(rec + kl).detach(),
            "mse": mse,
        }

    def log_prior(self, z: Tensor, batch_dims: int = 1) -> Tensor:
        raise NotImplementedError(
            "two-level-vae: the marginal prior p(z1) = E p(z1|z2) has no closed form; "
            "log_weights() scores (z1, z2) jointly"
        )

    def kl_term(self, mu: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        raise NotImplementedError("two-level-vae: its KL involves z2; see loss() and log_weights()")

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z1 from the learned prior: z2 ~ N(0, I), then z1 ~ p(z1 | z2). Shape: -> (n, latent_dim)."""
        device = next(self.parameters()).device
        z2 = torch.randn(n, self.config.top_dim, generator=generator, device=device)
        mu, logvar = self.conditional_prior(z2)
        eps = torch.randn(mu.shape, generator=generator, device=device)
        return mu + eps * (0.5 * logvar).exp()

    @torch.no_grad()
    def kl_per_dim(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Mean KL(q(z1|x) || p(z1|z2)) per dimension of z1, z2 the mean of q(z2 | mean z1). Shape: (D,)."""
        mu, logvar = self.posterior(x, y)
        pm, plv = self.conditional_prior(self.upper_posterior(mu)[0])
        kl = 0.5 * (plv - logvar + (logvar.exp() + (mu - pm).pow(2)) * (-plv).exp() - 1)
        return kl.mean(0)
