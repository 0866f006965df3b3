"""The encoder and decoder builders every model reuses: MLPs and strided conv stacks.

Model files call these; they never define their own copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from aekit.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "none": nn.Identity,
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r} (known: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]()


def mlp(sizes: tuple[int, ...] | list[int], act: str = "relu", final: str = "none") -> nn.Sequential:
    """Linear layers through ``sizes`` with ``act`` between them and ``final`` after the last.

    ``mlp((784, 128, 64, 32), "relu", "relu")`` is the classic encoder:
    Linear(784,128)-ReLU-Linear(128,64)-ReLU-Linear(64,32)-ReLU.
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        name = final if i == len(sizes) - 2 else act
        if name != "none":
            layers.append(activation(name))
    return nn.Sequential(*layers)


class Reshape(nn.Module):
    """(B, prod(shape)) <-> (B, *shape)."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


def dense_encoder(
    input_shape: tuple[int, ...], hidden: tuple[int, ...], out: int, act: str, final: str
) -> nn.Module:
    """Flatten (B, *input_shape) then an MLP to ``out`` features."""
    return nn.Sequential(nn.Flatten(), mlp((math.prod(input_shape), *hidden, out), act, final))


def dense_decoder(
    latent: int, hidden: tuple[int, ...], output_shape: tuple[int, ...], act: str, final: str
) -> nn.Module:
    """An MLP from the code through ``hidden`` (reversed by the caller) to (B, *output_shape)."""
    return nn.Sequential(mlp((latent, *hidden, math.prod(output_shape)), act, final), Reshape(*output_shape))


def conv_sizes(size: int, n_layers: int) -> list[int]:
    """Spatial sizes after each stride-2, kernel-3, padding-1 convolution, starting with ``size``."""
    sizes = [size]
    for _ in range(n_layers):
        sizes.append((sizes[-1] - 1) // 2 + 1)
    return sizes


def conv_encoder(
    input_shape: tuple[int, int, int], channels: tuple[int, ...], out: int, act: str
) -> nn.Module:
    """Strided 3x3 convolutions halving the image each layer, then a linear map to ``out``.

    Shape:
        (B, C, H, W) -> (B, out)
    """
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for c_in, c_out in zip((c, *channels[:-1]), channels, strict=True):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), activation(act)]
    hs, ws = conv_sizes(h, len(channels)), conv_sizes(w, len(channels))
    layers += [nn.Flatten(), nn.Linear(channels[-1] * hs[-1] * ws[-1], out)]
    return nn.Sequential(*layers)


def conv_decoder(
    latent: int, channels: tuple[int, ...], output_shape: tuple[int, int, int], act: str, final: str
) -> nn.Module:
    """The mirror of :func:`conv_encoder`: linear, then transposed convolutions back to exact size.

    ``channels`` are the encoder's; each transposed convolution's output padding is chosen
    so that odd sizes (7 -> 4 -> 7, 28 -> 14 -> 7) come back exactly.

    Shape:
        (B, latent) -> (B, C, H, W)
    """
    c, h, w = output_shape
    hs, ws = conv_sizes(h, len(channels)), conv_sizes(w, len(channels))
    rev = channels[::-1]
    layers: list[nn.Module] = [
        nn.Linear(latent, rev[0] * hs[-1] * ws[-1]),
        activation(act),
        Reshape(rev[0], hs[-1], ws[-1]),
    ]
    outs = (*rev[1:], c)
    for i, (c_in, c_out) in enumerate(zip(rev, outs, strict=True)):
        level = len(channels) - i  # from size hs[level] up to hs[level - 1]
        pad = (hs[level - 1] - ((hs[level] - 1) * 2 + 1), ws[level - 1] - ((ws[level] - 1) * 2 + 1))
        layers.append(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=pad))
        last = i == len(rev) - 1
        if not last or final != "none":
            layers.append(activation(final if last else act))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Backbone:
    """The encoder/decoder settings every model family shares; model configs extend it.

    Attributes:
        input_shape: One sample's shape, (C, H, W) or (F,); filled from the data.
        arch: ``dense`` (MLP through ``hidden``), ``conv`` (stride-2 convolutions through ``channels``,
            then a linear bottleneck) or ``fcn`` (fully convolutional, any image size: ``channels`` are
            the widths per scale, the code has ``latent_dim`` channels; see :mod:`aekit.models.fcn`).
        hidden: Hidden sizes of the dense encoder; the decoder mirrors them.
        channels: Channels of the conv encoder; the decoder mirrors them.
        latent_dim: Size of the code (its channels for ``fcn``).
        blocks: ``fcn`` only: residual blocks at each scale.
        activation: Between layers.
        output_activation: On the reconstruction (``sigmoid`` for data in [0, 1]).
        loss: Reconstruction loss, ``mse`` or ``bce``.
    """

    input_shape: tuple[int, ...] = (1, 28, 28)
    arch: str = "dense"
    hidden: tuple[int, ...] = (256, 128)
    channels: tuple[int, ...] = (32, 64)
    latent_dim: int = 32
    blocks: int = 1
    activation: str = "relu"
    output_activation: str = "sigmoid"
    loss: str = "mse"

    def __post_init__(self) -> None:
        sizes = {"input_shape": self.input_shape, "hidden": self.hidden, "channels": self.channels}
        for name, values in sizes.items():
            if not values or any(v < 1 for v in values):
                raise ConfigError(f"model config: {name} must be sizes of 1 or more, not {list(values)}")
        if self.latent_dim < 1:
            raise ConfigError(f"model config: latent_dim must be 1 or more, not {self.latent_dim}")
        if self.blocks < 0:
            raise ConfigError(f"model config: blocks must be 0 or more, not {self.blocks}")


def build_encoder(c: Backbone, out_dim: int, final: str = "none") -> nn.Module:
    """(B, *input_shape) -> (B, out_dim) with the architecture ``c.arch`` names."""
    if c.arch == "dense":
        return dense_encoder(c.input_shape, c.hidden, out_dim, c.activation, final)
    if c.arch == "conv":
        if len(c.input_shape) != 3:
            raise ValueError(f"arch 'conv' needs image input (C, H, W), got input_shape {c.input_shape}")
        enc = conv_encoder(c.input_shape, c.channels, out_dim, c.activation)
        return enc if final == "none" else nn.Sequential(enc, activation(final))
    if c.arch == "fcn":
        from aekit.models.fcn import FCNEncoder

        _need_image(c)
        enc = FCNEncoder(c.input_shape[0], c.channels, c.blocks, out_dim, c.activation)
        return enc if final == "none" else nn.Sequential(enc, activation(final))
    raise ValueError(f"unknown arch {c.arch!r} (expected dense, conv or fcn)")


def _need_image(c: Backbone) -> None:
    if len(c.input_shape) != 3:
        raise ValueError(f"arch {c.arch!r} needs image input (C, H, W), got input_shape {c.input_shape}")


def build_decoder(c: Backbone, in_dim: int) -> nn.Module:
    """(B, in_dim) -> (B, *input_shape), the mirror of :func:`build_encoder`."""
    if c.arch == "dense":
        return dense_decoder(in_dim, c.hidden[::-1], c.input_shape, c.activation, c.output_activation)
    if c.arch == "conv":
        return conv_decoder(in_dim, c.channels, c.input_shape, c.activation, c.output_activation)
    if c.arch == "fcn":
        from aekit.models.fcn import FCNDecoder

        _need_image(c)
        return FCNDecoder(in_dim, c.channels, c.blocks, c.input_shape[0], c.activation, c.output_activation)
    raise ValueError(f"unknown arch {c.arch!r} (expected dense, conv or fcn)")
