"""Every registered model on the full Fashion-MNIST with the same budget, beside PCA and pythae.

Prints one table: test MSE, the importance-weighted test NLL for the VAE family, the Fréchet
distance of 1000 prior samples to the test images in aekit's own classifier features (not the
Inception FID) for generative models, and training samples per second, with PCA (scikit-learn) at
the same latent size and, when the optional ``pythae`` package is installed, pythae's VAE, IWAE,
VAMP and beta-TCVAE with the same encoder/decoder sizes and epochs, all measured in this run.

Speed is training samples per CPU-second of one thread (``time.process_time``, torch on one
thread), for aekit and pythae alike: on a shared machine wall-clock time measures the neighbours.

``--seeds 0 1 2`` trains every model (and pythae's) once per seed (initialisation, batch order and
noise) and adds a summary table: mean NLL with its standard deviation and range over the seeds, so
that a difference can be read against the seed spread.

``--fast BATCH LR`` adds each aekit model trained at that batch and learning rate under
``--cpu-bf16`` (pythae keeps the shared settings): a larger batch is cheaper per sample on a CPU
but takes fewer steps per epoch (``benchmarks/batch_select.py`` chooses LR on a validation split).

Rows are cached in ``benchmarks/results/models.json`` by model, settings and seed (``--fresh`` retrains).

Run: ``.venv/bin/python benchmarks/models.py [--epochs 5] [--models dense vae ...] [--seeds 0 1 2]``
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
from aekit.fileio import atomic_write_text
from aekit.models import MODELS, build_model
from aekit.training import allocator
from aekit.training.trainer import Trainer

CACHE = Path(__file__).parent / "results" / "models.json"  # rows of earlier runs, by model and settings
NLL_IMAGES = 1000  # importance-weighted NLL is costly: on the first 1000 test images
# settings both libraries use for the same model (pythae's names in benchmarks/pythae_vae.py)
LATENT_DIM, HIDDEN, IW_SAMPLES = 32, [256, 128], 100  # the benchmark's sizes and NLL samples
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


def model_settings(name: str, train, latent_dim: int = LATENT_DIM, hidden: list[int] = HIDDEN):
    """The model config of aekit's ``name`` at the benchmark's sizes (or the given ones)."""
    settings = {"name": name, "latent_dim": latent_dim, "hidden": hidden, **EXTRA.get(name, {})}
    # train_size as `aekit train` fills it (the beta-TCVAE's stratified estimator), with no validation split
    config = resolve(
        [{"model": settings}], input_shape=train.shape, num_classes=len(train.classes), train_size=len(train)
    )
    return config.model_config


class FirstStep:
    """A callback that notes the CPU time at the end of the first training step (with
    ``--compile-step``, the step that compiles)."""

    def __init__(self) -> None:
        self.at: float | None = None

    def on_batch_end(self, trainer, terms) -> None:
        if self.at is None:
            self.at = time.process_time()


def run_model(
    name: str,
    train,
    test,
    args,
    seed: int = 0,
    bf16: bool = False,
    fast: tuple[int, float] | None = None,
    step: bool = False,
    schedule: str = "constant",
) -> dict:
    """aekit's ``name`` at the benchmark's settings; ``fast``: (batch, lr) instead, under --cpu-bf16;
    ``step``: with ``--compile-step --cpu-bf16``, its speed counted after the first (compiling) step
    and the one-off compile reported apart."""
    torch.manual_seed(seed)
    model = build_model(name, model_settings(name, train, args.latent_dim, args.hidden))
    batch, lr = fast if fast else (args.batch_size, args.lr)
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=batch,
        lr=lr,
        val_fraction=0,
        device="cpu",
        cpu_bf16=bf16 or fast is not None or step,
        compile_step=step,
        schedule=schedule,
        seed=seed,
    )
    first = FirstStep()
    start = time.process_time()
    trainer = Trainer(model, cfg, callbacks=[first])
    trainer.fit(train)
    end = time.process_time()
    seconds = end - start
    flags = " ".join((["--compile-step"] if step else []) + (["--cpu-bf16"] if bf16 or fast or step else []))
    sched = f"{schedule} " if schedule != "constant" else ""
    label = f"{name} ({f'batch {batch}, lr {lr:g}, {sched}' if fast else ''}{flags})" if flags else name
    row = {"model": label, "mse": test_mse(model, test), "samples/s": len(train) * args.epochs / seconds}
    if step:
        if not trainer._compiled:
            raise SystemExit(f"{name}: --compile-step did not apply")
        row["samples/s incl. compile"] = row["samples/s"]
        row["samples/s"] = (len(train) * args.epochs - batch) / (end - first.at)
        row["compile_s"] = first.at - start  # the first step: the compile, plus one step
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


PYTHAE_CLASS = {"vae": "VAE", "iwae": "IWAE", "vampprior": "VAMP", "tcvae": "BetaTCVAE"}
PYTHAE = tuple(PYTHAE_CLASS)  # aekit models pythae has a counterpart of


def run_pythae(kind: str, train, test, args, seed: int = 0) -> dict | None:
    try:
        from pythae_vae import network_size, pythae_model, train_pythae  # benchmarks/pythae_vae.py
    except ImportError as e:
        print(f"pythae: not run ({e}); pip install pythae to compare")
        return None
    # the same networks, checked: until 2026-11-28 pythae's decoder had an extra 784x784 layer
    ours = build_model(kind, model_settings(kind, train, args.latent_dim, args.hidden))
    theirs = network_size(pythae_model(kind, tuple(train.shape), args))
    if network_size(ours) != theirs:
        raise SystemExit(f"pythae {kind}: {theirs} network parameters, aekit's {network_size(ours)}")
    row, samples = train_pythae(kind, train, test, args, nll_images=NLL_IMAGES, seed=seed)
    row["fd"] = frechet(samples, test)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--latent-dim", type=int, default=LATENT_DIM)
    parser.add_argument("--hidden", type=int, nargs="+", default=HIDDEN)
    parser.add_argument("--iw-samples", type=int, default=IW_SAMPLES)
    parser.add_argument("--limit", type=int, help="train on N images (seeded, class-stratified; quick look)")
    image_models = [n for n, spec in MODELS.items() if spec.cls.data_kind == "values" and n != "tabular"]
    parser.add_argument("--models", nargs="+", default=image_models, help="default: every image model")
    parser.add_argument("--no-pythae", action="store_true")
    parser.add_argument("--pythae", nargs="*", default=list(PYTHAE), choices=PYTHAE, help="counterparts")
    parser.add_argument("--fresh", action="store_true", help="ignore the rows cached by earlier runs")
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"the rows' cache (default {CACHE})")
    parser.add_argument(
        "--fast-only", action="store_true", help="of aekit's models, only the --fast rows (pythae's as usual)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="one run per seed; summary over them"
    )
    parser.add_argument("--bf16-too", action="store_true", help="each aekit model also with --cpu-bf16")
    parser.add_argument(
        "--compile-step-too",
        action="store_true",
        help="each aekit model also with --compile-step --cpu-bf16 (speed after the compiling first step)",
    )
    parser.add_argument(
        "--fast",
        nargs=2,
        type=float,
        metavar=("BATCH", "LR"),
        help="each aekit model also at this batch and lr under --cpu-bf16 (pythae keeps its settings)",
    )
    parser.add_argument(
        "--fast-compile-step", action="store_true", help="the --fast rows with --compile-step"
    )
    parser.add_argument(
        "--fast-schedule",
        default="constant",
        choices=["constant", "cosine", "onecycle"],
        help="the --fast rows' learning-rate schedule",
    )
    args = parser.parse_args()
    args.iw_train_samples = EXTRA["iwae"]["iw_samples"]
    torch.set_num_threads(1)
    # aekit's CPU trainer sets up malloc (aekit.training.allocator); set here, before either library
    # trains, so that pythae runs under the same allocator
    print(f"malloc set up for reuse (aekit.training.allocator), for both: {allocator.keep_freed_memory()}")

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
    cache_file = args.cache
    cache = {} if args.fresh or not cache_file.is_file() else json.loads(cache_file.read_text())
    setting = f"{args.epochs}|{args.batch_size}|{args.lr}|{args.latent_dim}|{args.hidden}|{args.limit}"

    def cached(key: str, seed: int, make) -> dict | None:
        full = f"{key}|{setting}|seed {seed}"
        if full not in cache:
            row = make()
            if row is None:
                return None
            cache[full] = {**row, "seed": seed}
            cache_file.parent.mkdir(exist_ok=True)
            on_disk = json.loads(cache_file.read_text()) if cache_file.is_file() else {}  # others' rows stay
            atomic_write_text(cache_file, json.dumps({**on_disk, full: cache[full]}, indent=1))
        print(f"  done: {key}, seed {seed}", flush=True)
        return cache[full]

    rows = [run_pca(train, test, args.latent_dim)]
    for seed in args.seeds:
        for name in args.models:
            if not args.fast_only:
                rows.append(
                    cached(name, seed, lambda name=name, s=seed: run_model(name, train, test, args, s))
                )
            if args.bf16_too:
                make = lambda name=name, s=seed: run_model(name, train, test, args, s, bf16=True)  # noqa: E731
                rows.append(cached(f"{name} bf16", seed, make))
            if args.compile_step_too:
                make = lambda name=name, s=seed: run_model(name, train, test, args, s, step=True)  # noqa: E731
                rows.append(cached(f"{name} compile-step", seed, make))
            if args.fast:
                fast, step = (int(args.fast[0]), args.fast[1]), args.fast_compile_step

                def make(name=name, s=seed, f=fast, step=step, sched=args.fast_schedule):
                    return run_model(name, train, test, args, s, fast=f, step=step, schedule=sched)

                key = f"{name} fast {fast[0]} {fast[1]:g}" + (" compile-step" if step else "")
                key += f" {args.fast_schedule}" if args.fast_schedule != "constant" else ""
                rows.append(cached(key, seed, make))
        for kind in [] if args.no_pythae else [k for k in args.pythae if k in args.models]:
            make = lambda kind=kind, s=seed: run_pythae(kind, train, test, args, s)  # noqa: E731
            if row := cached(f"pythae {kind}", seed, make):
                rows.append(row)
    print_table(rows)
    if len(args.seeds) > 1:
        print_summary(rows[1:])


def print_table(rows: list[dict]) -> None:
    pca_mse = rows[0]["mse"]
    print("\n| model | seed | test MSE | vs PCA | test NLL (nats) | Fréchet distance | samples per CPU-s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        nll = f"{r['nll']:.2f}" if "nll" in r else ""
        if "nll_pythae_estimator" in r:
            nll += f" (pythae's own estimator: {r['nll_pythae_estimator']:.1f})"
        fd = f"{r['fd']:.1f}" if "fd" in r else ""
        speed = f"{r['samples/s']:,.0f}"
        if "compile_s" in r:
            speed += (
                f" ({r['samples/s incl. compile']:,.0f} with the first step's {r['compile_s']:.1f} s compile)"
            )
        print(
            f"| {r['model']} | {r.get('seed', '')} | {r['mse']:.5f} | {r['mse'] / pca_mse:.2f}x | {nll} "
            f"| {fd} | {speed} |"
        )


def seed_summary(rows: list[dict]) -> dict[str, dict]:
    """Per model over its seeds: NLL mean, sample sd and range; mean MSE, FD and speed."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["model"], []).append(r)
    out = {}
    for model, rs in by.items():
        nll = np.array([r["nll"] for r in rs if "nll" in r])
        out[model] = {
            "seeds": len(rs),
            "nll": float(nll.mean()) if len(nll) else float("nan"),
            "nll_sd": float(nll.std(ddof=1)) if len(nll) > 1 else float("nan"),
            "nll_min": float(nll.min()) if len(nll) else float("nan"),
            "nll_max": float(nll.max()) if len(nll) else float("nan"),
            "mse": float(np.mean([r["mse"] for r in rs])),
            "fd": float(np.mean([r["fd"] for r in rs if "fd" in r])) if any("fd" in r for r in rs) else None,
            "samples/s": float(np.mean([r["samples/s"] for r in rs])),
            "incl": float(np.mean([r.get("samples/s incl. compile", r["samples/s"]) for r in rs])),
        }
    return out


def print_summary(rows: list[dict]) -> None:
    """Mean over seeds; each aekit model of the VAE family beside its pythae counterpart."""
    summary = seed_summary(rows)
    pythae_of = {k: f"pythae {cls} (same sizes)" for k, cls in PYTHAE_CLASS.items()}
    print(
        "\n| model | seeds | test NLL, mean ± sd (min-max) | test MSE | Fréchet distance "
        "| train samples per CPU-s | vs pythae: NLL, speed |"
    )
    print("|---|---:|---|---:|---:|---:|---|")
    for model, s in summary.items():
        vs = ""
        base = model.split(" ")[0]
        if base in pythae_of and pythae_of[base] in summary:
            p = summary[pythae_of[base]]
            vs = f"{s['nll'] - p['nll']:+.2f} nats, {s['samples/s'] / p['samples/s']:.2f}x"
            if s["incl"] != s["samples/s"]:
                vs += f" ({s['incl'] / p['samples/s']:.2f}x with the compile)"
        nll = (
            f"{s['nll']:.2f} ± {s['nll_sd']:.2f} ({s['nll_min']:.2f}-{s['nll_max']:.2f})"
            if not np.isnan(s["nll"])
            else ""
        )
        fd = f"{s['fd']:.1f}" if s["fd"] is not None else ""
        print(f"| {model} | {s['seeds']} | {nll} | {s['mse']:.5f} | {fd} | {s['samples/s']:,.0f} | {vs} |")


if __name__ == "__main__":
    main()
