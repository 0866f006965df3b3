"""A Gaussian mixture over latent codes (scikit-learn's), saved and loaded without pickle.

Used by the anomaly detector (the density of a code) and by generation (a learned prior
for models without one of their own).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from aekit.errors import CheckpointError
from aekit.fileio import atomic_path


def fit_mixture(codes: np.ndarray, components: int = 5, seed: int = 0):
    """A full-covariance mixture fitted to ``codes`` (N, D), in float64 so that scores repeat exactly."""
    from sklearn.mixture import GaussianMixture

    codes = np.asarray(codes, dtype=np.float64)
    return GaussianMixture(
        min(components, len(codes)), covariance_type="full", reg_covar=1e-4, random_state=seed
    ).fit(codes)


def save_mixture(gmm, path: Path) -> Path:
    arrays = {
        "weights": gmm.weights_,
        "means": gmm.means_,
        "covariances": gmm.covariances_,
        "precisions_cholesky": gmm.precisions_cholesky_,
    }
    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()}, str(tmp))
    return path


def load_mixture(path: Path):
    """A scikit-learn GaussianMixture rebuilt from its fitted arrays (no pickle).

    Raises:
        CheckpointError: a missing or damaged file, naming it.
    """
    from sklearn.mixture import GaussianMixture

    try:
        arrays = load_file(str(path))
        weights, means = arrays["weights"], arrays["means"]
        covariances, chol = arrays["covariances"], arrays["precisions_cholesky"]
        if chol.ndim != 3 or means.shape != chol.shape[:2] or len(weights) != len(means):
            raise ValueError(f"shapes {weights.shape}, {means.shape}, {chol.shape} do not agree")
        gmm = GaussianMixture(len(weights), covariance_type="full")
        gmm.weights_, gmm.means_, gmm.covariances_ = weights, means, covariances
        gmm.precisions_cholesky_ = chol  # exactly the factors it scored with when fitted
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt mixture file ({type(e).__name__}: {e})") from None
    return gmm
