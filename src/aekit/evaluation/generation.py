"""Offline quality of generated images: a Fréchet distance in the features of a classifier that
aekit trains itself on the same dataset, and the label distribution of the samples.

This is **not** the Inception FID: the features come from a small conv net trained on the
dataset at hand (no download, no ImageNet), so the numbers compare models on one dataset and
are not comparable with published FIDs. The classifier is cached under
``$AEKIT_CACHE/classifiers`` and retrained only when missing.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aekit.data.batches import Batches
from aekit.data.dataset import ArrayDataset


class FeatureNet(nn.Module):
    """Two conv blocks and a 128-unit feature layer; ``features`` is what the distance uses."""

    def __init__(self, channels: int, size: tuple[int, int], classes: int) -> None:
        super().__init__()
        h, w = (size[0] // 4, size[1] // 4)
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * h * w, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(train: ArrayDataset, epochs: int = 3, seed: int = 0) -> FeatureNet:
    """A classifier for ``train``'s labels (images (C, H, W) of at least 4x4)."""
    if train.y is None or not train.is_image:
        raise ValueError(f"{train.name}: the generation metric needs labelled images")
    torch.manual_seed(seed)
    c, h, w = train.shape
    net = FeatureNet(c, (h, w), int(train.y.max()) + 1)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for b in Batches(train, 128, shuffle=True, generator=g):
            opt.zero_grad()
            F.cross_entropy(net(b.x), b.y).backward()
            opt.step()
    return net.eval()


def cached_classifier(train: ArrayDataset, name: str) -> FeatureNet:
    """The classifier for dataset ``name``, from the cache or trained now and cached (safetensors)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    from aekit.data.download import cache_dir
    from aekit.fileio import atomic_path

    c, h, w = train.shape
    classes = int(train.y.max()) + 1
    path = (
        cache_dir()
        / "classifiers"
        / f"{name.replace('/', '_').replace(':', '_')}-{c}x{h}x{w}-{classes}.safetensors"
    )
    if path.is_file():
        net = FeatureNet(c, (h, w), classes)
        try:
            net.load_state_dict(load_file(str(path)))
            return net.eval()
        except (SafetensorError, RuntimeError, OSError):  # a damaged cache entry is retrained
            path.unlink(missing_ok=True)
    net = train_classifier(train)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    return net


@torch.no_grad()
def features_and_labels(net: FeatureNet, images: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    feats, labels = [], []
    for chunk in x.split(1000):
        f = net.features(chunk)
        feats.append(f.numpy())
        labels.append(net.head(f).argmax(1).numpy())
    return np.concatenate(feats).astype(np.float64), np.concatenate(labels)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) between two sets of feature rows."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # near-singular products (few samples) still give a usable root
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(sa @ sb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa + sb - 2 * root))


def generation_metrics(net: FeatureNet, real: np.ndarray, samples: np.ndarray, classes: int) -> dict:
    """Fréchet distance of ``samples`` to ``real`` images, and the samples' label distribution.

    Returns:
        ``frechet``, ``label_share`` (per class), ``label_entropy`` (nats; log(classes) is uniform),
        and the same distance between two halves of ``real`` (``frechet_real_halves``: the floor).
    """
    fr, _ = features_and_labels(net, real)
    fs, labels = features_and_labels(net, samples)
    share = np.bincount(labels, minlength=classes) / len(labels)
    nz = share[share > 0]
    half = len(fr) // 2
    return {
        "frechet": frechet_distance(fr, fs),
        "frechet_real_halves": frechet_distance(fr[:half], fr[half:]),
        "label_share": share.tolist(),
        "label_entropy": float(-(nz * np.log(nz)).sum()),
        "label_entropy_max": float(np.log(classes)),
    }
