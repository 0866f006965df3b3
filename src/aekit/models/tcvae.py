"""``tcvae``: beta-TCVAE (Chen, Li, Grosse & Duvenaud 2018).

The ELBO's KL term splits, per sample, into three parts that it weights apart:
``log q(z|x) - log p(z) = [log q(z|x) - log q(z)]  (index-code mutual information, alpha)
+ [log q(z) - sum_d log q(z_d)]  (total correlation, beta)  + [sum_d log q(z_d) - log p(z)]
(dimension-wise KL, gamma)``. Penalising the total correlation pushes the code's dimensions to
be independent (disentangled) without squeezing the information the code carries.

The aggregate posterior q(z) is estimated on the minibatch, taken as the data. With the training
set's size N (``mss_dataset_size``, which ``aekit train`` fills in) by Chen et al.'s
minibatch-stratified sampling; with 0 by ``log q(z_i) ~ logsumexp_j log q(z_i|x_j) - log M``,
their minibatch-weighted sampling up to a constant (their ``- log(N M)``): the same gradients,
no N needed, reported terms that differ from theirs by constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from aekit.data.batches import Batch
from aekit.models.registry import register_model
from aekit.models.vae import VAE, VAEConfig, kl_normal
from aekit.models.vampprior import log_normal


@dataclass(frozen=True)
class TCVAEConfig(VAEConfig):
    """``alpha``, ``tc_beta``, ``gamma``: weights of mutual information, total correlation and
    dimension-wise KL (all 1 is the plain VAE; the paper disentangles with ``tc_beta`` = 6).
    ``mss_dataset_size``: N > 0 estimates q(z) by minibatch-stratified sampling for a training set
    of N (the paper's appendix C; better NLL on Fashion-MNIST: docs/benchmarks/models.md). A new
    run (``aekit train``, :func:`aekit.train`) fills it with the number of samples it trains on
    unless a setting gives it; 0 estimates q(z) by minibatch-weighted sampling, which needs no N
    (the dataclass default, so a model built directly, and every run saved before, use it).
    A batch larger than N (an evaluation batch after training on few samples) is taken as the data."""

    alpha: float = 1.0
    tc_beta: float = 6.0
    gamma: float = 1.0
    mss_dataset_size: int = 0


def kl_decomposition(z: Tensor, mu: Tensor, logvar: Tensor, log_w: Tensor | None = None) -> dict[str, Tensor]:
    """Per-sample mutual information, total correlation and dimension-wise KL of a batch.

    ``z`` (B, D) holds one draw from each q(z|x_i) = N(mu_i, exp(logvar_i)); the batch stands for the data.
    ``log_w`` (B, B): the log weight of q(z_i|x_j) in the estimate of q(z_i), each row summing to 1 in
    probability; by default uniform, log(1/B) (minibatch-weighted sampling up to a constant). Chen et
    al.'s stratified sampling is :func:`stratified_log_weights`.

    Returns:
        ``mi``, ``tc``, ``dim_kl``: (B,) each; their sum is log q(z|x) - log N(z; 0, I).
    """
    m = len(z)
    pair = log_normal(z[:, None, :, None], mu[None, :, :, None], logvar[None, :, :, None])  # (M, M, D)
    if log_w is None:
        log_w = torch.full((m, m), -math.log(m), dtype=pair.dtype, device=pair.device)
    log_qz = torch.logsumexp(pair.sum(-1) + log_w, 1)  # (M,)
    log_prod = torch.logsumexp(pair + log_w[..., None], 1).sum(-1)  # (M,)
    log_q_zx = log_normal(z, mu, logvar)
    log_p = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
    return {"mi": log_q_zx - log_qz, "tc": log_qz - log_prod, "dim_kl": log_prod - log_p}


def stratified_log_weights(m: int, n: int) -> Tensor:
    """Minibatch-stratified sampling weights (Chen et al. 2018, appendix C) for a batch of ``m`` drawn
    from a data set of ``n``: in row i, q(z_i|x_i) weighs 1/n, the next sample (n - m + 1) / (n (m - 1)),
    the other m - 2 weigh 1/(m - 1) each.

    Chen et al.'s code (and pythae's copy of it) fills columns 0 and 1 instead of the diagonal
    (a stride of m where m + 1 was meant; disentangling-vae issue #58); this is the paper's version.

    Shape: -> (m, m), log weights whose rows sum to 1 in probability.
    """
    if m < 2 or n < m:
        raise ValueError(f"stratified sampling needs 2 <= batch ({m}) <= data set size ({n})")
    w = torch.full((m, m), 1 / (m - 1))
    i = torch.arange(m)
    w[i, (i + 1) % m] = (n - m + 1) / (n * (m - 1))
    w[i, i] = 1 / n
    return w.log()


@register_model("tcvae")
class TCVAE(VAE):
    """beta-TCVAE: the VAE with its total-correlation term weighted apart (Chen et al. 2018)."""

    config_class = TCVAEConfig
    fully_convolutional = False  # the decomposition is over the dimensions of flat codes

    def __init__(self, config: TCVAEConfig) -> None:
        if config.mss_dataset_size < 0:
            raise ValueError(
                f"mss_dataset_size must be 0 or the training set's size, not {config.mss_dataset_size}"
            )
        super().__init__(config)

    def pair_log_weights(self, m: int) -> Tensor | None:
        """Weights of the batch's posteriors in the estimate of q(z) (see :func:`kl_decomposition`):
        stratified when ``mss_dataset_size`` is set (and the batch has two or more), else None: uniform."""
        n = self.config.mss_dataset_size
        return stratified_log_weights(m, max(n, m)) if n > 0 and m >= 2 else None

    def loss(self, batch: Batch, phase: str = "main") -> dict[str, Tensor]:
        c = self.config
        mu, logvar = self.posterior(batch.x, batch.y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        out = self.logits(z, batch.y)
        rec = -self._log_px(batch.x, out).mean()
        log_w = self.pair_log_weights(len(z))
        # in float32 even under bfloat16 autocast: the log-sum-exps over the batch's pairwise densities
        # (values of -10 to -1000, where bfloat16 is 0.06 to 4 apart) need it; a no-op in float32
        split = kl_decomposition(
            z.float(), mu.float(), logvar.float(), None if log_w is None else log_w.to(z.device)
        )
        parts = {k: v.mean() for k, v in split.items()}
        warm = self.beta_now() / c.beta if c.beta > 0 else 1.0  # the KL warm-up ramp, 0 -> 1
        penalty = c.alpha * parts["mi"] + c.tc_beta * parts["tc"] + c.gamma * parts["dim_kl"]
        with torch.no_grad():
            kl = kl_normal(mu, logvar).sum(1).mean()
            mse = F.mse_loss(self._mean(out), batch.x)
        if self.training:
            self.steps += 1
        return {
            "loss": rec + warm * penalty,
            "rec": rec.detach(),
            "kl": kl,
            "elbo": -(rec.detach() + kl),
            **{k: v.detach() for k, v in parts.items()},
            "mse": mse,
        }
