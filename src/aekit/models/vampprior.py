"""``vampprior``: the VAE with a VampPrior (Tomczak & Welling 2018).

The prior is the mixture of the encoder's own posteriors at K learned pseudo-inputs u_k,
``p(z) = (1/K) sum_k q(z | u_k)``, so it follows where the data's codes are instead of pulling
them to N(0, I). Its KL term has no closed form: one-sample estimate log q(z|x) - log p(z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from aekit.models.registry import register_model
from aekit.models.vae import LOG_2PI, VAE, VAEConfig

PSEUDO_INPUTS = ("free", "linear")


@dataclass(frozen=True)
class VampPriorConfig(VAEConfig):
    """``components``: K, the pseudo-inputs (pythae's default is 50).

    ``kl_warmup_steps``: 1000 here (the plain VAE's is 0): the KL weight ramps from 0 to 1 over
    the first 1000 steps, so that the encoder places the codes before the prior (which is made of
    the encoder's own posteriors) pulls them together; chosen on a validation split of the
    Fashion-MNIST training set (docs/benchmarks/models.md). Runs saved before record their 0.

    ``pseudo_inputs``: how they are parameterised. ``free``: one free image per component, starting
    at 0.5 + 0.05 N(0, 1); ``linear``: u_k = W e_k + b (a weight column per component plus a bias
    shared by all, PyTorch's default initialisation near 0), as pythae and the paper's code build
    them. Both are clamped to [0, 1]. Runs saved before the field existed were ``free``.
    """

    components: int = 50
    pseudo_inputs: str = "free"
    kl_warmup_steps: int = 1000


def log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last axis (broadcasting)."""
    return (-0.5 * ((z - mu).pow(2) * (-logvar).exp() + logvar + LOG_2PI)).sum(-1)


@register_model("vampprior")
class VampPriorVAE(VAE):
    """VAE whose prior mixes the posteriors of learned pseudo-inputs (VampPrior, Tomczak & Welling 2018)."""

    config_class = VampPriorConfig
    fully_convolutional = False  # the mixture is over flat codes

    def __init__(self, config: VampPriorConfig) -> None:
        if config.components < 1:
            raise ValueError(f"components must be at least 1, not {config.components}")
        if config.pseudo_inputs not in PSEUDO_INPUTS:
            raise ValueError(f"pseudo_inputs must be free or linear, not {config.pseudo_inputs!r}")
        super().__init__(config)
        # pseudo-inputs live in data space, kept in [0, 1] by a hard clamp (as in the paper's code)
        if config.pseudo_inputs == "free":
            self.pseudo = nn.Parameter(0.5 + 0.05 * torch.randn(config.components, *config.input_shape))
        else:  # Linear(K -> D) applied to the K one-hot vectors: weight (D, K), bias (D,)
            self.pseudo_net = nn.Linear(config.components, math.prod(config.input_shape))
        self.clip = nn.Hardtanh(0.0, 1.0)

    def pseudo_inputs(self) -> Tensor:
        """The K pseudo-inputs u_k, in [0, 1]. Shape: -> (K, *input_shape)."""
        if self.config.pseudo_inputs == "free":
            return self.clip(self.pseudo)
        u = self.pseudo_net.weight.t() + self.pseudo_net.bias  # row k: W e_k + b
        return self.clip(u).view(-1, *self.config.input_shape)

    def components(self) -> tuple[Tensor, Tensor]:
        """mu, logvar of the K prior components. Shape: -> (K, D), (K, D)."""
        return self.posterior(self.pseudo_inputs())

    def log_prior(self, z: Tensor, batch_dims: int = 1) -> Tensor:
        """log (1/K) sum_k q(z | u_k). Shape: (*batch, D) -> (*batch)."""
        mu, logvar = self.components()
        per = log_normal(z.unsqueeze(-2), mu, logvar)  # (..., K)
        return torch.logsumexp(per, -1) - math.log(len(mu))

    def kl_term(self, mu: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        return log_normal(z, mu, logvar) - self.log_prior(z)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        mu, logvar = self.components()
        device = mu.device
        k = torch.randint(len(mu), (n,), generator=generator, device=device)
        eps = torch.randn(n, mu.shape[1], generator=generator, device=device)
        return mu[k] + eps * (0.5 * logvar[k]).exp()
