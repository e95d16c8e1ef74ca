# tests/gpu_fwd.cmake — the forward-pass CUDA kernels (embedding, rope, attention, swiglu, residual
# add, convert) against their C references (label gpu). Built only with the CUDA backend; the program
# exits 77 (skipped) without a CUDA device. `test_kernels_fwd_cuda --bench` times attention.
if(QS_USE_CUDA)
  qs_add_c_test(test_kernels_fwd_cuda SOURCES test_kernels_fwd_cuda.c LABELS gpu)
endif()
