"""pythae's VAE, IWAE, VAMP and beta-TCVAE with the encoder and decoder sizes of aekit's dense
models, for benchmarks/models.py.

pythae (an optional benchmark dependency, in the ``bench`` extra) trains with its own pipeline; we
time its training (CPU time of this process), and measure its test MSE, its importance-weighted
NLL by aekit's estimator (``iw_nll``: exact Bernoulli log-likelihood from the decoder's logits,
the prior pythae trains with), pythae's own estimate (``get_nll``), and samples from its prior.
"""

from __future__ import annotations

import math
import tempfile
import time

import torch
import torch.nn.functional as F
from pythae import models as pm
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder
from pythae.pipelines import TrainingPipeline
from pythae.trainers import BaseTrainerConfig
from torch import nn

LOG_2PI = math.log(2 * math.pi)


class Encoder(BaseEncoder):
    def __init__(self, dims: tuple[int, ...], latent: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.mu, self.logvar = nn.Linear(dims[-1], latent), nn.Linear(dims[-1], latent)

    def forward(self, x):
        h = self.body(x)
        return ModelOutput(embedding=self.mu(h), log_covariance=self.logvar(h))


class Decoder(BaseDecoder):
    def __init__(self, latent: int, dims: tuple[int, ...], shape: tuple[int, ...]) -> None:
        super().__init__()
        sizes = (latent, *dims)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers += [nn.Linear(a, b), nn.Sigmoid() if i == len(sizes) - 2 else nn.ReLU()]
        self.body, self.shape = nn.Sequential(*layers), shape

    def forward(self, z):
        return ModelOutput(reconstruction=self.body(z).reshape(len(z), *self.shape))

    def logits(self, z):
        """The output before the final sigmoid: the Bernoulli logits."""
        return self.body[:-1](z).reshape(len(z), *self.shape)


def pythae_model(kind: str, shape: tuple[int, ...], args):
    """pythae's counterpart of aekit model ``kind``, with aekit's settings for it."""
    common = {"input_dim": shape, "latent_dim": args.latent_dim, "reconstruction_loss": "bce"}
    if kind == "vae":
        cls, config = pm.VAE, pm.VAEConfig(**common)
    elif kind == "iwae":
        cls, config = pm.IWAE, pm.IWAEConfig(**common, number_samples=args.iw_train_samples)
    elif kind == "vampprior":
        cls, config = pm.VAMP, pm.VAMPConfig(**common, number_components=50)
    elif kind == "tcvae":
        cls, config = pm.BetaTCVAE, pm.BetaTCVAEConfig(**common, alpha=1.0, beta=6.0, gamma=1.0)
    else:
        raise ValueError(kind)
    dims = (math.prod(shape), *args.hidden)  # e.g. 784-256-128: the encoder, and reversed the decoder
    encoder, decoder = Encoder(dims, args.latent_dim), Decoder(args.latent_dim, dims[::-1], shape)
    return cls(config, encoder=encoder, decoder=decoder)


def network_size(model: nn.Module) -> int:
    """Parameters of the encoder and decoder networks (not a prior's own parameters)."""
    return sum(p.numel() for part in (model.encoder, model.decoder) for p in part.parameters())


def log_prior(model, z: torch.Tensor) -> torch.Tensor:
    """log p(z) with its constants: pythae's VAMP mixture, else N(0, I)."""
    if isinstance(model, pm.VAMP):
        return model._log_p_z(z) - 0.5 * z.shape[1] * LOG_2PI  # pythae leaves out the 2 pi
    return (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(1)


@torch.no_grad()
def prior_samples(model, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = model.latent_dim
    if isinstance(model, pm.VAMP):
        u = model.pseudo_inputs(model.idle_input).reshape((-1, *model.model_config.input_dim))
        out = model.encoder(u)
        k = torch.randint(len(u), (n,), generator=g)
        z = out.embedding[k] + torch.randn(n, d, generator=g) * (0.5 * out.log_covariance[k]).exp()
    else:
        z = torch.randn(n, d, generator=g)
    return model.decoder(z).reconstruction


def train_pythae(kind: str, train, test, args, nll_images: int, seed: int = 0) -> tuple[dict, torch.Tensor]:
    """Train pythae's ``kind`` on ``train``; its row for the table, and 1000 samples from its prior.

    ``seed`` seeds the initialisation and pythae's trainer (batch order, noise; its own default is 8).
    """
    x = train.take(torch.arange(len(train)))[0]
    xt = test.take(torch.arange(len(test)))[0]
    torch.manual_seed(seed)
    model = pythae_model(kind, tuple(x.shape[1:]), args)
    with tempfile.TemporaryDirectory() as out:
        trainer_config = BaseTrainerConfig(
            output_dir=out,
            num_epochs=args.epochs,
            learning_rate=args.lr,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.batch_size,
            no_cuda=True,
            seed=seed,
        )
        start = time.process_time()
        TrainingPipeline(model=model, training_config=trainer_config)(train_data=x)
        seconds = time.process_time() - start
    model.eval()
    with torch.no_grad():
        mu = model.encoder(xt).embedding
        mse = float(((model.decoder(mu).reconstruction - xt) ** 2).mean())
        torch.manual_seed(0)
        own = -float(model.get_nll(xt[:200], n_samples=args.iw_samples, batch_size=args.iw_samples))
        torch.manual_seed(0)
        same = iw_nll(model, xt[:nll_images], args.iw_samples)
    row = {
        "model": f"pythae {type(model).__name__} (same sizes)",
        "mse": mse,
        "nll": same,
        "nll_pythae_estimator": own,
        "samples/s": len(x) * args.epochs / seconds,
    }
    return row, prior_samples(model, 1000)


@torch.no_grad()
def iw_nll(model, x: torch.Tensor, k: int) -> float:
    """aekit's importance-weighted estimate (the formula of ``aekit.models.vae.VAE.nll``) applied
    to a pythae model: exact Bernoulli log-likelihood from the logits, pythae's own prior."""
    total = 0.0
    for xb in x.split(250):
        out = model.encoder(xb)
        mu, logvar = out.embedding, out.log_covariance
        std = (0.5 * logvar).exp()
        terms = []
        for _ in range(k):
            eps = torch.randn_like(mu)
            z = mu + eps * std
            logits = model.decoder.logits(z)
            log_px = -F.binary_cross_entropy_with_logits(logits, xb, reduction="none").flatten(1).sum(1)
            log_q = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * LOG_2PI).sum(1)
            terms.append(log_px + log_prior(model, z) - log_q)
        total += float((torch.logsumexp(torch.stack(terms), 0) - math.log(k)).sum())
    return -total / len(x)
