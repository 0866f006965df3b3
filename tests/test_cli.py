"""The CLI in-process: each command's output, and bad input as one line with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.cli import main
from aekit.data.idx import read_idx, write_idx


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "seed"
    argv = [
        "train",
        "--preset",
        "seed",
        "--data",
        "mnist-5k",
        "--limit",
        "1000",
        "--epochs",
        "4",
        "--lr",
        "0.005",
    ]
    code = main([*argv, "--out", str(out), "--quiet"])
    assert code == 0
    return out


def test_train_prints_epoch_lines(tmp_path, capsys):
    out = tmp_path / "r"
    assert (
        main(
            [
                "train",
                "--data",
                "digits",
                "--epochs",
                "2",
                "--latent-dim",
                "4",
                "--hidden",
                "32",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "epoch 1/2" in text and "epoch 2/2" in text and "val loss" in text
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["latent_dim"] == 4 and config["model"]["hidden"] == [32]
    assert config["model"]["input_shape"] == [1, 8, 8]


def test_precedence_defaults_preset_file_flags(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nepochs = 1\nlr = 0.01\n[model]\nlatent_dim = 12\n")
    out = tmp_path / "r"
    argv = [
        "train",
        "--preset",
        "seed",
        "--config",
        str(cfg),
        "--lr",
        "0.002",
        "--data",
        "digits",
        "--limit",
        "100",
    ]
    assert main([*argv, "--set", "model.loss=bce", "--out", str(out), "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["epochs"] == 1  # file over default
    assert config["train"]["lr"] == 0.002  # flag over file
    assert config["model"]["latent_dim"] == 12  # file over preset
    assert config["model"]["latent_activation"] == "relu"  # preset over default
    assert config["model"]["loss"] == "bce"  # --set


def test_evaluate_prints_metrics(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--limit", "100", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["used"] == "mnist-5k (test split, a random subset of 100 samples)"
    run, data = aekit.load(run_dir), aekit.load_dataset("mnist-5k", "test", limit=100)
    x, x_hat = data.take(torch.arange(100))[0].numpy(), run.reconstruct(data)
    assert metrics["n"] == 100 and metrics["mse"] == pytest.approx(((x - x_hat) ** 2).mean(), rel=1e-5)
    assert metrics["psnr"] >= 10 * np.log10(1 / metrics["mse"])  # a mean of PSNRs: at least the mean MSE's
    assert metrics["ssim"] == pytest.approx(run.evaluate(data)["ssim"], rel=1e-6)
    assert main(["evaluate", str(run_dir), "--limit", "100"]) == 0
    text = capsys.readouterr().out
    assert f"on mnist-5k (test split, a random subset of 100 samples)\n  mse   {metrics['mse']:.5f}" in text


def test_reconstruct_npy_idx_and_image_folder(run_dir, tmp_path):
    x = aekit.load_dataset("mnist-5k", "test", limit=12).x.numpy()[:, 0]  # (12, 28, 28) uint8
    np.save(tmp_path / "in.npy", x)
    write_idx(tmp_path / "in-images-idx3-ubyte.gz", x)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(x[:3]):
        Image.fromarray(image).save(folder / f"digit{i}.png")
    assert main(["reconstruct", str(run_dir), str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy")]) == 0
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (12, 1, 28, 28) and out.dtype == np.uint8
    assert np.abs(out[:, 0].astype(float) - x).mean() < 60  # a reconstruction, not noise
    assert (
        main(
            [
                "reconstruct",
                str(run_dir),
                str(tmp_path / "in-images-idx3-ubyte.gz"),
                "-o",
                str(tmp_path / "out-idx3-ubyte"),
            ]
        )
        == 0
    )
    assert np.array_equal(read_idx(tmp_path / "out-idx3-ubyte"), out[:, 0])
    assert main(["reconstruct", str(run_dir), str(folder), "-o", str(tmp_path / "recon")]) == 0
    assert sorted(p.name for p in (tmp_path / "recon").iterdir()) == [
        "digit0.png",
        "digit1.png",
        "digit2.png",
    ]
    assert main(["reconstruct", str(run_dir), str(folder), "-o", str(tmp_path / "grid.png")]) == 0
    assert Image.open(tmp_path / "grid.png").size[0] > 100


def test_whole_image_flags_on_a_fixed_size_run_say_they_do_not_apply(run_dir, tmp_path, capsys):
    x = aekit.load_dataset("mnist-5k", "test", limit=4).x.numpy()[:, 0]
    np.save(tmp_path / "in.npy", x)
    argv = ["reconstruct", str(run_dir), str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy")]
    assert main([*argv, "--precision", "bf16", "--tile", "64"]) == 0
    err = capsys.readouterr().err
    assert "--tile and --precision bf16 apply to fully convolutional runs" in err
    assert np.load(tmp_path / "out.npy").shape == (4, 1, 28, 28)
    assert main([*argv, "--force"]) == 0 and "note:" not in capsys.readouterr().err


def test_datasets_and_models_list(capsys):
    assert main(["datasets"]) == 0
    text = capsys.readouterr().out
    for name in ("fashion-mnist", "mnist-5k", "digits"):
        assert name in text
    assert "here" in text
    assert main(["models"]) == 0
    assert "dense" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--data", "no-such-set", "--out", "{tmp}/a"], "unknown dataset 'no-such-set'"),
        (["train", "--data", "{tmp}/empty", "--out", "{tmp}/a"], "no images"),
        (["train", "--data", "{tmp}/bad.csv", "--out", "{tmp}/a"], "row 3, column 'b' holds text 'x'"),
        (["train", "--data", "{tmp}/nan.csv", "--out", "{tmp}/a"], "holds nan"),
        (["train", "--data", "{tmp}/trunc-idx3-ubyte", "--out", "{tmp}/a"], "truncated"),
        (["train", "--data", "{tmp}/magic-idx3-ubyte", "--out", "{tmp}/a"], "bad magic number"),
        (["train", "--data", "{tmp}/mixed", "--out", "{tmp}/a"], "b.png: image is 5x4, but a.png is 4x4"),
        (
            ["train", "--data", "digits", "--set", "model.nope=1", "--out", "{tmp}/a"],
            "unknown setting(s) nope",
        ),
        (["train", "--data", "digits", "--out", "{tmp}/existing"], "already exists"),
        (["evaluate", "{tmp}/missing-run"], "not a run directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,x\n")
    (tmp_path / "nan.csv").write_text("a,b\n1,2\n3,nan\n")
    write_idx(tmp_path / "ok-idx3-ubyte", np.zeros((4, 5, 5), np.uint8))
    (tmp_path / "trunc-idx3-ubyte").write_bytes((tmp_path / "ok-idx3-ubyte").read_bytes()[:-7])
    (tmp_path / "magic-idx3-ubyte").write_bytes(b"\x01" + (tmp_path / "ok-idx3-ubyte").read_bytes()[1:])
    (tmp_path / "mixed").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "mixed" / "a.png")
    Image.new("L", (5, 4)).save(tmp_path / "mixed" / "b.png")
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "keep.txt").write_text("precious")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("aekit: error:") and len(err.splitlines()) == 1 and message in err
    assert (tmp_path / "existing" / "keep.txt").read_text() == "precious"
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_reconstruct_refuses_to_overwrite(run_dir, tmp_path, capsys):
    np.save(tmp_path / "in.npy", np.zeros((2, 28, 28), np.uint8))
    (tmp_path / "out.npy").write_bytes(b"old")
    assert main(["reconstruct", str(run_dir), str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy")]) == 2
    assert (tmp_path / "out.npy").read_bytes() == b"old"
    assert "already exists" in capsys.readouterr().err


def test_reconstruct_wrong_shape_is_clear(run_dir, tmp_path, capsys):
    np.save(tmp_path / "in.npy", np.zeros((2, 32, 32), np.uint8))
    assert main(["reconstruct", str(run_dir), str(tmp_path / "in.npy"), "-o", str(tmp_path / "o.npy")]) == 2
    assert "do not fit this model" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name", sorted(n for n, spec in aekit.MODELS.items() if spec.cls.data_kind == "values")
)
def test_every_model_trains_from_the_cli(tmp_path, name):
    out = tmp_path / name
    assert (
        main(
            [
                "train",
                "--model",
                name,
                "--data",
                "digits",
                "--limit",
                "200",
                "--epochs",
                "1",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "reconstructions.png", "loss_curves.png"} <= files
    assert ("samples.png" in files) == aekit.MODELS[name].cls.generative
    assert aekit.load(out).model.model_name == name


def test_models_lists_every_model(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(aekit.MODELS)
