"""``music-vae``: a recurrent sequence VAE for melodies and four-voice polyphony.

Input: tokens (B, steps) for one voice or (B, steps, voices) (see :mod:`aekit.data.music`),
stored as floats by the data layer. A bidirectional GRU reads the embedded tokens of all
voices at each step and gives the Gaussian posterior; an autoregressive GRU, its state
started from the code and the code fed at every step, predicts each step's tokens from the
previous step's (teacher forcing in training, its own greedy choices when decoding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.data.batches import Batch
from aekit.data.music import VOCAB
from aekit.errors import ConfigError
from aekit.models.base import Autoencoder
from aekit.models.registry import register_model
from aekit.models.vae import kl_normal


@dataclass(frozen=True)
class MusicVAEConfig:
    """``input_shape`` (steps,) or (steps, voices) comes from the data; ``free_bits`` (nats per
    code dimension) keeps the KL from collapsing; ``kl_warmup_steps`` ramps beta up from 0.

    ``beta`` is small (0.02) so that the code carries the melody: a 2-bar chorale line needs about
    60-70 nats of code, and at beta 0.2 the code held too little for exact note-by-note
    reconstruction (81% of held-out onsets against 96% at 0.02; docs/benchmarks/music.md)."""

    input_shape: tuple[int, ...] = (32,)
    latent_dim: int = 32
    embed: int = 32
    hidden: int = 256
    beta: float = 0.02
    free_bits: float = 0.1
    kl_warmup_steps: int = 2000
    vocab: int = VOCAB

    def __post_init__(self) -> None:
        if len(self.input_shape) not in (1, 2):
            raise ConfigError(
                f"model 'music-vae' takes token sequences (steps,) or (steps, voices), not {self.input_shape}"
            )

    @property
    def steps(self) -> int:
        return self.input_shape[0]

    @property
    def voices(self) -> int:
        return self.input_shape[1] if len(self.input_shape) == 2 else 1


@register_model("music-vae")
class MusicVAE(Autoencoder):
    """Recurrent VAE for music: bidirectional GRU encoder, autoregressive GRU decoder."""

    config_class = MusicVAEConfig
    generative = True
    has_likelihood = True
    data_kind = "tokens"  # token sequences, not images or tables
    any_length = False  # decode(z, bars=...) writes any number of bars (the conductor model)

    def __init__(self, config: MusicVAEConfig) -> None:
        super().__init__(config)
        c = config
        self.embed = nn.Embedding(c.vocab + 1, c.embed)  # index vocab: "start" before the first step
        self.encoder_rnn = nn.GRU(c.voices * c.embed, c.hidden, batch_first=True, bidirectional=True)
        self.to_posterior = nn.Linear(2 * c.hidden, 2 * c.latent_dim)
        self.to_state = nn.Linear(c.latent_dim, c.hidden)
        self.decoder_rnn = nn.GRU(c.voices * c.embed + c.latent_dim, c.hidden, batch_first=True)
        self.to_logits = nn.Linear(c.hidden, c.voices * c.vocab)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # for the KL warm-up

    def _tokens(self, x: Tensor) -> Tensor:
        t = x.round().long().clamp(0, self.config.vocab - 1)
        return t[..., None] if t.dim() == 2 else t  # (B, steps, voices)

    def _embedded(self, tokens: Tensor) -> Tensor:
        return self.embed(tokens).flatten(2)  # (B, steps, voices * embed)

    def posterior(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        _, h = self.encoder_rnn(self._embedded(self._tokens(x)))
        mu, logvar = self.to_posterior(torch.cat([h[0], h[1]], 1)).chunk(2, 1)
        return mu, logvar.clamp(-10, 10)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.posterior(x)[0]

    def _logits(self, z: Tensor, tokens: Tensor) -> Tensor:
        """Teacher forcing: logits (B, steps, voices, vocab) of each step given the previous."""
        b = len(z)
        start = torch.full((b, 1, self.config.voices), self.config.vocab, device=z.device, dtype=torch.long)
        previous = torch.cat([start, tokens[:, :-1]], 1)
        inputs = torch.cat([self._embedded(previous), z[:, None].expand(-1, tokens.shape[1], -1)], 2)
        out, _ = self.decoder_rnn(inputs, torch.tanh(self.to_state(z))[None])
        return self.to_logits(out).view(b, tokens.shape[1], self.config.voices, self.config.vocab)

    def decode(self, z: Tensor, y: Tensor | None = None, temperature: float = 0.0, generator=None) -> Tensor:
        """Tokens from codes, step by step: greedy (``temperature`` 0) or sampled.

        Shape: (B, latent_dim) -> (B, *input_shape)
        """
        c = self.config
        prev = torch.full((len(z), 1, c.voices), c.vocab, device=z.device, dtype=torch.long)
        tokens = self._run_decoder(z, prev, c.steps, temperature, generator).float()  # (B, steps, voices)
        return tokens[..., 0] if len(c.input_shape) == 1 else tokens

    def _run_decoder(self, cond: Tensor, prev: Tensor, steps: int, temperature: float, generator) -> Tensor:
        """``steps`` tokens from the decoder GRU conditioned on ``cond`` (B, latent_dim), after ``prev``.

        Shape: prev (B, 1, voices) -> (B, steps, voices), long
        """
        c, b = self.config, len(cond)
        h = torch.tanh(self.to_state(cond))[None]
        out = []
        for _ in range(steps):
            inp = torch.cat([self._embedded(prev), cond[:, None]], 2)
            o, h = self.decoder_rnn(inp, h)
            logits = self.to_logits(o[:, 0]).view(b, c.voices, c.vocab)
            if temperature > 0:
                probs = F.softmax(logits / temperature, -1).flatten(0, 1)
                tok = torch.multinomial(probs, 1, generator=generator).view(b, c.voices)
            else:
                tok = logits.argmax(-1)
            out.append(tok)
            prev = tok[:, None]
        return torch.stack(out, 1)

    def forward(self, x: Tensor, y: Tensor | None = None):
        from aekit.models.base import Output

        mu, _ = self.posterior(x)
        return Output(self.decode(mu), mu)

    def beta_now(self) -> float:
        warm = self.config.kl_warmup_steps
        return self.config.beta * (min(1.0, float(self.updates) / warm) if warm > 0 else 1.0)

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        tokens = self._tokens(batch.x)
        mu, logvar = self.posterior(batch.x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        logits = self._logits(z, tokens)
        rec = F.cross_entropy(logits.flatten(0, 2), tokens.flatten(), reduction="sum") / len(tokens)
        kl_dims = kl_normal(mu, logvar).mean(0)
        kl = kl_dims.sum()
        kl_free = kl_dims.clamp_min(self.config.free_bits).sum()
        if self.training:
            self.updates += 1
        with torch.no_grad():
            accuracy = (logits.argmax(-1) == tokens).float().mean()
            notes = tokens >= 2
            note_acc = ((logits.argmax(-1) == tokens) & notes).sum() / notes.sum().clamp_min(1)
        return {
            "loss": rec + self.beta_now() * kl_free,
            "rec": rec.detach(),
            "kl": kl.detach(),
            "elbo": -(rec + kl).detach(),
            "accuracy": accuracy,  # teacher-forced, per step and voice
            "note_accuracy": note_acc,
            "mse": 1 - accuracy,  # what the shared logs call the reconstruction error
        }

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, y: Tensor | None = None, temperature=0.0
    ):
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=device)
        return self.decode(z, temperature=temperature, generator=generator)

    @torch.no_grad()
    def kl_per_dim(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return kl_normal(*self.posterior(x)).mean(0)

    @torch.no_grad()
    def nll(self, x: Tensor, y: Tensor | None = None, k: int = 50) -> Tensor:
        """Importance-weighted -log p(x) in nats per sequence. Shape: (B,)."""
        tokens = self._tokens(x)
        mu, logvar = self.posterior(x)
        std = (0.5 * logvar).exp()
        terms = []
        for _ in range(k):
            eps = torch.randn_like(mu)
            z = mu + eps * std
            logits = self._logits(z, tokens)
            log_px = -F.cross_entropy(logits.permute(0, 3, 1, 2), tokens, reduction="none").flatten(1).sum(1)
            log_q = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(1)
            log_prior = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(1)
            terms.append(log_px + log_prior - log_q)
        return -(torch.logsumexp(torch.stack(terms), 0) - math.log(k))
