"""pythae's VAE with the encoder and decoder sizes of aekit's dense VAE, for benchmarks/models.py.

pythae (an optional benchmark dependency: ``pip install -c constraints.txt pythae``) trains with
its own pipeline; we time its training and measure its test MSE and its own importance-weighted
NLL estimate (``get_nll``) on the same images as aekit's.
"""

from __future__ import annotations

import tempfile
import time

import torch
from pythae.models import VAE, VAEConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder
from pythae.pipelines import TrainingPipeline
from pythae.trainers import BaseTrainerConfig
from torch import nn


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


def train_pythae_vae(train, test, args, nll_images: int) -> dict:
    x = train.take(torch.arange(len(train)))[0]
    xt = test.take(torch.arange(len(test)))[0]
    pixels = x[0].numel()
    dims = (pixels, *args.hidden)
    config = VAEConfig(input_dim=tuple(x.shape[1:]), latent_dim=args.latent_dim, reconstruction_loss="bce")
    torch.manual_seed(0)
    model = VAE(
        config,
        encoder=Encoder(dims, args.latent_dim),
        decoder=Decoder(args.latent_dim, dims[::-1][1:] + (pixels,), tuple(x.shape[1:])),
    )
    with tempfile.TemporaryDirectory() as out:
        trainer_config = BaseTrainerConfig(
            output_dir=out,
            num_epochs=args.epochs,
            learning_rate=args.lr,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.batch_size,
            no_cuda=True,
        )
        start = time.perf_counter()
        TrainingPipeline(model=model, training_config=trainer_config)(train_data=x)
        seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        mu = model.encoder(xt).embedding
        mse = float(((model.decoder(mu).reconstruction - xt) ** 2).mean())
        torch.manual_seed(0)
        # get_nll returns the mean log-likelihood estimate: its negative is the NLL
        own = -float(model.get_nll(xt[:nll_images], n_samples=args.iw_samples, batch_size=args.iw_samples))
        torch.manual_seed(0)
        same = iw_nll(model, xt[:nll_images], args.iw_samples)
    return {
        "model": "pythae VAE (same sizes)",
        "mse": mse,
        "nll": same,
        "nll_pythae_estimator": own,
        "samples/s": len(x) * args.epochs / seconds,
    }


@torch.no_grad()
def iw_nll(model, x: torch.Tensor, k: int) -> float:
    """aekit's importance-weighted estimate (the same formula as ``aekit.models.vae.VAE.nll``),
    applied to the pythae model, so that both models are measured by one estimator."""
    import math

    out = model.encoder(x)
    mu, logvar = out.embedding, out.log_covariance
    std = (0.5 * logvar).exp()
    terms = []
    for _ in range(k):
        eps = torch.randn_like(mu)
        z = mu + eps * std
        p = model.decoder(z).reconstruction.clamp(1e-7, 1 - 1e-7)
        log_px = (x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
        log_q = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(1)
        log_prior = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(1)
        terms.append(log_px + log_prior - log_q)
    return float(-(torch.logsumexp(torch.stack(terms), 0) - math.log(k)).mean())
