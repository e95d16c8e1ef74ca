#!/usr/bin/env bash
# PyPI safetensors reads qshard's output (st_client.py), and `qshard inspect` reads a file written by
# safetensors.numpy.save_file. Skips (77) when QS_PYTHON is empty.
set -euo pipefail
if [ -z "${QS_PYTHON:-}" ]; then echo "SKIP: QS_PYTHON not set (configure with -DQS_PYTHON=...)"; exit 77; fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qs_stpy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$QS_BUILD/tests/test_safetensors" --write "$tmp"
"$QS_PYTHON" "$QS_SRC/tests/py/st_client.py" "$tmp"
out=$("$QSHARD" inspect "$tmp/py/model.safetensors")
echo "$out"
for pat in '^a\.f16 +F16 +\[3, 5\] +30$' '^b\.i64 +I64 +\[7\] +56$' '^c\.u8 +U8 +\[2, 2, 2\] +8$' \
           '^d\.scalar +F32 +\[\] +4$' '^tensors: 4$' 'format=pt' 'origin=numpy'; do
  echo "$out" | grep -Eq -- "$pat" || { echo "FAIL: inspect output has no line matching '$pat'"; exit 1; }
done
echo "st_client: qshard <-> safetensors $("$QS_PYTHON" -c 'import safetensors; print(safetensors.__version__)') OK"
