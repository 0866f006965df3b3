"""Anomaly removal: ``aekit detect clean DET INPUT -o OUT``.

The detector scores every sample of the input (images, table rows, or time steps of series);
those above its threshold are dropped, or with ``repair`` replaced by the model's version:

- series: the flagged time steps get the reconstruction (windows averaged, on the raw scale);
- robust detectors (``robust="l1"`` / ``"l21"``): the sparse part is subtracted,
  ``x - shrink(x - x_hat, lam)``; with ``l1`` only the values that stand out change;
- other detectors: a flagged image or row becomes its reconstruction.

``OUT`` is a new folder (it must not exist, so nothing is ever overwritten and the input is never
touched). It holds the cleaned data in the input's own form (an image folder keeps its files and
sub-folders, copied byte for byte; a CSV keeps its header and untouched rows as written; an array
becomes ``.npy``; a named data set becomes ``data.npz`` with ``x`` and ``y``), and ``removed.csv``:
one row per flagged sample with its index, id (file name or time), score, the threshold and what
was done.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.data.dataset import ArrayDataset
from aekit.errors import DataError
from aekit.fileio import atomic_path, atomic_write_bytes, atomic_write_text

REMOVED = "removed.csv"


@dataclass
class CleanResult:
    """What :func:`clean` did: how many samples were kept and flagged, and where it wrote."""

    kept: int
    flagged: int
    repaired: bool
    out: Path
    files: list[Path]

    def summary(self) -> str:
        done = "repaired" if self.repaired else "removed"
        total = self.kept + (0 if self.repaired else self.flagged)
        return f"{self.flagged} anomalous of {total} {done} -> {self.out}"


def clean(
    det: Any, data: ArrayDataset, out: str | Path, *, repair: bool = False, source: str | None = None
) -> CleanResult:
    """Write ``data`` without (or with repaired) anomalies into the new folder ``out``.

    Args:
        det: A fitted :class:`aekit.AnomalyDetector`.
        data: Data read for the detector (``det.run_.load_data``), images, a table or series.
        out: A folder that must not exist yet.
        repair: Replace anomalous values instead of dropping samples.
        source: Where ``data`` came from (a path, ``scheme:PATH`` or a name); ``data.name`` if None.

    Raises:
        DataError: ``out`` exists, or the input cannot be written back in its own form.
    """
    out = Path(out)
    if out.exists():
        raise DataError(f"{out}: already exists; clean writes a new folder and never overwrites")
    source = source or data.name
    scores = np.asarray(det.anomaly_score(data), dtype=np.float64)
    threshold = float(det.threshold_)
    flagged = scores > threshold
    fixed = repaired(det, data, flagged) if repair else None
    path = Path(source.split(":", 1)[1]) if ":" in source and not Path(source).exists() else Path(source)
    out.mkdir(parents=True)
    if data.series is not None:
        files = _write_series(data, flagged, fixed, out)
    elif data.schema is not None:
        files = [_write_table(path, data, flagged, fixed, out)]
    elif path.is_dir() and data.ids is not None:
        files = _write_images(path, data, flagged, fixed, out)
    else:
        files = [_write_array(path, data, flagged, fixed, out)]
    files.append(_write_removed(data, scores, threshold, flagged, repair, out))
    return CleanResult(
        int((~flagged).sum()) if not repair else len(flagged), int(flagged.sum()), repair, out, files
    )


def repaired(det: Any, data: ArrayDataset, flagged: np.ndarray) -> np.ndarray:
    """The raw values of ``data`` with the flagged samples (steps) replaced as the module says.

    Shape:
        (N, *shape) for samples, (T, C) for series; the raw scale of ``data``.
    """
    if data.series is not None:
        from aekit.apps.series import reconstruct_steps

        raw = np.asarray(data.x, dtype=np.float32).copy()
        raw[flagged] = reconstruct_steps(det.run_.model, det.windowing_, data)[flagged]
        return raw
    prepared = det._input(data)
    x = prepared.take(torch.arange(len(prepared)))[0]
    x_hat = torch.from_numpy(det.run_.reconstruct(prepared))
    norm = det.robust
    if norm:
        from aekit.apps.robust import shrink

        x_hat = x - shrink(x - x_hat, float(det.lambda_), norm)
    mask = torch.from_numpy(flagged).reshape(-1, *([1] * (x.ndim - 1)))
    fixed = torch.where(mask, x_hat, x)
    return prepared.scaling.invert(fixed).numpy()


def _rows_csv(header: list[str] | None, rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _fmt(v: Any) -> str:
    return f"{v:.7g}" if isinstance(v, float) else str(v)


def _write_table(path: Path, data: ArrayDataset, flagged, fixed, out: Path) -> Path:
    from aekit.data.tabular import read_table

    if not path.is_file():
        raise DataError(f"{path}: clean writes tables back as CSV and needs the file itself")
    table = read_table(path)
    default = tuple(f"column {i + 1}" for i in range(len(table.names)))
    header = list(table.names) if table.names != default else None
    rows = zip(*table.cells, strict=True)
    lines = [(line, list(cells)) for line, cells in zip(table.lines, rows, strict=True)]
    if len(lines) != len(data):
        raise DataError(
            f"{path}: {len(lines)} rows in the file but {len(data)} were scored (rows with missing values "
            "were dropped when reading); clean needs every row"
        )
    decoded = data.schema.decode(_model_values(data, fixed)) if fixed is not None else None
    rows = []
    for i, (_, cells) in enumerate(lines):
        if not flagged[i]:
            rows.append(cells)
        elif decoded is not None:
            rows.append([_fmt(v) for v in decoded[i]])
    target = out / path.name
    atomic_write_text(target, _rows_csv(header, rows))
    return target


def _model_values(data: ArrayDataset, raw: np.ndarray) -> np.ndarray:
    """Raw values back to the [0, 1] feature space a table schema decodes."""
    return data.schema.scaling().apply(torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))).numpy()


def _write_images(root: Path, data: ArrayDataset, flagged, fixed, out: Path) -> list[Path]:
    from PIL import Image

    files = []
    for i, rel in enumerate(data.ids):
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not flagged[i]:
            shutil.copyfile(root / rel, target)
        elif fixed is not None:
            a = np.clip(np.rint(fixed[i]), 0, 255).astype(np.uint8)  # (C, H, W) on the raw 0..255 scale
            image = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
            with atomic_path(target) as tmp:
                image.save(tmp, format=Image.registered_extensions().get(target.suffix.lower(), "PNG"))
        else:
            continue
        files.append(target)
    return files


def _write_array(path: Path, data: ArrayDataset, flagged, fixed, out: Path) -> Path:
    raw = np.asarray(data.x) if fixed is None else fixed
    keep = np.ones(len(raw), dtype=bool) if fixed is not None else ~flagged
    x = raw[keep]
    if np.asarray(data.x).dtype == np.uint8:
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if path.suffix.lower() == ".npy":
        target = out / path.name
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            np.save(f, x, allow_pickle=False)
        return target
    target = out / "data.npz"
    arrays = {"x": x, **({"y": data.y.numpy()[keep]} if data.y is not None else {})}
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return target


def _write_series(data: ArrayDataset, flagged, fixed, out: Path) -> list[Path]:
    info = data.series
    raw = np.asarray(data.x, dtype=np.float32) if fixed is None else fixed
    files = []
    for k, (a, b) in enumerate(info.bounds):
        keep = np.arange(a, b) if fixed is not None else np.arange(a, b)[~flagged[a:b]]
        name = Path(info.names[k]).name
        if not name.lower().endswith((".csv", ".npy")):
            name = f"series{k + 1}.csv"
        target = out / name
        if target.suffix.lower() == ".npy":
            with atomic_path(target) as tmp, open(tmp, "wb") as f:
                np.save(f, raw[keep], allow_pickle=False)
        else:
            header = ([info.time_column] if info.time_column else []) + list(info.channels)
            rows = [
                ([data.ids[i]] if info.time_column else []) + [f"{v:.7g}" for v in raw[i].tolist()]
                for i in keep
            ]
            atomic_write_text(target, _rows_csv(header, rows))
        files.append(target)
    return files


def _write_removed(data: ArrayDataset, scores, threshold: float, flagged, repair: bool, out: Path) -> Path:
    action = "repaired" if repair else "removed"
    rows = []
    if data.series is not None:
        header = ["series", "step", "time", "score", "threshold", "action"]
        for k, (a, b) in enumerate(data.series.bounds):
            for i in np.flatnonzero(flagged[a:b]).tolist():
                time = data.ids[a + i] if data.ids else str(i)
                rows.append(
                    [data.series.names[k], i, time, f"{scores[a + i]:.8g}", f"{threshold:.8g}", action]
                )
    else:
        header = ["index", "id", "score", "threshold", "action"]
        for i in np.flatnonzero(flagged).tolist():
            rows.append([i, data.ids[i] if data.ids else "", f"{scores[i]:.8g}", f"{threshold:.8g}", action])
    target = out / REMOVED
    atomic_write_bytes(target, _rows_csv(header, rows).encode("utf-8"))
    return target
