"""Where aekit's VAE and pythae's VAE differ, one difference at a time, in nats.

Trains the dense VAE (784-256-128-32, Fashion-MNIST, Adam, 10 epochs) as aekit does it, then with
one of pythae's choices swapped in at a time, and pythae's own VAE; every model is scored by two
importance-weighted estimators on the first 1000 test images:

- ``exact``: log p(x|z) from the decoder's logits (binary cross-entropy with logits), as aekit computes it;
- ``clamped``: from sigmoid probabilities clamped to [1e-7, 1 - 1e-7], as benchmarks/pythae_vae.py
  scored pythae's model (a saturated pixel costs at most 16.1 nats there, however wrong).

Speed is training samples per CPU-second on one thread (``time.process_time``), which other jobs
on a shared machine disturb far less than wall-clock time.

Results are cached in ``benchmarks/results/vae_gap.json`` (delete an entry to rerun it).

Run: ``.venv/bin/python benchmarks/vae_gap.py [--variants base seed1 ...]``
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from aekit.config import TrainConfig
from aekit.data.batches import Batch
from aekit.data.sources import load_dataset
from aekit.models import build_model
from aekit.models.vae import VAE, kl_normal
from aekit.training.trainer import Trainer

CACHE = Path(__file__).parent / "results" / "vae_gap.json"
NLL_IMAGES = 1000


class PythaeParamVAE(VAE):
    """aekit's VAE trained the way pythae computes its loss: sigmoid, then BCE on probabilities
    (log clamped at -100 by torch), so saturated pixels give no gradient."""

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, torch.Tensor]:
        mu, logvar = self.posterior(batch.x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        p = torch.sigmoid(self.logits(z))
        rec = F.binary_cross_entropy(p, batch.x, reduction="none").flatten(1).sum(1).mean()
        kl = kl_normal(mu, logvar).sum(1).mean()
        return {"loss": rec + kl, "rec": rec.detach(), "kl": kl.detach()}


class NoClampVAE(VAE):
    """aekit's VAE without its clamp of log-variance to [-12, 8] (pythae has none)."""

    def posterior(self, x, y=None):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar


@torch.no_grad()
def iw_nll(posterior, logits, x: torch.Tensor, k: int, clamped: bool) -> float:
    """-log p(x) by importance sampling with q(z|x), ``k`` samples, mean over ``x`` (nats)."""
    torch.manual_seed(0)
    total = 0.0
    for xb in x.split(250):
        mu, logvar = posterior(xb)
        std = (0.5 * logvar).exp()
        terms = []
        for _ in range(k):
            eps = torch.randn_like(mu)
            z = mu + eps * std
            out = logits(z)
            if clamped:
                p = torch.sigmoid(out).clamp(1e-7, 1 - 1e-7)
                log_px = (xb * p.log() + (1 - xb) * (1 - p).log()).flatten(1).sum(1)
            else:
                log_px = -F.binary_cross_entropy_with_logits(out, xb, reduction="none").flatten(1).sum(1)
            log_q = (-0.5 * eps.pow(2) - 0.5 * logvar).sum(1)
            log_prior = (-0.5 * z.pow(2)).sum(1)
            terms.append(log_px + log_prior - log_q)
        total += float((torch.logsumexp(torch.stack(terms), 0) - math.log(k)).sum())
    return -total / len(x)


def train_aekit(cls, train, seed: int, batch: int, lr: float, epochs: int, schedule: str = "constant"):
    torch.manual_seed(seed)
    model = cls(build_model("vae", input_shape=train.shape, latent_dim=32, hidden=(256, 128)).config)
    cfg = TrainConfig(
        epochs=epochs, batch_size=batch, lr=lr, val_fraction=0, device="cpu", seed=seed, schedule=schedule
    )
    start = time.process_time()
    Trainer(model, cfg).fit(train)
    seconds = time.process_time() - start
    model.eval()
    return model.posterior, model.logits, len(train) * epochs / seconds


def train_pythae(train, seed: int, batch: int, lr: float, epochs: int):
    import tempfile

    from pythae.models import VAE as PVAE
    from pythae.models import VAEConfig as PConfig
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig
    from pythae_vae import Decoder, Encoder

    x = train.take(torch.arange(len(train)))[0]
    dims = (784, 256, 128)
    torch.manual_seed(seed)
    model = PVAE(
        PConfig(input_dim=(1, 28, 28), latent_dim=32, reconstruction_loss="bce"),
        encoder=Encoder(dims, 32),
        decoder=Decoder(32, (128, 256, 784), (1, 28, 28)),
    )
    with tempfile.TemporaryDirectory() as out:
        tc = BaseTrainerConfig(
            output_dir=out,
            num_epochs=epochs,
            learning_rate=lr,
            per_device_train_batch_size=batch,
            per_device_eval_batch_size=batch,
            no_cuda=True,
            seed=seed,
        )
        start = time.process_time()
        TrainingPipeline(model=model, training_config=tc)(train_data=x)
        seconds = time.process_time() - start
    model.eval()

    def posterior(xb):
        o = model.encoder(xb)
        return o.embedding, o.log_covariance

    def logits(z):  # the decoder without its final sigmoid
        return model.decoder.body[:-1](z).reshape(len(z), 1, 28, 28)

    return posterior, logits, len(x) * epochs / seconds


VARIANTS = {
    # name: (trainer, kwargs)
    "aekit": ("aekit", {"cls": VAE}),
    "aekit seed 1": ("aekit", {"cls": VAE, "seed": 1}),
    "aekit, no logvar clamp": ("aekit", {"cls": NoClampVAE}),
    "aekit, pythae's loss (sigmoid + BCE)": ("aekit", {"cls": PythaeParamVAE}),
    "aekit, batch 256 lr 2e-3": ("aekit", {"cls": VAE, "batch": 256, "lr": 2e-3}),
    "aekit, batch 512 lr 3e-3": ("aekit", {"cls": VAE, "batch": 512, "lr": 3e-3}),
    "aekit, batch 256 lr 2e-3 onecycle": (
        "aekit",
        {"cls": VAE, "batch": 256, "lr": 2e-3, "schedule": "onecycle"},
    ),
    "pythae": ("pythae", {}),
    "pythae seed 1": ("pythae", {"seed": 1}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--iw-samples", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)  # speed as samples per CPU-second of one thread: fair on a shared machine
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    xt = test.take(torch.arange(NLL_IMAGES))[0]
    cache = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    for name in args.variants:
        if name in cache:
            continue
        kind, kw = VARIANTS[name]
        kw = {"seed": 0, "batch": 128, "lr": 1e-3, "epochs": args.epochs, **kw}
        if kind == "aekit":
            post, logits, speed = train_aekit(train=train, **kw)
        else:
            post, logits, speed = train_pythae(train, kw["seed"], kw["batch"], kw["lr"], kw["epochs"])
        cache[name] = {
            "exact": iw_nll(post, logits, xt, args.iw_samples, clamped=False),
            "clamped": iw_nll(post, logits, xt, args.iw_samples, clamped=True),
            "samples/s": speed,
        }
        print(name, cache[name], flush=True)
        CACHE.parent.mkdir(exist_ok=True)
        CACHE.write_text(json.dumps(cache, indent=1))
    print("\n| variant | NLL, exact (nats) | NLL, clamped estimator | train samples per CPU-s |")
    print("|---|---:|---:|---:|")
    for name, r in cache.items():
        print(f"| {name} | {r['exact']:.2f} | {r['clamped']:.2f} | {r['samples/s']:,.0f} |")


if __name__ == "__main__":
    main()
