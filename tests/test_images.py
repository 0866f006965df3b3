"""Real images: fully convolutional models on any size, tiles, patches, image folders, anomaly maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from aekit.cli import main
from aekit.config import TrainConfig, resolve
from aekit.data.dataset import ArrayDataset, Scaling
from aekit.data.files import read_path
from aekit.data.images import convert_channels, read_images
from aekit.data.patches import PatchDataset, apply_whole
from aekit.errors import ConfigError, DataError
from aekit.evaluation.metrics import psnr
from aekit.models import build_model
from aekit.models.fcn import geometry
from aekit.training.trainer import Trainer

FCN = {"arch": "fcn", "channels": [8, 16, 16], "latent_dim": 8, "blocks": 1}


def fcn_model(name: str = "conv", channels: int = 1, **options):
    torch.manual_seed(0)
    config = resolve([{"model": {"name": name, **FCN, **options}}], input_shape=(channels, 32, 32))
    return build_model(config.model, config.model_config).eval()


def smooth_image(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """(h, w, c) uint8 with structure and some texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = 128 + 90 * np.sin(x / 6.0 + seed)[..., None] * np.cos(y / 8.0)[..., None]
    return np.clip(a + rng.normal(0, 6, (h, w, c)), 0, 255).astype(np.uint8)


# --- fully convolutional models ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["conv", "dense", "denoising", "vae"])
def test_same_weights_run_on_three_sizes_odd_ones_included(name):
    model = fcn_model(name, channels=3)
    stride, _ = geometry(model)
    with torch.no_grad():
        for h, w in ((32, 32), (37, 53), (61, 29)):
            x = torch.rand(2, 3, h, w)
            out = apply_whole(model.reconstruct, x, stride)
            assert out.shape == x.shape and torch.isfinite(out).all()
            assert float(out.min()) >= 0 and float(out.max()) <= 1
        x = torch.rand(1, 3, 48, 64)  # a multiple of the stride: padding changes nothing
        assert torch.allclose(apply_whole(model.reconstruct, x, stride), model.reconstruct(x))
        assert model.encode(x).shape == (1, 8, 12, 16)  # a spatial code (B, latent_dim, H/4, W/4)


def test_tiled_output_equals_the_whole_image():
    model = fcn_model("denoising")
    stride, margin = geometry(model)
    x = torch.rand(1, 1, 150, 123)
    with torch.no_grad():
        whole = apply_whole(model.reconstruct, x, stride)
        for tile in (40, 64):
            tiled = apply_whole(model.reconstruct, x, stride, tile=tile, margin=margin)
            assert tiled.shape == x.shape
            assert float((tiled - whole).abs().max()) < 1e-4, tile


@pytest.mark.parametrize("h,w", [(1, 1), (5, 9), (33, 17)])
def test_apply_whole_restores_the_exact_size(h, w):
    x = torch.rand(2, 3, h, w)
    out = apply_whole(lambda t: t * 2, x, 8, tile=4, margin=8)
    assert out.shape == x.shape and torch.equal(out, x * 2)


def test_models_without_a_fully_convolutional_form_say_so():
    with pytest.raises(ConfigError, match="no fully convolutional form"):
        build_model("contractive", arch="fcn", input_shape=(1, 32, 32))


def test_fcn_vae_samples_a_spatial_code_and_has_a_finite_elbo():
    from aekit.data.batches import Batch

    model = fcn_model("vae")
    assert model.sample(3).shape == (3, 1, 32, 32)
    terms = model.loss(Batch(torch.rand(2, 1, 32, 32)))
    assert torch.isfinite(terms["loss"]) and float(terms["kl"]) > 0


# --- patches -----------------------------------------------------------------------------------------


def test_patch_sampling_covers_the_image_and_is_seeded():
    image = np.arange(20 * 30, dtype=np.int64).reshape(1, 20, 30).astype(np.uint8)  # values mark positions
    marks = torch.arange(20 * 30).reshape(1, 20, 30)

    def draw(seed):
        data = PatchDataset(
            [marks], 8, augment=False, per_epoch=4000, generator=torch.Generator().manual_seed(seed)
        )
        return data.raw(torch.arange(len(data)))  # 4000 draws: each corner is missed with p < 1e-5

    a, b, c = draw(1), draw(1), draw(2)
    assert torch.equal(a, b) and not torch.equal(a, c)  # seeded
    assert set(a.flatten().tolist()) == set(range(600))  # every pixel, corners included, gets drawn
    data = PatchDataset([image], 8, generator=torch.Generator().manual_seed(0))
    assert data.take(torch.arange(4))[0].shape == (4, 1, 8, 8)
    fixed = PatchDataset([image], 8, fixed=True)
    assert torch.equal(fixed.raw(torch.arange(3)), fixed.raw(torch.arange(3)))  # validation: same patches


def test_patch_split_holds_out_whole_images():
    images = [np.full((1, 16, 16), i, np.uint8) for i in range(10)]
    train, val = PatchDataset(images, 8).split(0.2, seed=0)
    seen = {int(p[0, 0, 0]) for p in train.raw(torch.arange(len(train)))}
    held = {int(p[0, 0, 0]) for p in val.raw(torch.arange(len(val)))}
    assert len(held) == 2 and not seen & held


def test_a_denoiser_trained_on_patches_of_one_photo_denoises_another():
    import skimage.data

    train = skimage.data.camera()[None]  # (1, 512, 512)
    test = torch.from_numpy(skimage.data.coins()[100:196, 100:196].astype(np.float32) / 255)[None, None]
    config = resolve(
        [{"model": {"name": "denoising", **FCN, "noise_level": 0.05, "noise_level_max": 0.15}}],
        input_shape=(1, 32, 32),
    )
    torch.manual_seed(0)
    model = build_model(config.model, config.model_config)
    data = PatchDataset([train], 32, per_epoch=16 * 25, generator=torch.Generator().manual_seed(0))
    Trainer(model, TrainConfig(epochs=8, batch_size=16, lr=3e-3, schedule="onecycle", device="cpu")).fit(data)
    noisy = (test + 0.1 * torch.randn(test.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    with torch.no_grad():
        denoised = apply_whole(model.eval().reconstruct, noisy, geometry(model)[0])
    assert float(psnr(test, denoised)) > float(psnr(test, noisy)) + 2.0  # 200 steps: a clear gain


# --- image folders -----------------------------------------------------------------------------------


def make_folder(folder):
    folder.mkdir()
    Image.fromarray(smooth_image(61, 83, 3)).save(folder / "a.png")
    Image.fromarray(smooth_image(50, 47, 3)).save(folder / "b.jpg", quality=95)
    Image.fromarray(smooth_image(40, 70, 4), "RGBA").save(folder / "c.png")
    Image.fromarray(smooth_image(45, 45, 3)).save(folder / "d.webp")
    Image.fromarray(smooth_image(33, 52, 3)).save(folder / "e.tiff")
    Image.fromarray(smooth_image(64, 40, 1)[..., 0]).save(folder / "g.png")
    Image.fromarray(smooth_image(30, 20, 1)[..., 0].astype(np.uint16) * 257).save(folder / "h16.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_mixed_size_folder_loads_each_image_at_its_size(tmp_path):
    images = read_images(make_folder(tmp_path / "photos"))
    assert images.ids == ("a.png", "b.jpg", "c.png", "d.webp", "e.tiff", "g.png", "h16.png")
    assert images.sizes == [(61, 83), (50, 47), (40, 70), (45, 45), (33, 52), (64, 40), (30, 20)]
    assert images.channels == 3  # five colour, two grey: the majority
    assert any("converted 2 of 7" in n for n in images.notes)
    assert any("skipped 1 non-image" in n for n in images.notes)
    h16 = images.images[-1]
    assert h16.dtype == np.uint8 and (h16[0] == h16[1]).all()  # 16-bit grey: 8 bits, repeated over RGB
    assert read_images(tmp_path / "photos", channels=1).channels == 1
    with pytest.raises(
        DataError, match="--patch N"
    ):  # one array needs one size: the error names the ways out
        images.to_dataset()
    assert images.center_cropped(20, 20).shape == (3, 20, 20)
    assert images.resized(16, 24).shape == (3, 16, 24)


def test_exif_orientation_is_honoured(tmp_path):
    a = smooth_image(10, 30, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    Image.fromarray(a).save(tmp_path / "r.jpg", exif=exif, quality=95)
    images = read_images(tmp_path)
    assert images.sizes == [(30, 10)]


def test_a_corrupt_file_is_named_or_skipped_and_counted(tmp_path):
    Image.fromarray(smooth_image(8, 8, 1)[..., 0]).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png"):
        read_images(tmp_path)
    images = read_images(tmp_path, skip_bad=True)
    assert images.ids == ("ok.png",) and any("skipped 1 unreadable" in n for n in images.notes)


def test_issue_16_item_14_grey_and_rgb_mixed_are_converted_and_said(tmp_path, capsys):
    for i in range(29):
        Image.fromarray(np.full((28, 28), 10 * (i % 20), np.uint8)).save(tmp_path / f"g{i:02d}.png")
    Image.new("RGB", (28, 28), (200, 100, 0)).save(tmp_path / "rgb.png")
    (tmp_path / "readme.txt").write_text("x")
    data = read_path(tmp_path)
    err = capsys.readouterr().err
    assert data.shape == (1, 28, 28)  # the majority: grey
    assert "converted 1 of 30 images from colour to grey" in err
    assert "skipped 1 non-image file(s)" in err
    assert int(data.x[-1, 0, 0, 0]) == round(200 * 0.299 + 100 * 0.587)  # luma, as Pillow computes it
    rgb = ArrayDataset(np.zeros((2, 3, 4, 4), np.uint8), name="rgb.npy", scaling=Scaling.uint8())
    assert convert_channels(rgb, 1).shape == (1, 4, 4)
    assert "converted all 2 images of rgb.npy from colour to grey" in capsys.readouterr().err


# --- the commands ------------------------------------------------------------------------------------


def test_cli_trains_on_patches_and_keeps_names_and_sizes(tmp_path, capsys):
    folder = make_folder(tmp_path / "photos")
    run = tmp_path / "run"
    base = ["--set", "model.arch=fcn", "--set", "model.channels=8,16", "--set", "model.latent_dim=8"]
    args = ["--data", str(folder), "--patch", "16", "--model", "denoising", "--noise", "gaussian=0,0.2"]
    assert (
        main(["train", *args, "--epochs", "1", "--batch-size", "8", "--out", str(run), "--quiet", *base]) == 0
    )
    assert json.loads((run / "config.json").read_text())["data"]["patch"] == 16
    out = tmp_path / "den"
    assert (
        main(
            ["denoise", str(run), str(folder), "-o", str(out), "--tile", "48", "--add-noise", "gaussian=0.1"]
        )
        == 0
    )
    for name, size in zip(read_images(folder).ids, read_images(folder).sizes, strict=True):
        with Image.open(out / name) as im:
            assert im.size == (size[1], size[0])
    assert "PSNR" in capsys.readouterr().out


def test_detect_score_writes_anomaly_maps(tmp_path):
    folder = make_folder(tmp_path / "photos")
    det = tmp_path / "det"
    assert main(["detect", "fit", "--data", str(folder), "--patch", "16", "--epochs", "1", "--out", str(det),
                 "--quiet"]) == 0  # fmt: skip
    odd = tmp_path / "odd"
    odd.mkdir()
    Image.fromarray(smooth_image(40, 40, 3)).save(odd / "normal.png")
    wild = smooth_image(40, 40, 3)
    wild[10:20, 10:20] = np.random.default_rng(0).integers(0, 256, (10, 10, 3))  # a noisy square
    Image.fromarray(wild).save(odd / "wild.png")
    scores, maps = tmp_path / "s.csv", tmp_path / "maps"
    assert (
        main(["detect", "score", str(det), str(odd), "-o", str(scores), "--maps", str(maps), "--quiet"]) == 0
    )
    rows = scores.read_text().splitlines()[1:]
    by_name = {r.split(",")[1]: float(r.split(",")[3]) for r in rows}
    assert by_name["wild.png"] > by_name["normal.png"]
    with Image.open(maps / "wild.map.png") as im:
        assert im.size == (80, 40)  # the image beside its map


def test_a_grey_model_takes_colour_images_channel_by_channel():
    from types import SimpleNamespace

    from aekit.apps.images import apply_image

    model = fcn_model("denoising")
    run = SimpleNamespace(model=model, device=torch.device("cpu"))
    x = torch.rand(1, 3, 21, 18)
    out = apply_image(run, model.reconstruct, x)
    assert out.shape == x.shape
    alone = apply_image(run, model.reconstruct, x[:, 1:2])
    assert torch.allclose(out[:, 1:2], alone, atol=1e-6)


def test_a_patch_that_is_not_a_multiple_of_the_stride_is_refused_before_training(tmp_path):
    folder = make_folder(tmp_path / "photos")
    args = [
        "train",
        "--data",
        str(folder),
        "--patch",
        "18",
        "--set",
        "model.arch=fcn",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main([*args, "--set", "model.channels=8,16,16"]) == 2  # stride 4
    assert not (tmp_path / "r").exists()


def test_an_fcn_vae_trains_on_patches_and_gets_its_report(tmp_path):
    folder = make_folder(tmp_path / "photos")
    run = tmp_path / "vae"
    base = ["--set", "model.arch=fcn", "--set", "model.channels=8,16", "--set", "model.latent_dim=4"]
    args = ["train", "--data", str(folder), "--patch", "16", "--model", "vae", "--epochs", "1", "--quiet"]
    assert main([*args, "--out", str(run), *base]) == 0
    assert (run / "report.html").stat().st_size > 1000 and (run / "samples.png").is_file()


@pytest.fixture(scope="module")
def fcn_run(tmp_path_factory):
    """A tiny fully convolutional colour run, trained on patches of the mixed-size folder, and that folder."""
    tmp_path = tmp_path_factory.mktemp("fcn")
    folder = make_folder(tmp_path / "photos")
    run = tmp_path / "run"
    options = ["--set", "model.arch=fcn", "--set", "model.channels=8,16,16", "--set", "model.latent_dim=4"]
    assert main(["train", "--data", str(folder), "--patch", "16", "--model", "conv", "--epochs", "1",
                 "--batch-size", "8", "--out", str(run), "--quiet", *options]) == 0  # fmt: skip
    return run, folder


def test_embed_writes_each_images_spatial_code_and_pools_them(fcn_run, tmp_path, capsys):
    import aekit
    from aekit.data.patches import pad_to_multiple

    run, folder = fcn_run
    images = read_images(folder)
    codes = tmp_path / "codes.npz"
    assert main(["embed", str(run), str(folder), "-o", str(codes)]) == 0
    with np.load(codes) as f:
        assert list(f["ids"]) == list(images.ids)
        shapes = [f[f"codes_{i}"].shape for i in range(len(images))]
        first = f["codes_0"]
    assert shapes == [(4, -(-h // 4), -(-w // 4)) for h, w in images.sizes]  # stride 4: ceil(H/4) x ceil(W/4)
    from aekit.apps.images import code_shapes

    assert code_shapes(aekit.load(run), images) == shapes  # what embed checks the output against
    model = aekit.load(run).model.eval()
    with torch.no_grad():
        want = model.encode(pad_to_multiple(images.image(0), 4))[0].numpy()
    np.testing.assert_allclose(first, want, atol=1e-6)  # the code of the padded image, nothing else
    capsys.readouterr()
    assert main(["embed", str(run), str(folder), "-o", str(tmp_path / "codes.npy")]) != 0
    err = capsys.readouterr().err
    assert "different sizes" in err and "--pool mean" in err and "\nimages:" not in err  # before encoding
    assert main(["embed", str(run), str(folder), "-o", str(tmp_path / "codes.csv")]) != 0
    assert "spatial, (4, " in capsys.readouterr().err
    assert not (tmp_path / "codes.npy").exists() and not (tmp_path / "codes.csv").exists()
    table = tmp_path / "pooled.csv"
    assert main(["embed", str(run), str(folder), "-o", str(table), "--pool", "mean"]) == 0
    rows = table.read_text().splitlines()
    assert rows[0] == "id,z0,z1,z2,z3" and len(rows) == 1 + len(images)
    assert np.allclose([float(v) for v in rows[1].split(",")[1:]], first.mean(axis=(1, 2)), atol=1e-5)


def test_onnx_export_of_an_fcn_run_takes_any_multiple_of_the_stride(fcn_run, tmp_path):
    import aekit
    from aekit.apps.export import export_onnx

    run = aekit.load(fcn_run[0])
    for part in ("both", "decoder"):
        check = export_onnx(run, tmp_path / f"{part}.onnx", part=part)
        assert check["max_abs_diff"] <= 1e-5 and check["batches_checked"] == [1, 4, 13]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "both.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, 3, 36, 52), dtype=np.float32)  # a size never checked above
    assert session.run(None, {"input": x})[0].shape == (2, 3, 36, 52)


def test_patches_train_a_fully_convolutional_model_unless_an_arch_is_chosen(tmp_path, capsys):
    from aekit.training.run import patches_make_fcn

    folder = make_folder(tmp_path / "photos")
    run = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--patch", "16", "--model", "denoising", "--epochs", "1",
                 "--batch-size", "8", "--out", str(run), "--quiet"]) == 0  # fmt: skip
    assert json.loads((run / "config.json").read_text())["model"]["arch"] == "fcn"
    assert "--patch: training a fully convolutional model" in capsys.readouterr().out
    chosen = [{"model": {"name": "denoising", "arch": "conv"}, "data": {"patch": 16}}]
    assert not patches_make_fcn(chosen)  # an arch the user chose stays
    assert not patches_make_fcn([{"model": {"name": "sparse"}, "data": {"patch": 16}}])  # no fcn form
    assert not patches_make_fcn([{"model": {"name": "denoising"}}])  # no patches


def test_bf16_precision_stays_close_to_fp32_and_unknown_ones_are_refused(fcn_run, tmp_path):
    import aekit
    from aekit.apps.images import apply_image

    run = aekit.load(fcn_run[0])
    x = torch.from_numpy(smooth_image(37, 45, 3).transpose(2, 0, 1)[None] / 255.0).float()
    exact = apply_image(run, run.model.reconstruct, x)
    fast = apply_image(run, run.model.reconstruct, x, precision="bf16")
    assert fast.dtype == torch.float32 and fast.shape == exact.shape == x.shape
    assert 0 < float((fast - exact).abs().max()) < 0.05  # bf16 really ran, and stayed close
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        apply_image(run, run.model.reconstruct, x, precision="fp16")
