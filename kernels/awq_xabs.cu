// awq_xabs.cu — see awq_xabs.h. Test: tests/test_awq_cuda.c (label gpu), against qs_awq_xabs_add_ref.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "awq_xabs.h"
#include "qs_cuda.h"
#include "qs_cuda_cvt.cuh"

constexpr int QS_XABS_THREADS = 256;

// One thread per channel, walking the tokens in order: neighbouring threads read neighbouring
// columns of a row (coalesced), and each channel's sum is the reference's sequence of additions.
template <typename T>
__global__ void qs_awq_xabs_kernel(const T *X, int64_t T_, int64_t K, float *sum) {
  int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= K) return;
  float s = sum[k];
  for (int64_t t = 0; t < T_; t++) s += fabsf(qs_cvt::to_f32(X[t * K + k]));
  sum[k] = s;
}

extern "C" qs_status qs_awq_xabs_add_cuda(const void *X, qs_dtype dt, int64_t T, int64_t K, float *sum,
                                          cudaStream_t stream) {
  qs_status status = QS_OK;
  if (T <= 0 || K <= 0) return QS_OK;
  unsigned blocks = (unsigned)QS_CEIL_DIV(K, (int64_t)QS_XABS_THREADS);
  switch (dt) {
  case QS_DTYPE_F32:
    qs_awq_xabs_kernel<<<blocks, QS_XABS_THREADS, 0, stream>>>((const float *)X, T, K, sum);
    break;
  case QS_DTYPE_BF16:
    qs_awq_xabs_kernel<<<blocks, QS_XABS_THREADS, 0, stream>>>((const __nv_bfloat16 *)X, T, K, sum);
    break;
  case QS_DTYPE_F16:
    qs_awq_xabs_kernel<<<blocks, QS_XABS_THREADS, 0, stream>>>((const __half *)X, T, K, sum);
    break;
  default:
    QS_FAIL(QS_ERR_ARG, "awq xabs cuda: dtype %d", (int)dt);
  }
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}
