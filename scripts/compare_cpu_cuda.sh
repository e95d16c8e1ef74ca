#!/usr/bin/env bash
# scripts/compare_cpu_cuda.sh — the cuda engine against the CPU engine on one model and option set:
# identical-code fractions per tensor (tests' ckpt_codes_cmp) and the perplexity of each written
# checkpoint (both scored the same way, by `qshard eval --device cpu`).
#
#   QSHARD=build/qshard CODES_CMP=build/tests/ckpt_codes_cmp \
#     bash scripts/compare_cpu_cuda.sh MODEL CALIB EVAL [quantize options...]
# Env: SAMPLES (32), SEQLEN (512), EVAL_WINDOWS (40), CUDA_OPTS (default "--precision fp32").
set -euo pipefail
Q=${QSHARD:-build/qshard}
CMP=${CODES_CMP:-build/tests/ckpt_codes_cmp}
model=$1 calib=$2 ev=$3
shift 3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
common=(--model "$model" --calib "$calib" --samples "${SAMPLES:-32}" --seqlen "${SEQLEN:-512}" "$@")
"$Q" quantize "${common[@]}" --device cpu --out "$T/cpu" > "$T/cpu.log" 2>&1 || { tail -n 30 "$T/cpu.log"; exit 1; }
# shellcheck disable=SC2086
"$Q" quantize "${common[@]}" --device cuda ${CUDA_OPTS:---precision fp32} --out "$T/cuda" > "$T/cuda.log" 2>&1 || { tail -n 30 "$T/cuda.log"; exit 1; }
"$CMP" "$T/cpu" "$T/cuda" 0 | sort -k6 -n | head -n 4
"$CMP" "$T/cpu" "$T/cuda" 0 | tail -n 1
for d in cpu cuda; do
  "$Q" eval --device cpu --model "$T/$d" --data "$ev" --seqlen "${SEQLEN:-512}" --eval-windows "${EVAL_WINDOWS:-40}" \
    > "$T/e_$d.log" 2>&1 || { tail -n 20 "$T/e_$d.log"; exit 1; }
done
a=$(grep -E '^ppl ' "$T/e_cpu.log" | awk '{print $2}') b=$(grep -E '^ppl ' "$T/e_cuda.log" | awk '{print $2}')
python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('ppl cpu %.6f cuda %.6f rel diff %.2e' % (a,b,abs(b/a-1)))" "$a" "$b"
