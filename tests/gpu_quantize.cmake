# tests/gpu_quantize.cmake — the cuda engine of `qshard quantize` and `qshard eval --device cuda`
# end to end against the CPU engine (label gpu; exits 77 without a GPU or the shared data).
if(QS_USE_CUDA)
  add_executable(ckpt_codes_cmp ckpt_codes_cmp.c)
  target_link_libraries(ckpt_codes_cmp PRIVATE qs_core)
  qs_add_sh_test(test_quantize_cuda test_quantize_cuda.sh LABELS gpu data)
  set_property(TEST test_quantize_cuda APPEND PROPERTY ENVIRONMENT "QS_CODES_CMP=$<TARGET_FILE:ckpt_codes_cmp>")
endif()
if(QS_USE_CUDA)
  # AWQ and AWQ+GPTQ on the cuda engine against the CPU engine (test_awq_cuda_run.sh).
  qs_add_sh_test(test_awq_cuda_run test_awq_cuda_run.sh LABELS gpu data)
  set_property(TEST test_awq_cuda_run APPEND PROPERTY ENVIRONMENT "QS_CODES_CMP=$<TARGET_FILE:ckpt_codes_cmp>")
endif()
