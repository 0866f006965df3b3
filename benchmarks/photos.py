"""The real photos that ship inside scikit-image, split once for every photo benchmark.

The denoising (benchmarks/photo_denoise.py) and compression (benchmarks/rate_distortion.py)
benchmarks train only on TRAIN and report only on TEST: a fixed, named third of the photos,
three grayscale and three colour, never seen in training or tuning.
"""

from __future__ import annotations

import numpy as np

TRAIN = (
    "astronaut", "hubble_deep_field", "immunohistochemistry", "retina", "stereo_motorcycle",  # colour
    "moon", "page", "text", "brick", "grass", "clock", "cell",  # grayscale
)  # fmt: skip
TEST = ("coffee", "chelsea", "rocket", "camera", "coins", "gravel")  # held out: 3 colour, 3 gray


def load(name: str) -> np.ndarray:
    """One photo as uint8, (H, W) for grayscale or (H, W, 3) for colour."""
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity); the left view
        image = image[0]
    return np.ascontiguousarray(image.astype(np.uint8))


def load_all(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {name: load(name) for name in names}
