"""The one training loop: loss falls, seeds reproduce, resume is exact, faults stop cleanly."""

from __future__ import annotations

import json
import types

import pytest
import torch

import aekit
from aekit.config import TrainConfig
from aekit.data.batches import Batch
from aekit.errors import ConfigError
from aekit.models import build_model
from aekit.training.callbacks import EarlyStopping
from aekit.training.trainer import Trainer, TrainingError, lr_factor, resolve_device


def fit(data, epochs=2, seed=0, **kw):
    torch.manual_seed(seed)
    model = build_model("dense", hidden=(64,), latent_dim=8)
    trainer = Trainer(model, TrainConfig(epochs=epochs, batch_size=32, seed=seed, device="cpu", **kw))
    history = trainer.fit(*data.split(0.25, seed))
    return trainer, history


def test_loss_falls_and_history_has_every_epoch(digits_small):
    _, history = fit(digits_small, epochs=4, lr=3e-3)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert history[-1]["train/loss"] < history[0]["train/loss"]
    assert history[-1]["val/loss"] < history[0]["val/loss"]


def test_same_seed_same_numbers_other_seed_other_numbers(digits_small):
    a, _ = fit(digits_small, seed=1)
    b, _ = fit(digits_small, seed=1)
    c, _ = fit(digits_small, seed=2)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert not torch.equal(
        a.model.state_dict()["encoder.1.0.weight"], c.model.state_dict()["encoder.1.0.weight"]
    )


def test_resume_from_state_equals_uninterrupted(digits_small):
    full, _ = fit(digits_small, epochs=3)
    half, _ = fit(digits_small, epochs=1)
    state = half.state_dict()
    torch.manual_seed(123)  # resuming must not depend on the global RNG at the time
    model = build_model("dense", hidden=(64,), latent_dim=8)
    resumed = Trainer(model, TrainConfig(epochs=3, batch_size=32, seed=0, device="cpu"))
    resumed.load_state_dict(state)
    history = resumed.fit(*digits_small.split(0.25, 0))
    assert len(history) == 3
    for va, vb in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(va, vb)


def test_cpu_bf16_trains_in_bfloat16_with_float32_weights(digits_small):
    plain, plain_history = fit(digits_small, epochs=3, lr=3e-3)
    fast, history = fit(digits_small, epochs=3, lr=3e-3, cpu_bf16=True)
    with fast._autocast():
        assert fast.model.encode(torch.rand(2, 784)).dtype == torch.bfloat16  # the autocast is on
    assert all(p.dtype == torch.float32 for p in fast.model.parameters())
    assert history[-1]["val/loss"] < history[0]["val/loss"]  # it learns
    assert history[-1]["val/loss"] != plain_history[-1]["val/loss"]  # in other arithmetic
    assert abs(history[-1]["val/loss"] - plain_history[-1]["val/loss"]) < 0.1 * plain_history[-1]["val/loss"]


def test_nan_loss_stops_with_clear_error_or_is_skipped(digits_small):
    bad = digits_small.subset(torch.arange(64))
    bad.x = bad.x.float()
    bad.x[::8, 0, 0, 0] = float("nan")  # in the training and the validation part
    with pytest.raises(TrainingError, match="loss became nan"):
        fit(bad, epochs=1)
    trainer, history = fit(bad, epochs=1, nan_policy="skip")
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_early_stopping_stops_and_restores_the_best_weights():
    model = build_model("dense", input_shape=(4,), hidden=(3,), latent_dim=2)
    trainer = types.SimpleNamespace(model=model, should_stop=False)
    stopper = EarlyStopping(patience=2)
    for epoch, val in enumerate([0.5, 0.3, 0.4, 0.35]):
        with torch.no_grad():
            next(model.parameters()).fill_(epoch)
        stopper.on_epoch_end(trainer, {"val/loss": val})
        assert trainer.should_stop == (epoch == 3)
    stopper.on_fit_end(trainer)
    assert float(next(model.parameters())[0, 0].detach()) == 1.0  # the weights of the best epoch (0.3)


def test_cosine_schedule_lowers_the_lr_every_epoch(tmp_path):
    run = aekit.train(
        "digits", limit=200, epochs=4, lr=0.01, schedule="cosine", out=tmp_path / "run", progress=False
    )
    lrs = [r["lr"] for r in run.history]
    assert all(b < a for a, b in zip(lrs, lrs[1:], strict=False)) and lrs[0] < 0.01 and lrs[-1] < 1e-6


def test_lr_schedules():
    assert lr_factor("constant", 0.7) == 1.0
    assert lr_factor("cosine", 0.0) == 1.0 and lr_factor("cosine", 1.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("onecycle", 0.075) == pytest.approx(0.5) and lr_factor(
        "onecycle", 0.15
    ) == pytest.approx(1.0)
    assert lr_factor("onecycle", 1.0) == pytest.approx(0.0, abs=1e-12)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            resolve_device("cuda")
    with pytest.raises(ConfigError):
        resolve_device("tpu")


def test_train_writes_the_run_directory(tmp_path):
    run = aekit.train("mnist-5k", preset="seed", limit=200, epochs=2, out=tmp_path / "run", progress=False)
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "metrics.jsonl",
        "checkpoint.pt",
        "reconstructions.png",
    } <= names
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["name"] == "dense" and config["model"]["latent_activation"] == "relu"
    assert config["dataset"]["shape"] == [1, 28, 28] and config["train"]["epochs"] == 2
    loaded = aekit.load(tmp_path / "run")
    x = aekit.load_dataset("mnist-5k", "test", limit=20)
    assert (loaded.reconstruct(x) == run.reconstruct(x)).all()
    assert loaded.evaluate(x) == run.evaluate(x)


def test_resume_a_run_directory_extends_it(tmp_path):
    out = tmp_path / "run"
    aekit.train("mnist-5k", preset="seed", limit=200, epochs=1, out=out, progress=False)
    run = aekit.resume(out, epochs=2, progress=False)
    assert [r["epoch"] for r in run.history] == [1, 2]
    straight = aekit.train("mnist-5k", preset="seed", limit=200, epochs=2, out=tmp_path / "b", progress=False)
    for va, vb in zip(run.model.state_dict().values(), straight.model.state_dict().values(), strict=True):
        assert torch.equal(va, vb)


def test_gradient_clipping_bounds_the_update(digits_small):
    torch.manual_seed(0)
    model = build_model("dense", hidden=(64,), latent_dim=8)
    trainer = Trainer(
        model, TrainConfig(epochs=1, batch_size=64, lr=1.0, optimizer="sgd", grad_clip=1e-3, device="cpu")
    )
    before = [p.detach().clone() for p in model.parameters()]
    trainer.train_step(Batch(*digits_small.take(torch.arange(64))))
    # SGD with momentum: the first step moves the weights by lr * clipped gradient, norm <= 1e-3
    moved = torch.sqrt(
        sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before, strict=True))
    )
    assert 0 < float(moved) <= 1e-3 + 1e-9


def test_cli_and_python_api_give_the_same_weights(tmp_path):
    from aekit.cli import main

    argv = ["train", "--preset", "seed", "--data", "digits", "--limit", "300", "--epochs", "2", "--seed", "7"]
    assert main([*argv, "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    api = aekit.train(
        "digits", preset="seed", limit=300, epochs=2, seed=7, out=tmp_path / "api", progress=False
    )
    cli = aekit.load(tmp_path / "cli")
    for a, b in zip(cli.model.state_dict().values(), api.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
