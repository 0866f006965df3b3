"""IWAE, VampPrior and beta-TCVAE: each objective against a closed form or a known bound."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from aekit.config import resolve
from aekit.data.batches import Batch
from aekit.errors import ConfigError
from aekit.models import build_model
from aekit.models.iwae import iw_bound
from aekit.models.tcvae import kl_decomposition, stratified_log_weights
from aekit.models.vampprior import log_normal


def make(name, shape=(1, 28, 28), **kw):
    torch.manual_seed(0)
    config = resolve([{"model": {"name": name, **kw}}], input_shape=shape, num_classes=10)
    return build_model(name, config.model_config)


@pytest.fixture(scope="module")
def batch(digits_small):
    return Batch(*digits_small.take(torch.arange(64)))


def test_iw_bound_is_log_mean_exp():
    log_w = torch.tensor([[0.0, -1.0], [math.log(3.0), -1.0]])  # (K=2, B=2)
    assert iw_bound(log_w).tolist() == pytest.approx([math.log(2.0), -1.0])


def _trained(name, batch, steps=40, **kw):
    model = make(name, hidden=(64,), latent_dim=8, **kw)  # small: a few seconds even on a busy machine
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        model.loss(batch)["loss"].backward()
        opt.step()
    return model.eval()


def _iw_bounds(model, x) -> list[float]:
    """The importance-weighted bound at K = 1, 4, 16 (each the mean of 8 draws, seeded)."""
    torch.manual_seed(0)
    with torch.no_grad():
        return [
            float(torch.stack([iw_bound(model.log_weights(x, k=k)).mean() for _ in range(8)]).mean())
            for k in (1, 4, 16)
        ]


def test_iwae_bound_grows_with_the_number_of_samples(batch):
    model = _trained("iwae", batch, iw_samples=3)
    x = batch.x[:32]
    bounds = _iw_bounds(model, x)
    assert bounds == sorted(bounds) and bounds[-1] - bounds[0] > 0.5  # monotone, and not by noise alone
    # K = 1 is the ELBO: the same mean as the VAE's closed-form-KL ELBO, up to Monte-Carlo noise
    with torch.no_grad():
        elbo = float(torch.stack([model.loss(Batch(x, None))["elbo"] for _ in range(8)]).mean())
    assert bounds[0] == pytest.approx(elbo, rel=0.03)


def test_iwae_trains_on_its_bound(batch):
    model = make("iwae", iw_samples=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        terms = model.loss(batch)
        first = first if first is not None else float(terms["iw_bound"])
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    assert float(model.loss(batch)["iw_bound"]) > first + 50  # nats per image


@pytest.mark.parametrize("pseudo", ["free", "linear"])
def test_vampprior_density_integrates_to_one(pseudo):
    model = make(
        "vampprior", shape=(6,), hidden=(8,), latent_dim=2, components=7, pseudo_inputs=pseudo
    ).eval()
    with torch.no_grad():  # untrained pseudo-inputs: component scales of order one
        axis = torch.linspace(-12, 12, 481)
        gx, gy = torch.meshgrid(axis, axis, indexing="ij")
        z = torch.stack([gx.flatten(), gy.flatten()], 1)
        mass = float(model.log_prior(z).exp().sum()) * float(axis[1] - axis[0]) ** 2
    assert mass == pytest.approx(1.0, abs=1e-3)


def test_vampprior_samples_follow_its_density():
    model = make("vampprior", shape=(6,), hidden=(8,), latent_dim=2, components=3).eval()
    with torch.no_grad():
        z = model.prior_sample(20000, torch.Generator().manual_seed(0))
        mu, logvar = model.components()
        # the mixture's mean is the mean of the component means
        assert torch.allclose(z.mean(0), mu.mean(0), atol=0.05)
        # E_p[log p(z)] (minus the entropy) from samples equals the grid integral of p log p
        axis = torch.linspace(-12, 12, 481)
        g = torch.stack([t.flatten() for t in torch.meshgrid(axis, axis, indexing="ij")], 1)
        lp = model.log_prior(g)
        integral = float((lp.exp() * lp).sum()) * float(axis[1] - axis[0]) ** 2
        assert float(model.log_prior(z).mean()) == pytest.approx(integral, abs=0.03)


def test_vampprior_kl_term_is_log_q_minus_log_prior(batch):
    model = make("vampprior", components=5).eval()
    with torch.no_grad():
        mu, logvar = model.posterior(batch.x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        expected = log_normal(z, mu, logvar) - model.log_prior(z)
        assert torch.allclose(model.kl_term(mu, logvar, z), expected)
        assert torch.isfinite(model.nll(batch.x[:8], k=5)).all()


def test_vampprior_linear_pseudo_inputs_are_pythaes():
    """``linear``: u_k = hardtanh(W e_k + b) of a Linear(K -> D) at PyTorch's default initialisation."""
    model = make(
        "vampprior", shape=(1, 4, 4), hidden=(8,), latent_dim=2, components=5, pseudo_inputs="linear"
    )
    net = model.pseudo_net
    expected = torch.nn.functional.hardtanh(net(torch.eye(5)), 0.0, 1.0).view(5, 1, 4, 4).detach()
    assert torch.allclose(model.pseudo_inputs(), expected)
    bound = 2 / math.sqrt(5)  # |W e_k + b| <= 2 / sqrt(K): about half start clipped at 0
    assert float(expected.max()) <= bound and 0.2 < float((expected == 0).float().mean()) < 0.8
    assert {"pseudo_net.weight", "pseudo_net.bias"} <= set(
        model.state_dict()
    ) and "pseudo" not in model.state_dict()
    with pytest.raises(ConfigError, match="pseudo_inputs"):
        make("vampprior", pseudo_inputs="conv")


def test_vampprior_run_saved_before_pseudo_inputs_existed_loads_the_same(tmp_path, batch):
    """A config.json without ``pseudo_inputs`` (and weights with the free ``pseudo``) is a free run,
    and the warm-up it recorded (0 then, 1000 steps by default now) is kept, so a resume trains on alike."""
    import json

    from aekit.training.checkpoint import load_run, save_weights, write_config

    config = resolve(
        [
            {
                "model": {
                    "name": "vampprior",
                    "hidden": [16],
                    "latent_dim": 4,
                    "components": 3,
                    "pseudo_inputs": "free",
                    "kl_warmup_steps": 0,
                }
            }
        ],
        input_shape=(1, 28, 28),
    )
    torch.manual_seed(1)
    model = build_model("vampprior", config.model_config).eval()
    write_config(tmp_path, config, {"shape": [1, 28, 28]})
    save_weights(tmp_path, model)
    raw = json.loads((tmp_path / "config.json").read_text())
    del raw["model"]["pseudo_inputs"]  # as written before the field existed
    (tmp_path / "config.json").write_text(json.dumps(raw))
    loaded_config, _, loaded = load_run(tmp_path)
    assert loaded_config.model_config.pseudo_inputs == "free"
    assert loaded_config.model_config.kl_warmup_steps == 0 and loaded.beta_now() == 1.0
    torch.manual_seed(0)
    expected = model.nll(batch.x[:8], k=4)
    torch.manual_seed(0)
    assert torch.equal(loaded.nll(batch.x[:8], k=4), expected)


def _factorial(values, dims: int, sigma: float):
    """Posteriors at every combination of the factor values: independent factors by construction."""
    mu = torch.tensor(list(itertools.product(values, repeat=dims)), dtype=torch.float64)
    logvar = torch.full_like(mu, 2 * math.log(sigma))
    z = mu + sigma * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0), dtype=mu.dtype)
    return z, mu, logvar


def test_total_correlation_is_zero_for_independent_factors():
    z, mu, logvar = _factorial([-2.0, -0.5, 0.0, 1.0, 2.5], dims=3, sigma=0.3)
    parts = kl_decomposition(z, mu, logvar)
    assert parts["tc"].abs().max() < 1e-9  # exactly a product: q(z) = prod_d q(z_d) at every z
    total = sum(parts.values())
    log_q = log_normal(z, mu, logvar)
    log_p = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
    assert torch.allclose(total, log_q - log_p)


def test_total_correlation_is_positive_for_dependent_factors():
    z, mu, logvar = _factorial([-2.0, -0.5, 0.0, 1.0, 2.5], dims=1, sigma=0.3)
    mu2 = torch.cat([mu, mu], 1)  # the second dimension copies the first
    z2 = mu2 + 0.3 * torch.randn(mu2.shape, generator=torch.Generator().manual_seed(1), dtype=mu2.dtype)
    tc = float(kl_decomposition(z2, mu2, torch.cat([logvar, logvar], 1))["tc"].mean())
    assert 0.5 * math.log(5) < tc < math.log(5) + 0.1  # up to log 5 nats: five well-separated values


def test_stratified_weights_follow_the_paper():
    w = stratified_log_weights(5, 100).exp()
    assert torch.allclose(w.sum(1), torch.ones(5))  # each row a distribution over the batch
    assert torch.allclose(w.diagonal(), torch.full((5,), 0.01))  # the own sample: 1/N
    assert float(w[4, 0]) == pytest.approx(96 / 400)  # the next one, cyclically: (N - M + 1) / (N (M - 1))
    assert float(w[0, 2]) == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="batch"):
        stratified_log_weights(1, 100)


def test_kl_decomposition_sums_to_the_kl_whatever_the_weights():
    z, mu, logvar = _factorial([-2.0, -0.5, 1.0], dims=2, sigma=0.4)  # 9 codes
    log_p = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
    for log_w in (None, stratified_log_weights(9, 1000).double()):
        parts = kl_decomposition(z, mu, logvar, log_w)
        assert torch.allclose(sum(parts.values()), log_normal(z, mu, logvar) - log_p)
    uniform = torch.full((9, 9), -math.log(9), dtype=torch.float64)
    default = kl_decomposition(z, mu, logvar)
    assert torch.allclose(kl_decomposition(z, mu, logvar, uniform)["tc"], default["tc"])
    # stratified: q(z_i|x_i) counts 1/N, so with well-separated codes log q(z_i) falls far below MWS's
    mss = kl_decomposition(z, mu, logvar, stratified_log_weights(9, 1000).double())
    assert (mss["mi"] > default["mi"] + 1).all()


def test_tcvae_with_unit_weights_is_the_vae_objective(batch):
    model = _trained("tcvae", batch, alpha=1.0, tc_beta=1.0, gamma=1.0)
    torch.manual_seed(0)
    with torch.no_grad():
        terms = model.loss(batch)
        # loss = rec + mi + tc + dim_kl = rec + one-sample KL, whose mean is the closed-form KL
        parts = terms["mi"] + terms["tc"] + terms["dim_kl"]
        assert float(terms["loss"]) == pytest.approx(float(terms["rec"] + parts), rel=1e-5)
        assert float(terms["kl"]) > 2 and float(parts) == pytest.approx(float(terms["kl"]), rel=0.1)


def test_mutual_information_gap_is_high_for_axis_aligned_codes_and_low_for_mixed_ones():
    from aekit.evaluation.disentangle import mutual_information_gap

    rng = np.random.default_rng(0)
    factors = np.array(list(itertools.product(range(5), range(4), range(6))))  # independent, full grid
    aligned = factors + 0.05 * rng.standard_normal(factors.shape)
    rotation = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    mixed = aligned @ rotation  # every dimension carries a bit of every factor
    good, bad = mutual_information_gap(aligned, factors), mutual_information_gap(mixed, factors)
    assert good["mig"] > 0.9 and bad["mig"] < 0.5 * good["mig"]
    assert good["mi"].shape == (3, 3) and np.argmax(good["mi"], 1).tolist() == [0, 1, 2]


def test_two_level_vae_with_the_upper_level_off_is_the_vae(batch):
    """q(z2|z1) = p(z2) = N(0, I) and p(z1|z2) = N(0, I) (last layers zeroed): log p(z2) - log q(z2|z1)
    is 0 draw by draw, so the log weights are the plain VAE's with the same networks and draws."""
    two = make("two-level-vae", hidden=(64,), latent_dim=8, top_dim=3).eval()
    vae = make("vae", hidden=(64,), latent_dim=8).eval()
    vae.load_state_dict({k: v for k, v in two.state_dict().items() if not k.startswith(("up.", "down."))})
    with torch.no_grad():
        for net in (two.up, two.down):
            net[-1].weight.zero_()
            net[-1].bias.zero_()
        torch.manual_seed(1)
        w_two = two.log_weights(batch.x[:16], k=5)
        torch.manual_seed(1)
        w_vae = vae.log_weights(batch.x[:16], k=5)
    assert torch.allclose(w_two, w_vae, atol=1e-4)


def test_two_level_vae_bound_and_prior(batch):
    model = _trained("two-level-vae", batch, top_dim=4)
    x = batch.x[:32]
    bounds = _iw_bounds(model, x)
    with torch.no_grad():
        elbo = float(torch.stack([model.loss(Batch(x, None))["elbo"] for _ in range(8)]).mean())
    assert bounds == sorted(bounds)  # the importance-weighted bound tightens with K
    assert bounds[0] == pytest.approx(elbo, rel=0.03)  # K = 1 is the training ELBO
    z = model.prior_sample(500, torch.Generator().manual_seed(0))
    assert z.shape == (500, 8) and torch.isfinite(z).all()
    assert model.sample(3).shape == (3, 1, 28, 28)
    assert model.kl_per_dim(x).shape == (8,)
    with pytest.raises(NotImplementedError, match="no closed form"):
        model.log_prior(z)


def test_tcvae_stratified_estimator_is_opt_in(batch):
    plain, mss = (
        make("tcvae", hidden=(16,), latent_dim=4),
        make("tcvae", hidden=(16,), latent_dim=4, mss_dataset_size=1000),
    )
    assert plain.pair_log_weights(8) is None
    assert torch.equal(mss.pair_log_weights(8), stratified_log_weights(8, 1000))
    assert mss.pair_log_weights(1) is None  # one sample: its own posterior is the whole estimate
    terms = {}
    for name, model in (("plain", plain), ("mss", mss)):
        torch.manual_seed(0)
        with torch.no_grad():
            terms[name] = model.loss(batch)
    # same weights and noise: the same one-sample KL, split differently
    split = {k: sum(float(terms[k][t]) for t in ("mi", "tc", "dim_kl")) for k in terms}
    assert split["mss"] == pytest.approx(split["plain"], rel=1e-5)
    assert float(terms["mss"]["tc"]) != float(terms["plain"]["tc"])
    with pytest.raises(ConfigError, match="mss_dataset_size"):
        make("tcvae", mss_dataset_size=-1)


def test_tcvae_mss_dataset_size_is_filled_with_the_training_size_unless_set(digits_small):
    from aekit.training.run import configure, validation_size

    layers = [{"model": {"name": "tcvae"}, "train": {"val_fraction": 0.1}}]
    n = len(digits_small)
    assert configure(layers, digits_small).model_config.mss_dataset_size == n - validation_size(n, 0.1)
    assert validation_size(n, 0.1) == round(n * 0.1) and validation_size(1, 0.5) == 0
    set_zero = [{"model": {"name": "tcvae", "mss_dataset_size": 0}}]  # minibatch-weighted, as asked
    assert configure(set_zero, digits_small).model_config.mss_dataset_size == 0
    # a run's own config.json records the value, and loading or resuming passes no training size
    assert resolve([{"model": {"name": "tcvae"}}]).model_config.mss_dataset_size == 0
    assert configure([{"model": {"name": "vae"}}], digits_small).model == "vae"  # no such field: untouched


def test_tcvae_stratified_weights_take_a_batch_larger_than_the_data_as_the_data(batch):
    model = make("tcvae", hidden=(16,), latent_dim=4, mss_dataset_size=10).eval()
    assert torch.equal(model.pair_log_weights(32), stratified_log_weights(32, 32))
    with torch.no_grad():
        assert torch.isfinite(model.loss(Batch(batch.x[:32], None))["loss"])
