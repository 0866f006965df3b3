"""CSV tables: numeric columns min-max scaled to [0, 1], categorical columns one-hot.

A column is categorical when every filled cell in it is text (or when named in
``categorical``); a column of numbers with a stray text cell is an error that names the
cell. Missing values (empty cells, or ``nan``) are an explicit choice: ``error`` (the
default), ``drop`` the rows, or ``impute`` (numeric: the column's median; categorical: a
``(missing)`` category).

The encoding is a :class:`TableSchema`: computed on the data a model trains on, saved in the
run, and applied unchanged to new tables (``read_csv(path, schema=...)``), so that a column's
scale and a category's one-hot position never move. Encoded layout: the numeric columns in
file order, then one one-hot block per categorical column.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aekit.data.dataset import ArrayDataset, Scaling
from aekit.errors import DataError

MISSING = ("error", "drop", "impute")
MISSING_CATEGORY = "(missing)"


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _is_missing(cell: str) -> bool:
    return cell == "" or cell.lower() == "nan"


@dataclass(frozen=True)
class Column:
    """One column of the table: ``numeric`` with its ``lo``/``span``/``fill``, or ``categorical``."""

    name: str
    kind: str
    lo: float = 0.0
    span: float = 1.0
    fill: float | str | None = None  # the imputed value
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSchema:
    """How a table's columns become model features; saved with every run trained on a table."""

    columns: tuple[Column, ...]

    @property
    def numeric(self) -> list[Column]:
        return [c for c in self.columns if c.kind == "numeric"]

    @property
    def categorical(self) -> list[Column]:
        return [c for c in self.columns if c.kind == "categorical"]

    @property
    def blocks(self) -> tuple[int, ...]:
        """Sizes of the one-hot blocks after the numeric features (a model's ``categories``)."""
        return tuple(len(c.categories) for c in self.categorical)

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(self.blocks)

    def layout(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """What decides the features' order and meaning (names, kinds, categories), not their scale."""
        return [(c.name, c.kind, c.categories) for c in self.columns]

    def scaling(self) -> Scaling:
        ones = sum(self.blocks)
        lo = tuple(c.lo for c in self.numeric) + (0.0,) * ones
        span = tuple(c.span for c in self.numeric) + (1.0,) * ones
        return Scaling(lo, span)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [{k: v for k, v in vars(c).items() if v not in (None, ())} for c in self.columns]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableSchema:
        try:
            cols = tuple(Column(**{**c, "categories": tuple(c.get("categories", ()))}) for c in d["columns"])
        except (KeyError, TypeError) as e:
            raise DataError(f"not a table schema ({e})") from None
        return cls(cols)

    def feature_names(self) -> list[str]:
        return [c.name for c in self.numeric] + [
            f"{c.name}={v}" for c in self.categorical for v in c.categories
        ]

    def decode(self, x: np.ndarray) -> list[list[Any]]:
        """Model values (N, width) in [0, 1] -> table rows: numbers unscaled, categories by arg-max."""
        rows: list[list[Any]] = [[] for _ in range(len(x))]
        num = {c.name: j for j, c in enumerate(self.numeric)}
        start = len(self.numeric)
        offsets = {}
        for c in self.categorical:
            offsets[c.name] = start
            start += len(c.categories)
        for c in self.columns:
            if c.kind == "numeric":
                values = x[:, num[c.name]] * c.span + c.lo
                for r, v in zip(rows, values.tolist(), strict=True):
                    r.append(v)
            else:
                pick = x[:, offsets[c.name] : offsets[c.name] + len(c.categories)].argmax(1)
                for r, k in zip(rows, pick.tolist(), strict=True):
                    r.append(c.categories[k])
        return rows


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            # (line number in the file, cells), blank lines skipped but still counted for messages
            return [
                (reader.line_num, [c.strip() for c in r]) for r in reader if r and any(c.strip() for c in r)
            ]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from None


def _has_header(first: list[str], rest: list[list[str]]) -> bool:
    """A header when its cells are all text, or when it holds text above a column of numbers."""
    text = [_number(c) is None for c in first]
    if not any(text):
        return False
    if all(text):
        return True
    return any(
        t and all(_number(r[j]) is not None or _is_missing(r[j]) for r in rest if j < len(r))
        for j, t in enumerate(text)
    )


def read_csv(
    path: str | Path,
    *,
    label_column: str | None = None,
    missing: str = "error",
    categorical: tuple[str, ...] | list[str] = (),
    schema: TableSchema | None = None,
) -> ArrayDataset:
    """Read a CSV table (a header row is detected and used for messages and column names).

    Args:
        path: The file.
        label_column: A header name whose integer values become the labels.
        missing: ``error``, ``drop`` or ``impute`` (see the module docstring).
        categorical: Names of numeric-looking columns to treat as categories (e.g. codes 1, 2, 3).
        schema: The encoding of a trained run: columns, scales and categories are taken from it.

    Raises:
        DataError: text in a numeric column, a missing value (with ``missing="error"``), NaN or
            infinity, ragged rows, an empty table, a category or column the schema does not
            know; naming the file, the row and the column.
    """
    path = Path(path)
    if missing not in MISSING:
        raise DataError(f"{path}: missing={missing!r}; expected one of {', '.join(MISSING)}")
    lines = _read_rows(path)
    if not lines:
        raise DataError(f"{path}: the table is empty")
    header = None
    if _has_header(lines[0][1], [r for _, r in lines[1:]]):
        header, lines = lines[0][1], lines[1:]
    if not lines:
        raise DataError(f"{path}: the table has a header but no rows")
    width = len(header or lines[0][1])
    names = header or [f"column {i + 1}" for i in range(width)]
    for line, row in lines:
        if len(row) != width:
            raise DataError(f"{path}: row {line} has {len(row)} fields, expected {width}")
    cells = list(zip(*(row for _, row in lines), strict=True))  # per column

    y = None
    if label_column is not None:
        if label_column not in names:
            raise DataError(f"{path}: no column named {label_column!r} (columns: {', '.join(names)})")
        j = names.index(label_column)
        y = _labels(path, label_column, cells[j], lines)
        cells, names = cells[:j] + cells[j + 1 :], names[:j] + names[j + 1 :]
        if not names:
            raise DataError(f"{path}: no feature columns besides the label column {label_column!r}")

    kinds = _kinds(path, names, cells, lines, categorical, schema)
    empty = np.array([[_is_missing(c) for c in col] for col in cells]).T  # (rows, columns)
    if empty.any() and missing == "error":
        i, j = (int(v) for v in np.argwhere(empty)[0])  # the first missing cell, reading row by row
        cell = cells[j][i]
        what = "is empty (missing value)" if cell == "" else f"holds {cell}; expected a finite number"
        hint = "to go on anyway, choose --missing drop or --missing impute"
        raise DataError(f"{_at(path, lines[i], names[j])} {what}; {hint}")
    keep = ~empty.any(1) if missing == "drop" else np.ones(len(lines), dtype=bool)
    if not keep.any():
        raise DataError(f"{path}: every row has a missing value (missing='drop' left nothing)")
    rows = np.flatnonzero(keep)
    lines = [lines[i] for i in rows]
    cells = [[col[i] for i in rows] for col in cells]
    y = None if y is None else y[rows]

    columns: list[Column] = []
    numeric: list[np.ndarray] = []
    onehot: list[np.ndarray] = []
    for j, (name, kind, col) in enumerate(zip(names, kinds, cells, strict=True)):
        known = schema.columns[j] if schema is not None else None
        if kind == "numeric":
            values = _numeric(path, name, col, lines)
            filled = np.isfinite(values)
            fill = known.fill if known else (float(np.median(values[filled])) if filled.any() else 0.0)
            values[~filled] = fill if fill is not None else 0.0
            numeric.append(values)
            columns.append(known or Column(name, "numeric", fill=fill if not filled.all() else None))
        else:
            labels = [MISSING_CATEGORY if _is_missing(c) else c for c in col]
            cats = known.categories if known else tuple(sorted(set(labels)))
            index = {c: k for k, c in enumerate(cats)}
            unknown = [i for i, c in enumerate(labels) if c not in index]
            if unknown:
                i = unknown[0]
                raise DataError(
                    f"{path}: row {lines[i][0]}, column {name!r} holds {labels[i]!r}, a category the "
                    f"model never saw (known: {', '.join(cats[:10])}{'...' if len(cats) > 10 else ''})"
                )
            block = np.zeros((len(labels), len(cats)), dtype=np.float32)
            block[np.arange(len(labels)), [index[c] for c in labels]] = 1
            onehot.append(block)
            columns.append(known or Column(name, "categorical", categories=cats))
    x_num = np.stack(numeric, 1) if numeric else np.zeros((len(lines), 0))
    if schema is None:
        schema = TableSchema(tuple(_scaled(path, columns, x_num)))
    x = np.concatenate([x_num.astype(np.float32), *onehot], axis=1)
    return ArrayDataset(x, y, name=str(path), scaling=schema.scaling(), schema=schema)


def _scaled(path: Path, columns: list[Column], x_num: np.ndarray) -> list[Column]:
    """The columns with the min-max scale of each numeric one.

    Computed in float32, the precision the model sees: computing min and span in float64 lets a
    column's largest value land just above 1 once rounded to float32.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        x = x_num.astype(np.float32)
        lo, hi = x.min(0), x.max(0)
        span = np.where(hi > lo, hi - lo, np.float32(1.0))
    fits = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(span)
    names = [c.name for c in columns if c.kind == "numeric"]
    if not fits.all():
        j = int(np.flatnonzero(~fits)[0])
        raise DataError(
            f"{path}: column {names[j]!r} spans [{x_num[:, j].min():g}, {x_num[:, j].max():g}]; "
            "expected a range that fits in float32 (under about 3.4e38)"
        )
    scales = iter(zip(lo.tolist(), span.tolist(), strict=True))  # the numeric columns, in order
    out = []
    for c in columns:
        if c.kind == "numeric":
            c_lo, c_span = next(scales)
            c = dataclasses.replace(c, lo=c_lo, span=c_span)
        out.append(c)
    return out


def _at(path: Path, line: tuple[int, list[str]], column: str) -> str:
    return f"{path}: row {line[0]}, column {column!r}"


def _labels(path: Path, name: str, col, lines) -> np.ndarray:
    out = np.empty(len(col), dtype=np.int64)
    for i, cell in enumerate(col):
        v = _number(cell)
        if v is None or not math.isfinite(v) or v != round(v) or abs(v) >= 2.0**63:
            raise DataError(
                f"{_at(path, lines[i], name)} holds {cell}; expected a whole number (a class label)"
            )
        out[i] = int(v)
    return out


def _kinds(path, names, cells, lines, categorical, schema) -> list[str]:
    if schema is not None:
        want = [c.name for c in schema.columns]
        if list(names) != want:
            raise DataError(
                f"{path}: columns {', '.join(names)} are not the ones the model was trained on "
                f"({', '.join(want)})"
            )
        return [c.kind for c in schema.columns]
    kinds = []
    for name, col in zip(names, cells, strict=True):
        filled = [(i, c) for i, c in enumerate(col) if not _is_missing(c)]
        text = [(i, c) for i, c in filled if _number(c) is None]
        if name in categorical or (filled and len(text) == len(filled)):
            kinds.append("categorical")
        elif text:
            i, cell = text[0]
            raise DataError(
                f"{path}: row {lines[i][0]}, column {name!r} holds text {cell!r}; expected a number"
            )
        else:
            kinds.append("numeric")
    return kinds


def _numeric(path: Path, name: str, col, lines) -> np.ndarray:
    values = np.empty(len(col), dtype=np.float64)
    for i, cell in enumerate(col):
        if _is_missing(cell):
            values[i] = np.nan
            continue
        v = _number(cell)
        if v is None:
            raise DataError(
                f"{path}: row {lines[i][0]}, column {name!r} holds text {cell!r}; expected a number"
            )
        if not math.isfinite(v):
            raise DataError(
                f"{path}: row {lines[i][0]}, column {name!r} holds {cell}; expected a finite number"
            )
        values[i] = v
    return values
