# Resume state and progress reporting of `qshard quantize` (src/run/qstate.h, src/run/progress.h).
qs_add_sh_test(test_resume test_resume.sh LABELS mpi data)
qs_add_sh_test(test_progress test_progress.sh LABELS mpi)
# Output manifests and qshard verify; --resume refuses state files changed on disk (io/manifest.h).
qs_add_sh_test(test_verify test_verify.sh LABELS mpi data)
