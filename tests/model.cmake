# tests/model.cmake — model config, forward-pass ops, the decoder layer and `qshard generate`.
qs_add_c_test(test_config SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_config.c LABELS unit data)
qs_add_c_test(test_ops SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_ops.c LABELS unit)
qs_add_c_test(test_forward SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_forward.c LABELS unit data)
# Greedy decoding of stories260K must reproduce transformers' token ids exactly, alone and under MPI.
qs_add_sh_test(test_generate test_generate.sh LABELS data mpi)

# CPU forward benchmark (tokens/s, OpenBLAS fp32). Not a test: run build/tests/bench_forward.
# The smoke test runs it with tiny sizes so that it keeps building and running.
add_executable(bench_forward ${CMAKE_CURRENT_SOURCE_DIR}/bench_forward.c)
target_link_libraries(bench_forward PRIVATE qs_core)
target_include_directories(bench_forward PRIVATE ${CMAKE_SOURCE_DIR}/tests)
add_test(NAME bench_forward_smoke COMMAND bench_forward --smoke)
set_tests_properties(bench_forward_smoke PROPERTIES LABELS "unit" SKIP_RETURN_CODE 77
                     ENVIRONMENT "${QS_TEST_ENV}")
