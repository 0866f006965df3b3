"""Compression: the codec model, the .aek file format, and what a damaged file gets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import mutate

import aekit
from aekit.apps.codec import HEADER, Codec, CodecError
from aekit.cli import main
from aekit.models.codec import TABLE_TOTAL


@pytest.fixture(scope="module")
def codec_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "codec"
    argv = [
        "train",
        "--model",
        "codec",
        "--data",
        "mnist-5k",
        "--limit",
        "1500",
        "--epochs",
        "4",
        "--lr",
        "0.005",
    ]
    assert main([*argv, "--lambda", "0.02", "--latent-dim", "16", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def images():
    data = aekit.load_dataset("mnist-5k", "test", limit=200)
    return data.raw(torch.arange(len(data))).numpy()  # uint8 (200, 1, 28, 28)


@pytest.fixture(scope="module")
def blob(codec_run, images):
    return Codec.load(codec_run).compress(images)


def test_tables_are_integer_and_cover_every_symbol(codec_run):
    tables = Codec.load(codec_run).model.tables
    assert tables.dtype == torch.int32 and (tables >= 1).all()
    assert (tables.sum(1) == TABLE_TOTAL).all()


def test_round_trip_gives_the_models_reconstruction_exactly_and_deterministically(codec_run, images, blob):
    codec = Codec.load(codec_run)
    out = codec.decompress(blob)
    assert out.shape == images.shape and out.dtype == np.uint8
    want = np.clip(np.rint(codec.run.reconstruct(images) * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(Codec.load(codec_run).decompress(blob), out)  # a fresh load, same pixels
    assert codec.compress(images) == blob
    psnr = 10 * np.log10(255**2 / ((out.astype(float) - images) ** 2).mean())
    assert psnr > 12  # it reconstructs, if roughly, after a short training


def test_file_size_is_within_two_percent_of_the_entropy_models_rate(codec_run, images, blob):
    estimated = Codec.load(codec_run).estimated_bytes(images)
    assert abs(len(blob) - estimated) / estimated < 0.02
    bpp = 8 * len(blob) / (len(images) * 28 * 28)
    assert bpp < 1.0  # far below the 8 bits of the raw pixels


def test_damaged_foreign_and_other_model_files_are_refused(codec_run, blob, tmp_path):
    codec = Codec.load(codec_run)
    with pytest.raises(CodecError, match="x.aek: .* bytes but the header announces"):
        codec.decompress(blob[:-5], name="x.aek")
    with pytest.raises(CodecError, match="too short"):
        codec.decompress(blob[:10], name="x.aek")
    flipped = bytearray(blob)
    flipped[HEADER.size + 3] ^= 0x40
    with pytest.raises(CodecError, match="checksum mismatch"):
        codec.decompress(bytes(flipped), name="x.aek")
    with pytest.raises(CodecError, match="not an aekit compressed file"):
        codec.decompress(b"\x89PNG\r\n\x1a\n" + blob[8:], name="x.aek")
    other = tmp_path / "other"
    argv = ["train", "--model", "codec", "--data", "digits", "--epochs", "1", "--out", str(other), "--quiet"]
    assert main(argv) == 0
    with pytest.raises(CodecError, match="made by another model"):
        Codec.load(other).decompress(blob, name="x.aek")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutation_is_a_clear_error_or_a_valid_decode(codec_run, blob, data):
    codec = Codec.load(codec_run)
    mutated = mutate(blob, data, HEADER.size)
    try:
        out = codec.decompress(mutated, name="m.aek")
    except CodecError as e:
        assert str(e).startswith("m.aek: ")
    else:
        assert out.dtype == np.uint8 and out.shape[1:] == (1, 28, 28)


def test_cli_compress_and_decompress(codec_run, tmp_path, capsys):
    aek = tmp_path / "t.aek"
    assert main(["compress", str(codec_run), "mnist-5k", "--limit", "50", "-o", str(aek)]) == 0
    text = capsys.readouterr().out
    assert "bits per pixel (from the file's size)" in text
    assert main(["decompress", str(codec_run), str(aek), "-o", str(tmp_path / "back.npy")]) == 0
    back = np.load(tmp_path / "back.npy")
    assert back.shape == (50, 1, 28, 28) and back.dtype == np.uint8
    aek.write_bytes(aek.read_bytes()[:-4])
    assert main(["decompress", str(codec_run), str(aek), "-o", str(tmp_path / "again.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "t.aek" in err and "truncated" in err
    assert not (tmp_path / "again.npy").exists()
    dense = tmp_path / "dense"
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", str(dense), "--quiet"]) == 0
    assert main(["compress", str(dense), "digits", "-o", str(tmp_path / "d.aek")]) == 2
    assert "--model codec" in capsys.readouterr().err
