# tests/gpu.cmake — CUDA kernels against their C references (label gpu). Built only with the CUDA
# backend (QS_WITH_CUDA); the programs exit 77 (skipped) on a machine without a CUDA device.
# On the GPU machine: scripts/device_build.sh (configure, build, ctest -L gpu).
if(QS_USE_CUDA)
  qs_add_c_test(test_kernels_cuda SOURCES test_kernels_cuda.c LABELS gpu)
endif()
