# llama.cpp's block types (src/quant/grid_ggml.h, ggml_quants.c): the references pinned to hand-derived
# bytes, and — with QS_PYTHON's llama-cpp-python (tests/py/requirements-llama.txt) — byte for byte
# against the real ggml_quantize_chunk on adversarial rows (tests/py/ggml_oracle.py).
qs_add_c_test(test_ggml_quants SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_ggml_quants.c LABELS unit)
# The references as a command (quantize / dequant raw rows, list the types) for the oracle.
add_executable(ggml_rows ${CMAKE_CURRENT_SOURCE_DIR}/ggml_rows.c)
target_link_libraries(ggml_rows PRIVATE qs_core)
qs_add_sh_test(test_ggml_oracle py/ggml_oracle.sh LABELS python)
