#!/usr/bin/env bash
# The cpu preset on this machine's 2 CPU cores: one single-threaded process per task (3 processes),
# each resumable (run the script again to continue) and bounded by BUDGET seconds of wall clock.
# Usage: benchmarks/run_cpu.sh [DATA_ROOT] [OUT]      (env: BUDGET=3000, PYTHON=python3)
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-benchmarks/results/cpu}
BUDGET=${BUDGET:-3000}
PYTHON=${PYTHON:-python3}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p "$OUT"
run() {  # task, data folder
  "$PYTHON" -m nasdip_zoo.cli bench "$1" --data "$2" --preset cpu --out "$OUT" --time-budget "$BUDGET" --no-progress \
    >> "$OUT/$1.log" 2>&1
}
run sr "$DATA/set5/x4_GT" & a=$!
run denoise "$DATA/bm3d/gt" & b=$!
run inpaint "$DATA/heide_inpainting/gt" & c=$!
status=0
for p in $a $b $c; do wait "$p" || status=1; done
exit $status
