#!/usr/bin/env bash
# Estimate the cpu preset's t* per genotype WITHOUT test ground truth: seeded DIP runs on held-out
# CBSD68 crops (64x64, width 32, the cpu preset's sizes); t* = argmax of the mean held-out PSNR curve.
# Usage: benchmarks/calibrate_cpu.sh [CBSD68_DIR] [WORK_DIR]    (env: DEVICE=auto|cpu|cuda, PYTHON=python3)
# One process per (task, genotype), all in parallel; merged into nasdip_zoo/bench/cpu_tstar.json.
# Cost: 40k iterations of width-32 networks at 64x64: minutes on one GPU, hours on 2 shared CPU cores.
set -euo pipefail
DATA=${1:-../shared/data/cbsd68}
WORK=${2:-$(mktemp -d)}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-auto}
IMAGES="101085 102061"          # held-out CBSD68 ids (not in Set5, the denoising set or the Heide set)
declare -A ITERS=([sr]=${SR_ITERS:-1500} [denoise]=${DENOISE_ITERS:-1500} [inpaint]=${INPAINT_ITERS:-2000})
TSTAR_FILE=${TSTAR_FILE:-nasdip_zoo/bench/cpu_tstar.json}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p "$WORK"
pids=()
for task in sr denoise inpaint; do
  for m in "nasdip-$task" "nasdip-$task-cell-only" "nasdip-$task-connections-only" dip-skip; do
    "$PYTHON" -m nasdip_zoo.cli bench calibrate "$task" --data "$DATA" --images $IMAGES --methods "$m" \
      --iterations "${ITERS[$task]}" --seed 1000 --device "$DEVICE" --out "$WORK/$task-$m.json" --no-progress \
      > "$WORK/$task-$m.log" 2>&1 &
    pids+=($!)
  done
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
cat "$WORK"/*.log
"$PYTHON" - "$TSTAR_FILE" "$WORK"/*.json <<'PY'
import json, sys
from nasdip_zoo.bench.calibrate import merge_calibrations
target = sys.argv[1]
for f in sys.argv[2:]:
    for key, entries in json.load(open(f))["t_star"].items():
        merge_calibrations(target, key, entries)
print("merged", len(sys.argv) - 2, "tables into", target)
PY
exit $status
