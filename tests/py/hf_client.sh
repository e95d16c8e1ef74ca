#!/usr/bin/env bash
# The engines' own packages load qshard's outputs (tests/py/hf_client.py, label python): on
# gutenberg28M, transformers + compressed-tensors load the compressed-tensors output — 4-bit g128 and
# 8-bit per-channel asymmetric, act-order (static groups) — and transformers +
# optimum + gptqmodel (its pure-torch kernel) the GPTQ v1 output; each is checked to be loaded for
# real (every stored tensor in place, the layers replaced by the backend's quantized modules) and
# its perplexity on the first windows of wikitext2_test must equal `qshard eval` of the same
# checkpoint (fp32 CPU) within a derived tolerance (hf_client.py, BENCHMARKS.md "Real clients"):
#   fp32, compressed-tensors: 1e-5 relative — both dequantize to the same fp32 weights (bf16 scales
#        are exact in fp32) and differ only in summation order (largest seen 1e-7);
#   fp32, GPTQ via gptqmodel: 2e-4 — its TorchLinear rounds every dequantized weight to fp16 before
#        the matmul (largest seen 2.8e-5);
#   bf16: 5e-3 — bf16 activations and weights: per-token noise averages to ~4e-4 over 4 windows of
#        1024, so 5e-3 is above 5 sigma (largest seen 9.2e-4).
# AWQ GEMM (an AWQ run on stories260K): transformers' AwqQuantizer through gptqmodel's pure-torch AWQ
# kernel, each module's weight as gptqmodel dequantizes it equal to vLLM's unpacking of the stored
# words (hf_client.py), bf16 within 5e-3; that run's compressed-tensors output (folded norms) fp32 1e-5.
# Calibration is tiny (4 x 256 tokens): this checks the formats, not the quality.
set -euo pipefail
if [ -z "${QS_PYTHON:-}" ]; then echo "SKIP: QS_PYTHON not set"; exit 77; fi
"$QS_PYTHON" -c 'import torch, transformers, compressed_tensors, gptqmodel' 2>/dev/null \
  || { echo "SKIP: the client packages (tests/py/requirements-*.txt) are not in $QS_PYTHON"; exit 77; }
G=${QS_DATA_DIR:-}/gutenberg28M
[ -n "${QS_DATA_DIR:-}" ] && [ -f "$G/config.json" ] || { echo "SKIP: shared data not found"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/qs_hfclient.XXXXXX")
trap 'rm -rf "$T"' EXIT
W=$G/wikitext2_test.h5
"$QS_PYTHON" -c 'import torch, transformers, compressed_tensors, optimum, gptqmodel as g; print("torch", torch.__version__, "transformers", transformers.__version__, "compressed-tensors", compressed_tensors.__version__, "optimum", optimum.__version__ if hasattr(optimum, "__version__") else "?", "gptqmodel", g.__version__)' 2>/dev/null | tail -n 1

client() { # dir expect-format dtype rtol
  local ppl
  ppl=$("$QSHARD" eval --model "$1" --data "$W" --seqlen 1024 --eval-windows 4 | awk '/^ppl /{print $2}')
  [ -n "$ppl" ] || { echo "FAIL: qshard eval $1"; exit 1; }
  echo "${1#$T/} ($2, $3): qshard eval ppl $ppl; the client, within $4:"
  "$QS_PYTHON" "$QS_SRC/tests/py/hf_client.py" --model "$1" --data "$W" --seqlen 1024 --windows 4 \
    --dtype "$3" --expect-format "$2" --expect-ppl "$ppl" --rtol "$4" || { echo "FAIL: $1 ($2, $3)"; exit 1; }
}
q() { # name quantize-options...
  local name=$1
  shift
  $QS_MPIEXEC -np 2 "$QSHARD" quantize --model "$G" --calib "$G/gutenberg_val.h5" --samples 4 --seqlen 256 \
    --act-order "$@" --out "$T/$name" > "$T/$name.log" 2>&1 || { cat "$T/$name.log"; echo "FAIL: quantize $name"; exit 1; }
}
echo "== compressed-tensors (transformers + compressed-tensors)"
q ct4 --bits 4 --group-size 128 --format compressed-tensors
client "$T/ct4" compressed-tensors float32 1e-5
# (bf16 loading: the AWQ client below; 8-bit per-channel: the asymmetric run, whose symmetric twin
# differs only in the zero points that 4-bit sym/asym above already cover — both cut for CI time)
q ct8a --bits 8 --group-size -1 --asym --format compressed-tensors
client "$T/ct8a" compressed-tensors float32 1e-5
# (4-bit g128 asymmetric compressed-tensors is the second output of the next run.)
echo "== GPTQ v1 and compressed-tensors from one run (transformers + gptqmodel, compressed-tensors)"
q both --bits 4 --group-size 128 --asym --format gptq,compressed-tensors
client "$T/both" gptq float32 2e-4
client "$T/both/compressed-tensors" compressed-tensors float32 1e-5
echo "== AWQ GEMM and compressed-tensors from one AWQ run (transformers + gptqmodel's AWQ kernel, compressed-tensors)"
# stories260K (fp32, fast): every module but the 172-wide gate/up packs as AWQ at group size -1; the
# compressed-tensors output carries the folded norms to transformers as they are.
S=$QS_DATA_DIR/stories260K
$QS_MPIEXEC -np 2 "$QSHARD" quantize --model "$S" --calib "$S/ptb_valid.tok512.h5" --samples 8 --seqlen 128 \
  --method awq --group-size -1 --format awq,compressed-tensors --out "$T/awq" > "$T/awq.log" 2>&1 ||
  { cat "$T/awq.log"; echo "FAIL: quantize awq"; exit 1; }
client_s() { # dir expect-format dtype rtol
  local ppl
  ppl=$("$QSHARD" eval --model "$1" --data "$S/tinystories_sample.tok512.h5" --seqlen 256 --eval-windows 8 | awk '/^ppl /{print $2}')
  [ -n "$ppl" ] || { echo "FAIL: qshard eval $1"; exit 1; }
  echo "${1#$T/} ($2, $3): qshard eval ppl $ppl; the client, within $4:"
  "$QS_PYTHON" "$QS_SRC/tests/py/hf_client.py" --model "$1" --data "$S/tinystories_sample.tok512.h5" --seqlen 256 \
    --windows 8 --dtype "$3" --expect-format "$2" --expect-ppl "$ppl" --rtol "$4" || { echo "FAIL: $1 ($2, $3)"; exit 1; }
}
# gptqmodel's AWQ kernels compute in fp16/bf16 only: bf16, 5e-3 as above
client_s "$T/awq" awq bfloat16 5e-3
client_s "$T/awq/compressed-tensors" compressed-tensors float32 1e-5
echo "hf_client: all passed"
