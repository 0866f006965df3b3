"""The work the CLI used to do itself, now in apps: detect fit-and-evaluate, the scores table, compare."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from aekit.apps import compare, detect
from aekit.apps.embed import write_scores
from aekit.data.files import from_array
from aekit.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("detect") / "det"
    lines: list[str] = []
    result = detect.fit_and_save(
        "digits",
        out,
        normal_class="0",
        test_limit=200,
        options={"epochs": 8, "latent_dim": 8, "device": "cpu"},
        progress=False,
        log=lines.append,
    )
    return result, lines


def test_fit_and_save_writes_the_detector_its_evaluation_and_report(fitted):
    result, lines = fitted
    files = {p.name for p in result.out.iterdir()}
    assert {"detector.json", "config.json", "model.safetensors", "evaluation.json", "report.html"} <= files
    assert {"roc.png", "extremes.png"} <= files
    assert len(lines) == 1 and re.fullmatch(r"training on the \d+ samples of class 0 in digits", lines[0])
    saved = json.loads((result.out / detect.EVALUATION).read_text())
    assert saved["normal_class"] == 0 and saved["auroc"] == pytest.approx(result.metrics["auroc"])
    assert result.metrics["auroc"] > 0.8  # zeros against the other digits, well above chance
    assert len(result.test) == 200 and len(result.metrics["scores"]) == 200
    assert result.detector.run_.path is None  # the report got its own copy with the path, not a patch


def test_fit_and_save_refuses_a_folder_that_holds_something_before_the_work(tmp_path):
    (tmp_path / "det").mkdir()
    (tmp_path / "det" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already exists; choose another --out"):
        detect.fit_and_save("no-such-data", tmp_path / "det")  # the folder is checked before the data
    assert detect.new_directory(tmp_path / "empty") == tmp_path / "empty"


def test_evaluation_lines_show_the_metrics_and_the_confusion_matrix(fitted):
    result, _ = fitted
    text = "\n".join(detect.evaluation_lines(result.metrics))
    cm = result.metrics["confusion"]
    assert f"AUROC {result.metrics['auroc']:.4f}" in text and "not class 0" in text
    assert text.splitlines()[-1].split()[-2:] == [str(cm["fn"]), str(cm["tp"])]
    assert cm["tn"] + cm["fp"] + cm["fn"] + cm["tp"] == 200


def test_check_figures_refuses_existing_figures_unless_forced(tmp_path):
    (tmp_path / "roc.png").write_bytes(b"mine")
    with pytest.raises(DataError, match="roc.png: already exists"):
        detect.check_figures(tmp_path)
    assert [p.name for p in detect.check_figures(tmp_path, force=True)] == list(detect.FIGURES)


def test_write_scores_carries_ids_and_class_names(tmp_path):
    data = from_array(np.zeros((3, 4), np.float32), "t")
    data = dataclasses.replace(data, y=torch.tensor([1, 0, 1]), classes=("cat", "dog"), ids=("a", "b", "c"))
    path = write_scores(tmp_path / "s.csv", np.array([0.5, 2.0, 0.25]), [False, True, False], data)
    rows = list(csv.reader(path.open()))
    assert rows == [
        ["index", "id", "label", "score", "anomaly"],
        ["0", "a", "dog", "0.5", "0"],
        ["1", "b", "cat", "2", "1"],
        ["2", "c", "dog", "0.25", "0"],
    ]
    with pytest.raises(DataError, match="name the output"):
        write_scores(tmp_path / "s.txt", np.zeros(3), [False] * 3, data)
    with pytest.raises(DataError, match="already exists"):
        write_scores(path, np.zeros(3), [False] * 3, data)


def test_compare_rows_and_table():
    def fake(model, history, metrics):
        return SimpleNamespace(
            config=SimpleNamespace(model=model), history=history, evaluate=lambda data: {"n": 9, **metrics}
        )

    runs = [
        fake("dense", [{"train/loss": 0.5, "val/loss": 0.25, "lr": 0.1}], {"mse": 0.125}),
        fake("vae", [], {"mse": 0.5, "elbo": 90.0}),
    ]
    rows = compare.compare_rows(runs, ["a", "bb"], [object(), None])
    assert rows == [
        {"run": "a", "model": "dense", "epochs": 1, "train/loss": 0.5, "val/loss": 0.25, "test/mse": 0.125},
        {"run": "bb", "model": "vae", "epochs": 0},
    ]
    table = compare.format_table(rows).splitlines()
    assert table[0].split() == ["run", "model", "epochs", "train/loss", "val/loss", "test/mse"]
    assert table[1].split() == ["a", "dense", "1", "0.50000", "0.25000", "0.12500"]
    assert table[2].split() == ["bb", "vae", "0"]
    assert table[1].index("dense") == table[0].index("model")  # columns line up
