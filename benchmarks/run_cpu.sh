#!/usr/bin/env bash
# The cpu preset on this machine's 2 CPU cores: one single-threaded process per task (3 processes),
# each resumable (run the script again to continue) and bounded by BUDGET seconds of wall clock.
# Usage: benchmarks/run_cpu.sh [DATA_ROOT] [OUT]      (env: BUDGET=3000, PYTHON=python3, ABLATIONS=0|1)
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
# Optional second step (ABLATIONS=1): Table 2's ablations (searched cell only / connections only) for SR
# and denoising, added to the same results (resume keeps what is done); inpainting's need a longer budget.
if [ "${ABLATIONS:-0}" = 1 ]; then
  ab() { "$PYTHON" -m nasdip_zoo.cli bench "$1" --data "$2" --preset cpu --out "$OUT" --time-budget "$BUDGET" --no-progress \
           --methods "nasdip-$1-cell-only" "nasdip-$1-connections-only" >> "$OUT/$1-ablations.log" 2>&1; }
  ab sr "$DATA/set5/x4_GT" & a=$!
  ab denoise "$DATA/bm3d/gt" & b=$!
  for p in $a $b; do wait "$p" || status=1; done
fi
exit $status
