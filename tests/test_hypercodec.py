"""The hyperprior codec and ``.aek`` version 2: exact round trips at any size, integer scales,
the rate it promises, qualities in order, and what a damaged file gets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import mutate
from PIL import Image

import aekit
from aekit.apps.codec import CodecError, load_codec
from aekit.apps.hypercodec import PREFIX, HyperCodec, coded_counts, varint
from aekit.cli import main
from aekit.data.batches import Batch
from aekit.errors import ConfigError
from aekit.models.hyperprior import HyperpriorConfig, HyperpriorModel, _int_conv

TINY = ["channels=8", "latent_channels=8", "hyper_channels=4", "levels=1", "hyper_levels=1"]
TINY += ["lambdas=[0.002,0.008,0.032,0.128]"]  # four qualities, far apart
SCALE = [
    "mean_scale=false",
    "latent_padding=false",
]  # the scale model of hp_run (new runs default to both on)


@pytest.fixture(scope="module")
def hp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "hp"
    argv = ["train", "--model", "hyperprior", "--data", "mnist-5k", "--limit", "1200", "--epochs", "3"]
    argv += [a for kv in [*TINY, *SCALE] for a in ("--set", f"model.{kv}")]
    assert main([*argv, "--lr", "0.005", "--seed", "0", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def codec(hp_run):
    return HyperCodec.load(hp_run)


@pytest.fixture(scope="module")
def digits():
    data = aekit.load_dataset("mnist-5k", "test", limit=300)
    return data.raw(torch.arange(len(data))).numpy()  # uint8 (300, 1, 28, 28)


def odd_images(seed: int = 0) -> list[np.ndarray]:
    """Random noise, a smooth gradient, a real digit cut to odd sizes; grey, and one colour image."""
    rng = np.random.default_rng(seed)
    digit = aekit.load_dataset("mnist-5k", "test", limit=1).raw(torch.arange(1)).numpy()[0]
    ramp = np.add.outer(np.arange(19), np.arange(33)).astype(np.uint8)[None] * 4
    return [
        rng.integers(0, 256, (1, 13, 7), dtype=np.uint8),
        ramp,
        digit[:, 1:26, 3:28],
        np.ascontiguousarray(np.tile(digit, (1, 2, 1))[:, :45]),
        rng.integers(0, 256, (1, 1, 1), dtype=np.uint8),
    ]


def test_round_trip_is_the_models_reconstruction_at_any_size(codec):
    images = odd_images()
    for quality in (1, 2.5, 4):
        data = codec.compress(images, quality)
        out = codec.decompress(data)
        assert [o.shape for o in out] == [im.shape for im in images] and all(o.dtype == np.uint8 for o in out)
        want = codec._reconstruct(images, quality)
        assert all(np.array_equal(a, b) for a, b in zip(out, want, strict=True))
    digit_psnr = 10 * np.log10(255**2 / np.mean((out[2].astype(float) - images[2]) ** 2))
    assert digit_psnr > 18  # a short training, yet the top quality reconstructs a real digit


def test_same_bytes_decode_to_identical_images_twice_and_after_a_fresh_load(hp_run, codec, digits):
    data = codec.compress(digits[:50], 3)
    first = codec.decompress(data)
    again = HyperCodec.load(hp_run).decompress(data)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert codec.compress(digits[:50], 3) == data  # and encoding is repeatable


def test_file_within_one_percent_of_the_estimated_rate(codec, digits):
    for quality in (1, 4):
        enc = codec.encode(digits, quality)
        estimated = codec.estimated_bytes(digits, quality)
        assert abs(len(enc.data) - estimated) / estimated < 0.01
        assert len(enc.data) < digits.size  # it compresses


@pytest.mark.parametrize("quality", [1, 2, 3, 4])
def test_one_small_image_per_file_within_one_percent_of_the_estimate(codec, digits, quality):
    """The estimate models the whole file: its exact header, the coder's start from state 0 and
    the stream's length in bytes, not only the symbols' information."""
    encs = [codec.encode([im], quality) for im in digits[:40]]
    sizes = np.array([len(e.data) for e in encs])
    estimates = np.array([e.estimated_bytes for e in encs])
    assert abs(sizes.sum() / estimates.sum() - 1) < 0.01
    assert np.all(np.abs(sizes / estimates - 1) < 0.03)  # each file too, within a few bytes
    assert np.mean(np.abs(sizes - estimates)) < 0.5  # mostly to the byte


def test_the_estimate_follows_the_coders_start_from_state_zero(codec):
    """From state 0 a run of likely symbols adds cdfs instead of multiplying: many more bits than
    their information, which start_bits simulates."""
    from aekit.apps.hypercodec import start_bits

    rng = np.random.default_rng(0)
    counts, cdfs = codec._y_counts, codec._y_cdfs
    for k, n in ((0, 300), (0, 3000), (30, 500), (63, 50)):
        centre = counts.shape[1] // 2
        sym = (centre + rng.integers(-1, 2, n) * (k > 0)).astype(np.int32)
        coder = codec._coder()
        coder.encode_reverse(sym, codec._y_models[k])  # pushes the last symbol first
        info = -np.log2(counts[k, sym] / (1 << 24)).sum()
        pushed = sym[::-1]
        extra = start_bits(counts[k, pushed], cdfs[k, pushed])
        assert abs(coder.num_valid_bits() - (info + extra)) < 1.5


def test_the_coders_frequencies_are_what_the_estimate_uses(codec):
    """constriction's quantisation gives a symbol of count 1 one more count: 23 bits, not 24."""
    counts = coded_counts(codec.model.y_tables.numpy())
    tables = codec.model.y_tables.numpy()
    centre = tables.shape[1] // 2
    for k in (0, 20, 40, 63):
        for sym in (centre, centre + 1, centre + 9):
            coder = codec._coder()
            coder.encode_reverse(np.full(4000, sym, np.int32), codec._y_models[k])
            bits = coder.num_valid_bits() / 4000
            assert abs(bits + np.log2(counts[k, sym] / (1 << 24))) < 3e-3 + 32 / 4000


def test_a_one_image_file_carries_35_or_36_bytes_besides_its_stream(codec, digits):
    from aekit.apps.hypercodec import _read_varint

    enc = codec.encode([digits[0]], 2)
    assert enc.data[24:26] == bytes([1, 1])  # count, runs
    stream, at = _read_varint(enc.data, 26, "x", "stream length")
    assert enc.data[at : at + 4] == bytes([1, 1, 28, 28])  # the shape table: 1 x (1, 28, 28)
    assert len(enc.data) == at + 4 + 4 + stream and len(enc.data) - stream == 34 + len(varint(stream))
    assert varint(300) == bytes([0xAC, 0x02]) and varint(0) == b"\x00"


def old_layout_file(codec: HyperCodec, images: list[np.ndarray], quality: float, layout: int) -> bytes:
    """A file as the codec wrote them before layout 2: a fixed 44-byte header and uint32 shape
    table, the stream in whole words; z and y in two ANS streams (layout 0) or one (layout 1)."""
    import zlib

    from aekit.apps.hypercodec import RUN, Header, _by_scale, _runs

    c, m = codec.model.config, codec.model
    segments = codec._segments([im.shape for im in images])
    ys, zs, ks = codec.symbols(images, segments, quality, scales=True)
    y_all = np.concatenate([y.ravel() for y in ys]).astype(np.int32) + c.max_symbol
    order, bounds = _by_scale(np.concatenate([k.ravel() for k in ks]))
    y_coder = codec._coder()
    for k in range(len(m.y_tables)):
        if bounds[k + 1] > bounds[k]:
            y_coder.encode_reverse(y_all[order[bounds[k] : bounds[k + 1]]], codec._y_models[k])
    z_all = np.concatenate([z.swapaxes(0, 1).reshape(c.hyper_channels, -1) for z in zs], 1) + c.max_side
    z_coder = codec._coder() if layout == 0 else y_coder
    for ch in range(c.hyper_channels):
        z_coder.encode_reverse(z_all[ch].astype(np.int32), codec._z_models[ch])
    zp = z_coder.get_compressed().astype("<u4").tobytes() if layout == 0 else b""
    yp = y_coder.get_compressed().astype("<u4").tobytes()
    runs = _runs([im.shape for im in images])
    body = b"".join(RUN.pack(n, *s) for n, s in runs) + zp + yp
    q = round(quality * 256)
    head = Header(layout, codec.hash, q, len(images), len(runs), len(zp) // 4, len(yp) // 4, 0)
    return (
        Header(**{**head.__dict__, "checksum": zlib.crc32(body, zlib.crc32(head.pack()[:-4]))}).pack() + body
    )


def test_files_of_the_older_layouts_still_decode(codec, digits):
    for images in (odd_images(), [digits[0]]):
        new = codec.compress(images, 2.5)
        old = [old_layout_file(codec, images, 2.5, layout) for layout in (0, 1)]
        assert [f[5] for f in (*old, new)] == [0, 1, 2] and len(new) < len(old[1]) < len(old[0])
        for f in old:
            for a, b in zip(codec.decompress(f), codec.decompress(new), strict=True):
                assert np.array_equal(a, b)


@pytest.mark.parametrize("quality", [1, 2.5, 4])
def test_refinement_never_raises_the_rate_distortion_cost_and_lowers_it_somewhere(codec, digits, quality):
    from aekit.apps.hyperrefine import real_cost, refine

    x = torch.from_numpy(digits[:12]).float().div(255)  # 28 x 28: a multiple of the tiny model's stride
    assert 28 % codec.model.config.stride == 0
    counts = (codec._y_counts, codec._z_counts)
    q = round(quality * 256) / 256
    plain = real_cost(codec.model, counts, x, (28, 28), *codec.model.analyse(x, q), q)
    refined = real_cost(codec.model, counts, x, (28, 28), *refine(codec.model, counts, x, (28, 28), q, 30), q)
    assert torch.all(refined <= plain) and refined.sum() < 0.995 * plain.sum()


def test_refined_files_decode_with_the_same_decoder_and_are_repeatable(hp_run, codec, digits):
    images = [*digits[:6], *odd_images()[:3]]
    data = codec.compress(images, 3, refine=15)
    assert data == codec.compress(images, 3, refine=15) and data != codec.compress(images, 3)
    segments = codec._segments([np.asarray(im).shape for im in images])
    ys, _ = codec.symbols(images, segments, 3, refine=15)
    want = codec._synthesise(ys, segments, 3)
    got = HyperCodec.load(hp_run).decompress(data)
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    enc = codec.encode(images, 3, refine=15)
    assert abs(len(enc.data) / enc.estimated_bytes - 1) < 0.01


def test_qualities_rise_in_rate_and_fall_in_distortion(codec, digits):
    sizes, errors = [], []
    for quality in range(1, codec.model.qualities + 1):
        data = codec.compress(digits[:100], quality)
        back = np.stack(codec.decompress(data))
        sizes.append(len(data))
        errors.append(float(((back.astype(float) - digits[:100]) ** 2).mean()))
    assert sizes == sorted(sizes) and sizes[-1] > 2 * sizes[0]
    assert errors == sorted(errors, reverse=True)


def test_targets_pick_a_quality_that_meets_them(codec, digits):
    x = digits[:64]

    def bpp(q):
        return 8 * codec.estimated_bytes(x, q) / x.size

    def psnr(q):
        back = np.stack(codec._reconstruct(list(x), q)).astype(float)
        return 10 * np.log10(255**2 / ((back - x) ** 2).mean())

    top = codec.model.qualities
    budget = (bpp(1) + bpp(top)) / 2
    q = codec.quality_for(x, target_bpp=budget)
    assert 1 < q < top and bpp(q) <= budget < bpp(q + 1 / 256)
    target = (psnr(1) + psnr(top)) / 2
    q = codec.quality_for(x, target_psnr=target)
    assert 1 < q < top and psnr(q) >= target > psnr(q - 1 / 256)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_fast_synthesis_is_the_models_g_s(levels):
    """The decoder's g_s (sub-pixel convolutions, channels last, GDN as a product) is the same
    function as the modules, up to float rounding."""
    torch.manual_seed(levels)
    config = HyperpriorConfig(
        input_shape=(3, 8, 8),
        channels=6,
        latent_channels=5,
        levels=levels,
        mean_scale=False,
        latent_padding=False,
    )
    m = HyperpriorModel(config).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
        y = torch.randint(-4, 5, (3, 5, 5, 7))
        _, ig = m.gains(2.5)
        want = m.g_s(y.float() * ig[:, None, None]).clamp(0, 1)
        got = m.synthesise(y, 2.5)
    assert got.shape == want.shape == (3, 3, 5 << levels, 7 << levels)
    assert torch.allclose(got, want, atol=1e-5) and 0 < float(want.mean()) < 1


def test_scale_index_is_integer_arithmetic_independent_of_batching(codec):
    z = torch.randint(-6, 7, (9, codec.model.config.hyper_channels, 3, 5))
    together = codec.model.scale_index(z)
    alone = torch.cat([codec.model.scale_index(z[i : i + 1]) for i in range(len(z))])
    assert torch.equal(together, alone)
    # the exact convolution equals an int64 computation (float64 of integers below 2^53 is exact)
    x = torch.randint(-(2**15), 2**15, (2, 5, 4, 6)).double()
    w = torch.randint(-(2**14), 2**14, (3, 5, 3, 3)).double()
    b = torch.randint(-(2**20), 2**20, (3,)).double()
    got = _int_conv(x, w, b).long()
    cols = F.unfold(x, 3, padding=1).long()  # (B, C*9, H*W), int64
    want = torch.einsum("ok,bkp->bop", w.long().reshape(3, -1), cols) + b.long()[:, None]
    assert torch.equal(got, want.reshape(2, 3, 4, 6))


def test_damaged_truncated_foreign_and_other_model_files_are_refused(codec, digits, tmp_path):
    data = codec.compress(digits[:20], 4)
    with pytest.raises(CodecError, match=r"^x\.aek: .* bytes but the header announces"):
        codec.decompress(data[:-3], name="x.aek")
    with pytest.raises(CodecError, match=r"^x\.aek: .*too short"):
        codec.decompress(data[:12], name="x.aek")
    flipped = bytearray(data)
    flipped[-7] ^= 0x10
    with pytest.raises(CodecError, match=r"^x\.aek: checksum mismatch"):
        codec.decompress(bytes(flipped), name="x.aek")
    with pytest.raises(CodecError, match=r"^x\.aek: not an aekit compressed file"):
        codec.decompress(b"GIF89a" + data[6:], name="x.aek")
    v1 = (__import__("pathlib").Path(__file__).parent / "golden" / "codec_v1.aek").read_bytes()
    with pytest.raises(CodecError, match=r"^v1\.aek: format version 1"):
        codec.decompress(v1, name="v1.aek")
    golden = load_codec(__import__("pathlib").Path(__file__).parent / "golden" / "codec_v1")
    with pytest.raises(CodecError, match=r"^y\.aek: a version-2 file"):
        golden.decompress(data, name="y.aek")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutation_is_a_clear_error_or_a_valid_decode(codec, data):
    blob = codec.compress(odd_images()[:3], 3)
    mutated = mutate(blob, data, PREFIX.size + 12)
    try:
        out = codec.decompress(mutated, name="m.aek")
    except CodecError as e:
        assert str(e).startswith("m.aek: ") and "\n" not in str(e)
    else:
        assert all(o.dtype == np.uint8 and o.ndim == 3 for o in out)


def test_cli_folder_of_images_per_image_and_one_file_and_pngs_back(hp_run, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    images = odd_images()
    for i, im in enumerate(images[:4]):
        Image.fromarray(im[0]).save(src / f"img{i}.png")
    Image.fromarray(np.zeros((6, 10, 3), np.uint8) + 90).save(src / "rgb.png")  # colour into a grey model
    assert main(["compress", str(hp_run), str(src), "-o", str(tmp_path / "one.aek"), "--quality", "3"]) == 2
    assert "3 channels" in capsys.readouterr().err
    (src / "rgb.png").unlink()
    argv = [
        "compress",
        str(hp_run),
        str(src),
        "-o",
        str(tmp_path / "one.aek"),
        "--quality",
        "3",
        "--refine",
        "5",
    ]
    assert main(argv) == 0
    assert "4 images at quality 3" in capsys.readouterr().out
    assert (
        main(["compress", str(hp_run), str(src), "-o", str(tmp_path / "each") + "/", "--target-bpp", "2"])
        == 0
    )
    assert "megapixels/s" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == [f"img{i}.aek" for i in range(4)]
    assert main(["decompress", str(hp_run), str(tmp_path / "one.aek"), "-o", str(tmp_path / "back")]) == 0
    back = sorted((tmp_path / "back").iterdir())
    assert [np.asarray(Image.open(p)).shape for p in back] == [im.shape[1:] for im in images[:4]]
    assert main(["decompress", str(hp_run), str(tmp_path / "each"), "-o", str(tmp_path / "back2")]) == 0
    assert sorted(p.name for p in (tmp_path / "back2").iterdir()) == [f"img{i}.png" for i in range(4)]
    bad = tmp_path / "each" / "img0.aek"
    bad.write_bytes(bad.read_bytes()[:-2])
    assert main(["decompress", str(hp_run), str(bad), "-o", str(tmp_path / "back3")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("aekit: error")]
    assert len(errors) == 1 and "img0.aek" in errors[0] and "truncated" in errors[0]


def test_grey_and_colour_images_of_one_size_share_a_file_in_a_colour_model(tmp_path):
    from aekit.config import resolve
    from aekit.models import build_model
    from aekit.training.checkpoint import save_weights, write_config

    torch.manual_seed(0)
    settings = {"name": "hyperprior", **dict(kv.split("=") for kv in TINY[:-1])}
    config = resolve([{"model": settings}], input_shape=(3, 16, 16))
    model = build_model("hyperprior", config.model_config)
    model.finalize()  # untrained, but with its integer tables: a colour codec
    write_config(tmp_path, config, {"shape": [3, 16, 16]})
    save_weights(tmp_path, model)
    codec = HyperCodec.load(tmp_path)
    rng = np.random.default_rng(1)
    images = [
        rng.integers(0, 256, s, dtype=np.uint8) for s in [(3, 9, 14), (1, 9, 14), (3, 9, 14), (1, 5, 3)]
    ]
    out = codec.decompress(codec.compress(images, 2))
    assert [o.shape for o in out] == [im.shape for im in images]
    assert all(np.array_equal(a, b) for a, b in zip(out, codec._reconstruct(images, 2), strict=True))


# -- the mean-and-scale variant ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ms_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ms"
    argv = ["train", "--model", "hyperprior", "--data", "mnist-5k", "--limit", "1200", "--epochs", "3"]
    argv += [a for kv in [*TINY, "mean_scale=true"] for a in ("--set", f"model.{kv}")]
    assert main([*argv, "--lr", "0.005", "--seed", "0", "--out", str(out), "--quiet"]) == 0
    return out


def test_mean_scale_round_trip_is_exact_repeatable_and_within_the_estimate(ms_run, digits):
    codec = HyperCodec.load(ms_run)
    assert codec.model.config.mean_scale and codec.model.h_s[-1].out_channels == 2 * 8
    images = [*odd_images(), *digits[:20]]
    for quality in (1, 2.5, 4):
        data = codec.compress(images, quality)
        out = codec.decompress(data)
        assert all(
            np.array_equal(a, b) for a, b in zip(out, codec._reconstruct(images, quality), strict=True)
        )
        again = HyperCodec.load(ms_run).decompress(data)  # a second decode, a fresh load: same images
        assert all(np.array_equal(a, b) for a, b in zip(out, again, strict=True))
        assert codec.compress(images, quality) == data
    psnr = 10 * np.log10(255**2 / np.mean((np.stack(out[5:]).astype(float) - digits[:20]) ** 2))
    assert psnr > 18
    for quality in (1, 4):
        enc = codec.encode(digits, quality)
        assert abs(len(enc.data) / enc.estimated_bytes - 1) < 0.01


def test_mean_scale_means_are_exact_on_their_grid_whatever_the_batching(ms_run):
    model = HyperCodec.load(ms_run).model
    z = torch.randint(-6, 7, (9, model.config.hyper_channels, 3, 5))
    k, mean = model.hyper(z)
    parts = [model.hyper(z[i : i + 1]) for i in range(len(z))]
    assert torch.equal(k, torch.cat([p[0] for p in parts])) and torch.equal(
        mean, torch.cat([p[1] for p in parts])
    )
    assert mean.dtype == torch.int64 and mean.abs().max() > 0  # it predicts means (a count of 1/256)
    symbols = torch.randint(-40, 41, mean.shape)
    values = model.values(symbols, mean)
    assert values.dtype == torch.float32 and torch.equal((values.double() - symbols) * 256, mean.double())
    # the float h_s's mean is what the integer one approximates
    with torch.no_grad():
        float_mean, _ = model._prior(z.float(), mean.shape[-2:])
    assert (float_mean - mean / 256).abs().max() < 0.05


def test_mean_scale_refinement_never_raises_the_cost(ms_run, digits):
    from aekit.apps.hyperrefine import real_cost, refine

    codec = HyperCodec.load(ms_run)
    x = torch.from_numpy(digits[:12]).float().div(255)
    counts = (codec._y_counts, codec._z_counts)
    plain = real_cost(codec.model, counts, x, (28, 28), *codec.model.analyse(x, 3), 3)
    refined = real_cost(codec.model, counts, x, (28, 28), *refine(codec.model, counts, x, (28, 28), 3, 30), 3)
    assert torch.all(refined <= plain) and refined.sum() < 0.995 * plain.sum()


def test_runs_without_mean_scale_are_the_scale_model_as_before(hp_run, codec, digits, tmp_path):
    """A config.json written before the field existed loads as the scale-only model and codes the
    same bytes; its training loss is the scale hyperprior's, draw for draw."""
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(hp_run, old)
    config = json.loads((old / "config.json").read_text())
    assert config["model"].pop("mean_scale") is False and config["model"].pop("latent_padding") is False
    (old / "config.json").write_text(json.dumps(config))
    loaded = HyperCodec.load(old)  # though new runs default to both options on
    assert HyperpriorConfig().mean_scale and HyperpriorConfig().latent_padding
    assert not loaded.model.config.mean_scale and not loaded.model.config.latent_padding
    assert loaded.model.h_s[-1].out_channels == 8
    assert loaded.compress(digits[:30], 2) == codec.compress(digits[:30], 2)
    m = codec.model
    x = torch.from_numpy(digits[:8]).float().div(255)
    torch.manual_seed(3)
    got = m.loss(Batch(x), "main")["loss"]
    torch.manual_seed(3)  # the scale hyperprior's loss as written before mean_scale existed
    q = torch.randint(0, m.qualities, (len(x),))
    lam = torch.tensor(m.config.lambdas)[q]
    y = m.g_a(x) * m.log_gain[q].exp()[:, :, None, None]
    z = m.h_a(y.abs())
    z_noisy = z + torch.rand_like(z) - 0.5
    y_noisy = y + torch.rand_like(y) - 0.5
    bits = m._y_bits(y_noisy, m.h_s(z_noisy)).flatten(1).sum(1) + m._z_bits(z_noisy).flatten(1).sum(1)
    x_hat = m.g_s(torch.round(y) * m.log_inv_gain[q].exp()[:, :, None, None])
    want = (bits / 784 + lam * 255.0**2 * (x_hat - x).square().flatten(1).mean(1)).mean()
    assert torch.allclose(got, want)


def untrained_run(path, context: float = 0.0, **options) -> HyperCodec:
    """A run directory of an untrained (random, finalised) tiny hyperprior with these options;
    ``context`` > 0: a checkerboard context's last layer drawn with that spread (it starts at zero)."""
    from aekit.config import resolve
    from aekit.models import build_model
    from aekit.training.checkpoint import save_weights, write_config

    torch.manual_seed(0)
    settings = {"name": "hyperprior", **dict(kv.split("=") for kv in TINY[:-1]), **options}
    config = resolve([{"model": settings}], input_shape=(1, 28, 28))
    model = build_model("hyperprior", config.model_config)
    if context:
        with torch.no_grad():
            model.context[2].weight.normal_(0, context)
            model.context[2].bias.normal_(0, context)
    model.finalize()
    write_config(path, config, {"shape": [1, 28, 28]})
    save_weights(path, model)
    return HyperCodec.load(path)


@pytest.mark.parametrize("mean_scale", [False, True])
def test_latent_padding_codes_the_images_own_latents_exactly(tmp_path, digits, mean_scale):
    codec = untrained_run(tmp_path, levels=2, hyper_levels=2, latent_padding=True, mean_scale=mean_scale)
    assert codec.model.config.stride == 4  # the image is padded to 4, y to 4 again before h_a
    assert codec._latent_sizes(28, 28) == ((7, 7), (2, 2)) and codec._latent_sizes(13, 7) == ((4, 2), (1, 1))
    x = torch.from_numpy(digits[:3]).float().div(255)
    y, z = codec.model.analyse(x, 2)
    assert y.shape == (3, 8, 7, 7) and z.shape == (3, 4, 2, 2)
    images = [*odd_images(), *digits[:10]]
    data = codec.compress(images, 2)
    out = codec.decompress(data)
    assert [o.shape for o in out] == [im.shape for im in images]
    assert all(np.array_equal(a, b) for a, b in zip(out, codec._reconstruct(images, 2), strict=True))
    again = HyperCodec.load(tmp_path).decompress(data)
    assert all(np.array_equal(a, b) for a, b in zip(out, again, strict=True))
    assert codec.compress(images, 2) == data
    enc = codec.encode(digits[:100], 3)
    assert abs(len(enc.data) / enc.estimated_bytes - 1) < 0.01
    loss = codec.model.train().loss(Batch(x))["loss"]  # trains: a finite loss whose gradient reaches h_s
    loss.backward()
    assert torch.isfinite(loss) and codec.model.h_s[-1].weight.grad.abs().sum() > 0


# -- the checkerboard context model ---------------------------------------------------------------

CB = {"levels": 2, "hyper_levels": 2, "mean_scale": True, "latent_padding": True, "checkerboard": True}


@pytest.fixture(scope="module")
def cb_codec(tmp_path_factory):
    return untrained_run(tmp_path_factory.mktemp("runs") / "cb", context=0.3, **CB)


def thin_images() -> list[np.ndarray]:
    """Odd sizes down to a 1x1 latent, 1xN and Nx1 latents (stride 4: 2x30 -> y 1x8)."""
    rng = np.random.default_rng(1)
    return [
        *odd_images(),
        *(rng.integers(0, 256, (1, h, w), dtype=np.uint8) for h, w in [(2, 30), (29, 3), (4, 4)]),
    ]


def test_checkerboard_round_trip_is_exact_repeatable_and_within_the_estimate(cb_codec, digits):
    codec = cb_codec
    assert codec._latent_sizes(2, 30)[0] == (1, 8) and codec._latent_sizes(29, 3)[0] == (8, 1)
    images = [*thin_images(), *digits[:20]]
    for quality in (1, 2.5, 4):
        data = codec.compress(images, quality)
        out = codec.decompress(data)
        assert [o.shape for o in out] == [im.shape for im in images]
        assert all(
            np.array_equal(a, b) for a, b in zip(out, codec._reconstruct(images, quality), strict=True)
        )
        again = HyperCodec.load(codec.run.path).decompress(data)  # a fresh load: the same images
        assert all(np.array_equal(a, b) for a, b in zip(out, again, strict=True))
        assert codec.compress(images, quality) == data
        for im in images[:8]:  # one image a file, the 1x1 latent included
            one = codec.decompress(codec.compress([im], quality))[0]
            assert one.shape == im.shape
    for quality in (1, 4):
        enc = codec.encode(digits, quality)
        assert abs(len(enc.data) / enc.estimated_bytes - 1) < 0.01
    sizes = [(len(e.data), e.estimated_bytes) for e in (codec.encode([d], 2) for d in digits[:40])]
    assert abs(sum(a for a, _ in sizes) / sum(b for _, b in sizes) - 1) < 0.01


def test_checkerboard_context_changes_only_the_non_anchors_exactly(cb_codec, digits):
    from aekit.models.hyperprior import anchors

    model = cb_codec.model
    assert anchors(3, 3).tolist() == [[False, True, False], [True, False, True], [False, True, False]]
    x = torch.from_numpy(digits[:9]).float().div(255)
    y, z = model.analyse(x, 3)
    k0, m0 = model.hyper(z, y.shape[-2:])  # the hyperprior alone
    k1, m1 = model.hyper(z, y.shape[-2:], y)  # with the anchors' context
    a = anchors(7, 7)
    assert torch.equal(m0[..., a], m1[..., a]) and torch.equal(k0[..., a], k1[..., a])
    assert (m0[..., ~a] != m1[..., ~a]).float().mean() > 0.5  # the context moves the other means
    # the non-anchors' symbols do not enter: only the anchors are context
    other = y.clone()
    other[..., ~a] += 7
    assert torch.equal(model.hyper(z, y.shape[-2:], other)[1], m1)
    # exact whatever the batching; the integer context is the float one on its grid
    parts = [model.hyper(z[i : i + 1], y.shape[-2:], y[i : i + 1]) for i in range(len(z))]
    assert torch.equal(m1, torch.cat([p[1] for p in parts])) and torch.equal(
        k1, torch.cat([p[0] for p in parts])
    )
    with torch.no_grad():
        float_mean, _ = model._entropy_params(z.float(), model.values(y, m0))
    assert (float_mean[..., ~a] - m1[..., ~a] / 256).abs().max() < 0.05
    # the decoder's symbols are round(y - mean) with the context's mean
    g, _ = model.gains(3)
    with torch.no_grad():
        gained = model.g_a(x) * g[:, None, None]
    assert torch.equal(y, model.quantise(gained, z, m1))


def test_checkerboard_damaged_files_are_refused_or_decode(cb_codec, digits):
    import struct
    import zlib

    data = cb_codec.compress(digits[:20], 3)
    with pytest.raises(CodecError, match=r"^c\.aek: .* bytes but the header announces"):
        cb_codec.decompress(data[:-2], name="c.aek")
    flipped = bytearray(data)
    flipped[-5] ^= 0x21
    with pytest.raises(CodecError, match=r"^c\.aek: checksum mismatch"):
        cb_codec.decompress(bytes(flipped), name="c.aek")
    # a damaged stream under a recomputed checksum: a clear error or some valid images, never a crash
    _, _, start = cb_codec.read_header(data)
    for at in (start, start + 3, len(data) - 30, len(data) - 1):
        bad = bytearray(data)
        bad[at] ^= 0x5A
        crc = zlib.crc32(bytes(bad[start:]), zlib.crc32(bytes(bad[: start - 4])))
        bad[start - 4 : start] = struct.pack("<I", crc)
        try:
            out = cb_codec.decompress(bytes(bad), name="c.aek")
        except CodecError as e:
            assert str(e).startswith("c.aek: ") and "\n" not in str(e)
        else:
            assert len(out) == 20 and all(o.shape == (1, 28, 28) and o.dtype == np.uint8 for o in out)


def test_checkerboard_is_off_for_saved_runs_and_needs_mean_scale(ms_run, digits, tmp_path):
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(ms_run, old)
    config = json.loads((old / "config.json").read_text())
    assert config["model"].pop("checkerboard") is False
    (old / "config.json").write_text(json.dumps(config))
    loaded = HyperCodec.load(old)
    assert not loaded.model.config.checkerboard and not hasattr(loaded.model, "context")
    assert loaded.compress(digits[:30], 2) == HyperCodec.load(ms_run).compress(digits[:30], 2)
    assert not HyperpriorConfig().checkerboard  # off unless asked for
    with pytest.raises(ConfigError, match="checkerboard needs mean_scale"):
        HyperpriorConfig(mean_scale=False, checkerboard=True)


def test_checkerboard_trains_and_refines(tmp_path, digits):
    from aekit.apps.hyperrefine import real_cost, refine

    out = tmp_path / "cb"
    argv = ["train", "--model", "hyperprior", "--data", "mnist-5k", "--limit", "160", "--epochs", "1"]
    argv += [a for kv in [*TINY[:-1], "checkerboard=true"] for a in ("--set", f"model.{kv}")]
    assert main([*argv, "--batch-size", "16", "--seed", "0", "--out", str(out), "--quiet"]) == 0
    codec = HyperCodec.load(out)
    assert codec.model.config.checkerboard and codec.model.context[2].weight.abs().sum() > 0  # it learned
    images = odd_images()
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            codec.decompress(codec.compress(images, 2)), codec._reconstruct(images, 2), strict=True
        )
    )
    x = torch.from_numpy(digits[:6]).float().div(255)
    counts = (codec._y_counts, codec._z_counts)
    plain = real_cost(codec.model, counts, x, (28, 28), *codec.model.analyse(x, 2), 2)
    refined = real_cost(codec.model, counts, x, (28, 28), *refine(codec.model, counts, x, (28, 28), 2, 10), 2)
    assert torch.all(refined <= plain)
