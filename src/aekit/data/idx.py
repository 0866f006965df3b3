"""Read and write the IDX format in which MNIST, Fashion-MNIST, KMNIST and EMNIST ship.

The header is two zero bytes, a type code, the number of dimensions, then each
dimension as a big-endian uint32. Raw byte-valued files (MNIST's uint8) are
memory-mapped; raw multi-byte files are read into memory in native byte order;
gzip files are streamed into memory in chunks, so a header that lies about its
size costs no more memory than the file really holds.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from aekit.errors import DataError
from aekit.fileio import atomic_write_bytes

# type code -> numpy dtype (IDX stores multi-byte values big-endian)
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder(">") if dt.itemsize > 1 else dt: code for code, dt in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
MAX_DIMS = 8


def is_idx(path: str | Path) -> bool:
    """Whether the file looks like IDX (gzipped or raw) from its name."""
    name = Path(path).name.lower()
    return name.endswith((".idx", ".idx.gz")) or "-ubyte" in name or "idx1" in name or "idx3" in name


def _parse_header(head: bytes, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    if len(head) < 4:
        raise DataError(f"{path}: not an IDX file (only {len(head)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", head[:4])
    if zero != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number {head[:4].hex()})")
    if code not in _DTYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x}")
    if not 1 <= ndim <= MAX_DIMS:
        raise DataError(f"{path}: IDX header declares {ndim} dimensions (expected 1 to {MAX_DIMS})")
    need = 4 + 4 * ndim
    if len(head) < need:
        raise DataError(f"{path}: truncated IDX header ({len(head)} of {need} bytes)")
    dims = struct.unpack(f">{ndim}I", head[4:need])
    if 0 in dims:
        raise DataError(f"{path}: IDX header declares an empty dimension {dims}")
    return _DTYPES[code], tuple(dims), need


def _nbytes(dims: tuple[int, ...], dtype: np.dtype) -> int:
    # Python ints: 8 dimensions of up to 2^32-1 overflow int64 (65536^4 wraps to 0, passing the size check)
    return math.prod(dims) * dtype.itemsize


def read_idx(path: str | Path, *, mmap: bool = True) -> np.ndarray:
    """Read an IDX file, gzipped (detected by content) or raw.

    Args:
        path: The file.
        mmap: Memory-map raw files instead of reading them (read-only).

    Returns:
        An array of the declared shape, in native byte order for multi-byte types.

    Raises:
        DataError: missing, truncated, corrupt or not IDX; the message names the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if magic == _GZIP_MAGIC:
        return _read_gzip(path)
    return _read_raw(path, mmap=mmap)


def _read_raw(path: Path, *, mmap: bool) -> np.ndarray:
    size = path.stat().st_size
    with open(path, "rb") as f:
        dtype, dims, offset = _parse_header(f.read(4 + 4 * MAX_DIMS), path)
    expected = _nbytes(dims, dtype)
    if size - offset != expected:
        what = "truncated" if size - offset < expected else "has trailing bytes"
        raise DataError(
            f"{path}: IDX file {what}: header says {dims} ({expected} bytes), file holds {size - offset}"
        )
    if mmap:
        arr = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=dims)
    else:
        arr = np.fromfile(path, dtype=dtype, offset=offset).reshape(dims)
    return (
        arr if dtype.itemsize == 1 else np.asarray(arr).astype(dtype.newbyteorder("="))
    )  # native order, in memory


def _read_gzip(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            dtype, dims, _ = _parse_header(_read_header_bytes(f), path)
            expected = _nbytes(dims, dtype)
            buf = bytearray()
            while len(buf) < expected:  # grow as the data really arrives, never by the header's word
                chunk = f.read(min(_CHUNK, expected - len(buf)))
                if not chunk:
                    raise DataError(
                        f"{path}: IDX file truncated: header says {dims} ({expected} bytes), got {len(buf)}"
                    )
                buf += chunk
            if f.read(1):
                raise DataError(
                    f"{path}: IDX file has trailing bytes after the {dims} values its header declares"
                )
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt gzip stream ({e})") from None
    arr = np.frombuffer(buf, dtype=dtype).reshape(dims)  # a bytearray: writable, no copy
    return (
        arr if dtype.itemsize == 1 else np.asarray(arr).astype(dtype.newbyteorder("="))
    )  # native order, in memory


def _read_header_bytes(f) -> bytes:
    head = f.read(4)
    if len(head) == 4 and head[3] <= MAX_DIMS:
        head += f.read(4 * head[3])
    return head


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write an array as IDX, atomically (a temporary file, then a rename).

    Args:
        path: Destination; gzipped when it ends in ``.gz`` unless ``compress`` says otherwise.
        array: uint8, int8, int16, int32, float32 or float64 values, 1 to 8 dimensions, none of
            them empty (``read_idx`` refuses an empty dimension, so none is written).
        compress: Force gzip on or off.
    """
    path = Path(path)
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    code = _CODES.get(dtype)
    if code is None or not 1 <= array.ndim <= MAX_DIMS or not all(0 < d < 1 << 32 for d in array.shape):
        raise DataError(
            f"{path}: cannot write {array.dtype} array of shape {array.shape} as IDX (expected uint8, int8, "
            f"int16, int32, float32 or float64 values, 1 to {MAX_DIMS} dimensions of 1 to 2^32-1 each)"
        )
    payload = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    payload += np.ascontiguousarray(array, dtype=dtype).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    atomic_write_bytes(path, payload)
    return path
