"""The documentation site builds with ``mkdocs build --strict`` (broken links, missing pages or
references fail), and its generated pages say what the code says."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _hooks():
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _all_options(parser: argparse.ArgumentParser) -> set[str]:
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _all_options(sub)
        else:
            found.update(s for s in action.option_strings if s not in ("-h", "--help"))
    return found


def test_cli_reference_lists_every_command_and_option_of_the_parser():
    from aekit.cli import build_parser

    page = _hooks().cli_markdown()
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in commands:
        assert f"## `aekit {name}`" in page
    assert "### `aekit detect fit`" in page and "### `aekit detect score`" in page
    for option in _all_options(parser) - {"--version"}:
        assert f"`{option}`" in page, option


def test_api_reference_has_an_entry_for_every_public_name():
    import aekit

    page = _hooks().api_markdown()
    for name in aekit.__all__:
        assert f"## `aekit.{name}`" in page, name
    for name in aekit.MODELS:
        assert f"| `{name}` |" in page


def test_strict_docs_build(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "aekit train" in cli and "--batch-size" in cli
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "anomaly_score" in api  # a method documented from its docstring
    documented = [n for n in __import__("aekit").__all__ if n != "MODELS"]
    assert api.count('doc-section-title">Examples') >= len(documented)  # doctests shown as code
    tutorial = (tmp_path / "site" / "tutorials" / "01-classic-autoencoder" / "index.html").read_text()
    assert "torch.nn.Linear" in tutorial  # the notebooks are pages of the site
