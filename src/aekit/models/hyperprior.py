"""``hyperprior``: a variable-rate scale-hyperprior codec for images of any size (Balle et al. 2018).

The analysis transform ``g_a`` (strided 5x5 convolutions with GDN) maps an image to a spatial
latent ``y`` (M channels at 1/2^levels of its size); the hyper-analysis ``h_a`` maps ``|y|`` to
side information ``z`` (1/2^hyper_levels smaller again), coded with a factorised prior (a
logistic density per channel). The hyper-synthesis ``h_s`` predicts from the decoded ``z`` the
scale of a zero-mean Gaussian for every element of ``y``; the synthesis ``g_s`` (transposed
convolutions with inverse GDN) maps the decoded ``y`` back to pixels.

**Many rates, one model** (gain vectors, Cui et al. 2021): quality level q (1..Q) multiplies ``y``
by a learned per-channel gain before rounding and divides by a learned inverse gain after; each
training sample draws a level and pays ``bpp + lambdas[q] * 255^2 * MSE``. Fractional qualities
interpolate the gains geometrically.

**Exact, repeatable decoding.** The decoder must find the same Gaussian for every symbol as the
encoder, bit for bit, on any CPU (CompressAI's issues #279 / #309 are decodes broken by a float
that came out one ulp apart on another machine). So at inference ``h_s`` runs in *integer*
arithmetic: its weights are rounded to multiples of 2^-WEIGHT_BITS, activations to multiples of
2^-ACT_BITS, and every convolution is a gather + matrix product of integer-valued float64 numbers
below 2^53, which is exact whatever the summation order, BLAS or instruction set. Its output, a
log-scale in units of 1/256 nat, picks one of SCALES integer frequency tables (:meth:`finalize`)
by integer comparisons. The decoder's floating-point work is only in ``g_s``, after all symbols
are decoded: it can move a pixel by a rounding level, never desynchronise the stream.

**Mean and scale** (``mean_scale=True``, Minnen et al. 2018): ``h_s`` predicts a mean as well as a
scale for every element of ``y``; the coded symbol is ``round(y - mean)`` under the same zero-mean
Gaussian tables, decoded as symbol + mean. The mean comes out of the same integer ``h_s`` on the
grid of 2^-ACT_BITS (an integer count of 1/256), so encoder and decoder add exactly the same number.

**Checkerboard context** (``checkerboard=True``, with ``mean_scale``; He et al. 2021): ``y``'s
positions are split like a checkerboard into anchors (row + column odd) and the rest. Anchors are
coded with the hyperprior alone; a small context network (a 3x3 convolution, a ReLU and a 1x1
convolution) over the *decoded* anchors then adds to the mean and log-scale of every other
position, whose four direct neighbours are anchors. Two passes at encode and decode (anchors
first). The context network runs in the same exact integer arithmetic as ``h_s``: its inputs are
the anchors' values on the 2^-ACT_BITS grid (symbol x 256 + mean), its weights integers / 2^12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.data.batches import Batch
from aekit.data.patches import pad_to_multiple
from aekit.errors import ConfigError
from aekit.models.base import Autoencoder, Output
from aekit.models.codec import _logistic_mass
from aekit.models.registry import register_model

PRECISION = 24  # integer frequency tables sum to 2^24 (constriction's ANS precision)
WEIGHT_BITS = 12  # h_s weights at inference: integers / 2^12
ACT_BITS = 8  # h_s activations and output (log-scale in nats) at inference: integers / 2^8
SCALES = 64  # scale table: index k covers log-scales [LOG0 + k*STEP, LOG0 + (k+1)*STEP) (1/256 nat)
LOG0, STEP = -565, 32  # exp(-565/256) = 0.11 (the lower bound of the scales), steps of 1/8 nat
SCALE_MIN = math.exp(LOG0 / 256)


@dataclass(frozen=True)
class HyperpriorConfig:
    """Attributes:
    input_shape: (C, H, W) of the training images; any H, W can be coded.
    channels: N, the width of the transforms; latent_channels: M, the channels of ``y``;
    hyper_channels: the channels of ``z``; hyper_width: the width of ``h_a`` / ``h_s`` (0: the same
    as ``channels``). ``h_s`` runs in exact integer (float64) arithmetic at decode, so a narrow one
    decodes faster.
    levels: stride-2 stages of ``g_a`` (``y`` is 1/2^levels of the image); hyper_levels: of ``h_a``.
    lambdas: one rate-distortion weight per quality level, lowest quality first.
    max_symbol / max_side: ``y`` and ``z`` symbols are clipped to +-these.
    mean_scale: ``h_s`` predicts a mean and a scale for ``y`` (off: a scale only, zero mean).
    latent_padding: pad the image only to a multiple of 2^levels and ``|y|`` to 2^hyper_levels
    before ``h_a`` (a 28x28 image: a 7x7 ``y``), instead of the image to 2^(levels+hyper_levels)
    (28 -> 32: an 8x8 ``y`` whose last row and column describe padding only).
    Both are on for new runs (together -16% BD-rate on Fashion-MNIST); runs saved before the
    fields existed load with both off (``SAVED_WITHOUT``).
    checkerboard: a checkerboard context model on top of the mean-scale hyperprior (needs
    ``mean_scale``): half of ``y`` is coded with the help of its decoded neighbours.
    """

    input_shape: tuple[int, ...] = (1, 28, 28)
    channels: int = 64
    latent_channels: int = 64
    hyper_channels: int = 32
    hyper_width: int = 0
    levels: int = 2
    hyper_levels: int = 2
    lambdas: tuple[float, ...] = (0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024)
    max_symbol: int = 255
    max_side: int = 63
    mean_scale: bool = True
    latent_padding: bool = True
    checkerboard: bool = False
    # configs saved before these fields existed were the scale-only model with the image padded
    SAVED_WITHOUT: ClassVar[dict[str, bool]] = {"mean_scale": False, "latent_padding": False}

    def __post_init__(self) -> None:
        if len(self.input_shape) != 3:
            raise ConfigError(
                f"model config: hyperprior needs images (C, H, W), not {list(self.input_shape)}"
            )
        for name in ("channels", "latent_channels", "hyper_channels", "levels", "hyper_levels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model config: {name} must be 1 or more, not {getattr(self, name)}")
        if self.hyper_width < 0:
            raise ConfigError(
                f"model config: hyper_width must be 0 (= channels) or more, not {self.hyper_width}"
            )
        if (
            not self.lambdas
            or any(v <= 0 for v in self.lambdas)
            or list(self.lambdas) != sorted(self.lambdas)
        ):
            raise ConfigError(f"model config: lambdas must be positive and rising, not {list(self.lambdas)}")
        if self.checkerboard and not self.mean_scale:
            raise ConfigError("model config: checkerboard needs mean_scale (the context adds to the mean)")

    @property
    def stride(self) -> int:
        """Images are padded to a multiple of this."""
        return 2 ** (self.levels if self.latent_padding else self.levels + self.hyper_levels)


class GDN(nn.Module):
    """Generalised divisive normalisation: ``x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)``, or its
    approximate inverse (multiply instead of divide). Parameters are squares of free values."""

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(math.sqrt(0.1) * torch.eye(channels))

    def forward(self, x: Tensor) -> Tensor:
        gamma = self.gamma.square()[:, :, None, None]
        norm = F.conv2d(x.square(), gamma, self.beta.square() + 1e-6)
        return x * norm.sqrt() if self.inverse else x * norm.rsqrt()


def _down(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 5, stride=2, padding=2)


def _up(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1)


def integer_table(p: Tensor, total: int = 1 << PRECISION) -> Tensor:
    """Integer frequencies (every symbol at least 1, rows summing to ``total``) from probabilities.

    Shape:
        p: (K, n) float64 -> (K, n) int64.
    """
    spare = total - p.shape[1]
    counts = torch.floor(p / p.sum(1, keepdim=True) * spare).long() + 1
    counts[torch.arange(len(counts)), p.argmax(1)] += total - counts.sum(1)
    return counts


def subpixel_weight(w: Tensor) -> Tensor:
    """The 3x3 convolution (then a 2x pixel shuffle) equal to a transposed 5x5 convolution of stride 2,
    padding 2, output padding 1: output pixel 2i+a takes input i+e-1 with weight tap a+4-2e.

    Shape:
        w: (C_in, C_out, 5, 5) -> (4 C_out, C_in, 3, 3), output channel c*4 + 2a_h + a_w.
    """
    c_in, c_out = w.shape[:2]
    k = w.new_zeros(c_out, 2, 2, c_in, 3, 3)
    for a in range(2):
        for b in range(2):
            for e in range(3):
                for f in range(3):
                    t, u = a + 4 - 2 * e, b + 4 - 2 * f
                    if t <= 4 and u <= 4:
                        k[:, a, b, :, e, f] = w[:, :, t, u].T
    return k.reshape(4 * c_out, c_in, 3, 3)


def _int_conv(x: Tensor, w: Tensor, b: Tensor, size: tuple[int, ...] | None = None) -> Tensor:
    """Exact 'same' convolution of integer-valued float64 tensors: each output position's inputs
    gathered into a row (channels last), then one matrix product (exact whatever the BLAS or
    summation order: every partial sum is an integer below 2^53). ``size`` (h, w): only the
    outputs of the top-left h x w positions (the same numbers, fewer computed).

    Shape:
        x: (B, C, H, W), w: (O, C, k, k), b: (O,) -> (B, O, H, W) (or ``size``), a channels-last view
    """
    (n, c, h, wd), k = x.shape, w.shape[-1]
    if size is not None:
        h, wd = min(h, size[0]), min(wd, size[1])
    pad = F.pad(x, (k // 2,) * 4).permute(0, 2, 3, 1)  # (B, H+k-1, W+k-1, C)
    rows = torch.cat([pad[:, r : r + h, s : s + wd] for r in range(k) for s in range(k)], 3)
    out = torch.addmm(b, rows.view(-1, k * k * c), w.permute(0, 2, 3, 1).reshape(len(w), -1).T)
    return out.view(n, h, wd, len(w)).permute(0, 3, 1, 2)


def _int_layer(weight: Tensor, bias: Tensor, act: int) -> tuple[Tensor, Tensor]:
    """A layer's weights as integers (scale 2^WEIGHT_BITS) and its bias at the scale of the
    products' sums, 2^(WEIGHT_BITS + act) for inputs on the grid of 2^-act: float64, on the CPU."""
    w = torch.round(weight.detach().double().cpu() * 2**WEIGHT_BITS)
    return w, torch.round(bias.detach().double().cpu() * 2 ** (WEIGHT_BITS + act))


def _to_grid(acc: Tensor, act: int) -> Tensor:
    """A layer's exact integer sums (scale 2^(WEIGHT_BITS + act)) floored to the activations' grid
    of 2^-ACT_BITS, in place (exact: the factor is a power of 2)."""
    return torch.floor(acc.mul_(2.0 ** (ACT_BITS - WEIGHT_BITS - act)).add_(0.5))


def anchors(h: int, w: int) -> Tensor:
    """The checkerboard's anchors in an ``h`` x ``w`` latent: row + column odd (bool (h, w)). Every
    other position has its (up to) four direct neighbours among them."""
    i, j = torch.arange(h)[:, None], torch.arange(w)[None, :]
    return (i + j) % 2 == 1


CONTEXT_TAPS = ((0, 1), (1, 0), (1, 2), (2, 1))  # the 3x3 kernel's taps on a non-anchor's anchors


def level(quality: float, qualities: int) -> tuple[int, float]:
    """Where a quality in [1, ``qualities``] falls between the trained levels: a per-level value at
    it is the (log-space) interpolation from index ``lo - 1`` to index ``lo`` by ``t``, or index
    ``lo - 1``'s own value when ``t`` is 0. Shared by the gains and the refinement's lambda."""
    lo = min(int(math.floor(quality)), qualities - 1)
    return lo, quality - lo


@register_model("hyperprior")
class HyperpriorModel(Autoencoder):
    """Compression: GDN transforms, spatial latent, scale hyperprior, gain vectors for 8 rates."""

    config_class = HyperpriorConfig
    spatial_code = True  # encode gives (B, M, H', W') for the padded image

    def __init__(self, config: HyperpriorConfig) -> None:
        super().__init__(config)
        c, n, m, nz = config.input_shape[0], config.channels, config.latent_channels, config.hyper_channels
        ga: list[nn.Module] = []
        gs: list[nn.Module] = []
        for i in range(config.levels):
            last = i == config.levels - 1
            ga += [_down(c if i == 0 else n, m if last else n)] + ([] if last else [GDN(n)])
            gs += [_up(m if i == 0 else n, c if last else n)] + ([] if last else [GDN(n, inverse=True)])
        self.g_a, self.g_s = nn.Sequential(*ga), nn.Sequential(*gs)
        n = config.hyper_width or n
        ha: list[nn.Module] = [nn.Conv2d(m, n, 3, padding=1), nn.ReLU()]
        for i in range(config.hyper_levels):
            ha += [_down(n, nz if i == config.hyper_levels - 1 else n)]
            ha += [] if i == config.hyper_levels - 1 else [nn.ReLU()]
        self.h_a = nn.Sequential(*ha)
        # h_s: only same-padded convolutions, pixel shuffles and ReLUs, so it has an exact integer twin.
        hs: list[nn.Module] = []
        for i in range(config.hyper_levels):
            hs += [nn.Conv2d(nz if i == 0 else n, 4 * n, 3, padding=1), nn.PixelShuffle(2), nn.ReLU()]
        hs += [nn.Conv2d(n, 2 * m if config.mean_scale else m, 3, padding=1)]  # (mean,) log-scale
        self.h_s = nn.Sequential(*hs)
        if config.checkerboard:  # anchors -> (mean, log-scale) increments of the other positions
            self.context = nn.Sequential(nn.Conv2d(m, m, 3, padding=1), nn.ReLU(), nn.Conv2d(m, 2 * m, 1))
            nn.init.zeros_(self.context[2].weight)  # starts as the hyperprior alone
            nn.init.zeros_(self.context[2].bias)
        q = len(config.lambdas)
        self.log_gain = nn.Parameter(torch.linspace(-1.0, 1.5, q)[:, None].repeat(1, m))
        self.log_inv_gain = nn.Parameter(-self.log_gain.detach().clone())
        self.z_loc = nn.Parameter(torch.zeros(nz))
        self.z_log_scale = nn.Parameter(torch.zeros(nz))
        self.register_buffer("y_tables", torch.zeros(SCALES, 2 * config.max_symbol + 1, dtype=torch.int32))
        self.register_buffer("z_tables", torch.zeros(nz, 2 * config.max_side + 1, dtype=torch.int32))

    @property
    def qualities(self) -> int:
        return len(self.config.lambdas)

    def gains(self, quality: float) -> tuple[Tensor, Tensor]:
        """Gain and inverse gain (M,) for a quality in [1, Q]; between levels, geometric interpolation."""
        if not 1 <= quality <= self.qualities:
            raise ConfigError(f"quality {quality:g} is outside 1..{self.qualities}")
        lo, t = level(quality, self.qualities)
        g = torch.lerp(self.log_gain[lo - 1], self.log_gain[lo], t) if t else self.log_gain[lo - 1]
        ig = (
            torch.lerp(self.log_inv_gain[lo - 1], self.log_inv_gain[lo], t)
            if t
            else self.log_inv_gain[lo - 1]
        )
        return g.exp(), ig.exp()

    # -- training -------------------------------------------------------------------------------

    def _y_bits(self, y: Tensor, log_scale: Tensor) -> Tensor:
        """Bits of (noisy or rounded) ``y`` under N(0, scale) integrated over unit bins, per element."""
        scale = log_scale.exp().clamp_min(SCALE_MIN)
        normal = torch.distributions.Normal(0.0, 1.0)
        upper = normal.cdf((0.5 - y.abs()) / scale)
        lower = normal.cdf((-0.5 - y.abs()) / scale)
        return -torch.log2((upper - lower).clamp_min(1e-9))

    def _side(self, y: Tensor) -> Tensor:
        """``h_a``'s output, z (float), for gained latents ``y`` (padded to 2^hyper_levels first)."""
        return self.h_a(pad_to_multiple(y.abs(), 2**self.config.hyper_levels))

    def _prior(self, z: Tensor, size: tuple[int, ...]) -> tuple[Tensor | None, Tensor]:
        """The float ``h_s``: the mean (None: a scale-only model) and log-scale of each element of a
        ``y`` of spatial ``size`` (h, w)."""
        h = self.h_s(z)[..., : size[0], : size[1]]
        if not self.config.mean_scale:
            return None, h
        mean, log_scale = h.chunk(2, 1)
        return mean, log_scale

    def _entropy_params(self, z: Tensor, y: Tensor) -> tuple[Tensor | None, Tensor]:
        """``_prior``, and with ``checkerboard`` the context's increments at the non-anchors from
        the anchors of gained latents ``y`` as the decoder sees them (mean + rounded residual,
        detached)."""
        mean, log_scale = self._prior(z, y.shape[-2:])
        if not self.config.checkerboard:
            return mean, log_scale
        mask = anchors(*y.shape[-2:]).to(y.device)
        # the context sees the anchors as decoded (mean + rounded residual), as a constant: no
        # gradient from the other positions' rate reaches the anchors' y through the rounding
        # (trained with that straight-through gradient, the anchors cost 40% more than the plain
        # hyperprior's positions and the model lost 9% BD-rate to it; measured in the fifth pass)
        dm, dls = self.context((mean + torch.round(y - mean)).detach() * mask).chunk(2, 1)
        return mean + dm * ~mask, log_scale + dls * ~mask

    def _z_bits(self, z: Tensor) -> Tensor:
        loc, log_scale = self.z_loc[:, None, None], self.z_log_scale[:, None, None]
        return -torch.log2(_logistic_mass(z, loc, log_scale))

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        x = batch.x
        h, w = x.shape[-2:]
        q = torch.randint(0, self.qualities, (len(x),), device=x.device)
        lam = torch.tensor(self.config.lambdas, device=x.device)[q]
        y = self.g_a(pad_to_multiple(x, self.config.stride)) * self.log_gain[q].exp()[:, :, None, None]
        z = self._side(y)
        z_noisy = z + torch.rand_like(z) - 0.5
        mean, log_scale = self._entropy_params(z_noisy, y)
        r = y if mean is None else y - mean  # what is coded: y (or its residual) around zero
        bits = self._y_bits(r + torch.rand_like(r) - 0.5, log_scale).flatten(1).sum(1)
        bits = bits + self._z_bits(z_noisy).flatten(1).sum(1)
        y_hat = y + (torch.round(r) - r).detach()  # the decoder sees rounded values (straight-through)
        x_hat = self.g_s(y_hat * self.log_inv_gain[q].exp()[:, :, None, None])[..., :h, :w]
        mse = (x_hat - x).square().flatten(1).mean(1)
        bpp = bits / (h * w)
        return {
            "loss": (bpp + lam * 255.0**2 * mse).mean(),
            "bpp": bpp.mean().detach(),
            "mse": mse.mean().detach(),
            "psnr": (10 * torch.log10(1 / mse.detach().clamp_min(1e-10))).mean(),
        }

    # -- the Autoencoder contract (float path, at the top quality) --------------------------------

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The rounded, gained latent at the top quality. Shape: (B, M, H', W')."""
        g, _ = self.gains(self.qualities)
        return torch.round(self.g_a(pad_to_multiple(x, self.config.stride)) * g[:, None, None])

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        _, ig = self.gains(self.qualities)
        return self.g_s(z * ig[:, None, None])

    def forward(self, x: Tensor, y: Tensor | None = None) -> Output:
        code = self.encode(x)
        return Output(self.decode(code)[..., : x.shape[-2], : x.shape[-1]].clamp(0, 1), code)

    # -- inference: symbols, integer scales, tables ---------------------------------------------

    def analyse(self, x: Tensor, quality: float, scales: bool = False) -> tuple[Tensor, ...]:
        """Integer symbols of padded images ``x``: y (B, M, h, w) (with ``mean_scale``, of y - mean)
        and z (B, Nz, h', w'), both int64; with ``scales``, also y's scale-table indices (uint8,
        :meth:`scale_index`), from the same run of the integer ``h_s`` that gives the means."""
        g, _ = self.gains(quality)
        y = self.g_a(x) * g[:, None, None]
        z = self._side(y)
        z_int = torch.round(z).clamp(-self.config.max_side, self.config.max_side).long()
        if not (scales or self.config.mean_scale):
            return self.quantise(y, z_int), z_int
        k, mean = self._y_params(y, z_int)
        y_int = self.quantise(y, z_int, mean)
        return (y_int, z_int, k) if scales else (y_int, z_int)

    def _y_params(self, y: Tensor, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """Scale indices and means (:meth:`params`) of gained latents ``y``'s elements from integer
        ``z``, with one run of the integer ``h_s``; with ``checkerboard``, the anchors' symbols
        first, then everyone's parameters with the context."""
        raw = self.hyper_raw(z, y.shape[-2:])
        k, mean = self.params(raw)
        if self.config.checkerboard:
            k, mean = self.params(self.with_context(raw, self.quantise(y, z, mean), mean))
        return k, mean

    def quantise(self, y: Tensor, z: Tensor, mean: Tensor | None = None) -> Tensor:
        """The symbols of gained latents ``y`` given integer ``z``: round(y - mean), the mean from
        :meth:`hyper` (exact; computed from ``z`` unless given, with ``checkerboard`` from the
        anchors' symbols first), or round(y) for a scale-only model; clipped, int64."""
        if self.config.mean_scale and mean is None:
            mean = self._y_params(y, z)[1]
        if self.config.mean_scale:
            y = y.double() - mean.to(y.device).double() / 2**ACT_BITS
        return torch.round(y).clamp(-self.config.max_symbol, self.config.max_symbol).long()

    @staticmethod
    def values(symbols: Tensor, mean: Tensor | None) -> Tensor:
        """What the decoder gives ``g_s``: symbols + mean (``mean`` in 1/2^ACT_BITS, from
        :meth:`hyper`; None: the symbols). Exact in float32: |value| < 2^9 on a 2^-8 grid."""
        if mean is None:
            return symbols
        return (symbols.double() + mean.to(symbols.device).double() / 2**ACT_BITS).float()

    def synthesise(self, y: Tensor, quality: float) -> Tensor:
        """Pixels in [0, 1] (float) from integer ``y`` symbols (B, M, h, w); still padded.

        ``g_s`` computed for speed, not by its modules: channels-last tensors, each transposed
        convolution as the equivalent sub-pixel convolution (:func:`subpixel_weight`) and inverse
        GDN as one matrix product (measured 2-3x faster on one CPU thread). Same function, floats
        rounded differently (about 1e-6); decoding never depends on it (symbols come first).
        """
        _, ig = self.gains(quality)
        x = (y.float() * ig[:, None, None]).contiguous(memory_format=torch.channels_last)
        for layer in self.g_s:
            if isinstance(layer, nn.ConvTranspose2d):
                w = subpixel_weight(layer.weight).contiguous(memory_format=torch.channels_last)
                x = F.conv2d(x, w, layer.bias.repeat_interleave(4), padding=1)
                (b, _, h, wd), c = x.shape, x.shape[1] // 4
                # pixel shuffle in channels-last memory, one copy: (B, H, W, C, 2, 2) -> (B, H, 2, W, 2, C)
                x = x.permute(0, 2, 3, 1).reshape(b, h, wd, c, 2, 2).permute(0, 1, 4, 2, 5, 3)
                x = x.reshape(b, 2 * h, 2 * wd, c).permute(0, 3, 1, 2)
            else:  # GDN: (B, H, W, C) rows times (C, C)
                rows = x.permute(0, 2, 3, 1)  # a view: channels-last memory is (B, H, W, C)
                norm = torch.addmm(
                    layer.beta.square() + 1e-6,
                    rows.reshape(-1, rows.shape[-1]).square(),
                    layer.gamma.square().T,
                ).view_as(rows)
                rows = rows * (norm.sqrt() if layer.inverse else norm.rsqrt())
                x = rows.permute(0, 3, 1, 2)
        return x.clamp(0, 1)

    def scale_index(
        self, z: Tensor, size: tuple[int, ...] | None = None, symbols: Tensor | None = None
    ) -> Tensor:
        """The scale-table index of every element of ``y``, from integer ``z`` in exact integer arithmetic.

        Shape:
            z: (B, Nz, h', w') int64 -> (B, M, h' * 2^hyper_levels, w' * 2^hyper_levels) uint8.
        """
        return self.hyper(z, size, symbols)[0]

    def hyper(
        self, z: Tensor, size: tuple[int, ...] | None = None, symbols: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """From integer ``z``, in exact integer arithmetic: the scale-table index (uint8) of every
        element of ``y`` and, with ``mean_scale``, its mean as an integer count of 2^-ACT_BITS
        (int64, clipped to +-max_symbol; else None). Shapes as :meth:`scale_index`, cropped to
        ``y``'s spatial ``size`` (h, w) if given (``latent_padding``: y is smaller than h_s's output).
        With ``checkerboard``: the anchors' from ``z`` alone, the others' also from the anchors'
        ``symbols`` (int64, the shape of ``y``; without them, the hyperprior's part only)."""
        raw = self.hyper_raw(z, size)
        if symbols is not None and self.config.checkerboard:
            raw = self.with_context(raw, symbols.to(raw.device))
        return self.params(raw, z.device)

    def hyper_raw(self, z: Tensor, size: tuple[int, ...] | None = None) -> Tensor:
        """The integer ``h_s``'s output for integer ``z``: (mean and) log-scale of every element of
        ``y`` as integer-valued float64 counts of 2^-ACT_BITS (clipped to +-2^24: exact in float32
        too), on the CPU; cropped to ``size`` if given. See :meth:`params`."""
        if len(z) > 128:  # in chunks: the gathered rows of 128 small images stay in cache (2x faster)
            return torch.cat([self.hyper_raw(part, size) for part in z.split(128)])
        a = z.double().cpu()  # integers; scale 2^0
        act = 0  # the current activation's binary point
        convs = [m for m in self.h_s if isinstance(m, nn.Conv2d)]
        for i, conv in enumerate(convs):
            w, bias = _int_layer(conv.weight, conv.bias, act)
            last = i == len(convs) - 1
            a = _to_grid(_int_conv(a, w, bias, size if last else None), act)
            act = ACT_BITS
            if not last:
                a = F.relu(F.pixel_shuffle(a, 2))
        if size is not None:
            a = a[..., : size[0], : size[1]]
        return a.clamp_(-(2.0**24), 2.0**24)  # changes no index or mean (both clipped far inside)

    def params(self, raw: Tensor, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor | None]:
        """Scale-table indices (uint8) and means (int64 counts of 2^-ACT_BITS, clipped to
        +-max_symbol; None for a scale-only model) from :meth:`hyper_raw`'s output."""
        a, mean = raw.double(), None
        if self.config.mean_scale:
            top = self.config.max_symbol << ACT_BITS
            mean, a = a.chunk(2, 1)
            mean = mean.clamp(-top, top).long().to(device)
        k = torch.floor((a - LOG0).mul_(1 / STEP))  # a: log-scale in 1/256 nat; STEP a power of 2: exact
        return k.clamp_(0, SCALES - 1).to(torch.uint8).to(device), mean

    def with_context(self, raw: Tensor, symbols: Tensor, mean: Tensor | None = None) -> Tensor:
        """``raw`` (:meth:`hyper_raw`) plus the checkerboard context's increments at the
        non-anchors, from the anchors' ``symbols`` (int64 (B, M, h, w); others ignored) and their
        means (``mean``, from :meth:`params` of ``raw``, computed if not given). Exact integer
        arithmetic as ``h_s``: the anchors' values as counts of 2^-ACT_BITS, integer weights, each
        layer's output floored to the grid; only the four taps that meet anchors are computed."""
        if mean is None:
            mean = self.params(raw)[1]
        if len(raw) > 128:
            parts = zip(raw.split(128), symbols.split(128), mean.split(128), strict=True)
            return torch.cat([self.with_context(r, s, m) for r, s, m in parts])
        b, m, h, w = symbols.shape
        # the anchors' values (the taps below read no other position: a non-anchor's four
        # direct neighbours are all anchors or outside)
        values = symbols.cpu().double().mul_(2**ACT_BITS).add_(mean.cpu())
        others = (~anchors(h, w)).flatten().nonzero().squeeze(1)
        pad = F.pad(values, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # (B, h+2, w+2, M): channels last
        rows = torch.cat(
            [pad[:, r : r + h, c : c + w].reshape(b, h * w, m)[:, others] for r, c in CONTEXT_TAPS], 2
        ).view(-1, 4 * m)  # (B * P, 4M), tap-major as the weights below: one large matrix product
        first, last = self.context[0], self.context[2]
        rr, cc = [r for r, _ in CONTEXT_TAPS], [c for _, c in CONTEXT_TAPS]
        taps = first.weight[:, :, rr, cc]  # (H, M, 4)
        a = rows
        for weight, bias, relu in (
            (taps.permute(0, 2, 1).reshape(len(taps), -1), first.bias, True),
            (last.weight[:, :, 0, 0], last.bias, False),
        ):
            w_int, b_int = _int_layer(weight, bias, ACT_BITS)
            a = _to_grid(torch.addmm(b_int, a, w_int.T), ACT_BITS)  # exact integer sums
            if relu:
                a = F.relu(a)
        out = raw.double().clone()
        out.view(b, 2 * m, h * w)[:, :, others] += a.view(b, len(others), 2 * m).transpose(1, 2)
        return out.clamp_(-(2.0**24), 2.0**24)

    @torch.no_grad()
    def finalize(self) -> None:
        """Integer frequency tables: one per scale of the Gaussian table (for ``y``) and one per
        channel of ``z``'s logistic prior; saved with the weights, the only thing the coder uses."""
        m, s = self.config.max_symbol, self.config.max_side
        centre = (LOG0 + (torch.arange(SCALES, dtype=torch.float64) + 0.5) * STEP) / 256
        scale = centre.exp()[:, None]
        k = torch.arange(-m, m + 1, dtype=torch.float64)
        normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
        p = normal.cdf((k + 0.5) / scale) - normal.cdf((k - 0.5) / scale)
        p[:, 0] += normal.cdf((-m - 0.5) / scale[:, 0])
        p[:, -1] += normal.cdf((-m - 0.5) / scale[:, 0])
        self.y_tables.copy_(integer_table(p).to(torch.int32))
        k = torch.arange(-s, s + 1, dtype=torch.float64)
        loc = self.z_loc.detach().double().cpu()[:, None]
        sc = self.z_log_scale.detach().double().cpu().exp()[:, None]
        edges = torch.sigmoid((torch.cat([k - 0.5, k[-1:] + 0.5]) - loc) / sc)
        p = edges[:, 1:] - edges[:, :-1]
        p[:, 0] += edges[:, 0]
        p[:, -1] += 1 - edges[:, -1]
        self.z_tables.copy_(integer_table(p).to(torch.int32))
