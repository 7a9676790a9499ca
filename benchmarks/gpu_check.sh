#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU, run as it is (after `make bench` or `make test`
# created .venv), in under ten minutes:
#
#   bash benchmarks/gpu_check.sh            # writes gpu-check-<time>/ and prints one table at the end
#
# 1. nvidia-smi's view of the GPU;
# 2. `tribench peak --device gpu` (matmul peaks per precision, copy bandwidth: the MFU reference);
# 3. every backend's tiny cnn and transformer training on the GPU, in every precision and both
#    compile modes (native, compiled), energy on (NVML), one process each;
# 4. the decoder's generate mode (TTFT, TPOT, decode bandwidth) at batch 1 and 16, native and compiled
#    (torch.compile with a static cache, jax.jit, tf.function/XLA, paddle.jit.to_static);
# 5. sustained throughput against a bare loop of the same model (benchmarks/sustained_vs_bare_loop.py);
# 6. one table: each case's throughput, latency, energy per sample, MFU, device peak memory, and the
#    bare-loop ratio (benchmarks/gpu_check_table.py).
#
# Each step has its own time limit, so a hang in one leaves the others' results. PY and OUT override
# the interpreter and the output folder. Paddle runs on the GPU only with its CUDA build installed
# (README "Installing"); with [all]'s CPU wheel its GPU cases are skipped with that reason.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
started=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - started )) s in)" >&2; }

step "nvidia-smi"
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv | tee "$OUT/nvidia-smi.csv"

step "tribench peak"
timeout 120 "$PY" -m tribench peak --device gpu --json > "$OUT/peak.json" 2> "$OUT/peak.log" \
  || echo "peak: exit $? (see $OUT/peak.log)" >&2

step "tribench run: tiny cases, every precision, native and compiled, energy on"
timeout 330 "$PY" -m tribench run --device gpu --backend torch,tensorflow,jax,paddle --workload cnn,transformer \
  --size tiny --mode train --precision fp32,tf32,bf16,fp16 --compile native,compiled --processes 1 \
  --min-time 0.3 --max-time 2 --sustained-time 0.3 --idle-baseline 1 --timeout 120 \
  --output "$OUT/run.json" > "$OUT/run.txt" 2> "$OUT/run.log" \
  || echo "run: exit $? (see $OUT/run.log)" >&2

step "tribench run: the decoder's generate mode"
timeout 150 "$PY" -m tribench run --device gpu --backend torch,tensorflow,jax,paddle --workload decoder --size small \
  --mode generate --batch 1,16 --prompt 128 --new-tokens 64 --compile native,compiled --processes 1 \
  --min-time 0.3 --max-time 2 --idle-baseline 0 --timeout 90 \
  --output "$OUT/generate.json" > "$OUT/generate.txt" 2> "$OUT/generate.log" \
  || echo "generate: exit $? (see $OUT/generate.log)" >&2

step "sustained throughput against a bare loop"
timeout 100 "$PY" benchmarks/sustained_vs_bare_loop.py --processes 1 --pairs 3 --device gpu --workload cnn,transformer \
  --mode train --json "$OUT/bare.json" > "$OUT/bare.txt" 2> "$OUT/bare.log" \
  || echo "bare loop: exit $? (see $OUT/bare.log)" >&2

step "table"
if [ -f "$OUT/run.json" ]; then
  "$PY" benchmarks/gpu_check_table.py "$OUT/run.json" "$OUT/bare.json" | tee "$OUT/table.txt"
else
  echo "no run file: see $OUT/run.log" >&2
fi
echo "== done in $(( $(date +%s) - started )) s; everything is in $OUT" >&2
