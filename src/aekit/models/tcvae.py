"""``tcvae``: beta-TCVAE (Chen, Li, Grosse & Duvenaud 2018).

The ELBO's KL term splits, per sample, into three parts that it weights apart:
``log q(z|x) - log p(z) = [log q(z|x) - log q(z)]  (index-code mutual information, alpha)
+ [log q(z) - sum_d log q(z_d)]  (total correlation, beta)  + [sum_d log q(z_d) - log p(z)]
(dimension-wise KL, gamma)``. Penalising the total correlation pushes the code's dimensions to
be independent (disentangled) without squeezing the information the code carries.

The aggregate posterior q(z) is estimated on the minibatch, taken as the data:
``log q(z_i) ~ logsumexp_j log q(z_i|x_j) - log M``. This is Chen et al.'s minibatch-weighted
sampling up to a constant (their ``- log(N M)``), so the gradients are the same and no
data-set size is needed; the reported terms differ from theirs by constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from aekit.data.batches import Batch
from aekit.models.registry import register_model
from aekit.models.vae import VAE, VAEConfig, kl_normal
from aekit.models.vampprior import log_normal


@dataclass(frozen=True)
class TCVAEConfig(VAEConfig):
    """``alpha``, ``tc_beta``, ``gamma``: weights of mutual information, total correlation and
    dimension-wise KL (all 1 is the plain VAE; the paper disentangles with ``tc_beta`` = 6)."""

    alpha: float = 1.0
    tc_beta: float = 6.0
    gamma: float = 1.0


def kl_decomposition(z: Tensor, mu: Tensor, logvar: Tensor) -> dict[str, Tensor]:
    """Per-sample mutual information, total correlation and dimension-wise KL of a batch.

    ``z`` (B, D) holds one draw from each q(z|x_i) = N(mu_i, exp(logvar_i)); the batch stands for the data.

    Returns:
        ``mi``, ``tc``, ``dim_kl``: (B,) each; their sum is log q(z|x) - log N(z; 0, I).
    """
    m = len(z)
    pair = log_normal(z[:, None, :, None], mu[None, :, :, None], logvar[None, :, :, None])  # (M, M, D)
    log_qz = torch.logsumexp(pair.sum(-1), 1) - math.log(m)  # (M,)
    log_prod = (torch.logsumexp(pair, 1) - math.log(m)).sum(-1)  # (M,)
    log_q_zx = log_normal(z, mu, logvar)
    log_p = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
    return {"mi": log_q_zx - log_qz, "tc": log_qz - log_prod, "dim_kl": log_prod - log_p}


@register_model("tcvae")
class TCVAE(VAE):
    """beta-TCVAE: the VAE with its total-correlation term weighted apart (Chen et al. 2018)."""

    config_class = TCVAEConfig
    fully_convolutional = False  # the decomposition is over the dimensions of flat codes

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        c = self.config
        mu, logvar = self.posterior(batch.x, batch.y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        out = self.logits(z, batch.y)
        rec = -self._log_px(batch.x, out).mean()
        parts = {k: v.mean() for k, v in kl_decomposition(z, mu, logvar).items()}
        warm = self.beta_now() / c.beta if c.beta > 0 else 1.0  # the KL warm-up ramp, 0 -> 1
        penalty = c.alpha * parts["mi"] + c.tc_beta * parts["tc"] + c.gamma * parts["dim_kl"]
        with torch.no_grad():
            kl = kl_normal(mu, logvar).sum(1).mean()
            mse = F.mse_loss(self._mean(out), batch.x)
        if self.training:
            self.steps += 1
        return {
            "loss": rec + warm * penalty,
            "rec": rec.detach(),
            "kl": kl,
            "elbo": -(rec.detach() + kl),
            **{k: v.detach() for k, v in parts.items()},
            "mse": mse,
        }
