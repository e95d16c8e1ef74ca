#!/usr/bin/env bash
# llama.cpp (the libggml of the pinned llama-cpp-python) against qshard's ggml references: every type
# that `ggml_rows types` lists, quantized and dequantized, byte for byte (tests/py/ggml_oracle.py).
# Skips (77) when QS_PYTHON is empty or has no llama_cpp.
set -euo pipefail
if [ -z "${QS_PYTHON:-}" ]; then echo "SKIP: QS_PYTHON not set (configure with -DQS_PYTHON=...)"; exit 77; fi
exec "$QS_PYTHON" "$QS_SRC/tests/py/ggml_oracle.py" --rows "$QS_BUILD/tests/ggml_rows"
