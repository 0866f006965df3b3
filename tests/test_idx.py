"""IDX files: round trips, the real Fashion-MNIST labels, and every kind of bad file raising DataError."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aekit.data.idx import read_idx, write_idx
from aekit.errors import DataError

FASHION_LABELS = Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
DTYPES = ["uint8", "int8", ">i2", ">i4", ">f4", ">f8"]
SHAPES = [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2)]


def sample_array(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Values that exercise the type: its extremes, negatives, and fractions for floats."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind == "f":
        special = [0.0, -0.0, 1.5, -2.25, np.finfo(dt).max, np.finfo(dt).tiny, -np.inf, np.inf]
    else:
        info = np.iinfo(dt)
        special = [info.min, info.max, 0, 1]
    values = np.resize(np.array(special, dtype=dt), n)
    values[len(special) :] = np.arange(n - len(special)) % 100  # the rest: small ordinary values
    return values.reshape(shape)


def header(code: int = 0x08, dims: tuple[int, ...] = (3, 2, 2)) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


VALID = header() + bytes(range(12))  # 3x2x2 uint8


def write(path: Path, data: bytes, gz: bool) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_round_trip(tmp_path, dtype, shape, gz):
    a = sample_array(dtype, shape)
    path = write_idx(tmp_path / ("a-idx-ubyte" + (".gz" if gz else "")), a)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    b = read_idx(path)
    assert b.shape == shape
    assert b.dtype == np.dtype(dtype).newbyteorder("=")  # multi-byte values come back in native order
    assert b.dtype.isnative
    np.testing.assert_array_equal(b, a)
    if dtype.startswith(">f"):
        assert np.array_equal(np.signbit(b), np.signbit(a))  # -0.0 survives
    # raw byte-valued files are memory-mapped; gzip (and multi-byte, byte-swapped) ones are in memory
    mapped = not gz and np.dtype(dtype).itemsize == 1
    assert isinstance(b, np.memmap) == mapped
    if not mapped:
        assert b.flags.writeable


@pytest.mark.parametrize("dtype", ["uint8", ">f4"])
def test_mmap_false_reads_into_memory(tmp_path, dtype):
    a = sample_array(dtype, (4, 3))
    path = write_idx(tmp_path / "a.idx", a)
    b = read_idx(path, mmap=False)
    assert not isinstance(b, np.memmap)
    np.testing.assert_array_equal(b, a)


def test_compress_flag_overrides_the_suffix_and_reading_detects_gzip_by_content(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    gz = write_idx(tmp_path / "plain-name.idx", a, compress=True)
    raw = write_idx(tmp_path / "looks-gzipped.idx.gz", a, compress=False)
    assert gz.read_bytes()[:2] == b"\x1f\x8b" and raw.read_bytes()[:4] == b"\x00\x00\x08\x03"
    np.testing.assert_array_equal(read_idx(gz), a)
    np.testing.assert_array_equal(read_idx(raw), a)
    assert len(raw.read_bytes()) == 4 + 3 * 4 + a.size


def test_write_is_byte_exact(tmp_path):
    path = write_idx(tmp_path / "a.idx", np.array([[1, -2]], dtype=">i2"))
    assert path.read_bytes() == bytes([0, 0, 0x0B, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 0xFF, 0xFE])


def test_native_little_endian_input_is_written_big_endian(tmp_path):
    a = np.array([1, 256, -1], dtype="<i4")
    path = write_idx(tmp_path / "a.idx", a)
    assert path.read_bytes()[8:] == a.astype(">i4").tobytes()
    np.testing.assert_array_equal(read_idx(path), a)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros(3, dtype=np.int64),
        np.zeros(3, dtype=bool),
        np.zeros(3, dtype=np.uint16),
        np.zeros(3, dtype=np.float16),
        np.array(5, dtype=np.uint8),  # 0-d
        np.zeros((1,) * 9, dtype=np.uint8),  # 9-d
        np.zeros((2, 0), dtype=np.uint8),  # read_idx would refuse an empty dimension
    ],
    ids=["int64", "bool", "uint16", "float16", "0d", "9d", "empty-dim"],
)
def test_write_refuses_what_idx_cannot_hold(tmp_path, array):
    path = tmp_path / "bad.idx"
    with pytest.raises(DataError, match="cannot write") as info:
        write_idx(path, array)
    assert str(path) in str(info.value)
    assert not path.exists()


def test_real_fashion_mnist_labels():
    if not FASHION_LABELS.is_file():
        pytest.skip(f"{FASHION_LABELS} is not here")
    labels = read_idx(FASHION_LABELS)
    assert labels.shape == (10_000,) and labels.dtype == np.uint8
    assert not isinstance(labels, np.memmap)  # gzip: read into memory
    assert labels.min() == 0 and labels.max() == 9
    assert np.bincount(labels).tolist() == [1000] * 10  # the test split is balanced


BAD_CONTENT = {
    "truncated": (header() + bytes(11), "truncated"),
    "trailing-bytes": (header() + bytes(13), "trailing bytes"),
    "wrong-magic": (b"\x01\x02" + header()[2:] + bytes(12), "bad magic"),
    "wrong-magic-second-byte": (b"\x00\x01" + header()[2:] + bytes(12), "bad magic"),
    "unknown-type": (header(code=0x0A) + bytes(12), "unknown IDX type code 0x0a"),
    "ndim-0": (bytes([0, 0, 8, 0]) + bytes(12), "0 dimensions"),
    "ndim-9": (bytes([0, 0, 8, 9]) + bytes(48), "9 dimensions"),
    "ndim-255": (bytes([0, 0, 8, 255]) + bytes(48), "255 dimensions"),
    "zero-dimension": (header(dims=(3, 0, 2)), "empty dimension"),
    "short-header": (header()[:9], "truncated IDX header"),
    "three-bytes": (b"\x00\x00\x08", "not an IDX file"),
    "empty": (b"", "not an IDX file"),
    "header-only": (header(), "truncated"),
    "float-truncated": (header(code=0x0D, dims=(2,)) + bytes(7), "truncated"),
    # 65536^4 overflows int64 to 0, which once matched a file holding no data at all
    "size-overflows-int64": (header(dims=(65536,) * 4), "truncated"),
}


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("content", BAD_CONTENT.values(), ids=BAD_CONTENT.keys())
def test_bad_content_raises_data_error_naming_the_file(tmp_path, content, gz):
    data, message = content
    path = write(tmp_path / ("bad-idx3-ubyte" + (".gz" if gz else "")), data, gz)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_huge_declared_size_fails_fast_without_allocating(tmp_path, gz):
    # 2^32-1 float64 values (32 GiB) declared, a few bytes present
    path = write(tmp_path / "huge.idx", header(code=0x0E, dims=(2**32 - 1,)) + bytes(64), gz)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="truncated") as info:
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 8 << 20  # far below the 32 GiB the header asks for


def test_truncated_gzip_stream(tmp_path):
    blob = gzip.compress(header(dims=(64, 64)) + np.random.default_rng(0).bytes(64 * 64))
    path = tmp_path / "cut-idx2-ubyte.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="cut-idx2-ubyte.gz") as info:
        read_idx(path)
    assert "corrupt gzip" in str(info.value) or "truncated" in str(info.value)


def test_gzip_with_flipped_bytes_in_the_middle(tmp_path):
    blob = bytearray(gzip.compress(header(dims=(64, 64)) + np.random.default_rng(1).bytes(64 * 64)))
    middle = len(blob) // 2
    blob[middle : middle + 8] = bytes(b ^ 0xFF for b in blob[middle : middle + 8])
    path = tmp_path / "flipped-idx2-ubyte.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_gzip_trailing_garbage(tmp_path):
    path = tmp_path / "garbage-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(VALID) + b"not gzip at all")
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file_and_folder(tmp_path):
    for path in (tmp_path / "nope-idx1-ubyte", tmp_path):
        with pytest.raises(DataError, match="cannot read") as info:
            read_idx(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_hand_written_file_reads_back(tmp_path, gz):
    path = write(tmp_path / "valid-idx3-ubyte", VALID, gz)
    np.testing.assert_array_equal(read_idx(path), np.arange(12, dtype=np.uint8).reshape(3, 2, 2))


def _read_or_data_error(path: Path) -> np.ndarray | None:
    """read_idx's contract: an array consistent with the file, or DataError naming it; nothing else."""
    try:
        arr = read_idx(path)
    except DataError as e:
        assert str(path) in str(e)
        return None
    assert isinstance(arr, np.ndarray) and 1 <= arr.ndim <= 8 and arr.size > 0
    return arr


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=80), gz=st.booleans())
def test_property_random_bytes(tmp_path, data, gz):
    path = write(tmp_path / "random-idx-ubyte", data, gz)
    arr = _read_or_data_error(path)
    if arr is not None:  # then the bytes were a well-formed IDX file: header + exactly the data
        assert 4 + 4 * arr.ndim + arr.nbytes == len(data)


mutations = st.lists(
    st.one_of(
        st.tuples(st.just("cut"), st.integers(0, 200)),
        st.tuples(st.just("flip"), st.integers(0, 200), st.integers(1, 255)),
    ),
    min_size=1,
    max_size=4,
)


def _mutate(blob: bytes, ops) -> bytes:
    b = bytearray(blob)
    for op in ops:
        if not b:
            break
        if op[0] == "cut":
            del b[op[1] % len(b) :]
        else:
            b[op[1] % len(b)] ^= op[2]
    return bytes(b)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=mutations, mode=st.sampled_from(["raw", "gz-of-mutated", "mutated-gz"]), code=st.sampled_from([8, 13])
)
def test_property_mutated_valid_file(tmp_path, ops, mode, code):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4) if code == 8 else np.linspace(0, 1, 12, dtype=">f4")
    valid = header(code, a.shape) + a.tobytes()
    if mode == "raw":
        blob = _mutate(valid, ops)
    elif mode == "gz-of-mutated":
        blob = gzip.compress(_mutate(valid, ops), mtime=0)
    else:  # corrupt the compressed stream itself
        blob = _mutate(gzip.compress(valid, mtime=0), ops)
    path = tmp_path / "mutated-idx-ubyte"
    path.write_bytes(blob)
    arr = _read_or_data_error(path)
    if arr is not None and mode == "raw":
        assert 4 + 4 * arr.ndim + arr.nbytes == len(blob)
