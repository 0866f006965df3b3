"""Datasets from files a user has: IDX, NumPy arrays, folders of images, CSV tables.

Each reader validates where the data enters and raises :class:`DataError` naming
the file and the problem; :func:`read_path` picks the reader from the path.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from aekit.data.dataset import ArrayDataset, Scaling
from aekit.data.idx import is_idx, read_idx
from aekit.data.images import IMAGE_SUFFIXES, is_grey, open_image, pixels, read_images, say
from aekit.data.tabular import TableSchema, read_csv
from aekit.errors import DataError


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
    if x.size == 0:
        raise DataError(f"{name}: holds no values (shape {x.shape})")
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
    y = None
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)  # .npy or .npz, told apart by content
        if isinstance(x, np.lib.npyio.NpzFile):
            with x as z:
                if "x" not in z:
                    found = ", ".join(sorted(z.files)) or "nothing"
                    raise DataError(f"{path}: an .npz must hold an array named 'x' (found {found})")
                x, y = z["x"], z.get("y")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: not a readable NumPy array ({e})") from None
    # from_array keeps an np.memmap as it is: a .npy of uint8 (or of float32 in range) stays on disk
    return from_array(x, str(path), y)


def read_image_folder(path: str | Path) -> ArrayDataset:
    """Every image in a folder, or in its class subfolders (labels from the folder names).

    All images become what most of them are (grey or RGB, colour on a tie), and the
    conversions are said on stderr, as are skipped non-image files. 16-bit grey images are
    scaled to 8 bits. All images must have the same size (else an error naming the odd file
    and the ways out); :func:`aekit.data.images.read_images` reads folders of mixed sizes.
    """
    images = read_images(path)
    say(images.notes)
    return images.to_dataset()


def read_path(
    path: str | Path,
    *,
    missing: str = "error",
    schema: TableSchema | None = None,
    id_column: str | None = None,
) -> ArrayDataset:
    """Read data from a path, choosing the reader from what it is.

    Folders are image folders; ``.npy``/``.npz`` are arrays; ``.csv`` tables;
    IDX files are recognised by name (``*-ubyte``, ``.idx``, gz or not); a single
    image file is a dataset of one.

    Args:
        path: The file or folder.
        missing: Tables: ``error``, ``drop`` or ``impute`` missing values.
        schema: Tables: a trained run's encoding, applied as is (else one is fitted to the table).
        id_column: Tables: the column that names the rows (None: detected), when fitting.
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
        return read_csv(path, missing=missing, schema=schema, id_column=id_column)
    if suffix in IMAGE_SUFFIXES:
        return _read_one_image(path)
    if is_idx(path):
        return from_array(read_idx(path), str(path))
    raise DataError(
        f"{path}: unknown input type (expected a folder of images, .npy, .npz, .csv or an IDX file)"
    )


def _read_one_image(path: Path) -> ArrayDataset:
    with open_image(path) as im:
        a = pixels(im, not is_grey(im.mode), path)
    return ArrayDataset(a[None], name=str(path), scaling=Scaling.uint8(), ids=(path.name,))
