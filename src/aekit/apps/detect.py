"""``aekit detect``: fit a detector and write its directory; evaluate it against labels.

The CLI parses and prints; the work is here, in three small functions the Python API can call too:

- :func:`fit_and_save`: train an :class:`~aekit.apps.anomaly.AnomalyDetector` on (one class of) a
  dataset, save it, and when the dataset has a test split, evaluate on it (``evaluation.json``,
  ``roc.png``, ``extremes.png``) and write ``report.html``.
- :func:`evaluate_labels`: AUROC, AUPRC and the confusion matrix, with the figures when asked.
- :func:`evaluation_lines`: those numbers as the lines the CLI prints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aekit.apps.anomaly import AnomalyDetector, class_index, extremes_figure
from aekit.data.dataset import ArrayDataset
from aekit.data.sources import SOURCES, load_dataset
from aekit.errors import ConfigError
from aekit.fileio import atomic_write_json, new_output
from aekit.progress import status

FIGURES = ("roc.png", "extremes.png")
# detect fit --patch: a small fully convolutional model for images of any size
PATCH_MODEL = {"arch": "fcn", "channels": (32, 64, 64), "latent_dim": 16}
EVALUATION = "evaluation.json"


@dataclass
class FitResult:
    """What :func:`fit_and_save` did: the detector, its directory, and the test metrics if any."""

    detector: AnomalyDetector
    out: Path
    metrics: dict[str, Any] | None = None
    test: ArrayDataset | None = None
    normal: int | None = None
    notes: list[str] = field(default_factory=list)


def new_directory(out: str | Path, flag: str = "--out") -> Path:
    """``out`` as a directory to create: refused when it holds anything already.

    Raises:
        ConfigError: ``out`` is a file, or a folder that is not empty.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: already exists; choose another {flag}")
    return out


def fit_and_save(
    data_name: str,
    out: str | Path,
    *,
    normal_class: str | None = None,
    limit: int | None = None,
    test_limit: int | None = None,
    missing: str | None = None,
    id_column: str | None = None,
    patch: int | None = None,
    options: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> FitResult:
    """Fit a detector on ``data_name`` (its class ``normal_class`` only, when given) and write ``out``.

    Args:
        data_name: A dataset name, ``scheme:PATH`` or a path.
        out: The detector directory to create; it must not hold anything yet.
        normal_class: Train on this class only (name or index); the test split, when the dataset
            has one, then measures how well the other classes are told apart.
        limit / test_limit: Use only this many training / test samples.
        missing: Tables: ``error``, ``drop`` or ``impute`` missing values.
        id_column: Tables: the column that names the rows (None: detected).
        patch: Images of any size: train a small fully convolutional model (:data:`PATCH_MODEL`,
            the ``mse`` score unless another is asked for) on random ``patch`` x ``patch`` crops.
        options: :class:`~aekit.apps.anomaly.DetectorConfig` fields (model, score, fpr, epochs, ...).
        progress: Progress bars and status lines.
        log: Where the lines for the user go.

    Raises:
        ConfigError: ``out`` exists and is not empty (checked before any work).
    """
    import torch

    out = new_directory(out)
    options = dict(options or {})
    if patch is not None:
        from aekit.data.images import read_images, say

        images = read_images(data_name.removeprefix("images:"), progress=progress)
        say(images.notes)
        data = (images.head(limit) if limit else images).patches(patch)
        options["model_options"] = PATCH_MODEL
        options["score"] = "mse" if options.get("score", "auto") == "auto" else options["score"]
    else:
        load_options = {"missing": missing} if missing else {}
        if id_column:
            load_options["id_column"] = id_column
        data = load_dataset(data_name, "train", limit=limit, **load_options)
    normal = None
    if normal_class is not None and patch is None:  # patches of a folder carry no labels
        normal = class_index(data, normal_class)
        data = data.subset(torch.nonzero(data.y == normal).flatten())
        log(f"training on the {len(data)} samples of class {normal_class} in {data_name}")
    det = AnomalyDetector(**options)
    det.fit(data, progress=progress)
    det.save(out)
    if det.windowing_ is not None:  # series: draw series.png of the training data, say how it was cut
        from aekit.apps.series import describe_fit

        log(describe_fit(det, data, out))
    result = FitResult(det, out, normal=normal)
    if normal is not None and data_name in SOURCES:
        result.test = load_dataset(data_name, "test", limit=test_limit)
        status("scoring the test split", enabled=progress)
        metrics = evaluate_labels(det, result.test, normal, out)
        result.metrics = {k: v for k, v in metrics.items() if k != "scores"}
        atomic_write_json(out / EVALUATION, {"data": data_name, "normal_class": normal, **result.metrics})
        result.metrics["scores"] = metrics["scores"]
    from aekit.apps.anomaly import report_extras
    from aekit.report.artifacts import write_run_files

    status(f"writing {out / 'report.html'}", enabled=progress)
    write_run_files(dataclasses.replace(det.run_, path=out), None, report_extras(out), figures=False)
    return result


def check_figures(folder: str | Path, force: bool = False) -> list[Path]:
    """The figures :func:`evaluate_labels` writes into ``folder``; refused if they exist, unless ``force``."""
    return [new_output(Path(folder) / name, force) for name in FIGURES]


def evaluate_labels(
    det: AnomalyDetector, data: ArrayDataset, normal: int, figures: str | Path | None = None
) -> dict[str, Any]:
    """AUROC, AUPRC and the confusion matrix with class ``normal`` as normal; figures into ``figures``.

    Returns:
        :meth:`AnomalyDetector.evaluate`'s dict plus ``n_anomalies``, ``n`` and ``normal_name``.
    """
    from aekit.report.figures import roc_curve, save_figure

    truth = (data.y != normal).numpy()
    metrics = det.evaluate(data, truth)
    metrics.update(
        n=len(truth),
        n_anomalies=int(truth.sum()),
        normal_name=data.classes[normal] if data.classes else str(normal),
    )
    if figures is not None:
        folder = Path(figures)
        save_figure(roc_curve(truth, metrics["scores"], title=data.name), folder / FIGURES[0])
        if data.is_image:
            save_figure(extremes_figure(det, data, metrics["scores"]), folder / FIGURES[1])
    return metrics


def evaluation_lines(metrics: dict[str, Any]) -> list[str]:
    """The numbers of :func:`evaluate_labels` as lines: AUROC/AUPRC, rates at the threshold, confusion."""
    cm = metrics["confusion"]
    return [
        f"  AUROC {metrics['auroc']:.4f}  AUPRC {metrics['auprc']:.4f}  (anomalies = not class "
        f"{metrics['normal_name']}, {metrics['n_anomalies']} of {metrics['n']})",
        f"  at threshold {metrics['threshold']:.5g}: FPR {metrics['fpr']:.4f}, TPR {metrics['tpr']:.4f}",
        "                  flagged normal  flagged anomaly",
        f"  true normal     {cm['tn']:14d}  {cm['fp']:15d}",
        f"  true anomaly    {cm['fn']:14d}  {cm['tp']:15d}",
    ]
