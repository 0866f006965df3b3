"""Detectors beyond clean image sets: series, numeric arrays of any scale, robust training, clean."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
import torch

import aekit
from aekit.apps.anomaly import AnomalyDetector
from aekit.apps.clean import REMOVED, clean
from aekit.cli import main
from aekit.data.series import from_values
from aekit.errors import DataError


def _membrane() -> np.ndarray:
    """A real signal: a neuron's membrane potential, one spike every ~140 steps (matplotlib's sample)."""
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("membrane.dat") as f:
        return np.frombuffer(f.read(), np.float32)[1500:7000].copy()


@pytest.fixture(scope="module")
def series_detector():
    det = AnomalyDetector(epochs=8, device="cpu", fpr=0.005, series_score="step")
    return det.fit(from_values(_membrane()[:2000], "train"))


def test_a_spike_and_a_level_shift_injected_into_a_real_series_are_found(series_detector):
    det = series_detector
    assert det.run_.config.model == "conv1d" and 120 <= det.windowing_.window <= 160
    x = _membrane()[3000:5500]
    x[800] += 0.3  # one step (the signal spans about 0.5)
    x[1600:1700] += 0.2  # a level shift over 100 steps
    scores = det.anomaly_score(from_values(x, "test"))
    assert scores.shape == (len(x),) and np.isfinite(scores).all()
    flagged = scores > det.threshold_
    assert flagged[800]  # the spike's own step
    assert flagged[1600:1700].mean() > 0.5
    elsewhere = np.ones(len(x), dtype=bool)
    elsewhere[800 - 160 : 800 + 160] = False
    elsewhere[1600 - 160 : 1700 + 160] = False
    assert flagged[elsewhere].mean() < 0.02


def test_series_scaling_and_windows_are_saved_and_reapplied(series_detector, tmp_path):
    det = series_detector
    det.save(tmp_path / "det")
    back = AnomalyDetector.load(tmp_path / "det")
    assert back.windowing_ == det.windowing_
    head = _membrane()[:1600]  # the 80% the model trained on; the rest calibrated the threshold
    assert back.windowing_.scaling.center[0] == pytest.approx(float(np.median(head)), abs=1e-6)
    test = from_values(_membrane()[3000:3600], "test")
    np.testing.assert_array_equal(back.anomaly_score(test), det.anomaly_score(test))
    with pytest.raises(DataError, match="2 channels, but the detector was fitted on 1"):
        det.anomaly_score(from_values(np.zeros((500, 2)), "two"))


def test_cli_series_fit_score_and_clean(tmp_path, capsys):
    x = _membrane()
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("time,v\n" + "".join(f"{i * 0.1:.1f},{v}\n" for i, v in enumerate(x[:2500])))
    x[3300] += 0.4
    test.write_text("time,v\n" + "".join(f"{i * 0.1:.1f},{v}\n" for i, v in enumerate(x[3000:3600])))
    before = hashlib.sha256(test.read_bytes()).hexdigest()
    det = tmp_path / "det"
    argv = [
        "detect",
        "fit",
        "--data",
        f"series:{train}",
        "--out",
        str(det),
        "--epochs",
        "6",
        "--device",
        "cpu",
    ]
    assert main([*argv, "--window", "100", "--stride", "10", "--quiet"]) == 0
    assert "window 100" in capsys.readouterr().out
    assert "flagged spans" in (det / "report.html").read_text()  # series.png in the report
    out = tmp_path / "scores.csv"
    assert main(["detect", "score", str(det), f"series:{test}", "-o", str(out), "--quiet", "--figures"]) == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 600 and list(rows[0]) == ["time", "score", "anomaly"] and rows[1]["time"] == "0.1"
    assert rows[300]["anomaly"] == "1"
    assert (tmp_path / "series.png").is_file()
    cleaned = tmp_path / "cleaned"
    assert main(["detect", "clean", str(det), f"series:{test}", "-o", str(cleaned), "--quiet"]) == 0
    with open(cleaned / REMOVED) as f:
        removed = list(csv.DictReader(f))
    kept = (cleaned / "test.csv").read_text().splitlines()
    assert len(kept) == 1 + 600 - len(removed) and "300" in {r["step"] for r in removed}
    assert hashlib.sha256(test.read_bytes()).hexdigest() == before  # the input is never touched
    assert main(["detect", "clean", str(det), f"series:{test}", "-o", str(cleaned)]) == 2  # no overwrite
    repaired = tmp_path / "repaired"
    assert (
        main(["detect", "clean", str(det), f"series:{test}", "-o", str(repaired), "--repair", "--quiet"]) == 0
    )
    values = np.loadtxt(repaired / "test.csv", delimiter=",", skiprows=1)
    assert values.shape == (600, 2) and abs(values[300, 1] - x[3300]) > 0.2  # the spike is gone


def test_numeric_arrays_of_any_scale_learn_a_robust_scaling(tmp_path):
    g = np.random.default_rng(0)
    z = g.normal(size=(1500, 3))
    x = (z @ g.normal(size=(3, 10))) * 1000 + 5000  # far outside [0, 1]: refused before
    x[:15] = 1e9  # 1% of wild rows do not set the scale
    det = AnomalyDetector(score="mse", epochs=8, device="cpu", contamination=0.02).fit(x)
    scaling = det.run_.dataset.scaling
    assert abs(np.median(x[15:, 0]) - scaling.offset[0]) < 300
    normal = (g.normal(size=(300, 3)) @ g.normal(size=(3, 10))) * 1000 + 5000
    shifted = normal + g.normal(0, 3000, size=normal.shape)
    s_norm, s_shift = det.score_samples(normal), det.score_samples(shifted)
    assert np.median(s_norm) > np.median(s_shift)  # score_samples: higher = more normal
    det.save(tmp_path / "det")
    np.testing.assert_allclose(
        AnomalyDetector.load(tmp_path / "det").score_samples(normal), s_norm, rtol=1e-5
    )
    with pytest.raises(DataError, match="NaN"):
        det.score_samples(np.full((2, 10), np.nan))


def test_clean_removes_what_it_flags_and_never_touches_the_input(tmp_path, digits_small):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    x = digits_small.x.numpy()[:60, 0]
    for i, a in enumerate(x):
        Image.fromarray(a).save(folder / f"d{i:02d}.png")
    noise = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    for i, a in enumerate(noise):
        Image.fromarray(a).save(folder / f"noise{i}.png")
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    det = AnomalyDetector(model="dense", score="mse", epochs=15, latent_dim=8, device="cpu", fpr=0.05)
    det.fit(digits_small.subset(torch.arange(60, 256)))
    data = aekit.load_dataset(str(folder))
    result = clean(det, data, tmp_path / "out")
    with open(tmp_path / "out" / REMOVED) as f:
        removed = {r["id"] for r in csv.DictReader(f)}
    flagged = {data.ids[i] for i in np.flatnonzero(det.anomaly_score(data) > det.threshold_)}
    assert removed == flagged and {f"noise{i}.png" for i in range(3)} <= removed
    written = {p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".png"}
    assert written == set(data.ids) - removed and result.flagged == len(removed)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()} == digests
    for name in written:  # kept files are copied byte for byte
        assert hashlib.sha256((tmp_path / "out" / name).read_bytes()).hexdigest() == digests[name]
    with pytest.raises(DataError, match="already exists"):
        clean(det, data, tmp_path / "out")
    fixed = clean(det, data, tmp_path / "fixed", repair=True)
    assert fixed.repaired and len([p for p in (tmp_path / "fixed").iterdir() if p.suffix == ".png"]) == 63
    repaired_noise = np.asarray(Image.open(tmp_path / "fixed" / "noise0.png"))
    assert np.abs(repaired_noise.astype(int) - noise[0]).mean() > 40  # replaced by a digit-like image


def test_conv1d_channel_mask_hides_one_channel_in_training_only():
    from aekit.data.batches import Batch
    from aekit.errors import ConfigError
    from aekit.models import build_model

    torch.manual_seed(0)
    x = torch.randn(64, 3, 40)
    masked = build_model(
        "conv1d", input_shape=(3, 40), latent_dim=8, channel_mask=1.0, output_activation="none"
    )
    plain = build_model("conv1d", input_shape=(3, 40), latent_dim=8, output_activation="none")
    plain.load_state_dict(masked.state_dict())
    batch = Batch(x)
    masked.train(), plain.train()
    torch.manual_seed(1)
    seen = []
    hook = masked.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    loss = masked.loss(batch)["loss"]
    hook.remove()
    zero_channels = (seen[0].reshape(64, 3, 40).abs().sum(2) == 0).sum(1)
    assert (zero_channels == 1).all()  # every window lost exactly one channel ...
    expected = ((masked(seen[0]).x_hat - x) ** 2).mean()  # ... and the target is the whole window
    torch.testing.assert_close(loss, expected)
    masked.eval(), plain.eval()
    torch.testing.assert_close(masked.loss(batch)["loss"], plain.loss(batch)["loss"])  # training only
    with pytest.raises(ConfigError, match="channel_mask"):
        build_model("conv1d", input_shape=(3, 40), channel_mask=1.5)


def test_cross_channel_errors_hide_each_channel_and_score_it_from_the_others():
    from aekit.apps.series import channel_errors

    class SumOfChannels(torch.nn.Module):  # reconstructs every channel as the sum of all of them
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def reconstruct(self, b):
            return b.sum(1, keepdim=True).expand_as(b)

    w = np.random.default_rng(0).normal(size=(5, 3, 12)).astype(np.float32)
    cross = channel_errors(SumOfChannels(), w, cross=True, batch_size=2)
    others = w.sum(1, keepdims=True) - w  # what the other channels say, channel by channel
    np.testing.assert_allclose(cross, (others - w) ** 2, rtol=1e-5, atol=1e-5)
    plain = channel_errors(SumOfChannels(), w)
    np.testing.assert_allclose(plain, (w.sum(1, keepdims=True) - w) ** 2, rtol=1e-5, atol=1e-5)


def test_a_detector_on_several_channels_scores_channels_apart_and_saves_how(tmp_path):
    from aekit.errors import ConfigError

    a = _membrane()[:4500].astype(np.float64)
    g = np.random.default_rng(0)
    x = np.stack([a, 2 * a + g.normal(0, 0.01, len(a)), np.roll(a, 7)], 1)  # three related channels
    det = AnomalyDetector(epochs=8, device="cpu", fpr=0.01, seed=0).fit(from_values(x[:2500], "train"))
    assert det.run_.model.config.channel_mask == 0.5 and det.channels_.cross_scale is not None
    test = x[2500:].copy()
    test[1000:1150, 1] += 0.25  # one channel drifts away from the other two
    scores = det.anomaly_score(from_values(test, "test"))
    flagged = scores > det.threshold_
    assert flagged[1000:1150].mean() > 0.5
    elsewhere = np.ones(len(test), dtype=bool)
    elsewhere[1000 - 200 : 1150 + 200] = False
    assert flagged[elsewhere].mean() < 0.03
    det.save(tmp_path / "det")  # the channel scales and the mix are saved with the detector
    back = AnomalyDetector.load(tmp_path / "det")
    assert back.channels_ == det.channels_
    np.testing.assert_array_equal(back.anomaly_score(from_values(test, "test")), scores)
    with pytest.raises(ConfigError, match="more than one channel"):
        AnomalyDetector(epochs=1, device="cpu", cross_channel=True).fit(from_values(a[:600], "one"))


def test_a_recurrent_detector_finds_a_spike_and_scores_channels_from_each_other():
    a = _membrane()[:3000].astype(np.float64)
    x = np.stack([a, np.roll(a, 5)], 1)
    det = AnomalyDetector(
        model="gru", epochs=4, device="cpu", fpr=0.01, seed=0, window=64, stride=8, series_score="peak"
    )
    det.fit(from_values(x[:2000], "train"))
    assert det.run_.config.model == "gru" and det.run_.model.config.channel_mask == 0.5
    assert det.channels_.cross_scale is not None  # a model of signals: cross-channel is on
    test = x[2000:].copy()
    test[500, 0] += 0.5  # the signal spans about 0.5
    flagged = det.anomaly_score(from_values(test, "test")) > det.threshold_
    assert flagged[500]
    assert flagged[np.r_[0:400, 600:1000]].mean() < 0.05
