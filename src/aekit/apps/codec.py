"""Real compressed files from a trained ``codec`` run: :class:`Codec` and the ``.aek`` format, version 1.

``hyperprior`` runs write version 2 (images of any size, qualities): see :mod:`aekit.apps.hypercodec`;
:func:`load_codec` gives the right codec for a run.

>>> codec = aekit.Codec.load("runs/codec")
>>> data = codec.compress(images)        # bytes: write them to images.aek
>>> images = codec.decompress(data)      # uint8 (N, C, H, W)

File layout (little-endian), version 1::

    magic       4 bytes   b"AEK\\x01"
    version     uint8     1
    reserved    uint8     0
    model hash  16 bytes  SHA-256 prefix of the weights and entropy tables that made the file
    C, H, W     3 x uint16
    count       uint32    images in the file
    latent      uint16    symbols per image
    words       uint32    payload length in 32-bit words
    checksum    uint32    CRC-32 of the header fields before it and of the payload
    payload     words x uint32: the ANS-coded symbols (constriction's stack coder)

Symbols are int32, coded dimension by dimension with each dimension's integer frequency
table (quantised when the model was trained, stored with its weights), so decoding is exact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aekit.api import Run, load
from aekit.data.dataset import ArrayDataset
from aekit.errors import AekitError, ConfigError, DataError
from aekit.models.codec import TABLE_TOTAL

MAGIC = b"AEK\x01"
VERSION = 1
HEADER = struct.Struct("<4sBB16s3HIHII")


class CodecError(AekitError):
    """A file that is not an aekit stream, is damaged, or was made by another model."""


@dataclass(frozen=True)
class Header:
    model_hash: bytes
    shape: tuple[int, int, int]
    count: int
    latent: int
    words: int
    checksum: int

    def pack(self) -> bytes:
        return HEADER.pack(
            MAGIC,
            VERSION,
            0,
            self.model_hash,
            *self.shape,
            self.count,
            self.latent,
            self.words,
            self.checksum,
        )


def model_hash(model) -> bytes:
    """16 bytes that change with any weight or table of the model."""
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.digest()[:16]


class Codec:
    """Compress images to bytes and back with a trained ``codec`` run.

    Example:
        >>> import aekit
        >>> _ = aekit.train("mnist-5k", "codec", limit=500, epochs=1, out="runs/codec", progress=False)
        >>> codec = aekit.Codec.load("runs/codec")
        >>> images = aekit.load_dataset("mnist-5k", "test", limit=100).x.numpy()  # uint8 (100, 1, 28, 28)
        >>> data = codec.compress(images)  # the bytes of an .aek file
        >>> data[:3], len(data) < images.size // 4  # a header (magic, version, model hash...), then the code
        (b'AEK', True)
        >>> codec.decompress(data).shape
        (100, 1, 28, 28)
    """

    def __init__(self, run: Run) -> None:
        if run.config.model != "codec":
            raise ConfigError(
                f"{run.path}: a {run.config.model!r} run; compression needs a run trained with "
                "aekit train --model codec"
            )
        self.run = run
        self.model = run.model.eval()
        if int(self.model.tables.sum()) == 0:
            raise ConfigError(
                f"{run.path}: the codec's entropy tables were never computed (was training cut short?)"
            )
        self.hash = model_hash(self.model)
        import constriction

        self._categorical = [
            constriction.stream.model.Categorical(row.astype(np.float64) / TABLE_TOTAL, perfect=False)
            for row in self.model.tables.cpu().numpy()
        ]
        self._coder = constriction.stream.stack.AnsCoder

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu") -> Codec:
        return cls(load(run_dir, device=device))

    @torch.no_grad()
    def symbols(self, images: ArrayDataset | np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """The int32 symbols of ``images``. Shape: (N, latent)."""
        data = self.run.prepare(images)
        from aekit.data.batches import Batches

        out = [self.model.symbols(b.x).cpu() for b in Batches(data, batch_size, device=self.run.device)]
        return torch.cat(out).numpy().astype(np.int32)

    def compress(self, images: ArrayDataset | np.ndarray) -> bytes:
        """The bytes of an ``.aek`` file holding ``images`` (uint8, or floats in [0, 1])."""
        s = self.symbols(images)
        coder = self._coder()
        for d in range(s.shape[1]):  # a stack: the decoder pops the last dimension first
            coder.encode_reverse(np.ascontiguousarray(s[:, d]), self._categorical[d])
        payload = coder.get_compressed().astype("<u4").tobytes()
        shape = tuple(int(v) for v in self.model.input_shape)
        header = Header(self.hash, shape, len(s), s.shape[1], len(payload) // 4, 0)
        checksum = zlib.crc32(payload, zlib.crc32(header.pack()[: HEADER.size - 4]))
        return dataclasses.replace(header, checksum=checksum).pack() + payload

    def estimated_bytes(self, images: ArrayDataset | np.ndarray) -> float:
        """The entropy model's rate for ``images`` in bytes, header included (to compare with the file)."""
        s = torch.from_numpy(self.symbols(images))
        return float(self.model.estimated_bits(s).sum()) / 8 + HEADER.size

    def read_header(self, data: bytes, name: str = "data") -> Header:
        """Check a file's header against this model and its own length and checksum.

        Raises:
            CodecError: naming ``name`` and what is wrong.
        """
        if len(data) < HEADER.size:
            raise CodecError(
                f"{name}: {len(data)} bytes, too short for an aekit stream (header {HEADER.size})"
            )
        magic, version, _, digest, c, h, w, count, latent, words, checksum = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise CodecError(f"{name}: not an aekit compressed file (magic {magic!r})")
        if version == 2:
            raise CodecError(f"{name}: a version-2 file (hyperprior); this run writes and reads version 1")
        if version != VERSION:
            raise CodecError(f"{name}: format version {version}; this aekit reads version {VERSION}")
        if len(data) != HEADER.size + 4 * words:
            raise CodecError(
                f"{name}: {len(data)} bytes but the header announces {HEADER.size + 4 * words} (truncated?)"
            )
        if zlib.crc32(data[HEADER.size :], zlib.crc32(data[: HEADER.size - 4])) != checksum:
            raise CodecError(f"{name}: checksum mismatch: the file is corrupted")
        if digest != self.hash:  # a sound file, from another model
            raise CodecError(
                f"{name}: made by another model (hash {digest.hex()}); this run's is {self.hash.hex()}"
            )
        header = Header(digest, (c, h, w), count, latent, words, checksum)
        if header.shape != tuple(self.model.input_shape) or latent != self.model.config.latent_dim:
            raise CodecError(f"{name}: header shapes do not match the model")
        return header

    @torch.no_grad()
    def decompress(self, data: bytes, name: str = "data", batch_size: int = 2048) -> np.ndarray:
        """Images back from an ``.aek`` file's bytes. Shape: (N, C, H, W) uint8.

        Raises:
            CodecError: a truncated, corrupted or foreign file, or one made by another model.
        """
        header = self.read_header(data, name)
        payload = np.frombuffer(data, dtype="<u4", offset=HEADER.size).astype(np.uint32)
        coder = self._coder(payload)
        s = np.empty((header.count, header.latent), dtype=np.int32)
        try:
            for d in reversed(range(header.latent)):
                s[:, d] = coder.decode(self._categorical[d], header.count)
        except Exception as e:  # constriction raises on an exhausted or inconsistent stream
            raise CodecError(f"{name}: the coded data is inconsistent ({e})") from None
        out = []
        for lo in range(0, header.count, batch_size):
            chunk = torch.from_numpy(s[lo : lo + batch_size]).to(self.run.device)
            x = self.model.decode_symbols(chunk).float().cpu().numpy()
            out.append(np.clip(np.rint(x * 255), 0, 255).astype(np.uint8))
        return np.concatenate(out) if out else np.zeros((0, *header.shape), np.uint8)


def load_codec(run_dir: str | Path, device: str = "cpu"):
    """The codec of a run: :class:`Codec` (``.aek`` v1) for ``codec`` runs, or
    :class:`aekit.apps.hypercodec.HyperCodec` (v2, any image size, qualities) for ``hyperprior`` runs."""
    run = load(run_dir, device=device)
    if run.config.model == "hyperprior":
        from aekit.apps.hypercodec import HyperCodec

        return HyperCodec(run)
    return Codec(run)


def read_aek(path: str | Path) -> bytes:
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
