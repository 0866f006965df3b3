"""Numeric CSV tables: one row a sample, one column a feature, min-max scaled to [0, 1].

The scaling is computed on the data the model trains on and saved in the run, so
that new rows are scaled the same way.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from aekit.data.dataset import ArrayDataset, Scaling
from aekit.errors import DataError


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def read_csv(path: str | Path, *, label_column: str | None = None) -> ArrayDataset:
    """Read a numeric CSV table (a header row is detected and used for messages).

    Args:
        path: The file.
        label_column: A header name whose integer values become the labels.

    Raises:
        DataError: text in a numeric cell, a missing value or NaN, ragged rows, an empty table;
            naming the file, the row and the column.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            # (line number in the file, cells), blank lines skipped but still counted for messages
            lines = [(reader.line_num, r) for r in reader if r and any(c.strip() for c in r)]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from None
    if not lines:
        raise DataError(f"{path}: the table is empty")
    header = None
    if any(_number(c) is None for c in lines[0][1]):
        header, lines = [c.strip() for c in lines[0][1]], lines[1:]
    if not lines:
        raise DataError(f"{path}: the table has a header but no rows")
    width = len(header or lines[0][1])
    names = header or [f"column {i + 1}" for i in range(width)]
    values = np.empty((len(lines), width), dtype=np.float64)
    for i, (line, row) in enumerate(lines):
        if len(row) != width:
            raise DataError(f"{path}: row {line} has {len(row)} fields, expected {width}")
        for j, cell in enumerate(row):
            v = _number(cell.strip())
            if v is None:
                what = "is empty (missing value)" if not cell.strip() else f"holds text {cell.strip()!r}"
                raise DataError(f"{path}: row {line}, column {names[j]!r} {what}; expected a number")
            if not math.isfinite(v):
                raise DataError(
                    f"{path}: row {line}, column {names[j]!r} holds {cell.strip()}; expected a finite number"
                )
            values[i, j] = v
    y = None
    if label_column is not None:
        if label_column not in names:
            raise DataError(f"{path}: no column named {label_column!r} (columns: {', '.join(names)})")
        j = names.index(label_column)
        labels = values[:, j]
        whole = (labels == np.round(labels)) & (np.abs(labels) < 2.0**63)
        if not whole.all():
            i = int(np.flatnonzero(~whole)[0])
            raise DataError(
                f"{path}: row {lines[i][0]}, column {label_column!r} holds {lines[i][1][j].strip()}; "
                "expected a whole number (a class label)"
            )
        y = labels.astype(np.int64)
        values, names = np.delete(values, j, axis=1), names[:j] + names[j + 1 :]
        if not names:
            raise DataError(f"{path}: no feature columns besides the label column {label_column!r}")
    # Scale in float32, the precision the model sees: computing min and span in float64 lets a column's
    # largest value land just above 1 once rounded to float32.
    with np.errstate(over="ignore", invalid="ignore"):
        x = values.astype(np.float32)
        lo, hi = x.min(0), x.max(0)
        span = np.where(hi > lo, hi - lo, np.float32(1.0))
    fits = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(span)
    if not fits.all():
        j = int(np.flatnonzero(~fits)[0])
        raise DataError(
            f"{path}: column {names[j]!r} spans [{values[:, j].min():g}, {values[:, j].max():g}]; "
            "expected a range that fits in float32 (under about 3.4e38)"
        )
    scaling = Scaling(tuple(float(v) for v in lo), tuple(float(v) for v in span))
    return ArrayDataset(x, y, name=str(path), scaling=scaling)
