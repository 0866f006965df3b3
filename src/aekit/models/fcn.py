"""Fully convolutional encoders and decoders: images of any size in, spatial codes out.

``model.arch = "fcn"`` on any model that declares ``fully_convolutional`` (dense, conv,
denoising, vae). ``channels`` are the widths at each scale, full resolution first; every
further scale halves the image with a strided 3x3 convolution, so the total stride is
``2 ** (len(channels) - 1)``. Each scale has ``blocks`` residual blocks. The code is a
1x1 convolution to ``latent_dim`` channels at the coarsest scale: (B, latent_dim, H/s, W/s).
The decoder mirrors it with sub-pixel (PixelShuffle) upsampling, which has no checkerboard
pattern of transposed convolutions. No layer depends on the image size, so a model trained
on 64x64 patches runs on a 2000x1500 photo (padded to a multiple of the stride by
:func:`aekit.data.patches.apply_whole`).

Skips (the RED-Net / U-Net family, used by the denoiser): the decoder adds the encoder's
features at each scale but the coarsest, so fine detail need not pass through the code.
"""

from __future__ import annotations

from torch import Tensor, nn

from aekit.models.layers import activation


def total_stride(channels: tuple[int, ...]) -> int:
    """How much the encoder shrinks an image: 2 per scale after the first."""
    return 2 ** (len(channels) - 1)


def receptive_radius(channels: tuple[int, ...], blocks: int) -> int:
    """How far (in input pixels) an output pixel of encoder + decoder can see: a tile margin this
    wide (rounded up to the stride) makes tiled outputs equal to whole-image ones.

    Every 3x3 convolution at scale s (stride s from the input) adds s pixels.
    """
    radius, k = 0, len(channels)
    for i in range(k):  # encoder: stem or down-convolution into scale i, then its blocks
        radius += 2 ** max(i - 1, 0) + 2 * blocks * 2**i
    radius += 2 ** (k - 1)  # the decoder's input convolution, at the coarsest scale
    for i in range(k):  # decoder: the blocks at scale i, then the up-convolution out of it
        radius += 2 * blocks * 2**i + 2**i
    return radius


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """``x + conv(act(conv(x)))``, same size and channels."""

    def __init__(self, channels: int, act: str) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(channels, channels), activation(act), conv3x3(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _blocks(channels: int, n: int, act: str) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels, act) for _ in range(n)))


class FCNEncoder(nn.Module):
    """(B, C, H, W) -> (B, out, H/s, W/s) with s = :func:`total_stride`; H and W multiples of s.

    Args:
        in_channels: Image channels.
        channels: Width at each scale, full resolution first.
        blocks: Residual blocks per scale.
        out: Code channels.
        act: Activation name.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], blocks: int, out: int, act: str) -> None:
        super().__init__()
        self.stride = total_stride(channels)
        self.stem = nn.Sequential(conv3x3(in_channels, channels[0]), activation(act))
        self.downs = nn.ModuleList(
            nn.Sequential(conv3x3(c_in, c_out, stride=2), activation(act))
            for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
        )
        self.levels = nn.ModuleList(_blocks(c, blocks, act) for c in channels)
        self.head = nn.Conv2d(channels[-1], out, 1)

    def features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The code and the features at every scale (full resolution first), for skips."""
        h, w = x.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError(
                f"a fully convolutional model of stride {self.stride} takes sizes that are multiples of it, "
                f"not {h}x{w}; pad with aekit.data.patches.apply_whole"
            )
        h = self.levels[0](self.stem(x))
        feats = [h]
        for down, level in zip(self.downs, self.levels[1:], strict=True):
            h = level(down(h))
            feats.append(h)
        return self.head(h), feats

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)[0]


class FCNDecoder(nn.Module):
    """(B, code, h, w) -> (B, out, h*s, w*s), the mirror of :class:`FCNEncoder`.

    ``skips`` (the encoder's ``features``) are added at each scale but the coarsest.
    """

    def __init__(
        self, code: int, channels: tuple[int, ...], blocks: int, out: int, act: str, final: str
    ) -> None:
        super().__init__()
        self.inp = nn.Sequential(conv3x3(code, channels[-1]), activation(act))
        self.levels = nn.ModuleList(_blocks(c, blocks, act) for c in channels)  # applied coarse to fine
        self.ups = nn.ModuleList(
            nn.Sequential(conv3x3(c_in, 4 * c_out), nn.PixelShuffle(2), activation(act))
            for c_in, c_out in zip(channels[1:], channels[:-1], strict=True)
        )  # ups[i]: scale i+1 -> scale i
        self.out = conv3x3(channels[0], out)
        self.final = activation(final)

    def forward(self, z: Tensor, skips: list[Tensor] | None = None) -> Tensor:
        k = len(self.levels)
        h = self.levels[k - 1](self.inp(z))
        for i in range(k - 2, -1, -1):
            h = self.ups[i](h)
            if skips is not None:
                h = h + skips[i]
            h = self.levels[i](h)
        return self.final(self.out(h))


def geometry(model: nn.Module) -> tuple[int, int]:
    """(total stride, tile margin) of a fully convolutional model: pad images to a multiple of the
    stride; tiles with this margin give the same output as the whole image."""
    c = model.config
    stride = total_stride(c.channels)
    return stride, receptive_radius(c.channels, c.blocks) + stride


def whole_images(fn, stride: int, x: Tensor, y: Tensor | None = None, crop: bool = True) -> Tensor:
    """``fn(x, y)`` on images of any size: reflect-padded to ``stride``; with ``crop`` (image outputs)
    cut back to the input's size, else (codes) left at the padded size's code grid."""
    from aekit.data.patches import apply_whole, pad_to_multiple

    if crop:
        return apply_whole(lambda t: fn(t, y), x, stride)
    return fn(pad_to_multiple(x, stride), y)


def check_training_size(model: nn.Module, shape: tuple[int, ...]) -> None:
    """A fully convolutional model trains on images whose sides are multiples of its stride.

    Raises:
        ConfigError: naming the size, the stride and the ways out.
    """
    if not model.any_size or len(shape) != 3:
        return
    stride = total_stride(model.config.channels)
    if shape[1] % stride or shape[2] % stride:
        from aekit.errors import ConfigError

        raise ConfigError(
            f"a fully convolutional model of stride {stride} ({len(model.config.channels)} scales in "
            f"model.channels) trains on sides that are multiples of {stride}, not {shape[2]}x{shape[1]}: "
            "choose --patch, --resize or --center-crop accordingly"
        )
