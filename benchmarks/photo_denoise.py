"""Photo denoising: aekit's fully convolutional denoiser against non-local means and BM3D.

Real photos only: the scikit-image photos split once in ``benchmarks/photos.py``. aekit trains
and non-local means is tuned on ``TRAIN`` only; every number reported is on ``TEST`` (three
grey and three colour photos never seen in training or tuning). Additive Gaussian noise of
sigma 15, 25 and 50 (of 255), clipped to [0, 1] as an 8-bit photo would be, the same noisy
images (seeded) for every method.

- aekit: one ``denoising`` model, ``arch=fcn`` (U-Net with additive skips, residual: it predicts
  the noise), blind over sigma 0-55, trained on random patches of the training photos (grey, and
  each colour channel as a grey image) and applied to each whole test photo, colour ones channel
  by channel, in fp32 and under bfloat16 autocast (``aekit denoise --precision bf16``). One model
  for every sigma, never told the sigma.
- non-local means (scikit-image, fast mode), told the true sigma; its filter strength and
  search distance tuned per sigma on crops of the training photos.
- BM3D (the ``bm3d`` package, an optional benchmark dependency under a non-commercial licence):
  told the true sigma; CBM3D (``bm3d_rgb``) on colour photos.
- the noisy input.

Also the training throughput in megapixels per second and as a share of this CPU's convolution
rate (the best 3x3 convolution over the model's widths, measured in the same run), for fp32,
channels-last, bfloat16 autocast and ``torch.compile``, and whether bfloat16 training holds the
PSNR of fp32 (an A/B run from the same start).

Run (the settings of docs/benchmarks/photo_denoise.md; ~100 CPU-minutes of training)::

    .venv/bin/python benchmarks/photo_denoise.py --channels 32,64,128,256 --blocks 1 --patch 64 \
        --batch 16 --epochs 30 --per-epoch 2400 --threads 1 --no-speed --out benchmarks/results
    .venv/bin/python benchmarks/photo_denoise.py ...same settings... --speed-only --ab-steps 200

The run is checkpointed every epoch in OUT/photo-denoiser-<settings>/: a stopped run resumes from
its last epoch, and a finished one is reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from photos import TEST, TRAIN, load_all  # benchmarks/photos.py
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import denoise_nl_means

from aekit.api import Run, load
from aekit.apps.images import apply_image
from aekit.config import TrainConfig, resolve
from aekit.data.batches import Batch
from aekit.data.patches import PatchDataset
from aekit.models import build_model
from aekit.training import checkpoint
from aekit.training.callbacks import Checkpointer, MetricsLog, ProgressBar
from aekit.training.trainer import Trainer

SIGMAS = (15, 25, 50)
BLIND = 55
PATCH = 48
BATCH = 8
SETTINGS = {
    "name": "denoising",
    "arch": "fcn",
    "channels": [16, 32, 64],
    "blocks": 1,
    "latent_dim": 64,
    "noise": "gaussian",
    "noise_level": 0.0,
    "noise_level_max": BLIND / 255,
    "skips": True,
    "residual": True,
}


def grey_planes(photos: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Every photo as (1, H, W) uint8 planes: grey ones as they are, colour ones one plane a channel."""
    planes = []
    for image in photos.values():
        planes += (
            [image[None]]
            if image.ndim == 2
            else [np.ascontiguousarray(image[..., c])[None] for c in range(3)]
        )
    return planes


def add_noise(image: np.ndarray, sigma: int, seed: int) -> np.ndarray:
    """float64 in [0, 1], the same noise for every method."""
    rng = np.random.default_rng(seed)
    return np.clip(image / 255.0 + rng.normal(0, sigma / 255, image.shape), 0, 1)


def scores(clean: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    x = clean / 255.0
    psnr = peak_signal_noise_ratio(x, out, data_range=1.0)
    ssim = structural_similarity(x, out, data_range=1.0, channel_axis=-1 if x.ndim == 3 else None)
    return float(psnr), float(ssim)


# --- the methods -----------------------------------------------------------------------------------


def aekit_denoise(model: torch.nn.Module, noisy: np.ndarray, bf16: bool = False) -> np.ndarray:
    """A whole photo through the model as ``aekit denoise`` runs it (:func:`aekit.apps.images.apply_image`):
    a colour photo channel by channel as grey images; ``bf16``: ``--precision bf16``."""
    x = torch.from_numpy(noisy.astype(np.float32))
    x = x[None, None] if noisy.ndim == 2 else x.permute(2, 0, 1)[None]  # (1, C, H, W)
    model = model.to(memory_format=torch.channels_last)  # as in training: faster on this CPU, same numbers
    run = SimpleNamespace(model=model, device="cpu")
    out = apply_image(run, model.reconstruct, x, precision="bf16" if bf16 else "fp32")[0].double()
    return out[0].numpy() if noisy.ndim == 2 else out.permute(1, 2, 0).numpy()


def nlm(noisy: np.ndarray, sigma: int, h_factor: float, distance: int) -> np.ndarray:
    s = sigma / 255
    return denoise_nl_means(
        noisy, h=h_factor * s, sigma=s, patch_size=5, patch_distance=distance, fast_mode=True,
        channel_axis=-1 if noisy.ndim == 3 else None,
    )  # fmt: skip


def bm3d_denoise(noisy: np.ndarray, sigma: int) -> np.ndarray:
    import bm3d

    if noisy.ndim == 3:
        return np.clip(bm3d.bm3d_rgb(noisy, sigma / 255), 0, 1)
    return np.clip(bm3d.bm3d(noisy, sigma / 255), 0, 1)


def tune_nlm(train: dict[str, np.ndarray], sigma: int) -> tuple[float, int]:
    """The (h factor, search distance) with the best mean PSNR on 192x192 crops of training photos."""
    crops = [im[:192, :192] for im in train.values()][::2]  # every other photo: grey and colour both
    best = (-1.0, 0.8, 6)
    for h_factor in (0.6, 0.8, 1.0):
        for distance in (4, 7):
            psnr = np.mean(
                [
                    scores(c, nlm(add_noise(c, sigma, i), sigma, h_factor, distance))[0]
                    for i, c in enumerate(crops)
                ]
            )
            best = max(best, (float(psnr), h_factor, distance))
    return best[1], best[2]


# --- training and its speed ------------------------------------------------------------------------


def conv_rate(seconds: float = 2.0) -> float:
    """This CPU's best fp32 rate on a 3x3 convolution, GFLOP/s, forward: the highest over the
    widths the model uses (32 to 256 channels in and out, on 64x64 maps, batch 8), each timed
    for ``seconds``. Wider convolutions reach a higher rate, so the best is the ceiling to compare to."""
    best = 0.0
    for channels in (32, 64, 128, 256):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        x = torch.randn(8, channels, 64, 64)
        flops = 2 * channels * channels * 9 * 8 * 64 * 64
        with torch.no_grad():
            conv(x)
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                conv(x)
                n += 1
        best = max(best, n * flops / (time.perf_counter() - start) / 1e9)
    return best


def model_flops_per_pixel(model: torch.nn.Module) -> float:
    """Forward FLOPs per input pixel of the convolutions (2 per multiply-add), from a 64x64 pass."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        total += 2 * out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.rand(1, 1, PATCH, PATCH))
    for h in handles:
        h.remove()
    return total / PATCH**2


def new_model() -> torch.nn.Module:
    config = resolve([{"model": SETTINGS}], input_shape=(1, PATCH, PATCH))
    torch.manual_seed(0)
    return build_model(config.model, config.model_config)


def step_rate(variant: str, steps: int = 4) -> float:
    """Training megapixels per second of one variant (fp32, channels_last, bf16, compile)."""
    model = new_model()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(BATCH, 1, PATCH, PATCH)
    if "channels_last" in variant:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    loss_fn = model.loss
    if "compile" in variant:
        loss_fn = torch.compile(model.loss)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in variant):
            loss = loss_fn(Batch(x))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return BATCH * PATCH**2 / np.median(times[1:]) / 1e6


def ab_bf16(train_planes: list[np.ndarray], val: list[np.ndarray], steps: int) -> dict[str, float]:
    """PSNR at sigma 25 on validation crops after ``steps`` steps in fp32 and in bf16 autocast."""
    out = {}
    for variant in ("fp32", "bf16"):
        model = new_model().to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), 1e-3)  # as the main run, with a linear warm-up
        warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / (0.15 * steps)))
        data = PatchDataset(train_planes, PATCH, generator=torch.Generator().manual_seed(1))
        torch.manual_seed(1)
        for i in range(steps):
            x = data.take(torch.arange(i * BATCH, (i + 1) * BATCH) % len(data))[0]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
                loss = model.loss(Batch(x.contiguous(memory_format=torch.channels_last)))["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            warmup.step()
        model.eval()
        out[variant] = float(
            np.mean([scores(v, aekit_denoise(model, add_noise(v, 25, k)))[0] for k, v in enumerate(val)])
        )
    return out


def train_or_reuse(run_dir: Path, planes: list[np.ndarray], epochs: int, per_epoch: int) -> tuple[Run, float]:
    """The finished run, or one trained on patches with aekit's trainer; and the seconds it took.

    Weights and trainer state are written after every epoch (aekit's Checkpointer), so a stopped
    run continues from its last epoch when the same command is given again.
    """
    done = run_dir / "done"
    if done.is_file():
        print(f"  reusing {run_dir}", flush=True)
        return load(run_dir), float(done.read_text())
    data = PatchDataset(planes, PATCH, name="skimage photos (TRAIN)", per_epoch=per_epoch)
    config = resolve([{"model": SETTINGS, "data": {"source": data.name}}], input_shape=data.shape)
    cfg = TrainConfig(
        epochs=epochs, batch_size=BATCH, lr=1e-3, schedule="onecycle", val_fraction=0, device="cpu"
    )
    config = dataclasses.replace(config, train=cfg)
    torch.manual_seed(0)
    model = build_model(config.model, config.model_config).to(memory_format=torch.channels_last)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_config(run_dir, config, data.describe())
    trainer = Trainer(model, cfg, [ProgressBar(True), MetricsLog(run_dir), Checkpointer(run_dir)])
    if (run_dir / checkpoint.CHECKPOINT).is_file():
        trainer.load_state_dict(checkpoint.load_checkpoint(run_dir))
        print(f"  resuming {run_dir} after epoch {trainer.epoch}", flush=True)
    trainer.fit(data)
    seconds = sum(r["seconds"] for r in trainer.history)  # every epoch's time, resumed ones included
    done.write_text(f"{seconds}")
    return Run(config, data.describe(), model.eval(), run_dir), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--per-epoch", type=int, default=400, help="patches per epoch")
    parser.add_argument("--ab-steps", type=int, default=60, help="steps of the fp32/bf16 A/B run (0: skip)")
    parser.add_argument("--no-speed", action="store_true", help="skip the throughput section")
    parser.add_argument("--speed-only", action="store_true", help="only the throughput section")
    parser.add_argument(
        "--crop", type=int, default=0, help="score the central NxN of each TEST photo (0: whole)"
    )
    parser.add_argument("--channels", default="16,32,64", help="widths at each scale, full resolution first")
    parser.add_argument("--blocks", type=int, default=1, help="residual blocks per scale")
    parser.add_argument("--patch", type=int, default=PATCH, help="training patch side")
    parser.add_argument("--batch", type=int, default=BATCH, help="patches per step")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    configure(args)
    train, test = load_all(TRAIN), load_all(TEST)
    if args.crop:  # BM3D takes minutes per photo on a busy CPU: the centre of each photo, said in the output
        test = {name: central(image, args.crop) for name, image in test.items()}
        print(f"TEST photos cropped to their central {args.crop}x{args.crop}")
    planes = grey_planes(train)
    print(f"TRAIN: {', '.join(TRAIN)} ({len(planes)} grey planes); TEST (held out): {', '.join(TEST)}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"model channels {SETTINGS['channels']}, {SETTINGS['blocks']} block(s) per scale, "
        f"{PATCH}x{PATCH} patches, batch {BATCH}"
    )

    if not args.no_speed:
        speed(planes, train, args.ab_steps)
    if not args.speed_only:
        train_and_score(args, train, test, planes)


def configure(args) -> None:
    """The model and patch settings from the command line (module-wide: every section uses them)."""
    global PATCH, BATCH
    PATCH, BATCH = args.patch, args.batch
    channels = [int(c) for c in args.channels.split(",")]
    SETTINGS.update(channels=channels, blocks=args.blocks, latent_dim=channels[-1])
    if args.threads:
        torch.set_num_threads(args.threads)


def central(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def speed(planes: list[np.ndarray], train: dict[str, np.ndarray], ab_steps: int) -> None:
    """The throughput table and the bf16 A/B."""
    print(f"\n## Training throughput (batch {BATCH} of {PATCH}x{PATCH} patches, forward + backward + Adam)")
    gflops = conv_rate()
    per_pixel = 3 * model_flops_per_pixel(new_model())  # backward ~ 2x forward
    print(f"this CPU's best 3x3 convolution rate (fp32, forward, same run): {gflops:.1f} GFLOP/s")
    print(f"model: {per_pixel / 1e6:.2f} MFLOP per training pixel (forward + backward)")
    print("| variant | MP/s | share of the conv rate |\n|---|---:|---:|")
    rates = {}
    for variant in ("fp32", "channels_last", "bf16", "channels_last+bf16", "channels_last+compile"):
        try:
            rates[variant] = step_rate(variant)
        except Exception as e:  # torch.compile needs a C++ compiler: say so, do not stop the benchmark
            print(f"| {variant} | failed: {type(e).__name__} | |")
            continue
        share = rates[variant] * 1e6 * per_pixel / (gflops * 1e9)
        print(f"| {variant} | {rates[variant]:.4f} | {share:.0%} |", flush=True)
    if ab_steps:
        val = [train["moon"][:128, :128], train["brick"][:128, :128]]
        ab = ab_bf16(planes, val, ab_steps)
        print(
            f"\nbf16 A/B, {ab_steps} steps each from the same start, PSNR at sigma 25 on two training "
            f"crops: fp32 {ab['fp32']:.2f} dB, bf16 {ab['bf16']:.2f} dB"
        )


def train_and_score(args, train: dict[str, np.ndarray], test: dict[str, np.ndarray], planes) -> None:
    """Train (or reuse) aekit's denoiser, tune non-local means on TRAIN, score everything on TEST."""

    tag = (
        f"c{args.channels.replace(',', '-')}-b{args.blocks}-x{args.patch}-n{args.batch}"
        f"-e{args.epochs}-p{args.per_epoch}"
    )
    run, seconds = train_or_reuse(
        Path(args.out) / f"photo-denoiser-{tag}", planes, args.epochs, args.per_epoch
    )
    pixels = args.epochs * args.per_epoch * PATCH**2
    if np.isfinite(seconds):
        print(
            f"\ntrained aekit's denoiser: {args.epochs} epochs x {args.per_epoch} patches in {seconds:.0f} s "
            f"({pixels / seconds / 1e6:.4f} MP/s through aekit's trainer)"
        )
    model = run.model.eval()

    print("\n## Denoising the held-out TEST photos (PSNR dB / SSIM, mean over the 6 photos)")
    nlm_params = {s: tune_nlm(train, s) for s in SIGMAS}
    print(
        "non-local means tuned on TRAIN: "
        + ", ".join(f"sigma {s}: h={h}*sigma, distance {d}" for s, (h, d) in nlm_params.items())
    )
    methods = {
        "noisy input": lambda noisy, s: noisy,
        "aekit fcn (blind 0-55)": lambda noisy, s: aekit_denoise(model, noisy),
        "aekit fcn, bf16 autocast": lambda noisy, s: aekit_denoise(model, noisy, bf16=True),
        "non-local means": lambda noisy, s: nlm(noisy, s, *nlm_params[s]),
        "BM3D": bm3d_denoise,
    }
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    seconds_per: dict[str, float] = dict.fromkeys(methods, 0.0)
    total_pixels = 0
    per_photo = []
    for sigma in SIGMAS:
        for k, (name, clean) in enumerate(test.items()):
            noisy = add_noise(clean, sigma, seed=1000 * sigma + k)
            total_pixels += clean.shape[0] * clean.shape[1]
            for method, fn in methods.items():
                start = time.perf_counter()
                out = fn(noisy, sigma)
                seconds_per[method] += time.perf_counter() - start
                psnr, ssim = scores(clean, out)
                results.setdefault((method, sigma), []).append((psnr, ssim))
                per_photo.append((sigma, name, method, psnr))
            print(
                f"  sigma {sigma} {name}: "
                + ", ".join(f"{m} {p:.2f}" for s, n, m, p in per_photo if s == sigma and n == name),
                flush=True,
            )
    print("\n| method | " + " | ".join(f"sigma {s}" for s in SIGMAS) + " | s per 512x512 |")
    print("|---|" + "---:|" * (len(SIGMAS) + 1))
    for method in methods:
        cells = []
        for s in SIGMAS:
            psnr, ssim = np.mean(results[(method, s)], axis=0)
            cells.append(f"{psnr:.2f} / {ssim:.3f}")
        per512 = seconds_per[method] / total_pixels * 512**2
        print(f"| {method} | " + " | ".join(cells) + f" | {per512:.3f} |")
    for name in ("aekit fcn (blind 0-55)", "aekit fcn, bf16 autocast"):
        ratio = seconds_per["BM3D"] / max(seconds_per[name], 1e-9)
        print(f"\n{name} is {ratio:.1f}x faster than BM3D per image (same run, same images)", end="")
    print(f"\n(torch threads: {torch.get_num_threads()}; BM3D runs single-threaded)")


if __name__ == "__main__":
    main()
