"""The robust autoencoder's split X = L + S (Zhou & Paffenroth 2017)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aekit.apps.robust import SparsePart, model_space, shrink_l1, shrink_l20, shrink_l21
from aekit.config import TrainConfig
from aekit.data.dataset import ArrayDataset
from aekit.errors import ConfigError
from aekit.models import build_model
from aekit.training.trainer import Trainer


def test_shrinkages_are_the_proximal_maps():
    r = torch.tensor([[3.0, -0.5, 1.0], [0.3, 0.4, 0.0]])
    assert torch.equal(shrink_l1(r, 1.0), torch.tensor([[2.0, -0.0, 0.0], [0.0, 0.0, 0.0]]))
    out = shrink_l21(r, 1.0)  # row norms: sqrt(10.25) and 0.5
    assert torch.allclose(out[0], r[0] * (1 - 1 / r[0].norm()))
    assert torch.equal(out[1], torch.zeros(3))
    hard = shrink_l20(r, 1.0)  # the hard version: a row goes into S whole, or not at all
    assert torch.equal(hard[0], r[0]) and torch.equal(hard[1], torch.zeros(3))


def _planted(seed: int = 0):
    """A rank-2 matrix (200 x 20) in [0, 1] with 20 rows (10%) replaced by large sparse noise."""
    g = np.random.default_rng(seed)
    u, v = g.uniform(0, 1, (200, 2)), g.uniform(0, 1, (2, 20))
    low = 0.1 + 0.4 * (u @ v) / 2
    bad = np.sort(g.choice(200, 20, replace=False))
    s = np.zeros_like(low)
    s[bad] = g.choice([-1.0, 1.0], (20, 20)) * g.uniform(0.5, 1.0, (20, 20))
    return low.astype(np.float32), s.astype(np.float32), bad


@pytest.mark.parametrize("norm", ["l21", "l20"])
def test_the_split_recovers_a_planted_sparse_part(norm):
    low, s, bad = _planted()
    train = model_space(ArrayDataset(low + s, name="planted"))
    torch.manual_seed(0)
    model = build_model("dense", input_shape=(20,), hidden=(16,), latent_dim=2, output_activation="none")
    split = SparsePart(train, norm=norm, rate=0.1)
    cfg = TrainConfig(epochs=60, batch_size=32, lr=5e-3, val_fraction=0.0, device="cpu")
    Trainer(model, cfg, [split]).fit(train)
    found = np.flatnonzero(split.s.flatten(1).norm(dim=1).numpy() > 0)
    assert len(set(found) & set(bad)) >= 18  # the planted rows land in S
    assert len(found) <= 22
    # in the planted rows, S points the way the planted noise does
    cos = torch.nn.functional.cosine_similarity(split.s[bad], torch.from_numpy(s[bad]), dim=1)
    assert float(cos.mean()) > 0.8
    # L = X - S is what the training data became
    assert torch.allclose(train.x, torch.from_numpy(low + s) - split.s)


def test_bad_settings_are_config_errors():
    train = model_space(ArrayDataset(np.zeros((4, 3), np.float32)))
    with pytest.raises(ConfigError, match="norm"):
        SparsePart(train, norm="l2")
    with pytest.raises(ConfigError, match="rate"):
        SparsePart(train, rate=None)


def test_a_robust_detector_saves_its_shrinkage_and_fits_its_density_on_kept_rows(tmp_path):
    from aekit.apps.anomaly import AnomalyDetector

    low, s, bad = _planted(1)
    det = AnomalyDetector(
        model="dense", robust="l21", contamination=0.1, epochs=20, latent_dim=2, device="cpu"
    )
    det.fit(low + s)
    assert det.lambda_ > 0
    # auto score: codes (mixture + nearest codes) of the rows kept, with more neighbours than the
    # foreign rows that may remain; the farthest 4 x 10% of the 160 training rows left out
    assert det.score_ == "codes" and det.neighbors_.k >= 0.1 * len(det.neighbors_.codes)
    assert len(det.neighbors_.codes) == 96 and det.density_ is not None
    back = AnomalyDetector.load(det.save(tmp_path / "det"))
    assert back.lambda_ == det.lambda_ and back.robust == "l21"
    scores = det.anomaly_score(low + s)
    # the planted rows score highest: the model did not learn them
    top = set(np.argsort(scores)[-20:].tolist())
    assert len(top & set(bad.tolist())) >= 16


def _between(seed: int = 1):
    """Rows on one rank-2 plane (400 x 20): normal codes in four corner clusters, 10% planted in
    five small clusters between them, so the autoencoder reconstructs them as well as the normal
    rows (as it does foreign images) but their codes are rare."""
    g = np.random.default_rng(seed)
    v = g.uniform(0, 1, (2, 20))
    corners = np.array([[0.1, 0.1], [0.9, 0.9], [0.1, 0.9], [0.9, 0.1]])
    u = corners[g.integers(0, 4, 400)] + g.normal(0, 0.05, (400, 2))
    bad = np.sort(g.choice(400, 40, replace=False))
    gaps = np.array([[0.5, 0.5], [0.5, 0.1], [0.1, 0.5], [0.9, 0.5], [0.5, 0.9]])
    u[bad] = gaps[g.integers(0, 5, 40)] + g.normal(0, 0.03, (40, 2))
    return (0.1 + 0.8 * (u @ v) / v.sum(0).max()).astype(np.float32), bad


def test_trimming_by_the_codes_finds_foreign_rows_the_residual_misses(monkeypatch):
    from aekit.apps import anomaly

    x, bad = _between()
    found = {}
    for trim in ("residual", "knn"):
        monkeypatch.setattr(anomaly, "ROBUST_TRIM", trim)
        det = anomaly.AnomalyDetector(
            model="dense", robust="l20", contamination=0.1, epochs=20, latent_dim=2, device="cpu"
        )
        scores = det.fit(x).anomaly_score(x)
        found[trim] = len(set(np.argsort(scores)[-40:].tolist()) & set(bad.tolist()))  # what clean removes
        # the reference codes: knn leaves out 4 x 10% of the 320 training rows, residual 10%
        assert len(det.neighbors_.codes) == (192 if trim == "knn" else 288)
    assert found["knn"] >= 36 and found["knn"] >= found["residual"] + 4, found
