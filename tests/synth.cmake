# synth.cmake — `qshard synth` (src/cli/synth.c): tiny checkpoint files, shapes, determinism, sharding,
# bad arguments and llama-3-8b --layers 1 shapes (unit; value checks when QS_PYTHON is set), and
# byte-identical output under mpirun -np 1/3 (mpi).
qs_add_sh_test(test_synth test_synth.sh LABELS unit ARGS unit)
qs_add_sh_test(test_synth_mpi test_synth.sh LABELS mpi ARGS mpi)
# llama-3-8b --layers 1 generates 1.3 G weights (2.5 GB): slow under the sanitizers.
set_tests_properties(test_synth PROPERTIES TIMEOUT 1200)
