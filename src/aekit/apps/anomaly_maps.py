"""Anomaly maps: where in an image a fully convolutional detector sees what it did not learn.

The map is the per-pixel squared reconstruction error (mean over channels) of the whole image,
at its own size; the image's score is the map's mean, the detector's ``mse`` score. A heat-map
PNG per image puts the image (left) beside its map (right, 0 up to a shared ``vmax``, so maps of
different images compare).

>>> det = AnomalyDetector.load("det/")
>>> scores, maps = score_images(det.run, images, tile=512)
>>> write_maps("maps/", images, maps)
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from aekit.apps.images import apply_image
from aekit.data.images import ImageSet
from aekit.fileio import atomic_write_bytes


def error_map(run, image, tile: int | None = None) -> np.ndarray:
    """The per-pixel squared error of one (1, C, H, W) image in [0, 1]: (H, W) float32."""
    x_hat = apply_image(run, lambda t: run.model.reconstruct(t), image, tile)
    return ((x_hat - image) ** 2).mean(1)[0].numpy().astype(np.float32)


def score_images(run, images: ImageSet, tile: int | None = None, progress: bool = False):
    """(scores (N,), maps: a list of (H, W) arrays); higher = more anomalous."""
    from aekit.progress import track

    run.model.eval()
    maps = [
        error_map(run, images.image(i), tile)
        for i in track(range(len(images)), "scoring images", unit="image", enabled=progress)
    ]
    return np.array([float(m.mean()) for m in maps], dtype=np.float64), maps


def heat_map_png(image: np.ndarray, error: np.ndarray, vmax: float) -> bytes:
    """The image (C, H, W) uint8 beside its error map in the ``inferno`` colours: PNG bytes."""
    from matplotlib import colormaps
    from PIL import Image

    rgb = np.broadcast_to(image, (3, *image.shape[1:])) if image.shape[0] == 1 else image
    colours = colormaps["inferno"](np.clip(error / max(vmax, 1e-12), 0, 1))[..., :3]
    heat = np.rint(colours * 255).astype(np.uint8)
    side = np.concatenate([np.asarray(rgb).transpose(1, 2, 0), heat], axis=1)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(side)).save(buf, format="PNG")
    return buf.getvalue()


def write_maps(
    folder: str | Path, images: ImageSet, maps: list[np.ndarray], vmax: float | None = None
) -> Path:
    """One ``<name>.map.png`` per image in ``folder`` (its subfolders kept); ``vmax`` defaults to the
    99.9th percentile of all maps, so one bright pixel does not wash out the rest."""
    folder = Path(folder)
    if vmax is None:
        vmax = float(np.percentile(np.concatenate([m.ravel() for m in maps]), 99.9))
    for i, m in enumerate(maps):
        target = folder / Path(images.ids[i]).with_suffix(".map.png")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, heat_map_png(np.asarray(images.images[i]), m, vmax))
    return folder
