#!/usr/bin/env bash
# scripts/bench_gpu_layers.sh — seconds per decoder layer of `qshard quantize --device cuda` on
# synthetic Llama shapes (qshard synth: real shapes, seeded weights), 128 calibration samples x 2048
# tokens, GPTQ 4-bit g128 act-order, one GPU. Prints the per-phase lines of each layer and the
# peak memory; BENCHMARKS.md §4 records the results.
#
#   QSHARD=build/qshard bash scripts/bench_gpu_layers.sh [SHAPE:LAYERS ...]
#     default: llama-3-8b:3 llama-3-70b:2 llama-3.1-405b:1
# Env: QS_BENCH_DIR (scratch for the synthetic models, default /tmp/qs_bench), SAMPLES (128),
# SEQLEN (2048), METHODS (default "gptq"; e.g. "gptq awq awq+gptq": each shape quantized by each,
# --act-order only for the GPTQ solves), EXTRA (more quantize options, e.g. "--precision fp32").
set -euo pipefail
Q=${QSHARD:-build/qshard}
dir=${QS_BENCH_DIR:-/tmp/qs_bench}
samples=${SAMPLES:-128}
seqlen=${SEQLEN:-2048}
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(llama-3-8b:3 llama-3-70b:2 llama-3.1-405b:1)
mkdir -p "$dir"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true
for s in "${shapes[@]}"; do
  shape=${s%%:*} layers=${s##*:}
  m=$dir/$shape-$layers
  t0=$(date +%s.%N)
  "$Q" synth --config "$shape" --layers "$layers" --tokens $((samples * seqlen + 1)) --force --out "$m" > "$m.synth.log" 2>&1 \
    || { cat "$m.synth.log"; exit 1; }
  echo "== $shape, $layers layer(s): synth $(python3 -c "import time; print('%.1f' % (time.time() - $t0))") s"
  for method in ${METHODS:-gptq}; do
    mopts=(--method "$method")
    case $method in gptq | awq+gptq) mopts+=(--act-order) ;; esac
    echo "-- $shape: --method $method"
    # shellcheck disable=SC2086
    /usr/bin/time -v "$Q" quantize --device cuda --model "$m" --calib "$m/tokens.h5" --samples "$samples" --seqlen "$seqlen" \
      --bits 4 --group-size 128 "${mopts[@]}" ${EXTRA:-} --force --out "$m.q" > "$m.q.log" 2>&1 || { tail -n 40 "$m.q.log"; exit 1; }
    grep -E "phases|quantized .* layers|calibration:|cuda engine|layer [0-9]+/[0-9]+ quantized" "$m.q.log" || true
    grep -E "Maximum resident|Elapsed" "$m.q.log" || true
    rm -rf "$m.q"
  done
  rm -rf "$m"
done
