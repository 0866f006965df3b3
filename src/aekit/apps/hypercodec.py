"""Images of any size to ``.aek`` version-2 files and back, with a trained ``hyperprior`` run.

>>> codec = HyperCodec.load("runs/hp")
>>> data = codec.compress([img_a, img_b], quality=5)   # uint8 (C, H, W) or (H, W), any sizes
>>> images = codec.decompress(data)                     # a list of uint8 (C, H, W), each its own size

File layout (little-endian), version 2, layout 2 (what :meth:`HyperCodec.encode` writes)::

    magic       4 bytes   b"AEK\\x01" (as version 1)
    version     uint8     2
    layout      uint8     2
    model hash  16 bytes  SHA-256 prefix of the weights and tables that made the file
    quality     uint16    quality x 256 (1.0 .. the model's levels; fractions interpolate the gains)
    count       varint    images in the file (LEB128: 7 bits a byte, low bits first)
    runs        varint    entries of the shape table
    stream      varint    length of the ANS stream in bytes
    shapes      runs x (count varint, channels uint8, height varint, width varint): run-length
                coded, so one 28x28 image costs 4 bytes and 10,000 of them 5
    checksum    uint32    CRC-32 of everything before it and of the stream
    stream      one ANS stack, its 32-bit words little-endian without the last word's high zero
                bytes: the y symbols grouped by their scale-table index (computed from z in
                integer arithmetic), each group with its integer Gaussian table, then the z
                symbols channel by channel on top (popped first). A checkerboard model pushes
                its non-anchor y symbols first, then its anchors (each part grouped by scale):
                the decoder pops the anchors before the positions whose parameters need them

A file of one small image thus carries 35 bytes besides its stream. Files of layouts 0 and 1
(a fixed 44-byte header, ``HEADER``, and a uint32 shape table; layout 0 with z and y in two
streams) still decode.

A grey image given to a colour model is coded as three equal channels and decoded back to one.
"""

from __future__ import annotations

import hashlib
import math
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
from aekit.models.hyperprior import PRECISION, SCALES, HyperpriorModel, anchors

MAGIC = b"AEK\x01"
VERSION = 2
HEADER = struct.Struct("<4sBB16sHIIIII")  # layouts 0 and 1
RUN = struct.Struct("<IBHH")  # layouts 0 and 1
PREFIX = struct.Struct("<4sBB16sH")  # layout 2: magic, version, layout, hash, quality; then varints
LAYOUT = 2  # what encode writes
START_SYMBOLS = 1 << 17  # the start of the stream simulated for the estimate (see start_bits)


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
    stream_bytes: int = 0  # layout 2: the stream's length (y_words = its words, rounded up)

    def pack(self) -> bytes:
        """The fixed header of layouts 0 and 1."""
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
    estimated_bytes: float  # the entropy model's rate under the integer tables, all bytes of the file

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


def varint(n: int) -> bytes:
    """``n`` >= 0 as LEB128: 7 bits a byte, low bits first, the high bit set on all but the last."""
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(data: bytes, at: int, name: str, what: str) -> tuple[int, int]:
    """The varint at ``at`` (at most 5 bytes, below 2^35) and where the next field starts."""
    from aekit.apps.codec import CodecError

    value = 0
    for i in range(5):
        if at + i >= len(data):
            raise CodecError(f"{name}: ends inside the header's {what} (truncated?)")
        value |= (data[at + i] & 0x7F) << 7 * i
        if data[at + i] < 0x80:
            return value, at + i + 1
    raise CodecError(f"{name}: the header's {what} is not a valid number")


def _compact_header(model_hash: bytes, quality: int, count: int, runs, stream_bytes: int) -> bytes:
    """Layout 2's header up to (not including) its checksum."""
    table = b"".join(varint(n) + bytes([c]) + varint(h) + varint(w) for n, (c, h, w) in runs)
    head = PREFIX.pack(MAGIC, VERSION, LAYOUT, model_hash, quality)
    return head + varint(count) + varint(len(runs)) + varint(stream_bytes) + table


def coded_counts(tables: np.ndarray) -> np.ndarray:
    """The frequencies (out of 2^PRECISION) the ANS coder really uses for integer ``tables``:
    constriction's ``Categorical(perfect=False)`` gives every symbol one count of its own and
    shares the rest in proportion, so a symbol of count 1 costs 23 bits, not 24 (checked against
    the coder to 1e-4 bit in tests/test_hypercodec.py)."""
    total, n = float(1 << PRECISION), tables.shape[-1]
    return 1 + tables.astype(np.float64) * (total - n) / total


def start_bits(p: np.ndarray, cdf: np.ndarray) -> float:
    """What the first symbols pushed onto an empty ANS stack (their frequencies ``p`` and cumulative
    frequencies ``cdf`` out of 2^PRECISION, in push order) cost beyond their information. The coder
    starts from state 0 and a push maps the state s to floor(s / p) * 2^PRECISION + cdf + s mod p:
    while s is below p, a likely symbol *adds* its cdf instead of multiplying s by 1/p, so a run of
    likely symbols at the start costs log2 of the sum of their cdfs, not their (near-zero)
    information. Simulated exactly until the state passes 2^32, from where each push multiplies it
    by 1/p as its information says (checked against the coder to a fraction of a bit)."""
    total = float(1 << PRECISION)
    state, info = 0.0, 0.0
    for pi, ci in zip(p.tolist(), cdf.tolist(), strict=True):
        state = math.floor(state / pi) * total + ci + math.fmod(state, pi)
        info += math.log2(total / pi)
        if state >= 2.0**32:
            break
    return (math.log2(state) if state > 0 else 0.0) - info


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
        self._y_counts = coded_counts(self.model.y_tables.numpy())  # for the estimate
        self._z_counts = coded_counts(self.model.z_tables.numpy())
        self._y_cdfs = np.cumsum(self._y_counts, 1) - self._y_counts  # frequency below each symbol
        self._z_cdfs = np.cumsum(self._z_counts, 1) - self._z_counts

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu") -> HyperCodec:
        return cls(load(run_dir, device=device))

    @property
    def channels(self) -> int:
        return int(self.model.config.input_shape[0])

    # -- shapes -------------------------------------------------------------------------------

    def _latent_sizes(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        c = self.model.config
        yh, yw = padded_size(h, c.stride) >> c.levels, padded_size(w, c.stride) >> c.levels
        hz = 2**c.hyper_levels  # y is padded to this before h_a (already a multiple without latent_padding)
        return (yh, yw), (padded_size(yh, hz) // hz, padded_size(yw, hz) // hz)

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
    def symbols(
        self,
        images: list[np.ndarray],
        segments: list[Segment],
        quality: float,
        progress=False,
        refine: int = 0,
        scales: bool = False,
    ):
        """Integer y and z of every segment ((n, M, h, w) and (n, Nz, h', w') int64 arrays);
        with ``refine`` > 0, refined per image by that many optimisation steps
        (:mod:`aekit.apps.hyperrefine`; never a higher rate-distortion cost); with ``scales``, also
        y's scale-table indices per segment (uint8, from the same run of the integer ``h_s`` that
        gives a mean-scale model's means)."""
        q = self._quality(quality) / 256
        ys, zs, ks = [], [], []
        for seg in _bar(segments, progress, "encode"):
            x = torch.from_numpy(np.stack(images[seg.start : seg.start + seg.n])).float().div(255)
            if x.shape[1] != self.channels:  # grey into a colour model
                x = x.expand(-1, self.channels, -1, -1)
            x = pad_to_multiple(x.to(self.run.device), self.model.config.stride)
            if refine > 0:
                from aekit.apps.hyperrefine import refine as refine_latents

                counts = (self._y_counts, self._z_counts)
                y, z = refine_latents(self.model, counts, x, seg.shape[1:], q, refine)
                k = self.model.scale_index(z, y.shape[-2:], y) if scales else None
            else:
                y, z, k = (
                    self.model.analyse(x, q, scales=True) if scales else (*self.model.analyse(x, q), None)
                )
            ys.append(y.cpu().numpy())
            zs.append(z.cpu().numpy())
            if scales:
                ks.append(k.cpu().numpy())
        return (ys, zs, ks) if scales else (ys, zs)

    def _check_channels(self, images: list[np.ndarray], name: str) -> None:
        for i, im in enumerate(images):
            if im.shape[0] > self.channels:
                raise DataError(
                    f"{name}: image {i} has {im.shape[0]} channels; this model codes {self.channels}"
                )

    def compress(
        self, images, quality: float = 4, progress: bool = False, name: str = "images", refine: int = 0
    ) -> bytes:
        """The bytes of an ``.aek`` v2 file holding ``images`` (see :func:`as_images`); ``refine``
        > 0 optimises each image's latents for that many steps first (slower encoding, same decoder)."""
        return self.encode(images, quality, progress, name, refine).data

    def encode(
        self, images, quality: float = 4, progress: bool = False, name: str = "images", refine: int = 0
    ) -> Encoded:
        """Like :meth:`compress`, with the size of each stream and the time taken."""
        start = time.perf_counter()
        images = as_images(images, name)
        self._check_channels(images, name)
        qint = self._quality(quality)
        segments = self._segments([im.shape for im in images])
        ys, zs, ks = self.symbols(images, segments, quality, progress, refine, scales=True)
        c = self.model.config
        z_all = np.concatenate([z.swapaxes(0, 1).reshape(c.hyper_channels, -1) for z in zs], 1)  # (Nz, all)
        z_all = (z_all + c.max_side).astype(np.int32)
        y_all = np.concatenate([y.ravel() for y in ys]).astype(np.int32) + c.max_symbol
        k_all = np.concatenate([k.ravel() for k in ks])
        groups = []  # (scale index, positions in y_all) in push order
        for part in self._parts(ys):
            order, bounds = _by_scale(k_all if part is None else k_all[part])
            for k in range(SCALES):
                if bounds[k + 1] > bounds[k]:
                    at = order[bounds[k] : bounds[k + 1]]
                    groups.append((k, at if part is None else part[at]))
        coder = self._coder()  # a stack: y first, z on top (the decoder needs z first)
        for k, at in groups:
            coder.encode_reverse(y_all[at], self._y_models[k])
        y_only = 4 * coder.num_words()
        for ch in range(c.hyper_channels):  # the decoder pops the last channel first
            coder.encode_reverse(z_all[ch], self._z_models[ch])
        stream = coder.get_compressed().astype("<u4").tobytes()
        for _ in range(3):  # the top word is the coder's state: its high zero bytes carry nothing
            if stream.endswith(b"\0"):
                stream = stream[:-1]
        runs = _runs([im.shape for im in images])
        head = _compact_header(self.hash, qint, len(images), runs, len(stream))
        data = head + struct.pack("<I", zlib.crc32(stream, zlib.crc32(head))) + stream
        pixels = sum(im.shape[1] * im.shape[2] for im in images)
        seconds = time.perf_counter() - start
        # the estimate: the symbols' information under the coder's frequencies, what starting from
        # state 0 adds (the first symbols pushed: start_bits), the stream as the bit length of the
        # coder's final number in whole bytes, and the file's exact header
        total = float(1 << PRECISION)
        bits = -np.log2(self._y_counts[k_all, y_all] / total).sum()
        bits += -np.log2(self._z_counts[np.arange(c.hyper_channels)[:, None], z_all] / total).sum()
        bits += start_bits(*self._first_pushed(groups, y_all, z_all))
        stream_bytes = int(bits) // 8 + 1 if bits > 0 else 0
        estimate = len(_compact_header(self.hash, qint, len(images), runs, stream_bytes)) + 4 + stream_bytes
        return Encoded(data, max(0, len(stream) - y_only), y_only, seconds, pixels, float(estimate))

    def _parts(self, ys: list[np.ndarray]) -> list[np.ndarray | None]:
        """The parts of the flat y symbols in push order: all (None), or for a checkerboard model
        the positions (in y_all) of the non-anchors, then of the anchors (popped first)."""
        if not self.model.config.checkerboard:
            return [None]
        mask = np.concatenate([np.broadcast_to(anchors(*y.shape[-2:]).numpy(), y.shape).ravel() for y in ys])
        return [np.flatnonzero(~mask), np.flatnonzero(mask)]

    def _first_pushed(self, groups, y_all, z_all) -> tuple[np.ndarray, np.ndarray]:
        """Frequencies and cumulative frequencies of the first START_SYMBOLS symbols pushed (each
        scale group of y, last symbol first; then z, channel 0 first, last symbol first)."""
        ps, cdfs, need = [], [], START_SYMBOLS
        for k, at in groups:
            if need > 0:
                sym = y_all[at[::-1][:need]]
                ps.append(self._y_counts[k, sym])
                cdfs.append(self._y_cdfs[k, sym])
                need -= len(sym)
        for ch in range(len(z_all)):
            if need > 0:
                sym = z_all[ch][::-1][:need]
                ps.append(self._z_counts[ch, sym])
                cdfs.append(self._z_cdfs[ch, sym])
                need -= len(sym)
        return np.concatenate(ps), np.concatenate(cdfs)

    def _values(self, ys: list[np.ndarray], zs: list[np.ndarray]) -> list[np.ndarray]:
        """What ``g_s`` gets for each segment's y symbols: the symbols, or (a mean-scale model) the
        symbols + the exact means from z (:meth:`HyperpriorModel.values`)."""
        if not self.model.config.mean_scale:
            return ys
        return [
            self.model.values(
                torch.from_numpy(y),
                self.model.hyper(torch.from_numpy(z), y.shape[-2:], torch.from_numpy(y))[1],
            ).numpy()
            for y, z in zip(ys, zs, strict=True)
        ]

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
        ys, zs = self.symbols(images, segments, quality)
        return self._synthesise(self._values(ys, zs), segments, self._quality(quality) / 256)

    # -- decoding -----------------------------------------------------------------------------

    def read_header(self, data: bytes, name: str = "data") -> tuple[Header, list[tuple[int, int, int]], int]:
        """Check a v2 file's header, shape table, length and checksum against this model; returns
        the header, the images' shapes and where the ANS stream starts.

        Raises:
            CodecError: naming ``name`` and what is wrong.
        """
        from aekit.apps.codec import CodecError

        if len(data) < PREFIX.size:
            raise CodecError(
                f"{name}: {len(data)} bytes, too short for an aekit stream (header {PREFIX.size}+)"
            )
        magic, version, layout, digest, quality = PREFIX.unpack_from(data)
        if magic != MAGIC:
            raise CodecError(f"{name}: not an aekit compressed file (magic {magic!r})")
        if version != VERSION:
            raise CodecError(f"{name}: format version {version}; a hyperprior run reads version {VERSION}")
        if layout > LAYOUT:
            raise CodecError(
                f"{name}: layout {layout} of version 2 is newer than this aekit reads (0..{LAYOUT})"
            )
        entries: list[tuple[int, int, int, int]] = []
        if layout == LAYOUT:
            count, at = _read_varint(data, PREFIX.size, name, "image count")
            runs, at = _read_varint(data, at, name, "shape-table length")
            nbytes, at = _read_varint(data, at, name, "stream length")
            for r in range(runs if runs <= count else 0):
                n, at = _read_varint(data, at, name, f"shape-table entry {r}")
                if at >= len(data):
                    raise CodecError(f"{name}: ends inside the shape table (truncated?)")
                ch, at = data[at], at + 1
                h, at = _read_varint(data, at, name, f"shape-table entry {r}")
                w, at = _read_varint(data, at, name, f"shape-table entry {r}")
                entries.append((n, ch, h, w))
            start = at + 4
            size = start + nbytes
            zw, yw = 0, (nbytes + 3) // 4
            if len(data) >= start:
                (checksum,) = struct.unpack_from("<I", data, at)
                ok = zlib.crc32(data[start:], zlib.crc32(data[:at])) == checksum
        else:
            if len(data) < HEADER.size:
                raise CodecError(
                    f"{name}: {len(data)} bytes, too short for an aekit stream (header {HEADER.size})"
                )
            _, _, _, _, quality, count, runs, zw, yw, checksum = HEADER.unpack_from(data)
            start, nbytes = HEADER.size + RUN.size * runs, 4 * (zw + yw)
            size = start + nbytes
            if len(data) == size:
                entries = [RUN.unpack_from(data, HEADER.size + r * RUN.size) for r in range(runs)]
                ok = zlib.crc32(data[HEADER.size :], zlib.crc32(data[: HEADER.size - 4])) == checksum
        if len(data) != size:
            raise CodecError(f"{name}: {len(data)} bytes but the header announces {size} (truncated?)")
        if not ok:
            raise CodecError(f"{name}: checksum mismatch: the file is corrupted")
        if digest != self.hash:
            raise CodecError(
                f"{name}: made by another model (hash {digest.hex()}); this run's is {self.hash.hex()}"
            )
        shapes: list[tuple[int, int, int]] = []
        for r, (n, c, h, w) in enumerate(entries):
            if c not in (1, 3) or c > self.channels or not (1 <= h <= 65535 and 1 <= w <= 65535) or n < 1:
                raise CodecError(f"{name}: shape table entry {r} is not valid ({n} x ({c}, {h}, {w}))")
            if len(shapes) + n > count:
                break
            shapes += [(c, h, w)] * n
        if (
            len(shapes) != count
            or len(entries) != runs
            or not 256 <= quality <= 256 * self.model.qualities
            or (layout != 0 and zw)
        ):
            raise CodecError(
                f"{name}: header fields do not agree "
                f"(count {count}, quality {quality / 256:g}, layout {layout}, z words {zw})"
            )
        return Header(layout, digest, quality, count, runs, zw, yw, checksum, nbytes), shapes, start

    @torch.no_grad()
    def decompress(self, data: bytes, name: str = "data", progress: bool = False) -> list[np.ndarray]:
        """Images back from an ``.aek`` v2 file: a list of uint8 (C, H, W), each its own size.

        Raises:
            CodecError: a truncated, corrupted or foreign file, or one made by another model.
        """
        from aekit.apps.codec import CodecError

        header, shapes, start = self.read_header(data, name)
        c = self.model.config
        stream = data[start:] + b"\0" * (-(len(data) - start) % 4)  # layout 2 drops the top zero bytes
        words = np.frombuffer(stream, dtype="<u4").astype(np.uint32)
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
            raws = [
                self.model.hyper_raw(torch.from_numpy(z), seg.y_size)
                for z, seg in zip(zs, segments, strict=True)
            ]
            priors = [self.model.params(raw) for raw in raws]
            if header.layout == 0:
                coder = self._coder(yp)
            if c.checkerboard:  # the anchors, then the others with their context
                ys = [np.zeros((seg.n, c.latent_channels, *seg.y_size), np.int64) for seg in segments]
                masks = [anchors(*seg.y_size).numpy() for seg in segments]
                for part in (True, False):
                    ks = [k.numpy()[:, :, m == part] for (k, _), m in zip(priors, masks, strict=True)]
                    sym = self._pop(coder, np.concatenate([k.ravel() for k in ks]))
                    at = 0
                    for y, k, m in zip(ys, ks, masks, strict=True):
                        y[:, :, m == part] = sym[at : at + k.size].reshape(k.shape)
                        at += k.size
                    if part:
                        priors = [
                            self.model.params(self.model.with_context(raw, torch.from_numpy(y), mean))
                            for raw, y, (_, mean) in zip(raws, ys, priors, strict=True)
                        ]
            else:
                y_all = self._pop(coder, np.concatenate([k.numpy().ravel() for k, _ in priors]))
                ys = [
                    y_all[
                        seg.y_at : seg.y_at + seg.n * c.latent_channels * seg.y_size[0] * seg.y_size[1]
                    ].reshape(seg.n, c.latent_channels, *seg.y_size)
                    for seg in segments
                ]
        except Exception as e:  # constriction raises on an exhausted or inconsistent stream
            raise CodecError(f"{name}: the coded data is inconsistent ({e})") from None
        if c.mean_scale:  # symbols + the exact means
            values = self.model.values
            ys = [values(torch.from_numpy(y), m).numpy() for y, (_, m) in zip(ys, priors, strict=True)]
        return self._synthesise(ys, segments, header.quality / 256, progress)

    def _pop(self, coder, k_all: np.ndarray) -> np.ndarray:
        """The y symbols (int32, centred) of positions whose scale indices are ``k_all``, popped
        from ``coder`` as :meth:`encode` pushed them (grouped by scale, the last group first)."""
        order, bounds = _by_scale(k_all)
        y_sorted = np.empty(len(k_all), np.int32)
        for k in reversed(range(SCALES)):
            if bounds[k + 1] > bounds[k]:
                y_sorted[bounds[k] : bounds[k + 1]] = coder.decode(
                    self._y_models[k], int(bounds[k + 1] - bounds[k])
                )
        y_all = np.empty_like(y_sorted)
        y_all[order] = y_sorted - self.model.config.max_symbol
        return y_all

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
