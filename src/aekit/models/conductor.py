"""``music-conductor``: the music VAE with a hierarchical decoder for long melodies (MusicVAE's
"conductor", Roberts et al. 2018).

The code z goes to a conductor GRU that emits one embedding per bar; a bar-level GRU (the flat
music VAE's decoder, reused) writes each bar's 16 steps from that bar's embedding alone, its state
started afresh at every bar boundary. The bar decoder cannot carry a long memory of its own, so
the structure of a 16-bar melody has to come through the code: it holds together, and
interpolating between two codes changes it smoothly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from aekit.data.music import STEPS_PER_BAR
from aekit.errors import ConfigError
from aekit.models.music import MusicVAE, MusicVAEConfig
from aekit.models.registry import register_model


@dataclass(frozen=True)
class ConductorConfig(MusicVAEConfig):
    """``input_shape`` (bars * 16,) comes from the data (e.g. ``bach-16bars``); ``conductor``: the
    conductor GRU's width."""

    input_shape: tuple[int, ...] = (256,)
    latent_dim: int = 64
    conductor: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.input_shape[0] % STEPS_PER_BAR:
            raise ConfigError(
                f"model 'music-conductor' needs whole bars of {STEPS_PER_BAR} steps, "
                f"not {self.input_shape[0]}"
            )

    @property
    def bars(self) -> int:
        return self.input_shape[0] // STEPS_PER_BAR


@register_model("music-conductor")
class ConductorVAE(MusicVAE):
    """Music VAE with a hierarchical decoder: one conductor embedding per bar, then a bar decoder."""

    config_class = ConductorConfig
    any_length = True  # the conductor runs for as many bars as asked

    def __init__(self, config: ConductorConfig) -> None:
        super().__init__(config)
        c = config
        self.to_conductor = nn.Linear(c.latent_dim, c.conductor)
        self.conductor_rnn = nn.GRU(c.latent_dim, c.conductor, batch_first=True)
        self.to_bar = nn.Linear(c.conductor, c.latent_dim)  # a bar's embedding: what the bar decoder sees

    def bar_embeddings(self, z: Tensor, bars: int | None = None) -> Tensor:
        """The conductor: one embedding per bar (``bars``, default the training length).

        Shape: (B, latent_dim) -> (B, bars, latent_dim)
        """
        bars = bars or self.config.bars
        out, _ = self.conductor_rnn(z[:, None].expand(-1, bars, -1), torch.tanh(self.to_conductor(z))[None])
        return torch.tanh(self.to_bar(out))

    def _logits(self, z: Tensor, tokens: Tensor) -> Tensor:
        """Teacher forcing, every bar at once: logits (B, steps, voices, vocab)."""
        c, b = self.config, len(z)
        bars = self.bar_embeddings(z).flatten(0, 1)  # (B * bars, D)
        start = torch.full((b, 1, c.voices), c.vocab, device=z.device, dtype=torch.long)
        previous = torch.cat([start, tokens[:, :-1]], 1).view(b * c.bars, STEPS_PER_BAR, c.voices)
        inputs = torch.cat([self._embedded(previous), bars[:, None].expand(-1, STEPS_PER_BAR, -1)], 2)
        out, _ = self.decoder_rnn(inputs, torch.tanh(self.to_state(bars))[None])  # a fresh state per bar
        return self.to_logits(out).view(b, c.steps, c.voices, c.vocab)

    def decode(
        self,
        z: Tensor,
        y: Tensor | None = None,
        temperature: float = 0.0,
        generator=None,
        bars: int | None = None,
    ) -> Tensor:
        """Tokens bar by bar, ``bars`` of them (default the training length); each bar starts after
        the previous bar's last token.

        Shape: (B, latent_dim) -> (B, bars * 16) (or (B, bars * 16, voices))
        """
        c = self.config
        embeddings = self.bar_embeddings(z, bars)
        prev = torch.full((len(z), 1, c.voices), c.vocab, device=z.device, dtype=torch.long)
        out = []
        for i in range(embeddings.shape[1]):
            out.append(self._run_decoder(embeddings[:, i], prev, STEPS_PER_BAR, temperature, generator))
            prev = out[-1][:, -1:]
        tokens = torch.cat(out, 1).float()  # (B, steps, voices)
        return tokens[..., 0] if len(c.input_shape) == 1 else tokens
