"""Formats pinned: run directories and ``.aek`` files written by earlier aekit versions still load
and decode to the outputs recorded when they were written (tests/golden/README.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

import aekit
from aekit.apps.codec import Codec

GOLDEN = Path(__file__).parent / "golden"


def test_golden_run_directory_loads_and_reconstructs_as_recorded():
    run = aekit.load(GOLDEN / "codec_v1")
    assert run.config.model == "codec" and tuple(run.model.input_shape) == (1, 8, 8)
    x = np.load(GOLDEN / "codec_v1_input.npy")
    want = np.load(GOLDEN / "codec_v1_reconstruction.npy")
    np.testing.assert_allclose(run.reconstruct(x), want, atol=1e-5)


def test_golden_v1_file_decodes_to_the_recorded_symbols_and_pixels():
    blob = (GOLDEN / "codec_v1.aek").read_bytes()
    assert hashlib.md5(blob).hexdigest() == "066be8422cb63e96e64ff7713eb4e478"  # the file itself is intact
    codec = Codec.load(GOLDEN / "codec_v1")
    # The entropy-coded symbols are integers: they must come back exactly.
    symbols = np.load(GOLDEN / "codec_v1_symbols.npy")
    np.testing.assert_array_equal(codec.symbols(np.load(GOLDEN / "codec_v1_input.npy")), symbols)
    out = codec.decompress(blob, name="codec_v1.aek")
    want = np.load(GOLDEN / "codec_v1_decoded.npy")
    assert out.shape == want.shape == (16, 1, 8, 8) and out.dtype == np.uint8
    # The pixels go through the float decoder: identical here; another CPU may round one level apart.
    assert np.abs(out.astype(int) - want).max() <= 1 and (out == want).mean() > 0.99


def test_golden_inputs_compress_to_the_golden_v1_bytes():
    codec = Codec.load(GOLDEN / "codec_v1")
    assert codec.compress(np.load(GOLDEN / "codec_v1_input.npy")) == (GOLDEN / "codec_v1.aek").read_bytes()
