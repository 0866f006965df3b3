"""Every registered model on the full Fashion-MNIST with the same budget, beside PCA and pythae.

Prints one table: test MSE, the importance-weighted test NLL for the VAE family, the Fréchet
distance of 1000 prior samples to the test images in aekit's own classifier features (not the
Inception FID) for generative models, and training samples per second, with PCA (scikit-learn) at
the same latent size and, when the optional ``pythae`` package is installed, pythae's VAE, IWAE,
VAMP and beta-TCVAE with the same encoder/decoder sizes and epochs, all measured in this run.

Speed is training samples per CPU-second of one thread (``time.process_time``, torch on one
thread), for aekit and pythae alike: on a shared machine wall-clock time measures the neighbours.

Rows are cached in ``benchmarks/results/models.json`` by model and settings (``--fresh`` retrains).

Run: ``.venv/bin/python benchmarks/models.py [--epochs 5] [--models dense vae ...]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from aekit.config import TrainConfig, resolve
from aekit.data.batches import Batches
from aekit.data.sources import load_dataset
from aekit.models import MODELS, build_model
from aekit.training.trainer import Trainer

CACHE = Path(__file__).parent / "results" / "models.json"  # rows of earlier runs, by model and settings
NLL_IMAGES = 1000  # importance-weighted NLL is costly: on the first 1000 test images
# settings both libraries use for the same model (pythae's names in benchmarks/pythae_vae.py)
EXTRA = {"iwae": {"iw_samples": 5}, "vampprior": {"components": 50}, "tcvae": {"tc_beta": 6.0}}


@torch.no_grad()
def test_mse(model, data) -> float:
    model.eval()
    err = n = 0.0
    for b in Batches(data, 2000):
        err += float(((model.reconstruct(b.x, b.y) - b.x) ** 2).sum())
        n += b.x.numel()
    return err / n


@torch.no_grad()
def test_nll(model, data, k: int) -> float:
    torch.manual_seed(0)
    model.eval()
    sub = data.subset(torch.arange(NLL_IMAGES))
    return float(sum(float(model.nll(b.x, b.y, k=k).sum()) for b in Batches(sub, 250)) / len(sub))


def run_model(name: str, train, test, args, bf16: bool = False) -> dict:
    torch.manual_seed(0)
    settings = {"name": name, "latent_dim": args.latent_dim, "hidden": args.hidden, **EXTRA.get(name, {})}
    config = resolve([{"model": settings}], input_shape=train.shape, num_classes=len(train.classes))
    model = build_model(name, config.model_config)
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        val_fraction=0,
        device="cpu",
        cpu_bf16=bf16,
    )
    start = time.process_time()
    Trainer(model, cfg).fit(train)
    seconds = time.process_time() - start
    label = f"{name} (--cpu-bf16)" if bf16 else name
    row = {"model": label, "mse": test_mse(model, test), "samples/s": len(train) * args.epochs / seconds}
    if model.has_likelihood:
        row["nll"] = test_nll(model, test, args.iw_samples)
    if getattr(model, "generative", False):
        row["fd"] = frechet(model.sample(1000, generator=torch.Generator().manual_seed(0)), test)
    return row


def frechet(samples: torch.Tensor, test) -> float:
    """Fréchet distance of ``samples`` to 2000 test images in aekit's Fashion-MNIST classifier's features."""
    from aekit.data.sources import load_dataset
    from aekit.evaluation.generation import cached_classifier, generation_metrics

    net = cached_classifier(load_dataset("fashion-mnist", "train"), "fashion-mnist")
    real = test.take(torch.arange(2000))[0].numpy()
    return generation_metrics(net, real, samples.float().numpy(), 10)["frechet"]


def run_pca(train, test, latent: int) -> dict:
    x = train.take(torch.arange(len(train)))[0].flatten(1).numpy()
    xt = test.take(torch.arange(len(test)))[0].flatten(1).numpy()
    start = time.process_time()
    pca = PCA(latent, random_state=0).fit(x)
    seconds = time.process_time() - start
    rec = np.clip(pca.inverse_transform(pca.transform(xt)), 0, 1)
    return {
        "model": f"PCA ({latent}), scikit-learn",
        "mse": float(((rec - xt) ** 2).mean()),
        "samples/s": len(x) / seconds,
    }


PYTHAE = ("vae", "iwae", "vampprior", "tcvae")  # aekit models pythae has a counterpart of


def run_pythae(kind: str, train, test, args) -> dict | None:
    try:
        from pythae_vae import train_pythae  # benchmarks/pythae_vae.py
    except ImportError as e:
        print(f"pythae: not run ({e}); pip install pythae to compare")
        return None
    row, samples = train_pythae(kind, train, test, args, nll_images=NLL_IMAGES)
    row["fd"] = frechet(samples, test)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--iw-samples", type=int, default=100)
    parser.add_argument("--limit", type=int, help="train on N images (seeded, class-stratified; quick look)")
    image_models = [n for n, spec in MODELS.items() if spec.cls.data_kind == "values" and n != "tabular"]
    parser.add_argument("--models", nargs="+", default=image_models, help="default: every image model")
    parser.add_argument("--no-pythae", action="store_true")
    parser.add_argument("--pythae", nargs="*", default=list(PYTHAE), choices=PYTHAE, help="counterparts")
    parser.add_argument("--fresh", action="store_true", help="ignore the rows cached by earlier runs")
    parser.add_argument("--bf16-too", action="store_true", help="each aekit model also with --cpu-bf16")
    args = parser.parse_args()
    args.iw_train_samples = EXTRA["iwae"]["iw_samples"]
    torch.set_num_threads(1)

    train = load_dataset("fashion-mnist", "train", limit=args.limit)
    test = load_dataset("fashion-mnist", "test")
    print(
        f"Fashion-MNIST: {len(train)} train, {len(test)} test; {args.epochs} epochs, batch {args.batch_size},"
    )
    print(f"Adam lr {args.lr:g}, latent {args.latent_dim}, hidden {args.hidden};")
    print(f"NLL on the first {NLL_IMAGES} test images, {args.iw_samples} importance samples, in nats")
    warm = Trainer(
        build_model("dense", input_shape=train.shape), TrainConfig(epochs=1, val_fraction=0, device="cpu")
    )
    # first-use costs (kernel set-up) are nobody's training time
    warm.fit(train.subset(torch.arange(min(2048, len(train)))))
    cache = {} if args.fresh or not CACHE.is_file() else json.loads(CACHE.read_text())
    setting = f"{args.epochs}|{args.batch_size}|{args.lr}|{args.latent_dim}|{args.hidden}|{args.limit}"

    def cached(key: str, make) -> dict | None:
        if f"{key}|{setting}" not in cache:
            row = make()
            if row is None:
                return None
            cache[f"{key}|{setting}"] = row
            CACHE.parent.mkdir(exist_ok=True)
            on_disk = json.loads(CACHE.read_text()) if CACHE.is_file() else {}  # other runs' rows stay
            CACHE.write_text(json.dumps({**on_disk, f"{key}|{setting}": row}, indent=1))
        print(f"  done: {key}", flush=True)
        return cache[f"{key}|{setting}"]

    rows = [run_pca(train, test, args.latent_dim)]
    for name in args.models:
        rows.append(cached(name, lambda name=name: run_model(name, train, test, args)))
        if args.bf16_too:
            fast = cached(f"{name} bf16", lambda name=name: run_model(name, train, test, args, bf16=True))
            rows.append(fast)
    for kind in [] if args.no_pythae else [k for k in args.pythae if k in args.models]:
        if row := cached(f"pythae {kind}", lambda kind=kind: run_pythae(kind, train, test, args)):
            rows.append(row)
    pca_mse = rows[0]["mse"]
    print("\n| model | test MSE | vs PCA | test NLL (nats) | Fréchet distance | train samples per CPU-s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        r.setdefault("fd", float("nan"))
        nll = f"{r['nll']:.1f}" if "nll" in r else ""
        if "nll_pythae_estimator" in r:
            nll += f" (pythae's own estimator: {r['nll_pythae_estimator']:.1f})"
        print(
            f"| {r['model']} | {r['mse']:.5f} | {r['mse'] / pca_mse:.2f}x | {nll} "
            f"| {r['fd']:.2f} | {r['samples/s']:,.0f} |".replace("| nan |", "|  |")
        )


if __name__ == "__main__":
    main()
