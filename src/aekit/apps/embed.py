"""Latent codes of data: ``aekit embed`` and the scikit-learn transformer; per-sample tables.

:func:`write_codes` writes codes with the samples' ids and labels carried over: ``.csv`` (id,
label, z0..), ``.npz`` (``codes``, ``labels``, ``ids``) or ``.npy`` (the codes alone); fully
convolutional runs give spatial codes, one (C, H', W') per image, which :func:`pool_codes` turns
into vectors.
:func:`write_scores` writes ``aekit detect score``'s table (index, id, label, score, anomaly).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aekit.data.dataset import ArrayDataset
from aekit.data.images import ImageSet
from aekit.errors import DataError
from aekit.fileio import atomic_path, atomic_write_text, new_output


def pool_codes(codes: np.ndarray | Sequence[np.ndarray], how: str) -> np.ndarray:
    """Spatial codes (N, C, H', W') or one (C, H', W') per image -> (N, C) by their ``mean`` or ``max``
    over positions: one vector per image, whatever its size."""
    if how not in ("mean", "max"):
        raise ValueError(f"pool must be mean or max, not {how!r}")
    fn = np.mean if how == "mean" else np.max
    return np.stack([fn(np.asarray(c).reshape(len(c), -1), axis=1) for c in codes]).astype(np.float32)


def check_codes_output(path: Path, shapes: Sequence[tuple[int, ...]] = ()) -> None:
    """Refuse, before any work, an output that cannot hold codes of these shapes (one per sample;
    none given: check the file type only).

    Raises:
        DataError: an unknown file type, spatial codes bound for a CSV, or codes of different
            shapes for one ``.npy``.
    """
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv"):
        raise DataError(f"{path}: unknown output type for codes (use .npy, .npz or .csv)")
    if suffix == ".csv" and shapes and len(shapes[0]) > 1:
        raise DataError(
            f"{path}: these codes are spatial, {tuple(shapes[0])} per image; a CSV holds one vector per row: "
            "write .npy or .npz, or pool them to vectors with --pool mean"
        )
    if suffix == ".npy" and len(set(map(tuple, shapes))) > 1:
        raise DataError(
            f"{path}: the images have different sizes, so their codes have different shapes; "
            "write .npz (one array per image) or pool them to vectors with --pool mean"
        )


def write_codes(
    path: str | Path,
    codes: np.ndarray | Sequence[np.ndarray],
    data: ArrayDataset | ImageSet,
    force: bool = False,
) -> Path:
    """Write the codes of the samples of ``data`` to ``path``, atomically.

    ``codes`` is (N, D) vectors, (N, C, H', W') spatial codes of same-size images, or one
    (C, H', W') array per image when their sizes differ. ``.npy`` holds one array; ``.npz`` holds
    ``codes`` (or ``codes_0``, ``codes_1``, ... one per image when the shapes differ), ``ids`` and
    ``labels``; ``.csv`` holds vectors only (pool spatial codes first: :func:`pool_codes`).

    Raises:
        DataError: the output exists (without ``force``), has an unknown suffix, or cannot hold
            these codes (spatial codes in a CSV, codes of different shapes in one ``.npy``).
    """
    path = new_output(path, force)
    suffix = path.suffix.lower()
    labels = data.y.numpy() if data.y is not None else None
    ids = list(data.ids) if data.ids else [str(i) for i in range(len(codes))]
    parts = [np.asarray(c, dtype=np.float32) for c in codes]
    check_codes_output(path, [c.shape for c in parts])
    same = len({c.shape for c in parts}) <= 1
    if suffix == ".npy":
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, np.stack(parts) if parts else np.zeros((0, 0), np.float32))
    elif suffix == ".npz":
        arrays = {f"codes_{i}": c for i, c in enumerate(parts)}
        if same and parts:
            arrays = {"codes": np.stack(parts)}
        arrays["ids"] = np.array(ids, dtype=str)
        if labels is not None:
            arrays["labels"] = labels
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    else:
        buf = io.StringIO()
        w = csv.writer(buf)
        names = [f"z{j}" for j in range(parts[0].shape[0] if parts else 0)]
        w.writerow(["id", *(["label"] if labels is not None else []), *names])
        for i, row in enumerate(parts):
            label = [] if labels is None else [data.classes[labels[i]] if data.classes else int(labels[i])]
            w.writerow([ids[i], *label, *(f"{v:.7g}" for v in row.tolist())])
        atomic_write_text(path, buf.getvalue())
    return path


def sample_ids(data: ArrayDataset) -> list[str]:
    """Each sample's id: its file or row name when the data has them, else an empty string."""
    return [str(v) for v in data.ids] if data.ids else [""] * len(data)


def sample_labels(data: ArrayDataset) -> list[str]:
    """Each sample's label as written in a table: the class name when known, else the number, else empty."""
    if data.y is None:
        return [""] * len(data)
    labels = data.y.tolist()
    return [data.classes[v] for v in labels] if data.classes else [str(v) for v in labels]


def write_scores(
    path: str | Path, scores: np.ndarray, flagged: Sequence[bool], data: ArrayDataset, force: bool = False
) -> Path:
    """Write one row per sample of ``data``: ``index,id,label,score,anomaly`` (anomaly 1 or 0), atomically.

    Raises:
        DataError: the output exists (without ``force``) or is not a ``.csv`` file.
    """
    path = new_output(path, force)
    if path.suffix.lower() != ".csv":
        raise DataError(f"{path}: scores are written as CSV; name the output *.csv")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["index", "id", "label", "score", "anomaly"])
    rows = zip(sample_ids(data), sample_labels(data), np.asarray(scores).tolist(), flagged, strict=True)
    for i, (sample_id, label, score, flag) in enumerate(rows):
        w.writerow([i, sample_id, label, f"{score:.8g}", int(bool(flag))])
    atomic_write_text(path, buf.getvalue())
    return path
