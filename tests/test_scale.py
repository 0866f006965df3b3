"""Scale: DDP under torchrun equals one process; a run killed with SIGKILL resumes to the same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit.training.callbacks import EarlyStopping

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # same threads: same float sums


def _aekit(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aekit", *args], env=ENV, capture_output=True, text=True, **kw
    )


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


@pytest.fixture(scope="module")
def digits_npy(tmp_path_factory):
    data = aekit.load_dataset("mnist-5k", "train", limit=512)
    path = tmp_path_factory.mktemp("data") / "digits.npy"
    np.save(path, data.raw(torch.arange(len(data))).numpy())
    return path


def test_two_processes_with_ddp_equal_one_process_with_the_global_batch(digits_npy, tmp_path):
    common = ["train", "--data", f"npy:{digits_npy}", "--epochs", "2", "--batch-size", "64"]
    common += ["--val-fraction", "0", "--device", "cpu", "--quiet", "--latent-dim", "8"]
    single = _aekit(*common, "--out", str(tmp_path / "one"), timeout=300)
    assert single.returncode == 0, single.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    ddp = subprocess.run(
        [*torchrun, "-m", "aekit", *common, "--out", str(tmp_path / "two")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("wrote ") == 1  # only rank 0 speaks and writes
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], atol=1e-5, rtol=1e-4)
    log = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    log1 = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert len(log) == 2 and log[-1]["train/loss"] == pytest.approx(log1[-1]["train/loss"], rel=1e-4)
    assert log[-1]["train/loss"] < log[0]["train/loss"]  # it trained


def test_a_run_killed_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    common = ["train", "--data", "mnist-5k", "--limit", "4000", "--epochs", "6", "--batch-size", "16"]
    common += ["--device", "cpu", "--quiet", "--patience", "10"]
    whole = _aekit(*common, "--out", str(tmp_path / "whole"), timeout=600)
    assert whole.returncode == 0, whole.stderr

    run = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aekit", *common, "--out", str(run)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.01)
    time.sleep(0.1)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    done = len(metrics.read_text().splitlines())
    assert 2 <= done < 6, "the run must be killed mid-way to test resuming"

    resumed = _aekit("train", "--resume", str(run), "--quiet", timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    a, b = _weights(tmp_path / "whole"), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4, 5, 6]


def test_early_stopping_state_survives_in_the_checkpoint(digits_small):
    from aekit.config import TrainConfig
    from aekit.training.trainer import Trainer

    stop = EarlyStopping(patience=3)
    model = aekit.build_model("dense", input_shape=(1, 28, 28), latent_dim=4)
    trainer = Trainer(model, TrainConfig(epochs=2, device="cpu"), [stop])
    trainer.fit(*digits_small.split(0.25, 0))
    state = trainer.state_dict()
    again = EarlyStopping(patience=3)
    Trainer(model, TrainConfig(epochs=2, device="cpu"), [again]).load_state_dict(state)
    assert again.best == stop.best and again.bad_epochs == stop.bad_epochs
    assert all(torch.equal(again.best_state[k], stop.best_state[k]) for k in stop.best_state)


def test_shards_read_as_one_data_set_and_splits_stay_on_disk(tmp_path):
    from aekit.data.dataset import Rows
    from aekit.errors import DataError

    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8) for n in (30, 50, 20)]
    for i, p in enumerate(parts):
        np.save(tmp_path / f"part{i}.npy", p)
        np.save(tmp_path / f"part{i}.labels.npy", np.full(len(p), i))
    data = aekit.load_dataset(f"shards:{tmp_path}")
    whole = np.concatenate(parts)
    assert len(data) == 100 and data.shape == (1, 8, 8) and data.y.tolist() == [0] * 30 + [1] * 50 + [2] * 20
    index = torch.from_numpy(rng.permutation(100)[:37])
    np.testing.assert_array_equal(data.raw(index).numpy(), whole[index.numpy()])
    train, val = data.split(0.2, seed=1)
    assert isinstance(train.x, Rows) and isinstance(val.x, Rows)  # views: nothing read yet
    np.testing.assert_array_equal(train.raw(torch.arange(len(train))).numpy(), whole[train.x.index])
    memmapped = aekit.load_dataset(str(tmp_path / "part1.npy"))
    assert isinstance(memmapped.split(0.5)[0].x, Rows)
    out = tmp_path / "run"
    argv = ["train", "--data", f"shards:{tmp_path}", "--epochs", "1", "--out", str(out), "--quiet"]
    assert _aekit(*argv, timeout=300).returncode == 0
    np.save(tmp_path / "part3.npy", np.zeros((5, 1, 9, 9), np.uint8))
    with pytest.raises(DataError, match="part3.npy: samples"):
        aekit.load_dataset(f"shards:{tmp_path}")
