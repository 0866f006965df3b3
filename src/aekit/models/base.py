"""The contract every aekit model keeps, and the reconstruction losses they share.

A model is an ``nn.Module`` with ``encode(x) -> z``, ``decode(z) -> x_hat``,
``forward(x) -> Output`` and ``loss(batch) -> {"loss": total, term: value, ...}``.
Models that train more than one set of parameters (the AAE's discriminator) list
their ``phases``; the trainer keeps one optimizer a phase and stays one loop.

Optional abilities are declared here, on the base class, so that callers ask the model
(``model.has_likelihood``) instead of probing it with ``hasattr``:

- ``has_likelihood``: ``nll(x, y, k)`` and ``kl_per_dim(x, y)`` (the VAE family);
- ``has_codebook``: ``codes(x)``, ``quantize(z)`` and a ``codebook`` embedding (VQ models);
- ``generative``: ``sample(n, generator, y)``; ``conditional``: labels in every call;
- ``finalize()``: called by the trainer after every epoch, before the checkpoint is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.data.batches import Batch


@dataclass
class Output:
    """What ``forward`` returns.

    Shape:
        x_hat: (B, *input_shape), the reconstruction in model space.
        z: (B, latent_dim), the code.
    """

    x_hat: Tensor
    z: Tensor


def reconstruction_loss(x_hat: Tensor, x: Tensor, kind: str) -> Tensor:
    """Mean per element: ``"mse"`` or ``"bce"`` (x_hat in (0, 1))."""
    if kind == "mse":
        return F.mse_loss(x_hat, x)
    if kind == "bce":
        return F.binary_cross_entropy(x_hat.clamp(1e-6, 1 - 1e-6), x)
    raise ValueError(f"unknown reconstruction loss {kind!r}")


class Autoencoder(nn.Module):
    """Base class: subclasses build ``encoder``/``decoder`` and may extend ``loss``."""

    config_class: ClassVar[type]
    model_name: ClassVar[str]
    phases: ClassVar[tuple[str, ...]] = ("main",)
    generative: ClassVar[bool] = False  # has sample(n, generator, y)
    conditional: ClassVar[bool] = False  # needs labels y in encode/decode/forward
    data_kind: ClassVar[str] = "values"  # "values": images or tables in [0, 1]; "tokens": music
    fully_convolutional: ClassVar[bool] = False  # takes arch="fcn": spatial codes, images of any size
    has_likelihood: ClassVar[bool] = False  # nll() and kl_per_dim(): the VAE family
    has_codebook: ClassVar[bool] = False  # codes(), quantize() and codebook: vector-quantised models

    def __init__(self, config: Any) -> None:
        super().__init__()
        if getattr(config, "arch", None) == "fcn" and not self.fully_convolutional:
            raise ValueError(f"{type(self).__name__} has no fully convolutional form (arch 'fcn')")
        self.config = config

    @property
    def any_size(self) -> bool:
        """Built fully convolutional (``arch="fcn"``): images of any size, spatial codes."""
        return self.fully_convolutional and self.config.arch == "fcn"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config.input_shape)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """(B, *input_shape) -> (B, latent_dim); ``y`` (B,) labels, used by conditional models only."""
        return self.encoder(x)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """(B, latent_dim) -> (B, *input_shape)."""
        return self.decoder(z)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        z = self.encode(x, y)
        return Output(self.decode(z, y), z)

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        """Named loss terms for one batch; ``"loss"`` is what the optimizer of ``phase`` minimises."""
        out = self(batch.x, batch.y)
        rec = reconstruction_loss(out.x_hat, batch.x, self.config.loss)
        mse = rec.detach() if self.config.loss == "mse" else F.mse_loss(out.x_hat.detach(), batch.x)
        return {"loss": rec, "mse": mse}

    def phase_parameters(self, phase: str) -> list[nn.Parameter]:
        """The parameters the optimizer of ``phase`` updates (all of them for one-phase models)."""
        return list(self.parameters())

    def finalize(self) -> None:
        """Derive what training alone does not keep up to date (e.g. a codec's integer entropy
        tables). The trainer calls it after every epoch, so every checkpoint is usable."""

    def nll(self, x: Tensor, y: Tensor | None = None, k: int = 50) -> Tensor:
        """(B,) negative log-likelihood per sample in nats, importance-weighted over ``k`` samples."""
        raise NotImplementedError(f"{self.model_name} has no likelihood (has_likelihood is False)")

    def kl_per_dim(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """(latent_dim,) the mean KL of the posterior to the prior per latent dimension (nats)."""
        raise NotImplementedError(f"{self.model_name} has no posterior (has_likelihood is False)")

    def codes(self, x: Tensor) -> Tensor:
        """(B, ...) int64 codebook indices of the inputs."""
        raise NotImplementedError(f"{self.model_name} has no codebook (has_codebook is False)")

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The deterministic reconstruction used for evaluation and figures."""
        return self(x, y).x_hat
