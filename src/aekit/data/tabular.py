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
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from None
    if not rows:
        raise DataError(f"{path}: the table is empty")
    header = None
    first_data_line = 1
    if any(_number(c) is None for c in rows[0]):
        header, rows, first_data_line = [c.strip() for c in rows[0]], rows[1:], 2
    if not rows:
        raise DataError(f"{path}: the table has a header but no rows")
    width = len(header or rows[0])
    names = header or [f"column {i + 1}" for i in range(width)]
    values = np.empty((len(rows), width), dtype=np.float64)
    for i, row in enumerate(rows):
        line = i + first_data_line
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
        y = values[:, j].astype(np.int64)
        values = np.delete(values, j, axis=1)
    lo, hi = values.min(0), values.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaling = Scaling(tuple(float(v) for v in lo), tuple(float(v) for v in span))
    return ArrayDataset(values.astype(np.float32), y, name=str(path), scaling=scaling)
