"""Image folders as users have them: mixed sizes, grey and colour, 8 or 16 bits, any common format.

:func:`read_images` reads a folder (or class subfolders) into an :class:`ImageSet`: one
(C, H, W) uint8 array per image, each at its own size, EXIF orientation applied, every image
converted to one channel count (``channels``, default the majority; the conversions are
counted in :attr:`ImageSet.notes`). A file that cannot be read is a one-line error naming it,
or, with ``skip_bad``, left out and counted; other files in the folder are counted, not read.

What a model then trains on: :meth:`ImageSet.patches` (random crops, for fully convolutional
models), :meth:`ImageSet.resized` or :meth:`ImageSet.center_cropped` (one fixed size, for
any model), or :meth:`ImageSet.to_dataset` when all images already share a size.

Folders larger than memory: above ``memory_budget`` decoded bytes, each image is decoded once
into a ``.npy`` file in the cache (``$AEKIT_CACHE/images/``, keyed by the files' names, sizes
and times and the channel count) and memory-mapped from there. Why not decode lazily: training
draws random patches every epoch, and decoding a JPEG for each patch costs far more than reading
the patch's rows from an uncompressed array that the OS keeps in its page cache; the second
read of the folder (another run, another epoch) costs nothing.
"""

from __future__ import annotations

import hashlib
import struct
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aekit.data.dataset import ArrayDataset, Scaling
from aekit.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# What Pillow's decoders raise on a corrupt or hostile file (bad CRCs surface as SyntaxError, short reads
# as EOFError or struct.error, oversized images as DecompressionBombError, an Exception).
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, zlib.error)
MEMORY_BUDGET = 2 << 30  # decoded bytes kept in memory; above it, images go to memory-mapped .npy files
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


# --- one file ----------------------------------------------------------------------------------------


def open_image(path: Path):
    """A lazily opened Pillow image; a file Pillow cannot open is a DataError naming it."""
    from PIL import Image

    try:
        return Image.open(path)
    except (*IMAGE_ERRORS, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None


def is_grey(mode: str) -> bool:
    return mode in ("1", "L", "LA", "La", "I", "F") or mode.startswith("I;16")


def _header(path: Path) -> tuple[str, int, int]:
    """(mode, width, height) as the image will be seen (EXIF rotation applied), without decoding pixels."""
    with open_image(path) as im:
        w, h = im.size
        try:
            orientation = im.getexif().get(0x0112, 1)
        except IMAGE_ERRORS:
            orientation = 1
        return im.mode, *((h, w) if orientation in _ROTATED else (w, h))


def pixels(im, colour: bool, path: Path) -> np.ndarray:
    """An open image's pixels as (C, H, W) uint8, C = 3 if ``colour`` else 1; errors name the file.

    16-bit grey is scaled to 8 bits (rounded), RGBA loses its alpha, colour becomes grey by
    Pillow's ITU-R 601-2 luma, grey becomes colour by repetition. EXIF orientation is applied.
    """
    from PIL import Image, ImageOps

    try:
        im = ImageOps.exif_transpose(im)
        if im.mode.startswith("I;16") or im.mode == "I":
            wide = np.asarray(im).astype(np.int64)
            if wide.size and (wide.min() < 0 or wide.max() > 65535):
                raise DataError(
                    f"{path}: {im.mode} image holds values in [{wide.min()}, {wide.max()}]; "
                    "expected 8-bit images or 16-bit grey ones (0 to 65535)"
                )
            grey = ((wide * 255 + 32767) // 65535).astype(np.uint8)  # 16 bits -> 8, rounded
            return np.broadcast_to(grey, (3 if colour else 1, *grey.shape))
        if im.mode == "F":
            raise DataError(f"{path}: floating-point (mode F) image; expected 8-bit or 16-bit images")
        a = np.asarray(im.convert("RGB" if colour else "L"), dtype=np.uint8)
    except (*IMAGE_ERRORS, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    return a.transpose(2, 0, 1) if colour else a[None]


def read_image(path: Path, channels: int) -> np.ndarray:
    """One image file as (channels, H, W) uint8."""
    with open_image(path) as im:
        return np.ascontiguousarray(pixels(im, channels == 3, path))


# --- a folder ----------------------------------------------------------------------------------------


@dataclass
class ImageSet:
    """Images of any size: one (C, H, W) uint8 array each (in memory or memory-mapped).

    Attributes:
        images: The pixels, all with the same channel count C (1 or 3).
        ids: The file names, relative to the folder (outputs are named after them).
        name: The folder, for messages and the run config.
        y: Labels from class subfolders, or None.
        classes: The class names, or None.
        notes: What reading changed or left out, one line each (conversions, skipped files).
    """

    images: list[np.ndarray]
    ids: tuple[str, ...]
    name: str
    y: Tensor | None = None
    classes: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()
    scaling: Scaling = field(default_factory=Scaling.uint8)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return int(self.images[0].shape[0])

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(H, W) of each image."""
        return [(int(a.shape[1]), int(a.shape[2])) for a in self.images]

    def image(self, i: int) -> Tensor:
        """Image ``i`` scaled to [0, 1]: (1, C, H, W) float32."""
        return self.scaling.apply(torch.from_numpy(np.ascontiguousarray(self.images[i]))[None])

    def head(self, n: int) -> ImageSet:
        """The first ``n`` images."""
        y = None if self.y is None else self.y[:n]
        return ImageSet(self.images[:n], self.ids[:n], self.name, y, self.classes, self.notes)

    def to_dataset(self) -> ArrayDataset:
        """All images in one array, for models of one input size.

        Raises:
            DataError: images of different sizes, naming the first odd file and the ways out.
        """
        first = self.sizes[0]
        for i, size in enumerate(self.sizes):
            if size != first:
                raise DataError(
                    f"{Path(self.name) / self.ids[i]}: image is {size[1]}x{size[0]}, but {self.ids[0]} is "
                    f"{first[1]}x{first[0]} (train a fully convolutional model on patches with "
                    "--patch N --set model.arch=fcn, or make them one size with --resize HxW or "
                    "--center-crop HxW)"
                )
        return self._dataset(np.stack(self.images))

    def resized(self, height: int, width: int) -> ArrayDataset:
        """Every image resized to height x width (antialiased, aspect ratio not kept)."""
        from PIL import Image

        out = np.empty((len(self), self.channels, height, width), dtype=np.uint8)
        for i, a in enumerate(self.images):
            planes = [Image.fromarray(np.ascontiguousarray(p)) for p in a]
            out[i] = np.stack(
                [np.asarray(p.resize((width, height), Image.Resampling.LANCZOS)) for p in planes]
            )
        return self._dataset(out)

    def center_cropped(self, height: int, width: int) -> ArrayDataset:
        """The central height x width of every image.

        Raises:
            DataError: an image smaller than the crop, naming it.
        """
        out = np.empty((len(self), self.channels, height, width), dtype=np.uint8)
        for i, a in enumerate(self.images):
            h, w = a.shape[1:]
            if h < height or w < width:
                raise DataError(
                    f"{Path(self.name) / self.ids[i]}: image is {w}x{h}, "
                    f"smaller than the crop {width}x{height}"
                )
            top, left = (h - height) // 2, (w - width) // 2
            out[i] = a[:, top : top + height, left : left + width]
        return self._dataset(out)

    def patches(self, size: int, **options: Any):
        """A :class:`aekit.data.patches.PatchDataset` of random ``size`` x ``size`` crops."""
        from aekit.data.patches import PatchDataset

        return PatchDataset(self.images, size, name=self.name, ids=self.ids, **options)

    def _dataset(self, x: np.ndarray) -> ArrayDataset:
        return ArrayDataset(
            x, self.y, name=self.name, scaling=Scaling.uint8(), classes=self.classes, ids=self.ids
        )


def _listing(root: Path) -> tuple[list[Path], list[int], tuple[str, ...] | None, list[Path]]:
    """Image files (of the folder, else of its class subfolders), labels, class names, other files."""

    def split(folder: Path) -> tuple[list[Path], list[Path]]:
        files = sorted(p for p in folder.iterdir() if p.is_file())
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        return images, [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]

    files, others = split(root)
    labels: list[int] = []
    classes = None
    if not files:
        kept = []
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            fs, os_ = split(d)
            others += os_
            if fs:
                kept.append((d.name, fs))
        classes = tuple(name for name, _ in kept) or None
        for label, (_, fs) in enumerate(kept):
            files += fs
            labels += [label] * len(fs)
    return files, labels, classes, others


def read_images(
    path: str | Path,
    *,
    channels: int | None = None,
    skip_bad: bool = False,
    progress: bool = False,
    workers: int = 4,
    memory_budget: int = MEMORY_BUDGET,
    cache: str | Path | None = None,
) -> ImageSet:
    """Every image in a folder (or in its class subfolders, labels from their names), at its own size.

    Args:
        path: The folder, or one image file.
        channels: 1 (grey) or 3 (RGB); None: what most images are (colour on a tie).
        skip_bad: Leave out files that cannot be read (counted in ``notes``) instead of stopping.
        progress: A progress bar while decoding.
        workers: Threads decoding at once (Pillow's decoders release the GIL).
        memory_budget: Decoded bytes to hold in memory; above it, images are cached as ``.npy``
            files and memory-mapped (see the module docstring).
        cache: Where those ``.npy`` files go (default: ``$AEKIT_CACHE/images``).

    Raises:
        DataError: no such folder, no images, an unreadable file (without ``skip_bad``), bad ``channels``.
    """
    root = Path(path)
    if channels not in (None, 1, 3):
        raise DataError(f"{root}: channels must be 1 (grey) or 3 (RGB), not {channels}")
    if root.is_file():
        files, labels, classes, others, base = [root], [], None, [], root.parent
    elif root.is_dir():
        files, labels, classes, others = _listing(root)
        base = root
    else:
        raise DataError(f"{root}: no such file or folder")
    if not files:
        raise DataError(
            f"{root}: no images in the folder or its subfolders (looked for {', '.join(IMAGE_SUFFIXES)})"
        )
    # Headers first (mode and size): a bad file is named before any pixel is decoded.
    headers, bad = [], []
    for f in files:
        try:
            headers.append(_header(f))
        except DataError:
            if not skip_bad:
                raise
            bad.append(f)
    keep = [i for i, f in enumerate(files) if f not in set(bad)]
    files, labels = [files[i] for i in keep], [labels[i] for i in keep] if labels else []
    if not files:
        raise DataError(f"{root}: none of its {len(bad)} image files could be read")
    grey = [is_grey(mode) for mode, _, _ in headers]
    if channels is None:
        channels = 1 if sum(grey) > len(grey) / 2 else 3
    notes = []
    converted = sum(g != (channels == 1) for g in grey)
    if converted:
        what = "colour to grey" if channels == 1 else "grey to colour (RGB)"
        notes.append(
            f"converted {converted} of {len(files)} images from {what}, "
            f"to give every image {channels} channel(s)"
        )
    total = sum(channels * w * h for _, w, h in headers)
    to_disk = total > memory_budget
    images, failed = _decode(files, channels, skip_bad, progress, workers, cache if to_disk else False)
    if failed:
        bad += failed
        alive = [i for i, a in enumerate(images) if a is not None]
        files, labels = [files[i] for i in alive], [labels[i] for i in alive] if labels else []
        images = [images[i] for i in alive]
        if not images:
            raise DataError(f"{root}: none of its image files could be read")
    if bad:
        notes.append(f"skipped {len(bad)} unreadable image file(s): {', '.join(str(f) for f in bad[:3])}"
                     + (" ..." if len(bad) > 3 else ""))  # fmt: skip
    if others:
        notes.append(f"skipped {len(others)} non-image file(s) (e.g. {others[0].name})")
    if to_disk:
        notes.append(f"{total / 2**30:.1f} GiB decoded: images are cached as .npy files and memory-mapped")
    ids = tuple(f.relative_to(base).as_posix() for f in files)
    y = torch.tensor(labels, dtype=torch.int64) if classes else None
    return ImageSet(images, ids, str(root), y, classes, tuple(notes))


def _decode(
    files: list[Path], channels: int, skip_bad: bool, progress: bool, workers: int, cache
) -> tuple[list[np.ndarray | None], list[Path]]:
    """Decode ``files`` on a few threads; with a cache (not False), into memory-mapped .npy files."""
    from aekit.progress import track

    folder = None if cache is False else _cache_folder(files, channels, cache)

    def one(f: Path) -> np.ndarray | None:
        try:
            if folder is None:
                return read_image(f, channels)
            target = folder / (hashlib.sha1(str(f.resolve()).encode()).hexdigest() + ".npy")
            if not target.is_file():
                from aekit.fileio import atomic_path

                with atomic_path(target) as tmp, open(tmp, "wb") as out:
                    np.save(out, read_image(f, channels))
            return np.load(target, mmap_mode="r")
        except DataError:
            if not skip_bad:
                raise
            return None

    with ThreadPoolExecutor(max(1, workers)) as pool:
        images = list(
            track(
                pool.map(one, files),
                "reading images",
                total=len(files),
                unit="image",
                enabled=progress and len(files) >= 2,
            )
        )
    return images, [f for f, a in zip(files, images, strict=True) if a is None]


def _cache_folder(files: list[Path], channels: int, cache) -> Path:
    """A cache folder keyed by the files' paths, sizes and modification times and the channel count."""
    from aekit.data.download import cache_dir

    key = hashlib.sha256(str(channels).encode())
    for f in files:
        st = f.stat()
        key.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    folder = Path(cache) if cache is not None else cache_dir() / "images"
    folder = folder / key.hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def say(notes: tuple[str, ...] | list[str]) -> None:
    """Print what reading changed or skipped, one line each, to stderr."""
    for line in notes:
        print(f"note: {line}", file=sys.stderr)


def convert_channels(data: ArrayDataset, channels: int) -> ArrayDataset:
    """Images of a dataset as ``channels`` (1 or 3) channels, said on stderr: grey repeated over
    R, G and B, or colour to grey by ITU-R 601-2 luma (Pillow's), rounded as Pillow rounds.

    Raises:
        DataError: channel counts other than 1 and 3, naming the data.
    """
    have = data.shape[0]
    if have == channels:
        return data
    if {have, channels} != {1, 3}:
        raise DataError(f"{data.name}: images with {have} channels do not fit a model of {channels}")
    from dataclasses import replace

    raw = data.raw(torch.arange(len(data)))
    if channels == 3:
        x = raw.expand(-1, 3, -1, -1).contiguous()
    else:
        wide = raw.to(torch.int64) if raw.dtype == torch.uint8 else raw.to(torch.float64)
        luma = (wide[:, 0:1] * 299 + wide[:, 1:2] * 587 + wide[:, 2:3] * 114) / 1000
        x = luma.round().to(torch.uint8) if raw.dtype == torch.uint8 else luma.to(raw.dtype)
    what = "grey to colour (RGB)" if channels == 3 else "colour to grey"
    say(
        [
            f"converted all {len(data)} images of {data.name} from {what}: "
            f"the model takes {channels} channel(s)"
        ]
    )
    return replace(data, x=x)


def load_image_options(data_config: Any, progress: bool = False):
    """Training data for a data config that sets image-folder options (channels, patch, resize,
    center_crop, skip_bad): an :class:`ArrayDataset` or a patch dataset. None when it sets none
    (the caller then loads the source as usual).

    Raises:
        DataError: image options on a source that is not an image folder or file.
    """
    c = data_config
    if not (c.channels or c.patch or c.resize or c.center_crop or c.skip_bad):
        return None
    source = c.source.removeprefix("images:")
    if not Path(source).exists():
        raise DataError(
            f"{c.source}: channels, patch, resize, center_crop and skip_bad need a folder of images "
            "(or one image)"
        )
    images = read_images(source, channels=c.channels or None, skip_bad=c.skip_bad, progress=progress)
    say(images.notes)
    if c.limit:
        images = images.head(c.limit)
    if c.patch:
        return images.patches(c.patch)
    if c.resize:
        return images.resized(*parse_hw(c.resize, "resize"))
    if c.center_crop:
        return images.center_cropped(*parse_hw(c.center_crop, "center_crop"))
    return images.to_dataset()


def parse_hw(text: str, name: str = "size") -> tuple[int, int]:
    """``"HxW"`` (or one number for a square) -> (H, W).

    Raises:
        DataError: not two positive whole numbers.
    """
    parts = str(text).lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 1:
        raise DataError(f"{name} {text!r}: expected HxW, e.g. 256x256")
    return values[0], values[1]
