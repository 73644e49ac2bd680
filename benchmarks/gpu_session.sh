#!/usr/bin/env bash
# Everything this project measures on a lent GPU, in ONE device call of at most ~10 minutes:
#   A. issue 7's checks via benchmarks/gpu_check.sh (fast paths agree with eager on CUDA; ms/iteration at 128-512 px;
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
TOTAL="${2:-580}"
RES=/tmp/nasdip-gpu
rm -rf "$RES"; mkdir -p "$RES/speed" "$RES/full"
export PYTHONPATH=. PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
START=$(date +%s)
left() { echo $(( TOTAL - ($(date +%s) - START) )); }
log() { echo "[gpu_session $(( $(date +%s) - START ))s] $*" | tee -a "$RES/session.log"; }

log "A issue 7 checks (benchmarks/gpu_check.sh, each part time-boxed there)"
OUT="$RES/speed" bash benchmarks/gpu_check.sh > /dev/null 2>&1
log "A rc=$?"

B=$(( $(left) - 25 ))
log "B full preset, all tasks interleaved, --time-budget ${B}s"
timeout $(( B + 15 )) "$PY" -m nasdip_zoo.cli bench all --data "$DATA" --preset full --device cuda \
  --time-budget "$B" --out "$RES/full" --no-progress > "$RES/full/bench.log" 2>&1
log "B rc=$? $(tail -3 "$RES/full/bench.log" | tr '\n' ' ')"

{ cat "$RES/speed/env.txt"; cat "$RES/session.log"; echo; for f in "$RES"/speed/*.md "$RES"/full/*/*.md "$RES"/full/*.md; do
    [ -f "$f" ] && { echo "=== $f"; cat "$f"; echo; }; done; } > "$OUT/summary.txt" 2>/dev/null
tar czf "$OUT/gpu-results.tgz" -C "$RES" .
log "done"
