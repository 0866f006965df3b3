"""Anomaly detection with an autoencoder trained on normal data, in scikit-learn's style.

>>> det = aekit.AnomalyDetector(fpr=0.01).fit(normal_images)  # square images: geoconv, else conv
>>> det.predict(images)            # +1 normal, -1 anomaly (scikit-learn's convention)
>>> det.anomaly_score(images)      # higher = more anomalous
>>> det.save("det/"); det = aekit.AnomalyDetector.load("det/")

``score_samples`` follows scikit-learn (higher = more *normal*: it is minus the anomaly score);
``decision_function`` is ``score_samples`` minus the threshold's offset, negative for anomalies.

Scores (``score``):

- ``mse``: mean squared reconstruction error per sample.
- ``ssim``: 1 - SSIM of the reconstruction (images).
- ``nll``: a one-sample negative ELBO per sample (VAE family), or the importance-weighted
  negative log-likelihood with ``iw_samples`` > 1.
- ``latent``: minus the log-density of the code under a Gaussian mixture fitted to the codes
  of the training data.
- ``knn``: the mean distance from the code to its ``neighbors`` nearest codes of the training
  data (code dimensions standardised); see :class:`aekit.evaluation.density.NearestCodes`.
- ``combined``: the mean of ``mse`` and ``latent``, each standardised by its median and
  interquartile range on the held-out normal data.
- ``codes``: the mean of ``latent`` and ``knn``, standardised the same way: two densities of the
  code, one parametric and one not, and no reconstruction error (on a validation split of the
  Fashion-MNIST *training* set, scores of the code separated the classes better than any mix
  with the reconstruction error; see docs/benchmarks/one_class.md).
- ``auto`` (default): ``nll`` for the VAE family, else ``codes`` for images and ``combined`` for
  tables and features (``mse`` for series); ``codes`` for robust detectors too, but fitted on
  the codes of the training rows the detector kept (it leaves out about four times the
  ``contamination`` share of rows, those whose codes lie farthest from the others), with at
  least ``contamination`` times the rows as neighbours, so that a foreign code cannot find only
  foreign neighbours (a mixture fitted to all the contaminated codes gives the foreign rows a
  component of their own).

The threshold is calibrated on normal data held out from training (``calibration_fraction``):
the score that a share ``fpr`` of it exceeds, or a ``percentile`` of its scores, or, when the
training data itself is contaminated, the ``1 - contamination`` quantile. Never the maximum
training error.

Beyond images and tables (see :mod:`aekit.apps.series` and :mod:`aekit.apps.robust`):

- time series (``series:PATH``) are cut into windows (``window``, ``stride``; the dominant period
  when not given) for a ``conv1d`` model; scores are per time step, the threshold calibrated on the
  held-out end of each training series;
- numeric arrays of any scale, (N, features) or (N, T), get a robust per-feature scaling (median
  and interquartile range) learned in ``fit`` and saved with the detector;
- ``robust="l20"``, ``"l21"`` or ``"l1"`` trains the Robust Deep Autoencoder on contaminated
  data; its sparse part takes about ``contamination`` of the training data (0.05 when not given).
  ``l20`` (whole rows out, the hard version of ``l21``) did best on a validation split of the
  Fashion-MNIST training set; see docs/benchmarks/contamination.md.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.data.batches import Batches
from aekit.data.dataset import ArrayDataset, Scaling
from aekit.data.series import Windowing
from aekit.errors import CheckpointError, ConfigError, DataError
from aekit.evaluation.density import NearestCodes, fit_mixture, load_mixture, save_mixture
from aekit.evaluation.metrics import ssim
from aekit.fileio import atomic_write_json
from aekit.models.registry import get_spec
from aekit.training import checkpoint
from aekit.training.run import configure, fit, load
from aekit.training.trainer import resolve_device

SCORES = ("auto", "mse", "ssim", "nll", "latent", "knn", "combined", "codes")
MIXES = {"combined": ("mse", "latent"), "codes": ("latent", "knn")}  # scores that average others
DETECTOR = "detector.json"
DENSITY = "density.safetensors"
NEIGHBORS = "codes.safetensors"


@dataclass(frozen=True)
class DetectorConfig:
    """How the detector is built, scored and thresholded (saved in ``detector.json``)."""

    model: str = "auto"
    score: str = "auto"
    latent_dim: int = 32
    fpr: float | None = None
    percentile: float | None = None
    contamination: float | None = None
    calibration_fraction: float = 0.2
    mixture_components: int = 5
    neighbors: int = 20
    iw_samples: int = 0
    epochs: int = 20
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    device: str = "auto"
    model_options: dict[str, Any] = field(default_factory=dict)
    window: int | None = None
    stride: int | None = None
    series_score: str = "auto"
    cross_channel: bool | None = None
    robust: str | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("fpr", "percentile", "contamination") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ConfigError(f"choose one threshold rule, not {' and '.join(given)}")
        checks = [
            (self.score in SCORES, f"score must be one of {', '.join(SCORES)}, not {self.score!r}"),
            (self.fpr is None or 0 < self.fpr < 1, "fpr must lie in (0, 1)"),
            (self.percentile is None or 0 < self.percentile < 100, "percentile must lie in (0, 100)"),
            (
                self.contamination is None or 0 < self.contamination < 0.5,
                "contamination must lie in (0, 0.5)",
            ),
            (0 < self.calibration_fraction < 1, "calibration_fraction must lie in (0, 1)"),
            (self.mixture_components >= 1, "mixture_components must be at least 1"),
            (self.neighbors >= 1, "neighbors must be at least 1"),
            (self.window is None or self.window >= 2, "window must be at least 2 steps"),
            (self.stride is None or self.stride >= 1, "stride must be at least 1"),
            (
                self.series_score in ("auto", "peak", "window", "step"),
                "series_score must be auto, peak, window or step",
            ),
            (
                self.robust in (None, "l1", "l21", "l20"),
                f"robust must be l1, l21 or l20, not {self.robust!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"detector: {message}")

    @property
    def quantile(self) -> float:
        """The quantile of the calibration scores that becomes the threshold (fpr 0.01 by default)."""
        if self.percentile is not None:
            return self.percentile / 100
        if self.contamination is not None:
            return 1 - self.contamination
        return 1 - (self.fpr if self.fpr is not None else 0.01)


_PARAMS = tuple(f.name for f in dataclasses.fields(DetectorConfig))


class AnomalyDetector:
    """An autoencoder trained on normal data, a score, and a threshold calibrated on held-out normals.

    As in scikit-learn, ``__init__`` only stores its arguments (``get_params`` / ``set_params``
    read and change them); ``fit`` validates them and learns the attributes that end in ``_``.

    Args:
        model: A registered model name (``conv``, ``dense``, ``vae``...); ``auto``: conv for images,
            tabular for tables with categorical columns, dense otherwise.
        score: See the module docstring; ``auto`` picks.
        fpr / percentile / contamination: The threshold rule (one of them; fpr 0.01 by default).
        latent_dim, epochs, batch_size, lr, seed, device, model_options: Training settings.
        calibration_fraction: The share of the normal data held out to calibrate the threshold.
        mixture_components: Components of the Gaussian mixture for the ``latent`` score.
        neighbors: Nearest training codes for the ``knn`` score (and ``codes``).
        iw_samples: Importance samples for the ``nll`` score (0 or 1: a one-sample ELBO).
        window, stride: Series: steps per window (default: the dominant period) and between the
            windows that score a series (default: window / 8).
        series_score: Series: ``peak`` (each window's largest step error, mapped back to its steps),
            ``window`` (each window's mean error) or ``step`` (see :func:`aekit.apps.series.score_steps`);
            ``auto`` (default): ``peak`` for one channel, ``window`` for several (each chosen on
            validation signals, ``benchmarks/series_validate.py``).
        cross_channel: Series of several channels: also score each channel by how far it is from
            what the other channels predict (the model learns that by training with one channel
            hidden at a time, ``channel_mask``). None (default): on when there is more than one
            channel and the model is one of signals (``conv1d``, ``gru``). See
            :class:`aekit.apps.series.ChannelScoring`.
        robust: ``l20``, ``l21`` or ``l1``: train the Robust Deep Autoencoder (contaminated training data).

    Attributes (after fit): ``run_`` (the trained model), ``score_`` (the score in use),
    ``threshold_`` (on the anomaly score), ``offset_`` (= -threshold_, scikit-learn's convention),
    ``calibration_scores_``, ``stats_`` (the combined score's medians and IQRs), ``density_``
    (the latent mixture, or None), ``neighbors_`` (the training codes of the ``knn`` score, or
    None), ``windowing_`` (series: window, stride, per-channel scaling), ``lambda_`` (robust: the
    sparse part's shrinkage).

    Example:
        >>> import aekit
        >>> train, test = aekit.load_dataset("mnist-5k"), aekit.load_dataset("mnist-5k", "test")
        >>> zeros = train.x.numpy()[train.y.numpy() == 0]  # the normal class
        >>> det = aekit.AnomalyDetector(model="dense", epochs=3).fit(zeros)
        >>> det.evaluate(test.x.numpy(), test.y.numpy() != 0)["auroc"] > 0.8
        True
        >>> labels = det.predict(test.x.numpy())  # +1 normal, -1 anomaly, as in scikit-learn
        >>> bool((labels[test.y.numpy() == 0] == 1).mean() > 0.9)  # most test zeros pass as normal
        True
    """

    def __init__(
        self,
        model: str = "auto",
        score: str = "auto",
        *,
        latent_dim: int = 32,
        fpr: float | None = None,
        percentile: float | None = None,
        contamination: float | None = None,
        calibration_fraction: float = 0.2,
        mixture_components: int = 5,
        neighbors: int = 20,
        iw_samples: int = 0,
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 2e-3,
        seed: int = 0,
        device: str = "auto",
        model_options: dict[str, Any] | None = None,
        window: int | None = None,
        stride: int | None = None,
        series_score: str = "auto",
        cross_channel: bool | None = None,
        robust: str | None = None,
    ) -> None:
        self.model = model
        self.score = score
        self.latent_dim = latent_dim
        self.fpr = fpr
        self.percentile = percentile
        self.contamination = contamination
        self.calibration_fraction = calibration_fraction
        self.mixture_components = mixture_components
        self.neighbors = neighbors
        self.iw_samples = iw_samples
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.device = device
        self.model_options = model_options
        self.window = window
        self.stride = stride
        self.series_score = series_score
        self.cross_channel = cross_channel
        self.robust = robust

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments, as scikit-learn's ``clone`` and grid searches expect."""
        return {name: getattr(self, name) for name in _PARAMS}

    def set_params(self, **params: Any) -> AnomalyDetector:
        unknown = sorted(set(params) - set(_PARAMS))
        if unknown:
            raise ConfigError(
                f"AnomalyDetector has no parameter {', '.join(unknown)} (known: {', '.join(_PARAMS)})"
            )
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def _settings(self) -> DetectorConfig:
        """The parameters, validated (in ``fit``, never in ``__init__``)."""
        params = self.get_params()
        params["model_options"] = dict(params["model_options"] or {})
        return DetectorConfig(**params)

    # --- scikit-learn's interface -------------------------------------------------------------------
    @property
    def offset_(self) -> float:
        return -self._fitted().threshold_

    def fit(self, X: ArrayDataset | np.ndarray, y: Any = None, progress: bool = False) -> AnomalyDetector:
        """Train on normal samples ``X`` and calibrate the threshold on a held-out share of them."""
        c = self._settings()
        data = _dataset(X)
        self.windowing_, self.lambda_, self.channels_, tail = None, None, None, None
        options = dict(c.model_options)
        if data.series is not None:  # windows of the first part of each series; the ends calibrate
            from aekit.apps import series

            self.windowing_, fit_set, tail = series.prepare(data, c.window, c.stride, c.calibration_fraction)
            calibration = None
        else:
            if _numeric(data):  # features of any scale: a robust scaling, learned here and saved
                data = dataclasses.replace(data, scaling=Scaling.robust(np.asarray(data.x)))
            fit_set, calibration = data.split(c.calibration_fraction, seed=c.seed)
        if data.series is not None or _numeric(data):  # standardised values, not [0, 1]
            options = {"output_activation": "none", **options}
        model = "conv1d" if c.model == "auto" and data.series is not None else c.model
        cross = self.windowing_ is not None and _cross_channel(c, model, len(self.windowing_.scaling.center))
        if cross:  # the model learns each channel from the others, too
            options = {"channel_mask": 0.5, **options}
        layer = {
            "model": {"name": None if model == "auto" else model, "latent_dim": c.latent_dim, **options},
            "data": {"source": data.name},
            "train": {
                "epochs": c.epochs,
                "batch_size": c.batch_size,
                "lr": c.lr,
                "seed": c.seed,
                "val_fraction": 0.0,
                "schedule": "onecycle",
                "device": c.device,
            },
        }
        from aekit.training.callbacks import ProgressBar

        config = configure([layer], fit_set, images=_image_model(fit_set, options, c.robust))
        score = c.score if c.score != "auto" or data.series is None else "mse"
        if score == "auto" and c.robust:  # latent + knn, fitted on the codes of the rows kept
            score = "codes"
        score = _resolve_score(score, get_spec(config.model).cls, data.is_image)  # before training
        callbacks: list[Any] = [ProgressBar(progress)]
        described = fit_set.describe()
        train_windows = np.asarray(fit_set.x) if self.windowing_ is not None else None
        if c.robust:  # the Robust Deep Autoencoder: train on X - S, S the sparse part
            run, reference = _robust_fit(fit_set, config, c, callbacks)
        else:
            run = fit(fit_set, config, callbacks)
        self.run_ = dataclasses.replace(run, dataset=described)
        self.score_ = score
        self.density_, self.neighbors_ = None, None
        self.stats_ = {}
        self.threshold_ = None
        if c.robust:
            self.lambda_ = float(callbacks[-1].lam)
        needs = set(MIXES.get(self.score_, (self.score_,)))
        if needs & {"latent", "knn"}:
            codes = reference if c.robust else self.run_.encode(self._input(fit_set))
            codes = codes.reshape(len(codes), -1)
            if "latent" in needs:
                self.density_ = fit_mixture(codes, c.mixture_components, c.seed)  # float64: scores repeat
            if "knn" in needs:
                k = c.neighbors
                if c.robust:  # more neighbours than foreign rows may remain: never all foreign
                    k = max(k, _robust_neighbors(c, len(codes)))
                self.neighbors_ = NearestCodes.fit(codes, k)
        steps = None  # the training series' per-step scores, when already computed
        if self.windowing_ is not None:  # per-channel error scales (and the cross-channel part's)
            from aekit.apps import series

            self.channels_ = series.fit_channel_scoring(self.run_.model, train_windows, cross)
            if cross:
                got = series.score_parts(
                    self.run_.model, self.windowing_, data, self._step_score(), self.channels_
                )
                mix = [_median_iqr(got[k][tail]) for k in ("error", "cross")]
                self.channels_ = dataclasses.replace(self.channels_, mix=tuple(mix))
                steps = series.combine(got, self.channels_)  # what anomaly_score(data) gives
        if self.score_ in MIXES:
            for name, values in self._parts(calibration).items():
                self.stats_[name] = list(_median_iqr(values))
        if tail is not None:
            self.calibration_scores_ = (self.anomaly_score(data) if steps is None else steps)[tail]
        else:
            self.calibration_scores_ = self.anomaly_score(calibration)
        self.threshold_ = float(np.quantile(self.calibration_scores_, c.quantile, method="higher"))
        return self

    def score_samples(self, X: ArrayDataset | np.ndarray) -> np.ndarray:
        """scikit-learn's convention: higher = more normal (minus :meth:`anomaly_score`)."""
        return -self.anomaly_score(X)

    def decision_function(self, X: ArrayDataset | np.ndarray) -> np.ndarray:
        """``score_samples - offset_``: negative for anomalies, positive for normal samples."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: ArrayDataset | np.ndarray) -> np.ndarray:
        """+1 for normal samples, -1 for anomalies (scikit-learn's convention)."""
        return np.where(self.anomaly_score(X) > self._fitted().threshold_, -1, 1)

    # --- scores -------------------------------------------------------------------------------------
    def anomaly_score(self, X: ArrayDataset | np.ndarray, progress: bool = False) -> np.ndarray:
        """One score per sample (per time step, for series), higher = more anomalous. Shape: (N,)."""
        if self._fitted(calibrating=True).windowing_ is not None:
            from aekit.apps.series import score_steps

            data = X if isinstance(X, ArrayDataset) else _series(X)
            model = self._fitted(calibrating=True).run_.model
            return score_steps(model, self.windowing_, data, self._step_score(), self.channels_)
        parts = self._parts(X, progress)
        if self.score_ not in MIXES:
            return parts[self.score_]
        return np.mean([(parts[k] - m) / s for k, (m, s) in self.stats_.items()], axis=0)

    def reconstruct(self, X: ArrayDataset | np.ndarray) -> np.ndarray:
        return self._fitted().run_.reconstruct(self._input(X))

    def _input(self, X: ArrayDataset | np.ndarray) -> ArrayDataset:
        """``X`` as a data set the model takes: numeric features get the scaling learned in fit."""
        data = _dataset(X)
        if _numeric(data):
            data = dataclasses.replace(data, scaling=self._fitted(calibrating=True).run_.dataset.scaling)
        return self.run_.prepare(data)

    def _parts(self, X: ArrayDataset | np.ndarray, progress: bool = False) -> dict[str, np.ndarray]:
        run = self._fitted(calibrating=True).run_
        data = self._input(X)
        name = self.score_
        want = set(MIXES.get(name, (name,)))
        out: dict[str, list[np.ndarray]] = {k: [] for k in want - {"latent", "knn"}}
        model = run.model.eval()
        if "ssim" in want and not data.is_image:
            raise ConfigError("score 'ssim' needs images; use mse for tables")
        from aekit.progress import track

        torch.manual_seed(self.seed)  # nll samples: fixed, so that scores repeat
        with torch.no_grad():
            for b in track(Batches(data, 1024, device=run.device), "scoring", enabled=progress):
                if "mse" in want or "ssim" in want:
                    x_hat = model.reconstruct(b.x, b.y)
                    if "mse" in want:
                        out["mse"].append(((x_hat - b.x) ** 2).flatten(1).mean(1).cpu().numpy())
                    if "ssim" in want:
                        out["ssim"].append((1 - ssim(b.x, x_hat)).cpu().numpy())
                if "nll" in want:
                    k = max(1, self.iw_samples)  # k = 1: a one-sample negative ELBO
                    out["nll"].append(model.nll(b.x, b.y, k=k).cpu().numpy())
                if want & {"latent", "knn"}:
                    out.setdefault("codes", []).append(
                        model.encode(b.x, b.y).flatten(1).float().cpu().numpy()
                    )
        codes = np.concatenate(out.pop("codes")).astype(np.float64) if "codes" in out else None
        result = {
            k: np.concatenate(v).astype(np.float64) for k, v in out.items() if k not in ("latent", "knn")
        }
        if "latent" in want:
            result["latent"] = -self.density_.score_samples(codes)
        if "knn" in want:
            result["knn"] = self.neighbors_.score(codes)
        return result

    def _step_score(self) -> str:
        """The series mapping in use: ``series_score``, or for ``auto`` ``peak`` on one channel and
        ``window`` on several (chosen on validation signals: ``benchmarks/series_validate.py``)."""
        if self.series_score != "auto":
            return self.series_score
        return "window" if len(self.windowing_.scaling.center) > 1 else "peak"

    def _fitted(self, calibrating: bool = False) -> AnomalyDetector:
        if getattr(self, "run_", None) is None or (self.threshold_ is None and not calibrating):
            raise ConfigError("this AnomalyDetector is not fitted yet: call fit(X) first")
        return self

    # --- labels -------------------------------------------------------------------------------------
    def evaluate(self, X: ArrayDataset | np.ndarray, is_anomaly: np.ndarray) -> dict[str, Any]:
        """AUROC, AUPRC (anomalies as the positive class) and the confusion matrix at the threshold."""
        from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

        truth = np.asarray(is_anomaly).astype(bool)
        scores = self.anomaly_score(X)
        if truth.all() or not truth.any():
            raise DataError("AUROC needs both normal and anomalous samples among the labels")
        flagged = scores > self._fitted().threshold_
        (tn, fp), (fn, tp) = confusion_matrix(truth, flagged, labels=[False, True])
        return {
            "auroc": float(roc_auc_score(truth, scores)),
            "auprc": float(average_precision_score(truth, scores)),
            "threshold": self.threshold_,
            "confusion": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
            "fpr": fp / max(1, fp + tn),
            "tpr": tp / max(1, tp + fn),
            "scores": scores,
        }

    # --- files --------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """A run directory (``config.json`` + ``model.safetensors``) plus ``detector.json`` and,
        for latent scores, ``density.safetensors``. No pickle anywhere; each file atomic."""
        self._fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        checkpoint.write_config(directory, self.run_.config, self.run_.dataset)
        checkpoint.save_weights(directory, self.run_.model)
        if self.density_ is not None:
            save_mixture(self.density_, directory / DENSITY)
        if self.neighbors_ is not None:
            self.neighbors_.save(directory / NEIGHBORS)
        state = {
            "config": dataclasses.asdict(self._settings()),
            "score": self.score_,
            "threshold": self.threshold_,
            "stats": self.stats_,
            "calibration_scores": self.calibration_scores_.tolist(),
            **({"series": self.windowing_.to_dict()} if self.windowing_ is not None else {}),
            **({"channels": self.channels_.to_dict()} if self.channels_ is not None else {}),
            **({"lambda": self.lambda_} if self.lambda_ is not None else {}),
        }
        atomic_write_json(directory / DETECTOR, state)
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> AnomalyDetector:
        """Load a saved detector on ``device`` (CPU by default, whatever trained it)."""
        directory = Path(directory)
        path = directory / DETECTOR
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            params = {**state["config"], "device": device}
            det = cls(**{k: v for k, v in params.items() if k in _PARAMS})
            det._settings()  # the stored parameters are valid
            det.score_ = str(state["score"])
            det.threshold_ = float(state["threshold"])
            det.stats_ = {k: [float(v[0]), float(v[1])] for k, v in state.get("stats", {}).items()}
            det.calibration_scores_ = np.asarray(state["calibration_scores"], dtype=np.float64)
            det.windowing_ = Windowing.from_dict(state["series"]) if "series" in state else None
            det.channels_ = None
            if "channels" in state:
                from aekit.apps.series import ChannelScoring

                det.channels_ = ChannelScoring.from_dict(state["channels"])
            det.lambda_ = float(state["lambda"]) if "lambda" in state else None
        except FileNotFoundError:
            raise CheckpointError(f"{path}: missing (is {directory} a detector directory?)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: not a valid detector file ({type(e).__name__}: {e})") from None
        except ConfigError as e:
            raise CheckpointError(f"{path}: not a valid detector file ({e})") from None
        if det.score_ not in SCORES[1:]:
            raise CheckpointError(f"{path}: unknown score {det.score_!r}")
        det.run_ = load(directory, device=str(resolve_device(device)))
        det.density_, det.neighbors_ = None, None
        needs = MIXES.get(det.score_, (det.score_,))
        if "latent" in needs:
            det.density_ = load_mixture(directory / DENSITY)
        if "knn" in needs:
            det.neighbors_ = NearestCodes.load(directory / NEIGHBORS)
        return det


# How a robust detector judges its training rows to choose the reference codes of its latent
# scores: ``knn`` (the distance of each row's code to its nearest codes among all rows; it leaves
# out ROBUST_TRIM_SHARE times the contamination) or ``residual`` (the norm of its sparse part, the
# contamination share left out; the previous rule). Chosen on a validation split of Fashion-MNIST's
# training set (four classes, 10% contamination): docs/benchmarks/contamination.md.
ROBUST_TRIM = "knn"
ROBUST_TRIM_SHARE = 4.0


def _robust_neighbors(c: DetectorConfig, rows: int) -> int:
    """Neighbours for a robust detector's knn: at least ``contamination`` times the rows."""
    return max(c.neighbors, int(np.ceil((c.contamination or 0.05) * rows)))


def _robust_fit(fit_set: ArrayDataset, config, c: DetectorConfig, callbacks: list) -> tuple[Any, np.ndarray]:
    """Train the Robust Deep Autoencoder; return the run and the codes of the training rows it
    keeps (the reference of the latent scores), judged by :data:`ROBUST_TRIM`.

    ``knn``: the distance of each row's code to its nearest codes among all the rows (at least
    ``contamination`` times the rows as neighbours); the :data:`ROBUST_TRIM_SHARE` times
    ``contamination`` farthest are left out (at most half). ``residual``: the ``contamination``
    share with the largest sparse part is left out (:meth:`SparsePart.kept`).
    """
    from aekit.apps.robust import SparsePart, model_space

    rate = c.contamination or 0.05
    rows = model_space(fit_set)
    split = SparsePart(rows, c.robust, rate=rate)
    callbacks.append(split)
    run = fit(rows, config, callbacks)
    if ROBUST_TRIM == "residual":
        return run, _encode_rows(run.model, rows.x[split.kept()])  # rows.x holds L = X - S
    codes = _encode_rows(run.model, split.x)  # the original rows
    scores = torch.from_numpy(NearestCodes.fit(codes, _robust_neighbors(c, len(codes))).score(codes))
    keep = scores <= torch.quantile(scores, 1 - min(0.5, ROBUST_TRIM_SHARE * rate))
    return run, codes[keep.numpy()]


@torch.no_grad()
def _encode_rows(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Codes of rows already in model space, flattened: (N, D) float32."""
    device = next(model.parameters()).device
    model.eval()
    out = [model.encode(b.to(device)).flatten(1).float().cpu() for b in x.split(batch_size)]
    return torch.cat(out).numpy()


def _resolve_score(score: str, model, images: bool = False) -> str:
    """``auto`` -> ``nll`` for models with a likelihood, else ``codes`` for images (chosen on a
    validation split of Fashion-MNIST's training set) and ``combined`` for other data; a score the
    model cannot give is an error."""
    if score == "auto":
        return "nll" if model.has_likelihood else "codes" if images else "combined"
    if score == "nll" and not model.has_likelihood:
        raise ConfigError(
            f"score 'nll' needs a model with a likelihood (vae, cvae), not {model.model_name!r}"
        )
    return score


def _dataset(X: ArrayDataset | np.ndarray) -> ArrayDataset:
    from aekit.data.patches import PatchDataset

    if isinstance(X, ArrayDataset | PatchDataset):  # patches: a fully convolutional detector
        return X
    x = np.asarray(X)
    if x.ndim == 2 and x.dtype != np.uint8 and x.dtype.kind in "fiu":  # features (N, F) or series (N, T)
        x = x.astype(np.float32)
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise DataError(f"array: row {int(np.flatnonzero(bad)[0])} holds NaN or infinite values")
        return ArrayDataset(x, name="array")
    from aekit.data.files import from_array

    return from_array(x, "array")


def _numeric(data: ArrayDataset) -> bool:
    """Real-valued features that are not a table read from CSV: scaled robustly in ``fit``."""
    return (
        len(data.shape) == 1
        and data.schema is None
        and data.series is None
        and str(data.x.dtype).removeprefix("torch.") != "uint8"
    )


def _image_model(data: ArrayDataset, options: dict[str, Any], robust: str | None = None) -> str:
    """The model an image detector trains when none is named: ``geoconv`` (the conv net whose code
    also learns which rotation an image went through) for square images, whose codes it makes
    better at separating anomalies (docs/benchmarks/one_class.md); ``conv`` otherwise, when the
    options choose another architecture (``arch=fcn`` for images of any size), and for robust
    detectors (the configuration the contamination benchmark measured)."""
    height, width = data.shape[-2:] if len(data.shape) == 3 else (0, 1)
    return "geoconv" if height == width and "arch" not in options and not robust else "conv"


def _cross_channel(c: DetectorConfig, model: str, channels: int) -> bool:
    """Whether a series detector adds the cross-channel score (``cross_channel``, None = auto)."""
    from aekit.models.conv1d import SignalAutoencoder

    signal = issubclass(get_spec(model).cls, SignalAutoencoder)  # it can hide channels in training
    if c.cross_channel is False or (c.cross_channel is None and (channels < 2 or not signal)):
        return False
    if channels < 2:
        raise ConfigError("detector: cross_channel needs a series of more than one channel")
    if not signal:
        raise ConfigError(f"detector: cross_channel needs a model of signals (conv1d, gru), not {model!r}")
    return True


def _median_iqr(values: np.ndarray) -> tuple[float, float]:
    """The median and interquartile range (at least 1e-12) that standardise a score."""
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return float(q50), float(max(q75 - q25, 1e-12))


def _series(X: np.ndarray) -> ArrayDataset:
    from aekit.data.series import from_values

    return from_values(np.asarray(X), "array")


def extremes_figure(det: AnomalyDetector, data: ArrayDataset, scores: np.ndarray, n: int = 8):
    """The ``n`` most and least anomalous images, each above its reconstruction."""
    from aekit.report.figures import comparison_grid

    data = det.run_.prepare(data)
    order = np.argsort(scores)
    most, least = order[::-1][:n].copy(), order[:n].copy()
    rows = []
    for label, idx in (("most anomalous", most), ("least anomalous", least)):
        x = data.subset(idx).take(torch.arange(len(idx)))[0].numpy()
        rows += [(label, x), ("reconstruction", det.run_.reconstruct(data.subset(idx)))]
    return comparison_grid(rows, n)


def class_index(data: ArrayDataset, normal_class: str) -> int:
    """The label index of ``normal_class``, given as a class name or an index.

    Raises:
        DataError: the data has no labels, or no such class.
    """
    if data.y is None:
        raise DataError(f"{data.name}: has no labels, so --normal-class cannot pick the normal samples")
    names = list(data.classes or [])
    if normal_class in names:
        return names.index(normal_class)
    if normal_class.isdigit() and int(normal_class) < max(len(names), int(data.y.max()) + 1):
        return int(normal_class)
    raise DataError(f"{data.name}: no class {normal_class!r} (classes: {', '.join(names) or 'numbered'})")


def report_extras(directory: str | Path) -> list:
    """The detector's report sections from the files ``detect fit`` wrote in ``directory``:
    the ROC curve, the most and least anomalous inputs and the evaluation table, where present."""
    from aekit.evaluation.summary import Extra

    directory = Path(directory)
    extras = [
        Extra(title, png=(directory / file).read_bytes())
        for file, title in (
            ("roc.png", "ROC curve (detector)"),
            ("extremes.png", "Most and least anomalous inputs (detector)"),
            ("series.png", "The signal with its flagged spans (series detector)"),
        )
        if (directory / file).is_file()
    ]
    if (directory / "evaluation.json").is_file():
        evaluation = json.loads((directory / "evaluation.json").read_text())
        rows = [(k, v) for k, v in evaluation.items() if not isinstance(v, dict | list)]
        rows += [(f"confusion {k}", v) for k, v in evaluation.get("confusion", {}).items()]
        extras.append(Extra("Detector evaluation", rows=tuple(rows)))
    return extras
