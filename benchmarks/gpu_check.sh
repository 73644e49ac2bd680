#!/usr/bin/env bash
# Issue 7 on a GPU, in ONE device call of at most ~8 minutes (every part has its own time box).
# Run from the repository root:   OUT=/some/folder bash benchmarks/gpu_check.sh
# Needs only the device image's python3 + torch (no pip installs; ray/huggingface_hub are not imported).
# Writes at most 8 files into $OUT (no sub-folders):
#   env.txt, tests.txt, speed-cuda-*-main.{json,md}, speed-cuda-*-compile.{json,md}, speed-cuda-*-many.{json,md}
set -u
OUT="${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
export PYTHONPATH=.
PY="${PYTHON:-python3}"
START=$(date +%s)
log() { echo "[gpu_check $(( $(date +%s) - START ))s] $*" | tee -a "$OUT/env.txt"; }

{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  "$PY" -c "import torch,sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
} >> "$OUT/env.txt" 2>&1

# 1. fast paths agree with eager on CUDA (tiny problem): float32 paths within 0.05 dB, bf16/fp16 within 0.5 dB;
#    restore_many equals separate runs (on CPU; a few seconds). 60 s, then 60 s for the compile test.
log "part 1: agreement tests"
timeout 60 "$PY" -m pytest -q -p no:cacheprovider tests/test_speed.py -k "cuda and not compile or restore_many or separable" >> "$OUT/tests.txt" 2>&1
log "tests rc=$?"
timeout 60 "$PY" -m pytest -q -p no:cacheprovider tests/test_speed.py -k "cuda_compile" >> "$OUT/tests.txt" 2>&1
log "compile test rc=$?"

# 2. the four genotypes at 128/256/512 px, no-compile variants (eager fp32 is the baseline in the same run).
#    No new problem starts after 130 s; hard stop at 170 s (results are written after every problem).
log "part 2: speed (no compile)"
timeout 170 "$PY" benchmarks/speed.py --device cuda --sizes 128 256 512 --warmup 3 --repeats 3 --iters 5 \
  --time-budget 130 --out "$OUT" --tag main > /dev/null 2>> "$OUT/env.txt"
log "speed rc=$?"

# 3. torch.compile variants (compile time is in warm-up_s, not in ms/iter): nasdip-sr at 256 (then nasdip-denoise if time is left).
log "part 3: speed (compile)"
timeout 120 "$PY" benchmarks/speed.py --device cuda --genotypes nasdip-sr nasdip-denoise --sizes 256 --no-flops \
  --variants eager auto cl+up+ip+compile+fused+sync25 cl+up+ip+compile+bf16+fused+sync25 \
  --warmup 3 --repeats 3 --iters 5 --time-budget 50 --out "$OUT" --tag compile > /dev/null 2>> "$OUT/env.txt"
log "compile speed rc=$?"

# 4. restore_many: 8 images as 8 networks in one vmapped program against 8 sequential eager runs (128 px).
log "part 4: restore_many throughput"
timeout 45 "$PY" benchmarks/speed.py --device cuda --many-only --many 8 --many-size 128 --many-genotype nasdip-denoise \
  --repeats 2 --iters 5 --out "$OUT" --tag many > /dev/null 2>> "$OUT/env.txt"
log "many rc=$?"
ls -la "$OUT" >> "$OUT/env.txt"
log "done"
