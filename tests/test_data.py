"""The data layer: IDX, arrays, image folders, CSV, named sources and batches."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from aekit.data.batches import Batches
from aekit.data.dataset import ArrayDataset, Scaling
from aekit.data.files import read_path
from aekit.data.idx import read_idx, write_idx
from aekit.data.sources import SOURCES, load_dataset
from aekit.errors import DataError

FASHION = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"


@pytest.mark.parametrize("dtype", ["uint8", "int8", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    a = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    if dtype == "uint8":
        a = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    path = write_idx(tmp_path / f"a-idx3-ubyte{suffix}", a)
    b = read_idx(path)
    assert b.shape == a.shape and np.array_equal(b, a)
    assert isinstance(b, np.memmap) == (suffix == "" and dtype in ("uint8", "int8"))


def test_real_fashion_labels():
    labels = read_idx(FASHION)
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))


def idx_header(code=0x08, dims=(3, 2, 2)) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (idx_header() + bytes(11), "truncated"),
        (idx_header() + bytes(13), "trailing bytes"),
        (b"\x01\x02" + idx_header()[2:] + bytes(12), "bad magic"),
        (idx_header(code=0x07) + bytes(12), "unknown IDX type code"),
        (bytes([0, 0, 8, 0]), "dimensions"),
        (bytes([0, 0, 8, 9]) + bytes(40), "dimensions"),
        (idx_header(dims=(3, 0)), "empty dimension"),
        (b"", "not an IDX file"),
        (idx_header()[:7], "truncated IDX header"),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_bad_idx_names_the_file(tmp_path, data, message, compress):
    path = tmp_path / ("bad-idx3-ubyte" + (".gz" if compress else ""))
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_huge_declared_size_in_a_tiny_gz_fails_without_allocating(tmp_path):
    path = tmp_path / "huge-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(dims=(65535, 65535, 65535)) + bytes(100)))
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_header() + bytes(range(12)))
    bad = good[:12] + bytes(b ^ 0xFF for b in good[12:20]) + good[20:]
    (tmp_path / "x-idx3-ubyte.gz").write_bytes(bad)
    with pytest.raises(DataError, match="x-idx3-ubyte.gz"):
        read_idx(tmp_path / "x-idx3-ubyte.gz")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=64), cut=st.integers(0, 40), flip=st.integers(0, 40), gz=st.booleans())
def test_idx_fuzz_only_data_errors(tmp_path, data, cut, flip, gz):
    valid = bytearray(idx_header() + bytes(range(12)))
    valid = valid[: len(valid) - cut % len(valid)]
    if valid:
        valid[flip % len(valid)] ^= 0x5A
    for blob in (data, bytes(valid)):
        path = tmp_path / "f-idx3-ubyte"
        path.write_bytes(gzip.compress(blob) if gz else blob)
        try:
            read_idx(path)
        except DataError as e:
            assert str(path) in str(e)


def test_npy_shapes_ranges_and_refusals(tmp_path):
    np.save(tmp_path / "u8.npy", np.zeros((4, 6, 5), np.uint8))
    d = read_path(tmp_path / "u8.npy")
    assert d.shape == (1, 6, 5) and d.scaling == Scaling.uint8()
    np.save(tmp_path / "f.npy", np.full((4, 3), 0.5, np.float32))
    assert read_path(tmp_path / "f.npy").scaling == Scaling()
    np.save(tmp_path / "f255.npy", np.full((4, 3), 200.0, np.float32))
    assert read_path(tmp_path / "f255.npy").scaling == Scaling.uint8()
    np.save(tmp_path / "neg.npy", np.full((4, 3), -1.0, np.float32))
    with pytest.raises(DataError, match=r"values span \[-1, -1\]"):
        read_path(tmp_path / "neg.npy")
    nan = np.zeros((4, 3), np.float32)
    nan[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(DataError, match="sample 2 holds NaN"):
        read_path(tmp_path / "nan.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy"):
        read_path(tmp_path / "obj.npy")
    np.savez(tmp_path / "xy.npz", x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, 1, 2]))
    d = read_path(tmp_path / "xy.npz")
    assert d.y.tolist() == [0, 1, 2] and d.shape == (1, 4, 4)


def test_image_folders(tmp_path):
    grey, colour, classes = tmp_path / "grey", tmp_path / "colour", tmp_path / "classes"
    for d in (grey, colour, classes / "cat", classes / "dog"):
        d.mkdir(parents=True)
    Image.new("L", (6, 4), 200).save(grey / "a.png")
    Image.new("L", (6, 4), 10).save(grey / "b.jpg")
    Image.new("L", (6, 4), 10).save(colour / "a.png")
    Image.new("RGB", (6, 4), (255, 0, 0)).save(colour / "b.png")
    Image.new("L", (5, 5)).save(classes / "cat" / "1.png")
    Image.new("L", (5, 5)).save(classes / "dog" / "2.png")
    g = read_path(grey)
    assert g.shape == (1, 4, 6) and g.ids == ("a.png", "b.jpg") and int(g.x[0].float().mean()) == 200
    c = read_path(colour)
    assert c.shape == (3, 4, 6) and c.x[1, 0].float().mean() == 255 and c.x[1, 1].float().mean() == 0
    k = read_path(classes)
    assert k.classes == ("cat", "dog") and k.y.tolist() == [0, 1]
    Image.new("L", (7, 4)).save(grey / "odd.png")
    with pytest.raises(DataError, match="odd.png: image is 7x4"):
        read_path(grey)
    (colour / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        read_path(colour)


def test_csv_tables(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n0,10,1\n2,30,0\n4,20,1\n")
    d = load_dataset(f"csv:{tmp_path / 't.csv'}")
    x, _ = d.take(torch.arange(3))
    assert d.shape == (3,) and x.min() == 0 and x.max() == 1 and x[1, 1] == 1
    from aekit.data.tabular import read_csv

    labelled = read_csv(tmp_path / "t.csv", label_column="label")
    assert labelled.shape == (2,) and labelled.y.tolist() == [1, 0, 1]
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(DataError, match="row 2 has 1 fields, expected 2"):
        read_path(tmp_path / "ragged.csv")
    (tmp_path / "missing.csv").write_text("a,b\n1,\n")
    with pytest.raises(DataError, match="row 2, column 'b' is empty"):
        read_path(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_path(tmp_path / "empty.csv")


def test_named_sources_here():
    assert {"fashion-mnist", "mnist", "kmnist", "mnist-5k", "digits"} <= set(SOURCES)
    five = load_dataset("mnist-5k", "test")
    assert len(five) == 1000 and five.y.bincount().tolist() == [100] * 10 and five.x.dtype == torch.uint8
    digits = load_dataset("digits", "train", limit=50)
    assert digits.shape == (1, 8, 8) and len(digits) == 50 and digits.take(torch.arange(50))[0].max() <= 1
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("digits", "validation")


def test_batches_cover_everything_once_and_reshuffle():
    data = ArrayDataset(torch.arange(10, dtype=torch.uint8).reshape(10, 1), scaling=Scaling((0.0,), (10.0,)))
    g = torch.Generator().manual_seed(0)
    batches = Batches(data, 4, shuffle=True, generator=g)
    first = torch.cat([b.x for b in batches]).flatten()
    second = torch.cat([b.x for b in batches]).flatten()
    assert sorted((first * 10).round().tolist()) == list(range(10)) and not torch.equal(first, second)
    assert data.x.dtype == torch.uint8 and first.dtype == torch.float32 and len(batches) == 3
    again = torch.cat(
        [b.x for b in Batches(data, 4, shuffle=True, generator=torch.Generator().manual_seed(0))]
    )
    assert torch.equal(again.flatten(), first)


def test_split_and_subset_keep_labels_and_ids_aligned():
    data = ArrayDataset(
        torch.arange(20).reshape(20, 1).float(), torch.arange(20), ids=tuple(map(str, range(20)))
    )
    train, val = data.split(0.25, seed=3)
    assert len(train) == 15 and len(val) == 5
    assert set(train.y.tolist()).isdisjoint(val.y.tolist())
    assert all(int(x) == int(y) == int(i) for x, y, i in zip(val.x[:, 0], val.y, val.ids, strict=True))
    assert val.y.tolist() == data.split(0.25, seed=3)[1].y.tolist()


def test_memmap_rows_come_back_in_the_asked_order(tmp_path):
    write_idx(tmp_path / "m-idx2-ubyte", np.arange(12, dtype=np.uint8).reshape(6, 2))
    data = ArrayDataset(read_idx(tmp_path / "m-idx2-ubyte"), scaling=Scaling.uint8())
    assert isinstance(data.x, np.memmap)
    assert data.raw(torch.tensor([4, 1, 3])).tolist() == [[8, 9], [2, 3], [6, 7]]
