// tok_cmp.cu — per predicted token, the KL divergence, both NLLs, the change of the target's
// probability and top-1 agreement of two logit rows (qs_tok_cmp_ref, src/model/ops.c), one block
// per row, three passes over the two rows: the maxima and argmaxes; the sums of exp(logit - max) in
// double; the KL terms in double. Reductions run lane -> warp (xor butterfly) -> block (warps in
// index order), never atomics: the same inputs give the same bits. The NLL steps are nll.cu's
// exactly (same block size, same per-thread strides, same reduction order, same final expression),
// so nll_q / nll_ref equal qs_nll_cuda's bit for bit. Test: tests/test_kernels_fwd2_cuda.c (gpu).
#include <math.h>
#include <stdint.h>

#include "qs_cuda.h"
#include "tok_cmp.h"

constexpr int QS_TOK_CMP_THREADS = 256; // = nll.cu's QS_NLL_THREADS: the NLL sums must be its sums
constexpr int QS_TOK_CMP_WARPS = QS_TOK_CMP_THREADS / 32;
constexpr unsigned QS_TOK_CMP_FULL = 0xffffffffu;

// One slot per warp for each reduction ([0]: ref, [1]: q), and the two log partition functions.
struct qs_tok_cmp_smem {
  float mx[2][QS_TOK_CMP_WARPS];
  float av[2][QS_TOK_CMP_WARPS]; // argmax value and index
  int ai[2][QS_TOK_CMP_WARPS];
  double sum[2][QS_TOK_CMP_WARPS];
  double kld[QS_TOK_CMP_WARPS];
  double lz[2];
};

// (v, i) replaces (*bv, *bi) when larger, or equal at a smaller index: the first index on ties.
__device__ __forceinline__ void qs_tok_cmp_arg(float v, int i, float *bv, int *bi) {
  if (v > *bv || (v == *bv && i < *bi)) *bv = v, *bi = i;
}

// Every thread gets the block max from the warps' slots (after the caller's __syncthreads), in
// nll.cu's order (exact in any order, kept identical anyway).
__device__ __forceinline__ float qs_tok_cmp_block_max(const float *slot) {
  float mx = slot[0];
  for (int w = 1; w < QS_TOK_CMP_WARPS; w++) mx = fmaxf(mx, slot[w]);
  return mx;
}

__device__ __forceinline__ double qs_tok_cmp_warp_sum(double s) {
  for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(QS_TOK_CMP_FULL, s, off);
  return s;
}

// Thread 0: the block sum from the warps' slots, warps in index order from 0.0 as nll.cu.
__device__ __forceinline__ double qs_tok_cmp_block_sum(const double *slot) {
  double total = 0.0;
  for (int w = 0; w < QS_TOK_CMP_WARPS; w++) total += slot[w];
  return total;
}

// Phase 1: row maxima (fp32, exact) to every thread; argmax indices to thread 0 (*ar, *aq).
__device__ __forceinline__ void qs_tok_cmp_max(const float *ref, const float *q, int vocab, qs_tok_cmp_smem *sm,
                                               float *mr, float *mq, int *ar, int *aq) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float m[2] = {-INFINITY, -INFINITY}, bv[2] = {-INFINITY, -INFINITY};
  int bi[2] = {INT32_MAX, INT32_MAX}; // threads past vocab lose every tie
  if ((int)threadIdx.x < vocab) { // a thread's first element is its candidate, even -inf (as ref[0])
    bv[0] = ref[threadIdx.x], bv[1] = q[threadIdx.x];
    bi[0] = bi[1] = threadIdx.x;
  }
  for (int i = threadIdx.x; i < vocab; i += QS_TOK_CMP_THREADS) {
    const float r = ref[i], x = q[i];
    m[0] = fmaxf(m[0], r), m[1] = fmaxf(m[1], x);
    qs_tok_cmp_arg(r, i, &bv[0], &bi[0]); // strictly larger only: i ascends, the first index stays
    qs_tok_cmp_arg(x, i, &bv[1], &bi[1]);
  }
  for (int k = 0; k < 2; k++) {
    for (int off = 16; off > 0; off >>= 1) {
      m[k] = fmaxf(m[k], __shfl_xor_sync(QS_TOK_CMP_FULL, m[k], off));
      const float ov = __shfl_xor_sync(QS_TOK_CMP_FULL, bv[k], off);
      const int oi = __shfl_xor_sync(QS_TOK_CMP_FULL, bi[k], off);
      qs_tok_cmp_arg(ov, oi, &bv[k], &bi[k]);
    }
    if (lane == 0) sm->mx[k][warp] = m[k], sm->av[k][warp] = bv[k], sm->ai[k][warp] = bi[k];
  }
  __syncthreads();
  *mr = qs_tok_cmp_block_max(sm->mx[0]);
  *mq = qs_tok_cmp_block_max(sm->mx[1]);
  if (threadIdx.x == 0) {
    for (int k = 0; k < 2; k++) {
      bv[k] = sm->av[k][0], bi[k] = sm->ai[k][0];
      for (int w = 1; w < QS_TOK_CMP_WARPS; w++) qs_tok_cmp_arg(sm->av[k][w], sm->ai[k][w], &bv[k], &bi[k]);
    }
    *ar = bi[0], *aq = bi[1];
  }
}

// Phase 2: the log partition functions lz = max + log(sum exp(x - max)), in double, to every thread.
__device__ __forceinline__ void qs_tok_cmp_lz(const float *ref, const float *q, int vocab, qs_tok_cmp_smem *sm,
                                              float mr, float mq, double *lzr, double *lzq) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const double mrd = (double)mr, mqd = (double)mq;
  double sr = 0.0, sq = 0.0;
  for (int i = threadIdx.x; i < vocab; i += QS_TOK_CMP_THREADS) {
    sr += exp((double)ref[i] - mrd);
    sq += exp((double)q[i] - mqd);
  }
  sr = qs_tok_cmp_warp_sum(sr);
  sq = qs_tok_cmp_warp_sum(sq);
  if (lane == 0) sm->sum[0][warp] = sr, sm->sum[1][warp] = sq;
  __syncthreads();
  if (threadIdx.x == 0) {
    sm->lz[0] = mrd + log(qs_tok_cmp_block_sum(sm->sum[0]));
    sm->lz[1] = mqd + log(qs_tok_cmp_block_sum(sm->sum[1]));
  }
  __syncthreads();
  *lzr = sm->lz[0], *lzq = sm->lz[1];
}

// ref, q: [rows, vocab] fp32; targets: [rows]; out: [rows, QS_TOK_CMP_N] (tok_cmp.h).
__global__ void __launch_bounds__(QS_TOK_CMP_THREADS)
    qs_tok_cmp_kernel(const float *__restrict__ ref, const float *__restrict__ q, const int32_t *__restrict__ targets,
                      double *__restrict__ out, int vocab) {
  __shared__ qs_tok_cmp_smem sm;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const size_t row = blockIdx.x;
  const float *r = ref + row * vocab, *x = q + row * vocab;
  float mr, mq;
  int ar = 0, aq = 0;
  double lzr, lzq;
  qs_tok_cmp_max(r, x, vocab, &sm, &mr, &mq, &ar, &aq);
  qs_tok_cmp_lz(r, x, vocab, &sm, mr, mq, &lzr, &lzq);
  double kld = 0.0; // sum_i P_i (log P_i - log Q_i), the reference's terms in its order per thread
  for (int i = threadIdx.x; i < vocab; i += QS_TOK_CMP_THREADS) {
    const double lp = (double)r[i] - lzr, lq = (double)x[i] - lzq;
    kld += exp(lp) * (lp - lq);
  }
  kld = qs_tok_cmp_warp_sum(kld);
  if (lane == 0) sm.kld[warp] = kld;
  __syncthreads();
  if (threadIdx.x == 0) {
    const int32_t t = targets[row];
    const int ok = t >= 0 && t < vocab;
    double *o = out + row * QS_TOK_CMP_N;
    kld = qs_tok_cmp_block_sum(sm.kld);
    o[QS_TOK_CMP_KLD] = kld > 0.0 ? kld : 0.0; // >= 0 in exact arithmetic (as the reference)
    o[QS_TOK_CMP_NLL_REF] = ok ? lzr - (double)r[t] : (double)NAN; // nll.cu's mx + log(total) - logit
    o[QS_TOK_CMP_NLL_Q] = ok ? lzq - (double)x[t] : (double)NAN;
    o[QS_TOK_CMP_DP] = exp(-o[QS_TOK_CMP_NLL_Q]) - exp(-o[QS_TOK_CMP_NLL_REF]);
    o[QS_TOK_CMP_TOP] = ar == aq ? 1.0 : 0.0;
  }
}

// One block per row in grid.x (up to 2^31 - 1 rows; no 65535 limit as in y / z).
static qs_status qs_tok_cmp_launch(const float *ref, const float *q, const int32_t *targets, double *out, int rows,
                                   int vocab, cudaStream_t stream) {
  qs_status status = QS_OK;
  qs_tok_cmp_kernel<<<rows, QS_TOK_CMP_THREADS, 0, stream>>>(ref, q, targets, out, vocab);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

extern "C" qs_status qs_tok_cmp_cuda(const float *ref, const float *q, const int32_t *targets, double *out, int rows,
                                     int vocab, cudaStream_t stream) {
  qs_status status = QS_OK;
  if (rows <= 0 || vocab <= 0) QS_FAIL(QS_ERR_ARG, "tok_cmp: rows %d, vocab %d must be positive", rows, vocab);
  QS_TRY(qs_tok_cmp_launch(ref, q, targets, out, rows, vocab, stream));
fail:
  return status;
}
