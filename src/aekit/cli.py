"""``aekit <command>``: a thin shell over the Python API. ``main(argv) -> int`` runs in-process.

Each ``cmd_*`` parses, checks its outputs before any work, calls one function of the API or an
app, and prints. Arguments are parsed before anything heavy is imported: ``aekit --help``,
``aekit --version`` and bad arguments never wait for PyTorch.

Bad input ends with one line, ``aekit: error: ...``, and exit code 2. Progress follows one rule
(:mod:`aekit.progress`): a live bar on a terminal, plain lines in a log.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aekit.errors import AekitError, ConfigError, DataError

LIMIT_HELP = "use N samples: a seeded random subset, stratified by class when there are labels"
ID_HELP = (
    "tables: the column that names the rows (default: a text column with a different value in every row)"
)
TRAIN_FLAGS = {  # flag -> (TrainConfig field, type, help)
    "--epochs": ("epochs", int, "passes over the training data (with --resume: the new total)"),
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
MODEL_FLAGS = {  # flag -> the model setting it sets (checked against the model before training)
    "--latent-dim": "latent_dim",
    "--hidden": "hidden",
    "--lambda": "rd_lambda",
    "--noise": "noise",
}
RESUME_HONOURS = ("--resume", "--epochs", "--quiet")  # every other train flag is refused with --resume
NAN_ADVICE = "Try a lower --lr, --grad-clip, or --set train.nan_policy=skip"


def _registered(kind: str, load: Callable[[], Any]) -> Callable[[str], str]:
    """An argparse type: a name in a registry (models, presets), which is imported only when the flag is
    given, so that parsing and ``--help`` need no torch (``choices=`` would import it for the help text)."""

    def check(name: str) -> str:
        known = load()
        if name not in known:
            raise argparse.ArgumentTypeError(f"unknown {kind} {name!r} (known: {', '.join(sorted(known))})")
        return name

    check.__name__ = kind  # argparse names the type in some messages
    return check


def _models() -> Any:
    from aekit.models import MODELS

    return MODELS


def _presets() -> Any:
    from aekit.config import PRESETS

    return PRESETS


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


def _noise(flag: str, text: str) -> tuple[str, Any]:
    """``KIND=LEVEL`` of ``flag``; a bad value is blamed on the flag, not on the data."""
    from aekit.apps.denoise import parse_noise

    try:
        return parse_noise(text)
    except DataError as e:
        raise ConfigError(f"{flag}: {e}") from None


def _given(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The options of ``args``'s (sub)command that the user set: each one's first long spelling."""
    given = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            if name in action.choices:
                given += _given(action.choices[name], args)
        elif action.option_strings and getattr(args, action.dest, action.default) != action.default:
            given.append(
                next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
            )
    return given


def _add_output(p: argparse.ArgumentParser, dest: str, help_: str, required: bool = True) -> None:
    """``-o``, ``--out`` and ``--output``: every command takes all three spellings."""
    p.add_argument("-o", "--out", "--output", dest=dest, required=required, help=help_)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model and write a run directory",
        description="Train a model and write a run directory. Settings: defaults < --preset < --config "
        "< flags. --noise trains the 'denoising' model (the one model that trains against noise) and "
        "says so; with --resume only --epochs (a new total) may be given.",
    )
    p.add_argument(
        "--model",
        type=_registered("model", _models),
        metavar="NAME",
        help="model to train; 'aekit models' lists them (default: the preset's, else dense)",
    )
    p.add_argument(
        "--preset",
        type=_registered("preset", _presets),
        metavar="NAME",
        help="named starting point; 'seed' is the classic 784-128-64-32",
    )
    p.add_argument("--data", help="dataset name, scheme:PATH or path (default mnist-5k)")
    p.add_argument("--limit", type=_count, help=LIMIT_HELP)
    p.add_argument(
        "--missing", choices=("error", "drop", "impute"), help="tables: missing values (default error)"
    )
    p.add_argument("--id-column", help=ID_HELP)
    _add_output(p, "out", "run directory to create (default runs/MODEL-TIME)", required=False)
    p.add_argument("--config", help="TOML or JSON settings file, or a run's config.json (flags override it)")
    p.add_argument(
        "--resume", metavar="RUN", help="continue RUN from its last checkpoint (only --epochs may change)"
    )
    for flag, (_, typ, help_) in TRAIN_FLAGS.items():
        p.add_argument(flag, type=typ, help=help_)
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument(
        "--cpu-bf16", action="store_true", help="bfloat16 autocast on the CPU (~2x with AVX-512 BF16)"
    )
    p.add_argument(
        "--compile-step",
        action="store_true",
        help="compile the whole training step into one graph (CPU; small models; first step compiles)",
    )
    p.add_argument("--latent-dim", type=_count, help="size of the code")
    p.add_argument("--hidden", type=_sizes, help="hidden layer sizes, e.g. 128,64")
    p.add_argument(
        "--lambda", dest="rd_lambda", metavar="LAMBDA", type=float, help="codec: rate-distortion trade-off"
    )
    p.add_argument(
        "--noise",
        metavar="KIND=LEVEL",
        help="train the denoising model against this noise, e.g. gaussian=0.3, or a blind range "
        "gaussian=0.1,0.5 (kinds: gaussian, salt_and_pepper, masking, occlusion, mixture)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="any setting, e.g. model.loss=bce",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    _add_image_flags(p)


def _add_whole_image_flags(p: argparse.ArgumentParser) -> None:
    """How a fully convolutional run goes over whole images: in tiles, at which precision."""
    p.add_argument("--tile", type=_count, help="fully convolutional runs: process large images in NxN tiles")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16"),
        help="fully convolutional runs: bf16 autocast, about 2x faster on recent CPUs (outputs within ~1e-2)",
    )


def _add_image_flags(p: argparse.ArgumentParser) -> None:
    """Image-folder flags of train (see aekit.data.images); they fill the config's data section."""
    g = p.add_argument_group("image folders")
    g.add_argument("--channels", type=int, choices=(1, 3), help="grey (1) or RGB (3); default: most images'")
    g.add_argument("--patch", type=_count, help="random NxN crops (with --set model.arch=fcn: any size)")
    g.add_argument("--resize", metavar="HxW", help="resize every image to HxW")
    g.add_argument("--center-crop", metavar="HxW", help="the central HxW of every image")
    g.add_argument("--skip-bad", action="store_true", help="skip unreadable images (counted)")


def train_layers(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    """The config layers ``aekit train``'s flags ask for (preset, file, flags), and notes to print.

    Raises:
        ConfigError: a bad --set, --noise or --config, or a model flag the chosen model has no setting for
            (named as the user typed it, e.g. --lambda).
    """
    from aekit.config import preset_layer, read_config_file

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
            "channels": args.channels,
            "patch": args.patch,
            "resize": args.resize,
            "center_crop": args.center_crop,
            "skip_bad": args.skip_bad or None,
        },
        "train": {
            field: getattr(args, flag[2:].replace("-", "_")) for flag, (field, _, _) in TRAIN_FLAGS.items()
        },
    }
    if args.no_amp:
        flags["train"]["amp"] = False
    if args.cpu_bf16:
        flags["train"]["cpu_bf16"] = True
    if args.compile_step:
        flags["train"]["compile_step"] = True
    notes = []
    earlier = next((m["name"] for m in (x.get("model", {}) for x in reversed(layers)) if m.get("name")), None)
    if args.noise:
        kind, level = _noise("--noise", args.noise)
        low, high = level if isinstance(level, tuple) else (level, 0.0)
        flags["model"].update(noise=kind, noise_level=low, noise_level_max=high)
        if not args.model:
            flags["model"]["name"] = "denoising"
            instead = (
                f" instead of the {'preset' if args.preset else 'config file'}'s {earlier!r}"
                if earlier
                else ""
            )
            notes.append(
                f"--noise: training the 'denoising' model{instead} (the model that trains against noise)"
            )
    for item in args.set:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in flags:
            raise ConfigError(
                f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION one of model, data, train"
            )
        flags[section][name] = _value(value)
    layers.append(flags)
    _check_model_flags(flags["model"].get("name") or earlier or "dense", args)
    if args.patch:
        from aekit.training.run import patches_make_fcn

        if patches_make_fcn(layers):
            notes.append(
                "--patch: training a fully convolutional model (model.arch=fcn), which takes images of any "
                "size; --set model.arch=conv trains one for the patch's size only"
            )
    return layers, notes


def _check_model_flags(name: str, args: argparse.Namespace) -> None:
    """Refuse a model flag (--lambda, --noise...) whose setting model ``name`` lacks, naming the flag."""
    import dataclasses

    from aekit.models import MODELS

    if name not in MODELS:
        return  # the config's own check names the unknown model
    for flag, setting in MODEL_FLAGS.items():
        if getattr(args, setting, None) is None:
            continue
        if setting not in {f.name for f in dataclasses.fields(MODELS[name].config_cls)}:
            have = [
                n for n, s in MODELS.items() if setting in {f.name for f in dataclasses.fields(s.config_cls)}
            ]
            raise ConfigError(
                f"{flag}: the {name!r} model has no such setting; {flag} applies to "
                f"{', '.join(repr(h) for h in have)} (choose it with --model {have[0]})"
            )


def cmd_train(args: argparse.Namespace) -> int:
    from aekit.training.trainer import TrainingError

    if args.resume:
        return _resume(args)
    layers, notes = train_layers(args)
    for note in notes:
        print(note)
    from aekit import api
    from aekit.training.distributed import is_main

    try:
        run = api.train_from_layers(layers, out=args.out, progress=not args.quiet)
    except TrainingError as e:
        raise TrainingError(e.reason, NAN_ADVICE) from None
    last = run.history[-1] if run.history else {}
    summary = ", ".join(f"{k} {v:.5f}" for k, v in last.items() if k.endswith("/loss"))
    if is_main():  # under torchrun, one line from rank 0
        print(f"wrote {run.path} ({summary})")
        schema = run.schema()
        for note in schema.notes() if schema is not None else []:  # table columns that are not features
            print(f"note: {note}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    """``train --resume RUN``: only --epochs can change; any other setting flag is refused by name."""
    refused = [flag for flag in args.given_flags if flag not in RESUME_HONOURS]
    if refused:
        raise ConfigError(
            f"--resume continues {args.resume} with its own settings and data; it cannot honour "
            f"{', '.join(refused)} (only --epochs, a new total, may be given; start a new run for the others)"
        )
    from aekit import api
    from aekit.training.distributed import is_main
    from aekit.training.trainer import TrainingError

    if args.epochs is not None and is_main():
        print(f"--epochs {args.epochs}: {args.resume} trains on to {args.epochs} epochs in all")
    try:
        run = api.resume(args.resume, epochs=args.epochs, progress=not args.quiet)
    except TrainingError as e:
        raise TrainingError(e.reason, NAN_ADVICE) from None
    if is_main():
        print(f"resumed and finished {run.path} ({len(run.history)} epochs)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import aekit
    from aekit.data.sources import describe_data

    run = aekit.load(args.run, device=args.device)
    name = args.data or run.config.data.source
    data = run.load_data(name, args.split, limit=args.limit, missing=args.missing)
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
    from aekit.outputs import check_samples_output, write_samples

    run = aekit.load(args.run, device=args.device)
    if _any_size(run, args):  # a fully convolutional run on an image folder: each image at its size
        return 0
    check_samples_output(args.output, run.model.input_shape, args.force)  # before the work
    data = run.prepare(run.load_data(args.input, args.split, limit=args.limit, missing=args.missing))
    x_hat = run.reconstruct(data, batch_size=args.batch_size, progress="reconstructing")
    path = write_samples(args.output, x_hat, like=data, force=args.force)
    print(f"wrote {len(x_hat)} reconstructions to {path}")
    return 0


def _any_size(run, args: argparse.Namespace, what: str = "reconstructed") -> bool:
    """A fully convolutional run on an image folder: image by image, each at its own size."""
    from aekit.apps.images import restore_folder, takes_any_size

    if not takes_any_size(run, args.input):
        ignored = [
            f for f, on in (("--tile", args.tile), ("--precision bf16", args.precision != "fp32")) if on
        ]
        if ignored:
            print(
                f"note: {' and '.join(ignored)} apply to fully convolutional runs on image folders; "
                f"{args.run} on {args.input} runs its fixed-size samples as usual",
                file=sys.stderr,
            )
        return False
    noise = None
    if getattr(args, "add_noise", None):
        from aekit.apps.denoise import parse_noise

        noise = parse_noise(args.add_noise)
    r = restore_folder(
        run, args.input, args.output, tile=args.tile, add_noise=noise, clean=getattr(args, "clean", None),
        seed=getattr(args, "seed", 0), force=args.force, progress=True, precision=args.precision,
    )  # fmt: skip
    print(f"{what} {r['n']} images with {args.run} -> {args.output}/ (same names and sizes)")
    for k, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM")):
        if k in r:
            print(f"  {label:9s}  input {r['input_' + k]:9.4f}  output {r[k]:9.4f}")
    return True


def cmd_denoise(args: argparse.Namespace) -> int:
    if args.add_noise and args.clean:
        raise ConfigError("--add-noise makes INPUT the clean images; do not also pass --clean")
    noise = _noise("--add-noise", args.add_noise) if args.add_noise else None
    import torch

    import aekit
    from aekit.apps.denoise import Denoiser, add_noise, comparison_figure, quality
    from aekit.fileio import new_output
    from aekit.outputs import check_samples_output, write_samples
    from aekit.report.figures import save_figure

    den = Denoiser.load(args.run, device=args.device)
    if _any_size(den.run, args, "denoised"):
        return 0
    check_samples_output(args.output, den.run.model.input_shape, args.force)  # before the work
    if args.figure:
        new_output(args.figure, args.force)
    missing = {"missing": args.missing} if args.missing else {}
    data = den.run.prepare(aekit.load_dataset(args.input, **missing))
    clean = den.run.prepare(aekit.load_dataset(args.clean, **missing)) if args.clean else None
    if noise is not None:
        clean, data = data, den.run.prepare(add_noise(data, *noise, seed=args.seed))
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


DETECT_OPTIONS = ("model", "score", "device", "fpr", "percentile", "contamination", "epochs", "latent_dim")
DETECT_OPTIONS += ("seed", "iw_samples", "lr", "batch_size", "window", "stride", "series_score", "robust")
DETECT_OPTIONS += ("neighbors", "cross_channel")


def cmd_detect_fit(args: argparse.Namespace) -> int:
    from aekit.apps import detect
    from aekit.training.trainer import TrainingError

    detect.new_directory(args.out)  # before the work (fit_and_save checks again)
    options = {k: getattr(args, k) for k in DETECT_OPTIONS if getattr(args, k) is not None}
    try:
        result = detect.fit_and_save(
            args.data,
            args.out,
            normal_class=args.normal_class,
            limit=args.limit,
            test_limit=args.test_limit,
            missing=args.missing,
            id_column=args.id_column,
            patch=args.patch,
            options=options,
            progress=not args.quiet,
        )
    except TrainingError as e:
        raise TrainingError(e.reason, "Try a lower --lr") from None
    det = result.detector
    print(f"wrote {result.out} (score {det.score_}, threshold {det.threshold_:.5g} for held-out normals)")
    if result.metrics is not None:
        print(f"on {args.data} test ({len(result.test)} samples):")
        print("\n".join(detect.evaluation_lines(result.metrics)))
    return 0


def cmd_detect_score(args: argparse.Namespace) -> int:
    from aekit.apps import detect
    from aekit.apps.anomaly import AnomalyDetector, class_index
    from aekit.apps.embed import write_scores
    from aekit.fileio import new_output

    output = new_output(args.output, args.force)  # every output is checked before the work
    if output.suffix.lower() != ".csv":
        raise ConfigError(f"{output}: scores are written as CSV; name the output *.csv")
    det = AnomalyDetector.load(args.detector, device=args.device)
    series = det.windowing_ is not None  # series detectors: --figures draws the signal and its spans
    if args.figures and args.normal_class is None and not series:
        raise ConfigError("--figures draws the ROC curve against labels: give --normal-class too")
    if args.figures and not series:
        detect.check_figures(output.parent, args.force)
    from aekit.apps.images import load_images, takes_any_size

    normal = None
    if takes_any_size(det.run_, args.input):  # image by image, at their own sizes, with anomaly maps
        from aekit.apps.anomaly_maps import score_images, write_maps

        data = load_images(det.run_, args.input)
        scores, maps = score_images(det.run_, data, tile=args.tile, progress=not args.quiet)
        if args.maps:
            print(f"wrote {len(maps)} anomaly maps to {write_maps(args.maps, data, maps)}/")
    elif args.maps:
        raise ConfigError("--maps needs an image folder and a detector made by aekit detect fit --patch N")
    else:
        data = det.run_.load_data(args.input, args.split, limit=args.limit, missing=args.missing)
        if args.normal_class is not None:
            if data.y is None:
                figures = " and --figures" if args.figures else ""
                print(f"note: {args.input} has no labels, so --normal-class{figures} are left out (no AUROC)")
            else:
                normal = class_index(data, args.normal_class)  # a wrong class fails before the work
        scores = det.anomaly_score(data, progress=not args.quiet)
    flagged = scores > det.threshold_
    if series:  # one row per time step, and the signal with its flagged spans
        from aekit.apps.series import write_scores as write_series_scores

        print(write_series_scores(det, data, scores, output, figure=args.figures))
        return 0
    write_scores(output, scores, flagged, data, force=args.force)
    print(f"scored {len(data)} samples: {int(flagged.sum())} flagged as anomalies -> {output}")
    if normal is not None:
        metrics = detect.evaluate_labels(det, data, normal, output.parent if args.figures else None)
        print("\n".join(detect.evaluation_lines(metrics)))
        if args.figures:
            written = [str(output.parent / f) for f in detect.FIGURES if (output.parent / f).exists()]
            print(f"wrote {', '.join(written)}")
    return 0


def cmd_detect_clean(args: argparse.Namespace) -> int:
    from aekit.apps.anomaly import AnomalyDetector
    from aekit.apps.clean import clean

    det = AnomalyDetector.load(args.detector, device=args.device)
    data = det.run_.load_data(args.input, args.split)
    result = clean(det, data, args.output, repair=args.repair, source=args.input)
    if not args.quiet:
        print(result.summary())
    return 0


def _test_data(runs: list, name: str | None, limit: int, skip: bool) -> list:
    """Each run's test data, or None with a note when it is not here (or with --no-data)."""
    from aekit.apps.compare import load_test_data

    data, loaded = [], {}  # runs of one dataset share one load
    for run in runs:
        key = name or run.config.data.source
        if not skip and key not in loaded:
            try:
                loaded[key] = load_test_data(run, name, limit)
            except DataError as e:
                print(f"note: no test data for {run.path} ({e}); leaving out test metrics")
                loaded[key] = None
        data.append(None if skip else loaded[key])
    return data


def cmd_report(args: argparse.Namespace) -> int:
    import aekit
    from aekit.report.artifacts import write_runs_report
    from aekit.report.html import REPORT

    if args.output is None and len(args.runs) > 1:
        raise ConfigError("several runs: name the page with -o compare.html")
    runs = [aekit.load(r) for r in args.runs]
    out = Path(args.output) if args.output else runs[0].path / REPORT
    write_runs_report(runs, _test_data(runs, args.data, args.limit, args.no_data), out)
    print(f"wrote {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import aekit
    from aekit.apps.compare import compare_rows, format_table

    runs = [aekit.load(path) for path in args.runs]
    data = _test_data(runs, args.data, args.limit, args.no_data)
    print(format_table(compare_rows(runs, [str(p) for p in args.runs], data)))
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from aekit.apps.codec import Codec, load_codec
    from aekit.fileio import atomic_write_bytes, new_output

    codec = load_codec(args.run, device=args.device)
    if not isinstance(codec, Codec):  # a hyperprior run: .aek v2, images of any size
        from aekit.apps.aek_files import compress_command

        rate = {"quality": args.quality, "target_psnr": args.target_psnr, "target_bpp": args.target_bpp}
        print(
            compress_command(
                codec,
                args.input,
                args.output,
                **rate,
                split=args.split,
                limit=args.limit,
                force=args.force,
                progress=not args.quiet,
                refine=args.refine,
            )
        )
        return 0
    if args.quality is not None or args.target_psnr is not None or args.target_bpp is not None:
        raise ConfigError(f"{args.run}: --quality and the targets need a hyperprior run")
    if args.refine:
        raise ConfigError(f"{args.run}: --refine needs a hyperprior run")
    output = new_output(args.output, args.force)
    data = codec.run.prepare(
        codec.run.load_data(args.input, args.split, limit=args.limit, missing=args.missing)
    )
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

    from aekit.apps.codec import Codec, load_codec, read_aek
    from aekit.data.files import from_array
    from aekit.outputs import check_samples_output, write_samples

    codec = load_codec(args.run, device=args.device)
    if not isinstance(codec, Codec):  # a hyperprior run: PNGs of each image's own size
        from aekit.apps.aek_files import decompress_command

        print(decompress_command(codec, args.input, args.output, args.force, progress=not args.quiet))
        return 0
    check_samples_output(args.output, codec.run.model.input_shape, args.force)  # before the work
    images = codec.decompress(read_aek(args.input), name=args.input)
    like = from_array(images, args.input)
    path = write_samples(args.output, images.astype(np.float32) / 255, like=like, force=args.force)
    print(f"wrote {len(images)} images to {path}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import aekit
    from aekit.apps import generate
    from aekit.outputs import check_samples_output

    run = aekit.load(args.run, device=args.device)
    if run.model.data_kind == "tokens" or args.music:
        return _generate_music(run, args)
    if len(run.model.input_shape) != 3:
        raise ConfigError(
            f"{args.run}: generates images; this model's samples have shape {run.model.input_shape}"
        )
    check_samples_output(args.output, run.model.input_shape, args.force)  # before the work
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
        if len(images) <= 128:
            print("  note: fewer samples than the 128 features: the distance is unreliable; use -n 1000")
        m = generate.sample_quality(run, images)
        print(
            f"  Fréchet distance in aekit's own {m['source']} classifier features (not the Inception FID): "
            f"{m['frechet']:.3f} (two halves of the real test images: {m['frechet_real_halves']:.3f})"
        )
        print(f"  label entropy of the samples {m['label_entropy']:.3f} of {m['label_entropy_max']:.3f} nats")
        print("  label share: " + ", ".join(f"{v:.3f}" for v in m["label_share"]))
    return 0


def _generate_music(run, args: argparse.Namespace) -> int:
    from aekit.apps import generate

    if run.model.data_kind != "tokens":
        raise ConfigError(
            f"{args.run}: --music needs a music model (aekit train --model music-vae), "
            f"not {run.config.model!r}"
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
    from aekit.apps.embed import check_codes_output, pool_codes, write_codes
    from aekit.apps.images import takes_any_size
    from aekit.fileio import new_output

    output = new_output(args.output, args.force)
    check_codes_output(output)
    run = aekit.load(args.run, device=args.device)
    if takes_any_size(run, args.input):  # a fully convolutional run on an image folder: spatial codes
        from aekit.apps.images import code_shapes, image_codes, load_images

        data = load_images(run, args.input, progress=True)
        if args.pool == "none":  # refuse an output that cannot hold these codes before encoding
            check_codes_output(output, code_shapes(run, data))
        codes = list(image_codes(run, data, progress=True))
    else:
        data = run.prepare(run.load_data(args.input, args.split, limit=args.limit, missing=args.missing))
        codes = run.encode(data, batch_size=args.batch_size, progress="embedding")
    if args.pool != "none" and len(codes) and codes[0].ndim > 1:
        codes = pool_codes(codes, args.pool)
    write_codes(output, codes, data, force=args.force)
    shapes = {tuple(c.shape) for c in codes}
    shape = "x".join(map(str, shapes.pop())) if len(shapes) == 1 else "per-image shape"
    print(f"wrote {len(codes)} codes of {shape} to {output}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import aekit
    from aekit.apps.export import export_onnx
    from aekit.fileio import new_output

    output = new_output(args.output, args.force)
    check = export_onnx(aekit.load(args.run, device=args.device), output, part=args.part)
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


IMAGE_OUTPUTS = ".npy, IDX (*-ubyte[.gz]), a .png figure or a folder of PNGs"


def _add_data_options(p: argparse.ArgumentParser, split: bool = True, limit: bool = True) -> None:
    """--split, --limit and --missing, the same on every command that reads data."""
    if split:
        p.add_argument("--split", default="test", choices=("train", "test"), help="for named datasets")
    if limit:
        p.add_argument("--limit", type=_count, help=LIMIT_HELP)
    p.add_argument(
        "--missing",
        choices=("error", "drop", "impute"),
        help="tables: missing values (default: the run's rule, error unless trained otherwise)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``aekit`` parser; building it imports no PyTorch (model names are read when checked)."""
    from aekit._version import __version__

    parser = argparse.ArgumentParser(prog="aekit", description="Autoencoders: train, show, apply.")
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    p = sub.add_parser(
        "evaluate", help="test MSE, PSNR and SSIM of a run's reconstructions (tables: per-column errors)"
    )
    p.add_argument("run")
    p.add_argument("--data", help="dataset (default: the one the run trained on)")
    _add_data_options(p)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--iw-samples",
        type=_natural,
        default=0,
        metavar="K",
        help="VAE family: importance-weighted NLL with K samples",
    )
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p = sub.add_parser(
        "reconstruct",
        help="reconstruct IDX, .npy, .csv or an image folder",
        description="Reconstruct data with a run. The output is checked before any work.",
    )
    p.add_argument("run")
    p.add_argument("input", help="dataset name, scheme:PATH or path (IDX, .npy, .csv, images)")
    _add_output(p, "output", f"images: {IMAGE_OUTPUTS}; tables: .npy or .csv")
    _add_data_options(p)
    p.add_argument("--batch-size", type=_count, default=1024)
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--device", default="cpu")
    _add_whole_image_flags(p)
    p = sub.add_parser("denoise", help="denoise IDX, .npy or an image folder with a trained run")
    p.add_argument("run")
    p.add_argument("input", help="the noisy images (or the clean ones with --add-noise)")
    _add_output(p, "output", IMAGE_OUTPUTS)
    p.add_argument("--clean", help="the clean images, to print PSNR/SSIM and draw them in the figure")
    p.add_argument(
        "--add-noise",
        metavar="KIND=LEVEL",
        help="corrupt INPUT first (it is then the clean reference), e.g. gaussian=0.3",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of --add-noise")
    p.add_argument("--figure", help="write a noisy / denoised / clean figure to this .png")
    _add_data_options(p, split=False, limit=False)
    p.add_argument("--batch-size", type=_count, default=1024)
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    p.add_argument("--device", default="cpu")
    _add_whole_image_flags(p)
    p = sub.add_parser("detect", help="anomaly detection: fit a detector, score data")
    dsub = p.add_subparsers(dest="detect_command", required=True, metavar="fit|score|clean")
    p = dsub.add_parser("fit", help="train a detector on normal data and calibrate its threshold")
    p.add_argument("--data", default="mnist-5k", help="dataset name, scheme:PATH or path")
    p.add_argument("--normal-class", help="train on this class only (name or index); test on all")
    _add_output(p, "out", "detector directory to create")
    p.add_argument(
        "--model",
        default="auto",
        help="model (default: geoconv for square images, else conv; conv1d for series; dense for tables)",
    )
    p.add_argument("--score", default="auto", help="auto, mse, ssim, nll, latent, knn, combined or codes")
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--fpr", type=float, help="target false-positive rate on normal data (default 0.01)")
    rule.add_argument("--percentile", type=float, help="threshold at this percentile of normal scores")
    rule.add_argument("--contamination", type=float, help="share of anomalies in the training data")
    p.add_argument("--epochs", type=_count)
    p.add_argument("--lr", type=float, help="learning rate (default 0.002)")
    p.add_argument("--batch-size", type=_count, help="samples per step (default 128)")
    p.add_argument("--latent-dim", type=_count)
    p.add_argument("--iw-samples", type=_natural, help="nll score: importance samples")
    p.add_argument("--neighbors", type=_count, help="knn and codes scores: nearest training codes (20)")
    p.add_argument("--seed", type=int)
    _add_data_options(p, split=False)
    p.add_argument("--id-column", help=ID_HELP)
    p.add_argument("--test-limit", type=_count, help="evaluate on N test samples (drawn as --limit)")
    p.add_argument("--patch", type=_count, help="images of any size: a fully convolutional model on patches")
    p.add_argument("--window", type=_count, help="series: steps per window (default: the dominant period)")
    p.add_argument("--stride", type=_count, help="series: steps between scoring windows (default window/8)")
    p.add_argument(
        "--robust", choices=("l1", "l21", "l20"), help="robust autoencoder for contaminated training data"
    )
    p.add_argument(
        "--series-score",
        choices=("auto", "peak", "window", "step"),
        help="series: peak, window or step error per step (auto, the default: peak for one channel, "
        "window for several)",
    )
    p.add_argument(
        "--cross-channel",
        action=argparse.BooleanOptionalAction,
        help="series of several channels: also score each channel against what the others predict "
        "(default: on for more than one channel)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p = dsub.add_parser("score", help="score samples with a detector; write a CSV")
    p.add_argument("detector")
    p.add_argument("input", help="dataset name, scheme:PATH or path (IDX, .npy, images, CSV)")
    _add_output(p, "output", "scores.csv")
    _add_data_options(p)
    p.add_argument("--normal-class", help="labels present: print AUROC etc. with this class as normal")
    p.add_argument(
        "--figures",
        action="store_true",
        help="with --normal-class: roc.png and extremes.png beside the CSV; series detectors: series.png",
    )
    p.add_argument("--force", action="store_true", help="replace the CSV and figures if they exist")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--maps", metavar="DIR", help="fully convolutional detectors: a heat map PNG per image")
    p.add_argument("--tile", type=_count, help="fully convolutional detectors: large images in NxN tiles")
    p = dsub.add_parser("clean", help="write the data without its anomalies (or repaired) to a new folder")
    p.add_argument("detector")
    p.add_argument("input", help="dataset name, scheme:PATH or path (images, .npy, CSV, series:PATH)")
    _add_output(p, "output", "a new folder: the cleaned data and removed.csv")
    p.add_argument("--repair", action="store_true", help="replace anomalous values by the reconstruction")
    p.add_argument("--split", default="train", choices=("train", "test"), help="for named datasets")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    p = sub.add_parser("compress", help="compress images to an .aek file with a codec run")
    p.add_argument("run")
    p.add_argument("input", help="dataset name, scheme:PATH or path (IDX, .npy, images)")
    _add_output(p, "output", "images.aek, or a folder/ for one file per image (hyperprior runs)")
    _add_data_options(p)
    p.add_argument("--quality", type=float, help="hyperprior runs: 1 (smallest) .. 8 (best); default 4")
    p.add_argument("--target-psnr", type=float, help="hyperprior runs: the lowest quality reaching this PSNR")
    p.add_argument(
        "--target-bpp", type=float, help="hyperprior runs: the best quality within these bits/pixel"
    )
    p.add_argument(
        "--refine", type=int, default=0, help="hyperprior runs: optimise each image's latents for N steps"
    )
    p.add_argument("--force", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("decompress", help="images back from an .aek file")
    p.add_argument("run")
    p.add_argument("input", help="images.aek (hyperprior runs: or a folder of .aek files)")
    _add_output(p, "output", ".npy, IDX (*-ubyte[.gz]), a .png figure or a folder of PNGs")
    p.add_argument("--force", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("generate", help="images from the latent space: samples, interpolations, the 2-D grid")
    p.add_argument("run")
    p.add_argument("-n", type=_count, default=64, help="samples to draw (default 64)")
    _add_output(p, "output", "a .png grid, .npy, IDX (*-ubyte[.gz]) or a folder of PNGs (music: a folder)")
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
    _add_output(p, "output", "codes.npy, codes.npz or codes.csv")
    _add_data_options(p)
    p.add_argument("--batch-size", type=_count, default=1024)
    p.add_argument(
        "--pool",
        default="none",
        choices=("none", "mean", "max"),
        help="fully convolutional runs: spatial codes as they are (none) or one vector per image",
    )
    p.add_argument("--force", action="store_true")
    p.add_argument("--device", default="cpu")
    p = sub.add_parser("export", help="export the encoder, decoder or both to ONNX (checked)")
    p.add_argument("run")
    _add_output(p, "output", "model.onnx")
    p.add_argument("--part", default="both", choices=("encoder", "decoder", "both"))
    p.add_argument("--force", action="store_true")
    p.add_argument("--device", default="cpu", help="where the model runs while exporting (default cpu)")
    p = sub.add_parser("report", help="write report.html for a run, or one page for several runs")
    p.add_argument("runs", nargs="+", metavar="RUN")
    _add_output(p, "output", "the page (default RUN/report.html for one run)", required=False)
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
    "detect": lambda args: {"fit": cmd_detect_fit, "score": cmd_detect_score, "clean": cmd_detect_clean}[
        args.detect_command
    ](args),
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
    args.given_flags = _given(parser, args)  # the options the user typed, e.g. for --resume's check
    try:
        code = COMMANDS[args.command](args)
        if "torch.distributed" in sys.modules:  # under torchrun: every rank done before any leaves
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.barrier()
        return code
    except AekitError as e:
        print(f"aekit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        where = f"; continue with aekit train --resume {args.out or 'RUN'}" if args.command == "train" else ""
        print(f"aekit: interrupted (files written so far are intact{where})", file=sys.stderr)
        return 130
    finally:
        if "torch.distributed" in sys.modules:  # under torchrun: leave the group cleanly
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()


def entry_point() -> None:
    sys.exit(main())
