"""The public API is type-checked: mypy (strict) on a program that uses every name in
``aekit.__all__`` (``tests/typecheck/public_api.py``; configured in pyproject.toml)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import aekit

ROOT = Path(__file__).resolve().parents[1]
USAGE = ROOT / "tests" / "typecheck" / "public_api.py"


def test_the_usage_program_names_every_public_name():
    used = {
        node.attr
        for node in ast.walk(ast.parse(USAGE.read_text()))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "aekit"
    }
    assert set(aekit.__all__) <= used, f"not type-checked: {sorted(set(aekit.__all__) - used)}"


def test_mypy_finds_no_errors_in_the_public_api(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(ROOT / "src")},
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout
