"""``report.html``: one self-contained page per run (or several runs side by side).

The page renders a :class:`aekit.evaluation.summary.RunSummary` and computes nothing itself:
no model call, no tensor, no file read. Every image is embedded as a data URI and the style is
inline, so the page opens offline and can be mailed as one file; the layout is a single column
on a phone and a grid on a desktop. Sections appear where they apply: configuration, data, loss
curves, test metrics, originals beside reconstructions, a 2-D map of the codes coloured by label,
samples and interpolations, per-dimension KL and active units (VAE family), codebook usage (VQ),
the sections applications add (a detector's ROC curve...), and the environment.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from aekit.evaluation.summary import ACTIVE_UNIT_KL, REPORT_SAMPLES, RunSummary
from aekit.fileio import atomic_write_text
from aekit.report.figures import (
    bar_chart,
    figure_png,
    image_grid,
    latent_map,
    loss_curves,
    reconstruction_grid,
)

REPORT = "report.html"

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
    return png_uri(figure_png(fig, dpi))


def png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _table(rows: Sequence[tuple[str, Any]]) -> str:
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


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def run_section(summary: RunSummary, drawn: Mapping[str, bytes] | None = None) -> str:
    """The HTML of one run: every section its summary holds.

    Args:
        summary: What to show.
        drawn: PNGs already drawn from this summary (``"loss_curves"``, ``"reconstructions"``, as
            :func:`aekit.report.artifacts.write_figures` returns them), embedded instead of drawn again.
    """
    s = summary
    drawn = drawn or {}

    def shown(key: str, draw, alt: str) -> str:
        return _image(png_uri(drawn[key]) if key in drawn else figure_uri(draw()), alt)

    parts: list[str] = [f"<h1>{html.escape(s.name)}</h1>"]
    parts.append(
        f'<p class="note">model <b>{html.escape(s.model_name)}</b> on <b>{html.escape(s.data_name)}</b></p>'
    )
    parts.append("<h2>Data</h2>" + _table(s.data_rows))
    if s.history:
        parts.append("<h2>Training</h2>")
        parts.append(shown("loss_curves", lambda: loss_curves(s.history), "loss curves"))
        parts.append(_table([(k, float(v)) for k, v in s.history[-1].items() if k != "epoch"]))
    if s.test is not None:
        samples = f"{s.test.n} sample{'' if s.test.n == 1 else 's'}"
        parts.append(f"<h2>Test metrics ({samples} of {html.escape(s.test.data_name)})</h2>")
        parts.append(_table(list(s.test.metrics.items())))
    if s.originals is not None and s.reconstructions is not None:
        parts.append("<h2>Originals and reconstructions</h2>")
        grid = lambda: reconstruction_grid(s.originals, s.reconstructions)  # noqa: E731
        parts.append(shown("reconstructions", grid, "originals above reconstructions"))
    if s.latent is not None:
        parts.append("<h2>Latent map</h2>")
        if s.latent.note:
            parts.append(_note(s.latent.note))
        if s.latent.xy is not None:
            fig = latent_map(s.latent.xy, s.latent.labels, s.latent.classes, s.latent.how)
            parts.append(_image(figure_uri(fig), "latent map"))
    if s.kl_per_dim is not None:
        parts.append("<h2>Posterior: KL per latent dimension</h2>")
        parts.append(
            _note(
                f"{s.active_units} of {len(s.kl_per_dim)} dimensions active (mean KL above "
                f"{ACTIVE_UNIT_KL} nats); collapsed dimensions sit at zero."
            )
        )
        fig = bar_chart(s.kl_per_dim, "mean KL per dimension", "dimension", "nats")
        parts.append(_image(figure_uri(fig), "KL"))
    if s.codebook is not None:
        parts.append("<h2>Codebook usage</h2>")
        parts.append(
            _note(
                f"{s.codebook.used} of {len(s.codebook.counts)} codes used; "
                f"perplexity {s.codebook.perplexity:.1f}."
            )
        )
        fig = bar_chart(s.codebook.shares, "code usage, sorted", "code", "share")
        parts.append(_image(figure_uri(fig), "codebook"))
    if s.samples is not None:
        parts.append("<h2>Samples from the prior</h2>")
        parts.append(_image(figure_uri(image_grid(s.samples[:REPORT_SAMPLES], nrow=8)), "samples"))
    if s.interpolation is not None:
        parts.append("<h2>Interpolation between two test inputs</h2>")
        parts.append(_image(figure_uri(image_grid(s.interpolation, nrow=8)), "interpolation"))
    for extra in s.extras:
        parts.append(f"<h2>{html.escape(extra.title)}</h2>")
        if extra.note:
            parts.append(_note(extra.note))
        if extra.png is not None:
            parts.append(_image(png_uri(extra.png), extra.title))
        if extra.rows is not None:
            parts.append(_table(extra.rows))
    parts.append("<h2>Configuration</h2>")
    for section in ("model", "train", "data"):
        rows = [
            (k, ", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in s.config[section].items()
        ]
        parts.append(f"<details><summary>{section}</summary>{_table(rows)}</details>")
    parts.append("<h2>Environment</h2>" + _table(s.environment))
    return '<section class="run">' + "\n".join(parts) + "</section>"


def render(sections: list[str], title: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body><main><div class="runs">{"".join(sections)}</div></main></body></html>\n'
    )


def write_report(
    summaries: Sequence[RunSummary], out: str | Path, drawn: Sequence[Mapping[str, bytes]] | None = None
) -> Path:
    """Write one page for ``summaries`` (side by side when several), atomically, to ``out``.

    Args:
        summaries: One :class:`RunSummary` per run (:func:`aekit.evaluation.summary.summarize_run`).
        out: The page's path.
        drawn: Per run, PNGs already drawn from its summary (see :func:`run_section`).
    """
    drawn = list(drawn) if drawn is not None else [{}] * len(summaries)
    sections = [run_section(s, d) for s, d in zip(summaries, drawn, strict=True)]
    title = " vs ".join(s.name for s in summaries) + " - aekit report"
    return atomic_write_text(Path(out), render(sections, title))
