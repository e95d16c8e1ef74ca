// attention_f32.cu — causal GQA attention in fp32 (CUDA cores), flash-style but scalar. One block of
// 8 warps per (query tile of 32 rows, head, sequence); each warp owns 4 query rows. Key/value
// tiles of 32 keys are staged through shared memory; in the score phase lane j owns key j of the
// tile (a full fp32 dot product over head_dim, so no reduction per score), in the P V phase lane j
// owns dims j, j + 32, ... and the 32 weights reach it by shuffles. The softmax is online (running
// max and sum per row, rescaled per tile), so nothing of size T x T is stored.
// Test and benchmark: tests/test_kernels_fwd2_cuda.c (label gpu; `test_kernels_fwd2_cuda --bench`).
#include <math.h>
#include <stdint.h>

#include "attention_f32.h"
#include "qs_cuda.h"

constexpr int QS_ATT32_B = 32;      // query rows per block = keys per tile = lanes of a warp
constexpr int QS_ATT32_WARPS = 8;
constexpr int QS_ATT32_RPW = QS_ATT32_B / QS_ATT32_WARPS; // query rows per warp
constexpr int QS_ATT32_THREADS = 32 * QS_ATT32_WARPS;
constexpr int QS_ATT32_DMAX = 256;

// Shared floats for head_dim D: Q [32][D], K [32][D + 1], V [32][D]. K's odd row stride puts the
// 32 lanes' reads of K[lane][d] in 32 distinct banks; Q is read by broadcast, V by consecutive
// columns.
static size_t qs_att32_smem_bytes(int D) { return (size_t)QS_ATT32_B * (3 * (size_t)D + 1) * sizeof(float); }

// Rows [row0, row0 + 32) of a strided [T, D] matrix (row r at src + r * stride) into shared rows of
// `ld` floats; rows >= T are zero (they meet zero weights, and a garbage NaN would poison 0 * NaN).
__device__ __forceinline__ void qs_att32_load(float *dst, int ld, const float *src, size_t stride, int row0, int T_len,
                                              int D) {
  const int half = D / 2; // D is even: rows are read as float2
  for (int i = threadIdx.x; i < QS_ATT32_B * half; i += QS_ATT32_THREADS) {
    const int r = i / half, c = 2 * (i % half);
    float2 x = make_float2(0.0f, 0.0f);
    if (row0 + r < T_len) x = *(const float2 *)(src + (size_t)(row0 + r) * stride + c);
    dst[r * ld + c] = x.x;
    dst[r * ld + c + 1] = x.y;
  }
}

// Per-warp state for its 4 rows: running max m (same in every lane), this lane's share l of the
// running sum (its keys only; summed over the warp at the end), output accumulators for dims
// lane + 32 c.
template <int DC> struct qs_att32_state {
  float m[QS_ATT32_RPW], l[QS_ATT32_RPW], acc[QS_ATT32_RPW][DC];
};

// Scaled scores of this warp's rows (Q rows at qw) against key `lane` of the tile (K row at kr).
__device__ __forceinline__ void qs_att32_scores(float s[QS_ATT32_RPW], const float *qw, const float *kr, int D,
                                                float scale) {
#pragma unroll
  for (int r = 0; r < QS_ATT32_RPW; r++) s[r] = 0.0f;
#pragma unroll 4
  for (int d = 0; d < D; d += 2) {
    const float k0 = kr[d], k1 = kr[d + 1];
#pragma unroll
    for (int r = 0; r < QS_ATT32_RPW; r++) {
      const float2 qv = *(const float2 *)(qw + r * D + d);
      s[r] = fmaf(qv.y, k1, fmaf(qv.x, k0, s[r]));
    }
  }
#pragma unroll
  for (int r = 0; r < QS_ATT32_RPW; r++) s[r] *= scale; // the reference's dot * scale
}

// One key tile for one warp: scores, causal mask, online softmax, acc += P V.
// Every visited tile holds an unmasked key for every row (key0 <= the block's first row), so the
// new max is finite: alpha = expf(-inf) = 0 on the first tile, masked weights expf(-inf) = 0.
template <int DC>
__device__ __forceinline__ void qs_att32_tile(qs_att32_state<DC> &st, const float *qw, const float *ks,
                                              const float *vs, int D, int qrow0, int key0, float scale, int lane) {
  float p[QS_ATT32_RPW];
  qs_att32_scores(p, qw, ks + lane * (D + 1), D, scale);
#pragma unroll
  for (int r = 0; r < QS_ATT32_RPW; r++) {
    const float s = key0 + lane <= qrow0 + r ? p[r] : -INFINITY;
    float mx = s;
    for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    const float m_new = fmaxf(st.m[r], mx);
    const float alpha = expf(st.m[r] - m_new);
    p[r] = expf(s - m_new);
    st.l[r] = st.l[r] * alpha + p[r];
    st.m[r] = m_new;
#pragma unroll
    for (int c = 0; c < DC; c++) st.acc[r][c] *= alpha;
  }
  for (int j = 0; j < QS_ATT32_B; j++) { // keys in order
    float pj[QS_ATT32_RPW];
#pragma unroll
    for (int r = 0; r < QS_ATT32_RPW; r++) pj[r] = __shfl_sync(0xffffffffu, p[r], j);
#pragma unroll
    for (int c = 0; c < DC; c++) {
      const int d = lane + 32 * c;
      if (d < D) {
        const float x = vs[j * D + d];
#pragma unroll
        for (int r = 0; r < QS_ATT32_RPW; r++) st.acc[r][c] = fmaf(pj[r], x, st.acc[r][c]);
      }
    }
  }
}

// out rows qrow0 .. qrow0 + 3 (those < T) = acc / l, l summed over the warp's lanes.
template <int DC>
__device__ __forceinline__ void qs_att32_store(qs_att32_state<DC> &st, float *og, size_t stride, int qrow0, int T_len,
                                               int D, int lane) {
#pragma unroll
  for (int r = 0; r < QS_ATT32_RPW; r++) {
    float l = st.l[r];
    for (int off = 16; off > 0; off >>= 1) l += __shfl_xor_sync(0xffffffffu, l, off); // >= 1: the max's weight
    if (qrow0 + r >= T_len) continue;
#pragma unroll
    for (int c = 0; c < DC; c++) {
      const int d = lane + 32 * c;
      if (d < D) og[(size_t)(qrow0 + r) * stride + d] = st.acc[r][c] / l;
    }
  }
}

// DC = ceil(head_dim / 32): accumulators per lane and row. q is not __restrict__: out may equal q
// (each block reads its own query rows into shared memory before writing them).
template <int DC>
__global__ void __launch_bounds__(QS_ATT32_THREADS)
    qs_attention_f32_kernel(const float *q, const float *__restrict__ k, const float *__restrict__ v, float *out,
                            int T_len, int n_heads, int n_kv_heads, int D, float scale) {
  extern __shared__ __align__(16) float qs_att32_smem[];
  float *qs = qs_att32_smem, *ks = qs + QS_ATT32_B * D, *vs = ks + QS_ATT32_B * (D + 1);
  const int n_qt = (T_len + QS_ATT32_B - 1) / QS_ATT32_B;
  const int qt = n_qt - 1 - (int)blockIdx.x; // longest rows (most key tiles) first
  const int h = blockIdx.y, b = blockIdx.z, hk = h / (n_heads / n_kv_heads);
  const size_t qstride = (size_t)n_heads * D, kvstride = (size_t)n_kv_heads * D;
  const float *kg = k + (size_t)b * T_len * kvstride + (size_t)hk * D;
  const float *vg = v + (size_t)b * T_len * kvstride + (size_t)hk * D;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = qt * QS_ATT32_B, wrow = warp * QS_ATT32_RPW; // wrow: the warp's first row in the tile

  qs_att32_load(qs, D, q + (size_t)b * T_len * qstride + (size_t)h * D, qstride, row0, T_len, D);
  qs_att32_state<DC> st;
#pragma unroll
  for (int r = 0; r < QS_ATT32_RPW; r++) {
    st.m[r] = -INFINITY;
    st.l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < DC; c++) st.acc[r][c] = 0.0f;
  }
  for (int kt = 0; kt <= qt; kt++) { // causal: key tiles 0..qt
    __syncthreads();                 // the previous tile is no longer read
    qs_att32_load(ks, D + 1, kg, kvstride, kt * QS_ATT32_B, T_len, D);
    qs_att32_load(vs, D, vg, kvstride, kt * QS_ATT32_B, T_len, D);
    __syncthreads();
    qs_att32_tile<DC>(st, qs + wrow * D, ks, vs, D, row0 + wrow, kt * QS_ATT32_B, scale, lane);
  }
  qs_att32_store<DC>(st, out + (size_t)b * T_len * qstride + (size_t)h * D, qstride, row0 + wrow, T_len, D, lane);
}

template <int DC>
static qs_status qs_attention_f32_launch(const float *q, const float *k, const float *v, float *out, int batch,
                                         int T_len, int n_heads, int n_kv_heads, int D, cudaStream_t stream) {
  qs_status status = QS_OK;
  const size_t smem = qs_att32_smem_bytes(D);
  const float scale = (float)(1.0 / sqrt((double)D)); // head_dim**-0.5 as the reference's float
  const dim3 grid((unsigned)((T_len + QS_ATT32_B - 1) / QS_ATT32_B), (unsigned)n_heads, (unsigned)batch);
  QS_CUDA_CHECK(cudaFuncSetAttribute(qs_attention_f32_kernel<DC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)smem));
  qs_attention_f32_kernel<DC><<<grid, QS_ATT32_THREADS, smem, stream>>>(q, k, v, out, T_len, n_heads, n_kv_heads, D,
                                                                         scale);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

extern "C" qs_status qs_attention_f32_cuda(const float *q, const float *k, const float *v, float *out, int batch,
                                           int T, int n_heads, int n_kv_heads, int head_dim, cudaStream_t stream) {
  qs_status status = QS_OK;
  if (batch <= 0 || T <= 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0)
    QS_FAIL(QS_ERR_ARG, "attention f32: batch %d, T %d, n_heads %d, n_kv_heads %d, head_dim %d must be positive",
            batch, T, n_heads, n_kv_heads, head_dim);
  if (n_heads % n_kv_heads)
    QS_FAIL(QS_ERR_ARG, "attention f32: n_heads %d not a multiple of n_kv_heads %d", n_heads, n_kv_heads);
  if (batch > 65535 || n_heads > 65535)
    QS_FAIL(QS_ERR_ARG, "attention f32: batch %d / n_heads %d > 65535", batch, n_heads);
  if (((uintptr_t)q | (uintptr_t)k | (uintptr_t)v | (uintptr_t)out) % 8)
    QS_FAIL(QS_ERR_ARG, "attention f32: q %p, k %p, v %p, out %p must be 8-byte aligned", (const void *)q,
            (const void *)k, (const void *)v, (void *)out);
  if (head_dim % 2 || head_dim > QS_ATT32_DMAX)
    QS_FAIL(QS_ERR_UNSUPPORTED, "attention f32: head_dim %d not supported (even, <= %d)", head_dim, QS_ATT32_DMAX);
  switch ((head_dim + 31) / 32) {
  case 1: return qs_attention_f32_launch<1>(q, k, v, out, batch, T, n_heads, n_kv_heads, head_dim, stream);
  case 2: return qs_attention_f32_launch<2>(q, k, v, out, batch, T, n_heads, n_kv_heads, head_dim, stream);
  case 3: return qs_attention_f32_launch<3>(q, k, v, out, batch, T, n_heads, n_kv_heads, head_dim, stream);
  case 4: return qs_attention_f32_launch<4>(q, k, v, out, batch, T, n_heads, n_kv_heads, head_dim, stream);
  case 5: return qs_attention_f32_launch<5>(q, k, v, out, batch, T, n_heads, n_kv_heads, head_dim, stream);
  case 6: return qs_attention_f32_launch<6>(q, k, v, out, batch, T, n_heads, n_kv_heads, head_dim, stream);
  case 7: return qs_attention_f32_launch<7>(q, k, v, out, batch, T, n_heads, n_kv_heads, head_dim, stream);
  default: return qs_attention_f32_launch<8>(q, k, v, out, batch, T, n_heads, n_kv_heads, head_dim, stream);
  }
fail:
  return status;
}
