"""``aekit <command>``: a thin shell over the Python API. ``main(argv) -> int`` runs in-process.

Bad input ends with one line, ``aekit: error: ...``, and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aekit.errors import AekitError, ConfigError
from aekit.fileio import new_output

LIMIT_HELP = "use N samples: a seeded random subset, stratified by class when there are labels"
ID_HELP = (
    "tables: the column that names the rows (default: a text column with a different value in every row)"
)
TRAIN_FLAGS = {  # flag -> (TrainConfig field, type, help)
    "--epochs": ("epochs", int, "passes over the training data"),
    "--batch-size": ("batch_size", int, "samples per step"),
    "--lr": ("lr", float, "learning rate"),
    "--optimizer": ("optimizer", str, "adam, adamw or sgd"),
    "--weight-decay": ("weight_decay", float, "L2 penalty"),
    "--schedule": ("schedule", str, "constant, cosine, onecycle or plateau"),
    "--grad-clip": ("grad_clip", float, "clip the gradient norm (0: off)"),
    "--patience": ("patience", int, "early stopping after N epochs without progress (0: off)"),
    "--val-fraction": ("val_fraction", float, "share held out for validation"),
    "--seed": ("seed", int, "random seed (same seed, same numbers on the CPU)"),
    "--device": ("device", str, "auto, cpu, cuda or cuda:N"),
    "--log": ("log", lambda text: text.split(","), "experiment tracking: tensorboard, mlflow or both (a,b)"),
}


def _value(text: str) -> Any:
    """A --set value: JSON when it parses (numbers, true, lists), a comma list, else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [_value(t) for t in text.split(",")] if "," in text else text


def _count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def _natural(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    return 0 if text.strip() == "0" else _count(text)


def _sizes(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated sizes like 128,64, got {text!r}"
        ) from None


def _add_train(sub: argparse._SubParsersAction) -> None:
    from aekit.config import PRESETS
    from aekit.models import MODELS

    p = sub.add_parser("train", help="train a model and write a run directory")
    p.add_argument(
        "--model", choices=sorted(MODELS), help="model to train (default: the preset's, else dense)"
    )
    p.add_argument(
        "--preset", choices=sorted(PRESETS), help="named starting point; 'seed' is the classic 784-128-64-32"
    )
    p.add_argument("--data", help="dataset name, scheme:PATH or path (default mnist-5k)")
    p.add_argument("--limit", type=_count, help=LIMIT_HELP)
    p.add_argument(
        "--missing", choices=("error", "drop", "impute"), help="tables: missing values (default error)"
    )
    p.add_argument("--id-column", help=ID_HELP)
    p.add_argument("--out", help="run directory to create (default runs/MODEL-TIME)")
    p.add_argument("--config", help="TOML or JSON settings file (flags override it)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its last checkpoint")
    for flag, (_, typ, help_) in TRAIN_FLAGS.items():
        p.add_argument(flag, type=typ, help=help_)
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--latent-dim", type=_count, help="size of the code")
    p.add_argument("--hidden", type=_sizes, help="hidden layer sizes, e.g. 128,64")
    p.add_argument("--lambda", dest="rd_lambda", type=float, help="codec: rate-distortion trade-off")
    p.add_argument(
        "--noise",
        metavar="KIND=LEVEL",
        help="denoising: the noise to train against, e.g. gaussian=0.3, or a blind range gaussian=0.1,0.5",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="any setting, e.g. model.loss=bce",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")


def cmd_train(args: argparse.Namespace) -> int:
    from aekit import api
    from aekit.config import preset_layer, read_config_file
    from aekit.training.distributed import is_main

    if args.resume:
        run = api.resume(args.resume, epochs=args.epochs, progress=not args.quiet)
        if is_main():
            print(f"resumed and finished {run.path} ({len(run.history)} epochs)")
        return 0
    layers: list[dict[str, Any]] = []
    if args.preset:
        layers.append(preset_layer(args.preset))
    if args.config:
        layers.append(read_config_file(args.config))
    flags: dict[str, dict[str, Any]] = {
        "model": {
            "name": args.model,
            "latent_dim": args.latent_dim,
            "hidden": args.hidden,
            "rd_lambda": args.rd_lambda,
        },
        "data": {
            "source": args.data,
            "limit": args.limit,
            "missing": args.missing,
            "id_column": args.id_column,
        },
        "train": {
            field: getattr(args, flag[2:].replace("-", "_")) for flag, (field, _, _) in TRAIN_FLAGS.items()
        },
    }
    if args.no_amp:
        flags["train"]["amp"] = False
    if args.noise:
        from aekit.apps.denoise import parse_noise

        kind, level = parse_noise(args.noise)
        low, high = level if isinstance(level, tuple) else (level, 0.0)
        flags["model"].update(noise=kind, noise_level=low, noise_level_max=high)
        flags["model"]["name"] = flags["model"]["name"] or "denoising"
    for item in args.set:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in flags:
            raise ConfigError(
                f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION one of model, data, train"
            )
        flags[section][name] = _value(value)
    layers.append(flags)
    run = api.train_from_layers(layers, out=args.out, progress=not args.quiet)
    last = run.history[-1] if run.history else {}
    summary = ", ".join(f"{k} {v:.5f}" for k, v in last.items() if k.endswith("/loss"))
    if is_main():  # under torchrun, one line from rank 0
        print(f"wrote {run.path} ({summary})")
        schema = run.schema()
        for note in schema.notes() if schema is not None else []:  # table columns that are not features
            print(f"note: {note}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import aekit
    from aekit.data.sources import describe_data

    run = aekit.load(args.run, device=args.device)
    name = args.data or run.config.data.source
    data = run.load_data(name, args.split, limit=args.limit)
    metrics = run.evaluate(data, iw_samples=args.iw_samples)
    used = describe_data(name, args.split, len(data), limit=args.limit, trained_on=run.config.data.source)
    if args.json:
        print(json.dumps({"run": str(args.run), "data": name, "split": args.split, "used": used, **metrics}))
    elif data.schema is not None:
        from aekit.evaluation.tables import format_table_metrics

        print(f"{args.run} on {used}", *format_table_metrics(data.schema, metrics), sep="\n")
    else:
        print(f"{args.run} on {used}")
        units = {"psnr": " dB", "elbo": " nats", "nll": f" nats ({args.iw_samples} importance samples)"}
        for k in ("mse", "psnr", "ssim", "elbo", "nll"):
            if k in metrics:
                print(f"  {k:5s} {metrics[k]:.5f}{units.get(k, '')}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import aekit
    from aekit.outputs import write_samples

    run = aekit.load(args.run, device=args.device)
    data = run.prepare(run.load_data(args.input))
    x_hat = run.reconstruct(data, progress="reconstructing")
    path = write_samples(args.output, x_hat, like=data, force=args.force)
    print(f"wrote {len(x_hat)} reconstructions to {path}")
    return 0


def cmd_denoise(args: argparse.Namespace) -> int:
    import torch

    import aekit
    from aekit.apps.denoise import Denoiser, add_noise, comparison_figure, parse_noise, quality
    from aekit.outputs import write_samples
    from aekit.report.figures import save_figure

    den = Denoiser.load(args.run, device=args.device)
    data = den.run.prepare(aekit.load_dataset(args.input))
    clean = den.run.prepare(aekit.load_dataset(args.clean)) if args.clean else None
    if args.add_noise:
        if clean is not None:
            raise ConfigError("--add-noise makes INPUT the clean images; do not also pass --clean")
        kind, level = parse_noise(args.add_noise)
        clean, data = data, den.run.prepare(add_noise(data, kind, level, seed=args.seed))
    for path in (args.output, args.figure):
        if path:
            new_output(path, args.force)
    denoised = den(data, batch_size=args.batch_size, progress="denoising")
    shown = torch.arange(min(10, len(data)))
    noisy_x = data.take(shown)[0].numpy()
    clean_x = clean.take(shown)[0].numpy() if clean is not None else None
    figure = args.figure or (args.output if args.output.lower().endswith(".png") else None)
    if figure:
        save_figure(comparison_figure(noisy_x, denoised[: len(shown)], clean_x), figure)
    if figure != args.output:
        write_samples(args.output, denoised, like=clean if args.add_noise else data, force=args.force)
    print(
        f"denoised {len(denoised)} samples with {args.run} (trained on noise: {den.noise}) -> {args.output}"
    )
    if clean is not None:
        before = quality(data.take(torch.arange(len(data)))[0].numpy(), clean)
        after = quality(denoised, clean)
        for k, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("mse", "MSE")):
            if k in after:
                print(f"  {label:9s}  noisy {before[k]:9.4f}  denoised {after[k]:9.4f}")
    return 0


def _detect_report(det, data, normal: int, out_dir: Path | None, quiet: bool = False) -> dict[str, Any]:
    """Print AUROC, AUPRC and the confusion matrix; draw the ROC curve and extremes when asked."""
    from aekit.apps.anomaly import extremes_figure
    from aekit.report.figures import roc_curve, save_figure

    truth = (data.y != normal).numpy()
    metrics = det.evaluate(data, truth)
    cm = metrics["confusion"]
    if not quiet:
        print(
            f"  AUROC {metrics['auroc']:.4f}  AUPRC {metrics['auprc']:.4f}  (anomalies = not class "
            f"{data.classes[normal] if data.classes else normal}, {int(truth.sum())} of {len(truth)})"
        )
        rates = f"FPR {metrics['fpr']:.4f}, TPR {metrics['tpr']:.4f}"
        print(f"  at threshold {metrics['threshold']:.5g}: {rates}")
        print("                  flagged normal  flagged anomaly")
        print(f"  true normal     {cm['tn']:14d}  {cm['fp']:15d}")
        print(f"  true anomaly    {cm['fn']:14d}  {cm['tp']:15d}")
    if out_dir is not None:
        save_figure(roc_curve(truth, metrics["scores"], title=data.name), out_dir / "roc.png")
        if data.is_image:
            save_figure(extremes_figure(det, data, metrics["scores"]), out_dir / "extremes.png")
    return metrics


def cmd_detect_fit(args: argparse.Namespace) -> int:
    import torch

    import aekit
    from aekit.apps.anomaly import AnomalyDetector, class_index
    from aekit.data.sources import SOURCES
    from aekit.fileio import atomic_write_json

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: already exists; choose another --out")
    data = aekit.load_dataset(args.data, "train", limit=args.limit, id_column=args.id_column)
    normal = None
    if args.normal_class is not None:
        normal = class_index(data, args.normal_class)
        data = data.subset(torch.nonzero(data.y == normal).flatten())
        print(f"training on the {len(data)} samples of class {args.normal_class} in {args.data}")
    options = {
        k: getattr(args, k)
        for k in ("fpr", "percentile", "contamination", "epochs", "latent_dim", "seed", "iw_samples")
        if getattr(args, k) is not None
    }
    det = AnomalyDetector(model=args.model, score=args.score, device=args.device, **options)
    det.fit(data, progress=not args.quiet)
    det.save(out)
    print(f"wrote {out} (score {det.score_}, threshold {det.threshold_:.5g} for held-out normals)")
    if normal is not None and args.data in SOURCES:
        test = aekit.load_dataset(args.data, "test", limit=args.test_limit)
        print(f"on {args.data} test ({len(test)} samples):")
        metrics = _detect_report(det, test, normal, out)
        summary = {k: v for k, v in metrics.items() if k != "scores"}
        atomic_write_json(out / "evaluation.json", {"data": args.data, "normal_class": normal, **summary})
    from aekit.apps.anomaly import report_extras
    from aekit.report.artifacts import write_run_files

    det.run_.path = out
    write_run_files(det.run_, None, report_extras(out), figures=False)
    return 0


def cmd_detect_score(args: argparse.Namespace) -> int:
    import csv
    import io

    from aekit.apps.anomaly import AnomalyDetector, class_index
    from aekit.fileio import atomic_write_text

    output = new_output(args.output, args.force)
    if output.suffix.lower() != ".csv":
        raise ConfigError(f"{output}: scores are written as CSV; name the output *.csv")
    det = AnomalyDetector.load(args.detector, device=args.device)
    data = det.run_.load_data(args.input, args.split, limit=args.limit)
    scores = det.anomaly_score(data, progress=not args.quiet)
    flagged = scores > det.threshold_
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["index", "id", "label", "score", "anomaly"])
    labels = data.y.tolist() if data.y is not None else [""] * len(data)
    names = [data.classes[v] for v in labels] if data.classes and data.y is not None else labels
    for i, (score, flag) in enumerate(zip(scores.tolist(), flagged.tolist(), strict=True)):
        w.writerow([i, data.ids[i] if data.ids else "", names[i], f"{score:.8g}", int(flag)])
    atomic_write_text(output, buf.getvalue())
    print(f"scored {len(data)} samples: {int(flagged.sum())} flagged as anomalies -> {output}")
    if args.normal_class is not None:
        figures = output.parent if args.figures else None
        _detect_report(det, data, class_index(data, args.normal_class), figures)
    return 0


def _test_data(run, name: str | None, limit: int):
    """The test split of the run's (or the named) dataset, or None with a note when it is not here."""
    from aekit.errors import DataError

    source = name or run.config.data.source
    try:
        return run.load_data(source, "test", limit=limit)
    except DataError as e:
        print(f"note: no test data for {run.path} ({e}); the report leaves out test metrics")
        return None


def cmd_report(args: argparse.Namespace) -> int:
    import aekit
    from aekit.report.artifacts import write_runs_report
    from aekit.report.html import REPORT

    runs = [aekit.load(r) for r in args.runs]
    out = Path(args.output) if args.output else (runs[0].path / REPORT if len(runs) == 1 else None)
    if out is None:
        raise ConfigError("several runs: name the page with -o compare.html")
    data = [None if args.no_data else _test_data(run, args.data, args.limit) for run in runs]
    write_runs_report(runs, data, out)
    print(f"wrote {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import aekit

    rows = []
    for path in args.runs:
        run = aekit.load(path)
        last = run.history[-1] if run.history else {}
        row = {"run": str(path), "model": run.config.model, "epochs": len(run.history)}
        row.update(
            {
                k: v
                for k, v in last.items()
                if k.startswith(("train/", "val/")) and k.endswith(("loss", "mse"))
            }
        )
        if not args.no_data and (data := _test_data(run, args.data, args.limit)) is not None:
            row.update({f"test/{k}": v for k, v in run.evaluate(data).items() if k != "n"})
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    text = [
        [str(r.get(c, "")) if not isinstance(r.get(c), float) else f"{r[c]:.5f}" for c in columns]
        for r in rows
    ]
    widths = [max(len(c), *(len(t[i]) for t in text)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for t in text:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)))
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from aekit.apps.codec import Codec
    from aekit.fileio import atomic_write_bytes

    output = new_output(args.output, args.force)
    codec = Codec.load(args.run, device=args.device)
    data = codec.run.prepare(codec.run.load_data(args.input, args.split, limit=args.limit))
    start = time.perf_counter()
    blob = codec.compress(data)
    seconds = time.perf_counter() - start
    atomic_write_bytes(output, blob)
    pixels = len(data) * int(np.prod(data.shape[-2:]))
    bpp = 8 * len(blob) / pixels
    print(
        f"wrote {output}: {len(data)} images in {len(blob):,} bytes, {bpp:.4f} bits per pixel "
        f"(from the file's size), {len(data) / seconds:,.0f} images/s"
    )
    return 0


def cmd_decompress(args: argparse.Namespace) -> int:
    import numpy as np

    from aekit.apps.codec import Codec, read_aek
    from aekit.data.files import from_array
    from aekit.outputs import write_samples

    codec = Codec.load(args.run, device=args.device)
    images = codec.decompress(read_aek(args.input), name=args.input)
    like = from_array(images, args.input)
    path = write_samples(args.output, images.astype(np.float32) / 255, like=like, force=args.force)
    print(f"wrote {len(images)} images to {path}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    import aekit
    from aekit.apps import generate

    run = aekit.load(args.run, device=args.device)
    if run.model.data_kind == "tokens" or args.music:
        return _generate_music(run, args)
    if len(run.model.input_shape) != 3:
        raise ConfigError(
            f"{args.run}: generates images; this model's samples have shape {run.model.input_shape}"
        )
    new_output(args.output, args.force)
    if args.interpolate:
        a, b = (run.load_data(p) for p in args.interpolate)
        images, nrow = generate.interpolate(run, a, b, args.steps), args.steps
        what = f"{args.steps} images between {args.interpolate[0]} and {args.interpolate[1]}"
    elif args.attribute is not None:
        rows = min(args.n, 16)
        images = generate.attribute_grid(run, args.attribute, args.strength, rows, args.steps)
        nrow, what = args.steps, f"{rows} rows moved towards {args.attribute!r} (0 to {args.strength:g})"
    elif args.grid:
        images, nrow = generate.latent_grid(run, args.per_side, label=args.label), args.per_side
        what = f"the {args.per_side}x{args.per_side} latent grid"
    else:
        images, nrow = generate.sample(run, args.n, seed=args.seed, label=args.label), 8
        what = f"{args.n} samples"
    path = generate.save_images(args.output, images, nrow, force=args.force)
    print(f"wrote {what} to {path}")
    if args.metric:
        from aekit.evaluation.generation import cached_classifier, generation_metrics

        source = run.config.data.source
        train = aekit.load_dataset(source, "train")
        test = aekit.load_dataset(source, "test", limit=2000)
        if len(images) <= 128:
            print("  note: fewer samples than the 128 features: the distance is unreliable; use -n 1000")
        net = cached_classifier(train, source)
        real = test.take(torch.arange(len(test)))[0].numpy()
        m = generation_metrics(net, real, images, int(train.y.max()) + 1)
        print(
            f"  Fréchet distance in aekit's own {source} classifier features (not the Inception FID): "
            f"{m['frechet']:.3f} (two halves of the real test images: {m['frechet_real_halves']:.3f})"
        )
        print(f"  label entropy of the samples {m['label_entropy']:.3f} of {m['label_entropy_max']:.3f} nats")
        print("  label share: " + ", ".join(f"{v:.3f}" for v in m["label_share"]))
    return 0


def _generate_music(run, args: argparse.Namespace) -> int:
    from aekit.apps import generate

    if run.model.data_kind != "tokens":
        raise ConfigError(
            f"{args.run}: --music needs a music model (--model music-vae), not {run.config.model!r}"
        )
    if args.interpolate:
        sequences = generate.music_interpolate(run, *args.interpolate, steps=args.steps)
        what = f"{len(sequences)} steps from {args.interpolate[0]} to {args.interpolate[1]}"
    else:
        sequences = generate.music_samples(run, args.n, args.seed, args.temperature, bars=args.bars)
        what = f"{len(sequences)} pieces"
    folder = generate.save_music(args.output, sequences, args.force, tempo=args.tempo, program=args.program)
    print(f"wrote {what} to {folder}/ (.mid and piano-roll .png each)")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    import aekit
    from aekit.apps.embed import write_codes

    run = aekit.load(args.run, device=args.device)
    output = new_output(args.output, args.force)
    data = run.prepare(run.load_data(args.input, args.split, limit=args.limit))
    codes = run.encode(data, batch_size=args.batch_size, progress="embedding")
    write_codes(output, codes, data, force=args.force)
    print(f"wrote {codes.shape[0]} codes of size {codes.shape[1]} to {output}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import aekit
    from aekit.apps.export import export_onnx

    output = new_output(args.output, args.force)
    check = export_onnx(aekit.load(args.run), output, part=args.part)
    print(
        f"wrote {output} ({args.part}); ONNX Runtime matches PyTorch within {check['max_abs_diff']:.1e} "
        f"at batch sizes {', '.join(map(str, check['batches_checked']))}"
    )
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from aekit.data.sources import SCHEMES, SOURCES

    width = max(len(n) for n in SOURCES)
    for name, src in SOURCES.items():
        print(f"{name:{width}s}  {src.summary}\n{'':{width}s}  {src.status()}")
    print(
        "\nand files: "
        + ", ".join(f"{s}:PATH" for s in SCHEMES)
        + ", or any path to IDX, .npy, .csv or an image folder"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from aekit.models import MODELS

    width = max(len(n) for n in MODELS)
    for name, spec in MODELS.items():
        print(f"{name:{width}s}  {spec.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from aekit import __version__

    parser = argparse.ArgumentParser(prog="aekit", description="Autoencoders: train, show, apply.")
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    p = sub.add_parser(
        "evaluate", help="test MSE, PSNR and SSIM of a run's reconstructions (tables: per-column errors)"
    )
    p.add_argument("run")
    p.add_argument("--data", help="dataset (default: the one the run trained on)")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--limit", type=_count, help=LIMIT_HELP)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--iw-samples",
        type=_natural,
        default=0,
        metavar="K",
        help="VAE family: importance-weighted NLL with K samples",
    )
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p = sub.add_parser("reconstruct", help="reconstruct IDX, .npy, .csv or an image folder")
    p.add_argument("run")
    p.add_argument("input")
    p.add_argument(
        "-o", "--output", required=True, help=".npy, .csv, IDX (*-ubyte[.gz]), .png (figure) or a folder"
    )
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--device", default="cpu")
    p = sub.add_parser("denoise", help="denoise IDX, .npy or an image folder with a trained run")
    p.add_argument("run")
    p.add_argument("input", help="the noisy images (or the clean ones with --add-noise)")
    p.add_argument(
        "-o", "--output", required=True, help=".npy, IDX (*-ubyte[.gz]), a folder of PNGs, or a .png figure"
    )
    p.add_argument("--clean", help="the clean images, to print PSNR/SSIM and draw them in the figure")
    p.add_argument(
        "--add-noise",
        metavar="KIND=LEVEL",
        help="corrupt INPUT first (it is then the clean reference), e.g. gaussian=0.3",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of --add-noise")
    p.add_argument("--figure", help="write a noisy / denoised / clean figure to this .png")
    p.add_argument("--batch-size", type=_count, default=1024)
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    p.add_argument("--device", default="cpu")
    p = sub.add_parser("detect", help="anomaly detection: fit a detector, score data")
    dsub = p.add_subparsers(dest="detect_command", required=True, metavar="fit|score")
    p = dsub.add_parser("fit", help="train a detector on normal data and calibrate its threshold")
    p.add_argument("--data", default="mnist-5k", help="dataset name, scheme:PATH or path")
    p.add_argument("--normal-class", help="train on this class only (name or index); test on all")
    p.add_argument("--out", required=True, help="detector directory to create")
    p.add_argument("--model", default="auto", help="model (default: conv for images, dense for tables)")
    p.add_argument("--score", default="auto", help="auto, mse, ssim, nll, latent or combined")
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--fpr", type=float, help="target false-positive rate on normal data (default 0.01)")
    rule.add_argument("--percentile", type=float, help="threshold at this percentile of normal scores")
    rule.add_argument("--contamination", type=float, help="share of anomalies in the training data")
    p.add_argument("--epochs", type=_count)
    p.add_argument("--latent-dim", type=_count)
    p.add_argument("--iw-samples", type=_natural, help="nll score: importance samples")
    p.add_argument("--seed", type=int)
    p.add_argument("--limit", type=_count, help=LIMIT_HELP)
    p.add_argument("--id-column", help=ID_HELP)
    p.add_argument("--test-limit", type=_count, help="evaluate on N test samples (drawn as --limit)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p = dsub.add_parser("score", help="score samples with a detector; write a CSV")
    p.add_argument("detector")
    p.add_argument("input", help="dataset name, scheme:PATH or path (IDX, .npy, images, CSV)")
    p.add_argument("-o", "--output", required=True, help="scores.csv")
    p.add_argument("--split", default="test", choices=("train", "test"), help="for named datasets")
    p.add_argument("--limit", type=_count, help=LIMIT_HELP)
    p.add_argument("--normal-class", help="labels present: print AUROC etc. with this class as normal")
    p.add_argument("--figures", action="store_true", help="with --normal-class: roc.png and extremes.png")
    p.add_argument("--force", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    p = sub.add_parser("compress", help="compress images to an .aek file with a codec run")
    p.add_argument("run")
    p.add_argument("input", help="dataset name, scheme:PATH or path (IDX, .npy, images)")
    p.add_argument("-o", "--output", required=True, help="images.aek")
    p.add_argument("--split", default="test", choices=("train", "test"), help="for named datasets")
    p.add_argument("--limit", type=_count, help=LIMIT_HELP)
    p.add_argument("--force", action="store_true")
    p.add_argument("--device", default="cpu")
    p = sub.add_parser("decompress", help="images back from an .aek file")
    p.add_argument("run")
    p.add_argument("input", help="images.aek")
    p.add_argument("-o", "--output", required=True, help=".npy, IDX (*-ubyte[.gz]), a folder of PNGs")
    p.add_argument("--force", action="store_true")
    p.add_argument("--device", default="cpu")
    p = sub.add_parser("generate", help="images from the latent space: samples, interpolations, the 2-D grid")
    p.add_argument("run")
    p.add_argument("-n", type=_count, default=64, help="samples to draw (default 64)")
    p.add_argument("-o", "--output", required=True, help="a .png grid, or .npy, IDX, a folder of PNGs")
    p.add_argument("--label", help="conditional models: the class to generate (name or index)")
    p.add_argument("--interpolate", nargs=2, metavar=("A", "B"), help="walk between two images")
    p.add_argument("--steps", type=_count, default=10, help="images along --interpolate")
    p.add_argument("--grid", action="store_true", help="decode a grid over a 2-D latent space")
    p.add_argument("--attribute", metavar="LABEL", help="move codes along class LABEL's mean code difference")
    p.add_argument("--strength", type=float, default=2.0, help="--attribute: the last column's step")
    p.add_argument("--per-side", type=_count, default=15, help="grid size for --grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metric", action="store_true", help="Fréchet distance and label spread of the samples")
    p.add_argument("--music", action="store_true", help="music models: write .mid files (and piano rolls)")
    p.add_argument("--temperature", type=float, default=0.0, help="music: 0 greedy, above 0 sampled")
    p.add_argument("--bars", type=_count, help="music: the length (any, for --model music-conductor)")
    p.add_argument("--tempo", type=float, default=100.0, help="music: beats per minute of the MIDI files")
    p.add_argument("--program", type=int, default=0, help="music: General MIDI instrument 0-127 (0 piano)")
    p.add_argument("--force", action="store_true")
    p.add_argument("--device", default="cpu")
    p = sub.add_parser("embed", help="write the latent codes of data (ids and labels carried over)")
    p.add_argument("run")
    p.add_argument("input", help="dataset name, scheme:PATH or path")
    p.add_argument("-o", "--output", required=True, help="codes.npy, codes.npz or codes.csv")
    p.add_argument("--split", default="test", choices=("train", "test"), help="for named datasets")
    p.add_argument("--limit", type=_count, help=LIMIT_HELP)
    p.add_argument("--batch-size", type=_count, default=1024)
    p.add_argument("--force", action="store_true")
    p.add_argument("--device", default="cpu")
    p = sub.add_parser("export", help="export the encoder, decoder or both to ONNX (checked)")
    p.add_argument("run")
    p.add_argument("-o", "--output", required=True, help="model.onnx")
    p.add_argument("--part", default="both", choices=("encoder", "decoder", "both"))
    p.add_argument("--force", action="store_true")
    p = sub.add_parser("report", help="write report.html for a run, or one page for several runs")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("-o", "--output", help="the page (default RUN/report.html for one run)")
    p.add_argument("--data", help="test data (default: the test split of each run's dataset)")
    p.add_argument("--limit", type=_count, default=2000, help="test samples to use (default 2000)")
    p.add_argument("--no-data", action="store_true", help="leave out test metrics and maps")
    p = sub.add_parser("compare", help="print a table of several runs' metrics")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--data", help="test data (default: the test split of each run's dataset)")
    p.add_argument("--limit", type=_count, default=2000)
    p.add_argument("--no-data", action="store_true", help="only the training log's metrics")
    sub.add_parser("datasets", help="list the named datasets and whether each is here")
    sub.add_parser("models", help="list the models")
    return parser


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "reconstruct": cmd_reconstruct,
    "denoise": cmd_denoise,
    "detect": lambda args: {"fit": cmd_detect_fit, "score": cmd_detect_score}[args.detect_command](args),
    "compress": cmd_compress,
    "decompress": cmd_decompress,
    "generate": cmd_generate,
    "embed": cmd_embed,
    "export": cmd_export,
    "report": cmd_report,
    "compare": cmd_compare,
    "datasets": cmd_datasets,
    "models": cmd_models,
}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input or usage, 130 interrupted)."""
    parser = build_parser()
    if any("\x00" in a for a in (sys.argv[1:] if argv is None else argv)):
        print("aekit: error: an argument holds a NUL byte, which no file name or value can", file=sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return COMMANDS[args.command](args)
    except AekitError as e:
        print(f"aekit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "aekit: interrupted (checkpoints written so far are intact; continue with --resume)",
            file=sys.stderr,
        )
        return 130
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():  # under torchrun: leave the group cleanly
            dist.destroy_process_group()


def entry_point() -> None:
    sys.exit(main())
