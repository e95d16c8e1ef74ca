// rtn.cu — round-to-nearest on the GPU (contract: rtn.h). Test: tests/test_gptq_cuda.c (label gpu),
// against qs_grid_quantize_row_ref.
#include <limits.h>

#include "qs_cuda.h"
#include "rtn.h"

// One warp per (row, group): the min/max scan (lanes stride the group, then a butterfly; min/max
// are exact, so any order gives the C reference's bits), the grid's parameters, then every value.
__global__ void qs_rtn_kernel(float *W, int64_t nrows, int64_t K, int64_t gs, int64_t G, struct qs_grid grid,
                              uint8_t *codes, float *scales, uint8_t *zeros, unsigned long long *bad) {
  int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (warp >= nrows * G) return;
  int64_t row = warp / G, g = warp % G, c0 = g * gs, c1 = QS_MIN(c0 + gs, K);
  float *w = W + row * K;
  float mn = 0.0f, mx = 0.0f;
  for (int64_t c = c0 + lane; c < c1; c += 32) {
    float v = w[c];
    if (!isfinite(v)) atomicMin(bad, (unsigned long long)(row * K + c));
    qs_grid_int_minmax(v, &mn, &mx);
  }
  for (int off = 16; off > 0; off >>= 1) {
    float a = __shfl_xor_sync(0xffffffffu, mn, off), b = __shfl_xor_sync(0xffffffffu, mx, off);
    qs_grid_int_minmax(a, &mn, &mx);
    qs_grid_int_minmax(b, &mn, &mx);
  }
  struct qs_qparams p = qs_grid_int_params(mn, mx, grid.bits, grid.sym, grid.min_zero, grid.scale_dtype);
  float maxq = (float)((1 << grid.bits) - 1);
  for (int64_t c = c0 + lane; c < c1; c += 32) {
    float q = qs_grid_int_code(p, w[c], maxq);
    codes[row * K + c] = (uint8_t)q;
    w[c] = qs_grid_int_value(p, q);
  }
  if (lane == 0) {
    scales[row * G + g] = p.scale;
    zeros[row * G + g] = (uint8_t)p.zero;
  }
}

static qs_status qs_rtn_launch(const struct qs_grid *grid, float *W, int64_t nrows, int64_t K, uint8_t *codes,
                               float *scales, uint8_t *zeros, unsigned long long *bad, cudaStream_t stream) {
  qs_status status = QS_OK;
  int64_t gs = grid->group_size <= 0 ? K : grid->group_size, G = QS_CEIL_DIV(K, gs);
  int64_t threads = nrows * G * 32;
  if (grid->kind != QS_GRID_INT || K <= 0 || threads / 256 >= INT_MAX)
    QS_FAIL(QS_ERR_ARG, "rtn cuda: grid kind %d, %lld x %lld", (int)grid->kind, (long long)nrows, (long long)K);
  if (nrows == 0) return QS_OK;
  qs_rtn_kernel<<<(unsigned)QS_CEIL_DIV(threads, (int64_t)256), 256, 0, stream>>>(W, nrows, K, gs, G, *grid, codes,
                                                                                   scales, zeros, bad);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

extern "C" qs_status qs_rtn_quantize_cuda(const struct qs_grid *grid, float *W, int64_t nrows, int64_t K, int64_t row0,
                                          uint8_t *codes, float *scales, uint8_t *zeros, cudaStream_t stream) {
  qs_status status = QS_OK;
  unsigned long long *dbad = NULL, bad = ~0ull;
  QS_CUDA_CHECK(cudaMallocAsync((void **)&dbad, sizeof(bad), stream));
  QS_CUDA_CHECK(cudaMemsetAsync(dbad, 0xFF, sizeof(bad), stream));
  QS_TRY(qs_rtn_launch(grid, W, nrows, K, codes, scales, zeros, dbad, stream));
  QS_CUDA_CHECK(cudaMemcpyAsync(&bad, dbad, sizeof(bad), cudaMemcpyDeviceToHost, stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (bad != ~0ull)
    QS_FAIL(QS_ERR_NUMERIC, "rtn: weight [%lld, %lld] is not finite", (long long)(row0 + (int64_t)(bad / K)),
            (long long)(bad % (unsigned long long)K));
fail:
  if (dbad) cudaFreeAsync(dbad, stream);
  return status;
}
