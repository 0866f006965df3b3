"""Images of any size for fully convolutional models: padding to a stride and back.

A fully convolutional model with total stride ``m`` takes images whose height and width
are multiples of ``m``. :func:`pad_to_multiple` reflects the border out to the next
multiple and :func:`crop_to` cuts the result back, so every output keeps its input's size.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def padded_size(size: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is at least ``size``."""
    if multiple < 1:
        raise ValueError(f"multiple must be at least 1, not {multiple}")
    return -(-size // multiple) * multiple


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "reflect") -> Tensor:
    """Pad the bottom and right of (B, C, H, W) images so that H and W are multiples of ``multiple``.

    Reflection needs a border wider than the padding; images too small for it are padded by
    replication instead (a 1-pixel image has nothing to reflect).

    Shape:
        x: (B, C, H, W) -> (B, C, H', W') with H' = padded_size(H, multiple), likewise W'.
    """
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    if ph == 0 and pw == 0:
        return x
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def crop_to(x: Tensor, height: int, width: int) -> Tensor:
    """The top-left ``height`` x ``width`` of (..., H, W): undoes :func:`pad_to_multiple`."""
    return x[..., :height, :width]
