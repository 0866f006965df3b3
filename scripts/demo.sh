#!/usr/bin/env bash
# The quick start: set up, then train the classic 784-128-64-32 autoencoder on 5,000 real
# MNIST digits that ship with the install (no network), writing runs/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
rm -rf runs/quickstart
.venv/bin/aekit train --preset seed --data mnist-5k --epochs 50 --out runs/quickstart "$@"
.venv/bin/aekit evaluate runs/quickstart
echo "see runs/quickstart/report.html (all of it on one page) and reconstructions.png (originals above, reconstructions below)"
