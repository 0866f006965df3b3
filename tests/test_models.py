"""The model contract, checked for every registered model."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from aekit.config import PRESETS, preset_layer, resolve
from aekit.data.batches import Batch
from aekit.errors import ConfigError
from aekit.models import MODELS, build_model
from aekit.training.checkpoint import load_run, save_weights, write_config

SHAPES = [(1, 28, 28), (3, 16, 12), (1, 8, 8)]
# models of images and tables; the music model (token sequences) has its contract in test_music.py
VALUE_MODELS = sorted(n for n, spec in MODELS.items() if spec.cls.data_kind == "values")


def make(name: str, shape: tuple[int, ...]):
    """A model for data of ``shape`` with 10 classes (what config.resolve fills from the data)."""
    torch.manual_seed(0)
    config = resolve([{"model": {"name": name}}], input_shape=shape, num_classes=10)
    return build_model(name, config.model_config)


@pytest.mark.parametrize("name", VALUE_MODELS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_shapes_and_range(name, shape):
    model = make(name, shape)
    x, y = torch.rand(5, *shape), torch.arange(5)
    with torch.no_grad():
        out = model(x, y)
    assert out.x_hat.shape == x.shape
    assert model.encode(x, y).shape == out.z.shape
    if getattr(model, "spatial_code", False):  # a (B, C', H', W') code of the padded image
        assert out.z.ndim == 4 and len(out.z) == 5
        assert model.decode(out.z, y)[..., : shape[1], : shape[2]].shape == x.shape
    else:
        assert out.z.shape == (5, model.config.latent_dim)
        assert model.decode(out.z, y).shape == x.shape
    assert float(out.x_hat.min()) >= 0 and float(out.x_hat.max()) <= 1  # sigmoid output


@pytest.mark.parametrize("name", VALUE_MODELS)
def test_loss_terms_finite_and_backward(name):
    model = make(name, (1, 28, 28))
    terms = model.loss(Batch(torch.rand(8, 1, 28, 28), torch.arange(8)), model.phases[0])
    assert "loss" in terms and all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    grads = [p.grad for p in model.phase_parameters(model.phases[0])]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", VALUE_MODELS)
def test_loss_falls_on_real_digits(name, digits_small):
    model = make(name, (1, 28, 28))
    batch = Batch(*digits_small.take(torch.arange(128)))
    opts = {p: torch.optim.Adam(model.phase_parameters(p), lr=3e-3) for p in model.phases}
    torch.manual_seed(0)
    first = float(model.loss(batch)["mse"])
    # the mean-and-scale hyperprior starts slower (mse 0.098 -> 0.081 after 40 steps, 0.036 after 80)
    for _ in range(80 if name == "hyperprior" else 40):
        for phase, opt in opts.items():
            opt.zero_grad()
            model.loss(batch, phase)["loss"].backward()
            opt.step()
    torch.manual_seed(0)
    assert float(model.loss(batch)["mse"]) < 0.7 * first  # every model reports its reconstruction "mse"


@pytest.mark.parametrize("name", VALUE_MODELS)
def test_save_load_gives_identical_outputs(name, tmp_path):
    config = resolve([{"model": {"name": name}}], input_shape=(1, 28, 28), num_classes=10)
    model = make(name, (1, 28, 28)).eval()
    write_config(tmp_path, config, {"shape": [1, 28, 28]})
    save_weights(tmp_path, model)
    _, _, loaded = load_run(tmp_path)
    x, y = torch.rand(4, 1, 28, 28), torch.arange(4)
    assert torch.equal(model.reconstruct(x, y), loaded.reconstruct(x, y))
    assert dataclasses.asdict(loaded.config) == dataclasses.asdict(model.config)


def test_seed_preset_is_the_classic_model():
    config = resolve([preset_layer("seed")], input_shape=(1, 28, 28))
    model = build_model(config.model, config.model_config)
    layers = [
        type(m).__name__ + (str(tuple(m.weight.shape[::-1])) if hasattr(m, "weight") else "")
        for m in model.modules()
    ]
    linear_relu = [name for name in layers if name.startswith(("Linear", "ReLU", "Sigmoid"))]
    assert linear_relu == [
        "Linear(784, 128)", "ReLU", "Linear(128, 64)", "ReLU", "Linear(64, 32)", "ReLU",
        "Linear(32, 64)", "ReLU", "Linear(64, 128)", "ReLU", "Linear(128, 784)", "Sigmoid",
    ]  # fmt: skip
    assert config.train.lr == 1e-3 and config.train.optimizer == "adam" and config.model_config.loss == "mse"
    assert "seed" in PRESETS


def test_unknown_model_and_setting_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        build_model("nope")
    with pytest.raises(ConfigError, match="latent_size"):
        build_model("dense", latent_size=3)
    with pytest.raises(ConfigError, match="latent_dim"):
        build_model("dense", {"latent_dim": "many"})
