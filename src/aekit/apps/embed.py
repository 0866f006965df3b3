"""Latent codes of data: ``aekit embed`` and the scikit-learn transformer; per-sample tables.

:func:`write_codes` writes codes with the samples' ids and labels carried over: ``.csv`` (id,
label, z0..), ``.npz`` (``codes``, ``labels``, ``ids``) or ``.npy`` (the codes alone).
:func:`write_scores` writes ``aekit detect score``'s table (index, id, label, score, anomaly).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aekit.data.dataset import ArrayDataset
from aekit.errors import DataError
from aekit.fileio import atomic_path, atomic_write_text, new_output


def write_codes(path: str | Path, codes: np.ndarray, data: ArrayDataset, force: bool = False) -> Path:
    """Write ``codes`` (N, D) for the samples of ``data`` to ``path``, atomically.

    Raises:
        DataError: the output exists (without ``force``) or has an unknown suffix.
    """
    path = new_output(path, force)
    suffix = path.suffix.lower()
    labels = data.y.numpy() if data.y is not None else None
    ids = list(data.ids) if data.ids else [str(i) for i in range(len(codes))]
    if suffix == ".npy":
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, codes.astype(np.float32))
    elif suffix == ".npz":
        arrays = {"codes": codes.astype(np.float32), "ids": np.array(ids, dtype=str)}
        if labels is not None:
            arrays["labels"] = labels
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    elif suffix == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        names = [f"z{j}" for j in range(codes.shape[1])]
        w.writerow(["id", *(["label"] if labels is not None else []), *names])
        for i, row in enumerate(codes.tolist()):
            label = [] if labels is None else [data.classes[labels[i]] if data.classes else int(labels[i])]
            w.writerow([ids[i], *label, *(f"{v:.7g}" for v in row)])
        atomic_write_text(path, buf.getvalue())
    else:
        raise DataError(f"{path}: unknown output type for codes (use .npy, .npz or .csv)")
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
