"""Noise models for denoising: pure functions on float images in [0, 1].

Each takes an optional ``torch.Generator`` (the same seed gives the same noise) and
returns a new tensor clipped to [0, 1]. ``level`` may be a ``(low, high)`` pair: then
each sample draws its own level uniformly (blind denoising).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Level = float | tuple[float, float]


def _levels(x: Tensor, level: Level, generator: torch.Generator | None) -> Tensor:
    """The level per sample, shaped to broadcast over one sample: (B, 1, ..., 1)."""
    shape = (len(x),) + (1,) * (x.dim() - 1)
    if isinstance(level, tuple):
        low, high = level
        u = torch.rand(shape, generator=generator, device=x.device)
        return low + (high - low) * u
    return torch.full(shape, float(level), device=x.device)


def gaussian(x: Tensor, sigma: Level, generator: torch.Generator | None = None) -> Tensor:
    """Add N(0, sigma^2) to every value."""
    noise = torch.randn(x.shape, generator=generator, device=x.device)
    return (x + noise * _levels(x, sigma, generator)).clamp_(0, 1)


def salt_and_pepper(x: Tensor, rate: Level, generator: torch.Generator | None = None) -> Tensor:
    """Set a share ``rate`` of the values to 0 or 1, half each."""
    u = torch.rand(x.shape, generator=generator, device=x.device)
    r = _levels(x, rate, generator)
    out = x.clone()
    out[u < r / 2] = 0.0
    out[(u >= r / 2) & (u < r)] = 1.0
    return out


def masking(x: Tensor, fraction: Level, generator: torch.Generator | None = None) -> Tensor:
    """Zero each value independently with probability ``fraction``."""
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= _levels(x, fraction, generator)
    return x * keep


def occlusion(x: Tensor, fraction: Level, generator: torch.Generator | None = None) -> Tensor:
    """Zero one random square per image covering about ``fraction`` of its area.

    Shape:
        x: (B, C, H, W)
    """
    if x.dim() != 4:
        raise ValueError(f"occlusion needs images (B, C, H, W), got shape {tuple(x.shape)}")
    b, _, h, w = x.shape
    side = (_levels(x, fraction, generator).flatten().clamp(0, 1).sqrt() * min(h, w)).round().long()
    top = (torch.rand(b, generator=generator, device=x.device) * (h - side + 1)).long()
    left = (torch.rand(b, generator=generator, device=x.device) * (w - side + 1)).long()
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = (rows >= top[:, None, None]) & (rows < (top + side)[:, None, None])
    inside = inside & (cols >= left[:, None, None]) & (cols < (left + side)[:, None, None])
    return x * ~inside[:, None]


NOISES: dict[str, Callable[..., Tensor]] = {
    "gaussian": gaussian,
    "salt_and_pepper": salt_and_pepper,
    "masking": masking,
    "occlusion": occlusion,
}


def corrupt(x: Tensor, kind: str, level: Level, generator: torch.Generator | None = None) -> Tensor:
    """Apply the noise ``kind`` names; ``mixture`` gives each sample one of the kinds at random.

    Raises:
        ValueError: an unknown kind, or a level outside [0, 1].
    """
    low, high = level if isinstance(level, tuple) else (level, level)
    if not 0 <= low <= high <= 1:
        raise ValueError(f"noise level {level} must lie in [0, 1] (low <= high)")
    if kind == "mixture":
        kinds = [k for k in NOISES if k != "occlusion" or x.dim() == 4]
        pick = torch.randint(len(kinds), (len(x),), generator=generator, device=x.device)
        out = x.clone()
        for i, name in enumerate(kinds):
            rows = pick == i
            if rows.any():
                out[rows] = NOISES[name](x[rows], level, generator)
        return out
    if kind not in NOISES:
        raise ValueError(f"unknown noise {kind!r} (known: {', '.join(NOISES)}, mixture)")
    return NOISES[kind](x, level, generator)
