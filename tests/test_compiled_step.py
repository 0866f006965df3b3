"""``compile_step``: the whole step as one compiled graph gives the normal step's numbers, keeps the
optimizer's state where checkpoints see it, resumes exactly, and falls back where it does not apply."""

from __future__ import annotations

import pytest
import torch

from aekit.config import TrainConfig, resolve
from aekit.data.batches import Batch, Batches
from aekit.models import build_model
from aekit.training import compiled_step
from aekit.training.trainer import Trainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:torch")


def vae(name="vae", **kw):
    torch.manual_seed(0)
    settings = {"name": name, "hidden": [32], "latent_dim": 4, **kw}
    config = resolve([{"model": settings}], input_shape=(1, 28, 28), num_classes=10)
    return build_model(name, config.model_config)


def config(epochs, **kw):
    return TrainConfig(epochs=epochs, batch_size=48, lr=1e-3, val_fraction=0, seed=0, device="cpu", **kw)


def fit(data, name="vae", epochs=2, model_kw=None, **kw):
    trainer = Trainer(vae(name, **(model_kw or {})), config(epochs, **kw))
    trainer.start = weights(trainer)
    trainer.fit(data)  # 256 samples: 5 compiled steps and a last batch of 16 on the normal step
    return trainer


def weights(trainer):
    return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])


def moved_apart(a, b) -> float:
    """|a's weights - b's| over |b's weights - their start|."""
    return float((weights(a) - weights(b)).norm() / (weights(b) - b.start).norm())


def test_float32_compiled_step_equals_the_normal_step(digits_small):
    plain = fit(digits_small)
    compiled = fit(digits_small, compile_step=True)
    assert isinstance(compiled._compiled, compiled_step.CompiledStep)  # it ran, no fallback
    assert compiled.step == plain.step == 12
    for a, b in zip(plain.history, compiled.history, strict=True):
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-4)
    assert torch.allclose(weights(compiled), weights(plain), atol=1e-4)
    assert moved_apart(compiled, plain) < 1e-3
    # Adam's state stays in the trainer's optimizer (checkpoints, resume), the same as the normal step's
    a = plain.optimizers["main"].state_dict()["state"]
    b = compiled.optimizers["main"].state_dict()["state"]
    for i in a:
        assert float(b[i]["step"]) == float(a[i]["step"]) == 12
        assert torch.allclose(b[i]["exp_avg_sq"], a[i]["exp_avg_sq"], rtol=1e-3, atol=1e-9)


def test_bf16_compiled_step_matches_autocast_with_the_warmup_ramp(digits_small):
    # vampprior: the KL warm-up reads the step counter (a tensor inside the graph), bf16 weights
    kw = {"model_kw": {"components": 4, "kl_warmup_steps": 8}, "cpu_bf16": True}
    plain = fit(digits_small, "vampprior", **kw)
    compiled = fit(digits_small, "vampprior", compile_step=True, **kw)
    assert isinstance(compiled._compiled, compiled_step.CompiledStep)
    assert int(compiled.model.steps) == int(plain.model.steps) == 12
    for a, b in zip(plain.history, compiled.history, strict=True):
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=2e-3)
        assert b["train/kl"] == pytest.approx(a["train/kl"], abs=0.05)  # nats; the KL is about 0.3 here
    # Adam moves a weight by about lr whatever its gradient's size, so weights whose gradient is near
    # zero may differ by a few lr: measured against how far training moved them
    assert moved_apart(compiled, plain) < 0.05
    assert all(p.dtype == torch.float32 for p in compiled.model.parameters())


def test_resume_after_compiled_steps_equals_uninterrupted(digits_small):
    full = fit(digits_small, epochs=3, compile_step=True)
    state = fit(digits_small, epochs=1, compile_step=True).state_dict()  # before vae() seeds the RNG
    resumed = Trainer(vae(), config(3, compile_step=True))
    resumed.load_state_dict(state)
    resumed.fit(digits_small)
    assert torch.equal(weights(resumed), weights(full))


@pytest.mark.parametrize("name", ["vae", "cvae"])  # cvae: the batch's labels are a graph input too
def test_direct_graph_calls_equal_the_calls_through_dynamo(digits_small, monkeypatch, name):
    direct = fit(digits_small, name, cpu_bf16=True, compile_step=True)
    assert direct._compiled.graph is not None  # steps after the first skipped dynamo
    backend = compiled_step.CompiledStep._backend

    def through_dynamo(self, gm, example_inputs):
        compiled = backend(self, gm, example_inputs)
        self.graph = None  # every step through dynamo's compiled code, as before the direct call
        return compiled

    monkeypatch.setattr(compiled_step.CompiledStep, "_backend", through_dynamo)
    dynamo = fit(digits_small, name, cpu_bf16=True, compile_step=True)
    assert dynamo._compiled.graph is None
    assert torch.equal(weights(direct), weights(dynamo))
    assert [h["train/loss"] for h in direct.history] == [h["train/loss"] for h in dynamo.history]


def test_a_batch_of_another_layout_takes_the_normal_step(digits_small):
    trainer = fit(digits_small, epochs=1, compile_step=True)
    step = trainer._compiled
    x, y = digits_small.take(torch.arange(48))
    strided = x.transpose(2, 3).contiguous().transpose(2, 3)  # the same values, other strides
    assert step(Batch(strided, y), 1e-3) is None  # the graph reads its input as laid out at the compile
    assert step(Batch(x.double(), y), 1e-3) is None
    assert step(Batch(x, y), 1e-3) is not None


def test_weights_changed_outside_the_step_reach_the_bf16_copy(digits_small):
    trainer = fit(digits_small, epochs=1, compile_step=True, cpu_bf16=True)
    step = trainer._compiled
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.mul_(0.5)  # e.g. weights loaded back into the model between steps
    step(next(iter(Batches(digits_small, 48))), 0.0)
    assert torch.equal(step.work, step.flat.to(torch.bfloat16))  # refreshed, then lr 0 left it


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"optimizer": "sgd"}, "optimizer sgd"),
        ({"grad_clip": 1.0}, "grad_clip"),
        ({"nan_policy": "skip"}, "nan_policy skip"),
    ],
)
def test_falls_back_to_the_normal_step_with_a_warning(digits_small, kw, why):
    with pytest.warns(UserWarning, match=f"compile_step: not used \\({why}"):
        trainer = fit(digits_small.subset(torch.arange(96)), epochs=1, compile_step=True, **kw)
    assert trainer._compiled is False and trainer.step == 2


def test_no_compiler_falls_back(digits_small, monkeypatch):
    monkeypatch.setattr(compiled_step.shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        trainer = fit(digits_small.subset(torch.arange(96)), epochs=1, compile_step=True)
    assert trainer._compiled is False and trainer.step == 2


def test_tcvae_pairwise_terms_stay_float32_under_bf16_autocast(digits_small, monkeypatch):
    # bfloat16 is 0.06-4 apart at the pairwise log-densities' -10 to -1000: the decomposition runs in
    # float32 (before, a bf16 compiled beta-TCVAE run lost 4 nats of NLL on one seed of three)
    from aekit.models import tcvae

    seen = []

    def spy(z, mu, logvar, log_w=None):
        seen.append({z.dtype, mu.dtype, logvar.dtype})
        return decomposition(z, mu, logvar, log_w)

    decomposition = tcvae.kl_decomposition
    monkeypatch.setattr(tcvae, "kl_decomposition", spy)
    model = vae("tcvae", mss_dataset_size=256).train()
    x = digits_small.take(torch.arange(64))[0]
    torch.manual_seed(1)
    exact = model.loss(Batch(x))
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = model.loss(Batch(x))
        assert model.posterior(x)[0].dtype == torch.bfloat16  # the network itself runs in bf16
    assert seen == [{torch.float32}, {torch.float32}]
    for k in ("mi", "tc", "dim_kl"):  # only the network's bf16 products differ
        assert float(terms[k]) == pytest.approx(float(exact[k]), rel=0.05, abs=1e-3)
