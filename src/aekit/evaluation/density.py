"""Densities of latent codes, saved and loaded without pickle: a Gaussian mixture (scikit-learn's)
and the distance to the nearest training codes.

Used by the anomaly detector (how typical a code is) and, the mixture, by generation (a learned
prior for models without one of their own).
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


class NearestCodes:
    """How far a code lies from the codes of the training data: the mean Euclidean distance to its
    ``k`` nearest training codes, each code dimension standardised by its training mean and standard
    deviation. A non-parametric density score (larger = rarer) that follows the shape of the codes
    where a few Gaussians cannot.

    A training code scored against the set that holds it finds itself at distance 0 among its
    ``k`` neighbours, so scores of the very codes it was fitted on are slightly low.

    Shape:
        codes: (N, D) float; ``score`` -> (M,) float64.
    """

    def __init__(self, codes: np.ndarray, mean: np.ndarray, std: np.ndarray, k: int) -> None:
        self.codes, self.mean, self.std, self.k = codes, mean, std, k

    @classmethod
    def fit(cls, codes: np.ndarray, k: int = 20) -> NearestCodes:
        codes = np.asarray(codes, dtype=np.float32)
        mean, std = codes.mean(0), codes.std(0) + 1e-6
        return cls((codes - mean) / std, mean, std, int(min(k, len(codes))))

    def score(self, codes: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        import torch

        ref = torch.from_numpy(self.codes)
        q = torch.from_numpy(
            ((np.asarray(codes, dtype=np.float32) - self.mean) / self.std).astype(np.float32)
        )
        out = [
            torch.cdist(b, ref).topk(self.k, dim=1, largest=False).values.double().mean(1)
            for b in q.split(batch_size)
        ]
        return torch.cat(out).numpy() if out else np.zeros(0)

    def save(self, path: Path) -> Path:
        arrays = {"codes": self.codes, "mean": self.mean, "std": self.std, "k": np.array([self.k])}
        with atomic_path(path) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
        return path

    @classmethod
    def load(cls, path: Path) -> NearestCodes:
        """Raises: CheckpointError: a missing or damaged file, naming it."""
        try:
            a = load_file(str(path))
            codes, mean, std, k = a["codes"], a["mean"], a["std"], int(a["k"][0])
            d = (codes.shape[-1],)
            if codes.ndim != 2 or mean.shape != d or std.shape != d or not 1 <= k <= len(codes):
                raise ValueError(f"shapes {codes.shape}, {mean.shape}, {std.shape} and k {k} do not agree")
        except FileNotFoundError:
            raise CheckpointError(f"{path}: missing") from None
        except (SafetensorError, OSError, KeyError, IndexError, ValueError) as e:
            raise CheckpointError(f"{path}: corrupt nearest-codes file ({type(e).__name__}: {e})") from None
        return cls(codes, mean, std, k)
