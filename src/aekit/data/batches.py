"""Shuffled mini-batches cut straight from tensors: no per-sample Python, no DataLoader.

For a dataset in memory one batch is one index into a uint8 tensor, one copy and
one multiply; a torchvision-style pipeline spends most of its time turning each
image into a PIL object and back (see benchmarks/train_speed.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from aekit.data.dataset import ArrayDataset


@dataclass
class Batch:
    """What a model's ``loss`` receives.

    Shape:
        x: (B, *shape) float32, scaled (pixels in [0, 1]).
        y: (B,) int64 labels, or None.
    """

    x: Tensor
    y: Tensor | None = None

    def __len__(self) -> int:
        return len(self.x)


class Batches:
    """Iterate over ``data`` in batches, reshuffled each pass by ``generator``.

    Args:
        data: The dataset.
        batch_size: Samples per batch; the last batch may be smaller.
        shuffle: Draw a new permutation each pass.
        generator: The random source for the permutation (its state is what a resumed run restores).
        device: Where batches are put.
        shard: ``(rank, world_size)`` under torchrun: yield only this rank's contiguous share of
            each batch (all ranks draw the same permutation); a final batch smaller than the
            number of ranks is dropped so that every rank takes the same number of steps.
    """

    def __init__(
        self,
        data: ArrayDataset,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.device = torch.device(device)
        self.rank, self.ranks = shard if shard is not None else (0, 1)

    def _starts(self) -> range:
        n = len(self.data)
        last = n - (n % self.batch_size or self.batch_size)  # where the final batch begins
        keep_last = n - last >= self.ranks
        return range(0, n if keep_last else last, self.batch_size)

    def __len__(self) -> int:
        return len(self._starts())

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in self._starts():
            stop = min(start + self.batch_size, n)
            if self.ranks > 1:
                start, stop = share(start, stop - start, self.rank, self.ranks)
            x, y = self.data.take(order[start:stop], self.device)
            yield Batch(x, y)


def share(start: int, size: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous share ``(start, stop)`` of ``size`` samples that begin at ``start``."""
    base, extra = divmod(size, world_size)
    lo = start + rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)
