"""Datasets from files a user has: IDX, NumPy arrays, folders of images, CSV tables.

Each reader validates where the data enters and raises :class:`DataError` naming
the file and the problem; :func:`read_path` picks the reader from the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aekit.data.dataset import ArrayDataset, Scaling
from aekit.data.idx import is_idx, read_idx
from aekit.data.tabular import read_csv
from aekit.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _image_array(x: np.ndarray, name: str) -> np.ndarray:
    """(N,H,W) -> (N,1,H,W); (N,H,W,C) with C in 1/3/4 -> (N,C,H,W); (N,C,H,W) and (N,F) kept."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        return np.moveaxis(x, -1, 1)
    if x.ndim in (2, 4):
        return x
    raise DataError(
        f"{name}: expected samples of shape (N,F), (N,H,W), (N,H,W,C) or (N,C,H,W), got {x.shape}"
    )


def from_array(x: np.ndarray, name: str, y: np.ndarray | None = None) -> ArrayDataset:
    """A dataset from an array of uint8 or float values, checking range and finiteness.

    uint8 is scaled by 1/255. Floats must be finite; values in [0, 1] are kept,
    values in [0, 255] (pixels stored as float) are scaled by 1/255, anything else
    is refused: a sigmoid decoder cannot produce it.
    """
    x = _image_array(np.asarray(x) if not isinstance(x, np.memmap) else x, name)
    if x.dtype == np.uint8:
        return ArrayDataset(x, y, name=name, scaling=Scaling.uint8())
    if x.dtype.kind not in "fiub":
        raise DataError(f"{name}: unsupported dtype {x.dtype} (expected uint8 or floating point numbers)")
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero((~np.isfinite(x.reshape(len(x), -1))).any(1))[0])
        raise DataError(f"{name}: sample {bad} holds NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0 and hi <= 1:
        return ArrayDataset(x, y, name=name, scaling=Scaling())
    if lo >= 0 and hi <= 255:
        return ArrayDataset(x, y, name=name, scaling=Scaling.uint8())
    raise DataError(
        f"{name}: values span [{lo:g}, {hi:g}]; expected [0, 1] or [0, 255] (scale the data first)"
    )


def read_npy(path: str | Path) -> ArrayDataset:
    """A .npy array (memory-mapped, never unpickled) or an .npz with ``x`` and optional ``y``."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "x" not in z:
                    found = ", ".join(sorted(z.files))
                    raise DataError(f"{path}: an .npz must hold an array named 'x' (found {found})")
                return from_array(z["x"], str(path), z.get("y"))
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable NumPy array ({e})") from None
    if x.dtype == np.uint8 and x.ndim in (2, 4) and (x.ndim == 2 or x.shape[1] in (1, 3, 4)):
        return ArrayDataset(x, name=str(path), scaling=Scaling.uint8())  # stays memory-mapped
    return from_array(np.asarray(x), str(path))


def read_image_folder(path: str | Path) -> ArrayDataset:
    """Every image in a folder, or in its class subfolders (labels from the folder names).

    Grey images give one channel; if any image has colour, all become RGB. All images
    must have the same size.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    labels: list[int] = []
    classes: tuple[str, ...] | None = None
    if not files:
        subdirs = sorted(d for d in root.iterdir() if d.is_dir())
        per_class = [sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for d in subdirs]
        kept = [(d.name, fs) for d, fs in zip(subdirs, per_class, strict=True) if fs]
        classes = tuple(name for name, _ in kept) or None
        for label, (_, fs) in enumerate(kept):
            files += fs
            labels += [label] * len(fs)
    if not files:
        raise DataError(f"{root}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataError(f"{f}: not a readable image ({e})") from None
    colour = any(im.mode not in ("1", "L", "LA", "I", "I;16", "F") for im in images)
    size = images[0].size
    arrays = []
    for f, im in zip(files, images, strict=True):
        if im.size != size:
            raise DataError(
                f"{f}: image is {im.size[0]}x{im.size[1]}, but {files[0].name} is {size[0]}x{size[1]}"
            )
        a = np.asarray(im.convert("RGB" if colour else "L"), dtype=np.uint8)
        arrays.append(a.transpose(2, 0, 1) if colour else a[None])
    y = np.asarray(labels) if classes else None
    ids = tuple(str(f.relative_to(root)) for f in files)
    return ArrayDataset(
        np.stack(arrays), y, name=str(root), scaling=Scaling.uint8(), classes=classes, ids=ids
    )


def read_path(path: str | Path) -> ArrayDataset:
    """Read data from a path, choosing the reader from what it is.

    Folders are image folders; ``.npy``/``.npz`` are arrays; ``.csv`` tables;
    IDX files are recognised by name (``*-ubyte``, ``.idx``, gz or not); a single
    image file is a dataset of one.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return read_image_folder(path)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return read_npy(path)
    if suffix == ".csv":
        return read_csv(path)
    if suffix in IMAGE_SUFFIXES:
        return _read_one_image(path)
    if is_idx(path):
        return from_array(read_idx(path), str(path))
    raise DataError(
        f"{path}: unknown input type (expected a folder of images, .npy, .npz, .csv or an IDX file)"
    )


def _read_one_image(path: Path) -> ArrayDataset:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
            a = np.asarray(im.convert("L" if grey else "RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    a = a[None] if grey else a.transpose(2, 0, 1)
    return ArrayDataset(a[None], name=str(path), scaling=Scaling.uint8(), ids=(path.name,))
