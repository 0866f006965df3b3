"""The layers point down only: docs/architecture.md's table, checked on every import in src/aekit.

Lazy imports inside functions count too: an upward import is a cycle waiting to happen,
wherever it is written.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "aekit"

# Lowest first. A module may import its own layer and the ones below it, never one above.
LAYERS: list[tuple[str, ...]] = [
    ("aekit.errors", "aekit.fileio", "aekit._version", "aekit.progress"),
    ("aekit.data",),
    ("aekit.models",),
    ("aekit.evaluation",),
    ("aekit.report",),
    ("aekit.config", "aekit.training"),
    ("aekit.api",),
    ("aekit.apps", "aekit.outputs"),
    ("aekit.cli", "aekit.__main__", "aekit"),
]


def layer_of(module: str) -> int:
    """The layer of the most specific prefix that names ``module`` (``aekit`` itself: the top)."""
    best, depth = len(LAYERS) - 1, -1
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = level, prefix.count(".")
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every ``import aekit...`` / ``from aekit... import`` in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "aekit"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("aekit"):
            if node.module == "aekit":  # from aekit import x: x is a submodule or a name of the facade
                found += [(node.lineno, f"aekit.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def upward_imports() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        here = module_name(path)
        mine = layer_of(here)
        for line, target in imports_of(path):
            if layer_of(target) > mine:
                bad.append(f"{path.relative_to(SRC.parent)}:{line}: {here} imports {target}, a higher layer")
    return bad


def test_layers_are_named_as_the_package_is():
    for prefixes in LAYERS:
        for prefix in prefixes:
            rel = Path(*prefix.split(".")[1:]) if "." in prefix else Path()
            assert (SRC / rel).is_dir() or (SRC / rel).with_suffix(".py").is_file(), prefix


def test_no_module_imports_a_higher_layer():
    assert upward_imports() == []


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "aekit" / "data"
    fake.mkdir(parents=True)
    (fake / "leak.py").write_text("def f():\n    from aekit.api import train\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path / "aekit")
    assert len(upward_imports()) == 1 and "aekit.data.leak imports aekit.api" in upward_imports()[0]


@pytest.mark.parametrize("module", ["aekit.api", "aekit.training.run", "aekit.evaluation.metrics"])
def test_the_training_api_does_not_import_the_report_at_import_time(module):
    import subprocess
    import sys

    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('aekit.report.html')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
