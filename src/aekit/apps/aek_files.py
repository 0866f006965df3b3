"""Files for ``aekit compress`` / ``decompress`` with a hyperprior run: image folders in, ``.aek``
version-2 files out (one for all, or one per image), PNGs of each image's own size back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aekit.apps.hypercodec import HyperCodec
from aekit.errors import DataError
from aekit.fileio import atomic_path, atomic_write_bytes, new_output

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm")


def read_image(path: Path) -> np.ndarray:
    """uint8 (1, H, W) for greyscale files, (3, H, W) for anything else (alpha dropped)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mode = "L" if im.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
            array = np.asarray(im.convert(mode))
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not an image that can be read ({e})") from None
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def read_inputs(source: str, codec: HyperCodec, split: str = "test", limit: int | None = None):
    """Names and uint8 (C, H, W) images from a folder of images, one image file, or a dataset."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{path}: holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        files = files[:limit] if limit else files
        return [p.stem for p in files], [read_image(p) for p in files]
    if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
        return [path.stem], [read_image(path)]
    import torch

    data = codec.run.load_data(source, split, limit=limit)
    x = data.raw(torch.arange(len(data))).numpy()
    if x.dtype != np.uint8:
        x = x.astype(np.float32) / (255.0 if x.max() > 1 else 1.0)
    names = [Path(n).stem for n in data.ids] if data.ids else [f"{i:05d}" for i in range(len(x))]
    return names, list(x.reshape(len(x), -1, *x.shape[-2:]))


@dataclass(frozen=True)
class Written:
    path: Path
    images: int
    bytes: int
    pixels: int
    seconds: float


def compress_to(
    codec: HyperCodec,
    names: list[str],
    images: list[np.ndarray],
    output: str | Path,
    quality: float,
    per_image: bool,
    force: bool = False,
    progress: bool = False,
    refine: int = 0,
) -> list[Written]:
    """Write one ``.aek`` for all ``images``, or with ``per_image`` one ``NAME.aek`` each in the
    folder ``output``; ``refine`` optimisation steps on each image's latents (0: none)."""
    output = new_output(output, force)
    if not per_image:
        enc = codec.encode(images, quality, progress=progress, name=str(output), refine=refine)
        atomic_write_bytes(output, enc.data)
        return [Written(output, len(images), len(enc.data), enc.pixels, enc.seconds)]
    if output.exists() and not output.is_dir():
        raise DataError(f"{output}: is a file; one file per image needs a folder")
    out = []
    for name, im in zip(names, images, strict=True):
        enc = codec.encode([im], quality, name=name, refine=refine)
        out.append(
            Written(
                atomic_write_bytes(output / f"{name}.aek", enc.data),
                1,
                len(enc.data),
                enc.pixels,
                enc.seconds,
            )
        )
    return out


def decompress_to(
    codec: HyperCodec, source: str | Path, output: str | Path, force: bool = False, progress: bool = False
) -> list[Path]:
    """PNGs of each image's own size in the folder ``output``, from one ``.aek`` file or a folder of them.

    A file of one image gives ``STEM.png``; a file of many ``STEM-00000.png``, ... in file order.
    """
    from PIL import Image

    from aekit.apps.codec import read_aek

    source, output = Path(source), new_output(output, force)
    files = sorted(source.glob("*.aek")) if source.is_dir() else [source]
    if not files:
        raise DataError(f"{source}: holds no .aek files")
    written = []
    for f in files:
        images = codec.decompress(read_aek(f), name=str(f), progress=progress)
        for i, im in enumerate(images):
            path = output / (f"{f.stem}.png" if len(images) == 1 else f"{f.stem}-{i:05d}.png")
            with atomic_path(path) as tmp:
                Image.fromarray(im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0)).save(tmp, format="PNG")
            written.append(path)
    return written


def compress_command(
    codec: HyperCodec,
    source: str,
    output: str,
    *,
    quality: float | None = None,
    target_psnr: float | None = None,
    target_bpp: float | None = None,
    split: str = "test",
    limit: int | None = None,
    force: bool = False,
    progress: bool = False,
    refine: int = 0,
) -> str:
    """``aekit compress`` with a hyperprior run; returns the line to print.

    ``output`` ending in ``/`` (or an existing folder) gets one file per image, anything else one file.
    ``refine`` > 0 optimises each image's latents for that many steps (:mod:`aekit.apps.hyperrefine`);
    a target PSNR or bpp picks the quality without it.
    """
    from aekit.errors import ConfigError

    if sum(v is not None for v in (quality, target_psnr, target_bpp)) > 1:
        raise ConfigError("give one of --quality, --target-psnr, --target-bpp")
    if refine < 0:
        raise ConfigError(f"--refine {refine}: expected a number of steps >= 0")
    names, images = read_inputs(source, codec, split, limit)
    if target_psnr is not None or target_bpp is not None:
        quality = codec.quality_for(images, target_psnr=target_psnr, target_bpp=target_bpp)
    quality = 4.0 if quality is None else quality
    per_image = output.endswith(("/", "\\")) or Path(output).is_dir()
    written = compress_to(codec, names, images, output, quality, per_image, force, progress, refine)
    size, pixels = sum(w.bytes for w in written), sum(w.pixels for w in written)
    seconds = sum(w.seconds for w in written)
    where = f"{len(written)} files in {output}" if per_image else str(written[0].path)
    return (
        f"wrote {where}: {len(images)} images at quality {quality:g} in {size:,} bytes, "
        f"{8 * size / pixels:.4f} bits per pixel (from the files' sizes), "
        f"{pixels / 1e6 / seconds:.2f} megapixels/s"
    )


def decompress_command(
    codec: HyperCodec, source: str, output: str, force: bool = False, progress: bool = False
) -> str:
    """``aekit decompress`` with a hyperprior run; returns the line to print."""
    import time

    start = time.perf_counter()
    paths = decompress_to(codec, source, output, force, progress)
    return f"wrote {len(paths)} PNG images to {output} ({time.perf_counter() - start:.2f} s)"
