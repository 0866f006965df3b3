#!/usr/bin/env bash
# Build the sdist and wheel, install the wheel (not editable) into a fresh virtual environment
# (torch pinned by constraints.txt; pip's cache is reused), and run it from outside the checkout:
# `aekit --version`, `aekit datasets`, a one-epoch train on the bundled digits, and py.typed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${PYTHON:-.venv/bin/python}" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
ls "$work"/dist/aekit-*.tar.gz >/dev/null  # the sdist too
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q -c "$root/constraints.txt" "$work"/dist/aekit-*-py3-none-any.whl \
  >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }
cd "$work"  # not the checkout: the installed package must stand alone
venv/bin/aekit --version
venv/bin/aekit datasets
venv/bin/aekit train --preset seed --data mnist-5k --epochs 1 --out run --quiet
test -f run/model.safetensors -a -f run/report.html
venv/bin/python - <<'PY'
from pathlib import Path

import aekit

here = Path(aekit.__file__).parent
assert "site-packages" in str(here), f"aekit imported from {here}, not from the installed wheel"
assert (here / "py.typed").is_file(), "the wheel carries no py.typed"
print(f"wheel: aekit {aekit.__version__} from {here}, py.typed present")
PY
