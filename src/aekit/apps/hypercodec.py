"""Images of any size to ``.aek`` version-2 files and back, with a trained ``hyperprior`` run.

>>> codec = HyperCodec.load("runs/hp")
>>> data = codec.compress([img_a, img_b], quality=5)   # uint8 (C, H, W) or (H, W), any sizes
>>> images = codec.decompress(data)                     # a list of uint8 (C, H, W), each its own size

File layout (little-endian), version 2::

    magic       4 bytes   b"AEK\\x01" (as version 1)
    version     uint8     2
    reserved    uint8     0
    model hash  16 bytes  SHA-256 prefix of the weights and tables that made the file
    quality     uint16    quality x 256 (1.0 .. the model's levels; fractions interpolate the gains)
    count       uint32    images in the file
    runs        uint32    entries of the shape table
    z words     uint32    length of the hyperprior (side information) stream, 32-bit words
    y words     uint32    length of the latent stream, 32-bit words
    checksum    uint32    CRC-32 of the header before it, the shape table and both streams
    shapes      runs x (count uint32, channels uint8, height uint16, width uint16): run-length
                coded, so 10,000 images of one size cost 9 bytes
    z stream    ANS words: z symbols, channel by channel, each with its channel's table
    y stream    ANS words: y symbols, grouped by their scale-table index (computed from z in
                integer arithmetic), each group with its integer Gaussian table

A grey image given to a colour model is coded as three equal channels and decoded back to one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
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
            0,
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

    def __init__(self, run: Run, batch_size: int = 256) -> None:
        if not isinstance(run.model, HyperpriorModel):
            raise ConfigError(f"{run.path}: a {run.config.model!r} run; this codec needs a hyperprior run")
        self.run, self.model, self.batch_size = run, run.model.eval(), batch_size
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

    def _groups(self, shapes: list[tuple[int, int, int]]) -> Iterator[np.ndarray]:
        """Indices of images of one shape (C, H, W), in batches of at most ``batch_size``."""
        sizes: dict[tuple[int, int, int], list[int]] = {}
        for i, shape in enumerate(shapes):
            sizes.setdefault(tuple(shape), []).append(i)
        for idx in sizes.values():
            for lo in range(0, len(idx), self.batch_size):
                yield np.array(idx[lo : lo + self.batch_size])

    def _quality(self, quality: float) -> int:
        q = int(round(float(quality) * 256))
        if not 256 <= q <= 256 * self.model.qualities:
            raise ConfigError(f"quality {quality:g} is outside 1..{self.model.qualities}")
        return q

    # -- encoding -----------------------------------------------------------------------------

    @torch.no_grad()
    def symbols(self, images: list[np.ndarray], quality: float, progress: bool = False):
        """Integer y and z of every image (lists of (M, h, w) and (Nz, h', w') int64 arrays)."""
        q = self._quality(quality) / 256
        ys: list[np.ndarray | None] = [None] * len(images)
        zs: list[np.ndarray | None] = [None] * len(images)
        for idx in _bar(list(self._groups([im.shape for im in images])), progress, "encode"):
            x = torch.from_numpy(np.stack([images[i] for i in idx])).float().div(255)
            if x.shape[1] != self.channels:  # grey into a colour model
                x = x.expand(-1, self.channels, -1, -1)
            y, z = self.model.analyse(pad_to_multiple(x.to(self.run.device), self.model.config.stride), q)
            for j, i in enumerate(idx):
                ys[i], zs[i] = y[j].cpu().numpy(), z[j].cpu().numpy()
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
        ys, zs = self.symbols(images, quality, progress)
        idx = self._scale_indices(zs, [im.shape for im in images])
        c = self.model.config
        z_coder = self._coder()
        for ch in range(c.hyper_channels):  # a stack: the decoder pops the last channel first
            z_coder.encode_reverse(
                np.concatenate([z[ch].ravel() for z in zs]).astype(np.int32) + c.max_side, self._z_models[ch]
            )
        y_all = np.concatenate([y.ravel() for y in ys]).astype(np.int32) + c.max_symbol
        k_all = np.concatenate([k.ravel() for k in idx])
        order = np.argsort(k_all, kind="stable")
        bounds = np.searchsorted(k_all[order], np.arange(SCALES + 1))
        y_coder = self._coder()
        for k in range(SCALES):
            if bounds[k + 1] > bounds[k]:
                y_coder.encode_reverse(y_all[order[bounds[k] : bounds[k + 1]]], self._y_models[k])
        zp = z_coder.get_compressed().astype("<u4").tobytes()
        yp = y_coder.get_compressed().astype("<u4").tobytes()
        runs = _runs([im.shape for im in images])
        table = b"".join(RUN.pack(n, *s) for n, s in runs)
        header = Header(self.hash, qint, len(images), len(runs), len(zp) // 4, len(yp) // 4, 0)
        body = table + zp + yp
        checksum = zlib.crc32(body, zlib.crc32(header.pack()[: HEADER.size - 4]))
        data = dataclasses.replace(header, checksum=checksum).pack() + body
        pixels = sum(im.shape[1] * im.shape[2] for im in images)
        seconds = time.perf_counter() - start
        tables = self.model.y_tables.numpy().astype(np.float64)
        bits = -np.log2(tables[k_all, y_all] / (1 << PRECISION)).sum()
        z_tables = self.model.z_tables.numpy().astype(np.float64)
        for ch in range(c.hyper_channels):
            z = np.concatenate([z[ch].ravel() for z in zs]) + c.max_side
            bits += -np.log2(z_tables[ch, z] / (1 << PRECISION)).sum()
        estimate = bits / 8 + HEADER.size + len(table)
        return Encoded(data, len(zp), len(yp), seconds, pixels, float(estimate))

    def _scale_indices(self, zs: list[np.ndarray], shapes: list[tuple[int, int, int]]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(zs)
        for idx in self._groups(shapes):
            k = self.model.scale_index(torch.from_numpy(np.stack([zs[i] for i in idx])))
            for j, i in enumerate(idx):
                out[i] = k[j].numpy().astype(np.int32)
        return out

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
        ys, _ = self.symbols(images, quality)
        return self._synthesise(ys, [im.shape for im in images], self._quality(quality) / 256)

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
        magic, version, _, digest, quality, count, runs, zw, yw, checksum = HEADER.unpack_from(data)
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
        if len(shapes) != count or not 256 <= quality <= 256 * self.model.qualities:
            raise CodecError(f"{name}: header fields do not agree (count {count}, quality {quality / 256:g})")
        return Header(digest, quality, count, runs, zw, yw, checksum), shapes

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
        sizes = [self._latent_sizes(h, w) for _, h, w in shapes]
        z_counts = [zh * zw for _, (zh, zw) in sizes]
        try:
            coder = self._coder(zp)
            per_channel = [None] * c.hyper_channels
            for ch in reversed(range(c.hyper_channels)):
                per_channel[ch] = (
                    coder.decode(self._z_models[ch], sum(z_counts)).astype(np.int64) - c.max_side
                )
            cuts = np.cumsum([0, *z_counts])
            zs = [
                np.stack([per_channel[ch][cuts[i] : cuts[i + 1]] for ch in range(c.hyper_channels)]).reshape(
                    c.hyper_channels, *sizes[i][1]
                )
                for i in range(len(shapes))
            ]
            idx = self._scale_indices(zs, shapes)
            k_all = np.concatenate([k.ravel() for k in idx])
            order = np.argsort(k_all, kind="stable")
            bounds = np.searchsorted(k_all[order], np.arange(SCALES + 1))
            y_all = np.empty(len(k_all), np.int64)
            coder = self._coder(yp)
            for k in reversed(range(SCALES)):
                if bounds[k + 1] > bounds[k]:
                    y_all[order[bounds[k] : bounds[k + 1]]] = coder.decode(
                        self._y_models[k], int(bounds[k + 1] - bounds[k])
                    )
        except Exception as e:  # constriction raises on an exhausted or inconsistent stream
            raise CodecError(f"{name}: the coded data is inconsistent ({e})") from None
        y_all -= c.max_symbol
        cuts = np.cumsum([0, *(c.latent_channels * yh * yw for (yh, yw), _ in sizes)])
        ys = [
            y_all[cuts[i] : cuts[i + 1]].reshape(c.latent_channels, *sizes[i][0]) for i in range(len(shapes))
        ]
        return self._synthesise(ys, shapes, header.quality / 256, progress)

    @torch.no_grad()
    def _synthesise(self, ys, shapes, quality: float, progress: bool = False) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(ys)
        for idx in _bar(list(self._groups(shapes)), progress, "decode"):
            y = torch.from_numpy(np.stack([ys[i] for i in idx])).to(self.run.device)
            x = self.model.synthesise(y, quality)
            for j, i in enumerate(idx):
                ch, h, w = shapes[i]
                im = x[j, :, :h, :w]
                if ch == 1 and self.channels == 3:
                    im = im.mean(0, keepdim=True)
                out[i] = np.clip(np.rint(im.float().cpu().numpy() * 255), 0, 255).astype(np.uint8)
        return out


def _bar(items: Sequence, progress: bool, desc: str):
    if not progress:
        return items
    from aekit.progress import track

    return track(items, desc)
