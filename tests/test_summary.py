"""The report's summary: computed once by evaluation code, rendered by a report that computes nothing.

Also the report's regressions from issue 16: tiny data (item 1) and readable figures (item 17).
"""

from __future__ import annotations

import ast
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

import aekit
from aekit.api import Run
from aekit.cli import main
from aekit.config import resolve
from aekit.data.dataset import DataInfo
from aekit.errors import CheckpointError
from aekit.evaluation.summary import (
    Extra,
    RunSummary,
    latent_projection,
    principal_components,
    summarize_run,
)
from aekit.models.registry import build_model
from aekit.report.artifacts import EXTRAS, load_extras, write_run_files, write_runs_report
from aekit.report.figures import loss_curves, reconstruction_grid
from aekit.report.html import run_section, write_report

SRC = Path(aekit.__file__).parent
HISTORY = [
    {"epoch": 1, "train/loss": 0.5, "val/loss": 0.6},
    {"epoch": 2, "train/loss": 0.3, "val/loss": 0.4},
]


def _run(model: str, path: Path | None, latent_dim: int = 4, data=None) -> Run:
    """An untrained run on 1x8x8 images: the report must not care whether the model learned."""
    layers = [{"model": {"name": model, "latent_dim": latent_dim}, "data": {"source": "digits"}}]
    config = resolve(layers, input_shape=(1, 8, 8), num_classes=10)
    torch.manual_seed(0)
    net = build_model(config.model, config.model_config).eval()
    dataset = data.describe() if data is not None else DataInfo(name="digits", shape=(1, 8, 8))
    return Run(config, dataset, net, path, list(HISTORY))


@pytest.fixture(scope="module")
def digits():
    return aekit.load_dataset("digits", "test", limit=40)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --- computed once, rendered many ---------------------------------------------------------------


class Counting:
    """A run whose data-level calls and model sampling are counted."""

    def __init__(self, run: Run) -> None:
        self._run, self.calls = run, {"evaluate": 0, "reconstruct": 0, "encode": 0, "sample": 0}
        sample = run.model.sample

        def counted_sample(*a, **k):
            self.calls["sample"] += 1
            return sample(*a, **k)

        run.model.sample = counted_sample

    def __getattr__(self, name):
        attr = getattr(self._run, name)
        if name in self.calls:

            def counted(*a, **k):
                self.calls[name] += 1
                return attr(*a, **k)

            return counted
        return attr


def test_run_files_and_page_come_from_one_summary(tmp_path, digits):
    run = Counting(_run("vae", tmp_path, data=digits))
    summary = write_run_files(run, digits)
    assert run.calls == {"evaluate": 1, "reconstruct": 1, "encode": 1, "sample": 1}
    for name in ("reconstructions.png", "loss_curves.png", "samples.png", "report.html"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert summary.samples.shape == (64, 1, 8, 8) and summary.interpolation.shape == (8, 1, 8, 8)
    assert summary.kl_per_dim.shape == (4,) and summary.test.n == 40
    page = (tmp_path / "report.html").read_text()
    assert "Samples from the prior" in page and "KL per latent dimension" in page
    # the page again from the same summary, with no model at all behind it: identical but the clock
    summary.environment = [row for row in summary.environment if row[0] != "written"]
    write_report([summary], tmp_path / "again.html")
    write_report([summary], tmp_path / "again2.html")
    assert (tmp_path / "again.html").read_text() == (tmp_path / "again2.html").read_text()


def test_the_report_layer_computes_nothing():
    """html.py and figures.py import no torch and no model; the summary imports nothing above it."""

    def imports(path: Path) -> set[str]:
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                found.add(node.module or "")
        return found

    for module in ("report/html.py", "report/figures.py"):
        bad = {m for m in imports(SRC / module) if m.split(".")[0] == "torch" or m.startswith("aekit.models")}
        assert not bad, f"{module} imports {bad}"
    upward = ("aekit.training", "aekit.api", "aekit.apps", "aekit.report", "aekit.cli")
    bad = {m for m in imports(SRC / "evaluation/summary.py") if m.startswith(upward)}
    assert not bad, f"evaluation/summary.py imports {bad}"


def test_a_summary_built_by_hand_renders_with_its_extras():
    rng = np.random.default_rng(0)
    images = rng.random((3, 1, 8, 8))
    roc = Figure(figsize=(2, 2))
    roc.subplots().plot([0, 1], [0, 1])
    summary = RunSummary(
        name="hand",
        model_name="dense",
        data_name="numbers",
        data_rows=[("source", "numbers")],
        history=HISTORY,
        config={"model": {"name": "dense"}, "train": {"epochs": 2}, "data": {"source": "x"}},
        environment=[("device", "cpu")],
        originals=images,
        reconstructions=images,
        latent=latent_projection(rng.random((3, 5)), np.array([0, 1, 1]), ["a", "b"]),
        extras=[
            Extra("ROC curve (detector)", png=_png(roc), note="anomalies: class b"),
            Extra("Detector evaluation", rows=(("auroc", 0.91), ("confusion tp", 7))),
        ],
    )
    page = run_section(summary)
    assert page.index("Latent map") < page.index("ROC curve (detector)") < page.index("Environment")
    assert "anomalies: class b" in page and "0.91" in page and "confusion tp" in page
    assert page.count('src="data:image/png;base64,') == 4  # loss curves, strip, map, ROC: no more
    assert "Samples from the prior" not in page and "KL per latent" not in page


def test_extras_are_kept_in_the_run_and_shown_again(tmp_path, digits):
    run = _run("dense", tmp_path, data=digits)
    extras = [Extra("Rate-distortion curve (codec)", png=b"\x89PNG fake"), Extra("t", rows=(("a", 1.5),))]
    write_run_files(run, None, extras, figures=False)
    assert [e.title for e in load_extras(tmp_path)] == ["Rate-distortion curve (codec)", "t"]
    write_run_files(run, None, [Extra("t", rows=(("a", 2.5),))], figures=False)  # same title: replaced
    stored = load_extras(tmp_path)
    assert [e.title for e in stored] == ["Rate-distortion curve (codec)", "t"] and stored[1].rows == (
        ("a", 2.5),
    )
    assert not (tmp_path / "reconstructions.png").exists()  # figures=False
    page = tmp_path / "both.html"
    write_runs_report([run, _run("vae", None, data=digits)], [digits, None], page)
    text = page.read_text()
    assert text.count('<section class="run">') == 2 and "Rate-distortion curve (codec)" in text
    (tmp_path / EXTRAS).write_text("{not json")
    with pytest.raises(CheckpointError, match=EXTRAS):
        load_extras(tmp_path)


def test_codebook_usage_for_vq_models(digits):
    summary = summarize_run(_run("vqvae", None, data=digits), digits)
    usage = summary.codebook
    assert usage is not None and summary.kl_per_dim is None
    assert usage.counts.sum() > 0 and 1 <= usage.used <= len(usage.counts)
    assert 1.0 <= usage.perplexity <= usage.used + 1e-9  # perplexity is at most the codes in use
    assert "Codebook usage" in run_section(summary)


def test_the_latent_map_is_the_pca_of_the_codes():
    from sklearn.decomposition import PCA

    codes = np.random.default_rng(0).normal(size=(300, 6)) * [5, 3, 1, 1, 1, 1]
    ours = principal_components(codes, 2)
    theirs = PCA(2).fit_transform(codes)
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), atol=1e-9)  # equal up to each axis's sign
    assert np.array_equal(ours, principal_components(codes.copy(), 2))  # and the same on every run


# --- issue 16 item 1: any data size finishes with a report ---------------------------------------


@pytest.mark.parametrize(("n", "latent_dim"), [(1, 4), (2, 4), (3, 4), (3, 1), (1, 1), (2, 2)])
def test_any_data_size_renders(tmp_path, digits, n, latent_dim):
    data = digits.subset(torch.arange(n))
    run = _run("vae", tmp_path, latent_dim=latent_dim, data=data)
    summary = write_run_files(run, data)
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Latent map</h2>" in page and summary.test.n == n
    if n == 1:
        assert summary.latent.xy is None and "at least 2 samples" in page
        assert summary.interpolation is None
    else:
        assert summary.latent.xy.shape == (n, 2) and np.isfinite(summary.latent.xy).all()
    assert (tmp_path / "reconstructions.png").is_file()


def test_a_folder_of_three_images_trains_and_writes_its_report(tmp_path, capsys):
    folder = tmp_path / "pngs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--epochs", "1", "--out", str(out)]) == 0
    assert "writing figures and report.html" in capsys.readouterr().err  # status lines go to stderr
    page = (out / "report.html").read_text()
    assert "<h2>Latent map</h2>" in page and "at least 2 samples" in page  # the 1 validation sample


# --- issue 16 item 17: figures a user can read ----------------------------------------------------


def test_loss_curves_tick_whole_epochs_only():
    fig = loss_curves(HISTORY)
    fig.canvas.draw()
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


@pytest.mark.parametrize("n", [1, 10])
def test_strip_row_labels_are_readable_in_the_page(n):
    """In a 520 px page column at the report's 90 dpi, the row labels are at least 9 px tall."""
    x = np.random.default_rng(0).random((n, 1, 28, 28))
    fig = reconstruction_grid(x, x)
    labels = [t for t in fig.findobj(Text) if t.get_text() in ("original", "reconstruction")]
    assert len(labels) == 2
    width_px = fig.get_figwidth() * 90
    shown = min(1.0, 520 / width_px)  # the page shrinks wide figures to the column, never enlarges
    for label in labels:
        assert label.get_fontsize() * 90 / 72 * shown >= 9, (label.get_text(), label.get_fontsize())
