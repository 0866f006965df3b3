"""Time series and signals: reading them, scaling each channel, cutting windows, and back.

A series data set is an :class:`ArrayDataset` whose samples are **time steps**: ``x`` is
(T, C) raw values (several series are stacked one after the other), ``ids`` hold the time
stamps when the file had a time column, and ``series`` (a :class:`SeriesInfo`) says where
each series starts and what its channels are called. A detector cuts each series into
sliding windows (C, window) for the model, scores the windows and maps the scores back to
one score per time step (:func:`to_steps`), so that the rows of a score file are the rows of
the input.

Inputs (``series:PATH``):

- a CSV file: a header is detected; a column named ``time``, ``timestamp``, ``date``,
  ``datetime`` or ``t`` (any case), or a first column of text (dates), is the time column and
  is kept as written; every other column is a channel and must hold numbers;
- a ``.npy`` file of shape (T,) or (T, C) (never unpickled);
- a folder of such files, or a glob pattern (``series:data/run*.csv``): one series each,
  in name order, all with the same channels.

The window length, when not given, is the signal's dominant period
(:func:`dominant_period`): the lag of the highest local maximum of the autocorrelation of
the (mean-removed, channel-averaged) training signal between lags 4 and a third of its length;
a signal without a clear period (no local maximum above 0.1) gets 64 steps. The stride
defaults to an eighth of the window.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from aekit.data.dataset import ArrayDataset, Scaling
from aekit.data.tabular import _is_missing, _number, read_table
from aekit.errors import DataError

TIME_NAMES = ("time", "timestamp", "date", "datetime", "t")
SUFFIXES = (".csv", ".npy")
DEFAULT_WINDOW = 64  # when the signal shows no period


@dataclass(frozen=True)
class SeriesInfo:
    """Where each series of a stacked (T_total, C) data set begins, and its names.

    Attributes:
        lengths: Time steps of each series, in order.
        names: A name per series (its file).
        channels: A name per channel (the CSV header, or ``channel 1``...).
        time_column: The CSV header of the time column, or None when the steps are numbered.
    """

    lengths: tuple[int, ...]
    names: tuple[str, ...]
    channels: tuple[str, ...]
    time_column: str | None = None

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """(start, stop) of each series in the stacked steps."""
        ends = np.cumsum((0, *self.lengths)).tolist()
        return list(zip(ends[:-1], ends[1:], strict=True))

    def subset(self, index: np.ndarray) -> SeriesInfo:
        """The info of the steps at ``index`` (kept in time order): series that lose every step vanish."""
        index = np.asarray(index, dtype=np.int64)
        if index.size and np.any(np.diff(index) <= 0):
            raise DataError("a series keeps its time order: select its steps in increasing order")
        segment = np.searchsorted(np.cumsum(self.lengths), index, side="right")
        counts = np.bincount(segment, minlength=len(self.lengths))
        kept = [i for i, n in enumerate(counts) if n]
        return replace(
            self, lengths=tuple(int(counts[i]) for i in kept), names=tuple(self.names[i] for i in kept)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "lengths": list(self.lengths),
            "names": list(self.names),
            "channels": list(self.channels),
            "time_column": self.time_column,
        }


@dataclass(frozen=True)
class SeriesScaling:
    """Per-channel ``(raw - center) / scale``, fitted robustly: the median and the interquartile
    range / 1.349 (the standard deviation, for Gaussian values), so that a few huge outliers in
    the training signal do not squash the normal range."""

    center: tuple[float, ...] = (0.0,)
    scale: tuple[float, ...] = (1.0,)

    @classmethod
    def fit(cls, x: np.ndarray) -> SeriesScaling:
        """From (T, C) raw values; a flat channel gets its standard deviation, or 1."""
        s = Scaling.robust(x)
        return cls(s.offset, s.scale)

    def as_scaling(self) -> Scaling:
        return Scaling(self.center, self.scale)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(T, C) raw -> (T, C) float32 model values."""
        return ((np.asarray(x, np.float64) - self.center) / self.scale).astype(np.float32)

    def invert(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) * self.scale + self.center).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"center": list(self.center), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeriesScaling:
        return cls(tuple(float(v) for v in d["center"]), tuple(float(v) for v in d["scale"]))


# --- reading ----------------------------------------------------------------------------------------


def read_series(path: str | Path) -> ArrayDataset:
    """Read ``series:PATH`` (see the module docstring) as a data set of time steps.

    Raises:
        DataError: no such file, no readable numbers, text or a missing value in a channel,
            NaN or infinity, files whose channels differ; naming the file, row and column.
    """
    files = _series_files(str(path))
    parts = [_read_one(f) for f in files]
    channels = parts[0][2]
    for f, (_, _, ch, _) in zip(files[1:], parts[1:], strict=True):
        if ch != channels:
            raise DataError(f"{f}: channels {list(ch)} differ from {files[0]}'s {list(channels)}")
    times = [t for _, t, _, _ in parts]
    ids = None if all(t is None for t in times) else tuple(s for t in times for s in (t or ()))
    if ids is not None and any(t is None for t in times):
        raise DataError(f"{path}: some files have a time column and some do not")
    x = np.concatenate([v for v, _, _, _ in parts])
    info = SeriesInfo(
        tuple(len(v) for v, _, _, _ in parts), tuple(str(f) for f in files), channels, parts[0][3]
    )
    return ArrayDataset(x, name=str(path), scaling=Scaling(), ids=ids, series=info)


def _series_files(spec: str) -> list[Path]:
    p = Path(spec)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in SUFFIXES and f.is_file())
        if not files:
            raise DataError(f"{p}: no .csv or .npy files in the folder")
        return files
    if p.exists():
        return [p]
    if any(ch in spec for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(spec) if Path(f).suffix.lower() in SUFFIXES)
        if not files:
            raise DataError(f"{spec}: no .csv or .npy files match the pattern")
        return files
    raise DataError(f"{spec}: no such file or folder")


def _read_one(path: Path) -> tuple[np.ndarray, tuple[str, ...] | None, tuple[str, ...], str | None]:
    """(values (T, C) float32, times or None, channel names, time column name)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{path}: not a readable NumPy array ({e})") from None
        if not isinstance(a, np.ndarray) or a.ndim not in (1, 2) or a.dtype.kind not in "fiub":
            raise DataError(
                f"{path}: expected numbers of shape (T,) or (T, channels), got {a.shape} {a.dtype}"
            )
        a = a.reshape(len(a), -1).astype(np.float32)
        _check_values(a, path, lambda i: f"step {i}")
        return a, None, tuple(f"channel {j + 1}" for j in range(a.shape[1])), None
    if suffix != ".csv":
        raise DataError(f"{path}: a series must be a .csv or .npy file")
    table = read_table(path)  # header detected; empty, header-only and ragged files are errors
    names = list(table.names)
    lines = list(zip(table.lines, zip(*table.cells, strict=True), strict=True))
    width = len(names)
    time_col = next((j for j, n in enumerate(names) if n.strip().lower() in TIME_NAMES), None)
    if time_col is None and width > 1 and all(_number(c) is None for c in table.cells[0]):
        time_col = 0  # a first column of dates
    channels = [j for j in range(width) if j != time_col]
    if not channels:
        raise DataError(f"{path}: no channel besides the time column {names[time_col]!r}")
    values = np.empty((len(lines), len(channels)), dtype=np.float32)
    for i, (line, row) in enumerate(lines):
        for k, j in enumerate(channels):
            v = None if _is_missing(row[j]) else _number(row[j])
            if v is None or not np.isfinite(v) or abs(v) > 3e38:
                what = "is missing" if _is_missing(row[j]) else f"is {row[j]!r}"
                raise DataError(f"{path}: row {line}, column {names[j]!r} {what}; expected a finite number")
            values[i, k] = v
    times = tuple(row[time_col] for _, row in lines) if time_col is not None else None
    label = names[time_col] if time_col is not None else None
    return values, times, tuple(names[j] for j in channels), label


def _check_values(a: np.ndarray, path: Path, where) -> None:
    if a.size == 0:
        raise DataError(f"{path}: holds no values (shape {a.shape})")
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise DataError(f"{path}: {where(int(np.flatnonzero(bad)[0]))} holds NaN or infinite values")


def parts(data: ArrayDataset) -> list[np.ndarray]:
    """The raw values of each series of a series data set, (T_i, C) float32 each."""
    if data.series is None:
        raise DataError(f"{data.name}: not a series data set (read it as series:PATH)")
    x = np.asarray(data.x, dtype=np.float32)
    return [x[a:b] for a, b in data.series.bounds]


def from_values(values: np.ndarray, name: str = "series") -> ArrayDataset:
    """A series data set from an array (T,) or (T, C): for tests and the Python API."""
    a = np.asarray(values, dtype=np.float32)
    a = a.reshape(len(a), -1)
    if a.size == 0 or not np.isfinite(a).all():
        raise DataError(f"{name}: a series needs finite values, shape (T,) or (T, C), got {a.shape}")
    info = SeriesInfo((len(a),), (name,), tuple(f"channel {j + 1}" for j in range(a.shape[1])))
    return ArrayDataset(a, name=name, scaling=Scaling(), series=info)


# --- windows ------------------------------------------------------------------------------------------


def dominant_period(x: np.ndarray, lo: int = 4, fallback: int = DEFAULT_WINDOW) -> int:
    """The lag of the highest local maximum of the autocorrelation in [lo, T/3]; ``fallback`` if
    none exceeds 0.1. ``x``: (T,) or (T, C), channels averaged after standardising each."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x = (x - x.mean(0)) / np.where(x.std(0) > 1e-12, x.std(0), 1.0)
    s = x.mean(1)
    n = len(s)
    hi = n // 3
    if hi <= lo + 1:
        return fallback
    spectrum = np.fft.rfft(s, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    acf = acf / max(acf[0], 1e-12)
    lags = np.arange(lo, hi)
    peaks = lags[(acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1])]
    if not len(peaks) or acf[peaks].max() < 0.1:
        return fallback
    return int(peaks[np.argmax(acf[peaks])])


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Starts of windows every ``stride`` steps (at most ``window``: no gaps), plus one ending at the
    last step, so that every step is covered. Raises DataError when the series is shorter than one window."""
    if window < 1 or stride < 1:
        raise DataError(f"window and stride must be at least 1, got {window} and {stride}")
    if length < window:
        raise DataError(f"a series of {length} steps is shorter than the window of {window} steps")
    starts = np.arange(0, length - window + 1, min(stride, window))
    if starts[-1] != length - window:
        starts = np.append(starts, length - window)
    return starts


def windows(x: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, C) -> windows (N, C, window) float32 and their starts (N,)."""
    starts = window_starts(len(x), window, stride)
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)  # (T - window + 1, C, window)
    return np.ascontiguousarray(view[starts], dtype=np.float32), starts


def to_steps(values: np.ndarray, starts: np.ndarray, window: int, length: int) -> np.ndarray:
    """Window values back to time steps: each step gets the mean over the windows that cover it.

    Args:
        values: (N,) one value per window, or (N, window) one per position in each window.
        starts: (N,) where each window starts.
        window: The window length.
        length: T, the series length.

    Returns:
        (T,) float64.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = np.repeat(values[:, None], window, axis=1)
    total = np.zeros(length)
    count = np.zeros(length)
    idx = (np.asarray(starts)[:, None] + np.arange(window)).ravel()
    np.add.at(total, idx, values.ravel())
    np.add.at(count, idx, 1.0)
    if (count == 0).any():
        raise ValueError(f"windows leave step {int(np.flatnonzero(count == 0)[0])} uncovered")
    return total / count


@dataclass(frozen=True)
class Windowing:
    """How a detector cuts series: window, stride and the per-channel scaling (saved with it)."""

    window: int
    stride: int
    scaling: SeriesScaling = field(default_factory=SeriesScaling)
    period_found: bool = False

    @classmethod
    def fit(cls, data: ArrayDataset, window: int | None = None, stride: int | None = None) -> Windowing:
        """Scaling from all of ``data``'s steps; the window from its dominant period if not given."""
        raw = parts(data)
        found = window is None
        if window is None:
            window = dominant_period(max(raw, key=len))
        window = int(min(window, min(len(r) for r in raw)))
        stride = int(stride or max(1, window // 8))
        return cls(window, stride, SeriesScaling.fit(np.concatenate(raw)), found)

    def cut(self, data: ArrayDataset) -> tuple[ArrayDataset, list[np.ndarray]]:
        """Scaled windows (N, C, window) of every series, and each series' window starts."""
        out, starts = [], []
        for raw in parts(data):
            if raw.shape[1] != len(self.scaling.center):
                raise DataError(
                    f"{data.name}: {raw.shape[1]} channels, but the detector was fitted on "
                    f"{len(self.scaling.center)}"
                )
            w, s = windows(self.scaling.apply(raw), self.window, self.stride)
            out.append(w)
            starts.append(s)
        return ArrayDataset(np.concatenate(out), name=f"{data.name} (windows)"), starts

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "stride": self.stride,
            "scaling": self.scaling.to_dict(),
            "period_found": self.period_found,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Windowing:
        return cls(
            int(d["window"]), int(d["stride"]), SeriesScaling.from_dict(d["scaling"]), bool(d["period_found"])
        )
