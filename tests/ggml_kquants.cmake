# llama.cpp's k-quants Q2_K..Q6_K (src/quant/ggml_kquants.c): hand-derived bytes, the spec's layouts,
# an error bound per type. Byte identity with llama.cpp: the oracle of tests/ggml.cmake, and with
# QS_PYTHON's llama-cpp-python the k-quant rows of tests/py/ggml_kquants_oracle_extra.py (ties,
# integer grids, degenerate importance; exits 77 without llama_cpp).
qs_add_c_test(test_ggml_kquants SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_ggml_kquants.c LABELS unit)
if(QS_PYTHON)
  add_test(NAME test_ggml_kquants_oracle
           COMMAND ${QS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/py/ggml_kquants_oracle_extra.py --rows $<TARGET_FILE:ggml_rows>)
  set_tests_properties(test_ggml_kquants_oracle PROPERTIES LABELS python SKIP_RETURN_CODE 77)
endif()
