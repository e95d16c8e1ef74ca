# launchers.cmake — the cluster launchers: slurm/*.sbatch (bash -n, shellcheck when installed, #SBATCH
# directives, dry runs), k8s/*.yaml (structure of the MPIJob, Job, PVCs, Secret), scripts/make_calib.py
# against the shared data, and every option the launchers give `qshard quantize` against its --help
# (tests/test_launchers.py, PyYAML). Skips (77) when QS_PYTHON is empty.
list(JOIN QS_MPIEXEC " " qs_launchers_mpiexec)
add_test(NAME test_launchers
         COMMAND bash -c "if [ -z \"$QS_PYTHON\" ]; then \
echo 'SKIP: QS_PYTHON not set (configure with -DQS_PYTHON=...)'; exit 77; fi; exec \"$QS_PYTHON\" \"$0\""
                 ${CMAKE_CURRENT_SOURCE_DIR}/test_launchers.py)
set_tests_properties(test_launchers PROPERTIES LABELS python SKIP_RETURN_CODE 77 TIMEOUT 300
                     ENVIRONMENT "${QS_TEST_ENV};QS_MPIEXEC=${qs_launchers_mpiexec};QS_PYTHON=${QS_PYTHON}")
