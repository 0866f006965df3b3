"""A folder of ``.npy`` shards read as one data set, memory-mapped and never loaded whole.

``shards:DIR`` takes every ``*.npy`` in DIR (sorted by name) with the same sample shape and
dtype; optional labels come from ``*.labels.npy`` files beside them. Memory use stays that of
one batch however many shards there are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aekit.data.dataset import ArrayDataset, Scaling
from aekit.errors import DataError


class ShardedArray:
    """Several memory-mapped arrays of the same sample shape and dtype, indexed as one."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = arrays
        self.offsets = np.cumsum([0] + [len(a) for a in arrays])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.arrays[0].shape[1:])

    @property
    def dtype(self):
        return self.arrays[0].dtype

    def __getitem__(self, index) -> np.ndarray:
        """Rows at ``index`` (an int array, or a slice), in the order asked."""
        rows = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        shard = np.searchsorted(self.offsets, rows, side="right") - 1
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for k in np.unique(shard):
            pick = shard == k
            local = rows[pick] - self.offsets[k]
            order = np.argsort(local, kind="stable")
            block = np.asarray(self.arrays[k][local[order]])
            out[np.flatnonzero(pick)[order]] = block
        return out


def read_shards(folder: str | Path) -> ArrayDataset:
    """Every ``*.npy`` shard in ``folder`` as one data set (uint8 pixels, or floats in [0, 1]).

    Raises:
        DataError: no shards, shards that disagree in sample shape or dtype, unreadable files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of .npy shards")
    paths = sorted(p for p in folder.glob("*.npy") if not p.name.endswith(".labels.npy"))
    if not paths:
        raise DataError(f"{folder}: no .npy shards here")
    arrays, labels = [], []
    for p in paths:
        try:
            a = np.load(p, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{p}: not a readable NumPy array ({e})") from None
        if a.ndim < 2 or len(a) == 0:
            raise DataError(f"{p}: expected samples (N, ...), got shape {a.shape}")
        if arrays and (a.shape[1:] != arrays[0].shape[1:] or a.dtype != arrays[0].dtype):
            raise DataError(
                f"{p}: samples {a.shape[1:]} {a.dtype} differ from the first shard's "
                f"{arrays[0].shape[1:]} {arrays[0].dtype}"
            )
        arrays.append(a)
        lab = p.with_name(p.stem + ".labels.npy")
        labels.append(np.load(lab, allow_pickle=False) if lab.is_file() else None)
    if arrays[0].dtype != np.uint8:
        raise DataError(f"{paths[0]}: shards must hold uint8 pixels (got {arrays[0].dtype})")
    y = np.concatenate(labels) if all(v is not None for v in labels) else None
    return ArrayDataset(ShardedArray(arrays), y, name=str(folder), scaling=Scaling.uint8())
