"""A run directory's figures and report.html, drawn from one :class:`RunSummary`.

:func:`write_run_files` is the end-of-training step (and ``aekit report RUN``): it computes the
summary once and draws ``reconstructions.png``, ``loss_curves.png``, ``samples.png`` and
``report.html`` from it. Sections applications add (:class:`Extra`) are kept in the run directory
(``report_extras.json``), so a report written again later still shows them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from aekit.errors import CheckpointError
from aekit.evaluation.summary import Extra, RunSummary, summarize_run
from aekit.fileio import atomic_write_bytes, atomic_write_json
from aekit.report.figures import figure_png, image_grid, loss_curves, reconstruction_grid
from aekit.report.html import REPORT, write_report

EXTRAS = "report_extras.json"
RECONSTRUCTIONS = "reconstructions.png"
LOSS_CURVES = "loss_curves.png"
SAMPLES = "samples.png"


def save_extras(run_dir: str | Path, extras: Iterable[Extra]) -> Path:
    """Keep ``extras`` in ``run_dir`` (PNG bytes as base64), replacing stored sections of the same title."""
    extras = list(extras)
    titles = {e.title for e in extras}
    kept = [e for e in load_extras(run_dir) if e.title not in titles] + extras
    entries = [
        {
            "title": e.title,
            "note": e.note,
            "png": base64.b64encode(e.png).decode("ascii") if e.png is not None else None,
            "rows": [[str(k), v] for k, v in e.rows] if e.rows is not None else None,
        }
        for e in kept
    ]
    return atomic_write_json(Path(run_dir) / EXTRAS, {"sections": entries})


def load_extras(run_dir: str | Path | None) -> list[Extra]:
    """The sections stored by :func:`save_extras` (none when there is no file).

    Raises:
        CheckpointError: the file is not what :func:`save_extras` writes.
    """
    if run_dir is None or not (Path(run_dir) / EXTRAS).is_file():
        return []
    path = Path(run_dir) / EXTRAS
    try:
        entries = json.loads(path.read_text())["sections"]
        return [
            Extra(
                title=str(e["title"]),
                note=str(e.get("note") or ""),
                png=base64.b64decode(e["png"]) if e.get("png") else None,
                rows=tuple((str(k), v) for k, v in e["rows"]) if e.get("rows") is not None else None,
            )
            for e in entries
        ]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: not a list of report sections ({e})") from e


def write_figures(summary: RunSummary, run_dir: str | Path) -> dict[str, bytes]:
    """``reconstructions.png``, ``loss_curves.png`` and ``samples.png``, where the summary has them.

    Returns:
        The PNGs written, by name without suffix, for the page to embed without drawing them again.
    """
    run_dir = Path(run_dir)
    figures = {}
    if summary.originals is not None and summary.reconstructions is not None:
        figures[RECONSTRUCTIONS] = reconstruction_grid(summary.originals, summary.reconstructions)
    if summary.history:
        figures[LOSS_CURVES] = loss_curves(summary.history)
    if summary.samples is not None:
        figures[SAMPLES] = image_grid(summary.samples, nrow=8)
    drawn = {}
    for file, fig in figures.items():
        drawn[Path(file).stem] = figure_png(fig)
        atomic_write_bytes(run_dir / file, drawn[Path(file).stem])
    return drawn


def write_run_files(
    run: Any,
    data: Any = None,
    extras: Iterable[Extra] = (),
    *,
    figures: bool = True,
    out: str | Path | None = None,
    log: Callable[[str], Any] | None = None,
    max_samples: int = 2000,
) -> RunSummary:
    """Summarize ``run`` once and write its figures and report from that summary.

    Args:
        run: A trained run with a directory (``run.path``).
        data: Held-out data for metrics, the strip, the latent map and the interpolation.
        extras: Sections an application adds; they are stored in the run directory with those
            stored before (a section of the same title is replaced).
        figures: Also write the PNG figures (training does; ``aekit report`` only writes the page).
        out: The page's path; ``run.path / "report.html"`` by default.
        log: Called with one line before the work starts (e.g. ``print``), so a user knows what the
            last seconds of a command are for.
        max_samples: Use at most this many samples of ``data``.

    Returns:
        The summary the files were drawn from.
    """
    if run.path is None and (figures or out is None):
        raise ValueError("write_run_files needs a run directory (run.path) for its files")
    out = Path(out) if out is not None else Path(run.path) / REPORT
    if log is not None:
        log(f"writing {'figures and ' if figures else ''}{out.name} in {out.parent}")
    extras = list(extras)
    if run.path is not None:
        if extras:
            save_extras(run.path, extras)
        extras = load_extras(run.path)
    summary = summarize_run(run, data, max_samples=max_samples, extras=extras)
    drawn = write_figures(summary, run.path) if figures else {}
    write_report([summary], out, [drawn])
    return summary


def write_runs_report(
    runs: Sequence[Any], data: Sequence[Any] | None, out: str | Path, *, max_samples: int = 2000
) -> list[RunSummary]:
    """One page for several runs side by side (``aekit report A B -o both.html``), figures untouched.

    Args:
        runs: Trained runs; the sections stored in their directories are shown too.
        data: Held-out data per run (or None entries), as for :func:`write_run_files`.
        out: The page's path.
    """
    data = list(data) if data is not None else [None] * len(runs)
    summaries = [
        summarize_run(r, d, max_samples=max_samples, extras=load_extras(r.path))
        for r, d in zip(runs, data, strict=True)
    ]
    write_report(summaries, out)
    return summaries
