# tests/gpu_gptq.cmake — the GPU building blocks of GPTQ (kernels/hessian, gptq_factor, gptq_solve,
# rtn) against their CPU references in src/quant/ (label gpu). Built only with the CUDA backend;
# the program exits 77 (skipped) without a CUDA device. `test_gptq_cuda --bench` times the phases on
# llama-3-8b / 70b shapes.
if(QS_USE_CUDA)
  qs_add_c_test(test_gptq_cuda SOURCES test_gptq_cuda.c test_gptq_cuda_bench.c LABELS gpu)
  # CPU references single-threaded (OPENBLAS_NUM_THREADS=1) on 4096-wide layers: about two minutes
  set_tests_properties(test_gptq_cuda PROPERTIES TIMEOUT 900)
endif()
if(QS_USE_CUDA)
  # Rows solved in one call or split at tile boundaries: bit-identical (the cuda engine's np-invariance).
  qs_add_c_test(test_gptq_tiles_cuda SOURCES test_gptq_tiles_cuda.c LABELS gpu)
endif()
