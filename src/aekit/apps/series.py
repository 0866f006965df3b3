"""Anomaly detection on time series: the detector's series path, per-step scores, and the figure.

A detector fitted on series data (``series:PATH``, see :mod:`aekit.data.series`) holds a
:class:`~aekit.data.series.Windowing` (window, stride, per-channel scaling) and a model of
windows (C, window), by default ``conv1d``. By default (``series_score="peak"``) the score of a
time step is the mean, over the windows that cover it, of each window's largest per-step squared
error (mean over channels); ``"window"`` takes each window's mean error instead, and ``"step"`` the
error at the step itself (:func:`score_steps`). The default was chosen on validation signals that
are not benchmark series (``benchmarks/series_validate.py``: matplotlib's membrane recording with
planted spikes, level shifts, frozen stretches, noise bursts, speed changes and missing beats).

The threshold is calibrated on the last ``calibration_fraction`` of each training series, which
the model never trains on: the model learns from windows of the first part only, cut at every
step (at most 20,000 windows; longer signals every few steps). ``stride`` is the step between
the windows that score a series.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from aekit.data.dataset import ArrayDataset
from aekit.data.series import Windowing, parts, to_steps, windows
from aekit.errors import DataError

MAX_TRAIN_WINDOWS = 20_000


def split_tails(data: ArrayDataset, fraction: float, window: int) -> tuple[ArrayDataset, np.ndarray]:
    """The first ``1 - fraction`` of each series (to train on) and a mask of the held-out tail steps.

    A series too short to give both a window to train on and a tail is kept whole for training
    (its steps then do not calibrate); at least one series must have a tail.
    """
    keep, tail = [], np.zeros(len(data), dtype=bool)
    for a, b in data.series.bounds:
        cut = a + int(round((b - a) * (1 - fraction)))
        if cut - a >= window and b - cut >= 1:
            keep.append(np.arange(a, cut))
            tail[cut:b] = True
        else:
            keep.append(np.arange(a, b))
    if not tail.any():
        raise DataError(
            f"{data.name}: too short to hold out {fraction:.0%} for calibration after a window of {window} "
            "steps; give a shorter --window or more data"
        )
    return data.subset(np.concatenate(keep)), tail


@torch.no_grad()
def channel_errors(
    model: torch.nn.Module, w: np.ndarray, cross: bool = False, batch_size: int = 512
) -> np.ndarray:
    """Squared reconstruction error of each channel at each position of each window.

    Args:
        cross: the error of channel ``c`` when the model sees the window with channel ``c`` hidden
            (zero, its mean once standardised): how far the channel is from what the other
            channels say it should be. A frozen or shifted sensor whose own shape is plausible
            shows here. One pass per channel.

    Shape:
        w: (N, C, W) scaled windows -> (N, C, W).
    """
    device = next(model.parameters()).device
    model.eval()
    out = []
    for b in torch.from_numpy(w).split(batch_size):
        b = b.to(device)
        if not cross:
            out.append(((model.reconstruct(b) - b) ** 2).float().cpu())
            continue
        e = torch.empty_like(b)
        for c in range(b.shape[1]):
            hidden = b.clone()
            hidden[:, c] = 0
            e[:, c] = (model.reconstruct(hidden)[:, c] - b[:, c]) ** 2
        out.append(e.float().cpu())
    return torch.cat(out).numpy()


def window_errors(model: torch.nn.Module, w: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Squared reconstruction error at each position of each window, mean over channels.

    Shape:
        w: (N, C, W) scaled windows -> (N, W).
    """
    return channel_errors(model, w, batch_size=batch_size).mean(1)


@torch.no_grad()
def _window_recon(model: torch.nn.Module, w: np.ndarray, batch_size: int = 512) -> np.ndarray:
    device = next(model.parameters()).device
    model.eval()
    return torch.cat(
        [model.reconstruct(b.to(device)).float().cpu() for b in torch.from_numpy(w).split(batch_size)]
    ).numpy()


STEP_SCORES = ("peak", "window", "step")


@dataclass(frozen=True)
class ChannelScoring:
    """How a detector fitted on several channels weighs them (saved with it in ``detector.json``).

    Each channel's squared error is divided by its median on the training windows (``scale``) and a
    step takes the largest channel, so an anomaly in one channel of nine is not diluted by the eight
    others (the mean over channels is what detectors fitted before 2026-11-28 use, and what a
    detector without this record still computes). With ``cross_scale``, the cross-channel error
    (:func:`channel_errors` with ``cross=True``) is scored the same way and added, both parts first
    standardised by the median and interquartile range of their scores on the held-out calibration
    steps (``mix``). Chosen on validation signals outside the benchmark
    (``benchmarks/series_validate.py --multichannel``).
    """

    scale: tuple[float, ...]
    cross_scale: tuple[float, ...] | None = None
    mix: tuple[tuple[float, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"scale": list(self.scale), "cross_scale": self.cross_scale and list(self.cross_scale),
                "mix": [list(m) for m in self.mix]}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChannelScoring:
        cross = d.get("cross_scale")
        return cls(
            tuple(float(v) for v in d["scale"]),
            None if cross is None else tuple(float(v) for v in cross),
            tuple((float(m), float(s)) for m, s in d.get("mix", ())),
        )


def _medians(e: np.ndarray) -> tuple[float, ...]:
    """Per-channel median of (N, C, W) errors, floored so that a channel the model copies exactly
    (a constant one) cannot divide by zero."""
    med = np.median(e.transpose(1, 0, 2).reshape(e.shape[1], -1), axis=1)
    return tuple(float(v) for v in np.maximum(med, 1e-6 * max(float(med.max()), 1e-12)))


def fit_channel_scoring(
    model: torch.nn.Module, train_windows: np.ndarray, cross: bool, max_windows: int = 2000
) -> ChannelScoring:
    """The per-channel error scales from (at most ``max_windows`` evenly spaced) training windows.
    ``mix`` is filled in by the detector once the calibration steps are scored part by part."""
    w = train_windows[
        np.linspace(0, len(train_windows) - 1, min(len(train_windows), max_windows)).astype(int)
    ]
    scale = _medians(channel_errors(model, w))
    return ChannelScoring(scale, _medians(channel_errors(model, w, cross=True)) if cross else None)


def _values(e: np.ndarray, how: str, scale: tuple[float, ...] | None) -> np.ndarray:
    """Per-window (N,) or per-position (N, W) values from (N, C, W) errors, channels combined."""
    if scale is None:  # detectors fitted before per-channel scales: the mean over channels
        e = e.mean(1)
        return {"peak": e.max(1), "window": e.mean(1), "step": e}[how]
    z = e / np.asarray(scale, dtype=e.dtype)[None, :, None]
    return {"peak": z.max(2), "window": z.mean(2), "step": z}[how].max(1)


def score_parts(
    model: torch.nn.Module,
    windowing: Windowing,
    data: ArrayDataset,
    how: str = "peak",
    scoring: ChannelScoring | None = None,
) -> dict[str, np.ndarray]:
    """The per-step scores before they are combined: ``error`` and, with a cross-channel scoring,
    ``cross``. Shape of each: (T_total,)."""
    if how not in STEP_SCORES:
        raise ValueError(f"how must be one of {', '.join(STEP_SCORES)}, not {how!r}")
    scales = {"error": scoring and scoring.scale}
    if scoring is not None and scoring.cross_scale is not None:
        scales["cross"] = scoring.cross_scale
    out: dict[str, list[np.ndarray]] = {k: [] for k in scales}
    for raw in parts(data):
        _check_channels(raw, windowing, data.name)
        w, starts = windows(windowing.scaling.apply(raw), windowing.window, windowing.stride)
        for k, scale in scales.items():
            e = channel_errors(model, w, cross=k == "cross")  # (N, C, window)
            out[k].append(to_steps(_values(e, how, scale), starts, windowing.window, len(raw)))
    return {k: np.concatenate(v) for k, v in out.items()}


def score_steps(
    model: torch.nn.Module,
    windowing: Windowing,
    data: ArrayDataset,
    how: str = "peak",
    scoring: ChannelScoring | None = None,
) -> np.ndarray:
    """One anomaly score per time step of every series in ``data``, higher = more anomalous.

    Args:
        how: ``peak`` (default): each window's largest per-step squared error, and a step gets the
            mean over the windows that cover it (a short anomaly lifts every window that holds it,
            so its whole neighbourhood stands out); ``window``: each window's mean squared error,
            mapped back the same way (smoother: one odd step is diluted over the window); ``step``:
            the squared error at the step itself, averaged over the windows that cover it (sharp:
            a spike marks only its own step). ``peak`` was chosen on signals outside the benchmark
            (``benchmarks/series_validate.py``: mean VUS-PR 0.242 against 0.087 for ``window``).
        scoring: how channels are weighed and whether the cross-channel error is added
            (:class:`ChannelScoring`); None: the mean over channels, as before it existed.

    Shape:
        (T_total,)
    """
    return combine(score_parts(model, windowing, data, how, scoring), scoring)


def combine(got: dict[str, np.ndarray], scoring: ChannelScoring | None) -> np.ndarray:
    """The per-step score from :func:`score_parts`: ``error`` alone, or with a cross-channel part,
    both standardised by ``scoring.mix`` and added."""
    if len(got) == 1:
        return got["error"]
    return sum((got[k] - m) / s for k, (m, s) in zip(("error", "cross"), scoring.mix, strict=True))


def reconstruct_steps(model: torch.nn.Module, windowing: Windowing, data: ArrayDataset) -> np.ndarray:
    """The model's reconstruction of every step on the raw scale, windows averaged. Shape: (T_total, C)."""
    out = []
    for raw in parts(data):
        _check_channels(raw, windowing, data.name)
        w, starts = windows(windowing.scaling.apply(raw), windowing.window, windowing.stride)
        rec = _window_recon(model, w)  # (N, C, W)
        steps = np.stack(
            [to_steps(rec[:, c], starts, windowing.window, len(raw)) for c in range(raw.shape[1])], 1
        )
        out.append(windowing.scaling.invert(steps))
    return np.concatenate(out)


def _check_channels(raw: np.ndarray, windowing: Windowing, name: str) -> None:
    want = len(windowing.scaling.center)
    if raw.shape[1] != want:
        raise DataError(f"{name}: {raw.shape[1]} channels, but the detector was fitted on {want}")
    if len(raw) < windowing.window:
        raise DataError(
            f"{name}: a series of {len(raw)} steps is shorter than the detector's window "
            f"of {windowing.window}"
        )


def spans(flags: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as (start, stop) pairs, stop exclusive."""
    f = np.r_[False, np.asarray(flags, dtype=bool), False]
    edges = np.flatnonzero(np.diff(f.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def steps_table(data: ArrayDataset, scores: np.ndarray, threshold: float) -> str:
    """The score CSV of a series: one row per time step (``series`` first when there are several)."""
    info = data.series
    several = len(info.lengths) > 1
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*(["series"] if several else []), info.time_column or "step", "score", "anomaly"])
    for k, (a, b) in enumerate(info.bounds):
        for i in range(a, b):
            time = data.ids[i] if data.ids else str(i - a)
            w.writerow(
                [*([info.names[k]] if several else []), time, f"{scores[i]:.8g}", int(scores[i] > threshold)]
            )
    return buf.getvalue()


def series_figure(data: ArrayDataset, scores: np.ndarray, threshold: float, max_steps: int = 20000) -> Figure:
    """Each series' channels with the flagged spans shaded, and its score against the threshold.

    Shape:
        scores: (T_total,), one per time step of ``data``.
    """
    info = data.series
    bounds = info.bounds
    fig = Figure(figsize=(11, 2.6 * len(bounds) + 0.4), layout="constrained")
    axes = fig.subplots(
        2 * len(bounds), 1, squeeze=False, gridspec_kw={"height_ratios": [2, 1] * len(bounds)}
    )
    x = np.asarray(data.x, dtype=np.float32)
    for k, (a, b) in enumerate(bounds):
        b = min(b, a + max_steps)
        top, bottom = axes[2 * k, 0], axes[2 * k + 1, 0]
        t = np.arange(b - a)
        for c, name in enumerate(info.channels):
            top.plot(t, x[a:b, c], lw=0.7, label=name)
        flagged = spans(scores[a:b] > threshold)
        for s, e in flagged:
            for ax in (top, bottom):
                ax.axvspan(s - 0.5, e - 0.5, color="tab:red", alpha=0.25, lw=0)
        top.set_title(
            f"{info.names[k]}: {sum(e - s for s, e in flagged)} of {b - a} steps flagged", fontsize=9
        )
        if len(info.channels) <= 8:
            top.legend(fontsize=7, loc="upper right")
        bottom.plot(t, scores[a:b], lw=0.7, color="k")
        bottom.axhline(threshold, color="tab:red", lw=0.8, ls="--")
        bottom.set_ylabel("score", fontsize=8)
        bottom.set_xlabel(info.time_column or "step", fontsize=8)
    return fig


def prepare(
    data: ArrayDataset, window: int | None, stride: int | None, fraction: float
) -> tuple[Windowing, ArrayDataset, np.ndarray]:
    """The detector's series path before training: windows, the training windows, the calibration steps.

    The window (when None) comes from the period of all of ``data`` (the detector's training data);
    the per-channel scaling from the part the model trains on.

    Returns:
        (windowing, scaled training windows (N, C, window), mask of the held-out steps of ``data``).
    """
    first = Windowing.fit(data, window, stride)  # the window, from the whole signal's period
    head, tail = split_tails(data, fraction, first.window)
    windowing = Windowing.fit(head, first.window, stride)
    windowing = Windowing(windowing.window, windowing.stride, windowing.scaling, first.period_found)
    # training windows start at every step (more windows, more optimizer steps on short signals),
    # or every few steps on long ones, so that there are at most MAX_TRAIN_WINDOWS
    every = max(1, -(-len(head) // MAX_TRAIN_WINDOWS))
    fit_set, _ = replace(windowing, stride=every).cut(head)
    return windowing, fit_set, tail


def describe_fit(det: Any, data: ArrayDataset, out) -> str:
    """After ``detect fit`` on series: draw ``series.png`` of the training data and say how it was cut."""
    from pathlib import Path

    from aekit.report.figures import save_figure

    w = det.windowing_
    scores = det.anomaly_score(data)
    save_figure(series_figure(data, scores, det.threshold_), Path(out) / "series.png")
    how = "the dominant period of the training signal" if w.period_found else "as given"
    channels = len(w.scaling.center)
    scoring = det.channels_
    combined = ""
    if channels > 1:
        cross = scoring is not None and scoring.cross_scale is not None
        combined = f"{channels} channels scored apart{' and from each other' if cross else ''}, "
    return (
        f"series: window {w.window} steps ({how}), stride {w.stride}; {combined}"
        f"{int((scores > det.threshold_).sum())} of {len(scores)} training steps above the threshold"
    )


def write_scores(det: Any, data: ArrayDataset, scores: np.ndarray, output, figure: bool = False) -> str:
    """``detect score`` on series: the per-step CSV (and ``series.png`` beside it); a summary line."""
    from pathlib import Path

    from aekit.fileio import atomic_write_text
    from aekit.report.figures import save_figure

    atomic_write_text(output, steps_table(data, scores, det.threshold_))
    flagged = scores > det.threshold_
    if figure:
        save_figure(series_figure(data, scores, det.threshold_), Path(output).parent / "series.png")
    runs = len(spans(flagged))
    return f"scored {len(scores)} time steps: {int(flagged.sum())} flagged in {runs} spans -> {output}"
