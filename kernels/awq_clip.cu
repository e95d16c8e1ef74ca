// awq_clip.cu — see awq_clip.h. Test: tests/test_awq_cuda.c (label gpu), against qs_awq_clip_row_ref.
#include <limits.h>

#include "awq_clip.h"
#include "qs_cuda.h"
#include "quant/grid_int.h"

// One block per row; the row's groups in order (its error total is summed in the reference's
// order). Per group and candidate: the clamped values' exact min/max (any reduction order gives the
// same bits), the grid, d = x - q into shared memory, then thread j forms (B d)_j = Σ_l B[l, j] d_l
// (B symmetric: row l of B read across the threads, coalesced) and the block sums d_j (B d)_j in
// double over a fixed tree.
struct qs_clip_red {
  float mn[32], mx[32];
  double e[256]; // blockDim <= 256
};

__device__ static void qs_clip_minmax(float *mn, float *mx, struct qs_clip_red *red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  for (int off = 16; off > 0; off >>= 1) {
    float a = __shfl_xor_sync(0xffffffffu, *mn, off), b = __shfl_xor_sync(0xffffffffu, *mx, off);
    qs_grid_int_minmax(a, mn, mx);
    qs_grid_int_minmax(b, mn, mx);
  }
  if (lane == 0) red->mn[warp] = *mn, red->mx[warp] = *mx;
  __syncthreads();
  float a = 0.0f, b = 0.0f;
  for (int w = 0; w < nw; w++) {
    qs_grid_int_minmax(red->mn[w], &a, &b);
    qs_grid_int_minmax(red->mx[w], &a, &b);
  }
  __syncthreads(); // red is reused by the next reduction
  *mn = a, *mx = b;
}

__device__ static double qs_clip_sum(double v, struct qs_clip_red *red) {
  red->e[threadIdx.x] = v;
  __syncthreads();
  for (int w = (int)blockDim.x / 2; w > 0; w /= 2) { // blockDim is a power of two
    if ((int)threadIdx.x < w) red->e[threadIdx.x] += red->e[threadIdx.x + w];
    __syncthreads();
  }
  double s = red->e[0];
  __syncthreads();
  return s;
}

__device__ static float qs_clip_v(float x, float m) { return x < -m ? -m : (x > m ? m : x); }

__global__ void qs_awq_clip_kernel(const float *H, int64_t K, int64_t gs, int64_t G, struct qs_grid grid, int nc,
                                   float *W, uint8_t *codes, float *scales, uint8_t *zeros, float *loss) {
  extern __shared__ float d[]; // [gs]
  __shared__ struct qs_clip_red red;
  __shared__ float amax_s[32];
  const int64_t row = blockIdx.x;
  const float maxq = (float)((1 << grid.bits) - 1);
  float *w = W + row * K;
  double total = 0.0;
  for (int64_t gi = 0; gi < G; gi++) {
    const int64_t c0 = gi * gs, n = QS_MIN(gs, K - c0);
    const float *x = w + c0;
    // max |x| of the group (exact in any order)
    float am = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) am = fabsf(x[j]) > am ? fabsf(x[j]) : am;
    for (int off = 16; off > 0; off >>= 1) {
      float o = __shfl_xor_sync(0xffffffffu, am, off);
      am = o > am ? o : am;
    }
    if ((threadIdx.x & 31) == 0) amax_s[threadIdx.x >> 5] = am;
    __syncthreads();
    float amax = 0.0f;
    for (int k = 0; k < (int)((blockDim.x + 31) >> 5); k++) amax = amax_s[k] > amax ? amax_s[k] : amax;
    __syncthreads();
    float best_m = INFINITY;
    double best = INFINITY;
    for (int i = 0; i < nc; i++) {
      const float m = i ? amax * (1.0f - (float)i / 20.0f) : INFINITY;
      float mn = 0.0f, mx = 0.0f;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) qs_grid_int_minmax(qs_clip_v(x[j], m), &mn, &mx);
      qs_clip_minmax(&mn, &mx, &red);
      struct qs_qparams p = qs_grid_int_params(mn, mx, grid.bits, grid.sym, grid.min_zero, grid.scale_dtype);
      // __fsub_rn: never fused with the value's multiply into an FMA (the reference's bits)
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        d[j] = __fsub_rn(x[j], qs_grid_int_value(p, qs_grid_int_code(p, qs_clip_v(x[j], m), maxq)));
      __syncthreads();
      double part = 0.0;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const float *Bl = H + c0 * K + c0 + j; // B[l, j] = H[c0 + l, c0 + j]
        float acc = 0.0f;
        for (int64_t l = 0; l < n; l++) acc += Bl[l * K] * d[l];
        part += (double)d[j] * (double)acc;
      }
      double e = qs_clip_sum(part, &red); // its closing barrier also ends this candidate's use of d
      if (e < best) best = e, best_m = m;
    }
    total += best;
    float mn = 0.0f, mx = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) qs_grid_int_minmax(qs_clip_v(x[j], best_m), &mn, &mx);
    qs_clip_minmax(&mn, &mx, &red);
    struct qs_qparams p = qs_grid_int_params(mn, mx, grid.bits, grid.sym, grid.min_zero, grid.scale_dtype);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      float c = qs_grid_int_code(p, qs_clip_v(x[j], best_m), maxq);
      codes[row * K + c0 + j] = (uint8_t)c;
      w[c0 + j] = qs_grid_int_value(p, c);
    }
    if (threadIdx.x == 0) {
      scales[row * G + gi] = p.scale;
      zeros[row * G + gi] = (uint8_t)p.zero;
    }
    __syncthreads(); // d and the reductions' buffers are reused by the next group
  }
  if (threadIdx.x == 0 && loss) loss[row] = (float)(total / 2.0);
}

extern "C" qs_status qs_awq_clip_rows_cuda(const struct qs_grid *g, const float *H, int64_t K, int n_clip, float *W,
                                           int64_t nrows, uint8_t *codes, float *scales, uint8_t *zeros, float *loss,
                                           cudaStream_t stream) {
  qs_status status = QS_OK;
  const int64_t gs = g->group_size <= 0 ? K : QS_MIN((int64_t)g->group_size, K), G = QS_CEIL_DIV(K, gs);
  const size_t smem = (size_t)gs * sizeof(float);
  int threads = 32; // a power of two (the double tree), one per column up to 256
  while (threads < 256 && threads < gs) threads *= 2;
  if (g->kind != QS_GRID_INT) QS_FAIL(QS_ERR_ARG, "awq clip cuda: grid kind %d (integer grids only)", (int)g->kind);
  if (gs > QS_AWQ_CLIP_MAX_GS)
    QS_FAIL(QS_ERR_UNSUPPORTED, "awq clip cuda: groups of %lld columns (at most %d on the GPU; use --device cpu)",
            (long long)gs, QS_AWQ_CLIP_MAX_GS);
  if (n_clip < 1 || n_clip > 20) QS_FAIL(QS_ERR_ARG, "awq clip cuda: %d shrink ratios (1..20)", n_clip);
  if (nrows <= 0) return QS_OK;
  if (nrows > INT_MAX) QS_FAIL(QS_ERR_UNSUPPORTED, "awq clip cuda: %lld rows", (long long)nrows);
  if (smem > 48 * 1024)
    QS_CUDA_CHECK(cudaFuncSetAttribute(qs_awq_clip_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  qs_awq_clip_kernel<<<(unsigned)nrows, threads, smem, stream>>>(H, K, gs, G, *g, n_clip, W, codes,
                                                                  scales, zeros, loss);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}
