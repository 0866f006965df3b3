"""Images of any size for fully convolutional models: padding, tiles and random patches.

A fully convolutional model with total stride ``m`` takes images whose height and width
are multiples of ``m``. :func:`pad_to_multiple` reflects the border out to the next
multiple and :func:`crop_to` cuts the result back, so every output keeps its input's size;
:func:`apply_whole` does both around a model, in tiles under a memory budget when asked.
:class:`PatchDataset` trains such a model on random patches of images of any size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aekit.data.dataset import DataInfo, Scaling
from aekit.errors import DataError


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


# --- whole images and tiles through a fully convolutional model -------------------------------------


def _spans(size: int, core: int, margin: int) -> list[tuple[int, int, int, int]]:
    """Along one axis: (input start, input stop, kept start, kept stop) of each tile.

    Cores of ``core`` pixels tile [0, size); each tile's input widens its core by ``margin`` on both
    sides (clipped to the image). Starts stay multiples of the stride when ``core`` and ``margin`` are.
    """
    spans = []
    for a in range(0, size, core):
        b = min(a + core, size)
        spans.append((max(0, a - margin), min(size, b + margin), a, b))
    return spans


def apply_whole(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    multiple: int,
    *,
    tile: int | None = None,
    margin: int = 0,
) -> Tensor:
    """Run a fully convolutional ``fn`` on images of any size; the output keeps the input's size.

    The images are reflect-padded to a multiple of ``multiple`` (the model's total stride) and the
    output cropped back. With ``tile``, the padded image is cut into tiles of at most ``tile`` +
    2 ``margin`` pixels a side: each tile's centre ``tile`` x ``tile`` is kept, its ``margin`` only gives
    context. With a margin at least the model's receptive radius, tiled and whole outputs agree
    (to float rounding): no seams, and memory bounded by the tile.

    Args:
        fn: (B, C, h, w) -> (B, C', h, w), for h and w multiples of ``multiple``.
        x: (B, C, H, W) images.
        multiple: The total stride.
        tile: Side of the kept part of each tile (rounded up to ``multiple``); None: the whole image at once.
        margin: Context around each tile (rounded up to ``multiple``).

    Shape:
        x: (B, C, H, W) -> (B, C', H, W)
    """
    h, w = x.shape[-2:]
    padded = pad_to_multiple(x, multiple)
    ph, pw = padded.shape[-2:]
    if tile is None or (tile >= ph and tile >= pw):
        return crop_to(fn(padded), h, w)
    core, margin = padded_size(max(tile, 1), multiple), padded_size(margin, multiple) if margin else 0
    out = None
    for y0, y1, ya, yb in _spans(ph, core, margin):
        for x0, x1, xa, xb in _spans(pw, core, margin):
            piece = fn(padded[..., y0:y1, x0:x1])
            if out is None:
                out = piece.new_empty((*piece.shape[:-2], ph, pw))
            out[..., ya:yb, xa:xb] = piece[..., ya - y0 : yb - y0, xa - x0 : xb - x0]
    return crop_to(out, h, w)


# --- random patches for training ---------------------------------------------------------------------


class PatchDataset:
    """Random ``size`` x ``size`` patches of images of any size, drawn afresh each epoch.

    It keeps the dataset contract the trainer and :class:`aekit.data.batches.Batches` use
    (``len``, ``take``, ``split``, ``describe``...), so a fully convolutional model trains on
    patches of photos of any size, with no change to the training loop. One epoch holds about
    one patch per ``size`` x ``size`` of image area (at least one per image), so every image is
    seen in proportion to its size. Each patch is a uniformly placed crop (every pixel can be
    drawn), flipped and rotated by a multiple of 90 degrees at random when ``augment``.

    Randomness: from ``generator`` when given, else torch's global generator (which the trainer
    seeds from ``train.seed`` and saves in checkpoints, so a resumed run draws the same patches).
    With ``fixed``, patch i is the same every time (validation, calibration).

    Args:
        images: (C, H, W) uint8 arrays or tensors (memory-mapped arrays are read patch by patch).
        size: Patch side in pixels.
        augment: Random flips and 90-degree rotations.
        fixed: The same patch for the same index every time (no augmentation).
        seed: The seed of the fixed patches.
        name: For messages and the run config.
        ids: A name per image.
        generator: The random source of non-fixed patches.
        per_epoch: Patches in one epoch, spread over the images in proportion to their area
            (default: one per ``size`` x ``size`` of area, at least one per image).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray | Tensor],
        size: int,
        *,
        augment: bool = True,
        fixed: bool = False,
        seed: int = 0,
        name: str = "patches",
        ids: tuple[str, ...] | None = None,
        generator: torch.Generator | None = None,
        per_epoch: int | None = None,
    ) -> None:
        if size < 1:
            raise DataError(f"{name}: patch size must be at least 1, not {size}")
        if not images:
            raise DataError(f"{name}: no images to cut patches from")
        channels = {int(im.shape[0]) for im in images}
        if len(channels) > 1:
            raise DataError(
                f"{name}: images with {sorted(channels)} channels; convert them to one count first"
            )
        self.images = list(images)
        self.size, self.augment, self.fixed, self.seed = size, augment, fixed, seed
        self.name, self.ids, self.generator = name, ids, generator
        self.scaling = Scaling.uint8()
        self.y, self.classes, self.schema, self.series = None, None, None, None  # images: none of these
        self.per_epoch = per_epoch
        areas = np.array([int(im.shape[1]) * int(im.shape[2]) for im in self.images], dtype=np.float64)
        if per_epoch is None:
            counts = np.maximum(1, areas.astype(np.int64) // (size * size))
            self.owner = torch.repeat_interleave(torch.arange(len(counts)), torch.from_numpy(counts))
        else:  # patch i belongs to the image whose share of the total area holds (i + 0.5) / per_epoch
            edges = np.cumsum(areas) / areas.sum()
            where = np.searchsorted(edges, (np.arange(per_epoch) + 0.5) / per_epoch)
            self.owner = torch.from_numpy(np.minimum(where, len(areas) - 1))

    def __len__(self) -> int:
        return len(self.owner)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.images[0].shape[0]), self.size, self.size)

    @property
    def is_image(self) -> bool:
        return True

    @property
    def x(self) -> Tensor:  # the dtype of the raw values, as ArrayDataset.x tells it
        return torch.empty(0, dtype=torch.uint8)

    def _draw(self, k: int, gen: torch.Generator | None) -> tuple[int, int, int, bool]:
        """(top, left, quarter turns, flip) of one patch of image ``k``."""
        _, h, w = self.images[k].shape
        top = int(torch.randint(max(1, h - self.size + 1), (1,), generator=gen))
        left = int(torch.randint(max(1, w - self.size + 1), (1,), generator=gen))
        if not self.augment or self.fixed:
            return top, left, 0, False
        turns = int(torch.randint(4, (1,), generator=gen))
        return top, left, turns, bool(torch.randint(2, (1,), generator=gen))

    def patch(self, index: int) -> Tensor:
        """The raw (uint8) patch at ``index``: (C, size, size)."""
        k = int(self.owner[index])
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index) if self.fixed else self.generator
        top, left, turns, flip = self._draw(k, gen)
        image = self.images[k]
        crop = image[:, top : top + self.size, left : left + self.size]
        p = torch.from_numpy(np.ascontiguousarray(crop)) if isinstance(crop, np.ndarray) else crop
        if p.shape[-2] < self.size or p.shape[-1] < self.size:  # an image smaller than the patch
            p = _pad_to(p, self.size)
        if flip:
            p = p.flip(-1)
        return p.rot90(turns, (-2, -1)) if turns else p

    def raw(self, index: Tensor) -> Tensor:
        return torch.stack([self.patch(int(i)) for i in index])

    def take(self, index: Tensor, device: torch.device | str = "cpu") -> tuple[Tensor, None]:
        """Scaled float32 patches (B, C, size, size) at ``index`` on ``device``; no labels."""
        return self.scaling.apply(self.raw(index).to(device)), None

    def subset(self, index: Tensor | np.ndarray, name: str | None = None) -> PatchDataset:
        """The fixed patches at ``index`` (for figures): always the same ones."""
        index = torch.as_tensor(np.asarray(index), dtype=torch.int64)
        patches = [self.patch(int(i)) for i in index] if self.fixed else self.raw(index).unbind(0)
        return PatchDataset(list(patches), self.size, fixed=True, augment=False, name=name or self.name)

    def split(self, fraction: float, seed: int = 0) -> tuple[PatchDataset, PatchDataset | None]:
        """Hold out a random ``fraction`` of the *images* (never patches of training images) as fixed
        patches; with one image, the held-out patches come from it (say so when it matters)."""
        if fraction <= 0:
            return self, None
        n = len(self.images)
        if n < 2:
            return self, self._copy(list(range(n)), fixed=True, name=f"{self.name} (validation)")
        n_val = min(n - 1, max(1, int(round(n * fraction))))
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
        val = self._copy(perm[:n_val], fixed=True, name=f"{self.name} (validation)")
        return self._copy(perm[n_val:], fixed=False, name=self.name), val

    def _copy(self, which: list[int], *, fixed: bool, name: str) -> PatchDataset:
        ids = tuple(self.ids[i] for i in which) if self.ids else None
        per_epoch = self.per_epoch
        if per_epoch is not None and not fixed:  # the same share of patches as of images
            per_epoch = max(1, per_epoch * len(which) // len(self.images))
        return PatchDataset(
            [self.images[i] for i in which], self.size, augment=self.augment and not fixed, fixed=fixed,
            seed=self.seed, name=name, ids=ids, generator=self.generator,
            per_epoch=None if fixed else per_epoch,
        )  # fmt: skip

    def describe(self) -> DataInfo:
        """What the run records: the patch shape (the model takes any size), the number of images."""
        return DataInfo(self.name, self.shape, len(self.images), "uint8", self.scaling)


def _pad_to(p: Tensor, size: int) -> Tensor:
    """Pad a (C, h, w) patch at the bottom and right to at least size x size (reflect, else replicate)."""
    ph, pw = max(0, size - p.shape[-2]), max(0, size - p.shape[-1])
    mode = "reflect" if ph < p.shape[-2] and pw < p.shape[-1] else "replicate"
    return F.pad(p[None].float(), (0, pw, 0, ph), mode=mode)[0].to(p.dtype)
