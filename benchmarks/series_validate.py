"""Choosing how a series detector scores time steps, on signals that are NOT in the benchmark.

Validation only: matplotlib's membrane recording (a neuron's potential, one spike every ~140
steps, 12,000 steps), cut into two signals (its first and second half), each into a clean
training part and a later part in which ONE anomaly is planted per task (as in the UCR anomaly
archive: a spike, a short level shift, a frozen stretch, a noise burst, a stretch played back
at another speed, a missing beat).
A detector is trained once per signal on the clean part; every per-step scoring is compared on
every task with aeon's VUS-PR (the benchmark's metric). Nothing here reads the benchmark series.

``--multichannel`` validates how a detector combines channels, on a signal of several channels that
is not in the benchmark either: the walking and running recordings of aeon's BasicMotions
classification set (a smartwatch's 3-axis accelerometer and gyroscope, 6 channels; its 40 cases of
100 steps joined into one series of 4,000 steps). One anomaly is planted per task, in one random
channel (a spike, a level shift, a frozen stretch, a noise burst), in all channels (a noise
burst) or between two (two channels swapped for a stretch); the detector fits on the series it
scores, with no clean part (unsupervised), as on the benchmark's Daphnet series. Compared: the mean
over channels (detectors before 2026-11-28), each channel's error relative to its typical error
and the largest channel taken, and that plus the cross-channel score (``cross_channel``).

Run (in the aeon venv, see docs/benchmarks/series.md):
``PYTHONPATH=src <aeon venv>/bin/python benchmarks/series_validate.py [--multichannel]``
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

from aekit.apps.anomaly import AnomalyDetector
from aekit.apps.series import window_errors
from aekit.data.series import dominant_period, from_values, to_steps, windows


def signals() -> dict[str, np.ndarray]:
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("membrane.dat") as f:
        membrane = np.frombuffer(f.read(), np.float32).astype(np.float64)
    return {"membrane A": membrane[:6000], "membrane B": membrane[6000:]}


def plant(
    x: np.ndarray, kind: str, at: int, period: int, g: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One anomaly of ``kind`` at step ``at``; returns (series, labels)."""
    x = x.copy()
    labels = np.zeros(len(x), dtype=int)
    sd = x.std()
    n = max(3, period // 3)
    if kind == "spike":
        x[at] += 6 * sd
        n = 1
    elif kind == "shift":
        x[at : at + n] += 1.5 * sd
    elif kind == "frozen":
        x[at : at + n] = x[at]
    elif kind == "noise":
        x[at : at + n] += g.normal(0, 0.8 * sd, n)
    elif kind == "speed":  # a stretch played back at 1.5x speed
        src = x[at : at + int(1.5 * n)].copy()
        x[at : at + n] = np.interp(np.linspace(0, len(src) - 1, n), np.arange(len(src)), src)
    elif kind == "missing":  # one period replaced by the straight line between its ends
        n = period
        x[at : at + n] = np.linspace(x[at], x[at + n], n)
    labels[at : at + n] = 1
    return x, labels


def step_scores(det: AnomalyDetector, test: np.ndarray, train_codes: np.ndarray) -> dict[str, np.ndarray]:
    """Every candidate mapping of window errors (and of codes) to one score per step."""
    from aekit.evaluation.density import NearestCodes

    w = det.windowing_
    model = det.run_.model
    win, starts = windows(w.scaling.apply(test.reshape(-1, 1)), w.window, w.stride)
    err = window_errors(model, win)  # (N, window)
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(win)).flatten(1).numpy()
    knn = NearestCodes.fit(train_codes, 5).score(codes)
    T = len(test)
    out = {
        "window": to_steps(err.mean(1), starts, w.window, T),
        "step": to_steps(err, starts, w.window, T),
        "window-max": to_steps(err.max(1), starts, w.window, T),
        "knn": to_steps(knn, starts, w.window, T),
    }
    z = lambda v: (v - np.median(v)) / (np.subtract(*np.percentile(v, [75, 25])) + 1e-12)  # noqa: E731
    out["window+knn"] = z(out["window"]) + z(out["knn"])
    k = max(1, w.window // 4)
    out["step-smoothed"] = np.convolve(out["step"], np.ones(k) / k, mode="same")
    return out


def motions() -> np.ndarray:
    """BasicMotions' walking and running cases joined: (4000, 6)."""
    from aeon.datasets import load_classification

    X, y = load_classification("BasicMotions")  # (80, 6, 100)
    keep = [i for i in np.argsort(y, kind="stable") if y[i] in ("walking", "running")]
    return np.concatenate([X[i].T for i in keep]).astype(np.float64)


def plant_channels(x: np.ndarray, kind: str, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One anomaly of ``kind`` in a random channel (or all, or two) at a random step; (series, labels)."""
    x = x.copy()
    T, C = x.shape
    labels = np.zeros(T, dtype=int)
    sd = x.std(0)
    at, c, n = int(g.integers(T // 5, 4 * T // 5)), int(g.integers(C)), 150
    if kind == "spike":
        x[at, c] += 8 * sd[c]
        n = 1
    elif kind == "shift":
        x[at : at + n, c] += 3 * sd[c]
    elif kind == "frozen":
        n = 300
        x[at : at + n, c] = x[at, c]
    elif kind == "noise":
        x[at : at + n, c] += g.normal(0, sd[c], n)
    elif kind == "noise, all channels":
        x[at : at + n] += g.normal(0, 1, (n, C)) * sd
    elif kind == "swap":
        d = (c + 1) % C
        x[at : at + n, [c, d]] = x[at : at + n, [d, c]]
    labels[at : at + n] = 1
    return x, labels


def multichannel(args) -> None:
    """The channel combinations compared on BasicMotions (see the module docstring)."""
    from aeon.benchmarking.metrics.anomaly_detection import range_pr_vus_score

    signal = motions()
    kinds = ("spike", "shift", "frozen", "noise", "noise, all channels", "swap")
    g = np.random.default_rng(0)
    table: dict[str, list[float]] = {}
    print(f"BasicMotions walking + running: {signal.shape[0]} steps x {signal.shape[1]} channels")
    for kind in kinds:
        for _rep in range(2):
            x, labels = plant_channels(signal, kind, g)
            data = from_values(x, "motions")
            got = {}
            for cross in (False, True):
                det = AnomalyDetector(
                    model=args.model, epochs=args.epochs, device="cpu", seed=0, cross_channel=cross
                )
                det.fit(data)
                for how in ("peak", "window"):
                    det.series_score = how
                    got[f"{how}, {'max + cross' if cross else 'max'}"] = det.anomaly_score(data)
                    if not cross:
                        scoring, det.channels_ = det.channels_, None
                        got[f"{how}, mean (before)"] = det.anomaly_score(data)
                        det.channels_ = scoring
            for key, s in got.items():
                table.setdefault(key, []).append(range_pr_vus_score(labels, s))
        print(f"  {kind}: " + " ".join(f"{k} {np.mean(v[-2:]):.3f}" for k, v in table.items()), flush=True)
    print("\nmean VUS-PR over all tasks:")
    for key, v in sorted(table.items(), key=lambda kv: -np.mean(kv[1])):
        print(f"  {key:22s} {np.mean(v):.3f}")


def main() -> None:
    from aeon.benchmarking.metrics.anomaly_detection import range_pr_vus_score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--test", type=int, default=4500)
    parser.add_argument("--multichannel", action="store_true", help="the channel combinations instead")
    parser.add_argument("--model", default="conv1d", help="the detector's model (conv1d, gru)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    if args.multichannel:
        multichannel(args)
        return
    kinds = ("spike", "shift", "frozen", "noise", "speed", "missing")
    table: dict[str, list[float]] = {}
    for name, x in signals().items():
        train, rest = x[: args.train], x[args.train : args.train + args.test]
        det = AnomalyDetector(model=args.model, epochs=args.epochs, device="cpu", seed=0)
        det.fit(from_values(train, "train"))
        w = det.windowing_
        tw, _ = windows(w.scaling.apply(train[: int(0.8 * len(train))].reshape(-1, 1)), w.window, 1)
        with torch.no_grad():
            train_codes = det.run_.model.encode(torch.from_numpy(tw)).flatten(1).numpy()
        print(f"{name}: {len(x)} steps, period {dominant_period(train.reshape(-1, 1))}, window {w.window}")
        g = np.random.default_rng(0)
        for kind in kinds:
            for _rep in range(2):
                at = int(g.integers(len(rest) // 5, 4 * len(rest) // 5))
                test, labels = plant(rest, kind, at, w.window, g)
                for key, s in step_scores(det, test, train_codes).items():
                    table.setdefault(key, []).append(range_pr_vus_score(labels, s))
            print(
                f"  {kind}: " + " ".join(f"{k} {np.mean(v[-2:]):.3f}" for k, v in table.items()), flush=True
            )
    print("\nmean VUS-PR over all tasks:")
    for key, v in sorted(table.items(), key=lambda kv: -np.mean(kv[1])):
        print(f"  {key:14s} {np.mean(v):.3f}")


if __name__ == "__main__":
    main()
