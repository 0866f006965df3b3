"""Encoder-side latent refinement for the hyperprior codec: better symbols for the same decoder.

The analysis transform ``g_a`` is amortised: one network guesses the latents of every image. At
compress time we can do better for *this* image (Campos et al. 2019, "Content adaptive
optimization for neural image compression"): start from ``g_a``'s ``y`` and ``h_a``'s ``z`` and
take ``steps`` Adam steps on them, with every network fixed, to lower the rate-distortion cost the
model was trained for, ``bits / pixels + lambda * 255^2 * MSE`` (rounding passed straight through).
The file format and the decoder do not change: the refined latents are ordinary symbols.

Each image then keeps the refined symbols only if their *real* cost is lower: the bits under
the coder's own frequencies (integer scale indices from the rounded ``z``) and the error of the
decoded uint8 pixels. So refinement never makes an image's ``R + lambda D`` worse.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from aekit.models.hyperprior import PRECISION, HyperpriorModel, level


def lambda_at(model: HyperpriorModel, quality: float) -> float:
    """The rate-distortion weight of a quality; between levels geometric, as the gains are."""
    lams = model.config.lambdas
    lo, t = level(quality, len(lams))
    return math.exp((1 - t) * math.log(lams[lo - 1]) + t * math.log(lams[lo])) if t else lams[lo - 1]


@torch.no_grad()
def real_cost(
    model: HyperpriorModel,
    counts: tuple[np.ndarray, np.ndarray],
    x: Tensor,
    size: tuple[int, int],
    y: Tensor,
    z: Tensor,
    quality: float,
) -> Tensor:
    """Per image, what the file pays: bits per pixel under the coder's frequencies ``counts`` (y's
    and z's, :func:`aekit.apps.hypercodec.coded_counts`) + lambda * 255^2 * the MSE of the decoded
    uint8 pixels (in [0, 1] units, as in training). Shape: x (B, C, H, W) padded, y / z int64 -> (B,)."""
    c, (h, w) = model.config, size
    k, mean = model.hyper(z, y.shape[-2:], y)
    k = k.long().numpy()
    total = float(1 << PRECISION)
    bits = -np.log2(counts[0][k, y.numpy() + c.max_symbol] / total).reshape(len(y), -1).sum(1)
    zc = z.numpy() + c.max_side  # (B, Nz, h', w')
    bits += (
        -np.log2(counts[1][np.arange(c.hyper_channels)[:, None, None], zc] / total).reshape(len(z), -1).sum(1)
    )
    x_hat = model.synthesise(model.values(y, mean), quality)[..., :h, :w].mul(255).round().div(255)
    mse = (x_hat - x[..., :h, :w]).square().flatten(1).mean(1)
    return torch.from_numpy(bits) / (h * w) + lambda_at(model, quality) * 255.0**2 * mse.double()


def refine(
    model: HyperpriorModel,
    counts: tuple[np.ndarray, np.ndarray],
    x: Tensor,
    size: tuple[int, int],
    quality: float,
    steps: int,
    lr: float = 0.01,
    every: int = 10,
) -> tuple[Tensor, Tensor]:
    """Integer ``y`` and ``z`` for padded images ``x`` (B, C, H, W) of true ``size`` (h, w) after
    ``steps`` Adam steps (learning rate ``lr``, cosine-decayed to 0): per image, the symbols of the
    lowest real cost (:func:`real_cost`) among ``analyse``'s and those reached every ``every`` steps.

    The rate is taken, as in training, at ``y`` and ``z`` plus uniform noise (from a generator
    seeded 0: encoding stays repeatable); the distortion at rounded ``y`` (straight-through).
    Chosen on crops of the training photos (benchmarks/rate_distortion.md): this was steadier than
    rounding in the rate too, which drifts upward after a few tens of steps.
    """
    c = model.config
    y_best, z_best = model.analyse(x, quality)
    if steps <= 0:
        return y_best, z_best
    cost = real_cost(model, counts, x, size, y_best, z_best, quality)
    g, ig = (v.detach()[:, None, None] for v in model.gains(quality))
    lam, (h, w) = lambda_at(model, quality), size
    with torch.no_grad():
        y = (model.g_a(x) * g).requires_grad_()
        z = model._side(y).requires_grad_()
    opt = torch.optim.Adam([y, z], lr=lr)
    noise = torch.Generator(device=x.device).manual_seed(0)
    for step in range(1, steps + 1):
        with torch.enable_grad():
            y_noise = torch.rand(y.shape, generator=noise, device=x.device) - 0.5
            z_noisy = z + torch.rand(z.shape, generator=noise, device=x.device) - 0.5
            mean, log_scale = model._entropy_params(z_noisy, y)
            r = y if mean is None else y - mean  # what is coded (a mean-scale model: the residual)
            bits = model._y_bits(r + y_noise, log_scale).flatten(1).sum(1)
            bits = bits + model._z_bits(z_noisy).flatten(1).sum(1)
            y_hat = y + (torch.round(r) - r).detach()  # the decoder sees rounded values (straight-through)
            mse = (model.g_s(y_hat * ig)[..., :h, :w] - x[..., :h, :w]).square().flatten(1).mean(1)
            loss = (bits / (h * w) + lam * 255.0**2 * mse).sum()
            y.grad, z.grad = torch.autograd.grad(loss, [y, z])  # only the latents: the networks stay fixed
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        opt.step()
        if step % every == 0 or step == steps:
            z1 = torch.round(z.detach()).clamp(-c.max_side, c.max_side).long()
            y1 = model.quantise(y.detach(), z1)
            new = real_cost(model, counts, x, size, y1, z1, quality)
            keep = new < cost
            cost = torch.where(keep, new, cost)
            y_best = torch.where(keep[:, None, None, None], y1, y_best)
            z_best = torch.where(keep[:, None, None, None], z1, z_best)
    return y_best, z_best
