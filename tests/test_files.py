"""Reading users' files: .npy/.npz arrays, image folders, single images, CSV tables, and what is refused."""

from __future__ import annotations

import gzip
import io
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aekit.data.dataset import Scaling
from aekit.data.files import read_npy, read_path
from aekit.data.idx import write_idx
from aekit.data.tabular import read_csv
from aekit.errors import DataError

RNG = np.random.default_rng(0)


def everything(data) -> torch.Tensor:
    """All samples of a dataset, scaled as a model sees them."""
    return data.take(torch.arange(len(data)))[0]


@contextmanager
def raises_naming(path: Path | str, match: str | None = None):
    """pytest.raises(DataError) whose message must also name ``path``."""
    with pytest.raises(DataError, match=match) as info:
        yield info
    assert str(path) in str(info.value), f"{path} not named in: {info.value}"


# --- .npy and .npz ---------------------------------------------------------------------------------


def test_npy_uint8_images_gain_a_channel_and_stay_memory_mapped(tmp_path):
    x = RNG.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    data = read_path(tmp_path / "x.npy")
    assert data.shape == (1, 28, 28) and len(data) == 5
    assert isinstance(data.x, np.memmap) and data.x.dtype == np.uint8  # not read into memory
    assert data.scaling == Scaling.uint8()
    np.testing.assert_allclose(everything(data).numpy()[:, 0], x / 255, atol=1e-7)


@pytest.mark.parametrize("shape", [(4, 1, 6, 5), (4, 7)], ids=["nchw", "table"])
def test_npy_uint8_kept_shapes_stay_memory_mapped(tmp_path, shape):
    x = RNG.integers(0, 256, shape, dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    data = read_npy(tmp_path / "x.npy")
    assert isinstance(data.x, np.memmap) and data.shape == shape[1:]
    np.testing.assert_array_equal(data.raw(torch.tensor([3, 0])).numpy(), x[[3, 0]])


def test_npy_channels_last_moves_channels_first(tmp_path):
    x = np.zeros((2, 5, 6, 3), np.uint8)
    x[..., 0] = 255  # red
    np.save(tmp_path / "rgb.npy", x)
    data = read_path(tmp_path / "rgb.npy")
    assert data.shape == (3, 5, 6)
    got = everything(data)
    assert got[:, 0].min() == 1 and got[:, 1:].max() == 0


def test_npy_float_in_unit_range_is_kept(tmp_path):
    x = RNG.random((6, 4, 4)).astype(np.float64)
    x[0, 0, 0], x[1, 0, 0] = 0.0, 1.0
    np.save(tmp_path / "f.npy", x)
    data = read_path(tmp_path / "f.npy")
    assert data.scaling == Scaling() and data.shape == (1, 4, 4)
    assert data.x.dtype in (torch.float32, np.float32)
    np.testing.assert_allclose(everything(data).numpy()[:, 0], x, atol=1e-7)


def test_npy_float_pixels_in_0_255_are_scaled(tmp_path):
    x = np.array([[0.0, 127.5, 255.0], [3.0, 2.0, 1.5]], np.float32)
    np.save(tmp_path / "f255.npy", x)
    data = read_path(tmp_path / "f255.npy")
    assert data.scaling == Scaling.uint8()
    np.testing.assert_allclose(everything(data).numpy(), x / 255, atol=1e-7)
    assert everything(data).max() == 1.0


@pytest.mark.parametrize(
    ("values", "span"),
    [([0.5, -0.25], "[-0.25, 0.5]"), ([0.0, 300.0], "[0, 300]"), ([-1, 2], "[-1, 2]")],
    ids=["negative", "above-255", "negative-ints"],
)
def test_npy_out_of_range_values_are_refused(tmp_path, values, span):
    path = tmp_path / "bad.npy"
    np.save(path, np.array([values, values]))
    with raises_naming(path, match=r"values span " + span.replace("[", r"\[").replace("]", r"\]")) as info:
        read_path(path)
    assert "expected [0, 1] or [0, 255]" in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_npy_nan_or_inf_is_refused_naming_the_sample(tmp_path, bad):
    x = np.full((5, 3, 3), 0.5, np.float32)
    x[3, 1, 2] = bad  # one bad value among finite ones in sample 3
    path = tmp_path / "nan.npy"
    np.save(path, x)
    with raises_naming(path, match="sample 3 holds NaN or infinite values"):
        read_path(path)


class _LeavesAMark:
    """Unpickling this creates a file: proof that a loader ran pickle."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self):
        return (open, (str(self.mark), "w"))


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_object_arrays_are_refused_without_unpickling(tmp_path, suffix):
    mark = tmp_path / "unpickled"
    path = tmp_path / f"obj{suffix}"
    obj = np.array([_LeavesAMark(mark), _LeavesAMark(mark)], dtype=object)
    if suffix == ".npy":
        np.save(path, obj, allow_pickle=True)
    else:
        np.savez(path, x=obj)
    with raises_naming(path):
        read_path(path)
    assert not mark.exists()


def test_npz_with_x_and_y(tmp_path):
    x = RNG.integers(0, 256, (4, 5, 5), dtype=np.uint8)
    np.savez(tmp_path / "xy.npz", x=x, y=np.array([3, 1, 0, 2]))
    data = read_path(tmp_path / "xy.npz")
    assert data.shape == (1, 5, 5) and data.y.dtype == torch.int64
    assert data.y.tolist() == [3, 1, 0, 2]
    _, y = data.take(torch.tensor([2, 0]))
    assert y.tolist() == [0, 3]
    np.testing.assert_array_equal(data.raw(torch.tensor([2]))[0, 0].numpy(), x[2])


def test_npz_x_only_has_no_labels(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 3), np.float32))
    assert read_path(tmp_path / "x.npz").y is None


def test_array_files_are_told_apart_by_content_not_case(tmp_path):
    with open(tmp_path / "UPPER.NPZ", "wb") as f:  # a file object: numpy would append ".npz" to a name
        np.savez(f, x=np.zeros((2, 3), np.uint8), y=[1, 0])
    assert read_path(tmp_path / "UPPER.NPZ").y.tolist() == [1, 0]
    with open(tmp_path / "UPPER.NPY", "wb") as f:
        np.save(f, np.zeros((2, 3), np.uint8))
    data = read_path(tmp_path / "UPPER.NPY")
    assert data.shape == (3,) and isinstance(data.x, np.memmap)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": np.zeros((2, 3))}, "array named 'x' \\(found images\\)"),
        ({"x": np.zeros((3, 2)), "y": np.array([0, 1])}, "3 samples but 2 labels"),
        ({"x": np.zeros((3, 2)), "y": np.array([0.0, 1.5, 2.0])}, "label 1 is 1.5; expected a whole number"),
        ({"x": np.zeros((3, 2)), "y": np.array(["a", "b", "c"])}, "labels must be integers"),
        ({"x": np.zeros((3, 2)), "y": np.zeros((3, 1), int)}, "one number per sample"),
    ],
    ids=["no-x", "short-y", "fractional-y", "text-y", "2d-y"],
)
def test_npz_problems(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with raises_naming(path, match=message):
        read_path(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.npy", b"this is not numpy"),
        ("empty.npy", b""),
        ("garbage.npz", b"PK\x03\x04 truncated zip"),
        ("cut.npz", None),  # a real .npz cut in half
        ("cut.npy", None),  # a real .npy cut short
    ],
)
def test_unreadable_array_files(tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        if name.endswith(".npz"):
            np.savez(path, x=np.zeros((10, 10)))
        else:
            np.save(path, np.zeros((10, 10)))
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with raises_naming(path):
        read_path(path)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros(5, np.float32), "expected samples of shape"),
        (np.zeros((2, 2, 2, 2, 2), np.float32), "expected samples of shape"),
        (np.zeros((0, 3), np.float32), "no values"),
        (np.zeros((0, 4, 4), np.uint8), "no values"),
        (np.zeros((3, 2), np.complex64), "unsupported dtype complex64"),
        (np.array([["a", "b"]]), "unsupported dtype"),
    ],
    ids=["1d", "5d", "empty-float", "empty-uint8", "complex", "text"],
)
def test_arrays_of_the_wrong_kind(tmp_path, x, message):
    path = tmp_path / "x.npy"
    np.save(path, x)
    with raises_naming(path, match=message):
        read_path(path)


# --- image folders and single images -----------------------------------------------------------------


def save_grey(path: Path, a: np.ndarray) -> np.ndarray:
    Image.fromarray(a.astype(np.uint8), "L").save(path)
    return a


def test_grey_png_folder_is_exact_with_file_names_as_ids(tmp_path):
    imgs = {n: RNG.integers(0, 256, (4, 6), dtype=np.uint8) for n in ("b.png", "a.png", "c.PNG")}
    for n, a in imgs.items():
        save_grey(tmp_path / n, a)
    (tmp_path / "notes.txt").write_text("not an image")
    data = read_path(tmp_path)
    assert data.ids == ("a.png", "b.png", "c.PNG")  # sorted, non-images ignored
    assert data.shape == (1, 4, 6) and data.x.dtype == torch.uint8 and data.y is None and data.classes is None
    for i, n in enumerate(data.ids):
        np.testing.assert_array_equal(data.x[i, 0].numpy(), imgs[n])


def test_grey_jpeg_gives_one_channel(tmp_path):
    a = np.tile(np.linspace(0, 255, 16).astype(np.uint8), (16, 1))  # smooth: JPEG keeps it close
    Image.fromarray(a, "L").save(tmp_path / "g.jpg", quality=95)
    Image.fromarray(a[::-1], "L").save(tmp_path / "h.jpeg", quality=95)
    data = read_path(tmp_path)
    assert data.shape == (1, 16, 16) and data.ids == ("g.jpg", "h.jpeg")
    assert np.abs(data.x[0, 0].numpy().astype(int) - a).mean() < 3


def test_any_colour_image_makes_the_folder_rgb(tmp_path):
    save_grey(tmp_path / "a.png", np.full((3, 5), 40, np.uint8))
    Image.new("RGB", (5, 3), (255, 0, 0)).save(tmp_path / "b.png")
    Image.new("RGB", (5, 3), (0, 0, 255)).save(tmp_path / "c.jpg", quality=100)
    Image.new("RGBA", (5, 3), (0, 255, 0, 128)).save(tmp_path / "d.png")
    data = read_path(tmp_path)
    assert data.shape == (3, 3, 5)
    x = data.x.numpy().astype(int)
    assert (x[0] == 40).all()  # grey repeated over R, G, B
    assert (x[1, 0] == 255).all() and (x[1, 1:] == 0).all()  # red is channel 0
    assert (x[2, 2] > 240).all() and (x[2, :2] < 15).all()  # blue is channel 2 (JPEG: nearly)
    assert (x[3, 1] == 255).all() and (x[3, [0, 2]] == 0).all()  # alpha dropped


def test_colour_jpeg_folder_gives_three_channels(tmp_path):
    for i in range(3):
        Image.new("RGB", (8, 8), (200, 100 + i, 50)).save(tmp_path / f"{i}.jpg")
    data = read_path(tmp_path)
    assert data.shape == (3, 8, 8) and len(data) == 3


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.array([[0, 1000, 32768, 65535]], np.uint16)).save(tmp_path / "deep.png")
    save_grey(tmp_path / "flat.png", np.array([[0, 4, 128, 255]]))
    data = read_path(tmp_path)
    np.testing.assert_array_equal(data.x[:, 0, 0].numpy(), [[0, 4, 128, 255]] * 2)


def test_class_subfolders_give_labels_classes_and_ids(tmp_path):
    for cls, n in (("dog", 2), ("cat", 3), ("empty", 0)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            save_grey(tmp_path / cls / f"{i}.png", np.full((4, 4), 10 * i + (100 if cls == "dog" else 0)))
    (tmp_path / "README.txt").write_text("a note beside the class folders")
    data = read_path(tmp_path)
    assert data.classes == ("cat", "dog")  # sorted; the folder without images is no class
    assert data.y.tolist() == [0, 0, 0, 1, 1]
    assert data.ids == ("cat/0.png", "cat/1.png", "cat/2.png", "dog/0.png", "dog/1.png")
    assert data.x[:, 0, 0, 0].tolist() == [0, 10, 20, 100, 110]  # pixels follow their labels


@pytest.mark.parametrize("content", [None, "notes.txt", "empty-subfolder"])
def test_folder_without_images_names_the_folder(tmp_path, content):
    folder = tmp_path / "imgs"
    folder.mkdir()
    if content == "notes.txt":
        (folder / content).write_text("hello")
    elif content:
        (folder / content).mkdir()
    with raises_naming(folder, match="no images"):
        read_path(folder)


def test_mixed_sizes_name_the_odd_file(tmp_path):
    save_grey(tmp_path / "a.png", np.zeros((4, 6)))
    save_grey(tmp_path / "b.png", np.zeros((4, 6)))
    save_grey(tmp_path / "odd.png", np.zeros((4, 7)))
    with raises_naming(tmp_path / "odd.png", match="image is 7x4, but a.png is 6x4"):
        read_path(tmp_path)


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (16, 16), dtype=np.uint8), "L").save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda png: b"\x89PNG not really",
        lambda png: png[: len(png) // 2],  # header fine, pixel data cut: fails only when decoded
        lambda png: png[:60] + bytes(b ^ 0xFF for b in png[60:70]) + png[70:],  # flipped bytes in IDAT
        lambda png: b"",
    ],
    ids=["garbage", "truncated", "flipped", "empty"],
)
def test_corrupt_png_in_a_folder_is_named(tmp_path, corrupt):
    save_grey(tmp_path / "a.png", np.zeros((16, 16)))
    (tmp_path / "broken.png").write_bytes(corrupt(_png_bytes()))
    with raises_naming(tmp_path / "broken.png", match="not a readable image"):
        read_path(tmp_path)


def test_a_single_image_file_is_a_dataset_of_one(tmp_path):
    a = save_grey(tmp_path / "one.png", RNG.integers(0, 256, (5, 7), dtype=np.uint8))
    data = read_path(tmp_path / "one.png")
    assert len(data) == 1 and data.shape == (1, 5, 7) and data.ids == ("one.png",)
    np.testing.assert_array_equal(data.x[0, 0].numpy(), a)
    Image.new("RGB", (7, 5), (0, 255, 0)).save(tmp_path / "green.png")
    colour = read_path(tmp_path / "green.png")
    assert colour.shape == (3, 5, 7) and colour.x[0, 1].min() == 255 and colour.x[0, 0].max() == 0


def test_a_single_corrupt_image_is_named(tmp_path):
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"\xff\xd8\xff not a jpeg")
    with raises_naming(path, match="not a readable image"):
        read_path(path)


# --- read_path's dispatch ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["data.txt", "data.json", "archive.gz", "noext"])
def test_unknown_suffix_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"1,2,3\n")
    with raises_naming(path, match="unknown input type"):
        read_path(path)


def test_missing_path(tmp_path):
    with raises_naming(tmp_path / "nowhere.npy", match="no such file"):
        read_path(tmp_path / "nowhere.npy")


@pytest.mark.parametrize("name", ["imgs-idx3-ubyte", "imgs-idx3-ubyte.gz", "imgs.idx"])
def test_idx_files_by_name(tmp_path, name):
    x = RNG.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    data = read_path(write_idx(tmp_path / name, x))
    assert data.shape == (1, 4, 5) and data.scaling == Scaling.uint8()
    np.testing.assert_array_equal(data.raw(torch.tensor([2, 0]))[:, 0].numpy(), x[[2, 0]])


def test_idx_labels_file_is_not_images(tmp_path):
    path = write_idx(tmp_path / "labels-idx1-ubyte", np.arange(5, dtype=np.uint8))
    with raises_naming(path, match="expected samples of shape"):
        read_path(path)


# --- CSV tables --------------------------------------------------------------------------------------


def write_csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("header", [False, True])
def test_numeric_csv(tmp_path, header):
    path = write_csv(tmp_path, ("a,b,c\n" if header else "") + "1,10,-5\n3,30,-5\n2,20.5,-5\n")
    data = read_path(path)
    assert data.shape == (3,) and len(data) == 3 and data.y is None
    x = everything(data)
    np.testing.assert_allclose(x.numpy(), [[0, 0, 0], [1, 1, 0], [0.5, 10.5 / 20, 0]], atol=1e-6)
    # the scaling inverts back to the values in the file
    np.testing.assert_allclose(data.scaling.invert(x).numpy(), [[1, 10, -5], [3, 30, -5], [2, 20.5, -5]])


def test_csv_scaling_maps_each_column_onto_exactly_0_to_1(tmp_path):
    rng = np.random.default_rng(7)
    for k in range(30):  # awkward magnitudes, where float64 min/span once gave 1 + ulp in float32
        scale = 10.0 ** rng.integers(-6, 7, size=4)
        v = (rng.normal(size=(6, 4)) + rng.normal(size=4) * 100) * scale  # off-centre columns
        path = tmp_path / f"r{k}.csv"
        np.savetxt(path, v, delimiter=",")
        x = everything(read_csv(path))
        assert x.dtype == torch.float32
        assert (x.min(0).values == 0).all() and (x.max(0).values == 1).all(), k
        assert ((x >= 0) & (x <= 1)).all()
    np.savetxt(tmp_path / "one.csv", v[:, :1], delimiter=",")  # one column: the scalar path
    x = everything(read_csv(tmp_path / "one.csv"))
    assert x.min() == 0 and x.max() == 1


def test_csv_label_column(tmp_path):
    path = write_csv(tmp_path, "a,label,b\n0,2,10\n5,0,30\n10,1,20\n")
    data = read_csv(path, label_column="label")
    assert data.shape == (2,) and data.y.tolist() == [2, 0, 1]
    x, y = data.take(torch.tensor([1, 2]))
    np.testing.assert_allclose(x.numpy(), [[0.5, 1.0], [1.0, 0.5]])
    assert y.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("a,b\n1,2\n3,abc\n", {}, "row 3, column 'b' holds text 'abc'; expected a number"),
        ("1,2\n3,x4\n", {}, "row 2, column 'column 2' holds text 'x4'"),
        ("a,b\n1,2\n,4\n", {}, "row 3, column 'a' is empty \\(missing value\\)"),
        ("a,b\n1,2\n3, \n", {}, "row 3, column 'b' is empty"),
        ("a,b\n1,nan\n", {}, "row 2, column 'b' holds nan; expected a finite number"),
        ("a,b\n1,2\n-inf,4\n", {}, "row 3, column 'a' holds -inf"),
        ("a,b\n1,2\n3\n", {}, "row 3 has 1 fields, expected 2"),
        ("a,b\n1,2\n3,4,5\n", {}, "row 3 has 3 fields, expected 2"),
        ("a,b\n1,2\n\n\n3,x\n", {}, "row 5, column 'b'"),  # blank lines still count
        ("", {}, "the table is empty"),
        ("\n\n  \n", {}, "the table is empty"),
        ("a,b,c\n", {}, "header but no rows"),
        ("a,b\n1,2\n", {"label_column": "c"}, "no column named 'c' \\(columns: a, b\\)"),
        (
            "a,label\n1,0\n2,1.5\n",
            {"label_column": "label"},
            "row 3, column 'label' holds 1.5; expected a whole",
        ),
        ("label\n1\n0\n", {"label_column": "label"}, "no feature columns"),
        ("a,b\n1e300,0\n-1e300,0\n", {}, "column 'a' spans"),
    ],
    ids=[
        "text",
        "text-no-header",
        "missing",
        "blank-cell",
        "nan",
        "inf",
        "short-row",
        "long-row",
        "after-blank-lines",
        "empty-file",
        "blank-file",
        "header-only",
        "unknown-label-column",
        "fractional-label",
        "label-only",
        "beyond-float32",
    ],
)
def test_csv_problems_name_file_row_and_column(tmp_path, text, kwargs, message):
    path = write_csv(tmp_path, text)
    with raises_naming(path, match=message):
        read_csv(path, **kwargs)


def test_csv_with_byte_order_mark_and_spaces(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffx , y\n 1, 2\n3 ,4 \n".encode())
    data = read_csv(path, label_column="y")
    assert data.y.tolist() == [2, 4] and data.shape == (1,)


def test_csv_not_utf8_or_missing(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("a,\xe9\n1,2\n".encode("latin-1"))
    with raises_naming(path, match="not a readable CSV"):
        read_csv(path)
    with raises_naming(tmp_path / "gone.csv", match="no such file"):
        read_csv(tmp_path / "gone.csv")


def test_csv_gz_is_not_taken_for_a_table(tmp_path):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"1,2\n"))
    with raises_naming(path, match="unknown input type"):
        read_path(path)
