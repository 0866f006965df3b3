"""Rate-distortion: aekit's hyperprior codec and today's ``codec`` beside JPEG, WebP, AVIF and JPEG XL.

Two parts, each measured in one run on the same images:

1. **Fashion-MNIST test set** (models trained on the training set). aekit's ``hyperprior`` (one
   variable-rate model, qualities 1..8) codes all test images into one ``.aek`` v2 file per quality;
   today's ``codec`` (v1) one model per lambda. Every rate comes from real file sizes, counted two
   ways for the baselines (Pillow): **per image** (every image its own file, each paying its
   container's header) and **mosaic** (all images tiled into one picture, one file). aekit's
   per-image counting codes a subset one file per image.
2. **Photos**: the hyperprior trained only on patches of the TRAIN photos of ``photos.py``; the six
   held-out TEST photos (3 colour, 3 grey; any size) coded one file per photo by every method.

Reported: bits per pixel, PSNR (from the pooled MSE), SSIM, MS-SSIM, BD-rate (Bjontegaard, PSNR;
piecewise-cubic (PCHIP) interpolation of log-rate over the PSNR range both curves cover; negative
is fewer bits), encode/decode megapixels per second, and the file/estimate ratio of aekit's files.

Run: ``python benchmarks/rate_distortion.py`` (trains and caches models in benchmarks/results the
first time, see rd_models.py); ``--part fashion`` or ``--part photos`` for one part.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import photos  # benchmarks/photos.py
import rd_models  # benchmarks/rd_models.py
import torch
import torch.nn.functional as F
from cached_run import train_or_reuse  # benchmarks/cached_run.py
from PIL import Image, features

from aekit.apps.codec import Codec
from aekit.apps.hypercodec import HyperCodec
from aekit.data.sources import load_dataset
from aekit.evaluation.metrics import ssim

try:
    import pillow_jxl  # noqa: F401  (registers JPEG XL with Pillow; the bench extra)

    HAVE_JXL = True
except ImportError:
    HAVE_JXL = False

BASELINES = {  # name: (Pillow format, options per quality setting)
    "JPEG": ("JPEG", [{"quality": q} for q in (5, 10, 20, 30, 50, 70, 85, 95)]),
    "WebP": ("WEBP", [{"quality": q, "method": 6} for q in (0, 5, 20, 40, 60, 80, 90, 100)]),
    "AVIF": ("AVIF", [{"quality": q, "speed": 6} for q in (10, 25, 40, 55, 70, 85, 95)]),
    "JPEG XL": ("JXL", [{"quality": q, "effort": 7} for q in (10, 30, 50, 70, 85, 95)]),
}


# -- quality measures --------------------------------------------------------------------------


def psnr(clean: list[np.ndarray], decoded: list[np.ndarray]) -> float:
    """PSNR (dB) of the MSE pooled over every pixel of every image."""
    err = sum(float(((a.astype(np.float64) - b) ** 2).sum()) for a, b in zip(clean, decoded, strict=True))
    return float(10 * np.log10(255**2 / max(err / sum(a.size for a in clean), 1e-12)))


def _gauss(size: int, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    return (g / g.sum()).double()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The valid separable Gaussian filter of (N, 1, H, W): two 1-D passes."""
    return F.conv2d(F.conv2d(x, g[None, None, None, :]), g[None, None, :, None])


def ms_ssim(a: np.ndarray, b: np.ndarray, scales: int, win: int) -> float:
    """MS-SSIM (Wang et al. 2003) of uint8 images (C, H, W), channels averaged: ``scales`` scales with
    the standard weights renormalised, a Gaussian window of ``win`` (sigma 1.5)."""
    weights = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333][:scales], dtype=torch.float64)
    weights /= weights.sum()
    x = torch.from_numpy(a).double()[:, None] / 255
    y = torch.from_numpy(b).double()[:, None] / 255
    g = _gauss(win)
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for s in range(scales):
        mx, my = _blur(x, g), _blur(y, g)
        sxx = _blur(x * x, g) - mx**2
        syy = _blur(y * y, g) - my**2
        sxy = _blur(x * y, g) - mx * my
        cs = ((2 * sxy + c2) / (sxx + syy + c2)).mean((1, 2, 3))
        if s == scales - 1:
            values.append((((2 * mx * my + c1) / (mx**2 + my**2 + c1)).mean((1, 2, 3)) * cs).clamp_min(0))
        else:
            values.append(cs.clamp_min(0))
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    v = torch.stack(values)  # (scales, C)
    return float(torch.prod(v ** weights[:, None], 0).mean())


def measures(clean: list[np.ndarray], decoded: list[np.ndarray], small: bool) -> dict[str, float]:
    """PSNR, SSIM and MS-SSIM (3 scales, 7-pixel window for 28x28 images; 5 scales, 11 for photos)."""
    scales, win = (3, 7) if small else (5, 11)
    if small:  # same-size images: all at once
        a = torch.from_numpy(np.stack(clean)).float() / 255
        b = torch.from_numpy(np.stack(decoded)).float() / 255
        s = float(ssim(a, b).mean())
        ms = ms_ssim(np.stack(clean)[:, 0], np.stack(decoded)[:, 0], scales, win)  # images as channels
    else:
        s = float(
            np.mean(
                [
                    float(
                        ssim(torch.from_numpy(x[None]).float() / 255, torch.from_numpy(y[None]).float() / 255)
                    )
                    for x, y in zip(clean, decoded, strict=True)
                ]
            )
        )
        ms = float(np.mean([ms_ssim(x, y, scales, win) for x, y in zip(clean, decoded, strict=True)]))
    return {"psnr": psnr(clean, decoded), "ssim": s, "ms_ssim": ms}


def bd_rate(anchor: list[tuple[float, float]], test: list[tuple[float, float]], worst: bool = False) -> float:
    """Bjontegaard delta rate (%) of ``test`` against ``anchor``, points (bpp, PSNR): the mean
    difference of log-rate over the PSNR interval both cover (PCHIP); nan if they do not overlap.
    ``worst``: the largest rate difference (%) anywhere in that interval instead of the mean
    (below 0: fewer bits at every PSNR both reach)."""
    from scipy.interpolate import PchipInterpolator

    def curve(points):
        pts = sorted((p, np.log(b)) for b, p in points)
        ps, lr = [], []
        for p, r in pts:  # PSNR must rise strictly: keep the cheaper point of any tie
            if ps and p <= ps[-1]:
                continue
            ps.append(p)
            lr.append(r)
        return np.array(ps), np.array(lr)

    pa, ra = curve(anchor)
    pt, rt = curve(test)
    lo, hi = max(pa[0], pt[0]), min(pa[-1], pt[-1])
    if len(pa) < 2 or len(pt) < 2 or hi <= lo:
        return float("nan")
    grid = np.linspace(lo, hi, 200)
    diff = PchipInterpolator(pt, rt)(grid) - PchipInterpolator(pa, ra)(grid)
    if worst:
        return float((np.exp(diff.max()) - 1) * 100)
    return float((np.exp(np.trapezoid(diff, grid) / (hi - lo)) - 1) * 100)


# -- the baselines -----------------------------------------------------------------------------


def pil_code(im: np.ndarray, fmt: str, opts: dict) -> tuple[bytes, np.ndarray]:
    """One image (C, H, W) through Pillow: its file and the decoded image."""
    pic = Image.fromarray(im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0))
    buf = io.BytesIO()
    pic.save(buf, format=fmt, **opts)
    back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L" if im.shape[0] == 1 else "RGB"))
    return buf.getvalue(), (back[None] if back.ndim == 2 else back.transpose(2, 0, 1))


def mosaic(images: np.ndarray) -> np.ndarray:
    """(N, 1, h, w) tiled into one (1, side*h, side*w) picture."""
    n, _, h, w = images.shape
    side = int(np.ceil(np.sqrt(n)))
    canvas = np.zeros((1, side * h, side * w), np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, side)
        canvas[:, r * h : (r + 1) * h, c * w : (c + 1) * w] = im
    return canvas


def unmosaic(canvas: np.ndarray, n: int, h: int, w: int) -> list[np.ndarray]:
    side = int(np.ceil(np.sqrt(n)))
    return [
        canvas[:, (i // side) * h : (i // side + 1) * h, (i % side) * w : (i % side + 1) * w]
        for i in range(n)
    ]


def baseline_rows(images: np.ndarray, per_image_n: int, small: bool) -> list[dict]:
    """Every baseline at every setting: per image (the first ``per_image_n``) and, for
    same-size images, as one mosaic."""
    rows = []
    for name, (fmt, settings) in BASELINES.items():
        if (fmt == "AVIF" and not features.check("avif")) or (fmt == "JXL" and not HAVE_JXL):
            print(f"  {name}: not available in this Pillow, skipped", flush=True)
            continue
        for opts in settings:
            label = f"{name} q{opts['quality']}"
            sub = list(images[:per_image_n])
            start = time.perf_counter()
            coded = [pil_code(im, fmt, opts) for im in sub]
            secs = time.perf_counter() - start
            pixels = sum(im.shape[-1] * im.shape[-2] for im in sub)
            if sub:  # --per-image 0: the mosaic only
                rows.append(
                    {
                        "method": name,
                        "setting": label,
                        "counting": "per image",
                        "bpp": 8 * sum(len(c[0]) for c in coded) / pixels,
                        "mp_s": pixels / 1e6 / secs,
                        **measures(sub, [c[1] for c in coded], small),
                    }
                )
            if small:
                data, back = pil_code(mosaic(images), fmt, opts)
                dec = unmosaic(back, len(images), *images.shape[-2:])
                rows.append(
                    {
                        "method": name,
                        "setting": label,
                        "counting": "mosaic",
                        "bpp": 8 * len(data) / images[:, 0].size,
                        **measures(list(images), dec, small),
                    }
                )
            print(f"  {label}: done", flush=True)
    return rows


def hyperprior_rows(
    codec,
    images: list[np.ndarray],
    small: bool,
    per_image_n: int,
    one_file: bool,
    refine: int = 0,
    name: str = "aekit hyperprior",
) -> list[dict]:
    """aekit's hyperprior at qualities 1..Q: one file for all images (``one_file``) and one file
    for each of the first ``per_image_n``; with ``refine`` > 0, each image's latents optimised for
    that many steps at encode (method ``name +refine N``)."""
    rows, method = [], name + (f" +refine {refine}" if refine else "")
    for q in range(1, codec.model.qualities + 1):
        todo = [("one file", [images])] if one_file else []
        todo += [("per image", [[im] for im in images[:per_image_n]])] if per_image_n else []
        for counting, files in todo:
            encs = [codec.encode(f, q, refine=refine) for f in files]
            start, cpu = time.perf_counter(), time.process_time()
            back = [im for e in encs for im in codec.decompress(e.data)]
            dec, dec_cpu = (
                time.perf_counter() - start,
                time.process_time() - cpu,
            )  # CPU time: the machine is shared
            sub = [im for f in files for im in f]
            size, pixels = sum(len(e.data) for e in encs), sum(e.pixels for e in encs)
            rows.append(
                {
                    "method": method,
                    "setting": f"quality {q}",
                    "counting": counting,
                    "bpp": 8 * size / pixels,
                    "side_share": sum(e.z_bytes for e in encs) / size,
                    "file_over_estimate": size / sum(e.estimated_bytes for e in encs),
                    "encode_mp_s": pixels / 1e6 / sum(e.seconds for e in encs),
                    "decode_mp_s": pixels / 1e6 / dec,
                    "decode_s": dec,
                    "decode_cpu_s": dec_cpu,
                    "n": len(sub),
                    **measures(sub, back, small),
                }
            )
            r = rows[-1]
            print(
                f"  {method} quality {q}, {counting}: {r['bpp']:.4f} bpp, {r['psnr']:.2f} dB, file/estimate "
                f"{r['file_over_estimate']:.4f}, decode {dec:.2f} s ({dec_cpu:.2f} s of CPU) for {len(sub)}",
                flush=True,
            )
    return rows


def v1_rows(images: np.ndarray, lambdas: list[float], epochs: int, out: Path) -> list[dict]:
    """Today's codec (one 64-number code per image, .aek v1), one model per lambda, one file."""
    train = load_dataset("fashion-mnist", "train")
    rows = []
    for lam in lambdas:
        settings = {"name": "codec", "latent_dim": 64, "rd_lambda": lam, "channels": [32, 64]}
        codec = Codec(
            train_or_reuse(out / f"codec-{lam:g}-64-{epochs}", settings, train, epochs, f"codec {lam:g}")
        )
        blob = codec.compress(images)
        back = codec.decompress(blob)
        rows.append(
            {
                "method": "aekit codec (v1)",
                "setting": f"lambda {lam:g}",
                "counting": "one file",
                "bpp": 8 * len(blob) / images[:, 0].size,
                **measures(list(images), list(back), True),
            }
        )
    return rows


# -- report ------------------------------------------------------------------------------------


def table(rows: list[dict]) -> str:
    lines = [
        "| method | setting | counting | bits/pixel | PSNR (dB) | SSIM | MS-SSIM |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['setting']} | {r['counting']} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
            f"{r['ssim']:.4f} | {r['ms_ssim']:.4f} |"
        )
    return "\n".join(lines)


def curve(rows: list[dict], method: str, counting: str) -> list[tuple[float, float]]:
    return [(r["bpp"], r["psnr"]) for r in rows if r["method"] == method and r["counting"] == counting]


def bd_table(rows: list[dict], test: tuple[str, str], countings: tuple[str, ...]) -> str:
    lines = [
        "| anchor | counting | PSNR range (dB) | BD-rate of aekit | worst point |",
        "|---|---|---|---:|---:|",
    ]
    t = curve(rows, *test)
    if len(t) < 2:
        return "(no aekit curve in these rows)"
    for method in dict.fromkeys(r["method"] for r in rows):
        if method == test[0]:
            continue
        for counting in countings:
            a = curve(rows, method, counting)
            if len(a) < 2:
                continue
            lo = max(min(p for _, p in a), min(p for _, p in t))
            hi = min(max(p for _, p in a), max(p for _, p in t))
            bd, worst = bd_rate(a, t), bd_rate(a, t, worst=True)
            lines.append(f"| {method} | {counting} | {lo:.1f}-{hi:.1f} | {bd:+.1f}% | {worst:+.1f}% |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str, metric: str = "psnr") -> None:
    from matplotlib.figure import Figure

    from aekit.report.figures import save_figure

    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    for (method, counting), style in zip(
        dict.fromkeys((r["method"], r["counting"]) for r in rows),
        ["k*-", "k*--", "o-", "o--", "s-", "s--", "^-", "^--", "d-", "d--", "v-", "v--", "x-"],
        strict=False,
    ):
        pts = sorted(
            (r["bpp"], r[metric]) for r in rows if r["method"] == method and r["counting"] == counting
        )
        ax.plot(*zip(*pts, strict=True), style, ms=4, label=f"{method} ({counting})")
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel (from file sizes)")
    ax.set_ylabel({"psnr": "PSNR (dB)", "ms_ssim": "MS-SSIM"}[metric])
    ax.set_title(title)
    ax.legend(fontsize=6)
    print(f"plot: {save_figure(fig, path)}")


def fashion(args) -> list[dict]:
    test = load_dataset("fashion-mnist", "test", limit=args.n)
    images = test.raw(torch.arange(len(test))).numpy()  # uint8 (N, 1, 28, 28)
    rows = []
    if args.only in ("all", "hyperprior"):
        print("Fashion-MNIST: aekit hyperprior", flush=True)
        models = list(dict.fromkeys(args.fashion_models + (["mean-scale"] if args.mean_scale else [])))
        codecs = [(fashion_label(name), fashion_model(name, args)) for name in models]
        for name, codec in codecs:
            rows += hyperprior_rows(codec, list(images), True, args.per_image, True, name=name)
            if args.refine:
                n = min(args.per_image, args.refine_per_image)
                rows += hyperprior_rows(codec, list(images), True, n, True, args.refine, name)
    if args.only in ("all", "others"):
        if args.v1_lambdas:
            print("Fashion-MNIST: today's codec", flush=True)
            rows += v1_rows(images, args.v1_lambdas, args.v1_epochs, Path(args.out))
        print("Fashion-MNIST: baselines", flush=True)
        rows += baseline_rows(images, args.per_image, True)
    return rows


FASHION_MODELS = {  # --fashion-models name: rd_models.fashion_codec's options
    "scale": {},
    "mean-scale": {"mean_scale": True},
    "mean-scale-lp": {"mean_scale": True, "latent_padding": True},
    "checkerboard": {"mean_scale": True, "latent_padding": True, "checkerboard": True},
    "mean-scale-lp-z8": {"mean_scale": True, "latent_padding": True, "hyper_channels": 8},
    "checkerboard-z8": {
        "mean_scale": True,
        "latent_padding": True,
        "checkerboard": True,
        "hyper_channels": 8,
    },
    # the checkerboard model trained by the context's first training (a straight-through gradient
    # into the anchors; commit 4914966): measured, never retrained
    "checkerboard-v1": {"run": "hyperprior-fashion-cb-b16-12"},
}


def _model_name(value: str) -> str:
    """A --fashion-models entry: a name of FASHION_MODELS, optionally with ``:EPOCHS``."""
    name, _, epochs = value.partition(":")
    if name not in FASHION_MODELS or (epochs and not (epochs.isdigit() and int(epochs) > 0)):
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected one of {', '.join(FASHION_MODELS)}, optionally with :EPOCHS (e.g. scale:24)"
        )
    return value


def fashion_label(value: str) -> str:
    name, _, epochs = value.partition(":")
    return (
        "aekit hyperprior"
        + ("" if name == "scale" else f" {name}")
        + (f" ({epochs} epochs)" if epochs else "")
    )


def fashion_model(value: str, args):
    name, _, epochs = value.partition(":")
    if "run" in FASHION_MODELS[name]:
        return HyperCodec.load(Path(args.out) / FASHION_MODELS[name]["run"])
    return rd_models.fashion_codec(int(epochs or args.fashion_epochs), Path(args.out), **FASHION_MODELS[name])


def photo_part(args) -> list[dict]:
    images = []
    for name in photos.TEST:
        im = photos.load(name)
        images.append(im[None] if im.ndim == 2 else np.ascontiguousarray(im[..., :3].transpose(2, 0, 1)))
    rows = []
    if args.only in ("all", "hyperprior"):
        print("photos: aekit hyperprior", flush=True)
        codec = rd_models.photo_codec(args.photo_epochs, args.photo_patches, Path(args.out))
        rows += hyperprior_rows(codec, images, False, len(images), False)
        if args.refine:
            rows += hyperprior_rows(codec, images, False, len(images), False, args.refine)
    if args.only in ("all", "others"):
        print("photos: baselines", flush=True)
        rows += baseline_rows(np.array(images, dtype=object), len(images), False)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("fashion", "photos", "all"), default="all")
    parser.add_argument("--n", type=int, default=10000, help="Fashion-MNIST test images")
    parser.add_argument("--per-image", type=int, default=1000, help="images coded one file each")
    parser.add_argument("--fashion-epochs", type=int, default=12)
    parser.add_argument("--photo-epochs", type=int, default=12)
    parser.add_argument("--refine", type=int, default=0, help="also aekit with N refinement steps at encode")
    parser.add_argument(
        "--refine-per-image", type=int, default=1000, help="refined images coded one file each (at most)"
    )
    parser.add_argument(
        "--mean-scale",
        action="store_true",
        help="Fashion: also the mean-and-scale model (trained if missing)",
    )
    parser.add_argument(
        "--fashion-models",
        nargs="+",
        type=_model_name,
        default=["scale"],
        help="Fashion: the hyperprior models measured: scale, mean-scale, mean-scale-lp (latent_padding), "
        "checkerboard (mean-scale-lp + checkerboard context), checkerboard-v1, mean-scale-lp-z8 and "
        "checkerboard-z8 (8 z channels, not 16); "
        "NAME:EPOCHS for another training length",
    )
    parser.add_argument("--photo-patches", type=int, default=16000)
    parser.add_argument("--v1-lambdas", type=float, nargs="*", default=[0.003, 0.01, 0.03], help="none: skip")
    parser.add_argument("--v1-epochs", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"), help="the trained models")
    parser.add_argument("--results", help="where rd_*.json and the plots go (default: --out)")
    parser.add_argument(
        "--only",
        choices=("all", "hyperprior", "others"),
        default="all",
        help="measure only these rows; the other rows (and aekit models not measured now) come from the "
        "part's last results JSON",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # a shared CPU: two threads thrash
    out = Path(args.results or args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = ["fashion", "photos"] if args.part == "all" else [args.part]
    for part in parts:
        rows = fashion(args) if part == "fashion" else photo_part(args)
        saved = out / f"rd_{part}.json"
        if args.only != "all" and saved.is_file():  # keep the rows measured before, of the other kind
            mine = {r["method"] for r in rows}
            rows = [r for r in json.loads(saved.read_text()) if r["method"] not in mine] + rows
        saved.write_text(json.dumps(rows, indent=1))
        print(f"\n## {part}\n\n{table(rows)}\n")
        countings = ("per image", "mosaic", "one file") if part == "fashion" else ("per image",)
        for method in dict.fromkeys(r["method"] for r in rows if r["method"].startswith("aekit hyperprior")):
            print(f"\n{method}:\n" + bd_table(rows, (method, countings[-1]), countings))
        plot(rows, out / f"rd_{part}.png", f"{part}: rate-distortion")
        plot(rows, out / f"rd_{part}_msssim.png", f"{part}: MS-SSIM", "ms_ssim")


if __name__ == "__main__":
    main()
