#!/usr/bin/env bash
# qshard quantize --tp T: the TensorRT-LLM per-rank checkpoint in OUT/trtllm (FORMATS.md §6.1,
# src/formats/trtllm.c), on gutenberg28M (8 heads, 2 KV heads, hidden 512, intermediate 1536), CPU:
#   1. GPTQ 4-bit g128 --tp 2, one process: tests/py/check_trtllm.py re-assembles the rank files and
#      finds the GPTQ checkpoint's tensors exactly; the GPTQ checkpoint is byte-identical to a run
#      without --tp;
#   2. --tp 4 (KV heads duplicated: 2 heads for 4 ranks) under mpirun -np 1, 2 and 3 (writer rank of
#      shard t = t % P, so 1, 2 or 3 ranks write; with 3, rank 0 writes shards 0 and 3): rank files
#      and config byte-identical across -np, and checked;
#   3. RTN 4-bit g64 asymmetric --tp 4 (zeros vary: TensorRT-LLM's `zero` formula is exercised) and
#      GPTQ --act-order (static groups) --tp 2: checked; `qshard eval` of OUT/trtllm (the rank files
#      reassembled in memory) gives exactly the PPL of the GPTQ checkpoint (--tp 4: KV heads duplicated);
#   4. bad input (--tp 3; --tp 8: 64 o_proj inputs per rank, less than a 128-wide group; 3 bits;
#      --act-order=group; per-row groups; --tp 0): one clear message, printed once,
#      non-zero exit, no output directory.
# Calibration is tiny (4 x 128 tokens): this checks the format, not the quality.
set -euo pipefail
if [ -z "${QS_PYTHON:-}" ]; then echo "SKIP: QS_PYTHON not set (configure with -DQS_PYTHON=...)"; exit 77; fi
G=${QS_DATA_DIR:-}/gutenberg28M
[ -n "${QS_DATA_DIR:-}" ] && [ -f "$G/config.json" ] || { echo "SKIP: shared data not found (QS_DATA_DIR=${QS_DATA_DIR:-})"; exit 77; }
Q=$QSHARD
T=$(mktemp -d "${TMPDIR:-/tmp}/qs_trtllm.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
calib=(--calib "$G/gutenberg_val.h5" --samples 4 --seqlen 128)
q() { # name np [quantize options...]
  local name=$1 np=$2
  shift 2
  $QS_MPIEXEC -np "$np" "$Q" quantize --model "$G" "$@" --out "$T/$name" > "$T/$name.log" 2>&1 \
    || { cat "$T/$name.log"; fail "quantize $name"; }
}
chk() { # name tp
  "$QS_PYTHON" "$QS_SRC/tests/py/check_trtllm.py" --out "$T/$1" --model "$G" --tp "$2" || fail "$1: check_trtllm"
}
# `qshard eval` reads the rank files (reassembled in memory) and scores them exactly as the GPTQ
# checkpoint they were cut from.
evals() { # name
  local a b
  a=$("$Q" eval --model "$T/$1" --data "$G/wikitext2_test.h5" --seqlen 256 --eval-windows 3 | grep -E '^ppl ')
  b=$("$Q" eval --model "$T/$1/trtllm" --data "$G/wikitext2_test.h5" --seqlen 256 --eval-windows 3 | grep -E '^ppl ')
  [ -n "$a" ] && [ "$a" = "$b" ] || fail "$1: eval of trtllm/ '$b' != eval of the GPTQ checkpoint '$a'"
  echo "$1: eval of the rank files = eval of the GPTQ checkpoint: $a"
}

echo "== 1. GPTQ 4-bit g128 --tp 2, one process"
q tp2 1 "${calib[@]}" --tp 2
q notp 1 "${calib[@]}"
chk tp2 2
for f in model.safetensors config.json quantize_config.json; do
  cmp "$T/tp2/$f" "$T/notp/$f" || fail "$f differs with --tp"
done

echo "== 2. --tp 4 under -np 1, 2, 3"
for np in 1 2 3; do q "tp4np$np" "$np" "${calib[@]}" --tp 4; done
for np in 2 3; do
  for f in config.json rank0.safetensors rank1.safetensors rank2.safetensors rank3.safetensors; do
    cmp "$T/tp4np1/trtllm/$f" "$T/tp4np$np/trtllm/$f" || fail "trtllm/$f differs between -np 1 and -np $np"
  done
done
chk tp4np3 4
evals tp4np3
echo "identical for -np 1, 2, 3: rank0 $(sha256sum "$T/tp4np1/trtllm/rank0.safetensors" | cut -c1-16)"

echo "== 3. RTN asym g64 --tp 4 (-np 2); GPTQ act-order (static groups) --tp 2"
q rtn 2 --method rtn --asym --group-size 64 --tp 4
chk rtn 4
evals rtn
q act 1 "${calib[@]}" --act-order --tp 2
chk act 2

echo "== 4. bad input"
bad() { # name np expected-substring [quantize options...]
  local name=$1 np=$2 want=$3 rc=0 log=$T/bad_$1.log
  shift 3
  $QS_MPIEXEC -np "$np" "$Q" quantize --model "$G" "$@" --out "$T/o_$name" > "$log" 2>&1 || rc=$?
  [ $rc -ne 0 ] || { cat "$log"; fail "$name: exit 0"; }
  [ "$(grep -c -- "$want" "$log")" = 1 ] || { cat "$log"; fail "$name: message '$want' not printed exactly once"; }
  for x in "$T/o_$name"*; do [ ! -e "$x" ] || fail "$name: left $x"; done
  echo "$name: $(grep -- "$want" "$log")"
}
bad tp3 2 "num_attention_heads 8 is not divisible by 3" "${calib[@]}" --tp 3
bad tp8 2 "would straddle TP shards" "${calib[@]}" --tp 8
bad bits3 2 "4-bit only" "${calib[@]}" --bits 3 --tp 2
bad act 1 "use --act-order (static groups)" "${calib[@]}" --act-order=group --tp 2
bad perrow 1 "groupwise" --method rtn --group-size -1 --tp 2
bad tp0 1 "--tp '0'" --method rtn --tp 0
echo "test_trtllm: all passed"
