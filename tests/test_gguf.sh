#!/usr/bin/env bash
# qshard quantize --format gguf:TYPE (src/formats/gguf.c, FORMATS.md §5), CPU, our own checks (the
# llama.cpp clients are tests/py/gguf_client.sh):
#   1. stories260K gguf:F32: `qshard eval` of the file gives exactly the PPL of the input model (every
#      weight kept, q/k rows permuted into llama.cpp's order and back);
#   2. stories260K gguf:Q4_K_M (hidden 64: every k-quant falls back as llama-quantize does — token_embd
#      (tied, so the output) Q8_0, linears Q5_0, attn_v/ffn_down of the more-bits layers Q8_0,
#      ffn_down's 172-wide rows F16), checked in `qshard inspect`; byte-identical for mpirun -np 1, 2,
#      3 and for 1 or 2 threads; evaluates close to the input (PPL within 5 %);
#   3. gutenberg28M gguf:Q4_K_M (real k-quants: Q4_K, Q6_K for the output and for attn_v/ffn_down of
#      layers 0, 3, 6, 7 of 8); --imatrix from calibration writes OUT/imatrix.gguf, and a run reading
#      it back (--imatrix=FILE) writes the same model file; -np 2 the same too;
#      --method gptq into the same mix: the same types, other codes, the same bytes for -np 1/2;
#   4. bad input, refused before any work with one message: a type with no fallback for a shape
#      (stories gguf:Q8_0: 172-wide rows), an unknown type, grid options with gguf, --method gptq with
#      --act-order or into IQ4_NL, --imatrix without gguf or without --calib, --device cuda.
set -euo pipefail
S=${QS_DATA_DIR:-}/stories260K
G=${QS_DATA_DIR:-}/gutenberg28M
[ -n "${QS_DATA_DIR:-}" ] && [ -f "$S/config.json" ] && [ -f "$G/config.json" ] || { echo "SKIP: shared data not found"; exit 77; }
Q=$QSHARD
T=$(mktemp -d "${TMPDIR:-/tmp}/qs_gguf.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
q() { # name np model [quantize options...]
  local name=$1 np=$2 model=$3
  shift 3
  $QS_MPIEXEC -np "$np" "$Q" quantize --model "$model" "$@" --out "$T/$name" > "$T/$name.log" 2>&1 \
    || { cat "$T/$name.log"; fail "quantize $name"; }
}
ppl() { "$Q" eval --model "$1" --data "$2" --seqlen "$3" --eval-windows "$4" | awk '/^ppl /{print $2}'; }
types() { "$Q" inspect "$1" | awk '$1 ~ /\.weight$/ {print $1, $2}'; }

echo "== 1. stories260K gguf:F32: the model itself"
q s_f32 1 "$S" --format gguf:F32
f=$T/s_f32/stories260K-F32.gguf
[ -f "$f" ] || fail "no $f"
a=$(ppl "$S" "$S/tinystories_sample.tok512.h5" 256 8)
b=$(ppl "$f" "$S/tinystories_sample.tok512.h5" 256 8)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "F32 GGUF ppl $b != model ppl $a"
echo "F32 GGUF evaluates as the model: ppl $a"

echo "== 2. stories260K gguf:Q4_K_M: llama-quantize's fallbacks; any rank or thread count"
q s_q4km 1 "$S" --format gguf:Q4_K_M
f=$T/s_q4km/stories260K-Q4_K_M.gguf
types "$f" > "$T/types.txt"
exp() { grep -qx "$1 $2" "$T/types.txt" || { cat "$T/types.txt"; fail "$1 is not $2"; }; }
exp token_embd.weight Q8_0
for l in 0 1 2 3 4; do
  for t in attn_q attn_k attn_output ffn_gate ffn_up; do exp blk.$l.$t.weight Q5_0; done
  exp blk.$l.ffn_down.weight F16
  exp blk.$l.attn_norm.weight F32
done
# use_more_bits(i, 5): layers 0 (i < 5/8 = 0 fails; i >= 7*5/8 = 4), so layer 4, and (i - 0) % 3 == 2: layer 2
for l in 2 4; do exp blk.$l.attn_v.weight Q8_0; done
for l in 0 1 3; do exp blk.$l.attn_v.weight Q5_0; done
for np in 2 3; do
  q s_q4km_np$np "$np" "$S" --format gguf:Q4_K_M
  cmp "$f" "$T/s_q4km_np$np/stories260K-Q4_K_M.gguf" || fail "-np $np wrote other bytes"
done
QS_THREADS=1 q s_q4km_t1 1 "$S" --format gguf:Q4_K_M
cmp "$f" "$T/s_q4km_t1/stories260K-Q4_K_M.gguf" || fail "QS_THREADS=1 wrote other bytes"
b=$(ppl "$f" "$S/tinystories_sample.tok512.h5" 256 8)
awk -v a="$a" -v b="$b" 'BEGIN { exit !(b > 0 && b < a * 1.05) }' || fail "Q4_K_M ppl $b vs F32 $a"
echo "Q4_K_M: same bytes for -np 1/2/3 and 1 thread; ppl $b (F32 $a)"

echo "== 3. gutenberg28M gguf:Q4_K_M, --imatrix"
q g_q4km 1 "$G" --format gguf:Q4_K_M
f=$T/g_q4km/gutenberg28M-Q4_K_M.gguf
types "$f" > "$T/types.txt"
exp token_embd.weight Q6_K
for l in 0 3 6 7; do exp blk.$l.attn_v.weight Q6_K; exp blk.$l.ffn_down.weight Q6_K; done
for l in 1 2 4 5; do exp blk.$l.attn_v.weight Q4_K; exp blk.$l.ffn_down.weight Q4_K; done
exp blk.5.attn_q.weight Q4_K
calib=(--calib "$G/gutenberg_val.h5" --samples 4 --seqlen 128)
q g_imat 1 "$G" "${calib[@]}" --format gguf:Q4_K_M --imatrix
[ -f "$T/g_imat/imatrix.gguf" ] || fail "no imatrix.gguf"
"$Q" inspect "$T/g_imat/imatrix.gguf" | grep -q 'blk.7.ffn_down.weight.in_sum2' || fail "imatrix.gguf lacks blk.7.ffn_down"
fi=$T/g_imat/gutenberg28M-Q4_K_M.gguf
cmp -s "$f" "$fi" && fail "the imatrix changed nothing"
q g_imat_file 1 "$G" --format gguf:Q4_K_M --imatrix="$T/g_imat/imatrix.gguf"
cmp "$fi" "$T/g_imat_file/gutenberg28M-Q4_K_M.gguf" || fail "--imatrix=FILE of the written imatrix: other bytes"
q g_imat_np2 2 "$G" "${calib[@]}" --format gguf:Q4_K_M --imatrix
cmp "$fi" "$T/g_imat_np2/gutenberg28M-Q4_K_M.gguf" || fail "--imatrix -np 2: other bytes"
cmp "$T/g_imat/imatrix.gguf" "$T/g_imat_np2/imatrix.gguf" || fail "imatrix.gguf -np 2: other bytes"
echo "imatrix: written, read back to the same bytes, same for -np 2"
q g_gptq 1 "$G" "${calib[@]}" --method gptq --format gguf:Q4_K_M
q g_gptq_np2 2 "$G" "${calib[@]}" --method gptq --format gguf:Q4_K_M
fg=$T/g_gptq/gutenberg28M-Q4_K_M.gguf
cmp "$fg" "$T/g_gptq_np2/gutenberg28M-Q4_K_M.gguf" || fail "--method gptq -np 2: other bytes"
types "$fg" | cmp - "$T/types.txt" || fail "--method gptq: other tensor types than llama-quantize's mix"
cmp -s "$fg" "$f" && fail "GPTQ chose the same codes as llama.cpp's quantizer everywhere"
echo "GPTQ into Q4_K_M: the mix's types, same bytes for -np 1/2"

echo "== 4. refusals"
refuse() { # np expected-message model [options...]  (command-line errors: every rank parses; -np 1)
  local np=$1 msg=$2 model=$3 out
  shift 3
  rm -rf "$T/bad"
  if out=$($QS_MPIEXEC -np "$np" "$Q" quantize --model "$model" "$@" --out "$T/bad" 2>&1); then fail "accepted: $*"; fi
  echo "$out" | grep -q -- "$msg" || { echo "$out"; fail "no '$msg' for: $*"; }
  [ "$(echo "$out" | grep -c -- "$msg")" = 1 ] || { echo "$out"; fail "message not printed once: $*"; }
  [ ! -e "$T/bad" ] || fail "output written for: $*"
}
refuse 2 "no fallback for Q8_0" "$S" --format gguf:Q8_0
refuse 1 "expected gguf:TYPE" "$S" --format gguf:Q9_K
refuse 1 "expected gguf:TYPE" "$S" --format gguf
refuse 1 "sets the grid of every tensor" "$S" --format gguf:Q4_K_M --bits 3
refuse 2 "GPTQ into llama.cpp's block grids keeps the column order" "$S" --calib "$S/ptb_valid.tok512.h5" \
  --samples 4 --seqlen 64 --method gptq --act-order --format gguf:Q4_K_M
refuse 2 "whose codes GPTQ cannot choose" "$G" --calib "$G/gutenberg_val.h5" --samples 4 --seqlen 64 \
  --method gptq --format gguf:IQ4_NL
refuse 1 "it needs --format gguf" "$S" --method rtn --imatrix
refuse 1 "give --calib" "$S" --format gguf:Q4_K_M --imatrix
refuse 2 "run on the CPU" "$S" --format gguf:Q4_K_M --device cuda
echo "PASS"
