# Quantization numerics: grid, RTN, GPTQ solve, GPTQ v1 packing (src/quant/gptq.h).
qs_add_c_test(test_gptq SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_gptq.c LABELS unit)
# AWQ's scales, search error, clipping and the fold (src/quant/awq.h, model.h qs_layer_fold).
qs_add_c_test(test_awq SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_awq.c LABELS unit data)
qs_add_c_test(test_gptq_pack SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_gptq_pack.c LABELS unit)
qs_add_sh_test(test_quantize test_quantize.sh LABELS mpi data)
# The neutral module record and the bit helpers (src/quant/record.h, src/base/bits.h).
qs_add_c_test(test_record SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_record.c LABELS unit)
# llama.cpp's GGUF (src/formats/gguf.c): mixes, fallbacks, rank/thread invariance, imatrix, refusals.
qs_add_sh_test(test_gguf test_gguf.sh LABELS mpi data)
# llama.cpp itself (llama-cpp-python, gguf-py) reads the GGUF files: byte-identity with llama-quantize
# for every type, its perplexity and greedy ids (tests/py/llama_client.{sh,py}).
qs_add_sh_test(test_llama_client py/llama_client.sh LABELS python data mpi)
# The element view of llama.cpp's block grids and GPTQ into them (src/quant/ggml_elems.c, gptq.c).
qs_add_c_test(test_ggml_gptq SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_ggml_gptq.c LABELS unit)
# AWQ end to end (CPU): -np 1/2/4 identity, the AWQ GEMM config, quality against RTN, --resume.
qs_add_sh_test(test_awq_run test_awq_run.sh LABELS mpi data)
# Numerically hostile models (issue 16): NaN/Inf weights, overflowing activations, zero rows/columns,
# dead and constant inputs; named errors or finite, zero-preserving outputs for every method.
qs_add_sh_test(test_hostile test_hostile.sh LABELS mpi data)
if(QS_USE_CUDA)
  # AWQ's GPU kernels (statistic, fold, scale-search error, clipped rounding) against awq.h.
  qs_add_c_test(test_awq_cuda SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_awq_cuda.c LABELS gpu)
endif()
