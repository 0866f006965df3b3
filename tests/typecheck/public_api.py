"""Type-checked use of every name in ``aekit.__all__`` (mypy, strict; see tests/test_typing.py).

Never run: mypy reads it as a user's program would be read, so that the public signatures aekit
ships (``py.typed``) are complete: each ``assert_type`` fails when a public function returns an
unannotated (``Any``) or different type. Internal modules are followed silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, assert_type

import numpy as np
import torch

import aekit


def train_and_use(out: Path) -> dict[str, float]:
    data = aekit.load_dataset("mnist-5k", "train", limit=256)
    assert_type(data, aekit.ArrayDataset)
    assert_type(len(data), int)
    assert_type(data.shape, tuple[int, ...])
    run = aekit.train("mnist-5k", "dense", out=out, epochs=1, progress=False)
    assert_type(run, aekit.Run)
    assert_type(aekit.load(out), aekit.Run)
    assert_type(aekit.resume(out, epochs=2, progress=False), aekit.Run)
    assert_type(run.encode(data), np.ndarray)
    assert_type(run.reconstruct(np.zeros((4, 1, 28, 28), np.uint8)), np.ndarray)
    assert_type(run.path, Path | None)
    for name, spec in aekit.MODELS.items():
        assert_type(name, str)
        assert_type(spec.summary, str)
    assert_type(aekit.build_model("dense", latent_dim=8), torch.nn.Module)
    return assert_type(run.evaluate(data), dict[str, float])


def applications(run_dir: Path, images: np.ndarray) -> float:
    det = aekit.AnomalyDetector(model="conv", fpr=0.01).fit(images)
    assert_type(det, aekit.AnomalyDetector)
    assert_type(det.predict(images), np.ndarray)
    assert_type(det.anomaly_score(images), np.ndarray)
    assert_type(det.score_samples(images), np.ndarray)
    assert_type(det.save(run_dir / "det"), Path)
    assert_type(aekit.AnomalyDetector.load(run_dir / "det"), aekit.AnomalyDetector)
    codec = aekit.Codec.load(run_dir)
    assert_type(codec, aekit.Codec)
    blob = assert_type(codec.compress(images), bytes)
    assert_type(codec.decompress(blob), np.ndarray)
    denoiser = assert_type(aekit.Denoiser.load(run_dir), aekit.Denoiser)
    assert_type(denoiser(images), np.ndarray)
    table = np.random.default_rng(0).random((100, 6))
    transformer = aekit.AutoencoderTransformer(latent_dim=2).fit(table)
    assert_type(transformer, aekit.AutoencoderTransformer)
    assert_type(transformer.transform(table), np.ndarray)
    assert_type(transformer.inverse_transform(np.zeros((3, 2))), np.ndarray)
    return assert_type(transformer.score(table), float)


def errors() -> list[type[aekit.AekitError]]:
    try:
        aekit.load_dataset("no-such-data")
    except aekit.DataError as e:
        message: Any = str(e)
        print(message)
    return [aekit.AekitError, aekit.DataError, aekit.ConfigError, aekit.CheckpointError]
