"""``report.html``: one self-contained page per run (or several runs side by side).

Every image is embedded as a data URI and the style is inline, so the page opens offline and
can be mailed as one file; the layout is a single column on a phone and a grid on a desktop.
Sections appear where they apply: configuration, data, loss curves, test metrics, originals
beside reconstructions, a 2-D map of the codes coloured by label, samples and interpolations,
per-dimension KL and active units (VAE family), codebook usage (VQ), the ROC curve and the
most anomalous inputs (detectors), and the environment.
"""

from __future__ import annotations

import base64
import html
import io
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from aekit.fileio import atomic_write_text

REPORT = "report.html"
ACTIVE_UNIT_KL = 0.01  # nats: a dimension whose mean KL is below this carries no information

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0}
body{color:#1d232b;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:12px}
h1{font-size:1.5em;margin:.4em 0}h2{font-size:1.15em;margin:1.2em 0 .4em;border-bottom:1px solid #dde1e6}
.runs{display:grid;gap:16px;grid-template-columns:repeat(auto-fit,minmax(min(100%,520px),1fr))}
.run{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:12px;min-width:0}
img{max-width:100%;height:auto;display:block;margin:6px 0}
table{border-collapse:collapse;font-size:.9em;width:100%;overflow-x:auto;display:block}
td,th{padding:3px 8px;border-bottom:1px solid #eef0f3;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#5a6570;font-size:.85em}
details summary{cursor:pointer;color:#3a6ea5}
"""


def figure_uri(fig: Figure, dpi: int = 90) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = []
    for key, value in rows:
        if isinstance(value, float):
            text, cls = f"{value:.6g}", ' class="num"'
        else:
            text, cls = html.escape(str(value)), ""
        cells.append(f"<tr><th>{html.escape(str(key))}</th><td{cls}>{text}</td></tr>")
    return "<table>" + "".join(cells) + "</table>"


def _image(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def latent_map(codes: np.ndarray, labels: np.ndarray | None, classes: list[str] | None) -> Figure:
    """The codes projected to 2-D (PCA; the codes themselves when they are 2-D), coloured by label."""
    if codes.shape[1] > 2:
        from sklearn.decomposition import PCA

        xy, how = PCA(2, random_state=0).fit_transform(codes), "PCA of the codes"
    else:
        xy, how = np.pad(codes, ((0, 0), (0, 2 - codes.shape[1]))), "the codes"
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
    ax.set_title(how, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def _bar(values: np.ndarray, title: str, xlabel: str, ylabel: str, line: float | None = None) -> Figure:
    fig = Figure(figsize=(4.6, 2.6), layout="constrained")
    ax = fig.subplots()
    ax.bar(np.arange(len(values)), values, width=0.9)
    if line is not None:
        ax.axhline(line, ls=":", c="grey", lw=1)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig


def environment(device: str) -> list[tuple[str, Any]]:
    import matplotlib

    from aekit._version import __version__

    return [
        ("aekit", __version__),
        ("python", platform.python_version()),
        ("torch", torch.__version__),
        ("numpy", np.__version__),
        ("matplotlib", matplotlib.__version__),
        ("platform", platform.platform()),
        ("device", device),
        ("CPU threads", torch.get_num_threads()),
        ("written", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
    ]


def run_section(run, data=None, max_samples: int = 2000) -> str:
    """The HTML of one run: every section that applies. ``data`` (test data) adds metrics and maps."""
    from aekit.report.figures import image_grid, loss_curves, reconstruction_grid

    parts: list[str] = []
    name = run.path.name if run.path else run.config.model
    parts.append(f"<h1>{html.escape(name)}</h1>")
    parts.append(
        f'<p class="note">model <b>{html.escape(run.config.model)}</b> on '
        f"<b>{html.escape(str(run.dataset.name))}</b></p>"
    )
    ds = run.dataset
    parts.append("<h2>Data</h2>")
    parts.append(
        _table(
            [
                ("source", ds.name),
                ("training samples", ds.size),
                ("sample shape", " x ".join(map(str, ds.shape))),
                ("stored as", ds.dtype),
                ("classes", ", ".join(ds.classes or []) or "none"),
            ]
        )
    )
    if run.history:
        parts.append("<h2>Training</h2>")
        parts.append(_image(figure_uri(loss_curves(run.history)), "loss curves"))
        last = run.history[-1]
        parts.append(_table([(k, float(v)) for k, v in last.items() if k not in ("epoch",)]))

    model = run.model
    if data is not None:
        n = min(len(data), max_samples)
        data = run.prepare(data).subset(torch.arange(n))
        metrics = run.evaluate(data)
        parts.append(f"<h2>Test metrics ({n} samples of {html.escape(data.name)})</h2>")
        parts.append(_table([(k, float(v)) for k, v in metrics.items() if k != "n"]))
        x = data.take(torch.arange(min(10, n)))[0].numpy()
        recon = run.reconstruct(data.subset(torch.arange(min(10, n))))
        parts.append("<h2>Originals and reconstructions</h2>")
        parts.append(_image(figure_uri(reconstruction_grid(x, recon)), "originals above reconstructions"))
        codes = run.encode(data)
        labels = data.y.numpy() if data.y is not None else None
        parts.append("<h2>Latent map</h2>")
        parts.append(_image(figure_uri(latent_map(codes, labels, ds.classes)), "latent map"))
        if model.has_likelihood:
            with torch.no_grad():
                kl = model.kl_per_dim(*data.take(torch.arange(n), run.device)).cpu().numpy()
            active = int((kl > ACTIVE_UNIT_KL).sum())
            parts.append("<h2>Posterior: KL per latent dimension</h2>")
            parts.append(
                f'<p class="note">{active} of {len(kl)} dimensions active (mean KL above '
                f"{ACTIVE_UNIT_KL} nats); collapsed dimensions sit at zero.</p>"
            )
            parts.append(_image(figure_uri(_bar(kl, "mean KL per dimension", "dimension", "nats")), "KL"))
        if model.has_codebook:
            with torch.no_grad():
                idx = model.codes(data.take(torch.arange(n), run.device)[0]).flatten().cpu()
            counts = torch.bincount(idx, minlength=model.config.codebook_size).numpy()
            p = counts / counts.sum()
            perplexity = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
            parts.append("<h2>Codebook usage</h2>")
            parts.append(
                f'<p class="note">{int((counts > 0).sum())} of {len(counts)} codes used; '
                f"perplexity {perplexity:.1f}.</p>"
            )
            usage = np.sort(p)[::-1]
            parts.append(_image(figure_uri(_bar(usage, "code usage, sorted", "code", "share")), "codebook"))
    if getattr(model, "generative", False) and len(model.input_shape) == 3:
        with torch.no_grad():
            g = torch.Generator(run.device).manual_seed(run.config.train.seed)
            y = (
                torch.arange(32, device=run.device) % model.config.num_classes
                if getattr(model, "conditional", False)
                else None
            )
            samples = model.sample(32, generator=g, y=y).float().cpu().numpy()
        parts.append("<h2>Samples from the prior</h2>")
        parts.append(_image(figure_uri(image_grid(samples, nrow=8)), "samples"))
        if data is not None and len(data) >= 2:
            pair, labels = data.take(torch.arange(2), run.device)
            cond = getattr(model, "conditional", False)
            ya, yb = (labels[:1], labels[1:]) if cond else (None, None)
            with torch.no_grad():
                za, zb = model.encode(pair[:1], ya), model.encode(pair[1:], yb)
                t = torch.linspace(0, 1, 8, device=run.device)[:, None]
                y_walk = ya.expand(8) if cond else None  # conditional: the walk keeps the first label
                walk = model.decode(za + t * (zb - za), y_walk).float().cpu().numpy()
            parts.append("<h2>Interpolation between two test inputs</h2>")
            parts.append(_image(figure_uri(image_grid(walk, nrow=8)), "interpolation"))
    if run.path is not None:
        extra = [
            ("roc.png", "ROC curve (detector)"),
            ("extremes.png", "Most and least anomalous inputs (detector)"),
            ("rate_distortion.png", "Rate-distortion curve (codec)"),
        ]
        for file, title in extra:
            if (run.path / file).is_file():
                parts.append(f"<h2>{html.escape(title)}</h2>")
                parts.append(_image(file_uri(run.path / file), title))
        if (run.path / "evaluation.json").is_file():
            evaluation = json.loads((run.path / "evaluation.json").read_text())
            flat = [(k, v) for k, v in evaluation.items() if not isinstance(v, dict | list)]
            flat += [(f"confusion {k}", v) for k, v in evaluation.get("confusion", {}).items()]
            parts.append("<h2>Detector evaluation</h2>" + _table(flat))
    config = run.config.to_dict()
    parts.append("<h2>Configuration</h2>")
    for section in ("model", "train", "data"):
        parts.append(
            f"<details><summary>{section}</summary>"
            + _table(
                [
                    (k, v if not isinstance(v, list) else ", ".join(map(str, v)))
                    for k, v in config[section].items()
                ]
            )
            + "</details>"
        )
    parts.append("<h2>Environment</h2>" + _table(environment(str(run.device))))
    return '<section class="run">' + "\n".join(parts) + "</section>"


def render(sections: list[str], title: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body><main><div class="runs">{"".join(sections)}</div></main></body></html>\n'
    )


def write_report(runs: list, out: str | Path, data: list | None = None) -> Path:
    """Write one page for ``runs`` (side by side when several), atomically, to ``out``.

    Args:
        runs: :class:`aekit.Run` objects.
        data: Test data per run (or None entries) for metrics, maps and interpolations.
    """
    data = data or [None] * len(runs)
    sections = [run_section(run, d) for run, d in zip(runs, data, strict=True)]
    title = " vs ".join(r.path.name if r.path else r.config.model for r in runs) + " - aekit report"
    return atomic_write_text(Path(out), render(sections, title))
