// qs_test_cuda.h — CUDA helper for the gpu-labelled C tests (with qs_test.h): TEST_CUDA(call)
// counts a failed runtime call as a test failure, prints it, and jumps to the test's `done:` label.
#ifndef QS_TEST_CUDA_H
#define QS_TEST_CUDA_H

#include <cuda_runtime_api.h>

#include "qs_test.h"

#define TEST_CUDA(call)                                                                 \
  do {                                                                                  \
    cudaError_t e_ = (call);                                                            \
    if (e_ != cudaSuccess) {                                                            \
      fprintf(stderr, "FAIL %s:%d: %s -> %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      qs_test_failures++;                                                               \
      goto done;                                                                        \
    }                                                                                   \
  } while (0)

#endif
