#!/usr/bin/env bash
# gguf-py (llama.cpp's Python GGUF package) reads the GGUF file qshard's writer makes
# (tests/py/gguf_reader.py; the file: test_gguf_io --write). Skips (77) when QS_PYTHON is empty or
# has no gguf package.
set -euo pipefail
if [ -z "${QS_PYTHON:-}" ]; then echo "SKIP: QS_PYTHON not set (configure with -DQS_PYTHON=...)"; exit 77; fi
"$QS_PYTHON" -c 'import gguf' 2>/dev/null || { echo "SKIP: no gguf package in $QS_PYTHON"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/qs_ggufpy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$QS_BUILD/tests/test_gguf_io" --write "$tmp/known.gguf"
"$QS_PYTHON" "$QS_SRC/tests/py/gguf_reader.py" "$tmp/known.gguf"
echo "gguf_reader: gguf $("$QS_PYTHON" -c 'import importlib.metadata as m; print(m.version("gguf"))') OK"
