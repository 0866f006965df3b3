"""The vector-quantised autoencoder (van den Oord et al. 2017).

The encoder's code (B, latent_dim) is read as ``latent_dim // code_dim`` vectors of size
``code_dim``, each replaced by its nearest codebook entry; gradients pass straight
through the quantiser. The codebook learns by the codebook loss; entries unused for
``restart_every`` steps are moved to random encoder outputs (dead-code restart), drawn
from torch's global generator, so a seeded run restarts the same codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.data.batches import Batch
from aekit.models.base import Autoencoder, Output, reconstruction_loss
from aekit.models.layers import Backbone, build_decoder, build_encoder
from aekit.models.registry import register_model


@dataclass(frozen=True)
class VQVAEConfig(Backbone):
    """``latent_dim`` must be a multiple of ``code_dim``; ``commitment`` is beta in the paper."""

    latent_dim: int = 32
    code_dim: int = 4
    codebook_size: int = 128
    commitment: float = 0.25
    restart_every: int = 100


@dataclass
class VQOutput(Output):
    """Shape: indices (B, latent_dim // code_dim) codebook rows; z_e (B, latent_dim) before quantising."""

    indices: Tensor
    z_e: Tensor


@register_model("vqvae")
class VQVAE(Autoencoder):
    """Vector-quantised autoencoder: a learned codebook, straight-through gradients, dead codes restarted."""

    config_class = VQVAEConfig
    has_codebook = True

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__(config)
        if config.latent_dim % config.code_dim:
            raise ValueError(
                f"latent_dim {config.latent_dim} must be a multiple of code_dim {config.code_dim}"
            )
        self.encoder = build_encoder(config, config.latent_dim)
        self.decoder = build_decoder(config, config.latent_dim)
        self.codebook = nn.Embedding(config.codebook_size, config.code_dim)
        nn.init.uniform_(self.codebook.weight, -1 / config.codebook_size, 1 / config.codebook_size)
        self.register_buffer(
            "idle", torch.zeros(config.codebook_size, dtype=torch.long)
        )  # steps since last use

    def quantize(self, z_e: Tensor) -> tuple[Tensor, Tensor]:
        """Nearest codebook rows. Shape: (B, latent_dim) -> z_q (B, latent_dim), indices (B, M)."""
        b = len(z_e)
        flat = z_e.reshape(-1, self.config.code_dim)  # (B*M, code_dim)
        indices = torch.cdist(flat, self.codebook.weight).argmin(1)
        return self.codebook(indices).reshape(b, -1), indices.reshape(b, -1)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.quantize(self.encoder(x))[0]

    def codes(self, x: Tensor) -> Tensor:
        """Codebook indices (B, M), for compression and priors over codes."""
        return self.quantize(self.encoder(x))[1]

    def decode_codes(self, indices: Tensor) -> Tensor:
        """Indices (B, M) -> images (B, *input_shape)."""
        return self.decode(self.codebook(indices).reshape(len(indices), -1))

    def forward(self, x: Tensor, y: Tensor | None = None) -> VQOutput:
        z_e = self.encoder(x)
        z_q, indices = self.quantize(z_e)
        z_st = z_q + (z_e - z_e.detach())  # straight through: the value of z_q, the gradient of z_e
        return VQOutput(self.decode(z_st), z_st, indices, z_e)

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        out = self(batch.x)
        z_q = self.codebook(out.indices).reshape(len(batch), -1)
        rec = reconstruction_loss(out.x_hat, batch.x, self.config.loss)
        codebook = F.mse_loss(z_q, out.z_e.detach())
        commit = F.mse_loss(out.z_e, z_q.detach())
        counts = torch.bincount(out.indices.flatten(), minlength=self.config.codebook_size)
        p = counts.float() / counts.sum()
        perplexity = torch.exp(-(p * (p + 1e-10).log()).sum())
        restarted = self._restart_dead_codes(counts, out.z_e.detach()) if self.training else 0
        return {
            "loss": rec + codebook + self.config.commitment * commit,
            "rec": rec.detach(),
            "codebook": codebook.detach(),
            "commit": commit.detach(),
            "perplexity": perplexity,
            "restarted": torch.tensor(float(restarted)),  # dead codes moved at this step
            "mse": F.mse_loss(out.x_hat.detach(), batch.x),
        }

    @torch.no_grad()
    def _restart_dead_codes(self, counts: Tensor, z_e: Tensor) -> int:
        """Move codes idle for ``restart_every`` steps onto random encoder outputs; how many moved.

        Under torchrun the usage is summed over the ranks and rank 0's new codes are sent to all,
        so that every rank keeps the same codebook.
        """
        ddp = torch.distributed.is_available() and torch.distributed.is_initialized()
        if ddp:
            counts = counts.clone()
            torch.distributed.all_reduce(counts)
        self.idle.add_(1).masked_fill_(counts > 0, 0)
        dead = (self.idle >= self.config.restart_every).nonzero().flatten()
        if len(dead):
            candidates = z_e.reshape(-1, self.config.code_dim)
            pick = torch.randint(len(candidates), (len(dead),), device=z_e.device)
            self.codebook.weight[dead] = candidates[pick]
            self.idle[dead] = 0
            if ddp:
                torch.distributed.broadcast(self.codebook.weight.data, src=0)
        return len(dead)
