# `qshard quantize --stages S`: the stage x data grid (src/run/stages.h) — the layer split rule, identical
# checkpoints across data-rank counts, the perplexity cost of stage boundaries, --tp and --resume.
qs_add_c_test(test_stages_split SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_stages_split.c LABELS unit)
qs_add_sh_test(test_stages test_stages.sh LABELS mpi data)
