#!/usr/bin/env bash
# llama.cpp itself reads and runs qshard's GGUF files (tests/py/llama_client.py; label python), through
# llama-cpp-python (tests/py/requirements-llama.txt: llama.cpp built from its sdist) and gguf-py:
#   1. byte-identity with llama-quantize: qshard's gguf:F32 file quantized by llama.cpp's own
#      llama_model_quantize to each file type equals qshard's gguf:TYPE file — every tensor's name,
#      type, shape and bytes and every key. stories260K (hidden 64: the fallbacks, F16 rows of 172)
#      and gutenberg28M (bf16, real k-quants and their mixes), and gutenberg28M with the imatrix that
#      qshard computed from calibration (when llama-cpp-python passes an imatrix);
#   2. llama.cpp runs them: its perplexity of gutenberg28M F32 / Q8_0 / Q4_K_M (llama.cpp's quantizer,
#      with the imatrix, and GPTQ's codes in the same blocks) and stories260K F32 on
#      the first windows equals `qshard eval` of the same file within a derived tolerance, and its
#      greedy decoding of stories260K F32 reproduces the golden ids.
# Tolerances: with quantized weights llama.cpp's CPU matmuls quantize the activations to 8 bits
# (Q8_K / Q8_0): a relative error of ~2^-9 per activation, averaged over K-long dot products, moves
# the perplexity by well under 1e-2 over 4 windows (seen: 3e-4 Q8_0, 1e-3 Q4_K_M); F32 weights keep fp32
# activations and, with an fp32 K/V cache, only the summation order differs: 1e-5 (seen 6e-8 and 3e-5).
set -euo pipefail
if [ -z "${QS_PYTHON:-}" ]; then echo "SKIP: QS_PYTHON not set"; exit 77; fi
"$QS_PYTHON" -c 'import llama_cpp, gguf, h5py' 2>/dev/null \
  || { echo "SKIP: llama-cpp-python (tests/py/requirements-llama.txt) is not in $QS_PYTHON"; exit 77; }
S=${QS_DATA_DIR:-}/stories260K
G=${QS_DATA_DIR:-}/gutenberg28M
[ -n "${QS_DATA_DIR:-}" ] && [ -f "$G/config.json" ] && [ -f "$S/config.json" ] || { echo "SKIP: shared data not found"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/qs_llamaclient.XXXXXX")
trap 'rm -rf "$T"' EXIT
PY=("$QS_PYTHON" "$QS_SRC/tests/py/llama_client.py")
"$QS_PYTHON" -c 'import llama_cpp, importlib.metadata as m; print("llama-cpp-python", llama_cpp.__version__, "gguf", m.version("gguf"))'
fail() { echo "FAIL: $*"; exit 1; }
q() { # model name type [options...]: prints the model file
  local model=$1 name=$2 type=$3
  shift 3
  $QS_MPIEXEC -np 2 "$QSHARD" quantize --model "$model" --format "gguf:$type" "$@" --out "$T/$name" > "$T/$name.log" 2>&1 \
    || { cat "$T/$name.log" >&2; fail "quantize $name"; }
  ls "$T/$name"/*.gguf | grep -v imatrix.gguf
}
declare -A FT=([F16]=1 [BF16]=32 [Q8_0]=7 [Q4_0]=2 [Q4_1]=3 [Q5_0]=8 [Q5_1]=9 [Q2_K]=10 [Q3_K_S]=11 [Q3_K_M]=12
               [Q3_K_L]=13 [Q4_K_S]=14 [Q4_K_M]=15 [Q5_K_S]=16 [Q5_K_M]=17 [Q6_K]=18 [IQ4_NL]=25)

echo "== 1. each tensor byte for byte what llama-quantize writes"
sf32=$(q "$S" s_F32 F32)
gf32=$(q "$G" g_F32 F32)
# (stories260K's 172-wide ffn_down has no fallback from the 32-block types: llama-quantize stops, and so
# does qshard — tests/test_gguf.sh)
for t in F16 BF16 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K; do
  echo "-- stories260K $t"
  "${PY[@]}" same --ref "$sf32" --ours "$(q "$S" "s_$t" "$t")" --ftype "${FT[$t]}"
done
for t in F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL; do
  echo "-- gutenberg28M $t"
  "${PY[@]}" same --ref "$gf32" --ours "$(q "$G" "g_$t" "$t")" --ftype "${FT[$t]}"
done
calib=(--calib "$G/gutenberg_val.h5" --samples 4 --seqlen 128)
for t in Q4_K_M Q3_K_S Q2_K IQ4_NL Q4_0; do
  echo "-- gutenberg28M $t with the imatrix from calibration"
  f=$(q "$G" "gi_$t" "$t" "${calib[@]}" --imatrix)
  "${PY[@]}" same --ref "$gf32" --ours "$f" --ftype "${FT[$t]}" --imatrix "$T/gi_$t/imatrix.gguf"
done

echo "== 2. llama.cpp runs them (and GPTQ's codes in the Q4_K_M blocks)"
q "$G" gg_Q4_K_M Q4_K_M "${calib[@]}" --method gptq >/dev/null
W=$G/wikitext2_test.h5
for f in "$gf32:1e-5" "$T/g_Q8_0/gutenberg28M-Q8_0.gguf:1e-2" "$T/g_Q4_K_M/gutenberg28M-Q4_K_M.gguf:1e-2" \
         "$T/gi_Q4_K_M/gutenberg28M-Q4_K_M.gguf:1e-2" "$T/gg_Q4_K_M/gutenberg28M-Q4_K_M.gguf:1e-2"; do
  m=${f%:*} tol=${f##*:}
  p=$("$QSHARD" eval --model "$m" --data "$W" --seqlen 256 --eval-windows 4 | awk '/^ppl /{print $2}')
  echo "-- ${m#$T/}: qshard eval ppl $p"
  "${PY[@]}" ppl --model "$m" --data "$W" --seqlen 256 --windows 4 --expect "$p" --rtol "$tol"
done
p=$("$QSHARD" eval --model "$sf32" --data "$S/tinystories_sample.tok512.h5" --seqlen 256 --eval-windows 4 | awk '/^ppl /{print $2}')
"${PY[@]}" ppl --model "$sf32" --data "$S/tinystories_sample.tok512.h5" --seqlen 256 --windows 4 --expect "$p" --rtol 1e-5
"${PY[@]}" greedy --model "$sf32" --ids "$S/greedy_ids.json" --n 128
echo "llama_client: all passed"
