"""ArrayDataset, Scaling and Batches: scaling round trips, splits, subsets, memory maps and batch order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aekit.data.batches import Batches
from aekit.data.dataset import ArrayDataset, DataInfo, Scaling
from aekit.data.idx import read_idx, write_idx
from aekit.errors import DataError


def indexed(n: int = 20, **kw) -> ArrayDataset:
    """Sample i holds the value i in every feature, label 100 + i and id 's{i}': alignment is checkable."""
    x = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 3)
    return ArrayDataset(x, torch.arange(n) + 100, ids=tuple(f"s{i}" for i in range(n)), **kw)


def check_aligned(data: ArrayDataset) -> list[int]:
    """Assert x, y and ids of every sample still belong together; return the original indices."""
    rows = data.raw(torch.arange(len(data)))
    index = rows[:, 0].long().tolist()
    assert (rows == rows[:, :1]).all()
    assert data.y.tolist() == [100 + i for i in index]
    assert list(data.ids) == [f"s{i}" for i in index]
    return index


# --- Scaling -----------------------------------------------------------------------------------------


def test_uint8_scaling_maps_0_255_onto_exactly_0_1():
    raw = torch.arange(256, dtype=torch.uint8)[:, None]
    x = Scaling.uint8().apply(raw)
    assert x.dtype == torch.float32 and x[0] == 0 and x[-1] == 1  # exactly 1, not 1 + ulp
    assert ((x >= 0) & (x <= 1)).all() and (x.diff(dim=0) > 0).all()
    assert torch.equal(Scaling.uint8().invert(x).round().to(torch.uint8), raw)


@pytest.mark.parametrize(
    ("scaling", "shape"),
    [
        (Scaling((3.0,), (2.5,)), (4,)),
        (Scaling((-1.0, 0.0, 10.0), (2.0, 0.5, 100.0)), (3,)),
        (Scaling((0.0, 1.0, 2.0, 3.0), (1.0, 2.0, 3.0, 4.0)), (1, 2, 2)),  # per pixel of an image
    ],
    ids=["scalar", "per-feature", "per-pixel"],
)
def test_scaling_apply_then_invert_gives_back_the_raw_values(scaling, shape):
    raw = torch.randn(5, *shape, generator=torch.Generator().manual_seed(0)) * 50
    before = raw.clone()
    x = scaling.apply(raw)
    assert torch.equal(raw, before)  # the input is not modified in place
    torch.testing.assert_close(scaling.invert(x), raw, rtol=1e-5, atol=1e-4)
    off = torch.tensor(scaling.offset).reshape(shape if len(scaling.offset) > 1 else (1,))
    sc = torch.tensor(scaling.scale).reshape(shape if len(scaling.scale) > 1 else (1,))
    torch.testing.assert_close(x, (raw - off) / sc)


def test_scaling_serialises_through_plain_lists():
    s = Scaling((0.5, -2.0), (3.0, 4.0))
    d = s.to_dict()
    assert d == {"offset": [0.5, -2.0], "scale": [3.0, 4.0]}
    assert Scaling.from_dict(d) == s


@pytest.mark.parametrize(
    ("offset", "scale"),
    [((0.0,), (1.0, 2.0)), ((), ()), ((0.0,), (0.0,)), ((float("nan"),), (1.0,)), ((0.0,), (float("inf"),))],
    ids=["lengths-differ", "empty", "zero-scale", "nan-offset", "inf-scale"],
)
def test_invalid_scaling_is_refused(offset, scale):
    with pytest.raises(ValueError, match="Scaling needs"):
        Scaling(offset, scale)


# --- ArrayDataset ------------------------------------------------------------------------------------


def test_numpy_input_becomes_a_tensor_without_changing_values():
    x = np.arange(12, dtype=np.uint8).reshape(3, 1, 2, 2)
    data = ArrayDataset(x, [0, 1, 0], scaling=Scaling.uint8())
    assert isinstance(data.x, torch.Tensor) and data.x.dtype == torch.uint8
    assert data.shape == (1, 2, 2) and data.is_image and len(data) == 3
    assert data.y.dtype == torch.int64 and data.y.tolist() == [0, 1, 0]
    info = data.describe()
    assert info.dtype == "uint8" and info.shape == (1, 2, 2) and info.size == 3
    assert DataInfo.from_dict(info.to_dict()) == info  # config.json round trip
    np.testing.assert_array_equal(data.x.numpy(), x)


def test_read_only_numpy_input_is_copied_not_shared():
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    x.setflags(write=False)
    data = ArrayDataset(x)
    data.x[0, 0] = 42  # would be undefined behaviour on a read-only buffer
    assert x[0, 0] == 0


def test_whole_float_labels_are_accepted_as_int64():
    data = ArrayDataset(torch.zeros(3, 2), np.array([0.0, 2.0, 1.0]))
    assert data.y.dtype == torch.int64 and data.y.tolist() == [0, 2, 1]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"x": torch.zeros(0, 3)}, "the dataset is empty"),
        ({"x": torch.zeros(3, 2), "y": torch.arange(2)}, "3 samples but 2 labels"),
        ({"x": torch.zeros(3, 2), "y": np.array([0.0, 0.5, 1.0])}, "label 1 is 0.5"),
        ({"x": torch.zeros(3, 2), "y": np.array([0.0, np.nan, 1.0])}, "label 1 is nan"),
        ({"x": torch.zeros(3, 2), "y": torch.zeros(3, 1, dtype=torch.int64)}, "one number per sample"),
        ({"x": torch.zeros(3, 2), "y": np.array(["a", "b", "c"])}, "labels must be integers"),
        ({"x": torch.zeros(3, 2), "ids": ("a", "b")}, "3 samples but 2 ids"),
    ],
    ids=["empty", "short-labels", "fractional-label", "nan-label", "2d-labels", "text-labels", "short-ids"],
)
def test_inconsistent_datasets_are_refused_naming_them(kw, message):
    with pytest.raises(DataError, match=message) as info:
        ArrayDataset(name="my-data", **kw)
    assert "my-data" in str(info.value)


def test_take_scales_and_returns_labels_in_the_asked_order():
    data = ArrayDataset(
        torch.tensor([[0], [51], [255]], dtype=torch.uint8), [7, 8, 9], scaling=Scaling.uint8()
    )
    x, y = data.take(torch.tensor([2, 0, 1]))
    assert x.dtype == torch.float32
    assert torch.equal(x.flatten(), torch.tensor([1.0, 0.0, 0.2]))
    assert y.tolist() == [9, 7, 8]
    assert data.x.dtype == torch.uint8  # storage untouched


def test_subset_keeps_labels_and_ids_aligned():
    data = indexed(10)
    sub = data.subset(torch.tensor([7, 2, 5, 2]), name="picked")
    assert check_aligned(sub) == [7, 2, 5, 2] and sub.name == "picked"
    assert check_aligned(data.subset(np.array([9, 0]))) == [9, 0]  # numpy indices too
    assert data.subset([1]).name == data.name


def test_split_is_disjoint_complete_and_aligned():
    data = indexed(20)
    train, val = data.split(0.25, seed=3)
    assert (len(train), len(val)) == (15, 5)
    t, v = check_aligned(train), check_aligned(val)
    assert set(t).isdisjoint(v) and sorted(t + v) == list(range(20))
    assert val.name.endswith("(validation)")


def test_split_is_deterministic_per_seed():
    data = indexed(50)
    first = [check_aligned(d) for d in data.split(0.2, seed=11)]
    again = [check_aligned(d) for d in data.split(0.2, seed=11)]
    other = [check_aligned(d) for d in data.split(0.2, seed=12)]
    assert first == again
    assert first[1] != other[1]
    assert first[0] != sorted(first[0])  # shuffled, not the first 40 in order


def test_split_edge_cases():
    data = indexed(4)
    assert data.split(0.0) == (data, None)
    _, val = data.split(0.01)
    assert len(val) == 1  # at least one validation sample
    with pytest.raises(DataError, match="too few"):
        indexed(1).split(0.5)
    with pytest.raises(DataError, match="too few"):
        data.split(1.0)


@pytest.fixture
def memmapped(tmp_path) -> tuple[ArrayDataset, np.ndarray]:
    x = np.random.default_rng(0).integers(0, 256, (9, 2, 3), dtype=np.uint8)
    write_idx(tmp_path / "m-idx3-ubyte", x)
    data = ArrayDataset(read_idx(tmp_path / "m-idx3-ubyte"), np.arange(9) * 10, scaling=Scaling.uint8())
    return data, x


def test_raw_on_a_memmap_returns_rows_in_the_asked_unsorted_order(memmapped):
    data, x = memmapped
    assert isinstance(data.x, np.memmap)
    for order in ([4, 1, 3], [8, 0, 8, 2], [5], list(range(8, -1, -1))):
        got = data.raw(torch.tensor(order))
        assert isinstance(got, torch.Tensor) and got.dtype == torch.uint8
        np.testing.assert_array_equal(got.numpy(), x[order])
    assert isinstance(data.x, np.memmap)  # reading rows did not load the file


def test_take_and_subset_on_a_memmap(memmapped):
    data, x = memmapped
    xs, ys = data.take(torch.tensor([6, 2]))
    np.testing.assert_allclose(xs.numpy(), x[[6, 2]] / 255, atol=1e-7)
    assert ys.tolist() == [60, 20]
    sub = data.subset(torch.tensor([3, 1]))  # a view of the file's rows: nothing copied
    from aekit.data.dataset import Rows

    assert isinstance(sub.x, Rows) and sub.y.tolist() == [30, 10] and len(sub) == 2
    np.testing.assert_array_equal(sub.raw(torch.arange(2)).numpy(), x[[3, 1]])


# --- Batches -----------------------------------------------------------------------------------------


def pixels(n: int = 50) -> ArrayDataset:
    """uint8 samples: sample i is the pixel value 5 * i (at most 245) and has label i."""
    x = (torch.arange(n, dtype=torch.uint8) * 5).reshape(n, 1, 1, 1)
    return ArrayDataset(x, torch.arange(n), scaling=Scaling.uint8())


def batch_order(batches) -> list[int]:
    """The sample indices of one pass, read back from the pixel values and checked against the labels."""
    order = []
    for b in batches:
        assert b.x.dtype == torch.float32 and ((b.x >= 0) & (b.x <= 1)).all()
        index = (b.x.flatten() * 255 / 5).round().long()
        assert torch.equal(index, b.y)  # pixels and labels travel together
        order += index.tolist()
    return order


def test_batches_cover_every_sample_once_per_pass_and_reshuffle():
    data = pixels(50)
    batches = Batches(data, 8, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 7
    assert [len(b) for b in batches] == [8] * 6 + [2]
    first, second = batch_order(batches), batch_order(batches)
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second  # the same generator moves on: a new order each pass
    assert first != list(range(50))
    assert data.x.dtype == torch.uint8  # storage stays uint8; only batches are float


def test_batches_with_the_same_seed_give_the_same_order():
    data = pixels(30)
    a = batch_order(Batches(data, 7, shuffle=True, generator=torch.Generator().manual_seed(5)))
    b = batch_order(Batches(data, 7, shuffle=True, generator=torch.Generator().manual_seed(5)))
    c = batch_order(Batches(data, 7, shuffle=True, generator=torch.Generator().manual_seed(6)))
    assert a == b and a != c


def test_batches_without_shuffle_go_in_order():
    batches = Batches(pixels(10), 4)
    assert batch_order(batches) == batch_order(batches) == list(range(10))
    assert len(Batches(pixels(10), 100)) == 1 and len(Batches(pixels(10), 5)) == 2


def test_batches_over_a_memmap(memmapped):
    data, x = memmapped
    got = torch.cat([b.x for b in Batches(data, 4, shuffle=True, generator=torch.Generator().manual_seed(1))])
    assert got.shape == (9, 2, 3) and got.dtype == torch.float32
    rows = sorted(map(tuple, (got * 255).round().to(torch.uint8).reshape(9, -1).tolist()))
    assert rows == sorted(map(tuple, x.reshape(9, -1).tolist()))


def test_batches_without_labels():
    data = ArrayDataset(torch.rand(5, 3))
    assert all(b.y is None for b in Batches(data, 2))


@pytest.mark.parametrize("size", [0, -1])
def test_batch_size_must_be_positive(size):
    with pytest.raises(ValueError, match="batch_size"):
        Batches(pixels(4), size)
