"""Time-series anomaly detection: aekit's series detector beside aeon's classic detectors.

The labelled series that ship inside the ``aeon`` wheel, scored with aeon's own metrics
(AUC-ROC, AUC-PR and the range-based VUS-PR of Paparrizos et al., VLDB 2022), every detector
measured in this run on the same series:

- ``KDD-TSAD_135`` (UCR anomaly archive, InternalBleeding16): the TRAIN file (the first 1,200
  steps, all normal) is what aekit and the semi-supervised baselines fit on; the TEST file (all
  7,501 steps, 12 labelled anomalous ones) is what every detector scores.
- ``Daphnet_S06R02E0`` (9 acceleration channels, 7,040 steps): aeon 1.6 ships this excerpt with
  **no** labelled anomaly (its loader is deprecated for that reason), so AUC cannot be computed on
  it as shipped. We plant three anomalies with a fixed seed (a spike in one channel, a level
  shift of 150 steps in another, 300 frozen steps in a third: what a stuck sensor looks like) and
  score against the planted labels. No clean training part exists: every detector fits on the
  series it scores (unsupervised); aekit's robust autoencoder (l21, contamination 0.05) is the
  variant made for that.

Baselines (aeon): STOMP (matrix profile), LeftSTAMPi, MERLIN, KMeansAD, DWT-MLEAD and Isolation
Forest, each with its documented default window and with the series' dominant period as the
window (aekit's own choice, :func:`aekit.data.series.dominant_period`). The univariate-only ones
run on each Daphnet channel, their per-channel scores min-max scaled and averaged.

Run (aeon pins an older NumPy than aekit's venv, so it lives in its own venv, see
docs/benchmarks/series.md): ``PYTHONPATH=src <aeon venv>/bin/python benchmarks/series.py``
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from aekit.apps.anomaly import AnomalyDetector
from aekit.data.series import dominant_period, from_values


def load_kdd() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from aeon.datasets import load_kdd_tsad_135

    train, _ = load_kdd_tsad_135("train")
    test, labels = load_kdd_tsad_135("test")
    return train.reshape(-1, 1), test.reshape(-1, 1), labels.astype(int)


def load_daphnet(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The shipped Daphnet excerpt with three planted anomalies (it holds no labelled one)."""
    import aeon
    import pandas as pd

    path = Path(aeon.__file__).parent / "datasets" / "data" / "Daphnet_S06R02E0" / "S06R02E0.csv"
    frame = pd.read_csv(path)
    x = frame.drop(columns=["timestamp", "is_anomaly"]).to_numpy(dtype=np.float64)
    g = np.random.default_rng(seed)
    labels = np.zeros(len(x), dtype=int)
    std = x.std(0)
    spike = int(g.integers(1000, 2000))
    x[spike, 1] += 8 * std[1]
    labels[spike] = 1
    shift = int(g.integers(3000, 4000))
    x[shift : shift + 150, 4] += 3 * std[4]
    labels[shift : shift + 150] = 1
    frozen = int(g.integers(5000, 6500))
    x[frozen : frozen + 300, 7] = x[frozen, 7]
    labels[frozen : frozen + 300] = 1
    return x, labels


def metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from aeon.benchmarking.metrics.anomaly_detection import pr_auc_score, range_pr_vus_score, roc_auc_score

    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    return {
        "AUC-ROC": roc_auc_score(labels, scores),
        "AUC-PR": pr_auc_score(labels, scores),
        "VUS-PR": range_pr_vus_score(labels, scores),
    }


def per_channel(make, x: np.ndarray) -> np.ndarray:
    """A univariate detector on each channel; per-channel scores min-max scaled, then averaged."""
    out = []
    for c in range(x.shape[1]):
        s = np.asarray(make().fit_predict(x[:, c].copy()), dtype=np.float64)
        span = s.max() - s.min()
        out.append((s - s.min()) / span if span > 0 else np.zeros_like(s))
    return np.mean(out, 0)


def baselines(period: int, n_train: int | None, channels: int) -> dict[str, tuple[callable, bool]]:
    """name -> (factory, univariate only); windows: aeon's defaults and the dominant period.

    LeftSTAMPi is a streaming detector: it is given the clean TRAIN part as its initial matrix
    profile (``n_init_train``) where there is one (KDD) and left out on Daphnet, where it would
    stream 7,040 steps through each of nine channels one step at a time (beyond this run's budget).
    """
    from aeon.anomaly_detection.series.distance_based import MERLIN, STOMP, KMeansAD, LeftSTAMPi
    from aeon.anomaly_detection.series.distribution_based import DWT_MLEAD
    from aeon.anomaly_detection.series.outlier_detection import IsolationForest

    out = {
        f"STOMP (window {period})": (lambda: STOMP(window_size=period), True),
        "STOMP (window 10, default)": (lambda: STOMP(window_size=10), True),
    }
    if n_train is not None:
        out[f"LeftSTAMPi (window {period}, TRAIN as initial profile)"] = (
            lambda: LeftSTAMPi(window_size=period, n_init_train=n_train),
            True,
        )
    out |= {
        "MERLIN (lengths 5-50, default)": (lambda: MERLIN(), True),
        "KMeansAD (window 20, default)": (lambda: KMeansAD(window_size=20, random_state=0), False),
        f"KMeansAD (window {period})": (lambda: KMeansAD(window_size=period, random_state=0), False),
        "DWT-MLEAD (default)": (lambda: DWT_MLEAD(), True),
        "IsolationForest (window 10, default)": (
            lambda: IsolationForest(window_size=10, random_state=0),
            False,
        ),
        f"IsolationForest (window {period})": (
            lambda: IsolationForest(window_size=period, random_state=0),
            False,
        ),
    }
    return out


def run_aekit(train: np.ndarray, test: np.ndarray, args, before: bool = False, **options) -> np.ndarray:
    """aekit's detector fitted on ``train``, its scores of ``test``; ``before``: channels combined by
    their mean, as detectors fitted before 2026-11-28 did (the same model otherwise)."""
    det = AnomalyDetector(**{"model": "conv1d", "epochs": args.epochs, "device": "cpu", "seed": 0, **options})
    det.fit(from_values(train, "train"))
    if before:
        det.channels_ = None
    return det.anomaly_score(from_values(test, "test"))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--series", nargs="+", default=["KDD-TSAD_135", "Daphnet_S06R02E0"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")

    for name in args.series:
        if name == "KDD-TSAD_135":
            train, test, labels = load_kdd()
            ours = {
                "aekit conv1d, peak score (default; fit on TRAIN)": {},
                "aekit conv1d, window score (fit on TRAIN)": {"series_score": "window"},
                "aekit conv1d, step score (fit on TRAIN)": {"series_score": "step"},
                "aekit gru (recurrent), peak score (fit on TRAIN)": {"model": "gru"},
            }
        else:
            test, labels = load_daphnet()
            train = test
            ours = {
                "aekit conv1d, default: window score, channels apart + cross-channel (fit on the series)": {},
                "aekit conv1d, peak score, channels apart + cross-channel": {"series_score": "peak"},
                "aekit conv1d, window score, channels apart, no cross-channel": {"cross_channel": False},
                "aekit conv1d, peak score, mean over channels (the default before 2026-11-28)": {
                    "series_score": "peak",
                    "cross_channel": False,
                    "before": True,
                },
                "aekit conv1d, step score (fit on the series)": {"series_score": "step"},
                "aekit gru (recurrent), default score (fit on the series)": {"model": "gru"},
                "aekit conv1d robust l21, default score (fit on the series)": {
                    "robust": "l21",
                    "contamination": 0.05,
                },
            }
        period = dominant_period(train)
        print(
            f"\n{name}: {test.shape[0]} steps x {test.shape[1]} channels, {labels.sum()} anomalous; "
            f"dominant period of the training part {period}"
        )
        rows = []
        first, *later = ours.items()  # the default first, the variants after the baselines
        for label, options in [first]:
            scores, seconds = timed(
                lambda options=options, train=train, test=test: run_aekit(train, test, args, **options)
            )
            rows.append((label, metrics(labels, scores), seconds))
            print(f"  {label}: {rows[-1][1]}  {seconds:.1f} s", flush=True)
        n_train = len(train) if name == "KDD-TSAD_135" else None
        for label, (make, univariate) in baselines(period, n_train, test.shape[1]).items():
            try:
                if univariate and test.shape[1] > 1:
                    scores, seconds = timed(lambda make=make, test=test: per_channel(make, test))
                else:
                    x = test[:, 0] if test.shape[1] == 1 else test
                    scores, seconds = timed(lambda make=make, x=x: make().fit_predict(x.copy(), axis=0))
                scores = np.asarray(scores, dtype=np.float64)
                if len(scores) != len(labels):  # LeftSTAMPi scores only the steps after its initial part
                    scores = np.r_[np.zeros(len(labels) - len(scores)), scores]
            except Exception as e:  # a baseline that cannot run on this series is reported, not fatal
                print(f"  {label}: failed ({type(e).__name__}: {e})")
                continue
            rows.append((label, metrics(labels, scores), seconds))
            print(f"  {label}: {rows[-1][1]}  {seconds:.1f} s", flush=True)
        for label, options in later:
            scores, seconds = timed(
                lambda options=options, train=train, test=test: run_aekit(train, test, args, **options)
            )
            rows.append((label, metrics(labels, scores), seconds))
            print(f"  {label}: {rows[-1][1]}  {seconds:.1f} s", flush=True)
        print(f"\n| {name} | AUC-ROC | AUC-PR | VUS-PR | time |\n|---|---:|---:|---:|---:|")
        best = max(m["VUS-PR"] for _, m, _ in rows)
        for label, m, seconds in rows:
            vus = f"**{m['VUS-PR']:.3f}**" if m["VUS-PR"] == best else f"{m['VUS-PR']:.3f}"
            print(f"| {label} | {m['AUC-ROC']:.3f} | {m['AUC-PR']:.3f} | {vus} | {seconds:.1f} s |")


if __name__ == "__main__":
    main()
