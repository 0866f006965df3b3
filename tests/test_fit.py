"""One way to fit: every entry point trains through aekit.training.run.fit; failed starts leave nothing."""

from __future__ import annotations

import numpy as np
import pytest

import aekit
from aekit.errors import CheckpointError, ConfigError
from aekit.training import run as run_module


@pytest.fixture
def trainers(monkeypatch):
    """Counts the trainers that training.run.fit makes."""
    made = []
    real = run_module.Trainer

    def counting(*args, **kwargs):
        made.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "Trainer", counting)
    return made


def _rows(n=120, seed=0):
    return np.random.default_rng(seed).random((n, 6)).astype(np.float32)


def test_train_detector_and_transformer_all_fit_through_one_function(tmp_path, trainers):
    aekit.train("digits", "dense", out=tmp_path / "run", limit=60, epochs=1, progress=False)
    aekit.AnomalyDetector(model="dense", score="mse", epochs=1, latent_dim=2, device="cpu").fit(_rows())
    aekit.AutoencoderTransformer(latent_dim=2, epochs=1).fit(_rows().astype(np.float64))
    assert len(trainers) == 3


def test_the_default_model_rule_is_written_once():
    from aekit.data.files import from_array
    from aekit.training.run import default_model

    images = from_array(np.zeros((4, 1, 8, 8), np.uint8), "img")
    rows = from_array(np.zeros((4, 3), np.float32), "rows")
    assert default_model(images, images="conv") == "conv" and default_model(images) is None
    assert default_model(rows, images="conv") is None


def test_a_missing_gpu_fails_before_the_run_directory_exists(tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        aekit.train("digits", "dense", out=out, limit=40, epochs=1, device="cuda", progress=False)
    assert not out.exists()


def test_a_run_that_never_finished_an_epoch_starts_again_in_place(tmp_path):
    first = aekit.train("digits", "dense", out=tmp_path / "first", limit=40, epochs=1, progress=False)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_bytes((first.path / "config.json").read_bytes())  # what Ctrl-C leaves
    with pytest.raises(CheckpointError, match="start it again with the same train command"):
        aekit.resume(out)
    run = aekit.train("digits", "dense", out=out, limit=40, epochs=1, progress=False)
    assert (out / "model.safetensors").is_file() and len(run.history) == 1
    with pytest.raises(ConfigError, match="already exists"):  # a trained run is never overwritten
        aekit.train("digits", "dense", out=out, limit=40, epochs=1, progress=False)


def test_detector_init_stores_its_arguments_untouched():
    det = aekit.AnomalyDetector(model="dense", fpr=0.5, percentile=10, model_options=None)
    assert det.get_params()["fpr"] == 0.5 and det.get_params()["model_options"] is None
    assert not hasattr(det, "run_")
    with pytest.raises(ConfigError, match="one threshold rule"):
        det.fit(_rows())
    assert det.set_params(percentile=None).get_params()["percentile"] is None


def test_a_single_image_trains_without_validation_and_gets_a_report(tmp_path):
    from PIL import Image

    folder = tmp_path / "one"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (12, 12), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "a.png")
    run = aekit.train(str(folder), "dense", out=tmp_path / "run", epochs=2, progress=False)
    assert len(run.history) == 2 and "val/loss" not in run.history[-1]
    assert (tmp_path / "run" / "report.html").stat().st_size > 1000


def test_digits_are_scikit_learns_read_without_importing_it():
    import subprocess
    import sys

    code = (
        "import sys; from aekit.data.sources import load_dataset; d = load_dataset('digits'); "
        "print(len(d), int(d.y[:10].sum()), 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    from sklearn.datasets import load_digits

    assert out.split() == ["1437", str(int(load_digits().target[:10].sum())), "False"]
