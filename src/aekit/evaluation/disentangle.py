"""How disentangled a code is: the mutual information gap (MIG, Chen et al. 2018).

For each known factor of variation, the mutual information between the factor and every code
dimension (the dimension histogrammed into ``bins`` equal-width bins); the gap between the most
and the second most informative dimension, divided by the factor's entropy. 1: each factor lives
in one dimension of its own; 0: no dimension stands out (or the code ignores the factor).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mutual_info_score


def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """Each column into ``bins`` equal-width bins over its range. Shape: (N, D) -> (N, D) int."""
    lo, hi = codes.min(0), codes.max(0)
    scaled = (codes - lo) / np.where(hi > lo, hi - lo, 1.0)
    return np.minimum((scaled * bins).astype(int), bins - 1)


def mutual_information_gap(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> dict:
    """MIG of ``codes`` (N, D) against discrete ``factors`` (N, K) (integer values per factor).

    Returns:
        ``mig`` (the mean over factors), ``per_factor`` (K,) and ``mi`` (K, D) in nats.
    """
    if len(codes) != len(factors):
        raise ValueError(f"{len(codes)} codes but {len(factors)} factor rows")
    binned = discretize(np.asarray(codes, dtype=np.float64), bins)
    mi = np.array([[mutual_info_score(f, binned[:, d]) for d in range(binned.shape[1])] for f in factors.T])
    entropy = np.array([mutual_info_score(f, f) for f in factors.T])  # H(v) = I(v; v)
    top = np.sort(mi, axis=1)[:, ::-1]
    second = top[:, 1] if top.shape[1] > 1 else np.zeros(len(top))
    gap = (top[:, 0] - second) / np.maximum(entropy, 1e-12)
    return {"mig": float(gap.mean()), "per_factor": gap, "mi": mi}
