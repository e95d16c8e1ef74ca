# plan.cmake — `qshard plan` (src/cli/plan.c, src/run/plan.h): the plans of the Llama shapes against
# BENCHMARKS.md §6, what grows and shrinks with --samples and --np, warnings and refusals, --json,
# a synth'd tiny directory against --config tiny, stories260K when QS_DATA_DIR has it (a few seconds).
qs_add_sh_test(test_plan test_plan.sh LABELS unit)
