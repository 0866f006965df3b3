"""Figures as pure functions: arrays or metrics in, a matplotlib Figure out.

They use ``matplotlib.figure.Figure`` directly (no pyplot, no global state, no screen);
:func:`save_figure` writes a PNG atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from aekit.fileio import atomic_path

LABEL_POINTS_PER_INCH = 1.5  # row labels: 18 pt on a 12-inch strip, about 10 px in a 520 px column


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def mosaic(images, cols: int, gap: float = 0.08) -> np.ndarray:
    """Tile images into one array, ``cols`` to a row, with white gaps of ``gap`` times the image size.

    One image drawn once is far cheaper than an axes per image (64 samples: 64 axes to lay out).

    Shape:
        images: (N, C, H, W) with C 1 or 3, or (N, H, W), values in [0, 1]
        -> (rows * (H + g) - g, cols * (W + g) - g), plus a last axis of 3 for colour.
    """
    images = np.clip(_numpy(images).astype(np.float32), 0, 1)
    if images.ndim == 4:
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    n, h, w = images.shape[:3]
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    g = max(1, round(gap * max(h, w)))
    out = np.ones((rows * (h + g) - g, cols * (w + g) - g, *images.shape[3:]), dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + g) : r * (h + g) + h, c * (w + g) : c * (w + g) + w] = image
    return out


def _show(ax, image: np.ndarray) -> None:
    """Draw one 2-D (gray) or (H, W, 3) array with values in [0, 1], without axes."""
    kw = {"cmap": "gray", "vmin": 0, "vmax": 1} if image.ndim == 2 else {}
    ax.imshow(image, interpolation="nearest", **kw)
    ax.axis("off")


def comparison_grid(rows: Sequence[tuple[str, object]], n: int = 10, title: str | None = None) -> Figure:
    """Labelled rows of images, column i showing sample i in each row (e.g. noisy / denoised / clean).

    Each row's label is a heading above it, sized for the figure's width, so it stays readable
    when the figure is shrunk to a page column (a label beside the first image was not).

    Shape:
        each row's images: (N, C, H, W) or (N, H, W), values in [0, 1].
    """
    arrays = [(label, _numpy(images)) for label, images in rows]
    n = max(1, min(n, *(len(a) for _, a in arrays)))
    width = 1.2 * max(n, 4)  # a few images still leave room for the row labels
    fig = Figure(figsize=(width, 1.6 * len(arrays)), layout="constrained")
    axes = fig.subplots(len(arrays), 1, squeeze=False)[:, 0]
    for (label, images), ax in zip(arrays, axes, strict=True):
        _show(ax, mosaic(images[:n], n))
        ax.set_title(label, loc="left", fontsize=max(11.0, LABEL_POINTS_PER_INCH * width))
    if title:
        fig.suptitle(title)
    return fig


def reconstruction_grid(originals, reconstructions, n: int = 10, title: str | None = None) -> Figure:
    """Originals on the top row, their reconstructions on the row under them.

    Shape:
        originals, reconstructions: (N, C, H, W) or (N, H, W) images, or (N, F) table rows, in [0, 1].
    """
    originals, reconstructions = _numpy(originals), _numpy(reconstructions)
    if originals.ndim != 2:
        return comparison_grid([("original", originals), ("reconstruction", reconstructions)], n, title)
    n = max(1, min(n, len(originals)))
    fig = Figure(figsize=(2.2 * n, 2.4), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)
    for i in range(n):
        ax = axes[0, i]
        ax.plot(originals[i], label="original", lw=1.2)
        ax.plot(reconstructions[i], label="reconstruction", lw=1.2, ls="--")
        ax.set_xlabel("feature")
        if i == 0:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def image_grid(images, nrow: int = 8, title: str | None = None) -> Figure:
    """A grid of images, ``nrow`` to a row (samples, interpolations).

    Shape:
        images: (N, C, H, W) or (N, H, W) in [0, 1].
    """
    images = _numpy(images)
    cols = max(1, min(nrow, len(images)))
    rows = -(-len(images) // cols)
    fig = Figure(figsize=(1.0 * cols, 1.0 * rows + (0.4 if title else 0)), layout="constrained")
    _show(fig.subplots(), mosaic(images, cols))
    if title:
        fig.suptitle(title)
    return fig


def loss_curves(history: Sequence[dict[str, float]]) -> Figure:
    """One panel per loss term, train and validation against the epoch; log scale when positive."""
    terms = sorted({k.split("/", 1)[1] for r in history for k in r if k.startswith(("train/", "val/"))})
    terms = sorted(terms, key=lambda t: (t != "loss", t))  # the total first
    cols = max(1, min(3, len(terms)))
    rows = max(1, -(-len(terms) // cols))
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax in axes[len(terms) :]:
        ax.axis("off")
    for ax, term in zip(axes, terms, strict=False):
        values = []
        for split, style in (("train", "-"), ("val", "--")):
            points = [(r["epoch"], r[f"{split}/{term}"]) for r in history if f"{split}/{term}" in r]
            if points:
                ax.plot(*zip(*points, strict=True), style, marker="o", ms=3, label=split)
                values += [v for _, v in points]
        if values and min(values) > 0:
            ax.set_yscale("log")
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no tick at 1.5
        ax.legend(fontsize=7)
    return fig


def latent_map(
    xy: np.ndarray, labels: np.ndarray | None, classes: Sequence[str] | None, title: str = ""
) -> Figure:
    """Points (N, 2) (e.g. codes projected to 2-D), coloured by class index ``labels`` (N,) when given."""
    fig = Figure(figsize=(4.6, 4.0), layout="constrained")
    ax = fig.subplots()
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=3, alpha=0.6)
    else:
        for k in np.unique(labels):
            pick = labels == k
            name = classes[k] if classes and k < len(classes) else str(k)
            ax.scatter(xy[pick, 0], xy[pick, 1], s=3, alpha=0.7, label=name)
        ax.legend(fontsize=6, markerscale=3, loc="best", ncols=2)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def bar_chart(values, title: str, xlabel: str, ylabel: str, line: float | None = None) -> Figure:
    """One bar per value (e.g. KL per latent dimension, codebook usage), with an optional level line."""
    values = _numpy(values)
    fig = Figure(figsize=(4.6, 2.6), layout="constrained")
    ax = fig.subplots()
    ax.bar(np.arange(len(values)), values, width=0.9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # dimensions and codes are numbered
    if line is not None:
        ax.axhline(line, ls=":", c="grey", lw=1)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig


def piano_roll(tokens, title: str | None = None) -> Figure:
    """A piano roll of music tokens (steps,) or (steps, voices): one colour per voice, bar lines."""
    from aekit.data.music import STEPS_PER_BAR, tokens_to_notes

    tokens = np.asarray(tokens)
    tokens = tokens[:, None] if tokens.ndim == 1 else tokens
    fig = Figure(figsize=(max(3.0, len(tokens) / 8), 2.4), layout="constrained")
    ax = fig.subplots()
    colours = ["tab:red", "tab:blue", "tab:green", "tab:purple"]
    pitches = []
    for v, notes in enumerate(tokens_to_notes(tokens)):
        for p, a, b in notes:
            ax.broken_barh([(a, b - a)], (p - 0.4, 0.8), color=colours[v % 4])
            pitches.append(p)
    for bar in range(0, len(tokens) + 1, STEPS_PER_BAR):
        ax.axvline(bar, color="grey", lw=0.6)
    if pitches:
        ax.set_ylim(min(pitches) - 2, max(pitches) + 2)
    ax.set_xlim(0, len(tokens))
    ax.set_xlabel("16th-note step")
    ax.set_ylabel("MIDI pitch")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def roc_curve(truth, scores, title: str | None = None) -> Figure:
    """The ROC curve of ``scores`` (higher = more positive) against boolean ``truth``, with its AUROC."""
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as _roc

    fpr, tpr, _ = _roc(np.asarray(truth), np.asarray(scores))
    fig = Figure(figsize=(3.6, 3.4), layout="constrained")
    ax = fig.subplots()
    ax.plot(fpr, tpr, lw=1.5, label=f"AUROC {roc_auc_score(truth, scores):.3f}")
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1, label="chance")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """``fig`` as PNG bytes (to embed in a page, or to write and embed without drawing twice)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (a half-written PNG never has the final name)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)
