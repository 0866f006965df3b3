"""``iwae``: the importance-weighted autoencoder (Burda, Grosse & Salakhutdinov 2016).

The VAE's network, trained on the K-sample bound
``log (1/K) sum_k p(x, z_k) / q(z_k|x)``, z_k ~ q(z|x), which is never looser than the ELBO
(K = 1) and tightens as K grows. Everything else (sampling, the NLL estimate) is the VAE's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from aekit.data.batches import Batch
from aekit.models.registry import register_model
from aekit.models.vae import VAE, VAEConfig


@dataclass(frozen=True)
class IWAEConfig(VAEConfig):
    """``iw_samples``: K, the importance samples of the training bound (the cost of a step grows with it)."""

    iw_samples: int = 5


def iw_bound(log_w: Tensor) -> Tensor:
    """The importance-weighted bound from log weights. Shape: (K, B) -> (B,)."""
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


@register_model("iwae")
class IWAE(VAE):
    """Importance-weighted autoencoder: the VAE trained on the K-sample bound (Burda et al. 2016)."""

    config_class = IWAEConfig

    def __init__(self, config: IWAEConfig) -> None:
        if config.iw_samples < 1:
            raise ValueError(f"iw_samples must be at least 1, not {config.iw_samples}")
        super().__init__(config)

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        log_w, out = self._log_weights(batch.x, batch.y, self.config.iw_samples)  # (K, B), (K * B, ...)
        bound = iw_bound(log_w).mean()
        # the MSE reported: in training the first draw's reconstruction (free), in evaluation the mean code's
        with torch.no_grad():
            if self.training:
                x_hat = self._mean(out[: len(batch)])
            else:
                x_hat = self.decode(self.posterior(batch.x, batch.y)[0], batch.y)
            mse = F.mse_loss(x_hat, batch.x)
        if self.training:
            self.steps += 1
        return {"loss": -bound, "iw_bound": bound.detach(), "elbo": log_w.mean().detach(), "mse": mse}
