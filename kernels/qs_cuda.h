// qs_cuda.h — leaf error wrappers for CUDA runtime, cuBLAS and cuSOLVER calls (C and CUDA).
// Each prints "[rank host device] file:line function: call -> error" through qs_report and jumps
// to the caller's `fail:` label with status QS_ERR_CUDA (same shape as QS_FAIL in qs_common.h).
#ifndef QS_CUDA_H
#define QS_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include "base/qs_common.h"

// The handles a GPU method entry works with (quant/method.h): both bound to `stream`; the cuBLAS
// handle in default math (no TF32).
struct qs_cuda_ctx {
  cublasHandle_t blas;
  cusolverDnHandle_t solver;
  cudaStream_t stream;
};

#define QS_CUDA_CHECK(call)                                                             \
  do {                                                                                  \
    cudaError_t e_ = (call);                                                            \
    if (e_ != cudaSuccess) {                                                            \
      int dev_ = -1;                                                                    \
      cudaGetDevice(&dev_);                                                             \
      QS_FAIL(QS_ERR_CUDA, "[device %d] %s -> %s (%s)", dev_, #call,                    \
              cudaGetErrorName(e_), cudaGetErrorString(e_));                            \
    }                                                                                   \
  } while (0)

#define QS_CUBLAS_CHECK(call)                                                           \
  do {                                                                                  \
    int s_ = (int)(call);                                                               \
    if (s_ != 0) QS_FAIL(QS_ERR_CUDA, "%s -> cublas status %d", #call, s_);             \
  } while (0)

#define QS_CUSOLVER_CHECK(call)                                                         \
  do {                                                                                  \
    int s_ = (int)(call);                                                               \
    if (s_ != 0) QS_FAIL(QS_ERR_CUDA, "%s -> cusolver status %d", #call, s_);           \
  } while (0)

#endif
