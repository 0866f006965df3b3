"""Export a run's encoder and/or decoder to ONNX, checked against PyTorch before success is reported.

Uses torch's ONNX exporter, which needs the optional ``onnxscript`` package, and ONNX Runtime
for the check (``pip install -c constraints.txt -e ".[onnx]"``). The batch dimension is dynamic;
for fully convolutional runs (``model.arch=fcn``) so are height and width: the graph takes any
image whose sides are multiples of the model's stride (pad first, as
:func:`aekit.data.patches.pad_to_multiple` does) and its spatial code (C, H/stride, W/stride).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from aekit.api import Run
from aekit.errors import AekitError, ConfigError
from aekit.fileio import atomic_path

PARTS = ("encoder", "decoder", "both")
TOLERANCE = 1e-5


class _Part(nn.Module):
    """One deterministic half (or the whole) of a model, as a plain function of tensors."""

    def __init__(self, model: nn.Module, part: str) -> None:
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x: Tensor) -> Tensor:
        if self.part == "encoder":
            return self.model.encode(x)
        if self.part == "decoder":
            return self.model.decode(x)
        return self.model.decode(self.model.encode(x))


@contextlib.contextmanager
def _quiet():
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_onnx(run: Run, path: str | Path, part: str = "both", batch: int = 4) -> dict[str, float]:
    """Write ``path`` (atomically) and check ONNX Runtime's outputs against PyTorch's.

    Args:
        part: ``encoder`` (inputs -> codes), ``decoder`` (codes -> reconstructions) or ``both``.

    Returns:
        The largest absolute difference found, and the batch sizes checked.

    Raises:
        ConfigError: a conditional model (its halves need labels), an unknown part, or the
            optional packages missing.
        AekitError: the exported graph disagrees with PyTorch beyond 1e-5.
    """
    if part not in PARTS:
        raise ConfigError(f"unknown part {part!r} (expected encoder, decoder or both)")
    model = run.model.eval().cpu()
    if model.conditional:
        raise ConfigError(
            f"model {run.config.model!r} is conditional on labels; export supports unconditional models"
        )
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError as e:
        raise ConfigError(
            f"ONNX export needs the optional packages onnx, onnxscript and onnxruntime ({e.name} is "
            'missing): pip install -c constraints.txt -e ".[onnx]"'
        ) from None
    module = _Part(model, part).eval()
    shape, dims, sizes = _geometry(model, part, batch)
    g = torch.Generator().manual_seed(0)
    example = torch.rand(batch, *shape, generator=g)
    path = Path(path)
    with atomic_path(path) as tmp:
        with _quiet():  # the exporter narrates each stage and warns about torchvision's absence
            torch.onnx.export(
                module,
                (example,),
                str(tmp),
                input_names=["input"],
                output_names=["output"],
                dynamic_shapes={"x": dims},
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        worst = 0.0
        for size in sizes:
            x = torch.rand(*size, generator=g)
            with torch.no_grad():
                want = module(x).numpy()
            got = session.run(None, {"input": x.numpy()})[0]
            if got.shape != want.shape:
                raise AekitError(f"{path}: ONNX output shape {got.shape} differs from PyTorch's {want.shape}")
            worst = max(worst, float(np.abs(got - want).max()))
        if worst > TOLERANCE:
            raise AekitError(
                f"{path}: ONNX Runtime differs from PyTorch by {worst:.2e} (> {TOLERANCE:g}); not written"
            )
    return {"max_abs_diff": worst, "batches_checked": sorted({size[0] for size in sizes})}


def _geometry(model: nn.Module, part: str, batch: int) -> tuple[tuple[int, ...], dict, list[tuple[int, ...]]]:
    """The example input's shape (without the batch), its dynamic dimensions for the exporter, and
    the input sizes to check ONNX Runtime on: several batch sizes and, for fully convolutional
    models, several heights and widths (multiples of the stride)."""
    batches = (1, batch, 3 * batch + 1)  # the batch dimension really is dynamic
    dims: dict = {0: torch.export.Dim("batch", min=1)}
    if not model.any_size:
        shape = (model.config.latent_dim,) if part == "decoder" else tuple(model.input_shape)
        return shape, dims, [(n, *shape) for n in batches]
    from aekit.models.fcn import geometry

    stride, _ = geometry(model)
    c, h, w = model.input_shape
    if part == "decoder":  # the spatial code of an image of the training size
        c, h, w, stride = model.config.latent_dim, h // stride, w // stride, 1
    dims |= {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    sides = [(h, w), (h + stride, 2 * w), (3 * stride, w + 5 * stride)]  # taller, wider, odd multiples
    return (c, h, w), dims, [(n, c, a, b) for n in batches for a, b in sides]
