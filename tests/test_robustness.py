"""Every external input fuzzed: the only outcomes are success or aekit's own error naming the file.

IDX files and .aek files have their fuzz tests beside their readers (test_idx.py, test_codec.py);
this module covers image folders, CSV tables, MIDI files, run directories (config.json,
model.safetensors, checkpoint.pt), CLI arguments, and interrupted writers.
The example counts here are the ones docs/robustness.md reports.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import aekit
from aekit.cli import main
from aekit.errors import CheckpointError, DataError

EXAMPLES = int(os.environ.get("AEKIT_FUZZ_EXAMPLES", "60"))  # raise it for a longer hunt
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(autouse=True)
def _keep_cwd():
    """Fuzzed command lines run in a temporary folder; the working directory is restored after."""
    cwd = os.getcwd()
    yield
    os.chdir(cwd)


def _mutate(data: bytes, draw) -> bytes:
    """A flipped byte, a truncation, an extension, or a zeroed range: what damaged files look like."""
    b = bytearray(data)
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "zero"]))
    if kind == "flip" and b:
        i = draw(st.integers(0, len(b) - 1))
        b[i] ^= draw(st.integers(1, 255))
    elif kind == "truncate":
        b = b[: draw(st.integers(0, max(0, len(b) - 1)))]
    elif kind == "extend":
        b += draw(st.binary(min_size=1, max_size=64))
    elif b:
        i = draw(st.integers(0, len(b) - 1))
        b[i : i + draw(st.integers(1, 64))] = bytes(min(64, len(b) - i))
    return bytes(b)


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


GOOD_PNG = _png(np.arange(64, dtype=np.uint8).reshape(8, 8))


# --- image folders ------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_image_folders_with_damaged_files_odd_names_and_links(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("imgs")
    n = data.draw(st.integers(0, 4))
    names = data.draw(
        st.lists(
            st.sampled_from(["a", "b", "ü", "日本", "x y", "-dash"]), min_size=n, max_size=n, unique=True
        )
    )
    for name in names:
        content = GOOD_PNG if data.draw(st.booleans()) else _mutate(GOOD_PNG, data.draw)
        (folder / f"{name}.png").write_bytes(content)
    if names and data.draw(st.booleans()):
        os.symlink(folder / f"{names[0]}.png", folder / "link.png")
    if data.draw(st.booleans()):
        (folder / "other.png").write_bytes(_png(np.zeros((5, 7), np.uint8)))  # a different size
    try:
        ds = aekit.load_dataset(str(folder))
    except DataError as e:
        assert str(folder) in str(e)
    else:
        assert ds.x.dtype == torch.uint8 and len(ds) >= 1


# --- CSV tables ---------------------------------------------------------------------------------

CELL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**40), 10**40).map(str),
    st.sampled_from(["", "nan", "red", "blue", " 3 ", "1e999", "-", "日本"]),
)


@FUZZ
@given(
    rows=st.lists(st.lists(CELL, min_size=1, max_size=4), min_size=0, max_size=6),
    header=st.booleans(),
    missing=st.sampled_from(["error", "drop", "impute"]),
)
def test_csv_tables_of_any_content(tmp_path_factory, rows, header, missing):
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    lines = ([",".join(f"c{i}" for i in range(len(rows[0])))] if header and rows else []) + [
        ",".join(r) for r in rows
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        ds = aekit.load_dataset(str(path), missing=missing)
    except DataError as e:
        assert str(path) in str(e)
    else:
        x = ds.take(torch.arange(len(ds)))[0]
        assert torch.isfinite(x).all()


# --- MIDI files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_midi(tmp_path_factory) -> bytes:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(0)
    for i in range(64):
        inst.notes.append(pretty_midi.Note(80, 60 + i % 12, i * 0.125, (i + 1) * 0.125))
    pm.instruments.append(inst)
    path = tmp_path_factory.mktemp("m") / "good.mid"
    pm.write(str(path))
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_damaged_midi_files(tmp_path_factory, good_midi, data):
    folder = tmp_path_factory.mktemp("midi")
    (folder / "song.mid").write_bytes(_mutate(good_midi, data.draw))
    try:
        ds = aekit.load_dataset(f"midi:{folder}")
    except DataError as e:
        assert str(folder) in str(e)
    else:
        assert ds.shape == (32,)


# --- run directories ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r"
    assert (
        main(
            ["train", "--data", "digits", "--epochs", "1", "--latent-dim", "3", "--out", str(out), "--quiet"]
        )
        == 0
    )
    return out


JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=6,
)


@FUZZ
@given(data=st.data())
def test_tampered_config_json(tmp_path_factory, run_dir, data):
    run = tmp_path_factory.mktemp("t") / "r"
    shutil.copytree(run_dir, run)
    config = json.loads((run / "config.json").read_text())
    section = data.draw(st.sampled_from(["model", "train", "data", "root"]))
    key = data.draw(st.sampled_from(["name", "latent_dim", "hidden", "input_shape", "epochs", "source", "x"]))
    value = data.draw(
        JSON_VALUE | st.sampled_from(["os.system", "__import__('os')", "builtins.eval", "pickle"])
    )
    if section == "root":
        config = value
    else:
        config.setdefault(section, {})
        if isinstance(config[section], dict):
            config[section][key] = value
    (run / "config.json").write_text(json.dumps(config))
    try:
        loaded = aekit.load(run)
    except CheckpointError as e:
        assert str(run) in str(e)
    else:
        assert loaded.model.model_name in aekit.MODELS  # only ever a registered class


@FUZZ
@given(data=st.data())
def test_damaged_weights(tmp_path_factory, run_dir, data):
    run = tmp_path_factory.mktemp("w") / "r"
    shutil.copytree(run_dir, run)
    (run / "model.safetensors").write_bytes(_mutate((run_dir / "model.safetensors").read_bytes(), data.draw))
    try:
        aekit.load(run)
    except CheckpointError as e:
        assert "model.safetensors" in str(e)


class _Planted:
    """Unpickling this writes a file: proof that stored code ran."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self):
        return (open, (str(self.mark), "w"))


def test_a_malicious_pickle_as_checkpoint_is_refused_and_never_runs(run_dir, tmp_path):
    run = tmp_path / "r"
    shutil.copytree(run_dir, run)
    mark = tmp_path / "pwned"
    torch.save({"model": _Planted(mark)}, run / "checkpoint.pt")  # torch's zip format, a pickle inside
    with pytest.raises(CheckpointError, match="checkpoint.pt: refused"):
        aekit.resume(run, progress=False)
    with open(run / "checkpoint.pt", "wb") as f:  # a bare pickle
        pickle.dump({"model": _Planted(mark)}, f)
    assert main(["train", "--resume", str(run)]) == 2
    assert not mark.exists()


def test_a_config_naming_a_class_path_is_not_imported(run_dir, tmp_path):
    run = tmp_path / "r"
    shutil.copytree(run_dir, run)
    config = json.loads((run / "config.json").read_text())
    config["model"]["name"] = "os.system"
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown model 'os.system'"):
        aekit.load(run)


# --- CLI arguments ------------------------------------------------------------------------------

ARG = st.one_of(
    st.sampled_from(
        ["--epochs", "--lr", "--limit", "--set", "-o", "--data", "--device", "--latent-dim", "-n"]
    ),
    st.sampled_from(
        ["-1", "0", "nan", "1e999", "x", "", "train.lr=oops", "model.hidden=[", "cuda:7", "日本"]
    ),
    st.text(max_size=10),
)


NASTY = st.sampled_from(["0", "-1", "nan", "1e999", "", "x", "999999999", "0.5", "日本", "cuda:7", "a=b"])


def _flags(command: str) -> list[str]:
    """The options of one subcommand, from the parser itself."""
    from aekit.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return sorted(
        o for a in sub._actions for o in a.option_strings if o.startswith("-") and o not in ("-h", "--help")
    )


@FUZZ
@given(
    data=st.data(),
    command=st.sampled_from(
        ["evaluate", "reconstruct", "denoise", "embed", "generate", "export", "compress", "report"]
    ),
)
def test_random_command_lines_end_in_a_clear_error_or_success(
    tmp_path_factory, run_dir, data, command, capsys
):
    out = tmp_path_factory.mktemp("cli")
    os.chdir(out)  # random output names land here, not in the checkout
    flags = _flags(command)
    pairs = data.draw(st.lists(st.tuples(st.sampled_from(flags), NASTY | st.text(max_size=8)), max_size=3))
    args = [v for pair in pairs for v in pair]
    positional = {
        "reconstruct": ["digits"],
        "denoise": ["digits"],
        "embed": ["digits"],
        "compress": ["digits"],
    }
    argv = [command, str(run_dir), *positional.get(command, []), *args]
    if "-o" in flags and "-o" not in args and "--output" not in args:
        argv += ["-o", str(out / "o.npy")]
    code = main(argv)  # an exception other than SystemExit would fail the test here
    assert code in (0, 2)
    assert "Traceback" not in capsys.readouterr().err


@FUZZ
@given(args=st.lists(ARG, max_size=6))
def test_random_train_options_fail_fast_and_cleanly(tmp_path_factory, args, capsys):
    out = tmp_path_factory.mktemp("train") / "r"
    os.chdir(out.parent)  # random output names land here, not in the checkout
    argv = [
        "train",
        "--data",
        "digits",
        "--limit",
        "64",
        "--epochs",
        "1",
        *args,
        "--out",
        str(out),
        "--quiet",
    ]
    code = main(argv)
    assert code in (0, 2)
    assert "Traceback" not in capsys.readouterr().err


# --- interrupted writers ------------------------------------------------------------------------


def _writers(run_dir: Path, tmp: Path):
    """(name, target file, a call that writes it) for every kind of writer aekit has."""
    from aekit.evaluation.summary import summarize_run
    from aekit.outputs import write_samples
    from aekit.report.figures import image_grid, save_figure
    from aekit.report.html import write_report
    from aekit.training import checkpoint

    run = aekit.load(run_dir)
    data = aekit.load_dataset("digits", "test", limit=4)
    images = run.reconstruct(data)
    target_run = tmp / "run"
    shutil.copytree(run_dir, target_run)
    return [
        ("weights", target_run / "model.safetensors", lambda: checkpoint.save_weights(target_run, run.model)),
        (
            "checkpoint",
            target_run / "checkpoint.pt",
            lambda: checkpoint.save_checkpoint(target_run, {"a": torch.ones(3)}),
        ),
        ("config", target_run / "config.json", lambda: checkpoint.write_config(target_run, run.config, {})),
        (
            "npy output",
            tmp / "out.npy",
            lambda: write_samples(tmp / "out.npy", images, like=data, force=True),
        ),
        ("figure", tmp / "fig.png", lambda: save_figure(image_grid(images), tmp / "fig.png")),
        ("report", tmp / "report.html", lambda: write_report([summarize_run(run)], tmp / "report.html")),
    ]


@pytest.mark.parametrize("where", ["before the rename", "while writing"])
def test_an_interrupted_writer_leaves_the_old_file_intact(run_dir, tmp_path, monkeypatch, where):
    import aekit.fileio as fileio

    writers = _writers(run_dir, tmp_path)
    for name, target, write in writers:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.write_bytes(b"old content")
        before = target.read_bytes()

        def interrupted(*a, **k):
            raise KeyboardInterrupt

        if where == "before the rename":
            monkeypatch.setattr(fileio.os, "replace", interrupted)
        else:  # the temporary file is half written when the interruption comes
            monkeypatch.setattr(fileio.os, "fsync", interrupted)
        with pytest.raises(KeyboardInterrupt):
            write()
        monkeypatch.undo()
        assert target.read_bytes() == before, name
        assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp" + target.suffix)], name
