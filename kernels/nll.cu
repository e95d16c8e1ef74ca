// nll.cu — per-row negative log-likelihood (log-sum-exp in double), one block per row: a block max
// in fp32 (exact), then the sum of exp(logit - max) in double, reduced lane -> warp -> block in a
// fixed order (deterministic). Test: tests/test_kernels_fwd2_cuda.c (label gpu).
#include <math.h>
#include <stdint.h>

#include "nll.h"
#include "qs_cuda.h"
#include "qs_cuda_cvt.cuh"

using qs_cvt::to_f32;

constexpr int QS_NLL_THREADS = 256;

template <typename T>
__global__ void __launch_bounds__(QS_NLL_THREADS)
    qs_nll_kernel(const T *__restrict__ logits, const int32_t *__restrict__ targets, double *__restrict__ nll,
                  int vocab) {
  __shared__ float warp_max[QS_NLL_THREADS / 32];
  __shared__ double warp_sum[QS_NLL_THREADS / 32];
  const T *row = logits + (size_t)blockIdx.x * vocab;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float mx = -INFINITY; // a max of fp32 values is exact in any order
  for (int i = threadIdx.x; i < vocab; i += QS_NLL_THREADS) mx = fmaxf(mx, to_f32(row[i]));
  for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
  if (lane == 0) warp_max[warp] = mx;
  __syncthreads();
  mx = warp_max[0];
  for (int w = 1; w < QS_NLL_THREADS / 32; w++) mx = fmaxf(mx, warp_max[w]);
  const double mxd = (double)mx;
  double sum = 0.0;
  for (int i = threadIdx.x; i < vocab; i += QS_NLL_THREADS) sum += exp((double)to_f32(row[i]) - mxd);
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (lane == 0) warp_sum[warp] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int w = 0; w < QS_NLL_THREADS / 32; w++) total += warp_sum[w];
    const int32_t t = targets[blockIdx.x];
    nll[blockIdx.x] = t >= 0 && t < vocab ? mxd + log(total) - (double)to_f32(row[t]) : (double)NAN;
  }
}

template <typename T>
static qs_status qs_nll_launch(const void *logits, const int32_t *targets, double *nll, int rows, int vocab,
                               cudaStream_t stream) {
  qs_status status = QS_OK;
  qs_nll_kernel<T><<<rows, QS_NLL_THREADS, 0, stream>>>((const T *)logits, targets, nll, vocab);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

extern "C" qs_status qs_nll_cuda(const void *logits, const int32_t *targets, double *nll, int rows, int vocab,
                                 qs_dtype dt, cudaStream_t stream) {
  qs_status status = QS_OK;
  if (rows <= 0 || vocab <= 0) QS_FAIL(QS_ERR_ARG, "nll: rows %d, vocab %d must be positive", rows, vocab);
  switch (dt) {
  case QS_DTYPE_F32: return qs_nll_launch<float>(logits, targets, nll, rows, vocab, stream);
  case QS_DTYPE_BF16: return qs_nll_launch<__nv_bfloat16>(logits, targets, nll, rows, vocab, stream);
  case QS_DTYPE_F16: return qs_nll_launch<__half>(logits, targets, nll, rows, vocab, stream);
  default: QS_FAIL(QS_ERR_UNSUPPORTED, "nll: dtype %s not supported (F32, BF16, F16)", qs_dtype_name(dt));
  }
fail:
  return status;
}
