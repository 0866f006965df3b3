"""Denoising: noise statistics, the Denoiser API, and ``aekit denoise``."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.apps.denoise import Denoiser, add_noise, parse_noise, quality
from aekit.cli import main
from aekit.data.corrupt import corrupt
from aekit.errors import DataError


@pytest.fixture(scope="module")
def denoiser_run(tmp_path_factory, digits_small):
    """A dense denoising autoencoder trained briefly on 2000 real digits, gaussian sigma 0.3."""
    out = tmp_path_factory.mktemp("runs") / "den"
    argv = [
        "train",
        "--data",
        "mnist-5k",
        "--limit",
        "2000",
        "--epochs",
        "8",
        "--batch-size",
        "16",
        "--lr",
        "0.003",
    ]
    argv += ["--noise", "gaussian=0.3", "--latent-dim", "64", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    return out


def test_gaussian_noise_has_the_stated_standard_deviation():
    grey = torch.full((200, 1, 28, 28), 0.5)  # far from the clip at 0 and 1 for sigma 0.1
    g = torch.Generator().manual_seed(0)
    diff = corrupt(grey, "gaussian", 0.1, g) - grey
    assert abs(float(diff.mean())) < 2e-3
    assert abs(float(diff.std()) - 0.1) < 2e-3


def test_salt_and_pepper_sets_the_rate_half_each():
    grey = torch.full((200, 1, 28, 28), 0.5)
    noisy = corrupt(grey, "salt_and_pepper", 0.1, torch.Generator().manual_seed(1))
    assert abs(float((noisy == 0).float().mean()) - 0.05) < 3e-3
    assert abs(float((noisy == 1).float().mean()) - 0.05) < 3e-3
    assert float((noisy == 0.5).float().mean()) == pytest.approx(0.9, abs=5e-3)


def test_blind_levels_vary_per_sample_within_the_range():
    grey = torch.full((400, 1, 16, 16), 0.5)
    noisy = corrupt(grey, "gaussian", (0.0, 0.2), torch.Generator().manual_seed(2))
    stds = (noisy - grey).flatten(1).std(1)
    assert float(stds.min()) < 0.03 and 0.17 < float(stds.max()) < 0.22


def test_parse_noise():
    assert parse_noise("gaussian=0.3") == ("gaussian", 0.3)
    assert parse_noise("salt_and_pepper=0.05,0.2") == ("salt_and_pepper", (0.05, 0.2))
    for bad in ("gaussian", "gaussian=loud", "gaussian=1.5", "gaussian=0.1,0.2,0.3"):
        with pytest.raises(DataError, match="KIND=LEVEL"):
            parse_noise(bad)


def test_a_briefly_trained_denoiser_beats_the_noisy_input(denoiser_run, digits_small):
    den = Denoiser.load(denoiser_run)
    assert den.noise == "gaussian 0.3"
    noisy = add_noise(digits_small, "gaussian", 0.3, seed=5)
    before = quality(noisy.take(torch.arange(len(noisy)))[0].numpy(), digits_small)
    after = quality(den(noisy), digits_small)
    assert after["psnr"] > before["psnr"] + 1
    assert after["mse"] < before["mse"]


def test_shapes_and_ranges_are_preserved(denoiser_run):
    den = aekit.Denoiser.load(denoiser_run)
    rng = np.random.default_rng(0)
    for shape in ((7, 28, 28), (7, 1, 28, 28), (7, 784)):
        out = den(rng.random(shape).astype(np.float32), batch_size=3)
        assert out.shape == shape and out.dtype == np.float32
        assert out.min() >= 0 and out.max() <= 1
    pixels = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)  # uint8 is read as pixels 0-255
    assert den(pixels).shape == (5, 28, 28)
    with pytest.raises(DataError, match="do not fit"):
        den(np.zeros((3, 8, 8), np.float32))
    nan = np.zeros((2, 28, 28), np.float32)
    nan[1, 3, 3] = np.nan
    with pytest.raises(DataError, match="sample 1 holds NaN"):
        den(nan)


def test_cli_denoise_writes_outputs_and_reports_quality(denoiser_run, digits_small, tmp_path, capsys):
    clean = digits_small.take(torch.arange(20))[0][:, 0].numpy()
    np.save(tmp_path / "clean.npy", (clean * 255).round().astype(np.uint8))
    out, fig = tmp_path / "den.npy", tmp_path / "fig.png"
    argv = ["denoise", str(denoiser_run), str(tmp_path / "clean.npy"), "--add-noise", "gaussian=0.3"]
    assert main([*argv, "-o", str(out), "--figure", str(fig), "--batch-size", "7"]) == 0
    text = capsys.readouterr().out
    assert "denoised 20 samples" in text and "gaussian 0.3" in text
    psnr = re.search(r"PSNR \(dB\)\s+noisy\s+([\d.]+)\s+denoised\s+([\d.]+)", text)
    assert float(psnr[2]) > float(psnr[1])  # denoised above noisy
    written = np.load(out)
    assert written.shape == (20, 1, 28, 28) and written.dtype == np.uint8  # the input's own dtype
    assert Image.open(fig).size[1] > 200  # three rows: noisy, denoised, clean

    # noisy files in and a folder of PNGs out
    noisy = add_noise(digits_small.subset(torch.arange(4)), "gaussian", 0.3)
    np.save(tmp_path / "noisy.npy", noisy.take(torch.arange(4))[0].numpy())
    assert (
        main(["denoise", str(denoiser_run), str(tmp_path / "noisy.npy"), "-o", str(tmp_path / "pngs")]) == 0
    )
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 4


def test_cli_denoise_refuses_bad_input_without_touching_outputs(denoiser_run, tmp_path, capsys):
    out = tmp_path / "den.npy"
    out.write_bytes(b"keep me")
    np.save(tmp_path / "x.npy", np.zeros((3, 28, 28), np.float32))
    assert main(["denoise", str(denoiser_run), str(tmp_path / "x.npy"), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    np.save(tmp_path / "small.npy", np.zeros((3, 8, 8), np.float32))
    assert (
        main(["denoise", str(denoiser_run), str(tmp_path / "small.npy"), "-o", str(tmp_path / "o.npy")]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "small.npy" in err and "do not fit" in err
    assert not (tmp_path / "o.npy").exists()
    argv = ["denoise", str(denoiser_run), str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.npy")]
    assert main([*argv, "--add-noise", "gaussian=2"]) == 2
    assert "KIND=LEVEL" in capsys.readouterr().err
