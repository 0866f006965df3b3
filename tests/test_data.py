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
