"""How the robust detector's trimming rule was chosen, on validation data only.

For each normal class and contamination rate: the contaminated training set of
``benchmarks/contamination.py`` (drawn with its held-out images excluded), and the validation set
of ``contamination.py --validate`` (1,000 held-out training images of the class, 1,000 of the
others); never the test set. Detectors, each fitted with ``score="codes"`` so that both its
``knn`` part and the ``codes`` mix (latent mixture + knn) can be read from one model:

- plain, 0% (the reference the target compares with) and plain at the rate;
- robust ``l20`` with the trimming rule (``aekit.apps.anomaly.ROBUST_TRIM``) ``residual`` (the
  norm of the sparse part, last session's rule) or ``knnF`` (the distance of each training row's
  code to its nearest training codes, F times the rate left out: ``knn``, ``knn2``, ``knn4``).
  (A second pass, retraining on the kept rows, was measured with this script at commit b556c36,
  where ``AnomalyDetector`` had a ``passes`` parameter: ``--variants robust:2:knn``.)

Prints one JSON line per detector (AUROC x100 of knn and codes on the validation set, and
``detect clean``'s precision and recall on the training set), then a table.

Run: ``OMP_NUM_THREADS=1 python benchmarks/contamination_tune.py --classes 6 2 8 0 --rate 0.1``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from contamination import clean_precision_recall, contaminated, held_out
from sklearn.metrics import roc_auc_score

from aekit.apps import anomaly
from aekit.apps.anomaly import AnomalyDetector
from aekit.data.sources import load_dataset

VARIANTS = (("plain", 1, None), ("robust", 1, "residual"), ("robust", 1, "knn"), ("robust", 1, "knn2"),
            ("robust", 1, "knn4"))  # fmt: skip


def scores(det: AnomalyDetector, data) -> dict[str, np.ndarray]:
    parts = det._parts(data)
    z = {k: (parts[k] - m) / s for k, (m, s) in det.stats_.items()}
    return {"knn": parts["knn"], "codes": np.mean(list(z.values()), axis=0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[6, 2, 8, 0])
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--train-size", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--variants", nargs="+", default=None, help="e.g. robust:1:knn4 (kind:passes:trim)")
    parser.add_argument("--no-reference", action="store_true", help="skip the plain 0% detector")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = VARIANTS
    if args.variants:
        variants = [(k, int(p), t if t != "-" else None) for k, p, t in (v.split(":") for v in args.variants)]
    train = load_dataset("fashion-mnist", "train")
    rows = []
    for c in args.classes:
        exclude, val = held_out(train, c)
        truth = (val.y != c).numpy()
        runs = [] if args.no_reference else [("plain", 0.0, 1, None)]
        runs += [(k, args.rate, p, t) for k, p, t in variants]
        for kind, rate, passes, trim in runs:
            start = time.process_time()
            data, foreign = contaminated(train, c, args.train_size, rate, seed=c, exclude=exclude)
            if passes != 1:
                raise SystemExit("passes > 1: run this script at commit b556c36")
            options = {"robust": "l20"} if kind == "robust" else {}
            if rate > 0:
                options["contamination"] = rate
            anomaly.ROBUST_TRIM = (trim or "knn").rstrip("0123456789")
            share = trim[3:] if trim and trim.startswith("knn") else ""
            anomaly.ROBUST_TRIM_SHARE = float(share) if share else 1.0  # knn2: twice the rate
            det = AnomalyDetector(model="conv", score="codes", epochs=args.epochs, device="cpu", seed=0,
                                  **options)  # fmt: skip
            det.fit(data)
            s = scores(det, val)
            row = {"class": c, "kind": kind, "rate": rate, "passes": passes, "trim": trim}
            row.update({k: round(100 * roc_auc_score(truth, v), 2) for k, v in s.items()})
            if rate > 0 and kind == "robust":
                p, r = clean_precision_recall(det, data, foreign)
                row.update(precision=round(100 * p, 1), recall=round(100 * r, 1))
            row["cpu_s"] = round(time.process_time() - start)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| class | detector | rate | passes | trim | knn | codes | clean precision | clean recall |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        pr = f"{r.get('precision', '')} | {r.get('recall', '')}"
        print(f"| {r['class']} | {r['kind']} | {100 * r['rate']:.0f}% | {r['passes']} | {r['trim'] or ''} | "
              f"{r['knn']:.1f} | {r['codes']:.1f} | {pr} |")  # fmt: skip
    means = {}
    for r in rows:
        means.setdefault((r["kind"], r["rate"], r["passes"], r["trim"]), []).append(r)
    print("\nmeans over classes:")
    for key, sel in means.items():
        print(key, {m: round(float(np.mean([r[m] for r in sel])), 2) for m in ("knn", "codes")}, len(sel))


if __name__ == "__main__":
    main()
