"""Anomaly detection: separation, calibrated thresholds, save/load, tables, the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.apps.anomaly import AnomalyDetector, DetectorConfig
from aekit.cli import main
from aekit.errors import CheckpointError, ConfigError, DataError


def _rows(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """A 12-column table in [0, 1] on a 3-dimensional manifold; ``shift`` moves off it."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(0).normal(size=(3, 12))
    z = rng.normal(size=(n, 3))
    x = z @ basis + 0.05 * rng.normal(size=(n, 12))
    x[:, :4] += shift * rng.normal(size=(n, 4))
    return (1 / (1 + np.exp(-x / 3))).astype(np.float32)


@pytest.fixture(scope="module")
def digit_data():
    data = aekit.load_dataset("mnist-5k", "train")
    zeros = data.subset(torch.nonzero(data.y == 0).flatten())
    test = aekit.load_dataset("mnist-5k", "test")
    pick = torch.nonzero((test.y == 0) | (test.y == 7)).flatten()
    return zeros, test.subset(pick)


@pytest.fixture(scope="module")
def digit_detector(digit_data):
    zeros, _ = digit_data
    opts = {"epochs": 15, "latent_dim": 16, "batch_size": 32, "device": "cpu", "fpr": 0.05}
    return AnomalyDetector(model="dense", score="combined", **opts).fit(zeros)


def test_zeros_against_sevens_separate_well_above_chance(digit_detector, digit_data):
    _, test = digit_data
    metrics = digit_detector.evaluate(test, (test.y == 7).numpy())
    assert metrics["auroc"] > 0.9
    assert metrics["auprc"] > 0.8
    cm = metrics["confusion"]
    assert sum(cm.values()) == len(test)
    pred = digit_detector.predict(test)
    assert set(np.unique(pred)) <= {-1, 1}
    assert int((pred == -1).sum()) == cm["fp"] + cm["tp"]
    # scikit-learn's conventions: score_samples higher = more normal; decision_function < 0 = anomaly
    np.testing.assert_allclose(digit_detector.score_samples(test), -digit_detector.anomaly_score(test))
    np.testing.assert_array_equal(digit_detector.decision_function(test) < 0, pred == -1)


def test_threshold_at_a_target_fpr_holds_on_fresh_normals():
    det = AnomalyDetector(model="dense", score="mse", fpr=0.05, epochs=6, latent_dim=3, device="cpu")
    det.fit(_rows(6000, seed=1))
    fresh = _rows(4000, seed=2)
    fpr = float((det.predict(fresh) == -1).mean())
    assert abs(fpr - 0.05) < 0.02
    assert float((det.predict(_rows(1000, seed=3, shift=2.0)) == -1).mean()) > 0.5


def test_threshold_rules_and_their_checks():
    assert DetectorConfig().quantile == pytest.approx(0.99)
    assert DetectorConfig(percentile=95).quantile == pytest.approx(0.95)
    assert DetectorConfig(contamination=0.1).quantile == pytest.approx(0.9)
    with pytest.raises(ConfigError, match="one threshold rule"):
        DetectorConfig(fpr=0.01, percentile=99)
    vague = AnomalyDetector(score="vibes")  # as in scikit-learn: stored as given, checked in fit
    assert vague.get_params()["score"] == "vibes"
    with pytest.raises(ConfigError, match="score must be one of"):
        vague.fit(_rows(50, 0))
    with pytest.raises(ConfigError, match="not fitted"):
        AnomalyDetector().predict(np.zeros((2, 4), np.float32))
    with pytest.raises(ConfigError, match="needs a model with a likelihood"):
        AnomalyDetector(model="dense", score="nll", epochs=1, device="cpu").fit(_rows(200, 0))


def test_save_and_load_give_identical_scores(digit_detector, digit_data, tmp_path):
    _, test = digit_data
    digit_detector.save(tmp_path / "det")
    assert not list(tmp_path.glob("det/*.pkl"))
    back = AnomalyDetector.load(tmp_path / "det")
    np.testing.assert_array_equal(back.anomaly_score(test), digit_detector.anomaly_score(test))
    assert back.threshold_ == digit_detector.threshold_ and back.score_ == "combined"


def test_a_damaged_detector_is_refused_with_the_file_named(digit_detector, tmp_path):
    d = digit_detector.save(tmp_path / "det")
    (d / "density.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(CheckpointError, match="density.safetensors"):
        AnomalyDetector.load(d)
    (d / "detector.json").write_text("{")
    with pytest.raises(CheckpointError, match="detector.json"):
        AnomalyDetector.load(d)
    with pytest.raises(CheckpointError, match="detector.json: missing"):
        AnomalyDetector.load(tmp_path)


def test_nearest_codes_score_distance_to_the_training_codes(tmp_path):
    from aekit.evaluation.density import NearestCodes

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(500, 4)).astype(np.float32)
    near = NearestCodes.fit(ref, k=5)
    far = near.score(np.full((1, 4), 6.0, np.float32))[0]
    typical = near.score(rng.normal(size=(200, 4)).astype(np.float32))
    assert far > 5 * np.median(typical)
    # each dimension standardised: a dimension with a large spread does not drown the others
    wide = NearestCodes.fit(ref * np.array([100, 1, 1, 1], np.float32), k=5)
    assert wide.score(np.array([[0, 6, 0, 0]], np.float32))[0] > 4
    back = NearestCodes.load(near.save(tmp_path / "codes.safetensors"))
    np.testing.assert_array_equal(back.score(ref[:10]), near.score(ref[:10]))
    assert back.score(ref[:1])[0] < near.score(ref[:1] + 0.5)[0]  # a training code is closest to itself


@pytest.mark.parametrize("score", ["codes", "knn"])
def test_scores_of_the_code_save_load_and_separate(digit_data, tmp_path, score):
    zeros, test = digit_data
    opts = {"epochs": 4, "latent_dim": 8, "device": "cpu", "neighbors": 10}
    det = AnomalyDetector(model="conv", score=score, **opts).fit(zeros)
    assert (det.density_ is not None) == (score == "codes") and det.neighbors_ is not None
    assert det.evaluate(test, (test.y == 7).numpy())["auroc"] > 0.85  # 0.90-0.93 seen; chance is 0.5
    d = det.save(tmp_path / "det")
    back = AnomalyDetector.load(d)
    np.testing.assert_array_equal(back.anomaly_score(test), det.anomaly_score(test))
    (d / "codes.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(CheckpointError, match="codes.safetensors"):
        AnomalyDetector.load(d)


def test_vae_scores_with_its_likelihood(digit_data):
    zeros, test = digit_data
    det = AnomalyDetector(model="vae", epochs=4, latent_dim=8, device="cpu", iw_samples=5).fit(zeros)
    assert det.score_ == "nll"
    scores = det.anomaly_score(test)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    np.testing.assert_array_equal(scores, det.anomaly_score(test))  # seeded: the same twice


def test_csv_tables_numeric_and_categorical_and_missing_values_by_choice(tmp_path):
    rows = _rows(600, seed=4)
    path = tmp_path / "table.csv"
    path.write_text("\n".join([",".join(f"c{i}" for i in range(12))] + [",".join(map(str, r)) for r in rows]))
    det = AnomalyDetector(score="mse", epochs=2, latent_dim=3, device="cpu").fit(
        aekit.load_dataset(str(path))
    )
    assert det.run_.config.model == "dense"  # auto: dense for numeric tables
    mixed = tmp_path / "mixed.csv"
    colours = ["red", "blue"] * 100
    mixed.write_text("size,colour\n" + "".join(f"{i % 7},{c}\n" for i, c in enumerate(colours)))
    det = AnomalyDetector(score="mse", epochs=2, latent_dim=2, device="cpu").fit(
        aekit.load_dataset(str(mixed))
    )
    assert det.run_.config.model == "tabular"  # categorical columns: one-hot, cross-entropy
    det.save(tmp_path / "det")
    new = tmp_path / "new.csv"
    new.write_text("size,colour\n3,red\n3,green\n")
    back = AnomalyDetector.load(tmp_path / "det")
    with pytest.raises(DataError, match="new.csv: row 3, column 'colour' holds 'green'"):
        back.run_.load_data(str(new))
    gap = tmp_path / "gap.csv"
    gap.write_text("a,b\n1.0,2.0\n,3.0\n")
    with pytest.raises(
        DataError, match="gap.csv: row 3, column 'a' is empty .*--missing drop or --missing impute"
    ):
        aekit.load_dataset(str(gap))
    assert len(aekit.load_dataset(str(gap), missing="drop")) == 1


def test_cli_fit_and_score(tmp_path, capsys):
    det = tmp_path / "det"
    argv = ["detect", "fit", "--data", "mnist-5k", "--normal-class", "1", "--limit", "1500"]
    argv += ["--epochs", "2", "--test-limit", "300", "--device", "cpu", "--out", str(det), "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "AUROC" in text and "true anomaly" in text
    for name in ("roc.png", "extremes.png"):
        with Image.open(det / name) as im:  # real pictures, not empty files
            grey = np.asarray(im.convert("L"))
            assert im.format == "PNG" and min(grey.shape) > 100 and len(np.unique(grey)) > 2
    page = (det / "report.html").read_text()
    assert "ROC curve" in page and "Detector evaluation" in page
    evaluation = json.loads((det / "evaluation.json").read_text())
    assert evaluation["normal_class"] == 1 and sum(evaluation["confusion"].values()) == 300
    assert evaluation["auroc"] > 0.9  # ones against every other digit: far above chance (0.5)
    assert f"AUROC {evaluation['auroc']:.4f}" in text
    out = tmp_path / "scores.csv"
    argv = ["detect", "score", str(det), "mnist-5k", "--limit", "50", "-o", str(out), "--quiet"]
    assert main(argv) == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 50 and set(rows[0]) == {"index", "id", "label", "score", "anomaly"}
    detector = AnomalyDetector.load(det)
    want = detector.anomaly_score(aekit.load_dataset("mnist-5k", "test", limit=50))
    scores = np.array([float(r["score"]) for r in rows])
    np.testing.assert_allclose(scores, want, rtol=1e-6)  # the detector's scores, in the data's order
    flagged = np.array([r["anomaly"] == "1" for r in rows])
    np.testing.assert_array_equal(flagged, scores > detector.threshold_)
    # an existing output is kept; a second fit into the same directory is refused
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err
    assert main(["detect", "fit", "--data", "mnist-5k", "--out", str(det), "--epochs", "1"]) == 2
    assert (
        main(
            ["detect", "fit", "--data", "mnist-5k", "--normal-class", "eleven", "--out", str(tmp_path / "x")]
        )
        == 2
    )
    assert "no class 'eleven'" in capsys.readouterr().err


def test_geoconv_transforms_keep_the_shape_and_differ():
    from aekit.models.geoconv import TRANSFORMS, transform

    for shape in ((2, 1, 6, 6), (2, 3, 6, 4)):
        x = torch.rand(*shape)
        outs = [transform(x, k) for k in range(TRANSFORMS)]
        assert all(o.shape == x.shape for o in outs) and torch.equal(outs[0], x)
        assert len({o.numpy().tobytes() for o in outs}) == TRANSFORMS  # four different images
    square = torch.rand(1, 1, 5, 5)
    torch.testing.assert_close(transform(square, 1), torch.rot90(square, 1, dims=(-2, -1)))


def test_image_detectors_default_to_geoconv_for_square_images(digit_data):
    from aekit.models import build_model

    zeros, test = digit_data
    det = AnomalyDetector(epochs=2, latent_dim=8, device="cpu").fit(zeros.subset(torch.arange(200)))
    assert det.run_.config.model == "geoconv" and det.score_ == "codes"
    assert np.isfinite(det.anomaly_score(test.subset(torch.arange(20)))).all()
    model = det.run_.model
    x = zeros.subset(torch.arange(8)).x.float() / 255
    assert model.transform_nll(x).shape == (8,)
    from aekit.data.batches import Batch

    terms = model.loss(Batch(x))
    assert "transform_ce" in terms and torch.isfinite(terms["loss"])
    from types import SimpleNamespace

    from aekit.apps.anomaly import _image_model

    assert _image_model(zeros, {}) == "geoconv"
    assert _image_model(SimpleNamespace(shape=(3, 28, 20)), {}) == "conv"  # not square
    assert _image_model(SimpleNamespace(shape=(12,)), {}) == "conv"  # (tables never get here)
    assert _image_model(zeros, {"arch": "fcn"}) == "conv"  # images of any size: the fcn conv net
    assert _image_model(zeros, {}, robust="l20") == "conv"  # what the contamination benchmark measured
    with pytest.raises(ConfigError, match="geoconv"):
        build_model("geoconv", input_shape=(1, 28, 28), arch="fcn")
