// gptq_solve.cu — the GPTQ column solve on the GPU. Test and benchmark: tests/test_gptq_cuda.c
// (label gpu; `test_gptq_cuda --bench`).
//
// Per block [i1, i2) of 128 quantization positions (the CPU's lazy block):
//  1. (non-static groups only) the grids of the groups that start in the block, from the lazily
//     updated weights at block start — what the reference's find_params(W[:, p:p+gs]) sees: a group
//     that starts inside the block does not see this block's eager updates (src/quant/gptq.c);
//  2. one fused kernel: each thread owns one row and keeps the block's 128 weights in registers,
//     U[i1:i2, i1:i2] sits in shared memory (every thread reads the same element: broadcasts);
//     for each column in order: code and value from the grid (quant/grid_int.h: the C reference's
//     own code), e = (w - q)/U[p,p], then w[j] -= e*U[p,j] for the later columns of the block. Products and
//     differences are separately rounded (__fmul_rn/__fsub_rn: no FMA contraction) as the CPU's
//     plain C, so with the same inputs a block is bit-identical to qs_gptq_quantize_rows;
//  3. W[:, i2:] -= Err·U[i1:i2, i2:] as one cublasSgemm (fp32; the only different summation order).
// The weights are permuted into a working copy Wp (positions, rows padded to a multiple of 128
// columns so every row's block is 16-byte aligned) and scattered back at the end.
// Cost (llama-3-8b gate+up, N 28672, K 4096): the sgemms are N·K² = 0.48 TFLOP fp32; the fused
// kernels N·K·64 multiply-subtract pairs, about 1/64 of that.
// Measured (H100 SXM, tests/test_gptq_cuda.c --bench): the sgemms run at ~35 TFLOP/s (13 ms of
// the 30 ms of 8B gate+up, 190 of 253 ms of 70B down); the rest is mostly the fused kernel at
// 0.26-0.54 ms per block: its fully unrolled loop is ~30k straight-line instructions (255
// registers, no spills), so it is bound by instruction fetch, not arithmetic. Next step: loop over
// the block's columns at run time with the 128-wide update unrolled and predicated (j > i) — twice
// the FMULs, a body that fits the instruction cache — keeping the per-element operations.
#include <cuda_fp16.h>
#include <limits.h>

#include "gptq_solve.h"
#include "qs_cuda.h"
#include "quant/grid_int.h"

constexpr int QS_GS_BS = 128;      // lazy block (columns); the fused kernel is unrolled for it
constexpr int QS_GS_THREADS = 64;  // rows per thread block of the fused kernel (one row per thread)
constexpr int QS_GS_SMEM = QS_GS_BS * QS_GS_BS * (int)sizeof(float);

// ---- the grid: qs_grid_find of quant/grid.c, bit for bit (the same grid_int.h code) ------------------

// One warp per (row, group gi of ng): the group covers columns [c_first + gi*span, +span) clipped at
// cend of x (row stride ldx); dead (or NULL) zeroes columns. Writes scales/zeros[row*G + g0 + gi].
// min/max use the CPU's select forms, so a -0.0 never replaces the initial +0.0.
__global__ void qs_gs_grid_kernel(const float *x, int64_t ldx, int64_t nrows, int64_t c_first, int64_t span,
                                  int64_t cend, int64_t g0, int64_t ng, const uint8_t *dead, struct qs_grid grid,
                                  float *scales, uint8_t *zeros, int64_t G) {
  int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (warp >= nrows * ng) return;
  int64_t row = warp / ng, gi = warp % ng, cs = c_first + gi * span, ce = QS_MIN(cs + span, cend);
  const float *xr = x + row * ldx;
  float xmin = 0.0f, xmax = 0.0f;
  for (int64_t c = cs + lane; c < ce; c += 32) qs_grid_int_minmax((dead && dead[c]) ? 0.0f : xr[c], &xmin, &xmax);
  for (int off = 16; off > 0; off >>= 1) {
    float a = __shfl_xor_sync(0xffffffffu, xmin, off), b = __shfl_xor_sync(0xffffffffu, xmax, off);
    qs_grid_int_minmax(a, &xmin, &xmax);
    qs_grid_int_minmax(b, &xmin, &xmax);
  }
  if (lane == 0) {
    struct qs_qparams p = qs_grid_int_params(xmin, xmax, grid.bits, grid.sym, grid.min_zero, grid.scale_dtype);
    scales[row * G + g0 + gi] = p.scale;
    zeros[row * G + g0 + gi] = (uint8_t)p.zero;
  }
}

// ---- permute in / scatter out -------------------------------------------------------------------------

// Wp[r, p] = dead[perm[p]] ? 0 : W[r, perm[p]] (p < K), 0 in the padding; *bad = smallest linear
// index of a non-finite weight.
__global__ void qs_gs_permute_kernel(const float *W, int64_t K, int64_t ldp, int64_t nrows, const int32_t *perm,
                                     const uint8_t *dead, float *Wp, unsigned long long *bad) {
  int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= ldp) return;
  for (int64_t r = blockIdx.y; r < nrows; r += gridDim.y) {
    float v = 0.0f;
    if (p < K) {
      int64_t k = perm[p];
      v = W[r * K + k];
      if (!isfinite(v)) atomicMin(bad, (unsigned long long)(r * K + k));
      if (dead[k]) v = 0.0f;
    }
    Wp[r * ldp + p] = v;
  }
}

// W[r, perm[p]] = Wp[r, p], codes likewise; row_loss[r] = loss[r] / 2 (or skipped).
__global__ void qs_gs_scatter_kernel(const float *Wp, const uint8_t *codes_p, int64_t ldp, int64_t K, int64_t nrows,
                                     const int32_t *perm, float *W, uint8_t *codes, const double *loss,
                                     float *row_loss) {
  int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= K) return;
  int64_t k = perm[p];
  for (int64_t r = blockIdx.y; r < nrows; r += gridDim.y) {
    W[r * K + k] = Wp[r * ldp + p];
    codes[r * K + k] = codes_p[r * ldp + p];
    if (p == 0 && row_loss) row_loss[r] = (float)(loss[r] / 2.0);
  }
}

// ---- the fused block kernel ---------------------------------------------------------------------------

// Block [i1, i1 + count) for rows [blockIdx.x*THREADS, +THREADS). Err is [BS, lde] (column i of
// the block is contiguous over rows: coalesced stores, and the sgemm reads it transposed; lde is
// nrows rounded up to 64 so that the sgemm's operand layout does not depend on nrows).
template <int BS>
__global__ void __launch_bounds__(QS_GS_THREADS)
qs_gs_block_kernel(float *Wp, int64_t ldp, int64_t nrows, int64_t i1, int count, const float *U, int64_t K,
                   const int32_t *perm, int gs, int static_groups, const float *scales, const uint8_t *zeros,
                   int64_t G, float maxq, uint8_t *codes_p, float *Err, int64_t lde, double *loss) {
  extern __shared__ float su[]; // [BS][BS]: su[i*BS + j] = U[i1+i, i1+j], j >= i, zero elsewhere
  __shared__ int sg[BS];        // group (scales/zeros column) of position i1+i
  for (int t = threadIdx.x; t < BS * BS; t += blockDim.x) {
    int i = t / BS, j = t % BS;
    su[t] = (i < count && j < count && j >= i) ? U[(i1 + i) * K + i1 + j] : 0.0f;
  }
  for (int i = threadIdx.x; i < BS; i += blockDim.x) {
    int64_t p = i1 + i;
    sg[i] = (i >= count || gs <= 0) ? 0 : (int)(static_groups ? perm[p] / gs : p / gs);
  }
  __syncthreads();
  int64_t row = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= nrows) return;
  float *wrow = Wp + row * ldp + i1;
  float w[BS];
  uint32_t cw[BS / 4];
#pragma unroll
  for (int c = 0; c < BS / 4; c++) {
    float4 v = reinterpret_cast<const float4 *>(wrow)[c];
    w[4 * c] = v.x, w[4 * c + 1] = v.y, w[4 * c + 2] = v.z, w[4 * c + 3] = v.w;
    cw[c] = 0u;
  }
  const float *srow = scales + row * G;
  const uint8_t *zrow = zeros + row * G;
  double ls = loss[row];
  int cur = -1;
  struct qs_qparams gp = {1.0f, 0.0f};
#pragma unroll
  for (int i = 0; i < BS; i++) {
    if (i < count) {
      if (sg[i] != cur) {
        cur = sg[i];
        gp.scale = srow[cur];
        gp.zero = (float)zrow[cur];
      }
      float x = w[i], d = su[i * BS + i];
      float q = qs_grid_int_code(gp, x, maxq);
      float wq = qs_grid_int_value(gp, q), diff = __fsub_rn(x, wq), e = __fdiv_rn(diff, d);
      ls = __dadd_rn(ls, __ddiv_rn(__dmul_rn((double)diff, (double)diff), __dmul_rn((double)d, (double)d)));
      cw[i / 4] |= (uint32_t)q << (8 * (i % 4));
      Err[i * lde + row] = e;
      w[i] = wq;
#pragma unroll
      for (int j = i + 1; j < BS; j++) w[j] = __fsub_rn(w[j], __fmul_rn(e, su[i * BS + j]));
    }
  }
#pragma unroll
  for (int c = 0; c < BS / 4; c++)
    reinterpret_cast<float4 *>(wrow)[c] = make_float4(w[4 * c], w[4 * c + 1], w[4 * c + 2], w[4 * c + 3]);
  uint4 *crow = reinterpret_cast<uint4 *>(codes_p + row * ldp + i1);
#pragma unroll
  for (int c = 0; c < BS / 16; c++) crow[c] = make_uint4(cw[4 * c], cw[4 * c + 1], cw[4 * c + 2], cw[4 * c + 3]);
  loss[row] = ls;
}

// ---- launchers ----------------------------------------------------------------------------------------

struct qs_gs_work {
  float *Wp;          // [nrows, ldp] positions, padded
  uint8_t *codes_p;   // [nrows, ldp]
  float *Err;         // [BS, lde]
  double *loss;       // [nrows]
  unsigned long long *bad;
  int64_t ldp, G, lde;
};

static qs_status qs_gs_grid_launch(const float *x, int64_t ldx, int64_t nrows, int64_t c_first, int64_t span,
                                   int64_t K, int64_t g0, int64_t ng, const uint8_t *dead,
                                   const struct qs_qopts *o, float *scales, uint8_t *zeros, int64_t G,
                                   cudaStream_t stream) {
  qs_status status = QS_OK;
  int64_t threads = nrows * ng * 32;
  qs_gs_grid_kernel<<<(unsigned)((threads + 255) / 256), 256, 0, stream>>>(x, ldx, nrows, c_first, span, K, g0, ng,
                                                                            dead, o->grid, scales, zeros, G);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

// One lazy block: grids of groups starting in it (non-static), the fused kernel, the sgemm.
static qs_status qs_gs_block_launch(const struct qs_gptq_prep_cuda *prep, struct qs_gs_work *wk, int64_t nrows,
                                    int64_t row_tile, int64_t i1, float *scales, uint8_t *zeros,
                                    cublasHandle_t blas, cudaStream_t stream) {
  qs_status status = QS_OK;
  const struct qs_qopts *o = &prep->opts;
  const int64_t K = prep->K, i2 = QS_MIN(i1 + QS_GS_BS, K), gs = o->grid.group_size;
  const int static_groups = o->act_order == QS_ACT_ORDER_STATIC;
  const float minus1 = -1.0f, one = 1.0f;
  if (gs > 0 && !static_groups) {
    int64_t glo = QS_CEIL_DIV(i1, gs), ghi = QS_CEIL_DIV(i2, gs);
    if (ghi > glo)
      QS_TRY(qs_gs_grid_launch(wk->Wp, wk->ldp, nrows, glo * gs, gs, K, glo, ghi - glo, NULL, o, scales, zeros,
                               wk->G, stream));
  }
  qs_gs_block_kernel<QS_GS_BS><<<(unsigned)QS_CEIL_DIV(nrows, QS_GS_THREADS), QS_GS_THREADS, QS_GS_SMEM, stream>>>(
      wk->Wp, wk->ldp, nrows, i1, (int)(i2 - i1), prep->U, K, prep->perm, o->grid.group_size, static_groups, scales,
      zeros, wk->G, (float)((1 << o->grid.bits) - 1), wk->codes_p, wk->Err, wk->lde, wk->loss);
  QS_CUDA_CHECK(cudaGetLastError());
  // Row-major Wp[:, i2:K] -= Err[rows, 128] · U[i1:i2, i2:K], column-major: C (K-i2 x nrows, ld ldp)
  // -= A (U block, K-i2 x 128, ld K) · (Err as nrows x 128, ld lde)ᵀ.
  // With row_tile, one sgemm per tile of rows (the last may be shorter): a row's update then comes
  // from a call of the same shape whatever block of rows this call was given (see the header).
  for (int64_t r = 0; i2 < K && r < nrows; r += row_tile) {
    int64_t m = QS_MIN(row_tile, nrows - r);
    QS_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)(K - i2), (int)m, QS_GS_BS, &minus1,
                                prep->U + i1 * K + i2, (int)K, wk->Err + r, (int)wk->lde, &one,
                                wk->Wp + r * wk->ldp + i2, (int)wk->ldp));
  }
fail:
  return status;
}

// Grids fixed before the solve: one per row on the original row (dead columns included, as the
// reference finds them before zeroing), or static groups on the original columns, dead zeroed.
static qs_status qs_gs_pregrids(const struct qs_gptq_prep_cuda *prep, const float *W, int64_t nrows,
                                float *scales, uint8_t *zeros, int64_t G, cudaStream_t stream) {
  qs_status status = QS_OK;
  const struct qs_qopts *o = &prep->opts;
  if (o->grid.group_size <= 0)
    QS_TRY(qs_gs_grid_launch(W, prep->K, nrows, 0, prep->K, prep->K, 0, 1, NULL, o, scales, zeros, G, stream));
  else if (o->act_order == QS_ACT_ORDER_STATIC)
    QS_TRY(qs_gs_grid_launch(W, prep->K, nrows, 0, o->grid.group_size, prep->K, 0, G, prep->dead, o, scales, zeros,
                             G, stream));
fail:
  return status;
}

static qs_status qs_gs_check(const struct qs_gptq_prep_cuda *prep, int64_t nrows, cublasHandle_t blas) {
  qs_status status = QS_OK;
  cublasMath_t mode;
  if (prep->opts.block_size != QS_GS_BS)
    QS_FAIL(QS_ERR_UNSUPPORTED, "gptq cuda: block size %d (the GPU solve is built for %d)", prep->opts.block_size,
            QS_GS_BS);
  if (nrows < 0 || nrows > INT_MAX || prep->K <= 0)
    QS_FAIL(QS_ERR_ARG, "gptq cuda: %lld rows, K %lld", (long long)nrows, (long long)prep->K);
  QS_CUBLAS_CHECK(cublasGetMathMode(blas, &mode));
  if ((int)mode & (int)CUBLAS_TF32_TENSOR_OP_MATH)
    QS_FAIL(QS_ERR_ARG, "gptq cuda: the cuBLAS handle allows TF32; the lazy updates need full fp32");
fail:
  return status;
}

static qs_status qs_gs_work_init(struct qs_gs_work *wk, int64_t nrows, int64_t K, int64_t G, cudaStream_t stream) {
  qs_status status = QS_OK;
  wk->ldp = QS_CEIL_DIV(K, (int64_t)QS_GS_BS) * QS_GS_BS;
  wk->G = G;
  QS_CUDA_CHECK(cudaMallocAsync((void **)&wk->Wp, sizeof(float) * (size_t)(nrows * wk->ldp), stream));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&wk->codes_p, (size_t)(nrows * wk->ldp), stream));
  wk->lde = QS_CEIL_DIV(QS_MAX(nrows, (int64_t)1), (int64_t)64) * 64;
  QS_CUDA_CHECK(cudaMallocAsync((void **)&wk->Err, sizeof(float) * (size_t)(wk->lde * QS_GS_BS), stream));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&wk->loss, sizeof(double) * (size_t)nrows, stream));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&wk->bad, sizeof(unsigned long long), stream));
  QS_CUDA_CHECK(cudaMemsetAsync(wk->loss, 0, sizeof(double) * (size_t)nrows, stream));
  QS_CUDA_CHECK(cudaMemsetAsync(wk->bad, 0xFF, sizeof(unsigned long long), stream));
fail:
  return status;
}

static void qs_gs_work_free(struct qs_gs_work *wk, cudaStream_t stream) {
  if (wk->Wp) cudaFreeAsync(wk->Wp, stream);
  if (wk->codes_p) cudaFreeAsync(wk->codes_p, stream);
  if (wk->Err) cudaFreeAsync(wk->Err, stream);
  if (wk->loss) cudaFreeAsync(wk->loss, stream);
  if (wk->bad) cudaFreeAsync(wk->bad, stream);
}

extern "C" qs_status qs_gptq_quantize_cuda(const struct qs_gptq_prep_cuda *prep, float *W, int64_t nrows,
                                           uint8_t *codes, float *scales, uint8_t *zeros, float *row_loss,
                                           cublasHandle_t blas, cudaStream_t stream) {
  return qs_gptq_quantize_tiled_cuda(prep, W, nrows, 0, codes, scales, zeros, row_loss, blas, stream);
}

extern "C" qs_status qs_gptq_quantize_tiled_cuda(const struct qs_gptq_prep_cuda *prep, float *W, int64_t nrows,
                                                 int64_t row_tile, uint8_t *codes, float *scales, uint8_t *zeros,
                                                 float *row_loss, cublasHandle_t blas, cudaStream_t stream) {
  qs_status status = QS_OK;
  struct qs_gs_work wk = {};
  const int64_t K = prep->K, gs = prep->opts.grid.group_size;
  const int64_t G = gs <= 0 ? 1 : QS_CEIL_DIV(K, gs);
  unsigned long long bad = 0;
  unsigned ry = (unsigned)QS_MIN(nrows, (int64_t)65535);
  QS_TRY(qs_gs_check(prep, nrows, blas));
  if (nrows == 0) return QS_OK;
  QS_CUBLAS_CHECK(cublasSetStream(blas, stream));
  QS_CUDA_CHECK(cudaFuncSetAttribute(qs_gs_block_kernel<QS_GS_BS>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     QS_GS_SMEM));
  QS_TRY(qs_gs_work_init(&wk, nrows, K, G, stream));
  qs_gs_permute_kernel<<<dim3((unsigned)QS_CEIL_DIV(wk.ldp, 256), ry), 256, 0, stream>>>(
      W, K, wk.ldp, nrows, prep->perm, prep->dead, wk.Wp, wk.bad);
  QS_CUDA_CHECK(cudaGetLastError());
  QS_TRY(qs_gs_pregrids(prep, W, nrows, scales, zeros, G, stream));
  if (row_tile <= 0) row_tile = QS_MAX(nrows, (int64_t)1);
  for (int64_t i1 = 0; i1 < K; i1 += QS_GS_BS)
    QS_TRY(qs_gs_block_launch(prep, &wk, nrows, row_tile, i1, scales, zeros, blas, stream));
  qs_gs_scatter_kernel<<<dim3((unsigned)QS_CEIL_DIV(K, 256), ry), 256, 0, stream>>>(
      wk.Wp, wk.codes_p, wk.ldp, K, nrows, prep->perm, W, codes, wk.loss, row_loss);
  QS_CUDA_CHECK(cudaGetLastError());
  QS_CUDA_CHECK(cudaMemcpyAsync(&bad, wk.bad, sizeof(bad), cudaMemcpyDeviceToHost, stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (bad != ~0ull)
    QS_FAIL(QS_ERR_NUMERIC, "gptq: weight [%lld, %lld] is not finite", (long long)(bad / (unsigned long long)K),
            (long long)(bad % (unsigned long long)K));
fail:
  qs_gs_work_free(&wk, stream);
  return status;
}
