#!/usr/bin/env bash
# The FULL preset (the paper's protocol unchanged) on a GPU, all three tasks interleaved within one
# wall-clock budget; run it again with the same arguments to continue where it stopped.
# Usage: benchmarks/run_gpu.sh [DATA_ROOT] [BUDGET_SECONDS] [OUT]
set -euo pipefail
DATA=${1:-../shared/data}
BUDGET=${2:-3000}
OUT=${3:-benchmarks/results/full}
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
"$PYTHON" -m nasdip_zoo.cli bench all --data "$DATA" --preset full --device cuda --time-budget "$BUDGET" --out "$OUT" --no-progress
