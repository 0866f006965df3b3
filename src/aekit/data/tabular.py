"""CSV tables: numeric columns min-max scaled to [0, 1], categorical columns one-hot.

Reading a table has three steps, as in scikit-learn: :func:`read_table` reads the cells,
:meth:`TableSchema.fit` learns the encoding from a training table, and
:meth:`TableSchema.transform` applies a learned encoding, unchanged, to any table with the same
columns, so that a column's scale and a category's one-hot position never move.
:func:`read_csv` does all three (or only the last, given a schema).

A column is categorical when every filled cell in it is text (or when named in
``categorical``); a column of numbers with a stray text cell is an error that names the cell.
A text column whose values are all different (in a table of at least ``MIN_ID_ROWS`` rows) is an
identifier, not a feature: the first one (or the one named by ``id_column``) becomes the rows'
ids, carried through to scores and codes, and any other is left out; :meth:`TableSchema.notes`
says which. Missing values (empty cells, or ``nan``) are an explicit choice: ``error`` (the
default), ``drop`` the rows, or ``impute``: with the column's training median (numeric) or a
``(missing)`` category, or the most frequent category when training had no gaps in the column.

Encoded layout: the numeric columns in file order, then one one-hot block per categorical column.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aekit.data.dataset import ArrayDataset, Scaling
from aekit.errors import DataError

MISSING = ("error", "drop", "impute")
MISSING_CATEGORY = "(missing)"
MIN_ID_ROWS = 10  # a text column all of whose values differ is an identifier only in tables this long


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _is_missing(cell: str) -> bool:
    return cell == "" or cell.lower() == "nan"


# --- the cells of a CSV file --------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A CSV file's cells as read, before any encoding.

    Attributes:
        path: The file, for messages.
        names: The column names (from the header, or ``column 1``, ``column 2``... without one).
        cells: The cells of each column, stripped of surrounding spaces.
        lines: Each row's line number in the file, for messages.
    """

    path: Path
    names: tuple[str, ...]
    cells: tuple[tuple[str, ...], ...]
    lines: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.lines)

    def column(self, name: str) -> tuple[str, ...]:
        return self.cells[self.names.index(name)]

    def at(self, row: int, name: str) -> str:
        """``path: row L, column 'name'``, the prefix of a message about one cell."""
        return f"{self.path}: row {self.lines[row]}, column {name!r}"

    def rows(self, keep: np.ndarray) -> Table:
        """The table with only the rows at the indices ``keep``."""
        cells = tuple(tuple(col[i] for i in keep) for col in self.cells)
        return dataclasses.replace(self, cells=cells, lines=tuple(self.lines[i] for i in keep))


def read_table(path: str | Path) -> Table:
    """Read a CSV file's cells; a header row is detected and gives the column names.

    Raises:
        DataError: a missing or unreadable file, an empty table, ragged rows.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            # (line number in the file, cells), blank lines skipped but still counted for messages
            lines = [
                (reader.line_num, [c.strip() for c in r]) for r in reader if r and any(c.strip() for c in r)
            ]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from None
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
    cells = tuple(zip(*(row for _, row in lines), strict=True))  # per column
    return Table(path, tuple(names), cells, tuple(line for line, _ in lines))


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


# --- the encoding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One feature column: ``numeric`` with its ``lo``/``span``, or ``categorical``.

    ``fill`` replaces a missing cell (with ``missing="impute"``): the training median of a numeric
    column, ``(missing)`` or the most frequent category of a categorical one. ``integer``: every
    training value was a whole number, so reconstructions are rounded.
    """

    name: str
    kind: str
    lo: float = 0.0
    span: float = 1.0
    fill: float | str | None = None  # None only in schemas saved before fills were always kept
    categories: tuple[str, ...] = ()
    integer: bool = False


@dataclass(frozen=True)
class TableSchema:
    """How a table's columns become model features; saved with every run trained on a table.

    Attributes:
        columns: The feature columns.
        id_column: The column whose values name the rows (not a feature), if any.
        label_column: The column whose whole numbers are the rows' labels (not a feature), if any.
        excluded: Other columns that are not features (identifiers besides ``id_column``).
    """

    columns: tuple[Column, ...]
    id_column: str | None = None
    label_column: str | None = None
    excluded: tuple[str, ...] = ()

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
        d: dict[str, Any] = {
            "columns": [
                {k: v for k, v in vars(c).items() if not (v is None or v is False or v == ())}
                for c in self.columns
            ]
        }
        for key in ("id_column", "label_column"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.excluded:
            d["excluded"] = list(self.excluded)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableSchema:
        try:
            cols = tuple(Column(**{**c, "categories": tuple(c.get("categories", ()))}) for c in d["columns"])
            return cls(cols, d.get("id_column"), d.get("label_column"), tuple(d.get("excluded", ())))
        except (KeyError, TypeError) as e:
            raise DataError(f"not a table schema ({e})") from None

    def feature_names(self) -> list[str]:
        return [c.name for c in self.numeric] + [
            f"{c.name}={v}" for c in self.categorical for v in c.categories
        ]

    def notes(self) -> list[str]:
        """What the encoding left out of the features, one sentence each (empty when nothing)."""
        out = []
        if self.id_column is not None:
            out.append(f"column {self.id_column!r} names the rows: used as their id, not as a feature")
        if self.excluded:
            names = ", ".join(repr(n) for n in self.excluded)
            out.append(f"column(s) {names} hold a different text in every row: left out of the features")
        if self.label_column is not None:
            out.append(f"column {self.label_column!r} holds the labels: not a feature")
        return out

    # --- fit and transform ---------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        table: Table,
        *,
        missing: str = "error",
        categorical: tuple[str, ...] | list[str] = (),
        label_column: str | None = None,
        id_column: str | None = None,
    ) -> TableSchema:
        """Learn the encoding of a training table: kinds, scales, categories, fills, the id column.

        Args:
            table: The cells (:func:`read_table`).
            missing: ``error``, ``drop`` or ``impute`` (see the module docstring); with ``drop``
                the scales are learned on the complete rows.
            categorical: Names of numeric-looking columns to treat as categories (e.g. codes 1, 2, 3).
            label_column: A column whose whole numbers are the labels.
            id_column: The column that names the rows; None detects one (a text column with a
                different value in every row).

        Raises:
            DataError: text in a numeric column, a missing value (with ``missing="error"``), NaN or
                infinity, an unknown column, no feature column left; naming the file, row and column.
        """
        path = table.path
        _check_missing(path, missing)
        for what, name in (("label", label_column), ("id", id_column)):
            if name is not None and name not in table.names:
                columns = ", ".join(table.names)
                raise DataError(
                    f"{path}: no column named {name!r} (columns: {columns}) to take the {what}s from"
                )
        if label_column is not None:
            _labels(table, label_column)  # fractional labels are an error before anything else
        others = [n for n in table.names if n not in (label_column, id_column)]
        identifiers = [n for n in others if n not in categorical and _is_identifier(table.column(n))]
        if id_column is None and identifiers:
            id_column, identifiers = identifiers[0], identifiers[1:]
        names = [n for n in others if n != id_column and n not in identifiers]
        if not names:
            left = " and ".join(repr(n) for n in (label_column, id_column, *identifiers) if n is not None)
            raise DataError(f"{path}: no feature columns besides {left}")
        kinds = _kinds(table, names, categorical)
        table = _complete(table, names, missing)
        columns = []
        numeric = []
        for name, kind in zip(names, kinds, strict=True):
            col = table.column(name)
            if kind == "numeric":
                values = _numeric(table, name)
                filled = np.isfinite(values)
                fill = float(np.median(values[filled])) if filled.any() else 0.0
                whole = bool(filled.any() and (values[filled] == np.round(values[filled])).all())
                values[~filled] = fill
                numeric.append(values)
                columns.append(Column(name, "numeric", fill=fill, integer=whole))
            else:
                labels = [MISSING_CATEGORY if _is_missing(c) else c for c in col]
                counts = Counter(labels)
                cats = tuple(sorted(counts))
                fill = MISSING_CATEGORY if MISSING_CATEGORY in counts else max(cats, key=lambda c: counts[c])
                columns.append(Column(name, "categorical", fill=fill, categories=cats))
        x_num = np.stack(numeric, 1) if numeric else np.zeros((len(table), 0))
        return cls(tuple(_scaled(path, columns, x_num)), id_column, label_column, tuple(identifiers))

    def transform(self, table: Table, *, missing: str = "error") -> ArrayDataset:
        """Encode a table with this schema: the training scales, categories and fills, unchanged.

        The table needs the feature columns, in the training order; the id, label and excluded
        columns may be there (ids and labels are then carried) or not.

        Raises:
            DataError: other columns, a category the schema does not know, text in a numeric
                column, a missing value (with ``missing="error"``); naming the file, row and column.
        """
        path = table.path
        _check_missing(path, missing)
        aside = {self.id_column, self.label_column, *self.excluded} - {None}
        names = [n for n in table.names if n not in aside]
        want = [c.name for c in self.columns]
        if names != want:
            raise DataError(
                f"{path}: columns {', '.join(names)} are not the ones the model was trained on "
                f"({', '.join(want)})"
            )
        for c in self.columns:
            if c.kind == "numeric":
                _numeric(table, c.name)  # text in a numeric column: named before missing cells
        table = _complete(table, want, missing)
        numeric, onehot = [], []
        for c in self.columns:
            if c.kind == "numeric":
                values = _numeric(table, c.name)
                # schemas saved before fills were kept have none: the middle of the training range
                fill = c.fill if c.fill is not None else c.lo + c.span / 2
                values[~np.isfinite(values)] = fill
                numeric.append(values)
            else:
                fill = c.fill if c.fill is not None else MISSING_CATEGORY
                labels = [fill if _is_missing(v) else v for v in table.column(c.name)]
                index = {v: k for k, v in enumerate(c.categories)}
                unknown = [i for i, v in enumerate(labels) if v not in index]
                if unknown:
                    i = unknown[0]
                    known = ", ".join(c.categories[:10]) + ("..." if len(c.categories) > 10 else "")
                    raise DataError(
                        f"{table.at(i, c.name)} holds {labels[i]!r}, a category the model never saw "
                        f"(known: {known})"
                    )
                block = np.zeros((len(labels), len(c.categories)), dtype=np.float32)
                block[np.arange(len(labels)), [index[v] for v in labels]] = 1
                onehot.append(block)
        x_num = np.stack(numeric, 1) if numeric else np.zeros((len(table), 0))
        x = np.concatenate([x_num.astype(np.float32), *onehot], axis=1)
        y = _labels(table, self.label_column) if self.label_column in table.names else None
        ids = table.column(self.id_column) if self.id_column in table.names else None
        return ArrayDataset(x, y, name=str(path), scaling=self.scaling(), schema=self, ids=ids)

    # --- back to a table ---------------------------------------------------------------------

    def decode(self, x: np.ndarray) -> list[list[Any]]:
        """Model values (N, width) in [0, 1] -> table rows: numbers unscaled (whole-number columns
        rounded), categories by arg-max (the most probable)."""
        rows: list[list[Any]] = [[] for _ in range(len(x))]
        num = {c.name: j for j, c in enumerate(self.numeric)}
        start = len(self.numeric)
        offsets = {}
        for c in self.categorical:
            offsets[c.name] = start
            start += len(c.categories)
        for c in self.columns:
            if c.kind == "numeric":
                values = x[:, num[c.name]].astype(np.float64) * c.span + c.lo
                if c.integer:
                    values = np.rint(values).astype(np.int64)
                for r, v in zip(rows, values.tolist(), strict=True):
                    r.append(v)
            else:
                pick = x[:, offsets[c.name] : offsets[c.name] + len(c.categories)].argmax(1)
                for r, k in zip(rows, pick.tolist(), strict=True):
                    r.append(c.categories[k])
        return rows

    def to_csv(self, x: np.ndarray, ids: tuple[str, ...] | list[str] | None = None) -> str:
        """Model values (N, width) -> CSV text in the table's own columns, with the header.

        The id column comes first when ``ids`` are given; numbers carry 7 significant digits.
        """
        if x.ndim != 2 or x.shape[1] != self.width:
            raise DataError(f"expected table rows of {self.width} features, got shape {tuple(x.shape)}")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        with_ids = ids is not None and len(ids) == len(x)
        w.writerow([*([self.id_column or "id"] if with_ids else []), *(c.name for c in self.columns)])
        for i, row in enumerate(self.decode(x)):
            cells = [_format(v) for v in row]
            w.writerow([ids[i], *cells] if with_ids else cells)
        return buf.getvalue()


def read_csv(
    path: str | Path,
    *,
    label_column: str | None = None,
    missing: str = "error",
    categorical: tuple[str, ...] | list[str] = (),
    schema: TableSchema | None = None,
    id_column: str | None = None,
) -> ArrayDataset:
    """Read a CSV table and encode it: with ``schema`` when given (a trained run's), else with the
    schema fitted to this table (:meth:`TableSchema.fit`, then :meth:`TableSchema.transform`).

    Args:
        path: The file.
        label_column: A header name whose integer values become the labels (when fitting).
        missing: ``error``, ``drop`` or ``impute`` (see the module docstring).
        categorical: Names of numeric-looking columns to treat as categories (when fitting).
        schema: The encoding of a trained run: columns, scales, categories and fills are taken from it.
        id_column: The column that names the rows (when fitting); None detects one.

    Raises:
        DataError: see :func:`read_table`, :meth:`TableSchema.fit` and :meth:`TableSchema.transform`.
    """
    table = read_table(path)
    if schema is None:
        schema = TableSchema.fit(
            table, missing=missing, categorical=categorical, label_column=label_column, id_column=id_column
        )
    return schema.transform(table, missing=missing)


# --- helpers ----------------------------------------------------------------------------------------


def _check_missing(path: Path, missing: str) -> None:
    if missing not in MISSING:
        raise DataError(f"{path}: missing={missing!r}; expected one of {', '.join(MISSING)}")


def _is_identifier(col: tuple[str, ...]) -> bool:
    """Text in every cell, no gaps, a different value in every row, in a table long enough to tell."""
    return (
        len(col) >= MIN_ID_ROWS
        and len(set(col)) == len(col)
        and all(not _is_missing(c) and _number(c) is None for c in col)
    )


def _complete(table: Table, names: list[str], missing: str) -> Table:
    """Apply the missing-value rule to the columns ``names``: raise on the first gap (reading row by
    row) with ``error``, drop the rows with gaps with ``drop``, keep them for imputing otherwise."""
    if missing == "impute":
        return table
    empty = np.array([[_is_missing(c) for c in table.column(n)] for n in names]).T  # (rows, columns)
    if not empty.any():
        return table
    if missing == "error":
        i, j = (int(v) for v in np.argwhere(empty)[0])
        cell = table.column(names[j])[i]
        what = "is empty (missing value)" if cell == "" else f"holds {cell}; expected a finite number"
        hint = "to go on anyway, choose --missing drop or --missing impute"
        raise DataError(f"{table.at(i, names[j])} {what}; {hint}")
    keep = np.flatnonzero(~empty.any(1))
    if not len(keep):
        raise DataError(f"{table.path}: every row has a missing value (missing='drop' left nothing)")
    return table.rows(keep)


def _format(v: Any) -> str:
    if isinstance(v, float):
        return np.format_float_positional(v, precision=7, unique=True, fractional=False, trim="-")
    return str(v)


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


def _labels(table: Table, name: str) -> np.ndarray:
    col = table.column(name)
    out = np.empty(len(col), dtype=np.int64)
    for i, cell in enumerate(col):
        v = _number(cell)
        if v is None or not math.isfinite(v) or v != round(v) or abs(v) >= 2.0**63:
            raise DataError(f"{table.at(i, name)} holds {cell}; expected a whole number (a class label)")
        out[i] = int(v)
    return out


def _kinds(table: Table, names: list[str], categorical) -> list[str]:
    kinds = []
    for name in names:
        filled = [(i, c) for i, c in enumerate(table.column(name)) if not _is_missing(c)]
        text = [(i, c) for i, c in filled if _number(c) is None]
        if name in categorical or (filled and len(text) == len(filled)):
            kinds.append("categorical")
        elif text:
            i, cell = text[0]
            raise DataError(f"{table.at(i, name)} holds text {cell!r}; expected a number")
        else:
            kinds.append("numeric")
    return kinds


def _numeric(table: Table, name: str) -> np.ndarray:
    """A numeric column's values, NaN where a cell is missing."""
    col = table.column(name)
    values = np.empty(len(col), dtype=np.float64)
    for i, cell in enumerate(col):
        if _is_missing(cell):
            values[i] = np.nan
            continue
        v = _number(cell)
        if v is None:
            raise DataError(f"{table.at(i, name)} holds text {cell!r}; expected a number")
        if not math.isfinite(v):
            raise DataError(f"{table.at(i, name)} holds {cell}; expected a finite number")
        values[i] = v
    return values
