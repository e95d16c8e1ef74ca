# tests/gpu_fwd2.cmake — the linear layer (cuBLAS), fp32 attention and the per-row NLL on the GPU
# against their C references (label gpu). Built only with the CUDA backend; the program exits 77
# (skipped) without a CUDA device. `test_kernels_fwd2_cuda --bench` times fp32 attention and the NLL.
if(QS_USE_CUDA)
  qs_add_c_test(test_kernels_fwd2_cuda SOURCES test_kernels_fwd2_cuda.c LABELS gpu)
endif()
