#!/usr/bin/env bash
# Everything this project measures on a lent GPU, in ONE device call of at most ~9.5 minutes:
#   A. issue 7's checks (fast paths agree with eager on CUDA; ms/iteration of the zoo at 128-512 px;
#      torch.compile; restore_many), each part time-boxed;
#   B. the benchmark's FULL preset (the paper's protocol unchanged), all three tasks interleaved,
#      within the time left: the results record what fraction of the preset that was.
# Usage (repository root, the device image's python3, no installs):
#   OUT=/out/folder bash benchmarks/gpu_session.sh DATA_ROOT [TOTAL_SECONDS]
# DATA_ROOT holds set5/x4_GT, bm3d/gt and heide_inpainting/gt (a copy of ../shared/data's folders).
# Writes $OUT/gpu-results.tgz (every file) and $OUT/summary.txt (the tables).
set -u
OUT="${OUT:?set OUT to the output folder}"
DATA="${1:?give the data root}"
TOTAL="${2:-540}"
RES=/tmp/nasdip-gpu
rm -rf "$RES"; mkdir -p "$RES/speed" "$RES/full"
export PYTHONPATH=. PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
START=$(date +%s)
left() { echo $(( TOTAL - ($(date +%s) - START) )); }
log() { echo "[gpu_session $(( $(date +%s) - START ))s] $*" | tee -a "$RES/session.log"; }

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" -c "import torch,sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
} > "$RES/env.txt" 2>&1
cat "$RES/env.txt"

log "A1 fast-path agreement tests on CUDA"
timeout 50 "$PY" -m pytest -q -p no:cacheprovider tests/test_speed.py -k "cuda or restore_many or separable" > "$RES/speed/tests.txt" 2>&1
log "A1 rc=$? $(tail -1 "$RES/speed/tests.txt")"

log "A2 ms/iteration, four genotypes x 128/256/512 px (eager fp32 baseline in the same run)"
timeout 120 "$PY" benchmarks/speed.py --device cuda --sizes 128 256 512 --warmup 3 --repeats 3 --iters 5 \
  --time-budget 95 --out "$RES/speed" --tag main > /dev/null 2>> "$RES/session.log"
log "A2 rc=$?"

log "A3 torch.compile variants, nasdip-sr at 256 px"
timeout 70 "$PY" benchmarks/speed.py --device cuda --genotypes nasdip-sr --sizes 256 --no-flops \
  --variants eager auto cl+up+ip+compile+fused+sync25 cl+up+ip+compile+bf16+fused+sync25 \
  --warmup 3 --repeats 3 --iters 5 --time-budget 40 --out "$RES/speed" --tag compile > /dev/null 2>> "$RES/session.log"
log "A3 rc=$?"

log "A4 restore_many: 8 networks in one vmapped program vs 8 sequential runs (128 px)"
timeout 40 "$PY" benchmarks/speed.py --device cuda --many-only --many 8 --many-size 128 --many-genotype nasdip-denoise \
  --repeats 2 --iters 5 --out "$RES/speed" --tag many > /dev/null 2>> "$RES/session.log"
log "A4 rc=$?"

B=$(( $(left) - 25 ))
log "B full preset, all tasks interleaved, --time-budget ${B}s"
timeout $(( B + 15 )) "$PY" -m nasdip_zoo.cli bench all --data "$DATA" --preset full --device cuda \
  --time-budget "$B" --out "$RES/full" --no-progress > "$RES/full/bench.log" 2>&1
log "B rc=$? $(tail -3 "$RES/full/bench.log" | tr '\n' ' ')"

{ cat "$RES/env.txt"; cat "$RES/session.log"; echo; for f in "$RES"/speed/*.md "$RES"/full/*/*.md "$RES"/full/*.md; do
    [ -f "$f" ] && { echo "=== $f"; cat "$f"; echo; }; done; } > "$OUT/summary.txt" 2>/dev/null
tar czf "$OUT/gpu-results.tgz" -C "$RES" .
log "done"
