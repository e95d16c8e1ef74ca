#!/usr/bin/env bash
# `qshard inspect` — test_inspect.sh crafted: files written by qshard's writers (safetensors single +
# sharded, GGUF), and crafted bad inputs that must fail with a message naming the file (never a signal);
# test_inspect.sh data: the shared checkpoints, an HDF5 token file and llama.cpp's vocabulary GGUF
# (skips without QS_DATA_DIR).
set -uo pipefail
mode=${1:-crafted}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qs_inspect.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# run_ok PATH PATTERN...: inspect succeeds and prints a line matching each (grep -E) pattern.
run_ok() {
  local path=$1; shift
  "$QSHARD" inspect "$path" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -ne 0 ]; then fail "inspect $path: rc $rc"; cat "$tmp/err"; return; fi
  for pat in "$@"; do
    grep -Eq -- "$pat" "$tmp/out" || { fail "inspect $path: no line matching '$pat'"; cat "$tmp/out"; }
  done
}

# run_bad PATH NAME: inspect fails (1 <= rc < 128) and stderr names NAME.
run_bad() {
  local path=$1 name=$2
  "$QSHARD" inspect "$path" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [ $rc -ne 0 ] || fail "inspect $path: succeeded on a bad input"
  [ $rc -lt 128 ] || fail "inspect $path: killed by a signal (rc $rc)"
  grep -q -- "$name" "$tmp/err" || { fail "inspect $path: message does not name $name"; cat "$tmp/err"; }
  echo "ok (rc $rc): $(head -n1 "$tmp/err")"
}

if [ "$mode" = crafted ]; then
  "$QSHARD" inspect --help | grep -q "usage: qshard inspect" || fail "--help"
  "$QS_BUILD/tests/test_safetensors" --write "$tmp/w" || { fail "test_safetensors --write"; exit 1; }
  run_ok "$tmp/w/single" '^checkpoint: .* \(1 file\)' '^bf16 +BF16 +\[4, 2\] +16$' '^scalar +F32 +\[\] +4$' \
    '^empty +BF16 +\[0, 4\] +0$' '^tensors: 10$' '^metadata: format=pt$' ' F32=52 ' ' I64=32'
  run_ok "$tmp/w/single/model.safetensors" '^i64 +I64 +\[2, 2\] +32$'
  run_ok "$tmp/w/sharded" '\(6 files\)' \
    '^model.layers.11.weight +F32 +\[16, 16\] +1024 +model-00006-of-00006.safetensors$' \
    '^tensors: 13$' '^parameters: 3136$' '^bytes: 12416 ' '^metadata \(model-00003-of-00006.safetensors\): format=pt$'
  printf 'abc' >"$tmp/trunc.safetensors"
  run_bad "$tmp/trunc.safetensors" trunc.safetensors
  printf '\xe8\x03\0\0\0\0\0\0{}' >"$tmp/hlen.safetensors" # header length 1000 in a 10-byte file
  run_bad "$tmp/hlen.safetensors" hlen.safetensors
  printf '\x0e\0\0\0\0\0\0\0{"a":{"dtype"' >"$tmp/json.safetensors"
  run_bad "$tmp/json.safetensors" json.safetensors
  printf '\x89HDF\r\n\x1a\nnot a superblock' >"$tmp/bad.h5" # HDF5 signature, garbage after it
  run_bad "$tmp/bad.h5" bad.h5
  echo "hello, not a model" >"$tmp/text.txt"
  run_bad "$tmp/text.txt" text.txt
  run_bad "$tmp/missing.safetensors" missing.safetensors
  mkdir "$tmp/emptydir"
  run_bad "$tmp/emptydir" emptydir
  # GGUF: the known file of test_gguf_io (every value type, 6 tensors, alignment 64)
  "$QS_BUILD/tests/test_gguf_io" --write "$tmp/known.gguf" || { fail "test_gguf_io --write"; exit 1; }
  run_ok "$tmp/known.gguf" '^gguf: .* \(version 3, 29 KVs, 6 tensors, alignment 64, data at byte 1344, 2048 bytes\)$' \
    '^test\.u64 +u64 +10000000000000000000$' '^test\.f64 +f64 +-2\.5e\+300$' '^test\.bool_false +bool +false$' \
    '^test\.str +str +"héllo ▁ world"$' '^test\.arr\.str +arr\[str,3\] +\["a", "", "ü▁"\]$' \
    '^test\.arr\.empty +arr\[i32,0\] +\[\]$' '^t\.q4_k +Q4_K +\[256, 1, 1, 2\] +256 +288$' \
    '^t\.empty +F32 +\[0, 4\] +704 +0$' '^tensors: 6$' '^parameters: 654$' '^bytes: 459 ' ' Q4_K=288'
  printf 'GGUF\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0' >"$tmp/v1.gguf"
  run_bad "$tmp/v1.gguf" v1.gguf
  grep -q "GGUFv1 is no longer supported" "$tmp/err" || fail "v1.gguf: message does not say why"
  head -c 1500 "$tmp/known.gguf" >"$tmp/trunc.gguf"
  run_bad "$tmp/trunc.gguf" trunc.gguf
  grep -q "is not within the file" "$tmp/err" || fail "trunc.gguf: message does not say why"
  "$QSHARD" inspect >/dev/null 2>&1; [ $? -eq 2 ] || fail "no argument: expected rc 2"
  "$QSHARD" inspect a b >/dev/null 2>&1; [ $? -eq 2 ] || fail "two arguments: expected rc 2"
else
  data=${QS_DATA_DIR:-}
  if [ -z "$data" ] || [ ! -d "$data/stories260K" ]; then echo "SKIP: QS_DATA_DIR not set or missing"; exit 77; fi
  run_ok "$data/stories260K/model.safetensors" '^model.embed_tokens.weight +F32 +\[512, 64\] +131072$' \
    '^model.layers.0.mlp.up_proj.weight +F32 +\[172, 64\] +44032$' '^tensors: 47$' '^metadata: format=pt$'
  run_ok "$data/gutenberg28M" '\(4 files\)' \
    '^model.embed_tokens.weight +BF16 +\[8192, 512\] +8388608 +model-00001-of-00004.safetensors$' \
    '^tensors: 74$' '^parameters: 28320256$' '^bytes: 56640512 ' 'BF16=56640512'
  run_ok "$data/stories260K/tinystories_sample.tok512.h5" '^hdf5: ' '^/input_ids +int32 +\[15508\] +62032$' '^datasets: 1$'
  run_ok "$data/tokenizers/ggml-vocab-llama-spm.gguf" '^gguf: .* \(version 3, 22 KVs, 0 tensors, alignment 32, ' \
    '^tokenizer\.ggml\.tokens +arr\[str,32000\] +\["<unk>", "<s>", "</s>", "<0x00>", "<0x01>", \.\.\.\]$' \
    '^tokenizer\.ggml\.token_type +arr\[i32,32000\] +\[2, 3, 3, 6, 6, \.\.\.\]$' \
    '^llama\.attention\.layer_norm_rms_epsilon +f32 +1e-05$' '^tokenizer\.ggml\.add_bos_token +bool +true$' '^tensors: 0$'
fi

[ $fails -eq 0 ] || { echo "test_inspect $mode: $fails failure(s)"; exit 1; }
echo "test_inspect $mode: all passed"
