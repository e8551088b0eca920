#!/usr/bin/env bash
# Plots completed lifecycles over time (operator against baseline) from agentcore-bench's CSV.
# Usage: bash bench/plot.sh [CSV] [PNG]
#   default CSV: target/bench/lifecycles-full.csv; default PNG: docs/benchmarks-lifecycles.png
# Installs matplotlib into a virtualenv under target/ on first use (from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
csv=${1:-target/bench/lifecycles-full.csv}
png=${2:-docs/benchmarks-lifecycles.png}
venv=target/bench-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'matplotlib==3.10.*'
fi
mkdir -p "$(dirname "$png")"
"$venv/bin/python" bench/plot.py "$csv" "$png"
echo "wrote $png"
