# eval.cmake — HDF5 token streams (test_tokens, unit) and `qshard eval` perplexity (test_eval.sh:
# shared data models, identical PPL for -np 1/2/4, bad inputs). test_tokens doubles as the tool that
# crafts bad token files for test_eval.sh.
qs_add_c_test(test_tokens SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_tokens.c LABELS unit)
qs_add_sh_test(test_eval test_eval.sh LABELS mpi data ARGS $<TARGET_FILE:test_tokens>)
# The README's quantize → eval session, run as written with fewer samples and windows.
qs_add_sh_test(test_readme test_readme.sh LABELS mpi data)
