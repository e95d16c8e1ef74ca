#!/usr/bin/env bash
# qshard quantize --method awq / awq+gptq on the cuda engine against the CPU engine (label gpu;
# one rank, one GPU). The GPU searches the scales with the same candidates and the same
# Hessian-form error as the CPU (quant/awq.h), its GEMM in TF32 by default (QS_AWQ_SEARCH_TF32=0:
# fp32), the clipping in fp32 with another summation order; the forward in bf16 by default.
#   1. stories260K, per-row groups (its 172-wide MLP), --precision fp32 and an fp32 search: the
#      chosen scales are the CPU's up to near-ties, so >= 99 % identical codes in every tensor and
#      the perplexity of the written checkpoint within 0.5 % of the CPU engine's;
#   2. gutenberg28M AWQ 4-bit g128, the default bf16 path (TF32 search): perplexity within 2 % of the
#      CPU engine's (the spread bf16 activations give GPTQ in test_quantize_cuda.sh); the AWQ GEMM
#      output from the GPU is read by `qshard eval` with the report's perplexity;
#   3. gutenberg28M awq+gptq 4-bit g128 on the GPU: perplexity within 2 % of the CPU engine's.
set -euo pipefail
. "$QS_SRC/tests/qs_cuda_check.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
run() { # name model calib eval [options...]
  local name=$1 dir=$2 calib=$3 ev=$4
  shift 4
  "$Q" quantize --model "$dir" --calib "$calib" --samples 32 --seqlen 512 --eval "$ev" --eval-seqlen 512 \
    --eval-windows 40 "$@" --out "$T/$name" > "$T/$name.log" 2>&1 || { cat "$T/$name.log"; fail "quantize $name"; }
}

echo "== 1. stories260K awq, fp32 forward and search: cuda vs cpu"
run a_cpu_S "$S" "$S/ptb_valid.tok512.h5" "$S/tinystories_sample.tok512.h5" --method awq --group-size -1 --device cpu
QS_AWQ_SEARCH_TF32=0 run a_f32_S "$S" "$S/ptb_valid.tok512.h5" "$S/tinystories_sample.tok512.h5" --method awq \
  --group-size -1 --device cuda --precision fp32
grep -E "phases" "$T/a_f32_S.log" | head -n 1 || true
"$QS_CODES_CMP" "$T/a_cpu_S" "$T/a_f32_S" 0.99 | tail -n 1
"$QS_CODES_CMP" "$T/a_cpu_S" "$T/a_f32_S" 0.99 > /dev/null || fail "S: codes differ beyond 1 %"
within "$(ppl_rep "$T/a_f32_S")" "$(ppl_rep "$T/a_cpu_S")" 5e-3 || fail "S: perplexity beyond 0.5 %"

echo "== 2. gutenberg28M awq 4-bit g128 (AWQ GEMM output): cuda bf16 vs cpu"
run a_cpu_G "$G" "$G/gutenberg_val.h5" "$G/wikitext2_test.h5" --method awq --format awq --device cpu
run a_gpu_G "$G" "$G/gutenberg_val.h5" "$G/wikitext2_test.h5" --method awq --format awq --device cuda
grep -E "phases" "$T/a_gpu_G.log" | head -n 2 || true
within "$(ppl_rep "$T/a_gpu_G")" "$(ppl_rep "$T/a_cpu_G")" 2e-2 || fail "G: awq perplexity beyond 2 %"
"$Q" eval --device cuda --model "$T/a_gpu_G" --data "$G/wikitext2_test.h5" --seqlen 512 --eval-windows 40 \
  > "$T/e_awq.log" 2>&1 || { cat "$T/e_awq.log"; fail "eval of the GPU's AWQ GEMM output"; }
within "$(ppl_log "$T/e_awq.log")" "$(ppl_rep "$T/a_gpu_G")" 1e-4 || fail "G: eval of the AWQ output != the report's"

echo "== 3. gutenberg28M awq+gptq 4-bit g128: cuda bf16 vs cpu"
run ag_cpu_G "$G" "$G/gutenberg_val.h5" "$G/wikitext2_test.h5" --method awq+gptq --device cpu
run ag_gpu_G "$G" "$G/gutenberg_val.h5" "$G/wikitext2_test.h5" --method awq+gptq --device cuda
within "$(ppl_rep "$T/ag_gpu_G")" "$(ppl_rep "$T/ag_cpu_G")" 2e-2 || fail "G: awq+gptq perplexity beyond 2 %"
echo "PASS"
