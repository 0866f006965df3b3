"""What is special to each model family, checked against what it claims."""

from __future__ import annotations

import math

import pytest
import torch

from aekit.config import resolve
from aekit.data.batches import Batch
from aekit.data.corrupt import corrupt
from aekit.models import build_model
from aekit.models.regularized import jacobian_penalty
from aekit.models.vae import kl_normal


def make(name, shape=(1, 28, 28), **kw):
    torch.manual_seed(0)
    config = resolve([{"model": {"name": name, **kw}}], input_shape=shape, num_classes=10)
    return build_model(name, config.model_config)


def train_steps(model, batch, steps, lr=3e-3):
    opts = {p: torch.optim.Adam(model.phase_parameters(p), lr=lr) for p in model.phases}
    model.train()
    for _ in range(steps):
        for phase, opt in opts.items():
            opt.zero_grad()
            model.loss(batch, phase)["loss"].backward()
            opt.step()
    return model


@pytest.fixture(scope="module")
def batch(digits_small):
    return Batch(*digits_small.take(torch.arange(128)))


# --- noise -------------------------------------------------------------------------------------


def test_noise_statistics_and_seeding():
    grey = torch.full((64, 1, 28, 28), 0.5)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    noisy = corrupt(grey, "gaussian", 0.1, g())
    assert abs(float((noisy - grey).std()) - 0.1) < 0.005 and torch.equal(
        noisy, corrupt(grey, "gaussian", 0.1, g())
    )
    sp = corrupt(grey, "salt_and_pepper", 0.2, g())
    zeros, ones = float((sp == 0).float().mean()), float((sp == 1).float().mean())
    assert abs(zeros - 0.1) < 0.01 and abs(ones - 0.1) < 0.01
    assert abs(float((corrupt(grey, "masking", 0.3, g()) == 0).float().mean()) - 0.3) < 0.01
    occluded = corrupt(torch.ones(4, 1, 20, 20), "occlusion", 0.25, g())
    assert all(int((img == 0).sum()) == 100 for img in occluded)  # one 10x10 square each
    blind = corrupt(grey, "gaussian", (0.0, 0.5), g())
    stds = (blind - grey).flatten(1).std(1)
    assert float(stds.max() - stds.min()) > 0.2  # each sample its own level
    mixture = corrupt(grey, "mixture", 0.3, g())
    assert mixture.shape == grey.shape and float(mixture.min()) >= 0 and float(mixture.max()) <= 1
    with pytest.raises(ValueError, match="unknown noise"):
        corrupt(grey, "pink", 0.1)
    with pytest.raises(ValueError, match="must lie in"):
        corrupt(grey, "gaussian", 1.5)


# --- regularised ---------------------------------------------------------------------------------


def test_denoising_beats_the_noisy_input(batch):
    model = train_steps(make("denoising", noise_level=0.3), batch, 300).eval()
    torch.manual_seed(5)
    noisy = corrupt(batch.x, "gaussian", 0.3)
    psnr = lambda a: 10 * math.log10(1 / float(((a - batch.x) ** 2).mean()))  # noqa: E731
    assert psnr(model.reconstruct(noisy)) > psnr(noisy) + 3
    assert model.reconstruct(noisy).shape == batch.x.shape


def test_sparse_codes_are_smaller(batch):
    sparse = train_steps(make("sparse", sparsity_weight=0.05), batch, 60).eval()
    plain = train_steps(make("sparse", sparsity_weight=0.0), batch, 60).eval()
    with torch.no_grad():
        assert float(sparse.encode(batch.x).abs().mean()) < 0.5 * float(plain.encode(batch.x).abs().mean())
    kl = make("sparse", penalty="kl", sparsity_weight=0.1)
    terms = kl.loss(batch)
    assert (
        float(terms["sparsity"]) > 0
        and 0 <= float(kl.encode(batch.x).min()) <= float(kl.encode(batch.x).max()) <= 1
    )


def test_contractive_penalty_equals_finite_differences():
    model = make("contractive", shape=(6,), hidden=(5,), latent_dim=3).double()
    x = torch.rand(4, 6, dtype=torch.float64)
    _, penalty = jacobian_penalty(model.encoder, x)
    eps = 1e-6
    fd = torch.zeros(4, dtype=torch.float64)
    with torch.no_grad():
        for i in range(6):
            step = torch.zeros(6, dtype=torch.float64)
            step[i] = eps
            column = (model.encoder(x + step) - model.encoder(x - step)) / (2 * eps)  # dz/dx_i
            fd += column.pow(2).sum(1)
    assert torch.allclose(penalty.detach(), fd, rtol=1e-3)
    torch.manual_seed(0)
    estimate = torch.stack(
        [jacobian_penalty(model.encoder, x, projections=1)[1].detach() for _ in range(4000)]
    )
    assert torch.allclose(estimate.mean(0), fd, rtol=0.05)  # the one-projection estimate is unbiased


# --- VAE family ----------------------------------------------------------------------------------


def test_kl_closed_form_matches_monte_carlo():
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.7]])
    closed = kl_normal(mu, logvar).sum()
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0))
    log_q = (-0.5 * ((z - mu) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(1)
    log_p = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(1)
    assert abs(float((log_q - log_p).mean()) - float(closed)) < 0.01
    expected = 0.5 * (0.25 + math.exp(0.2) - 1 - 0.2) + 0.5 * (1.0 + math.exp(-0.7) - 1 + 0.7)
    assert float(closed) == pytest.approx(expected)


def test_importance_weighted_nll_is_a_tighter_bound(batch):
    model = train_steps(make("vae"), batch, 60).eval()
    torch.manual_seed(0)
    elbos = torch.stack([model.loss(batch)["elbo"] for _ in range(20)]).mean()
    nll_1 = torch.stack([model.nll(batch.x, k=1).mean() for _ in range(20)]).mean()
    nll_50 = model.nll(batch.x, k=50).mean()
    assert float(nll_1) == pytest.approx(-float(elbos), rel=0.01)
    assert float(nll_50) < float(nll_1)


def test_beta_warmup_and_step_counter_survive_save_load(batch):
    model = make("vae", beta=4.0, kl_warmup_steps=10)
    assert model.beta_now() == 0.0
    train_steps(model, batch, 5)
    assert model.beta_now() == pytest.approx(2.0)
    clone = make("vae", beta=4.0, kl_warmup_steps=10)
    clone.load_state_dict(model.state_dict())
    assert int(clone.steps) == 5
    terms = model.eval().loss(batch)
    assert float(terms["loss"]) == pytest.approx(float(terms["rec"] + 2.0 * terms["kl"]), rel=1e-5)


def test_sampling_is_seeded_and_conditional():
    vae = make("vae")
    a = vae.sample(6, generator=torch.Generator().manual_seed(3))
    assert a.shape == (6, 1, 28, 28) and torch.equal(
        a, vae.sample(6, generator=torch.Generator().manual_seed(3))
    )
    cvae = make("cvae")
    with pytest.raises(ValueError, match="needs labels"):
        cvae.sample(2)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    zeros = cvae.sample(4, generator=g(), y=torch.zeros(4, dtype=torch.long))
    ones = cvae.sample(4, generator=g(), y=torch.ones(4, dtype=torch.long))
    assert not torch.allclose(zeros, ones)


# --- adversarial ---------------------------------------------------------------------------------


def test_aae_phases_split_the_parameters():
    model = make("aae")
    main, disc = map(set, (model.phase_parameters("main"), model.phase_parameters("disc")))
    assert main.isdisjoint(disc) and main | disc == set(model.parameters())


def test_aae_pushes_codes_towards_the_prior(batch):
    model = make("aae", latent_dim=4)
    torch.manual_seed(1)
    first = float(model.loss(batch, "disc")["acc"])
    train_steps(model, batch, 150, lr=1e-3)
    codes = model.eval().encode(batch.x)
    plain = (
        train_steps(make("aae", latent_dim=4, adversarial_weight=0.0), batch, 150, lr=1e-3)
        .eval()
        .encode(batch.x)
    )
    assert float(model.loss(batch, "disc")["acc"]) != first
    assert abs(float(codes.std()) - 1) < abs(float(plain.std()) - 1)


def test_aae_mixture_prior_components():
    model = make("aae", prior="mixture", n_components=4, component_std=0.01, radius=3.0)
    z = model.prior_sample(8, generator=torch.Generator().manual_seed(0), y=torch.arange(8) % 4)
    assert torch.allclose(
        z[:4, :2], torch.tensor([[3.0, 0.0], [0.0, 3.0], [-3.0, 0.0], [0.0, -3.0]]), atol=0.05
    )


# --- vector-quantised ----------------------------------------------------------------------------


def test_vq_quantises_to_codebook_rows_and_learns(batch):
    model = make("vqvae", latent_dim=8, code_dim=4, codebook_size=16)
    out = model(batch.x)
    rows = out.z.detach().reshape(-1, 4)
    assert all(any(torch.equal(r, c) for c in model.codebook.weight.detach()) for r in rows[:20])
    model.loss(batch)["loss"].backward()
    assert model.encoder[1][0].weight.grad.abs().sum() > 0  # straight through to the encoder
    before = model.codebook.weight.detach().clone()
    train_steps(model, batch, 10)
    assert not torch.equal(before, model.codebook.weight)
    p = float(model.loss(batch)["perplexity"])
    assert 1 <= p <= 16
    model.eval()
    assert torch.equal(model.decode_codes(model.codes(batch.x)), model.reconstruct(batch.x))


def test_vq_restarts_a_dead_code(batch):
    model = make("vqvae", latent_dim=8, code_dim=4, codebook_size=8, restart_every=3)
    with torch.no_grad():
        model.codebook.weight[5] = 1e6  # nobody's nearest
    model.train()
    restarted = sum(float(model.loss(batch)["restarted"]) for _ in range(3))
    assert restarted >= 1 and float(model.codebook.weight[5].abs().max()) < 1e3
