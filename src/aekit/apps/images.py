"""Fully convolutional runs on folders of images of any size: reconstruct and denoise, one image at a time.

Each image goes through the model whole (reflect-padded to the model's stride and cropped back),
or in tiles under a memory budget (``tile``: same output, see :func:`aekit.data.patches.apply_whole`).
Outputs keep each input's size and file name: ``in/a/cat.jpg`` -> ``out/a/cat.jpg``.

>>> run = aekit.load("runs/photos")
>>> n, out = restore_folder(run, "photos/", "clean/", tile=512)
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from aekit.data.corrupt import Level, corrupt
from aekit.data.images import IMAGE_SUFFIXES, ImageSet, read_images, say
from aekit.data.patches import apply_whole, pad_to_multiple
from aekit.errors import ConfigError, DataError
from aekit.fileio import atomic_write_bytes, new_output
from aekit.models.fcn import geometry


def takes_any_size(run, source: str | Path) -> bool:
    """Whether ``source`` should go image by image through ``run``: a fully convolutional run and
    an image folder or image file (not a named dataset or an array)."""
    path = Path(str(source).removeprefix("images:"))
    images = path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    return run.model.any_size and path.exists() and images


def load_images(run, source: str | Path, progress: bool = False) -> ImageSet:
    """An image folder (or file) in the run's channel count, with the notes said on stderr."""
    images = read_images(
        str(source).removeprefix("images:"), channels=run.model.input_shape[0], progress=progress
    )
    say(images.notes)
    return images


PRECISIONS = ("fp32", "bf16")


def apply_image(run, fn, x: Tensor, tile: int | None = None, precision: str = "fp32") -> Tensor:
    """``fn`` (a model method, image in -> image out) on (B, C, H, W) of any size; same size out.
    A one-channel model takes each channel of a colour image as a grey image.

    ``precision="bf16"`` runs the convolutions under bfloat16 autocast (about twice as fast on
    CPUs with AVX-512 BF16 or AMX; outputs differ from fp32 by a few 1e-3); the result is float32.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r} (expected fp32 or bf16)")
    stride, margin = geometry(run.model)
    b, c, h, w = x.shape
    per_channel = run.model.input_shape[0] == 1 and c > 1
    if per_channel:
        x = x.reshape(b * c, 1, h, w)
    device = torch.device(run.device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = apply_whole(fn, x.to(device), stride, tile=tile, margin=margin).float().cpu()
    return out.reshape(b, c, h, w) if per_channel else out


def reconstructions(
    run, images: ImageSet, tile: int | None = None, progress: bool = False, precision: str = "fp32"
) -> Iterator[Tensor]:
    """Each image's reconstruction (for a denoiser: the denoised image), (1, C, H, W) in [0, 1]."""
    from aekit.progress import track

    if not run.model.any_size:
        raise ConfigError(f"{run.path}: images of any size need a fully convolutional run (model.arch=fcn)")
    run.model.eval()
    for i in track(range(len(images)), "images", unit="image", enabled=progress):
        yield apply_image(run, lambda t: run.model.reconstruct(t), images.image(i), tile, precision)


def code_shapes(run, images: ImageSet) -> list[tuple[int, int, int]]:
    """The shape :func:`image_codes` gives each image, without encoding: (C, ceil(H/s), ceil(W/s))."""
    stride, _ = geometry(run.model)
    c = run.model.config.latent_dim
    c *= images.channels if run.model.input_shape[0] == 1 else 1  # a grey model: channel by channel
    return [(c, -(-h // stride), -(-w // stride)) for h, w in images.sizes]


def image_codes(run, images: ImageSet, progress: bool = False) -> Iterator[np.ndarray]:
    """Each image's spatial code, float32 (C, H', W') with H' = ceil(H / stride), W' likewise.

    The image is reflect-padded to the model's stride (as for reconstruction), so code cell
    (i, j) covers pixels [i*stride, (i+1)*stride) x [j*stride, (j+1)*stride) of the image. A
    one-channel model encodes each channel of a colour image as a grey image: C is then
    the code channels times the image channels, channel by channel.
    """
    from aekit.progress import track

    if not run.model.any_size:
        raise ConfigError(f"{run.path}: images of any size need a fully convolutional run (model.arch=fcn)")
    run.model.eval()
    stride, _ = geometry(run.model)
    for i in track(range(len(images)), "images", unit="image", enabled=progress):
        x = images.image(i)
        if run.model.input_shape[0] == 1 and x.shape[1] > 1:
            x = x.reshape(-1, 1, *x.shape[-2:])  # (C, 1, H, W): channels as a batch of grey images
        with torch.no_grad():
            z = run.model.encode(pad_to_multiple(x.to(run.device), stride)).float().cpu()
        yield z.reshape(-1, *z.shape[-2:]).numpy()


def encode_image(image: Tensor) -> np.ndarray:
    """(1, C, H, W) in [0, 1] -> (H, W) or (H, W, 3) uint8."""
    a = np.clip(np.rint(image[0].numpy() * 255), 0, 255).astype(np.uint8)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def image_bytes(image: Tensor, name: str) -> bytes:
    """The image in the format its name asks for (PNG when the suffix is not one Pillow writes)."""
    from PIL import Image

    suffix = Path(name).suffix.lower()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
    buf = io.BytesIO()
    options = {"quality": 95} if fmt.get(suffix) in ("JPEG", "WEBP") else {}
    Image.fromarray(encode_image(image)).save(buf, format=fmt.get(suffix, "PNG"), **options)
    return buf.getvalue()


def check_folder_output(output: str | Path, force: bool) -> Path:
    """An output folder for images, checked before any work."""
    out = new_output(output, force)
    if out.suffix.lower() in (".npy", ".npz", ".csv", *IMAGE_SUFFIXES):
        raise DataError(
            f"{out}: images of different sizes are written to a folder; name a folder, not a file"
        )
    return out


def restore_folder(
    run,
    source: str | Path,
    output: str | Path,
    *,
    tile: int | None = None,
    add_noise: tuple[str, Level] | None = None,
    clean: str | Path | None = None,
    seed: int = 0,
    force: bool = False,
    progress: bool = False,
    precision: str = "fp32",
) -> dict[str, float]:
    """Reconstruct (or denoise) every image in ``source`` into the folder ``output``, same names, same sizes.

    Args:
        run: A fully convolutional run.
        source: An image folder or one image.
        output: The folder to write (must not exist, unless ``force``).
        tile: Tile side for large images (None: each image whole).
        add_noise: (kind, level): corrupt each input first (seeded); the input is then the clean reference.
        clean: A folder of the clean images under the same names, for PSNR/SSIM.
        seed: Seed of ``add_noise``.
        precision: ``fp32``, or ``bf16`` autocast (faster on recent CPUs; see :func:`apply_image`).

    Returns:
        ``n`` and, with a clean reference, the mean ``psnr``/``ssim`` of the input and the output.
    """
    from aekit.evaluation.metrics import summarize

    out = check_folder_output(output, force)
    images = load_images(run, source, progress)
    reference = load_images(run, clean) if clean else None
    if reference is not None and reference.ids != images.ids:
        raise DataError(f"{clean}: holds other file names than {source} (the clean images must match them)")
    if add_noise is not None:
        reference = images
        noisy = [corrupt(images.image(i), add_noise[0], add_noise[1], torch.Generator().manual_seed(seed + i))
                 for i in range(len(images))]  # fmt: skip
        images = ImageSet([_raw(x) for x in noisy], images.ids, images.name)
    sums: dict[str, float] = {}
    for i, restored in enumerate(reconstructions(run, images, tile, progress, precision)):
        target = out / images.ids[i]
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, image_bytes(restored, images.ids[i]))
        if reference is not None:
            x = reference.image(i)
            for key, value in summarize(x, images.image(i)).items():
                sums[f"input_{key}"] = sums.get(f"input_{key}", 0.0) + value
            for key, value in summarize(x, restored).items():
                sums[key] = sums.get(key, 0.0) + value
    return {"n": len(images), **{k: v / len(images) for k, v in sums.items()}}


def _raw(x: Tensor) -> np.ndarray:
    """(1, C, H, W) in [0, 1] -> (C, H, W) uint8, as a noisy photo would be stored."""
    return np.clip(np.rint(x[0].numpy() * 255), 0, 255).astype(np.uint8)
