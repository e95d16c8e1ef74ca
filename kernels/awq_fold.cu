// awq_fold.cu — see awq_fold.h. Test: tests/test_awq_cuda.c (label gpu), against qs_awq_fold_ref.
#include "awq_fold.h"
#include "qs_cuda.h"

constexpr int QS_FOLD_THREADS = 256;

__global__ void qs_awq_fold_kernel(float *W, int64_t rows, int64_t K, const float *s, int mode) {
  const size_t n = (size_t)rows * (size_t)K;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    if (mode == 1) W[i] = W[i] / s[i / (size_t)K];
    else if (mode == 2) W[i] = W[i] / s[i % (size_t)K];
    else W[i] = W[i] * s[i % (size_t)K];
  }
}

extern "C" qs_status qs_awq_fold_cuda(float *W, int64_t rows, int64_t K, const float *s, int mode,
                                      cudaStream_t stream) {
  qs_status status = QS_OK;
  size_t n = (size_t)rows * (size_t)K;
  if (mode < 0 || mode > 2) QS_FAIL(QS_ERR_ARG, "awq fold cuda: mode %d", mode);
  if (n == 0) return QS_OK;
  qs_awq_fold_kernel<<<(unsigned)QS_MIN(QS_CEIL_DIV(n, (size_t)QS_FOLD_THREADS), (size_t)65535), QS_FOLD_THREADS, 0,
                       stream>>>(W, rows, K, s, mode);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}
