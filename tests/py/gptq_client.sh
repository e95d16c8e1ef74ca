#!/usr/bin/env bash
# A real client reads `qshard quantize`'s GPTQ v1 checkpoints: gptq_client.py loads each output
# directory as vLLM / transformers would (configs, index, tensors) with PyPI safetensors + numpy and
# checks it against gutenberg28M and FORMATS.md §2 (see the docstring there). Runs:
#   GPTQ 4-bit g128 sym act-order with static groups (the default; sharded: --max-shard-size 8), with
#   permuted groups (--act-order=group), GPTQ 3-bit g128 asym, and
#   RTN 3-bit g32 asym / 4-bit g128 / 2-bit g64 / 8-bit per-row, whose codes, zeros and fp16
#   scales must equal the §2.3 quantizer computed in numpy bit for bit.
# Calibration is tiny (4 x 256 tokens): this checks the format, not the quality (BENCHMARKS.md).
# Skips (77) when QS_PYTHON is empty or the shared data is absent.
set -euo pipefail
if [ -z "${QS_PYTHON:-}" ]; then echo "SKIP: QS_PYTHON not set (configure with -DQS_PYTHON=...)"; exit 77; fi
G=${QS_DATA_DIR:-}/gutenberg28M
[ -n "${QS_DATA_DIR:-}" ] && [ -f "$G/config.json" ] || { echo "SKIP: shared data not found (QS_DATA_DIR=${QS_DATA_DIR:-})"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/qs_gptqpy.XXXXXX")
trap 'rm -rf "$T"' EXIT
"$QS_PYTHON" -c 'import safetensors, numpy; print("safetensors", safetensors.__version__, "numpy", numpy.__version__)'

run() { # name method bits group [quantize options...] -- [client options...]
  local name=$1 method=$2 bits=$3 gs=$4
  shift 4
  local qopts=() copts=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do qopts+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  copts=("$@")
  local calib=()
  [ "$method" = gptq ] && calib=(--calib "$G/gutenberg_val.h5" --samples 4 --seqlen 256)
  echo "== $name: $method ${bits}-bit g$gs ${qopts[*]:-}"
  # shellcheck disable=SC2086
  $QS_MPIEXEC -np 2 "$QSHARD" quantize --model "$G" --method "$method" --bits "$bits" --group-size "$gs" \
    "${calib[@]}" "${qopts[@]}" --out "$T/$name" > "$T/$name.log" 2>&1 || { cat "$T/$name.log"; echo "FAIL: quantize $name"; exit 1; }
  "$QS_PYTHON" "$QS_SRC/tests/py/gptq_client.py" --model "$G" --out "$T/$name" --method "$method" \
    --bits "$bits" --group-size "$gs" "${copts[@]}" || { echo "FAIL: $name"; exit 1; }
  rm -rf "${T:?}/$name"
}
run g4act gptq 4 128 --act-order --max-shard-size 8 -- --act-order static --sharded
run g4grp gptq 4 128 --act-order=group -- --act-order group
run g3asym gptq 3 128 --asym -- --asym
run r3asym rtn 3 32 --asym -- --asym
run r4 rtn 4 128
run r2 rtn 2 64
run r8 rtn 8 -1
echo "gptq_client: all passed"
