"""Training on dirty data: Fashion-MNIST one-class with a share of the training set replaced by other classes.

For each normal class c and each contamination rate p (0, 5, 10, 20%): the training set is
``--train-size`` images, of which a share p are training images of the other nine classes (drawn
at random, seeded); the test set is all 10,000 test images, c the normal class. In one run:

- the plain detector (conv autoencoder, its default score for images, ``codes``) with
  ``contamination=p``;
- the robust detector: the same with ``robust`` (``--robust``, default ``l20``: the hard version
  of the Robust Deep Autoencoder's L2,1 split, Zhou & Paffenroth, KDD 2017), ``contamination=p``
  (which also sets its shrinkage), and its default score for robust training: ``codes`` (latent
  mixture + nearest codes) fitted on the codes of the training images it kept (it leaves out the
  4p share whose codes lie farthest from the others' codes), with at least p times the rows as
  neighbours;
- PyOD's ``AutoEncoder`` with ``contamination=p`` (when ``pyod`` is installed);

AUROC x100 on the test set for each, and, for ``detect clean`` with the robust detector, the
precision and recall of what it removes from its own contaminated training set (the foreign
images are the positives). Nothing here is tuned on the test set: all settings are the
defaults of the detectors (or those of ``benchmarks/one_class.py``).

``--validate`` is how the robust settings were chosen without the test set: the normal class's
training images are split, 1,000 of them (and 1,000 training images of the other classes) held
out, and the detectors are scored on those instead of the test set.

``benchmarks/contamination_tune.py`` compares the robust detector's settings on that validation
split.

Run: ``.venv/bin/python benchmarks/contamination.py [--classes 0 8] [--train-size 3000] [--epochs 15]
[--robust l20] [--validate]`` (one thread)
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from aekit.apps.anomaly import AnomalyDetector
from aekit.apps.clean import REMOVED, clean
from aekit.data.sources import load_dataset

RATES = (0.0, 0.05, 0.10, 0.20)


def contaminated(train, c: int, size: int, rate: float, seed: int, exclude=()):
    """``size`` training images: ``rate`` of them from other classes; returns (data, is_foreign).
    Images whose index is in ``exclude`` (a validation hold-out) are never drawn."""
    g = np.random.default_rng(seed)
    y = train.y.numpy()
    allowed = np.ones(len(y), dtype=bool)
    allowed[np.asarray(exclude, dtype=int)] = False
    n_bad = int(round(size * rate))
    normal = g.choice(np.flatnonzero((y == c) & allowed), size - n_bad, replace=False)
    foreign = g.choice(np.flatnonzero((y != c) & allowed), n_bad, replace=False)
    index = np.concatenate([normal, foreign])
    order = g.permutation(len(index))
    return train.subset(index[order]), np.r_[np.zeros(len(normal)), np.ones(n_bad)][order].astype(bool)


def held_out(train, c: int, seed: int = 1000):
    """Validation instead of test: 1,000 training images of class c and 1,000 of the others."""
    g = np.random.default_rng(seed + c)
    y = train.y.numpy()
    index = np.r_[
        g.choice(np.flatnonzero(y == c), 1000, replace=False), g.choice(np.flatnonzero(y != c), 1000, False)
    ]
    return index, train.subset(torch.as_tensor(index))


def detector(rate: float, args, robust: str | None) -> AnomalyDetector:
    options = {"robust": robust} if robust else {}
    if rate > 0:
        options["contamination"] = rate
    elif robust:
        options["contamination"] = 0.01  # the robust split needs a rate; 1% on clean data
    return AnomalyDetector(model="conv", epochs=args.epochs, device="cpu", seed=0, **options)


def pyod_auroc(data, test, truth, rate: float, args) -> float:
    try:
        from pyod.models.auto_encoder import AutoEncoder
    except ImportError:
        return float("nan")
    x = data.take(torch.arange(len(data)))[0].flatten(1).numpy()
    xt = test.take(torch.arange(len(test)))[0].flatten(1).numpy()
    model = AutoEncoder(
        epoch_num=args.epochs, contamination=max(rate, 0.01), verbose=0, random_state=0, device="cpu"
    )
    model.fit(x)
    return roc_auc_score(truth, model.decision_function(xt))


def clean_precision_recall(det: AnomalyDetector, data, foreign: np.ndarray) -> tuple[float, float]:
    """Run ``clean`` on the training set saved as .npz; read back what removed.csv lists."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.npz"
        np.savez(path, x=np.asarray(data.x), y=data.y.numpy())
        clean(det, data, Path(tmp) / "cleaned", source=str(path))
        with open(Path(tmp) / "cleaned" / REMOVED) as f:
            removed = np.array([int(r["index"]) for r in csv.DictReader(f)], dtype=int)
    hit = int(foreign[removed].sum()) if len(removed) else 0
    return hit / max(1, len(removed)), hit / max(1, int(foreign.sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[0, 8])
    parser.add_argument("--train-size", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    parser.add_argument("--no-pyod", action="store_true")
    parser.add_argument("--robust", default="l20", choices=("l1", "l21", "l20"), help="the robust split")
    parser.add_argument(
        "--validate", action="store_true", help="score held-out training images, not the test set"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    rows = []
    start, cpu = time.perf_counter(), time.process_time()
    for c in args.classes:
        exclude = ()
        if args.validate:
            exclude, test = held_out(train, c)
        truth = (test.y != c).numpy()
        for rate in args.rates:
            data, foreign = contaminated(train, c, args.train_size, rate, seed=c, exclude=exclude)
            plain = detector(rate, args, None).fit(data)
            robust = detector(rate, args, args.robust).fit(data)
            row = {
                "class": f"{c} {train.classes[c]}",
                "rate": rate,
                "plain": roc_auc_score(truth, plain.anomaly_score(test)),
                "robust": roc_auc_score(truth, robust.anomaly_score(test)),
                "pyod": float("nan") if args.no_pyod else pyod_auroc(data, test, truth, rate, args),
            }
            if rate > 0:
                row["precision"], row["recall"] = clean_precision_recall(robust, data, foreign)
            rows.append(row)
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)

    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"\ntrain size {args.train_size}, {args.epochs} epochs, {wall:.0f} s wall, {cpu:.0f} CPU-s in all")
    what = "validation (held-out training images)" if args.validate else "test set"
    print(f"AUROC on the {what}; robust split {args.robust}")
    head = [
        "class",
        "contamination",
        "plain AUROC",
        f"robust ({args.robust}) AUROC",
        "PyOD AutoEncoder AUROC",
    ]
    head += ["clean precision", "clean recall"]
    print("| " + " | ".join(head) + " |\n|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        pr = (f"{100 * r['precision']:.1f} | {100 * r['recall']:.1f}") if "precision" in r else " | "
        print(
            f"| {r['class']} | {100 * r['rate']:.0f}% | {100 * r['plain']:.1f} | {100 * r['robust']:.1f} | "
            f"{100 * r['pyod']:.1f} | {pr} |"
        )
    print("| **mean** | | | | | | |")
    for rate in args.rates:
        sel = [r for r in rows if r["rate"] == rate]
        means = {k: 100 * float(np.mean([r[k] for r in sel])) for k in ("plain", "robust", "pyod")}
        cells = f"{means['plain']:.1f} | {means['robust']:.1f} | {means['pyod']:.1f}"
        print(f"| mean | {100 * rate:.0f}% | {cells} | | |")
    clean0 = np.mean([r["plain"] for r in rows if r["rate"] == 0])
    for rate in args.rates:
        robust = np.mean([r["robust"] for r in rows if r["rate"] == rate])
        delta = 100 * (robust - clean0)
        print(f"robust at {100 * rate:.0f}%: {delta:+.1f} AUROC points against the plain 0% run")
        for c in args.classes:  # per class, against the same class's plain 0% run
            mine = [r for r in rows if r["class"].split()[0] == str(c)]
            zero = [r["plain"] for r in mine if r["rate"] == 0]
            at = [r["robust"] for r in mine if r["rate"] == rate]
            if zero and at:
                print(f"  class {c}: {100 * (at[0] - zero[0]):+.1f}")


if __name__ == "__main__":
    main()
