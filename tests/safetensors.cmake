# safetensors reader / writer / checkpoints (src/io/safetensors*.c) and `qshard inspect` (src/cli/inspect.c).
qs_add_c_test(test_safetensors SOURCES test_safetensors.c LABELS unit)
# Same program on the real checkpoints of QS_DATA_DIR (skips when absent).
add_test(NAME test_safetensors_data COMMAND test_safetensors --data)
set_tests_properties(test_safetensors_data PROPERTIES LABELS "unit;data" SKIP_RETURN_CODE 77
                     ENVIRONMENT "${QS_TEST_ENV}")
# `qshard inspect` on files written by the writer and on crafted bad files; then on the shared data.
qs_add_sh_test(test_inspect test_inspect.sh LABELS unit ARGS crafted)
qs_add_sh_test(test_inspect_data test_inspect.sh LABELS unit data ARGS data)
# PyPI safetensors reads what qshard writes (and qshard reads what it writes); skips without QS_PYTHON.
qs_add_sh_test(test_st_python py/st_client.sh LABELS python)
