"""Images of any size to ``.aek`` version-2 files and back, with a trained ``hyperprior`` run.

>>> codec = HyperCodec.load("runs/hp")
>>> data = codec.compress([img_a, img_b], quality=5)   # uint8 (C, H, W) or (H, W), any sizes
>>> images = codec.decompress(data)                     # a list of uint8 (C, H, W), each its own size

File layout (little-endian), version 2::

    magic       4 bytes   b"AEK\\x01" (as version 1)
    version     uint8     2
    layout      uint8     1: one ANS stream, z then y (written since Nov 2026); 0: two streams
    model hash  16 bytes  SHA-256 prefix of the weights and tables that made the file
    quality     uint16    quality x 256 (1.0 .. the model's levels; fractions interpolate the gains)
    count       uint32    images in the file
    runs        uint32    entries of the shape table
    z words     uint32    layout 0: length of the hyperprior (side information) stream, 32-bit
                          words; layout 1: 0
    y words     uint32    length of the latent stream (layout 1: of the one stream), 32-bit words
    checksum    uint32    CRC-32 of the header before it, the shape table and both streams
    shapes      runs x (count uint32, channels uint8, height uint16, width uint16): run-length
                coded, so 10,000 images of one size cost 9 bytes
    z stream    ANS words: z symbols, channel by channel, each with its channel's table
    y stream    ANS words: y symbols, grouped by their scale-table index (computed from z in
                integer arithmetic), each group with its integer Gaussian table

In layout 1 (what :meth:`HyperCodec.encode` writes) both are one stream, the z symbols popped
first: one coder's final state (4-8 bytes) less per file than two streams, which matters for
small images. Files of layout 0 still decode.

A grey image given to a colour model is coded as three equal channels and decoded back to one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aekit.api import Run, load
from aekit.data.patches import pad_to_multiple, padded_size
from aekit.errors import ConfigError, DataError
from aekit.models.hyperprior import PRECISION, SCALES, HyperpriorModel

MAGIC = b"AEK\x01"
VERSION = 2
HEADER = struct.Struct("<4sBB16sHIIIII")
RUN = struct.Struct("<IBHH")


@dataclass(frozen=True)
class Header:
    layout: int
    model_hash: bytes
    quality: int  # x 256
    count: int
    runs: int
    z_words: int
    y_words: int
    checksum: int

    def pack(self) -> bytes:
        return HEADER.pack(
            MAGIC,
            VERSION,
            self.layout,
            self.model_hash,
            self.quality,
            self.count,
            self.runs,
            self.z_words,
            self.y_words,
            self.checksum,
        )


@dataclass(frozen=True)
class Encoded:
    """What :meth:`HyperCodec.encode` returns: the file and what it cost."""

    data: bytes
    z_bytes: int  # the hyperprior stream
    y_bytes: int
    seconds: float
    pixels: int
    estimated_bytes: float  # the entropy model's rate under the integer tables, header included

    @property
    def megapixels_per_second(self) -> float:
        return self.pixels / 1e6 / max(self.seconds, 1e-9)


def model_hash(model: torch.nn.Module) -> bytes:
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.digest()[:16]


def as_images(images, name: str = "images") -> list[np.ndarray]:
    """uint8 (C, H, W) arrays from an (N, C, H, W) array, a list of (C, H, W) / (H, W) arrays, or
    floats in [0, 1]."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    out = []
    for i, im in enumerate(images):
        im = np.asarray(im)
        if im.ndim == 2:
            im = im[None]
        if im.ndim != 3 or im.shape[0] not in (1, 3) or min(im.shape[1:]) < 1 or max(im.shape[1:]) > 65535:
            raise DataError(
                f"{name}: image {i} has shape {im.shape}; expected (1 or 3, H, W), H and W 1..65535"
            )
        if im.dtype != np.uint8:
            if im.dtype.kind != "f" or not np.isfinite(im).all() or im.min() < 0 or im.max() > 1:
                raise DataError(f"{name}: image {i} is {im.dtype}; expected uint8 or floats in [0, 1]")
            im = np.rint(im * 255).astype(np.uint8)
        out.append(np.ascontiguousarray(im))
    if not out:
        raise DataError(f"{name}: no images to compress")
    return out


def _runs(shapes: list[tuple[int, int, int]]) -> list[tuple[int, tuple[int, int, int]]]:
    runs: list[tuple[int, tuple[int, int, int]]] = []
    for s in shapes:
        if runs and runs[-1][1] == s:
            runs[-1] = (runs[-1][0] + 1, s)
        else:
            runs.append((1, s))
    return runs


class HyperCodec:
    """Compress images of any size to bytes and back with a trained ``hyperprior`` run."""

    def __init__(self, run: Run, batch_size: int = 512, batch_pixels: int = 1 << 19) -> None:
        if not isinstance(run.model, HyperpriorModel):
            raise ConfigError(f"{run.path}: a {run.config.model!r} run; this codec needs a hyperprior run")
        self.run, self.model, self.batch_size = run, run.model.eval(), batch_size
        self.batch_pixels = batch_pixels  # a batch holds at most this many (padded) pixels, and 1 image
        if int(self.model.y_tables.sum()) == 0:
            raise ConfigError(f"{run.path}: the entropy tables were never computed (was training cut short?)")
        self.hash = model_hash(self.model)
        import constriction

        cat = constriction.stream.model.Categorical
        total = float(1 << PRECISION)
        self._y_models = [
            cat(r.astype(np.float64) / total, perfect=False) for r in self.model.y_tables.numpy()
        ]
        self._z_models = [
            cat(r.astype(np.float64) / total, perfect=False) for r in self.model.z_tables.numpy()
        ]
        self._coder = constriction.stream.stack.AnsCoder

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu") -> HyperCodec:
        return cls(load(run_dir, device=device))

    @property
    def channels(self) -> int:
        return int(self.model.config.input_shape[0])

    # -- shapes -------------------------------------------------------------------------------

    def _latent_sizes(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        c = self.model.config
        ph, pw = padded_size(h, c.stride), padded_size(w, c.stride)
        return (ph >> c.levels, pw >> c.levels), (
            ph >> (c.levels + c.hyper_levels),
            pw >> (c.levels + c.hyper_levels),
        )

    def _segments(self, shapes: list[tuple[int, int, int]]) -> list[Segment]:
        """Consecutive images of one shape, in batches of at most ``batch_size`` images and
        ``batch_pixels`` padded pixels, with where their symbols start in the streams. Images are
        coded in file order, so a batch's symbols are one contiguous slice (no per-image work)."""
        c, out = self.model.config, []
        start, y_at, z_at = 0, 0, 0
        for n, shape in _runs(shapes):
            (yh, yw), (zh, zw) = self._latent_sizes(*shape[1:])
            per = max(1, min(self.batch_size, self.batch_pixels // (yh * yw << 2 * c.levels)))
            for lo in range(0, n, per):
                k = min(per, n - lo)
                out.append(Segment(start, k, shape, (yh, yw), (zh, zw), y_at, z_at))
                start, y_at, z_at = start + k, y_at + k * c.latent_channels * yh * yw, z_at + k * zh * zw
        return out

    def _quality(self, quality: float) -> int:
        q = int(round(float(quality) * 256))
        if not 256 <= q <= 256 * self.model.qualities:
            raise ConfigError(f"quality {quality:g} is outside 1..{self.model.qualities}")
        return q

    # -- encoding -----------------------------------------------------------------------------

    @torch.no_grad()
    def symbols(self, images: list[np.ndarray], segments: list[Segment], quality: float, progress=False):
        """Integer y and z of every segment ((n, M, h, w) and (n, Nz, h', w') int64 arrays)."""
        q = self._quality(quality) / 256
        ys, zs = [], []
        for seg in _bar(segments, progress, "encode"):
            x = torch.from_numpy(np.stack(images[seg.start : seg.start + seg.n])).float().div(255)
            if x.shape[1] != self.channels:  # grey into a colour model
                x = x.expand(-1, self.channels, -1, -1)
            y, z = self.model.analyse(pad_to_multiple(x.to(self.run.device), self.model.config.stride), q)
            ys.append(y.cpu().numpy())
            zs.append(z.cpu().numpy())
        return ys, zs

    def _check_channels(self, images: list[np.ndarray], name: str) -> None:
        for i, im in enumerate(images):
            if im.shape[0] > self.channels:
                raise DataError(
                    f"{name}: image {i} has {im.shape[0]} channels; this model codes {self.channels}"
                )

    def compress(self, images, quality: float = 4, progress: bool = False, name: str = "images") -> bytes:
        """The bytes of an ``.aek`` v2 file holding ``images`` (see :func:`as_images`)."""
        return self.encode(images, quality, progress, name).data

    def encode(self, images, quality: float = 4, progress: bool = False, name: str = "images") -> Encoded:
        """Like :meth:`compress`, with the size of each stream and the time taken."""
        start = time.perf_counter()
        images = as_images(images, name)
        self._check_channels(images, name)
        qint = self._quality(quality)
        segments = self._segments([im.shape for im in images])
        ys, zs = self.symbols(images, segments, quality, progress)
        c = self.model.config
        z_all = np.concatenate([z.swapaxes(0, 1).reshape(c.hyper_channels, -1) for z in zs], 1)  # (Nz, all)
        z_all = (z_all + c.max_side).astype(np.int32)
        y_all = np.concatenate([y.ravel() for y in ys]).astype(np.int32) + c.max_symbol
        k_all = np.concatenate([k.ravel() for k in self._scale_indices(zs)])
        order, bounds = _by_scale(k_all)
        coder = self._coder()  # a stack: y first, z on top (the decoder needs z first)
        for k in range(SCALES):
            if bounds[k + 1] > bounds[k]:
                coder.encode_reverse(y_all[order[bounds[k] : bounds[k + 1]]], self._y_models[k])
        y_only = 4 * coder.num_words()
        for ch in range(c.hyper_channels):  # the decoder pops the last channel first
            coder.encode_reverse(z_all[ch], self._z_models[ch])
        stream = coder.get_compressed().astype("<u4").tobytes()
        runs = _runs([im.shape for im in images])
        table = b"".join(RUN.pack(n, *s) for n, s in runs)
        header = Header(1, self.hash, qint, len(images), len(runs), 0, len(stream) // 4, 0)
        body = table + stream
        checksum = zlib.crc32(body, zlib.crc32(header.pack()[: HEADER.size - 4]))
        data = dataclasses.replace(header, checksum=checksum).pack() + body
        pixels = sum(im.shape[1] * im.shape[2] for im in images)
        seconds = time.perf_counter() - start
        tables = self.model.y_tables.numpy().astype(np.float64)
        bits = -np.log2(tables[k_all, y_all] / (1 << PRECISION)).sum()
        z_tables = self.model.z_tables.numpy().astype(np.float64)
        bits += -np.log2(z_tables[np.arange(c.hyper_channels)[:, None], z_all] / (1 << PRECISION)).sum()
        estimate = bits / 8 + HEADER.size + len(table)
        return Encoded(data, len(stream) - y_only, y_only, seconds, pixels, float(estimate))

    def _scale_indices(self, zs: list[np.ndarray]) -> list[np.ndarray]:
        """The scale-table index (uint8) of every y symbol, per segment, from its z (integer arithmetic)."""
        return [self.model.scale_index(torch.from_numpy(z)).numpy() for z in zs]

    def estimated_bytes(self, images, quality: float = 4) -> float:
        """The entropy model's rate in bytes under the integer tables, header and shape table
        included (to compare with the file's size)."""
        return self.encode(images, quality).estimated_bytes

    @torch.no_grad()
    def quality_for(
        self, images, target_psnr: float | None = None, target_bpp: float | None = None, sample: int = 256
    ) -> float:
        """The quality (in 1/256 steps) that meets a target: the lowest reaching ``target_psnr`` dB,
        or the highest within ``target_bpp`` (estimated on up to ``sample`` images; bisection,
        since both rise with the quality)."""
        if (target_psnr is None) == (target_bpp is None):
            raise ConfigError("give one target: a PSNR or a bits-per-pixel")
        images = as_images(images)[:sample]
        pixels = sum(im.shape[1] * im.shape[2] for im in images)

        def meets(q: float) -> bool:
            if target_bpp is not None:
                return 8 * self.estimated_bytes(images, q) / pixels <= target_bpp
            back = self._reconstruct(images, q)
            err = sum(
                float(((a.astype(np.float64) - b) ** 2).sum()) for a, b in zip(images, back, strict=True)
            )
            mse = err / sum(im.size for im in images)
            return 10 * np.log10(255**2 / max(mse, 1e-12)) >= target_psnr

        lo, hi = 256, 256 * self.model.qualities  # in 1/256 steps
        if target_psnr is not None:  # the lowest quality that meets it (the top if none does)
            if meets(lo / 256):
                return 1.0
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if meets(mid / 256) else (mid, hi)
            return hi / 256
        if not meets(lo / 256):  # the highest quality within the budget (the lowest if none is)
            return 1.0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if meets(mid / 256) else (lo, mid)
        return hi / 256 if meets(hi / 256) else lo / 256

    @torch.no_grad()
    def _reconstruct(self, images: list[np.ndarray], quality: float) -> list[np.ndarray]:
        segments = self._segments([im.shape for im in images])
        ys, _ = self.symbols(images, segments, quality)
        return self._synthesise(ys, segments, self._quality(quality) / 256)

    # -- decoding -----------------------------------------------------------------------------

    def read_header(self, data: bytes, name: str = "data") -> tuple[Header, list[tuple[int, int, int]]]:
        """Check a v2 file's header, shape table, length and checksum against this model.

        Raises:
            CodecError: naming ``name`` and what is wrong.
        """
        from aekit.apps.codec import CodecError

        if len(data) < HEADER.size:
            raise CodecError(
                f"{name}: {len(data)} bytes, too short for an aekit stream (header {HEADER.size})"
            )
        magic, version, layout, digest, quality, count, runs, zw, yw, checksum = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise CodecError(f"{name}: not an aekit compressed file (magic {magic!r})")
        if version != VERSION:
            raise CodecError(f"{name}: format version {version}; a hyperprior run reads version {VERSION}")
        size = HEADER.size + RUN.size * runs + 4 * (zw + yw)
        if len(data) != size:
            raise CodecError(f"{name}: {len(data)} bytes but the header announces {size} (truncated?)")
        if zlib.crc32(data[HEADER.size :], zlib.crc32(data[: HEADER.size - 4])) != checksum:
            raise CodecError(f"{name}: checksum mismatch: the file is corrupted")
        if digest != self.hash:
            raise CodecError(
                f"{name}: made by another model (hash {digest.hex()}); this run's is {self.hash.hex()}"
            )
        shapes: list[tuple[int, int, int]] = []
        for r in range(runs):
            n, c, h, w = RUN.unpack_from(data, HEADER.size + r * RUN.size)
            if c not in (1, 3) or c > self.channels or h < 1 or w < 1 or n < 1:
                raise CodecError(f"{name}: shape table entry {r} is not valid ({n} x ({c}, {h}, {w}))")
            shapes += [(c, h, w)] * n
        if (
            len(shapes) != count
            or not 256 <= quality <= 256 * self.model.qualities
            or layout * zw
            or layout > 1
        ):
            raise CodecError(
                f"{name}: header fields do not agree "
                f"(count {count}, quality {quality / 256:g}, layout {layout}, z words {zw})"
            )
        return Header(layout, digest, quality, count, runs, zw, yw, checksum), shapes

    @torch.no_grad()
    def decompress(self, data: bytes, name: str = "data", progress: bool = False) -> list[np.ndarray]:
        """Images back from an ``.aek`` v2 file: a list of uint8 (C, H, W), each its own size.

        Raises:
            CodecError: a truncated, corrupted or foreign file, or one made by another model.
        """
        from aekit.apps.codec import CodecError

        header, shapes = self.read_header(data, name)
        c = self.model.config
        off = HEADER.size + RUN.size * header.runs
        words = np.frombuffer(data, dtype="<u4", offset=off).astype(np.uint32)
        zp, yp = words[: header.z_words], words[header.z_words :]
        segments = self._segments(shapes)
        z_total = sum(seg.n * seg.z_size[0] * seg.z_size[1] for seg in segments)
        try:
            coder = self._coder(zp if header.layout == 0 else words)
            z_all = np.empty((c.hyper_channels, z_total), np.int64)
            for ch in reversed(range(c.hyper_channels)):
                z_all[ch] = coder.decode(self._z_models[ch], z_total)
            z_all -= c.max_side
            zs = [
                z_all[:, seg.z_at : seg.z_at + seg.n * seg.z_size[0] * seg.z_size[1]]
                .reshape(c.hyper_channels, seg.n, *seg.z_size)
                .swapaxes(0, 1)
                for seg in segments
            ]
            k_all = np.concatenate([k.ravel() for k in self._scale_indices(zs)])
            order, bounds = _by_scale(k_all)
            y_sorted = np.empty(len(k_all), np.int32)
            if header.layout == 0:
                coder = self._coder(yp)
            for k in reversed(range(SCALES)):
                if bounds[k + 1] > bounds[k]:
                    y_sorted[bounds[k] : bounds[k + 1]] = coder.decode(
                        self._y_models[k], int(bounds[k + 1] - bounds[k])
                    )
        except Exception as e:  # constriction raises on an exhausted or inconsistent stream
            raise CodecError(f"{name}: the coded data is inconsistent ({e})") from None
        y_all = np.empty_like(y_sorted)
        y_all[order] = y_sorted - c.max_symbol
        ys = [
            y_all[seg.y_at : seg.y_at + seg.n * c.latent_channels * seg.y_size[0] * seg.y_size[1]].reshape(
                seg.n, c.latent_channels, *seg.y_size
            )
            for seg in segments
        ]
        return self._synthesise(ys, segments, header.quality / 256, progress)

    @torch.no_grad()
    def _synthesise(self, ys, segments: list[Segment], quality: float, progress: bool = False):
        out: list[np.ndarray] = []
        for y, seg in _bar(list(zip(ys, segments, strict=True)), progress, "decode"):
            ch, h, w = seg.shape
            x = self.model.synthesise(torch.from_numpy(y).to(self.run.device), quality)[:, :, :h, :w]
            if ch == 1 and self.channels == 3:
                x = x.mean(1, keepdim=True)
            out += list(x.mul(255).round_().to(torch.uint8).cpu().numpy())  # in [0, 255] already (clamped)
        return out


@dataclass(frozen=True)
class Segment:
    """``n`` consecutive images of one ``shape`` (C, H, W) from image ``start``; their latents
    are ``y_size`` / ``z_size`` and their symbols start at ``y_at`` / ``z_at`` (per z channel)."""

    start: int
    n: int
    shape: tuple[int, int, int]
    y_size: tuple[int, int]
    z_size: tuple[int, int]
    y_at: int
    z_at: int


def _by_scale(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stable order of symbols grouped by scale index (uint8: numpy radix-sorts it, linear
    time), and where each index's group starts: ``bounds[k]..bounds[k+1]``."""
    order = np.argsort(k, kind="stable")
    counts = torch.from_numpy(k).bincount(minlength=SCALES).numpy()  # (numpy's would copy k to int64)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return order, bounds


def _bar(items: Sequence, progress: bool, desc: str):
    if not progress:
        return items
    from aekit.progress import track

    return track(items, desc)
