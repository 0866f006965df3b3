"""Write model outputs (reconstructions, samples) in the format the output path asks for."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from aekit.data.dataset import ArrayDataset
from aekit.data.idx import is_idx, write_idx
from aekit.errors import DataError
from aekit.fileio import atomic_path, atomic_write_bytes, atomic_write_text, new_output
from aekit.report.figures import reconstruction_grid, save_figure


def _to_raw(x: np.ndarray, like: ArrayDataset) -> np.ndarray:
    """Model values -> the input's own scale and dtype (uint8 pixels stay uint8)."""
    raw = like.scaling.invert(torch.from_numpy(x)).numpy()
    if like.scaling.scale == (255.0,) and like.scaling.offset == (0.0,):
        return np.clip(np.rint(raw), 0, 255).astype(np.uint8)
    return raw.astype(np.float32)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    a = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


FORMATS = {  # output kind -> how help texts and errors name it
    "npy": ".npy",
    "csv": ".csv",
    "idx": "IDX (*-ubyte[.gz])",
    "png": ".png (a figure)",
    "folder": "a folder of PNGs",
}


def output_kind(path: str | Path) -> str:
    """The format ``path`` asks for: npy, csv, idx, png, folder (no suffix), or else its suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".csv", ".png"):
        return suffix[1:]
    if is_idx(path):
        return "idx"
    return "folder" if suffix == "" else suffix


def sample_kinds(sample_shape: tuple[int, ...]) -> tuple[str, ...]:
    """The formats :func:`write_samples` can write samples of this shape to."""
    if len(sample_shape) == 3:  # images
        return ("npy", "idx", "png", "folder")
    if len(sample_shape) == 1:  # table rows
        return ("npy", "csv")
    return ("npy", "idx")


def check_samples_output(path: str | Path, sample_shape: tuple[int, ...], force: bool = False) -> Path:
    """``path`` as an output for samples of ``sample_shape``, checked before any work is done.

    Raises:
        DataError: the output exists (without ``force``), or its format cannot hold these samples.
    """
    path = new_output(path, force)
    kind, kinds = output_kind(path), sample_kinds(tuple(sample_shape))
    if kind not in kinds:
        what = "images" if len(sample_shape) == 3 else "table rows" if len(sample_shape) == 1 else "samples"
        raise DataError(
            f"{path}: {FORMATS.get(kind, repr(kind) + ' files')} cannot hold {what} of shape "
            f"{tuple(sample_shape)}; write {', '.join(FORMATS[k] for k in kinds)}"
        )
    return path


def write_samples(path: str | Path, x: np.ndarray, *, like: ArrayDataset, force: bool = False) -> Path:
    """Write samples ``x`` (N, *shape) in model space to ``path``.

    The suffix decides: ``.npy`` (the input's dtype and scale), ``.csv`` (tables: in their own
    columns with the header, numbers unscaled and categories by name, for data read from CSV), an IDX
    name (``*-ubyte``, ``.idx``, optionally ``.gz``; uint8), ``.png`` (a figure of
    originals above reconstructions), anything else a folder of PNG images named after
    the inputs. Each file is written atomically; an existing output needs ``force``.

    Raises:
        DataError: the output exists (without ``force``) or cannot hold these samples.
    """
    path = check_samples_output(path, x.shape[1:], force)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, _to_raw(x, like))
    elif suffix == ".csv" and like.schema is not None:  # a table: its own columns, numbers unscaled
        atomic_write_text(path, like.schema.to_csv(x, like.ids))
    elif suffix == ".csv":
        if x.ndim != 2:
            raise DataError(f"{path}: CSV output holds tables; these samples have shape {x.shape[1:]}")
        buf = io.StringIO()
        csv.writer(buf).writerows(_to_raw(x, like).tolist())
        atomic_write_text(path, buf.getvalue())
    elif is_idx(path):
        write_idx(path, _to_raw(x, like).squeeze(1) if x.ndim == 4 and x.shape[1] == 1 else _to_raw(x, like))
    elif suffix == ".png":
        originals = like.take(torch.arange(min(10, len(like))))[0].numpy()
        save_figure(reconstruction_grid(originals, x[: len(originals)]), path)
    elif suffix == "":
        if x.ndim != 4:
            raise DataError(f"{path}: a folder of images needs image samples; these have shape {x.shape[1:]}")
        names = like.ids or tuple(f"{i:05d}.png" for i in range(len(x)))
        path.mkdir(parents=True, exist_ok=True)
        for name, image in zip(names, x, strict=True):
            atomic_write_bytes(path / Path(name).with_suffix(".png"), _png(image))
    else:
        raise DataError(f"{path}: unknown output type (use .npy, .csv, an IDX name, .png, or a folder)")
    return path
