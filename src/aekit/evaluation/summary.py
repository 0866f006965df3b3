"""What a run's report shows, computed once: :func:`summarize_run` -> :class:`RunSummary`.

The summary holds plain arrays, floats and small dataclasses, so the report and the figure
files are drawn from it without another model call, and a page for several runs costs one
summary per run. Applications add their own sections (a detector's ROC curve, a codec's
rate-distortion curve) as :class:`Extra` entries, so the report never needs their file names.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
import torch

from aekit._version import __version__

ACTIVE_UNIT_KL = 0.01  # nats: a dimension whose mean KL is below this carries no information
SHOWN = 10  # originals and reconstructions in the strip
SAMPLES = 64  # samples from the prior (samples.png; the page shows the first REPORT_SAMPLES)
REPORT_SAMPLES = 32
WALK_STEPS = 8  # codes on the interpolation line


@dataclass(frozen=True)
class Extra:
    """A section an application adds to the report: a PNG figure or a table of (name, value) rows.

    Attributes:
        title: The section heading.
        png: PNG bytes of a figure.
        rows: (name, value) rows of a table.
        note: A line of text under the heading.
    """

    title: str
    png: bytes | None = None
    rows: tuple[tuple[str, Any], ...] | None = None
    note: str = ""


@dataclass(frozen=True)
class TestResult:
    """Metrics of the reconstructions of ``n`` samples of the data named ``data_name``."""

    data_name: str
    n: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class LatentMap:
    """Codes projected to 2-D for a scatter plot, or why there is no map (``xy`` None, ``note`` says).

    Shape:
        xy: (N, 2); labels: (N,) class indices or None.
    """

    xy: np.ndarray | None
    labels: np.ndarray | None
    classes: tuple[str, ...] | None
    how: str
    note: str = ""


@dataclass(frozen=True)
class CodebookUsage:
    """How often each codebook row was chosen (``counts``) and the perplexity of that distribution."""

    counts: np.ndarray
    perplexity: float

    @property
    def used(self) -> int:
        return int((self.counts > 0).sum())

    @property
    def shares(self) -> np.ndarray:
        """Each code's share of the picks, most used first."""
        return np.sort(self.counts / max(1, self.counts.sum()))[::-1]


@dataclass
class RunSummary:
    """Everything a run's report shows, as plain values (no model, no tensors).

    Attributes:
        name: The run's name (its directory's name, or the model's).
        model_name: The registered model name.
        data_name: The training data's name.
        data_rows: (name, value) rows describing the training data.
        history: One dict of metrics per epoch.
        test: Metrics on the data passed to :func:`summarize_run`, when some was.
        originals: The first inputs of that data, (n<=10, *input_shape), values in [0, 1].
        reconstructions: Their reconstructions, same shape.
        latent: The 2-D map of the codes (or the note why there is none).
        kl_per_dim: Mean KL per latent dimension (models with a likelihood), shape (D,).
        active_units: How many dimensions have a mean KL above ``ACTIVE_UNIT_KL``.
        codebook: Codebook usage (models with a codebook).
        samples: Samples from the prior (generative image models), (64, C, H, W).
        interpolation: Decoded codes on the line between two inputs, (8, C, H, W).
        config: The run config as a dict (sections model, data, train).
        environment: (name, value) rows: versions, device, time written.
        extras: Sections added by applications, rendered after the built-in ones.
    """

    name: str
    model_name: str
    data_name: str
    data_rows: list[tuple[str, Any]]
    history: list[dict[str, float]]
    config: dict[str, Any]
    environment: list[tuple[str, Any]]
    test: TestResult | None = None
    originals: np.ndarray | None = None
    reconstructions: np.ndarray | None = None
    latent: LatentMap | None = None
    kl_per_dim: np.ndarray | None = None
    active_units: int | None = None
    codebook: CodebookUsage | None = None
    samples: np.ndarray | None = None
    interpolation: np.ndarray | None = None
    extras: list[Extra] = field(default_factory=list)


def environment(device: str) -> list[tuple[str, Any]]:
    """Versions, platform, device and the time: what a reader needs to reproduce the numbers."""
    return [
        ("aekit", __version__),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("numpy", np.__version__),
        ("matplotlib", metadata.version("matplotlib")),
        ("platform", platform.platform()),
        ("device", device),
        ("CPU threads", torch.get_num_threads()),
        ("written", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
    ]


def principal_components(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` (N, D) projected on its first ``k`` principal axes, (N, min(k, N, D)).

    The SVD of the centred data (no scikit-learn import: a second or more on a busy machine);
    each axis's sign is fixed so that its largest loading is positive, so reruns draw the same map.
    """
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:k]
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(1)])[:, None]
    return centred @ axes.T


def latent_projection(codes: np.ndarray, labels: np.ndarray | None, classes: Any) -> LatentMap:
    """Codes (N, D) to 2-D: PCA when D > 2, the codes themselves (padded to 2-D) otherwise.

    Any data size gives an answer: one sample (or codes with no spread) has no map, only a note.
    """
    classes = tuple(classes) if classes else None
    codes = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    n, d = codes.shape
    if n < 2:
        return LatentMap(None, None, classes, "", f"no latent map: it needs at least 2 samples, not {n}")
    if d > 2:
        xy, how = principal_components(codes, 2), "PCA of the codes"
    else:
        xy, how = codes, "the codes" if d == 2 else "the codes (one dimension)"
    xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    note = f"{n} samples only" if n < 10 else ""
    return LatentMap(np.nan_to_num(xy), labels, classes, how, note)


def _codebook_usage(model: Any, x: torch.Tensor) -> CodebookUsage:
    idx = model.codes(x).flatten().cpu()
    counts = torch.bincount(idx, minlength=model.config.codebook_size).numpy()
    p = counts / max(1, counts.sum())
    perplexity = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
    return CodebookUsage(counts, perplexity)


def _labels_for(model: Any, n: int, device: torch.device) -> torch.Tensor | None:
    return torch.arange(n, device=device) % model.config.num_classes if model.conditional else None


def summarize_run(
    run: Any,
    data: Any = None,
    *,
    max_samples: int = 2000,
    seed: int | None = None,
    extras: tuple[Extra, ...] | list[Extra] = (),
) -> RunSummary:
    """Compute everything the report shows for ``run``, once.

    Args:
        run: A trained run (:class:`aekit.Run` or anything with ``model``, ``config``, ``dataset``,
            ``history``, ``path``, ``device``, ``prepare``, ``evaluate``, ``reconstruct``, ``encode``).
        data: Held-out data (an ``ArrayDataset``) for metrics, the strip, the latent map and the
            interpolation; without it those sections are left out.
        max_samples: Use at most this many samples of ``data`` (the first ones).
        seed: Seed of the samples from the prior; the run's training seed by default.
        extras: Sections applications add (see :class:`Extra`).

    Returns:
        The summary; computing it is the only place the model runs for a report.
    """
    model = run.model
    seed = run.config.train.seed if seed is None else seed
    ds = run.dataset  # a DataInfo
    data_name = str(ds.name or run.config.data.source)
    summary = RunSummary(
        name=run.path.name if run.path is not None else run.config.model,
        model_name=run.config.model,
        data_name=data_name,
        data_rows=[
            ("source", data_name),
            ("training samples", ds.size),
            ("sample shape", " x ".join(map(str, ds.shape))),
            ("stored as", ds.dtype),
            ("classes", ", ".join(ds.classes or ()) or "none"),
        ],
        history=[dict(r) for r in run.history],
        config=run.config.to_dict(),
        environment=environment(str(run.device)),
        extras=list(extras),
    )
    is_image = len(model.input_shape) == 3
    device = run.device
    if data is not None and len(data) > 0:
        n = min(len(data), max_samples)
        data = run.prepare(data).subset(torch.arange(n))
        metrics = run.evaluate(data)
        summary.test = TestResult(data.name, n, {k: float(v) for k, v in metrics.items() if k != "n"})
        shown = data.subset(torch.arange(min(SHOWN, n)))
        summary.originals = shown.take(torch.arange(len(shown)))[0].numpy()
        summary.reconstructions = run.reconstruct(shown)
        codes = run.encode(data)
        labels = data.y.numpy() if data.y is not None else None
        summary.latent = latent_projection(codes, labels, ds.classes)
        x, y = data.take(torch.arange(n), device)
        with torch.no_grad():
            if model.has_likelihood:
                summary.kl_per_dim = model.kl_per_dim(x, y).float().cpu().numpy()
                summary.active_units = int((summary.kl_per_dim > ACTIVE_UNIT_KL).sum())
            if model.has_codebook:
                summary.codebook = _codebook_usage(model, x)
    if model.generative and is_image:
        with torch.no_grad():
            g = torch.Generator(device).manual_seed(seed)
            y = _labels_for(model, SAMPLES, device)
            summary.samples = model.sample(SAMPLES, generator=g, y=y).float().cpu().numpy()
            if data is not None and len(data) >= 2:
                pair, labels = data.take(torch.arange(2), device)
                if model.conditional and labels is None:  # unlabelled data: walk within class 0
                    labels = torch.zeros(2, dtype=torch.long, device=device)
                ya, yb = (labels[:1], labels[1:]) if model.conditional else (None, None)
                za, zb = model.encode(pair[:1], ya), model.encode(pair[1:], yb)
                t = torch.linspace(0, 1, WALK_STEPS, device=device).reshape(-1, *([1] * (za.dim() - 1)))
                y_walk = ya.expand(WALK_STEPS) if model.conditional else None  # the first input's label
                summary.interpolation = model.decode(za + t * (zb - za), y_walk).float().cpu().numpy()
    return summary
