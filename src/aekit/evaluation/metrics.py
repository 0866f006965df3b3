"""Reconstruction metrics, per sample and batched: MSE, PSNR and SSIM.

SSIM follows Wang et al. (2004) as scikit-image computes it with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``: an 11x11 Gaussian
window, valid region only, K1=0.01, K2=0.03 (equal to scikit-image within 1e-6). Images
smaller than 11 pixels a side use a truncated window of the largest odd size that fits;
scikit-image filters those with the full window and reflected borders, so there the two
differ by about 1e-3.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_CHUNK = 1024


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error per sample.

    Shape:
        x, y: (B, ...) -> (B,)
    """
    _check(x, y)
    return (x.double() - y.double()).pow(2).flatten(1).mean(1)


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per sample; +inf for a perfect reconstruction."""
    return 10 * torch.log10(data_range**2 / mse(x, y))


def _window(size: int, sigma: float = 1.5) -> Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_window_size(h: int, w: int) -> int:
    """11, or the largest odd size that fits an image smaller than that."""
    size = min(11, h, w)
    return size if size % 2 == 1 else size - 1


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean structural similarity per sample, over channels and the valid window positions.

    Shape:
        x, y: (B, C, H, W) or (B, H, W) -> (B,)

    Raises:
        ValueError: shapes differ, or the input is not images of at least 3x3.
    """
    _check(x, y)
    if x.dim() == 3:
        x, y = x[:, None], y[:, None]
    if x.dim() != 4 or min(x.shape[-2:]) < 3:
        raise ValueError(f"ssim needs images (B, C, H, W) of at least 3x3, got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    g = _window(ssim_window_size(h, w)).to(x.device, torch.float32)
    out = [
        _ssim_chunk(xc, yc, g, data_range) for xc, yc in zip(x.split(_CHUNK), y.split(_CHUNK), strict=True)
    ]
    return torch.cat(out)


def _ssim_chunk(x: Tensor, y: Tensor, g: Tensor, data_range: float) -> Tensor:
    b, c, h, w = x.shape
    x = x.float().reshape(b * c, 1, h, w)  # float32: within 1e-6 of float64 here, twice as fast
    y = y.float().reshape(b * c, 1, h, w)

    def blur(t: Tensor) -> Tensor:  # separable Gaussian, valid region
        t = F.conv2d(t, g.view(1, 1, -1, 1))
        return F.conv2d(t, g.view(1, 1, 1, -1))

    stacked = blur(torch.cat([x, y, x * x, y * y, x * y]))  # one pass for all five moments
    mx, my, mxx, myy, mxy = stacked.split(b * c)
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.reshape(b, -1).mean(1)


def summarize(x: Tensor, y: Tensor, data_range: float = 1.0) -> dict[str, float]:
    """Means over the samples: ``mse``, ``psnr`` (dB, over finite values) and ``ssim`` (images only).

    Shape:
        x, y: (B, ...); SSIM when they are (B, C, H, W) images of at least 7x7.
    """
    per_psnr = psnr(x, y, data_range)
    finite = per_psnr[torch.isfinite(per_psnr)]
    out = {"mse": float(mse(x, y).mean()), "psnr": float(finite.mean()) if len(finite) else math.inf}
    if x.dim() == 4 and min(x.shape[-2:]) >= 7:
        out["ssim"] = float(ssim(x, y, data_range).mean())
    return out


def _check(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() < 2:
        raise ValueError(f"expected a batch (B, ...), got shape {tuple(x.shape)}")
