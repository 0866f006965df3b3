"""Autoencoder codes of real tables beside PCA at the same size, measured in the same run.

Tables shipped with scikit-learn (available offline): breast cancer (569 x 30) and wine
(178 x 13). For each, a stratified 70/30 split (5 seeds); columns min-max scaled on the
training part; for code sizes 2, 4 and 8:

- reconstruction MSE of the test rows, in scaled units;
- accuracy of a logistic regression trained on the training rows' codes, on the test rows' codes.

Run: ``.venv/bin/python benchmarks/tabular.py [--seeds 5] [--epochs 200]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from aekit.apps.transformer import AutoencoderTransformer

TABLES = {"breast cancer": load_breast_cancer, "wine": load_wine}


def evaluate(reducer, Xtr, Xte, ytr, yte) -> tuple[float, float]:
    scaler = MinMaxScaler().fit(Xtr)
    a, b = scaler.transform(Xtr), scaler.transform(Xte)
    reducer.fit(a)
    rec = reducer.inverse_transform(reducer.transform(b))
    mse = float(((rec - b) ** 2).mean())
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    acc = clf.fit(reducer.transform(a), ytr).score(reducer.transform(b), yte)
    return mse, float(acc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 4, 8])
    args = parser.parse_args()
    print("| table | code size | method | test MSE (scaled) | logistic regression accuracy | fit seconds |")
    print("|---|---:|---|---:|---:|---:|")
    for name, load in TABLES.items():
        X, y = load(return_X_y=True)
        for dim in args.dims:
            methods = {
                "PCA (scikit-learn)": lambda s, d=dim: PCA(d, random_state=s),
                "aekit AutoencoderTransformer": lambda s, d=dim: AutoencoderTransformer(
                    latent_dim=d, epochs=args.epochs, random_state=s
                ),
            }
            for label, make in methods.items():
                results, seconds = [], 0.0
                for seed in range(args.seeds):
                    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
                    start = time.perf_counter()
                    results.append(evaluate(make(seed), Xtr, Xte, ytr, yte))
                    seconds += time.perf_counter() - start
                mse, acc = np.mean(results, axis=0)
                mse_sd, acc_sd = np.std(results, axis=0)
                print(
                    f"| {name} | {dim} | {label} | {mse:.5f} ± {mse_sd:.5f} | {acc:.3f} ± {acc_sd:.3f} "
                    f"| {seconds / args.seeds:.2f} |"
                )


if __name__ == "__main__":
    main()
