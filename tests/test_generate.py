"""Generation of images: samples, learned code priors, interpolation, the latent grid, the metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.apps import generate
from aekit.cli import main
from aekit.errors import ConfigError
from aekit.evaluation.density import load_mixture
from aekit.evaluation.generation import frechet_distance


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    for name, model, latent in (("cvae", "cvae", 2), ("dense", "dense", 6), ("vq", "vqvae", 8)):
        argv = ["train", "--model", model, "--data", "digits", "--epochs", "4", "--latent-dim", str(latent)]
        assert main([*argv, "--out", str(base / name), "--quiet"]) == 0
    return base


def test_samples_have_the_data_shape_and_repeat_with_the_seed(runs):
    digits = aekit.load_dataset("digits", "train")
    ink = float(digits.take(torch.arange(len(digits)))[0].mean())
    for name in ("cvae", "dense", "vq"):
        run = aekit.load(runs / name)
        a = generate.sample(run, 12, seed=3)
        assert a.shape == (12, 1, 8, 8) and np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
        assert abs(a.mean() - ink) < 0.05  # as much ink as the digits have (0.31), not noise (0.5) or blank
        np.testing.assert_array_equal(a, generate.sample(aekit.load(runs / name), 12, seed=3))
        assert not np.array_equal(a, generate.sample(run, 12, seed=4))
    # learned once, kept with the run: a mixture whose mean is the mean training code (EM keeps it)
    prior = load_mixture(runs / "dense" / generate.CODE_PRIOR)
    codes = aekit.load(runs / "dense").encode(aekit.load_dataset("digits", "train"))
    assert prior.means_.shape == (10, 6) and prior.weights_.sum() == pytest.approx(1)
    np.testing.assert_allclose(prior.weights_ @ prior.means_, codes.mean(0), atol=1e-3 * codes.std())
    assert not (runs / "cvae" / generate.CODE_PRIOR).exists()  # the VAE family has its own prior


def test_vq_samples_decode_codebook_rows(runs):
    run = aekit.load(runs / "vq")
    gmm = generate.code_prior(run)
    z = torch.from_numpy(gmm.sample(5)[0]).float()
    snapped = run.model.quantize(z)[0]
    np.testing.assert_allclose(
        generate.decode_codes(run, z), run.model.decode(snapped).detach().numpy(), atol=1e-6
    )


def test_labels_are_checked_and_steer_conditional_samples(runs):
    run = aekit.load(runs / "cvae")
    assert not np.array_equal(generate.sample(run, 4, label="1"), generate.sample(run, 4, label="7"))
    with pytest.raises(ConfigError, match="no class 'eleven'"):
        generate.sample(run, 4, label="eleven")
    with pytest.raises(ConfigError, match="needs a conditional model"):
        generate.sample(aekit.load(runs / "dense"), 4, label="1")


def test_interpolation_starts_and_ends_at_the_inputs_codes(runs):
    run = aekit.load(runs / "dense")
    data = aekit.load_dataset("digits", "test", limit=2)
    a, b = data.subset([0]), data.subset([1])
    walk = generate.interpolate(run, a, b, steps=5)
    assert walk.shape == (5, 1, 8, 8)
    np.testing.assert_allclose(walk[0], run.reconstruct(a)[0], atol=1e-5)
    np.testing.assert_allclose(walk[-1], run.reconstruct(b)[0], atol=1e-5)
    with pytest.raises(ConfigError, match="at least 2"):
        generate.interpolate(run, a, b, steps=1)


def test_the_latent_grid_needs_two_dimensions(runs):
    grid = generate.latent_grid(aekit.load(runs / "cvae"), per_side=6, label="2")
    assert grid.shape == (36, 1, 8, 8)
    with pytest.raises(ConfigError, match="2-D latent space"):
        generate.latent_grid(aekit.load(runs / "dense"))


def test_frechet_distance_is_zero_for_the_same_set_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 5))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # two Gaussians with the same covariance: the distance is the squared distance of the means
    assert frechet_distance(a, a + 2.0) == pytest.approx(5 * 4.0, rel=1e-6)
    b = rng.normal(size=(2000, 5)) * 3
    assert frechet_distance(a, b) > 10


def test_cli_generate(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AEKIT_CACHE", str(tmp_path / "cache"))  # the metric's classifier is cached there
    assert (
        main(["generate", str(runs / "cvae"), "-n", "16", "-o", str(tmp_path / "s.png"), "--label", "3"]) == 0
    )
    with Image.open(tmp_path / "s.png") as im:  # 16 samples, 8 to a row: a grid 4 times as wide as high
        assert im.format == "PNG" and im.size[0] / im.size[1] == pytest.approx(4, rel=0.05)
    assert (
        main(["generate", str(runs / "cvae"), "--grid", "--per-side", "5", "-o", str(tmp_path / "g.npy")])
        == 0
    )
    g = np.load(tmp_path / "g.npy")
    assert g.shape == (25, 1, 8, 8) and g.dtype == np.uint8
    argv = ["generate", str(runs / "dense"), "-n", "300", "-o", str(tmp_path / "m.png"), "--metric"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "not the Inception FID" in out and "label entropy" in out
    assert list((tmp_path / "cache" / "classifiers").glob("digits-1x8x8-10.safetensors"))
    assert main(["generate", str(runs / "dense"), "-o", str(tmp_path / "m.png")]) == 2  # exists: kept
    assert main(["generate", str(runs / "dense"), "--grid", "-o", str(tmp_path / "x.png")]) == 2
    assert "2-D latent space" in capsys.readouterr().err


def test_attribute_vector_is_the_class_mean_difference_and_moves_codes(runs):
    run = aekit.load(runs / "dense")
    data = aekit.load_dataset("digits", "train", limit=300)
    vector = generate.attribute_vector(run, "3", data)
    codes = torch.from_numpy(run.encode(data))
    threes = data.y == 3
    torch.testing.assert_close(vector, codes[threes].mean(0) - codes[~threes].mean(0))
    start = aekit.load_dataset("digits", "test", limit=3)
    grid = generate.attribute_grid(run, "3", 1.5, rows=3, columns=4, data=data, start=start)
    assert grid.shape == (12, 1, 8, 8)
    np.testing.assert_allclose(grid[::4], run.reconstruct(start), atol=1e-5)  # strength 0: itself
    with torch.no_grad():
        moved = run.model.decode(torch.from_numpy(run.encode(start)) + 1.5 * vector).numpy()
    np.testing.assert_allclose(grid[3::4], moved, atol=1e-5)  # the last column: the full step
    with pytest.raises(ConfigError, match="no class 'eleven'"):
        generate.attribute_vector(run, "eleven", data)
    with pytest.raises(ConfigError, match="unconditional"):
        generate.attribute_grid(aekit.load(runs / "cvae"), "3")


def test_cli_attribute_grid(runs, tmp_path):
    argv = ["generate", str(runs / "dense"), "--attribute", "7", "--strength", "2", "-n", "3"]
    assert main([*argv, "--steps", "5", "-o", str(tmp_path / "a.npy")]) == 0
    assert np.load(tmp_path / "a.npy").shape == (15, 1, 8, 8)
