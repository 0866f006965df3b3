"""Choosing the one-class image detector on TRAINING data only (the test set is never read).

For each class c: train aekit's detector on 5,000 of c's 6,000 training images, and validate on
the other 1,000 (normal) and on 1,000 training images of the other nine classes (anomalous).
For each model variant it saves, per split, the reconstruction error, the per-pixel error map and
the codes, plain and horizontally flipped, so that scores can be compared afterwards without
retraining (``--analyse``). Per-variant CPU seconds are recorded (process time, one thread).

Run: ``python benchmarks/one_class_tune.py --out runs/tune [--classes 0 2 ...] [--variants base wide]``
then ``python benchmarks/one_class_tune.py --out runs/tune --analyse``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from aekit.apps.anomaly import AnomalyDetector
from aekit.data.sources import load_dataset

VARIANTS = {  # "base*": the conv net, the image default before geoconv
    "base": {"seed": 0, "model": "conv"},
    "base_s1": {"seed": 1, "model": "conv"},
    "base_s2": {"seed": 2, "model": "conv"},
    "wide": {"seed": 0, "model": "conv", "model_options": {"channels": [64, 128]}},
    "base_e40": {"seed": 0, "model": "conv", "epochs": 40},
    "base_e30": {"seed": 0, "model": "conv", "epochs": 30},
    "lat64": {"seed": 0, "model": "conv", "latent_dim": 64},
    # a rotation-prediction head on the code (aekit.models.geoconv), weight 0.1 and 1 in the loss
    "geo": {"seed": 0, "model": "geoconv"},
    "geo_w1": {"seed": 0, "model": "geoconv", "model_options": {"aux_weight": 1.0}},
}


def flipped(data):
    return dataclasses.replace(data, x=torch.flip(data.x, dims=[-1]))


def record(det, data) -> dict[str, np.ndarray]:
    """Per-sample error maps and codes of ``data`` and of its mirror image."""
    out = {}
    for tag, d in (("", data), ("_f", flipped(data))):
        d = det._input(d)
        x = d.take(torch.arange(len(d)))[0].numpy().reshape(len(d), -1)
        x_hat = det.run_.reconstruct(d).reshape(len(d), -1)
        out["err" + tag] = ((x_hat - x) ** 2).astype(np.float16)
        out["code" + tag] = det.run_.encode(d).reshape(len(d), -1).astype(np.float32)
        model = det.run_.model
        if hasattr(model, "transform_nll"):  # geoconv: GEOM's score, the rotation head's surprise
            with torch.no_grad():
                xs = torch.from_numpy(x).reshape(len(d), *model.input_shape)
                out["geo" + tag] = torch.cat([model.transform_nll(b) for b in xs.split(1024)]).numpy()
    return out


def train_variants(args) -> None:
    torch.set_num_threads(1)
    train = load_dataset("fashion-mnist", "train")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for c in args.classes:
        rng = np.random.default_rng(100 + c)
        own = rng.permutation(np.flatnonzero(train.y.numpy() == c))
        others = rng.choice(np.flatnonzero(train.y.numpy() != c), 1000, replace=False)
        fit_idx, val_idx = own[:5000], own[5000:]
        normal = train.subset(torch.as_tensor(fit_idx))
        for name in args.variants:
            path = out / f"c{c}_{name}.npz"
            if path.exists():
                continue
            params = {"model": "conv", "score": "combined", "epochs": 20, "device": "cpu"}
            params.update(VARIANTS[name])
            cpu, wall = time.process_time(), time.perf_counter()
            det = AnomalyDetector(**params).fit(normal)
            fit_cpu = time.process_time() - cpu
            fit_set, calibration = det._input(normal).split(0.2, seed=det.seed)
            arrays = {}
            for split, data in (
                ("fit", fit_set),
                ("cal", calibration),
                ("valn", train.subset(torch.as_tensor(val_idx))),
                ("vala", train.subset(torch.as_tensor(others))),
            ):
                for k, v in record(det, data).items():
                    arrays[f"{split}_{k}"] = v
            total_cpu = time.process_time() - cpu
            np.savez_compressed(path, **arrays)
            meta = {"fit_cpu": fit_cpu, "cpu": total_cpu, "wall": time.perf_counter() - wall}
            (out / f"c{c}_{name}.json").write_text(json.dumps(meta))
            print(
                f"class {c} {name}: fit {fit_cpu:.0f} cpu-s, total {total_cpu:.0f} cpu-s, "
                f"{meta['wall']:.0f} s wall",
                flush=True,
            )


def knn_score(ref: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance from each row of ``x`` to its ``k`` nearest rows of ``ref``."""
    from sklearn.neighbors import NearestNeighbors

    d, _ = NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(x)
    return d.mean(1)


def parts(a: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Every candidate score of one trained variant, on the cal, valn and vala splits."""
    from aekit.evaluation.density import fit_mixture

    fit_code = a["fit_code"].astype(np.float64)
    mu, sd = fit_code.mean(0), fit_code.std(0) + 1e-6
    pix = a["fit_err"].astype(np.float32).mean(0) + 1e-3
    gmm = {k: fit_mixture(fit_code, k, 0) for k in (1, 5, 10)}
    both = np.r_[fit_code, a["fit_code_f"].astype(np.float64)]  # the mirror images as more normals
    gmm_aug = fit_mixture(both, 5, 0)
    out = {}
    for split in ("cal", "valn", "vala"):
        s = {}
        for tag in ("", "_f"):
            err = a[f"{split}_err{tag}"].astype(np.float32)
            code = a[f"{split}_code{tag}"].astype(np.float64)
            s["mse" + tag] = err.mean(1)
            if f"{split}_geo{tag}" in a:
                s["geo" + tag] = a[f"{split}_geo{tag}"].astype(np.float64)
            s["pixnorm" + tag] = (err / pix).mean(1)
            for k, g in gmm.items():
                s[f"gmm{k}{tag}"] = -g.score_samples(code)
            s["gmmaug5" + tag] = -gmm_aug.score_samples(code)
            s["knnzaug20" + tag] = knn_score((both - mu) / sd, (code - mu) / sd, 20)
            for k in (1, 5, 20, 50, 100):
                if k <= 20:
                    s[f"knn{k}{tag}"] = knn_score(fit_code, code, k)
                s[f"knnz{k}{tag}"] = knn_score((fit_code - mu) / sd, (code - mu) / sd, k)
        for name in [n for n in s if not n.endswith("_f")]:
            s[name + "_tta"] = (s[name] + s[name + "_f"]) / 2
        out[split] = s
    return out


def standardise(p: dict[str, dict[str, np.ndarray]], names: list[str]) -> dict[str, np.ndarray]:
    """The mean of the named scores, each standardised by median / IQR on the calibration split."""
    res = {}
    for split in ("valn", "vala"):
        total = 0
        for n in names:
            q25, q50, q75 = np.percentile(p["cal"][n], [25, 50, 75])
            total = total + (p[split][n] - q50) / max(q75 - q25, 1e-12)
        res[split] = total / len(names)
    return res


def analyse(args) -> None:
    from sklearn.metrics import roc_auc_score

    out = Path(args.out)
    table: dict[str, dict[int, float]] = {}
    cpu: dict[str, list[float]] = {}
    for c in args.classes:
        ps = {}
        for name in VARIANTS:
            path = out / f"c{c}_{name}.npz"
            if path.exists():
                ps[name] = parts(dict(np.load(path)))
                cpu.setdefault(name, []).append(json.loads((out / f"c{c}_{name}.json").read_text())["cpu"])
        if not ps:
            continue
        combos = {}
        for name, p in ps.items():
            singles = [n for n in p["cal"] if not n.endswith("_f")]
            for n in singles:
                combos[f"{name}:{n}"] = standardise(p, [n])
            for trio in (
                ["gmmaug5", "knnzaug20"],
                ["gmm5", "knnzaug20"],
                ["mse", "gmmaug5", "knnzaug20"],
                ["gmm5", "knnz20"],
                ["gmm5", "knnz5"],
                ["mse", "gmm5", "knnz20"],
                ["mse", "gmm5", "knnz5"],
                ["gmm10", "knnz20"],
                ["gmm5_tta", "knnz20_tta"],
                ["mse", "gmm5_tta", "knnz20_tta"],
                *([["geo"], ["gmm5", "knnz20", "geo"], ["knnz20", "geo"]] if "geo" in p["cal"] else []),
            ):
                combos[f"{name}:" + "+".join(trio)] = standardise(p, trio)
            for w in (0.25, 0.5):
                for b in ("knnz20", "knnz50"):
                    one = standardise(p, ["mse"])
                    two = standardise(p, [b])
                    combos[f"{name}:{w}mse+{b}"] = {k: w * one[k] + (1 - w) * two[k] for k in one}
            for a in ("mse", "mse_tta", "pixnorm", "pixnorm_tta"):
                for b in (
                    "gmm1",
                    "gmm5",
                    "gmm10",
                    "knn5",
                    "knnz5",
                    "knn20",
                    "knnz20",
                    "knn5_tta",
                    "knnz5_tta",
                    "gmm5_tta",
                    "knnz20_tta",
                    "gmm1_tta",
                    "knnz50",
                    "knnz100",
                ):
                    combos[f"{name}:{a}+{b}"] = standardise(p, [a, b])
        seeds = [n for n in ("base", "base_s1", "base_s2") if n in ps]
        if len(seeds) > 1:
            for a, b in (
                ("mse", "gmm5"),
                ("mse_tta", "knnz5_tta"),
                ("mse_tta", "gmm5_tta"),
                ("mse", "knnz5"),
                ("pixnorm_tta", "knnz5_tta"),
                ("mse_tta", "knnz20_tta"),
                ("pixnorm_tta", "knnz20_tta"),
                ("mse", "knnz20"),
                ("mse", "knnz50"),
                ("gmm5", "knnz20"),
            ):
                parts_ = [standardise(ps[s], [a, b]) for s in seeds]
                combos[f"ens{len(seeds)}:{a}+{b}"] = {
                    k: np.mean([q[k] for q in parts_], 0) for k in ("valn", "vala")
                }
        for key, v in combos.items():
            truth = np.r_[np.zeros(len(v["valn"])), np.ones(len(v["vala"]))]
            table.setdefault(key, {})[c] = 100 * roc_auc_score(truth, np.r_[v["valn"], v["vala"]])
    classes = sorted({c for row in table.values() for c in row})
    full = {k: r for k, r in table.items() if len(r) == len(classes)}
    ranked = sorted(full.items(), key=lambda kv: -np.mean(list(kv[1].values())))
    print("validation AUROC (training data only), classes", classes)
    for key, row in ranked[: args.top]:
        print(f"{np.mean(list(row.values())):6.2f}  {key:40s} " + " ".join(f"{row[c]:5.1f}" for c in classes))
    for key in args.show:
        if key in full:
            row = full[key]
            print(
                f"{np.mean(list(row.values())):6.2f}  {key:40s} "
                + " ".join(f"{row[c]:5.1f}" for c in classes)
            )
    print({k: round(float(np.mean(v)), 1) for k, v in cpu.items()}, "cpu-s per class (mean)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--variants", nargs="+", default=["base", "base_s1", "wide"], choices=list(VARIANTS))
    parser.add_argument("--analyse", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--show", nargs="*", default=["base:mse", "base:gmm5", "base:mse+gmm5"])
    args = parser.parse_args()
    if args.analyse:
        analyse(args)
    else:
        train_variants(args)


if __name__ == "__main__":
    main()
