"""Named data sources (the IDX reader, files, datasets and batches have their own test modules)."""

from __future__ import annotations

import pytest
import torch

from aekit.data.sources import SOURCES, load_dataset
from aekit.errors import DataError


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


def test_limit_draws_a_seeded_stratified_subset_not_the_first_rows():
    train = load_dataset("mnist-5k", "train")  # sorted by label: the first 2000 are digits 0-4
    some = load_dataset("mnist-5k", "train", limit=2000)
    assert some.y.bincount().tolist() == [200] * 10  # every class keeps its share
    again = load_dataset("mnist-5k", "train", limit=2000)
    assert torch.equal(some.x, again.x) and torch.equal(some.y, again.y)  # seeded
    assert not torch.equal(load_dataset("mnist-5k", "train", limit=2000, seed=1).x, some.x)
    assert (some.y.diff() >= 0).all()  # kept in the data's own order
    small = load_dataset("mnist-5k", "test", limit=15).y.bincount(minlength=10)
    assert small.max() - small.min() <= 1  # 15 of 10 classes: one or two each
    assert len(load_dataset("digits", "test", limit=5000)) == 360  # more than there is: all of it
    del train


def test_limit_without_labels_is_a_seeded_random_subset(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i % 3}\n" for i in range(100)))
    x = load_dataset(str(path), limit=10).x[:, 0].tolist()
    assert len(x) == 10 and x == sorted(x) and x != list(range(10))
    assert load_dataset(str(path), limit=10).x[:, 0].tolist() == x


def test_limit_help_says_how_the_subset_is_drawn(capsys):
    from aekit.cli import main

    for command in (["train"], ["evaluate"], ["embed"], ["detect", "fit"]):
        assert main([*command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "use N samples: a seeded random subset, stratified by class when there are labels" in text


def _png_folder(folder, n: int) -> None:
    from PIL import Image

    folder.mkdir()
    for i in range(n):
        Image.new("L", (6, 6), color=20 * i).save(folder / f"{i}.png")


def test_a_local_folder_with_a_dataset_name_is_not_silently_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _png_folder(tmp_path / "digits", 10)
    with pytest.raises(DataError, match=r"'digits' is both a named dataset and a folder here .*name:digits"):
        load_dataset("digits")
    assert len(load_dataset("name:digits", "test")) == 360  # scikit-learn's digits
    assert len(load_dataset("images:digits")) == 10 and len(load_dataset("./digits")) == 10
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_dataset("name:nope")


@pytest.mark.parametrize("name", ["inputs/nope.npy", "nope.csv", "gone.png", "./digitz", "x-ubyte"])
def test_a_missing_path_is_no_such_file_not_an_unknown_dataset(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=f"^{name}: no such file or folder$"):
        load_dataset(name)
