#!/usr/bin/env bash
# Set up aekit from scratch: a virtual environment in .venv with PyTorch pinned to the
# local 2.13.0 CPU build (constraints.txt), aekit in editable mode with its extras, and,
# when run as root, Debian's Fashion-MNIST and chromium (for the report test). Safe to run again: it reinstalls only when
# pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${AEKIT_EXTRAS:-test}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  want_pkgs=()
  [ -d /usr/share/datasets/fashion-mnist ] || want_pkgs+=(dataset-fashion-mnist)
  command -v chromium >/dev/null || want_pkgs+=(chromium)  # the report test opens pages in it
  if [ ${#want_pkgs[@]} -gt 0 ]; then
    echo "setup: installing Debian's ${want_pkgs[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want_pkgs[@]}" >/dev/null) \
      || echo "setup: could not install ${want_pkgs[*]}; Fashion-MNIST will be downloaded when first asked"
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.aekit-installed
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16) $EXTRAS"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing aekit[$EXTRAS] into .venv (torch pinned by constraints.txt)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi
