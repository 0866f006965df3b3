"""The VAE family: ``vae`` (Kingma & Welling 2014; ``beta`` > 1 is the beta-VAE) and ``cvae``.

All quantities are in nats per sample, summed over pixels: ``rec`` is -log p(x|z),
``kl`` is KL(q(z|x) || N(0, I)), and ``elbo`` = -(rec + kl) is the true bound (beta = 1)
whatever ``beta`` training uses.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from aekit.data.batches import Batch
from aekit.models.base import Autoencoder, Output
from aekit.models.layers import Backbone, build_decoder, build_encoder
from aekit.models.registry import register_model

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class VAEConfig(Backbone):
    """``decoder_dist``: ``bernoulli`` (data in [0, 1]) or ``gaussian`` with fixed std ``decoder_std``.
    ``kl_warmup_steps``: beta ramps from 0 to ``beta`` over that many training steps."""

    latent_dim: int = 16
    beta: float = 1.0
    decoder_dist: str = "bernoulli"
    decoder_std: float = 0.1
    kl_warmup_steps: int = 0


@dataclass
class VAEOutput(Output):
    """Shape: mu, logvar: (B, latent_dim), the Gaussian posterior q(z|x)."""

    mu: Tensor
    logvar: Tensor


def kl_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per dimension, closed form. Shape: (B, D) -> (B, D)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)


@register_model("vae")
class VAE(Autoencoder):
    """Variational autoencoder (Gaussian encoder, Bernoulli or Gaussian decoder); beta-VAE with beta > 1."""

    config_class = VAEConfig
    generative = True
    fully_convolutional = True  # arch="fcn": a code (B, latent_dim, H/s, W/s), N(0, I) at every position
    has_likelihood = True

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        if config.decoder_dist not in ("bernoulli", "gaussian"):
            raise ValueError(f"decoder_dist must be bernoulli or gaussian, got {config.decoder_dist!r}")
        self.encoder = build_encoder(self._encoder_config(), 2 * config.latent_dim)
        # the decoder gives logits (bernoulli) or means (gaussian); decode() applies the output activation
        self.decoder = build_decoder(
            dataclasses.replace(config, output_activation="none"), self._decoder_inputs()
        )
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # for KL warm-up; saved, so resumes

    # conditional subclasses widen the inputs; the plain VAE uses the backbone as it is
    def _encoder_config(self) -> Backbone:
        return self.config

    def _decoder_inputs(self) -> int:
        return self.config.latent_dim

    def _encoder_input(self, x: Tensor, y: Tensor | None) -> Tensor:
        return x

    def _decoder_input(self, z: Tensor, y: Tensor | None) -> Tensor:
        return z

    def posterior(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """mu, logvar of q(z|x). Shape: (B, *input_shape) -> (B, D), (B, D)."""
        mu, logvar = self.encoder(self._encoder_input(x, y)).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def logits(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Decoder output before the output activation. Shape: (B, D) -> (B, *input_shape)."""
        return self.decoder(self._decoder_input(z, y))

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.posterior(x, y)[0]  # the mean: a deterministic code

    def _mean(self, out: Tensor) -> Tensor:
        """Decoder output -> the mean of p(x|z), in [0, 1]."""
        return torch.sigmoid(out) if self.config.decoder_dist == "bernoulli" else out.clamp(0, 1)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self._mean(self.logits(z, y))

    def forward(self, x: Tensor, y: Tensor | None = None) -> VAEOutput:
        mu, logvar = self.posterior(x, y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return VAEOutput(self.decode(z, y), z, mu, logvar)

    def log_likelihood(self, x: Tensor, z: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x|z) per sample, summed over pixels. Shape: (B, *input_shape), (B, D) -> (B,)."""
        return self._log_px(x, self.logits(z, y))

    def _log_px(self, x: Tensor, out: Tensor) -> Tensor:
        if self.config.decoder_dist == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
        s = self.config.decoder_std
        return (-0.5 * ((x - out) / s).pow(2) - math.log(s) - 0.5 * LOG_2PI).flatten(1).sum(1)

    def kl_term(self, mu: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        """KL(q(z|x) || p(z)) per sample: the closed form for N(0, I); models with another prior
        override it (``z`` is the posterior draw, for a one-sample estimate). Shape: (B, D) -> (B,)."""
        return kl_normal(mu, logvar).flatten(1).sum(1)

    def beta_now(self) -> float | Tensor:
        warm = self.config.kl_warmup_steps
        if warm <= 0:
            return self.config.beta
        if torch.compiler.is_compiling():  # a compiled training step: the ramp as a tensor, no graph break
            return self.config.beta * (self.steps / warm).clamp(max=1.0)
        return self.config.beta * min(1.0, float(self.steps) / warm)

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        mu, logvar = self.posterior(batch.x, batch.y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        out = self.logits(z, batch.y)
        rec = -self._log_px(batch.x, out).mean()
        kl = self.kl_term(mu, logvar, z).mean()
        beta = self.beta_now()
        with torch.no_grad():  # training: of the sampled reconstruction (free); evaluation: of the mean code
            x_hat = self._mean(out) if self.training else self.decode(mu, batch.y)
            mse = F.mse_loss(x_hat, batch.x)
        if self.training:
            self.steps += 1
        return {
            "loss": rec + beta * kl,
            "rec": rec.detach(),
            "kl": kl.detach(),
            "elbo": -(rec + kl).detach(),
            "mse": mse,
        }

    def log_prior(self, z: Tensor, batch_dims: int = 1) -> Tensor:
        """log p(z) of the prior, N(0, I) here, summed over each code's elements.

        Shape: (*batch, *code) with ``batch_dims`` leading axes -> (*batch)
        """
        return (-0.5 * z.pow(2) - 0.5 * LOG_2PI).flatten(batch_dims).sum(-1)

    def code_shape(self) -> tuple[int, ...]:
        """One code's shape: (latent_dim,), or (latent_dim, H/s, W/s) for arch="fcn" at the training size."""
        c = self.config
        if c.arch != "fcn":
            return (c.latent_dim,)
        from aekit.models.fcn import total_stride

        s = total_stride(c.channels)
        return (c.latent_dim, -(-c.input_shape[1] // s), -(-c.input_shape[2] // s))

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` codes drawn from the prior. Shape: -> (n, *code_shape)."""
        device = next(self.parameters()).device
        return torch.randn(n, *self.code_shape(), generator=generator, device=device)

    def log_weights(self, x: Tensor, y: Tensor | None = None, k: int = 1) -> Tensor:
        """log p(x, z_k) - log q(z_k|x) for ``k`` reparameterised draws z_k ~ q(z|x) (differentiable).

        The IWAE bound is ``logsumexp(w, 0) - log k``; ``k = 1`` gives the ELBO's one-sample estimate.

        Shape:
            x: (B, *input_shape) -> (k, B)
        """
        return self._log_weights(x, y, k)[0]

    def _log_weights(self, x: Tensor, y: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
        """:meth:`log_weights`, and the decoder's outputs for the draws.

        Shape: -> (k, B), (k * B, *input_shape)
        """
        mu, logvar = self.posterior(x, y)
        eps = torch.randn(k, *mu.shape, dtype=mu.dtype, device=mu.device)
        z = mu + eps * (0.5 * logvar).exp()  # (k, B, *code)
        log_q = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * LOG_2PI).flatten(2).sum(-1)
        xs = x.expand(k, *x.shape).flatten(0, 1)
        ys = None if y is None else y.expand(k, *y.shape).flatten(0, 1)
        out = self.logits(z.flatten(0, 1), ys)
        log_px = self._log_px(xs, out).view(k, -1)
        return log_px + self.log_prior(z, batch_dims=2) - log_q, out

    @torch.no_grad()
    def nll(self, x: Tensor, y: Tensor | None = None, k: int = 50) -> Tensor:
        """Importance-weighted estimate of -log p(x) in nats (Burda et al. 2016), ``k`` samples.

        Shape:
            x: (B, *input_shape) -> (B,)
        """
        chunk = max(1, 25_000 // max(len(x), 1))  # decoder calls of at most ~25k rows
        w = torch.cat([self.log_weights(x, y, min(chunk, k - i)) for i in range(0, k, chunk)])
        return -(torch.logsumexp(w, 0) - math.log(k))

    @torch.no_grad()
    def kl_per_dim(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Mean KL per latent dimension over ``x``: near-zero dimensions are collapsed. Shape: (D,)."""
        kl = kl_normal(*self.posterior(x, y))
        return kl.transpose(0, 1).flatten(1).mean(1)  # (B, D, ...) -> (D,): also over positions (fcn)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """Decode ``n`` codes drawn from the prior (:meth:`prior_sample`). Shape: -> (n, *input_shape)."""
        return self.decode(self.prior_sample(n, generator), y)


@dataclass(frozen=True)
class CVAEConfig(VAEConfig):
    """``num_classes`` is filled from the data's labels."""

    num_classes: int = 0


@register_model("cvae")
class CVAE(VAE):
    """Conditional VAE: encoder and decoder see the one-hot label (Sohn et al. 2015)."""

    config_class = CVAEConfig
    conditional = True
    fully_convolutional = False

    def __init__(self, config: CVAEConfig) -> None:
        if config.num_classes < 1:
            raise ValueError("cvae needs labelled data: num_classes must be at least 1")
        super().__init__(config)

    def _encoder_config(self) -> Backbone:
        c = self.config
        if c.arch == "conv":  # the label as extra constant channels
            return dataclasses.replace(c, input_shape=(c.input_shape[0] + c.num_classes, *c.input_shape[1:]))
        return dataclasses.replace(c, input_shape=(math.prod(c.input_shape) + c.num_classes,))

    def _decoder_inputs(self) -> int:
        return self.config.latent_dim + self.config.num_classes

    def _one_hot(self, y: Tensor | None) -> Tensor:
        if y is None:
            raise ValueError("cvae needs labels y")
        return F.one_hot(y.long(), self.config.num_classes).float()

    def _encoder_input(self, x: Tensor, y: Tensor | None) -> Tensor:
        h = self._one_hot(y)
        if self.config.arch == "conv":
            return torch.cat([x, h[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        return torch.cat([x.flatten(1), h], dim=1)

    def _decoder_input(self, z: Tensor, y: Tensor | None) -> Tensor:
        return torch.cat([z, self._one_hot(y)], dim=1)
