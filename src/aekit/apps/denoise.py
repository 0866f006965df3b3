"""Denoising with a trained run: :class:`Denoiser`, and the noisy / denoised / clean figure.

>>> den = aekit.Denoiser.load("runs/denoise")
>>> clean = den(noisy_images)          # same shape as the input, values in [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aekit.api import Run, load
from aekit.data.corrupt import Level, corrupt
from aekit.data.dataset import ArrayDataset
from aekit.errors import DataError
from aekit.evaluation.metrics import summarize
from aekit.report.figures import comparison_grid


def parse_noise(text: str) -> tuple[str, Level]:
    """``"gaussian=0.3"`` or ``"gaussian=0.1,0.5"`` (a blind range) -> (kind, level).

    Raises:
        DataError: not KIND=LEVEL, an unknown kind, or a level that is not a number in [0, 1].
    """
    kind, sep, value = text.partition("=")
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        parts = []
    if not sep or len(parts) not in (1, 2) or not all(0 <= p <= 1 for p in parts):
        raise DataError(f"noise {text!r}: expected KIND=LEVEL or KIND=LOW,HIGH with levels in [0, 1]")
    from aekit.data.corrupt import NOISES

    if kind not in (*NOISES, "mixture"):
        raise DataError(f"noise {text!r}: unknown kind {kind!r} (known: {', '.join(NOISES)}, mixture)")
    return kind, (parts[0] if len(parts) == 1 else (parts[0], parts[1]))


@dataclass
class Denoiser:
    """A trained model used as a denoiser: call it on noisy images.

    Any autoencoder run works; one trained with ``--model denoising`` for the noise at hand
    works best. :attr:`noise` says what the run was trained against.

    Example:
        >>> import numpy as np, aekit
        >>> _ = aekit.train("mnist-5k", "denoising", limit=500, epochs=1, out="runs/den", progress=False)
        >>> denoise = aekit.Denoiser.load("runs/den")
        >>> denoise.noise
        'gaussian 0.3'
        >>> noisy = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)
        >>> denoise(noisy).shape  # the input's shape, values in [0, 1]
        (3, 28, 28)
    """

    run: Run

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu") -> Denoiser:
        """Load a run directory (no stored code is executed)."""
        return cls(load(run_dir, device=device))

    @property
    def noise(self) -> str:
        """The noise the model was trained on, e.g. ``gaussian 0.1-0.5``, or ``none``."""
        c = self.run.model.config
        if not hasattr(c, "noise"):
            return "none"
        level = f"{c.noise_level:g}" + (
            f"-{c.noise_level_max:g}" if c.noise_level_max > c.noise_level else ""
        )
        return f"{c.noise} {level}"

    def __call__(
        self, noisy: ArrayDataset | np.ndarray, batch_size: int = 1024, progress: bool | str = False
    ) -> np.ndarray:
        """Denoise ``noisy`` (uint8, or floats in [0, 1] or [0, 255]).

        Returns:
            Floats in [0, 1]: the input's own shape for an array, (N, *input_shape) for a dataset.

        Raises:
            DataError: samples whose size does not fit the model, NaN, or values out of range.
        """
        out = self.run.reconstruct(noisy, batch_size=batch_size, progress=progress)
        if isinstance(noisy, np.ndarray):
            return out.reshape(noisy.shape)
        return out


def add_noise(data: ArrayDataset, kind: str, level: Level, seed: int = 0) -> ArrayDataset:
    """A copy of ``data`` (as float in [0, 1]) with the noise ``kind`` at ``level``; seeded."""
    x = data.take(torch.arange(len(data)))[0]
    try:
        noisy = corrupt(x, kind, level, torch.Generator().manual_seed(seed))
    except ValueError as e:
        raise DataError(f"{data.name}: {e}") from None
    from aekit.data.files import from_array

    return from_array(noisy.numpy(), f"{data.name} + {kind} noise")


def quality(denoised: np.ndarray, clean: ArrayDataset) -> dict[str, float]:
    """MSE, PSNR and SSIM of ``denoised`` (N, *shape) against ``clean``."""
    x = clean.take(torch.arange(len(clean)))[0]
    if len(x) != len(denoised):
        raise DataError(f"{clean.name}: holds {len(x)} clean samples for {len(denoised)} noisy ones")
    return summarize(x, torch.from_numpy(denoised).reshape(x.shape))


def comparison_figure(noisy: np.ndarray, denoised: np.ndarray, clean: np.ndarray | None = None, n: int = 10):
    """Noisy on top, denoised under it, and the clean images under those when given."""
    rows = [("noisy", noisy), ("denoised", denoised)] + ([("clean", clean)] if clean is not None else [])
    return comparison_grid(rows, n)
