"""Images from the latent space: samples, interpolations, the 2-D latent manifold, attribute vectors.

Generative models (VAE, CVAE, AAE) sample their own prior. Every other model (VQ-VAE, dense,
conv...) gets a learned prior over its codes: a Gaussian mixture fitted to the codes of its
training data, saved beside the run as ``code_prior.safetensors`` the first time it is needed;
VQ-VAE samples are snapped to the nearest codebook rows before decoding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aekit.api import Run
from aekit.data.dataset import ArrayDataset
from aekit.errors import ConfigError
from aekit.evaluation.density import fit_mixture, load_mixture, save_mixture
from aekit.fileio import new_output

CODE_PRIOR = "code_prior.safetensors"
PRIOR_SAMPLES = 20000  # training codes the mixture is fitted to


def _class_index(run: Run, label: str | int, classes: list[str], k: int) -> int:
    index = classes.index(str(label)) if str(label) in classes else int(label) if str(label).isdigit() else -1
    if not 0 <= index < k:
        raise ConfigError(f"no class {label!r} (classes: {', '.join(classes) or f'0 to {k - 1}'})")
    return index


def _labels(run: Run, n: int, label: str | int | None) -> torch.Tensor | None:
    model = run.model
    if not model.conditional:
        if label is not None:
            raise ConfigError(f"--label needs a conditional model (cvae); {run.config.model!r} is not")
        return None
    classes = list(run.dataset.classes or [])
    k = model.config.num_classes
    if label is None:
        return torch.arange(n, device=run.device) % k
    return torch.full((n,), _class_index(run, label, classes, k), device=run.device)


def code_prior(run: Run, data: ArrayDataset | None = None, components: int = 10):
    """The run's learned prior over codes: loaded from the run, or fitted to ``data`` and saved."""
    path = run.path / CODE_PRIOR if run.path is not None else None
    if path is not None and path.is_file():
        return load_mixture(path)
    if data is None:
        from aekit.data.sources import load_dataset

        data = load_dataset(run.config.data.source, "train", limit=PRIOR_SAMPLES)
    codes = run.encode(data.subset(torch.arange(min(len(data), PRIOR_SAMPLES))))
    gmm = fit_mixture(codes, components, run.config.train.seed)
    if path is not None:
        save_mixture(gmm, path)
    return gmm


@torch.no_grad()
def decode_codes(run: Run, z: torch.Tensor, y: torch.Tensor | None = None) -> np.ndarray:
    model = run.model.eval()
    if model.has_codebook:  # VQ: onto the codebook
        z = model.quantize(z)[0]
    return model.decode(z.to(run.device), y).float().cpu().numpy()


@torch.no_grad()
def sample(run: Run, n: int, seed: int = 0, label: str | int | None = None, data=None) -> np.ndarray:
    """``n`` images from the prior. Shape: (n, *input_shape), values in [0, 1]."""
    if n < 1:
        raise ConfigError(f"the number of samples must be at least 1, not {n}")
    model = run.model.eval()
    y = _labels(run, n, label)
    if model.generative:
        g = torch.Generator(run.device).manual_seed(seed)
        return model.sample(n, generator=g, y=y).float().cpu().numpy()
    gmm = code_prior(run, data)
    gmm.random_state = seed
    z, _ = gmm.sample(n)
    z = torch.from_numpy(z[np.random.default_rng(seed).permutation(n)]).float()  # sample() sorts by component
    return decode_codes(run, z, y)


@torch.no_grad()
def interpolate(run: Run, a: ArrayDataset, b: ArrayDataset, steps: int = 10) -> np.ndarray:
    """Decode ``steps`` codes on the line between the codes of the first samples of ``a`` and ``b``.

    Conditional models walk with the label of ``a`` (or class 0 when it has none).
    """
    if steps < 2:
        raise ConfigError("--steps must be at least 2")
    xa, ya = run.prepare(a).take(torch.arange(1), run.device)
    xb, yb = run.prepare(b).take(torch.arange(1), run.device)
    model = run.model.eval()
    cond = model.conditional
    if cond:
        ya = ya if ya is not None else torch.zeros(1, dtype=torch.long, device=run.device)
        yb = yb if yb is not None else ya
    za, zb = model.encode(xa, ya if cond else None), model.encode(xb, yb if cond else None)
    t = torch.linspace(0, 1, steps, device=run.device)[:, None]
    return decode_codes(run, za + t * (zb - za), ya.expand(steps) if cond else None)


@torch.no_grad()
def latent_grid(run: Run, per_side: int = 15, span: float = 2.5, label=None) -> np.ndarray:
    """The decoded 2-D latent manifold: a ``per_side`` x ``per_side`` grid of codes, row by row.

    For models with a standard normal prior the grid is evenly spaced in probability (the
    normal's quantiles), as in Kingma & Welling's figure; otherwise it spans the codes' range.
    """
    model = run.model
    if model.config.latent_dim != 2:
        raise ConfigError(
            f"--grid draws a 2-D latent space; this model's codes have {model.config.latent_dim}"
        )
    if model.generative:
        from scipy.stats import norm

        axis = torch.from_numpy(norm.ppf(np.linspace(0.03, 0.97, per_side))).float()
        axes = (axis, axis)
    else:
        gmm = code_prior(run)
        lo, hi = gmm.means_.min(0) - span, gmm.means_.max(0) + span
        axes = tuple(torch.linspace(float(lo[d]), float(hi[d]), per_side) for d in range(2))
    gy, gx = torch.meshgrid(axes[1].flip(0), axes[0], indexing="ij")
    z = torch.stack([gx.flatten(), gy.flatten()], 1)
    return decode_codes(run, z, _labels(run, len(z), label))


@torch.no_grad()
def attribute_vector(run: Run, label: str | int, data: ArrayDataset | None = None) -> torch.Tensor:
    """The mean code of class ``label`` minus the mean code of every other class (the "smile vector").

    ``data`` is labelled data in the run's format (default: up to 20,000 of its training samples).

    Shape:
        -> (latent_dim,)
    """
    if data is None:
        from aekit.data.sources import load_dataset

        data = load_dataset(run.config.data.source, "train", limit=PRIOR_SAMPLES)
    if data.y is None:
        raise ConfigError(f"{data.name}: --attribute needs labelled data; these samples have no labels")
    y = data.y.long()
    index = _class_index(run, label, list(data.classes or []), int(y.max()) + 1)
    inside = y == index
    if inside.all() or not inside.any():
        raise ConfigError(f"{data.name}: --attribute needs samples of class {label!r} and of other classes")
    codes = torch.from_numpy(run.encode(data)).float()
    return codes[inside].mean(0) - codes[~inside].mean(0)


@torch.no_grad()
def attribute_grid(
    run: Run,
    label: str | int,
    strength: float = 1.0,
    rows: int = 8,
    columns: int = 8,
    data: ArrayDataset | None = None,
    start: ArrayDataset | None = None,
) -> np.ndarray:
    """Codes moved along :func:`attribute_vector`: a grid, one start image a row, ``columns`` steps
    from strength 0 (its own reconstruction) to ``strength`` (negative: away from the class).

    ``start``: the images of the rows (default: the first ``rows`` test samples not of that class).

    Shape:
        -> (rows * columns, *input_shape), row by row.
    """
    if columns < 2 or rows < 1:
        raise ConfigError("--attribute needs at least 1 row and 2 steps")
    if run.model.conditional:
        raise ConfigError(f"--attribute moves the codes of unconditional models; {run.config.model!r} is not")
    vector = attribute_vector(run, label, data).to(run.device)
    if start is None:
        test = run.load_data(run.config.data.source, "test")
        y = test.y.long() if test.y is not None else None
        index = _class_index(run, label, list(test.classes or []), int(y.max()) + 1) if y is not None else -1
        keep = torch.arange(len(test)) if y is None else torch.nonzero(y != index).flatten()
        start = test.subset(keep[:rows])
    z = torch.from_numpy(run.encode(start)).float().to(run.device)  # (rows, D)
    t = torch.linspace(0, strength, columns, device=run.device)
    moved = z[:, None, :] + t[None, :, None] * vector  # (rows, columns, D)
    return decode_codes(run, moved.flatten(0, 1))


def save_images(path: str | Path, images: np.ndarray, nrow: int, force: bool = False) -> Path:
    """A ``.png`` grid, or any output :func:`aekit.outputs.write_samples` knows (.npy, IDX, a folder)."""
    from aekit.data.files import from_array
    from aekit.outputs import write_samples
    from aekit.report.figures import image_grid, save_figure

    path = Path(path)
    if path.suffix.lower() == ".png":
        return save_figure(image_grid(images, nrow=nrow), new_output(path, force))
    like = from_array(np.rint(np.clip(images, 0, 1) * 255).astype(np.uint8), "samples")  # written as uint8
    return write_samples(path, images, like=like, force=force)


# --- music -----------------------------------------------------------------------------------------


@torch.no_grad()
def music_samples(
    run: Run, n: int, seed: int = 0, temperature: float = 0.0, bars: int | None = None
) -> np.ndarray:
    """``n`` token sequences from the prior: greedy decoding, or sampled with ``temperature``.

    ``bars``: the length; a flat music VAE writes only the length it was trained on, the
    conductor model (``music-conductor``) any number of bars.
    """
    from aekit.data.music import STEPS_PER_BAR

    if n < 1:
        raise ConfigError(f"the number of samples must be at least 1, not {n}")
    if temperature < 0:
        raise ConfigError(f"--temperature must be 0 (greedy) or more, not {temperature:g}")
    model = run.model.eval()
    trained = model.config.steps // STEPS_PER_BAR
    g = torch.Generator(run.device).manual_seed(seed)
    if bars is None or bars == trained:
        return model.sample(n, generator=g, temperature=temperature).cpu().numpy().astype(np.uint8)
    if bars < 1 or not model.any_length:
        raise ConfigError(
            f"--bars {bars}: this {run.config.model!r} model writes {trained} bars "
            "(aekit train --model music-conductor for any length)"
        )
    z = torch.randn(n, model.config.latent_dim, generator=g, device=run.device)
    tokens = model.decode(z, temperature=temperature, generator=g, bars=bars)
    return tokens.cpu().numpy().astype(np.uint8)


@torch.no_grad()
def music_interpolate(run: Run, a: str | Path, b: str | Path, steps: int = 8) -> np.ndarray:
    """Morph from the first segment of MIDI file ``a`` to that of ``b`` through the latent space."""
    from aekit.data.music import midi_folder, segments

    if steps < 2:
        raise ConfigError("--steps must be at least 2")
    model = run.model.eval()
    voices = tuple(range(model.config.voices))
    ends = []
    for path in (a, b):
        path = Path(path)
        pieces = midi_folder(path.parent, len(voices), only=path.name)
        tokens = segments(pieces, model.config.steps // 16, voices, name=str(path))[0]
        x = torch.from_numpy(tokens[:, 0] if len(model.input_shape) == 1 else tokens).float()[None]
        ends.append(model.encode(x.to(run.device)))
    t = torch.linspace(0, 1, steps, device=run.device)[:, None]
    return model.decode(ends[0] + t * (ends[1] - ends[0])).cpu().numpy().astype(np.uint8)


def save_music(
    folder: str | Path, sequences: np.ndarray, force: bool = False, tempo: float = 100.0, program: int = 0
) -> Path:
    """Each sequence as ``NN.mid`` (playable; ``tempo`` in beats per minute, General MIDI ``program``)
    and ``NN.png`` (its piano roll) in ``folder``."""
    if not 0 <= program <= 127 or tempo <= 0:
        raise ConfigError(f"--program must be 0-127 and --tempo positive, not {program} and {tempo:g}")
    from aekit.data.music import write_midi
    from aekit.report.figures import piano_roll, save_figure

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not force:
        raise ConfigError(f"{folder}: already exists and is not empty (pass --force to write into it)")
    folder.mkdir(parents=True, exist_ok=True)
    for i, seq in enumerate(sequences):
        write_midi(folder / f"{i:02d}.mid", seq, tempo=tempo, program=program)
        save_figure(piano_roll(seq, title=f"{i:02d}"), folder / f"{i:02d}.png")
    return folder


def sample_quality(run: Run, images: np.ndarray, test_limit: int = 2000) -> dict:
    """``aekit generate --metric``: how close ``images`` come to the run's dataset.

    A Fréchet distance in the features of aekit's own classifier for that dataset (trained once
    and cached; not the Inception FID), beside the distance between two halves of the real test
    images, and the spread of the samples over the classes. See :mod:`aekit.evaluation.generation`.

    Returns:
        :func:`~aekit.evaluation.generation.generation_metrics`'s dict plus ``source`` (the dataset).
    """
    from aekit.data.sources import load_dataset
    from aekit.evaluation.generation import cached_classifier, generation_metrics

    source = run.config.data.source
    train = load_dataset(source, "train")
    test = load_dataset(source, "test", limit=test_limit)
    net = cached_classifier(train, source)
    real = test.take(torch.arange(len(test)))[0].numpy()
    return {"source": source, **generation_metrics(net, real, images, int(train.y.max()) + 1)}
