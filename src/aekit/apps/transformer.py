"""``AutoencoderTransformer``: an autoencoder's codes as features, in scikit-learn's style.

>>> pipe = make_pipeline(aekit.AutoencoderTransformer(latent_dim=8), LogisticRegression()).fit(X, y)

It passes every check of scikit-learn's ``check_estimator`` (``tests/test_tables.py`` runs
them); scikit-learn itself skips ``check_array_api_input`` unless ``SCIPY_ARRAY_API`` is set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from aekit.data.dataset import ArrayDataset
from aekit.training.run import configure, fit


class AutoencoderTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """An autoencoder trained on the rows of X; ``transform`` gives their codes.

    ``fit`` min-max scales each column on the training data (the scale is kept), then trains
    the model; ``inverse_transform`` decodes codes back to the original units; ``score`` is
    minus the mean squared reconstruction error in scaled units (higher is better, so
    ``GridSearchCV`` can choose settings with it).

    Args:
        latent_dim: Size of the code (the number of output features).
        hidden: Hidden layer sizes of the encoder (the decoder mirrors them).
        model: A registered model that works on rows (``dense``, ``sparse``, ``contractive``,
            ``denoising``, ``vae``).
        epochs, batch_size, lr: Training (Adam, one-cycle schedule).
        random_state: Seeds initialisation and batch order: the same seed, the same codes.
        model_options: Other model settings, e.g. ``{"activation": "gelu"}``.

    Example:
        >>> import numpy as np, aekit
        >>> X = np.random.default_rng(0).normal(size=(200, 6))
        >>> ae = aekit.AutoencoderTransformer(latent_dim=2, epochs=5).fit(X)
        >>> ae.transform(X).shape, ae.inverse_transform(ae.transform(X)).shape
        ((200, 2), (200, 6))
    """

    def __init__(
        self,
        latent_dim: int = 8,
        hidden: tuple[int, ...] = (64, 32),
        model: str = "dense",
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 3e-3,
        random_state: int = 0,
        model_options: dict[str, Any] | None = None,
    ) -> None:
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state
        self.model_options = model_options

    def fit(self, X: Any, y: Any = None) -> AutoencoderTransformer:
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        self.lo_ = X.min(0)
        span = X.max(0) - self.lo_
        self.span_ = np.where(span > 0, span, 1.0)
        x = torch.from_numpy(self._scale(X))
        settings = {
            "name": self.model,
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
            "output_activation": "none",  # scaled columns may leave [0, 1] on new data
            **(self.model_options or {}),
        }
        train = {
            "epochs": self.epochs,
            "batch_size": min(self.batch_size, len(X)),
            "lr": self.lr,
            "schedule": "onecycle",
            "val_fraction": 0.0,
            "seed": self.random_state,
            "device": "cpu",
        }
        data = ArrayDataset(x, name="X")
        self.model_ = fit(data, configure([{"model": settings, "train": train}], data)).model
        self.model_.eval()
        self._n_features_out = self.latent_dim
        return self

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.lo_) / self.span_).astype(np.float32)

    @torch.no_grad()
    def transform(self, X) -> np.ndarray:
        """The codes of the rows of X. Shape: (n_samples, latent_dim)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        z = self.model_.encode(torch.from_numpy(self._scale(X)))
        return z.numpy().astype(X.dtype)

    @torch.no_grad()
    def inverse_transform(self, X) -> np.ndarray:
        """Codes back to rows in the original units. Shape: (n_samples, n_features_in_)."""
        check_is_fitted(self)
        from sklearn.utils import check_array

        Z = check_array(X, dtype=[np.float64, np.float32])
        if Z.shape[1] != self.latent_dim:
            raise ValueError(f"expected codes with {self.latent_dim} features, got {Z.shape[1]}")
        x = self.model_.decode(torch.from_numpy(Z.astype(np.float32))).numpy()
        return (x * self.span_ + self.lo_).astype(Z.dtype)

    @torch.no_grad()
    def score(self, X, y=None) -> float:
        """Minus the mean squared reconstruction error of X, in scaled units (higher is better)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        x = torch.from_numpy(self._scale(X))
        return -float(((self.model_.reconstruct(x) - x) ** 2).mean())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
