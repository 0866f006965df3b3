"""The Robust Deep Autoencoder (Zhou & Paffenroth, KDD 2017), as a training callback.

Training data that already holds anomalies teaches a plain autoencoder to reconstruct them. The
robust autoencoder splits the data ``X = L + S`` into a part ``L`` that the autoencoder learns and
a sparse part ``S`` that it does not, by alternating (the paper's ADMM-like scheme):

1. train the autoencoder on ``L = X - S`` (one epoch of the ordinary training loop);
2. ``S = shrink(X - AE(L), lam)``: the residual the autoencoder cannot explain, shrunk.

Two shrinkages, as in the paper: ``l1`` (each value: ``sign(r) max(|r| - lam, 0)``, for scattered
bad values: a few broken pixels or glitches) and ``l21`` (each sample's residual row scaled by
``max(1 - lam / ||r||, 0)``, for whole bad samples: mislabelled or foreign images). A third,
``l20``, is the hard version of ``l21`` (the proximal map of ``lam`` times the number of non-zero
rows): a row whose residual norm exceeds ``lam`` goes into ``S`` whole, so ``L`` is the model's own
reconstruction there and the row stops pulling the model towards it (with ``l21`` the residual
keeps a norm of ``lam``, so the model still learns part of every foreign row). ``lam`` is
either given or, with a ``rate`` (the expected contamination), set at every update to the
``1 - rate`` quantile of the residual row norms (``l21``, ``l20``) or of the absolute residuals
(``l1``), so that about that share of rows (values) lands in ``S``.

:class:`SparsePart` does step 2 after every epoch and writes ``L`` into the training tensor in
place, so the one training loop runs unchanged (a callback, not a second trainer).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from aekit.data.dataset import ArrayDataset, Scaling
from aekit.errors import ConfigError

NORMS = ("l1", "l21", "l20")


def shrink_l1(r: Tensor, lam: float) -> Tensor:
    """Elementwise soft threshold (the proximal map of ``lam * ||S||_1``)."""
    return torch.sign(r) * (r.abs() - lam).clamp_min(0)


def shrink_l21(r: Tensor, lam: float) -> Tensor:
    """Each sample's residual shrunk as a group (the proximal map of ``lam * sum_i ||S_i||_2``).

    Shape:
        r: (N, *shape); rows are samples.
    """
    norms = r.flatten(1).norm(dim=1).clamp_min(1e-12)
    factor = (1 - lam / norms).clamp_min(0)
    return r * factor.reshape(-1, *([1] * (r.ndim - 1)))


def shrink_l20(r: Tensor, lam: float) -> Tensor:
    """Each sample's residual kept whole when its norm exceeds ``lam``, else zero (the proximal map
    of ``lam**2 / 2`` times the number of non-zero rows: hard thresholding of rows).

    Shape:
        r: (N, *shape); rows are samples.
    """
    keep = r.flatten(1).norm(dim=1) > lam
    return r * keep.reshape(-1, *([1] * (r.ndim - 1)))


def shrink(r: Tensor, lam: float, norm: str) -> Tensor:
    if norm == "l1":
        return shrink_l1(r, lam)
    if norm == "l21":
        return shrink_l21(r, lam)
    if norm == "l20":
        return shrink_l20(r, lam)
    raise ConfigError(f"robust: norm must be one of {', '.join(NORMS)}, not {norm!r}")


def auto_lambda(r: Tensor, norm: str, rate: float) -> float:
    """The shrinkage that sends about a share ``rate`` of the rows (l21) or values (l1) into S."""
    values = r.abs().flatten() if norm == "l1" else r.flatten(1).norm(dim=1)
    if values.numel() > 2_000_000:  # torch.quantile's limit; a strided sample is as good
        values = values[:: values.numel() // 1_000_000 + 1]
    return float(torch.quantile(values.double(), 1 - rate))


def model_space(data: ArrayDataset) -> ArrayDataset:
    """A float32 copy of ``data`` in the model's space (identity scaling), for in-place updates."""
    x, y = data.take(torch.arange(len(data)))
    return ArrayDataset(x.contiguous(), y, name=data.name, scaling=Scaling(), classes=data.classes)


@torch.no_grad()
def reconstruct(model: torch.nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """The model's reconstruction of every row of ``x``, in eval mode, on ``x``'s device."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = torch.cat([model.reconstruct(b.to(device)).float().to(x.device) for b in x.split(batch_size)])
    model.train(was_training)
    return out


class SparsePart:
    """Callback: after each epoch, ``S = shrink(X - AE(X - S))`` and the training data becomes ``X - S``.

    Args:
        train: The training data in model space (see :func:`model_space`); its ``x`` tensor is
            overwritten with ``X - S`` after every epoch (a copy of ``X`` is kept here).
        norm: ``l1``, ``l21`` or ``l20``.
        rate: The expected share of anomalies; sets ``lam`` at every update when ``lam`` is None.
        lam: A fixed shrinkage instead.
        warmup: Epochs trained on ``X`` before the first split.

    Attributes:
        s: The sparse part, (N, *shape), after training.
        lam: The last shrinkage used.
    """

    def __init__(
        self, train: ArrayDataset, norm: str = "l21", rate: float | None = 0.1, lam: float | None = None,
        warmup: int = 1,
    ) -> None:  # fmt: skip
        if norm not in NORMS:
            raise ConfigError(f"robust: norm must be one of {', '.join(NORMS)}, not {norm!r}")
        if lam is None and (rate is None or not 0 < rate < 1):
            raise ConfigError("robust: give a shrinkage lam, or a rate in (0, 1)")
        if not isinstance(train.x, Tensor) or train.x.dtype != torch.float32:
            raise ConfigError("robust: the training data must be a float32 tensor in model space")
        self.train = train
        self.x = train.x.clone()
        self.s = torch.zeros_like(self.x)
        self.norm, self.rate, self.fixed, self.warmup = norm, rate, lam, warmup
        self.lam = lam if lam is not None else 0.0
        self.model: torch.nn.Module | None = None

    def kept(self) -> Tensor:
        """Rows outside the sparse part: all but the ``rate`` share with the largest ``||S_i||``
        (for ``l21`` and ``l20`` these are the rows whose S is zero). Shape: (N,) bool."""
        norms = self.s.flatten(1).norm(dim=1)
        if self.rate is None:
            return norms == 0
        return norms <= torch.quantile(norms.double(), 1 - self.rate).float()

    @torch.no_grad()
    def codes(self, batch_size: int = 1024) -> np.ndarray:
        """Codes of the kept rows of ``L``: what a latent density of normal data is fitted on."""
        model = self.model
        device = next(model.parameters()).device
        model.eval()
        x = self.train.x[self.kept()]
        return torch.cat([model.encode(b.to(device)).float().cpu() for b in x.split(batch_size)]).numpy()

    def on_epoch_end(self, trainer, record: dict[str, float]) -> None:
        if trainer.epoch < self.warmup:
            return
        self.model = trainer.model
        r = self.x - reconstruct(trainer.model, self.train.x)
        self.lam = self.fixed if self.fixed is not None else auto_lambda(r, self.norm, self.rate)
        self.s = shrink(r, self.lam, self.norm)
        self.train.x.copy_(self.x - self.s)
        record["sparse/lambda"] = self.lam
        record["sparse/rows"] = float((self.s.flatten(1).abs().sum(1) > 0).float().mean())
