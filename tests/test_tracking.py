"""Experiment tracking: what the TensorBoard and MLflow callbacks claim to write is read back."""

from __future__ import annotations

import json
import sys

import pytest

import aekit
from aekit.cli import main
from aekit.errors import ConfigError

EPOCHS = 2
LIMIT = 256  # 230 training samples after the 10% validation split: 4 batches of 64 an epoch


def test_tensorboard_holds_step_and_epoch_scalars_images_and_the_config(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = aekit.train(
        "mnist-5k",
        "vae",
        limit=LIMIT,
        epochs=EPOCHS,
        log=["tensorboard"],
        out=tmp_path / "run",
        progress=False,
    )
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    steps = [e.step for e in acc.Scalars("step/loss")]
    assert steps == list(range(1, EPOCHS * 4 + 1))  # one point per optimizer step
    assert "step/kl" in acc.Tags()["scalars"]  # every loss term, not only the total
    epoch_loss = acc.Scalars("epoch/train/loss")
    assert [e.step for e in epoch_loss] == [1, 2]
    assert epoch_loss[-1].value == pytest.approx(run.history[-1]["train/loss"], rel=1e-6)
    assert [e.step for e in acc.Scalars("epoch/val/loss")] == [1, 2]
    for tag, height in (("reconstructions", 2 * 28), ("samples", 2 * 28)):
        images = acc.Images(tag)
        assert [i.step for i in images] == [1, 2] and images[-1].height == height
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(text.strip("`json\n"))["model"]["name"] == "vae"


def test_mlflow_holds_params_epoch_metrics_and_the_run_directory(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # the default store is ./mlruns
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = aekit.train(
        "mnist-5k", limit=LIMIT, epochs=EPOCHS, log=["mlflow"], out="runs/first", progress=False
    )
    client = MlflowClient((tmp_path / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("aekit")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_name == "first" and found.info.status == "FINISHED"
    assert found.data.params["model.name"] == "dense" and found.data.params["train.epochs"] == str(EPOCHS)
    assert found.data.params["data.limit"] == str(LIMIT)
    history = client.get_metric_history(found.info.run_id, "train/loss")
    assert [m.step for m in history] == [1, 2]
    assert history[-1].value == pytest.approx(run.history[-1]["train/loss"])
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {
        "config.json",
        "model.safetensors",
        "metrics.jsonl",
        "report.html",
        "reconstructions.png",
    } <= artifacts


def test_the_log_flag_reaches_the_config_and_bad_names_are_one_line_errors(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        ["train", "--data", "mnist-5k", "--limit", "128", "--epochs", "1", "--quiet"]
        + ["--log", "tensorboard", "--out", str(out)]
    )
    assert code == 0
    assert json.loads((out / "config.json").read_text())["train"]["log"] == ["tensorboard"]
    assert any((out / "tensorboard").iterdir())
    assert (
        main(["train", "--limit", "64", "--epochs", "1", "--log", "wandb", "--out", str(tmp_path / "x")]) == 2
    )
    assert "log must be tensorboard and/or mlflow, not 'wandb'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_tracker_that_is_not_installed_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "aekit\[mlflow\]"'):
        aekit.train("mnist-5k", limit=64, epochs=1, log=["mlflow"], out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything was written
