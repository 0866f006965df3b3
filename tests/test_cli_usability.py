"""What a new user trips over (issue 16), one regression test per item, and the CLI's start-up.

Each test failed on the code before the fix. Runs are tiny (digits, 8x8) so the file stays fast.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aekit.cli import build_parser, main

SRC = Path(__file__).resolve().parents[1] / "src" / "aekit"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("usability") / "run"
    argv = ["train", "--data", "digits", "--epochs", "2", "--latent-dim", "4", "--hidden", "32", "--quiet"]
    assert main([*argv, "--out", str(out)]) == 0
    return out


def _commands() -> dict[str, object]:
    """Every (sub)command's parser by its name: ``train``, ``detect fit``, ..."""
    top = next(a for a in build_parser()._actions if a.dest == "command").choices
    found = {}
    for name, parser in top.items():
        subs = [a for a in parser._actions if a.dest == "detect_command"]
        if subs:
            found.update({f"{name} {n}": p for n, p in subs[0].choices.items()})
        else:
            found[name] = parser
    return found


def _options(command: str) -> set[str]:
    return {o for a in _commands()[command]._actions for o in a.option_strings}


def _not_called(*_, **__):
    raise AssertionError("the work started although the output was refused")


# --- item 4: a run's config.json is a valid --config ----------------------------------------------
def test_a_runs_config_json_is_accepted_as_config(run_dir, tmp_path):
    out = tmp_path / "again"
    argv = ["train", "--config", str(run_dir / "config.json"), "--epochs", "1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    old, new = (json.loads((d / "config.json").read_text()) for d in (run_dir, out))
    assert new["model"] == old["model"] and new["data"] == old["data"]
    assert new["train"] == {**old["train"], "epochs": 1}


# --- item 6: --resume refuses what it cannot honour, honours --epochs and says so -----------------
def test_resume_refuses_flags_it_cannot_honour_by_name(run_dir, capsys):
    argv = ["train", "--resume", str(run_dir), "--epochs", "5", "--data", "mnist-5k", "--lr", "0.1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--data" in err and "--lr" in err and "--epochs" in err.split("cannot honour")[1]
    assert "--epochs" not in err.split("cannot honour")[1].split("(")[0]  # --epochs is not refused


def test_resume_honours_epochs_and_says_so(run_dir, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    assert "--epochs 3" in capsys.readouterr().out
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3


# --- item 7: detect fit has the --missing its error suggests ---------------------------------------
def test_detect_fit_takes_the_missing_flag_its_error_names(tmp_path, capsys):
    rows = ["a,b,c"] + [f"{i % 7},{(i * 3) % 11},{i % 5}" for i in range(60)]
    rows[5] = "1,,2"
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    base = ["detect", "fit", "--data", str(tmp_path / "t.csv"), "--epochs", "1", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "d1")]) == 2
    err = capsys.readouterr().err
    assert "--missing impute" in err
    assert main([*base, "--out", str(tmp_path / "d2"), "--missing", "impute"]) == 0
    assert (tmp_path / "d2" / "detector.json").is_file()


# --- item 7 (the rule): every flag an error message names exists on the command that prints it -----
ALL = "every command"
DATA_READERS = [
    "train",
    "evaluate",
    "reconstruct",
    "denoise",
    "detect fit",
    "detect score",
    "compress",
    "embed",
]
REACH = {  # library module -> the commands that can print its messages (declare new modules here)
    "training/trainer.py": [c for c in _commands() if c not in ("report", "compare", "datasets", "models")],
    "fileio.py": [
        "reconstruct",
        "denoise",
        "detect score",
        "compress",
        "decompress",
        "generate",
        "embed",
        "export",
    ],
    "api.py": ["train"],
    "training/checkpoint.py": ["train"],  # resume
    "data/tabular.py": DATA_READERS,  # (generate reads data only for --interpolate on image runs)
    "apps/codec.py": ["compress", "decompress"],
    "apps/generate.py": ["generate"],
    "apps/anomaly.py": ["detect fit", "detect score"],
    "apps/detect.py": ["detect fit", "detect score"],
    "apps/denoise.py": ["denoise", "train"],
    "outputs.py": ["reconstruct", "denoise", "decompress", "generate"],
    "apps/aek_files.py": ["compress"],
    "data/images.py": ["train"],
    "models/fcn.py": ["train"],
    "training/tracking.py": ["train"],
    "apps/series.py": ["detect fit"],
    "apps/embed.py": ["embed"],
}
CLI_PARSER_BUILDERS = {  # help texts
    "build_parser",
    "_add_train",
    "_add_output",
    "_add_data_options",
    "_add_image_flags",
    "_add_whole_image_flags",
}
CLI_CONSTANTS = {
    "TRAIN_FLAGS": "train",
    "MODEL_FLAGS": "train",
    "RESUME_HONOURS": "train",
    "NAN_ADVICE": "train",
}
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*|-o)(?![\w-])")
OTHER = re.compile(r"aekit ((?:detect )?[a-z]+)")


def _strings(tree: ast.AST):
    """(enclosing function or constant name, text) of every string literal that is not a docstring."""
    found = []

    class Visitor(ast.NodeVisitor):
        where = ""

        def visit_FunctionDef(self, node):
            outer, self.where = self.where, node.name
            for child in node.body if not ast.get_docstring(node) else node.body[1:]:
                self.visit(child)
            self.where = outer

        def visit_Assign(self, node):
            outer = self.where
            if isinstance(node.targets[0], ast.Name) and not self.where:
                self.where = node.targets[0].id
            self.generic_visit(node)
            self.where = outer

        def visit_Expr(self, node):
            if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                self.generic_visit(node)  # a bare string is a docstring or a comment

        def visit_JoinedStr(self, node):
            found.append(
                (self.where, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values))
            )

        def visit_Constant(self, node):
            if isinstance(node.value, str):
                found.append((self.where, node.value))

    body = tree.body[1:] if ast.get_docstring(tree) else tree.body
    for node in body:
        Visitor().visit(node)
    return found


def _cli_command(where: str) -> list[str]:
    if where in CLI_CONSTANTS:
        return [CLI_CONSTANTS[where]]
    if where in ("_resume", "train_layers", "_check_model_flags"):
        return ["train"]
    if where == "_generate_music":
        return ["generate"]
    if where == "_test_data":
        return ["report", "compare"]
    if where == "_any_size":
        return ["reconstruct", "denoise"]
    if where == "main":
        return ["train"]  # only train's interruption names a flag (aekit train --resume)
    if where.startswith("cmd_"):
        return [where[4:].replace("_", " ")]
    return []


def test_every_flag_named_in_a_message_exists_on_the_command_that_prints_it():
    commands = _commands()
    missing, undeclared, checked = [], [], 0
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        for where, text in _strings(ast.parse(path.read_text())):
            if not FLAG.search(text):
                continue
            if module == "cli.py":
                if where in CLI_PARSER_BUILDERS:
                    continue
                printers = _cli_command(where)
            else:
                printers = REACH.get(module)
            if not printers:
                undeclared.append(f"{module}:{where}: {text!r}")
                continue
            # "... aekit train --model codec": flags after "aekit CMD" belong to CMD
            pieces = re.split(OTHER, text)
            owners = [None] + pieces[1::2]
            for owner, piece in zip(owners, pieces[0::2], strict=True):
                for flag in FLAG.findall(piece):
                    for command in [owner] if owner in commands else printers:
                        checked += 1
                        if flag not in _options(command):
                            missing.append(f"{module}:{where}: {flag} is not an option of aekit {command}")
    assert not undeclared, "say which commands can print these (REACH):\n" + "\n".join(undeclared)
    assert not missing, "\n".join(missing)
    assert checked > 40  # the scan found the messages (it would pass vacuously on none)


def test_the_flag_scan_catches_a_flag_the_command_lacks():
    tree = ast.parse('def cmd_export(a):\n    raise ConfigError("try --missing drop")\n')
    [(where, text)] = _strings(tree)
    assert _cli_command(where) == ["export"] and "--missing" not in _options("export")
    assert FLAG.findall(text) == ["--missing"]


# --- item 12: outputs are checked before any work; help lists only what a command can write ----------
def test_an_existing_output_is_refused_before_the_work(run_dir, tmp_path, monkeypatch, capsys):
    import aekit.api

    monkeypatch.setattr(aekit.api.Run, "reconstruct", _not_called)
    (tmp_path / "r.npy").write_bytes(b"old")
    assert main(["reconstruct", str(run_dir), "digits", "-o", str(tmp_path / "r.npy")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "r.npy").read_bytes() == b"old"


def test_a_format_that_cannot_hold_the_samples_is_refused_before_the_work(
    run_dir, tmp_path, monkeypatch, capsys
):
    import aekit.api

    monkeypatch.setattr(aekit.api.Run, "reconstruct", _not_called)
    assert main(["reconstruct", str(run_dir), "digits", "-o", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "r.csv" in err and "cannot hold images" in err and ".npy" in err
    assert not (tmp_path / "r.csv").exists()


def test_output_help_names_only_formats_the_command_can_write():
    from aekit.outputs import FORMATS, sample_kinds

    helps = {
        c: next(a.help for a in p._actions if "-o" in a.option_strings)
        for c, p in _commands().items()
        if "-o" in _options(c)
    }
    image_help = helps["reconstruct"].split(";")[0]
    assert image_help.startswith("images:") and ".csv" not in image_help
    assert ".csv" in helps["reconstruct"].split(";")[1]
    for kind in sample_kinds((1, 8, 8)):
        assert FORMATS[kind].split(" (")[0] in helps["denoise"]
    assert ".csv" not in helps["denoise"] and ".csv" not in helps["decompress"]


# --- item 13: detect score --figures neither overwrites nor goes silent --------------------------------
@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    out = tmp_path_factory.mktemp("det") / "det"
    argv = [
        "detect",
        "fit",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--limit",
        "300",
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    return out


def test_detect_score_figures_are_not_overwritten_without_force(detector, tmp_path, capsys, monkeypatch):
    from aekit.apps.anomaly import AnomalyDetector

    (tmp_path / "roc.png").write_bytes(b"mine")
    argv = ["detect", "score", str(detector), "digits", "--limit", "100", "--normal-class", "0", "--figures"]
    monkeypatch.setattr(AnomalyDetector, "anomaly_score", _not_called)
    assert main([*argv, "-o", str(tmp_path / "s.csv")]) == 2
    assert "roc.png: already exists" in capsys.readouterr().err
    assert (tmp_path / "roc.png").read_bytes() == b"mine" and not (tmp_path / "s.csv").exists()
    monkeypatch.undo()
    assert main([*argv, "-o", str(tmp_path / "s.csv"), "--force"]) == 0
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"


def test_detect_score_says_when_labels_are_missing(detector, tmp_path, capsys):
    import aekit

    x = aekit.load_dataset("digits", "test", limit=30).x.numpy()
    np.save(tmp_path / "x.npy", x)
    argv = ["detect", "score", str(detector), str(tmp_path / "x.npy"), "-o", str(tmp_path / "s.csv")]
    assert main([*argv, "--normal-class", "0", "--figures"]) == 0
    out = capsys.readouterr().out
    assert "no labels" in out and "--figures" in out
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 31
    assert not (tmp_path / "roc.png").exists()
    assert main(["detect", "score", str(detector), "digits", "-o", str(tmp_path / "t.csv"), "--figures"]) == 2
    assert "--normal-class" in capsys.readouterr().err


# --- item 15: the same flags everywhere; errors name the flag the user typed --------------------------
def test_every_command_that_writes_takes_o_and_out():
    writers = [c for c in _commands() if _options(c) & {"-o", "--out", "--output"}]
    assert len(writers) >= 11
    for command in writers:
        assert {"-o", "--out"} <= _options(command), command


def test_reconstruct_takes_batch_size_limit_split_and_export_device(run_dir, tmp_path):
    out = tmp_path / "r.npy"
    argv = ["reconstruct", str(run_dir), "digits", "--split", "train", "--limit", "7", "--batch-size", "3"]
    assert main([*argv, "--out", str(out)]) == 0
    assert np.load(out).shape == (7, 1, 8, 8)
    assert "--device" in _options("export")


def test_noise_says_it_trains_the_denoising_model(tmp_path, capsys):
    out = tmp_path / "d"
    argv = ["train", "--data", "digits", "--noise", "gaussian=0.3", "--epochs", "1", "--limit", "200"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    assert "--noise: training the 'denoising' model" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["model"]["noise"] == "gaussian"
    assert main([*argv, "--model", "dense", "--out", str(tmp_path / "e")]) == 2
    assert capsys.readouterr().err.startswith("aekit: error: --noise: the 'dense' model")


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["train", "--data", "digits", "--noise", "gaussian=0.3", "--lambda", "0.1"], "--lambda"),
        (["train", "--data", "digits", "--model", "dense", "--lambda", "0.1"], "--lambda"),
        (["train", "--data", "digits", "--noise", "gaussain=0.3"], "--noise"),
    ],
)
def test_errors_name_the_flag_the_user_typed(tmp_path, capsys, argv, flag):
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"aekit: error: {flag}:") and "rd_lambda" not in err
    assert not (tmp_path / "r").exists()


def test_a_bad_add_noise_blames_the_flag_not_the_input(run_dir, tmp_path, capsys):
    argv = ["denoise", str(run_dir), "digits", "--add-noise", "gaussain=0.3", "-o", str(tmp_path / "d.npy")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("aekit: error: --add-noise:") and "'gaussain'" in err and "digits:" not in err


# --- item 16: one progress rule ------------------------------------------------------------------------
def test_progress_off_a_terminal_is_lines_not_bars(run_dir, tmp_path, capsys):
    argv = ["reconstruct", str(run_dir), "digits", "--batch-size", "16", "--limit", "160"]
    assert main([*argv, "-o", str(tmp_path / "r.npy")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("reconstructing:")]
    assert len(lines) == 10 and lines[-1].startswith("reconstructing: 100% (10/10 batches")


def test_training_off_a_terminal_prints_progress_and_what_the_last_seconds_are_for(tmp_path, capsys):
    argv = ["train", "--data", "digits", "--epochs", "2", "--batch-size", "32", "--limit", "400"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err
    assert re.search(r"epoch 1/2: \d+% of training", captured.out)  # inside the first epoch
    assert "epoch 2/2  train loss" in captured.out
    assert "report.html" in captured.err.splitlines()[-1] and captured.err.endswith(" ...\n")


def test_milestones_are_each_tenth_once():
    from aekit.progress import Milestones

    m = Milestones(25)
    hits = [done for done in range(1, 26) if m.passed(done)]
    assert hits == [3, 5, 8, 10, 13, 15, 18, 20, 23, 25]
    m = Milestones(3)  # fewer units than lines: each unit passes its tenths once
    assert [m.passed(d) for d in (1, 2, 3, 3)] == [True, True, True, False]


# --- the start-up: parse first, import torch late ------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["train", "--help"],
        ["train", "--epochs", "x"],
        ["train", "--bogus"],
        ["evaluate"],
    ],
)
def test_help_version_and_argument_errors_do_not_import_torch(argv):
    code = (
        "import sys, contextlib, io\n"
        "from aekit.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    code = main({argv!r})\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    exit_code, torch_loaded = done.stdout.split()
    assert torch_loaded == "False", f"aekit {' '.join(argv)} imported torch"
    assert exit_code == ("0" if argv[-1] in ("--help", "--version") else "2")
