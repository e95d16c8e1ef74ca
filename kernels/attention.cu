// attention.cu — causal GQA attention, flash-attention-2 style. One block of 4 warps per (query tile
// of 64 rows, head, sequence); each warp owns 16 query rows. K/V tiles of 64 keys stream through
// shared memory (cp.async, double-buffered); S = Q K^T and O += P V run on tensor cores
// (mma.sync m16n8k16, fp32 accumulate); the softmax is online in fp32 (running max and sum per
// row), so nothing of size T x T is stored. Test and benchmark: tests/test_kernels_fwd_cuda.c
// (label gpu; `test_kernels_fwd_cuda --bench` prints TFLOP/s).
// Measured (H100 SXM, bf16, T 2048, 32/8 heads, D 128, causal): 147 / 167 / 180 / 188 TFLOP/s for
// B = 1 / 2 / 4 / 8; torch SDPA (MHA, same FLOPs) 285..489 on the same card. Limit: each ldmatrix.x4
// feeds two mma (16 rows per warp), so shared-memory reads take as long as the tensor cores; 32
// rows per warp (or wgmma with K/V read straight from shared memory) is the next step.
#include <math.h>
#include <stdint.h>

#include "attention.h"
#include "attention_f32.h"
#include "qs_cuda.h"
#include "qs_cuda_cvt.cuh"

constexpr int QS_ATT_B = 64;        // query rows per block = keys per tile (the causal mask then
                                    // touches only the diagonal tile, and every tile a row
                                    // visits holds at least one unmasked key: the max is finite)
constexpr int QS_ATT_THREADS = 128; // 4 warps x 16 query rows

// Tile geometry for head_dim D: columns padded to DP (the mma k step, 16) and rows to LD elements
// (+16 bytes: the 8 row addresses of an ldmatrix land in distinct bank groups).
template <int D> struct qs_att_dims {
  static constexpr int DP = (D + 15) / 16 * 16;
  static constexpr int LD = DP + 8;
  static constexpr int TILE = QS_ATT_B * LD;                   // elements of one tile
  static constexpr int SMEM = 5 * TILE * 2;                    // Q, K x2, V x2 (2-byte elements)
};

// ---- PTX wrappers (sm_80+) ---------------------------------------------------------------------
__device__ __forceinline__ uint32_t qs_att_smem(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void qs_att_cp16(void *dst, const void *src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(qs_att_smem(dst)), "l"(src));
}
__device__ __forceinline__ void qs_att_commit(void) { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void qs_att_wait(void) {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void qs_att_ldsm(uint32_t r[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(qs_att_smem(p)));
}
__device__ __forceinline__ void qs_att_ldsm_t(uint32_t r[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(qs_att_smem(p)));
}

// c[16x8] += a[16x16] b[16x8], fp32 accumulators.
template <typename T> __device__ __forceinline__ void qs_att_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void qs_att_mma<__nv_bfloat16>(float c[4], const uint32_t a[4], uint32_t b0,
                                                                     uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void qs_att_mma<__half>(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two fp32 values rounded to T and packed (lo in the low half: the lower column of a fragment).
template <typename T> __device__ __forceinline__ uint32_t qs_att_pack(float lo, float hi);
template <> __device__ __forceinline__ uint32_t qs_att_pack<__nv_bfloat16>(float lo, float hi) {
  return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
         ((uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16);
}
template <> __device__ __forceinline__ uint32_t qs_att_pack<__half>(float lo, float hi) {
  return (uint32_t)__half_as_ushort(__float2half_rn(lo)) | ((uint32_t)__half_as_ushort(__float2half_rn(hi)) << 16);
}

// ---- tiles -------------------------------------------------------------------------------------
// Rows [row0, row0 + 64) of a strided [T, D] matrix (row r at src + r * stride) into a [64][LD]
// shared tile; rows >= T and columns D..DP are zero (they meet zero or masked weights, and a
// garbage NaN there would still poison 0 * NaN).
template <typename T, int D>
__device__ __forceinline__ void qs_att_load_tile(T *dst, const T *src, size_t stride, int row0, int T_len) {
  constexpr int CH = qs_att_dims<D>::DP / 8, LD = qs_att_dims<D>::LD; // 16-byte chunks per row
  for (int c = threadIdx.x; c < QS_ATT_B * CH; c += QS_ATT_THREADS) {
    const int r = c / CH, col = (c % CH) * 8;
    T *d = dst + r * LD + col;
    if (row0 + r < T_len && col < D) qs_att_cp16(d, src + (size_t)(row0 + r) * stride + col);
    else *(uint4 *)d = make_uint4(0u, 0u, 0u, 0u);
  }
}

// Per-warp state: Q fragments (16 rows x DP), output accumulators (16 x DP), running max m and
// sum l of this thread's two rows (lane/4 and lane/4 + 8 of the warp's 16).
template <int D> struct qs_att_state {
  uint32_t qf[qs_att_dims<D>::DP / 16][4];
  float o[qs_att_dims<D>::DP / 8][4];
  float m[2], l[2];
};

// S[16 x 64] = Q K^T for this warp's rows against one key tile.
template <typename T, int D>
__device__ __forceinline__ void qs_att_scores(float s[8][4], const qs_att_state<D> &st, const T *kb, int lane) {
  constexpr int LD = qs_att_dims<D>::LD;
#pragma unroll
  for (int nt = 0; nt < 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < qs_att_dims<D>::DP / 16; kk++) {
#pragma unroll
    for (int np = 0; np < 4; np++) { // 16 keys: matrices (keys 0-7 | 8-15) x (d 0-7 | 8-15)
      uint32_t r[4];
      qs_att_ldsm(r, kb + (np * 16 + (lane / 16) * 8 + lane % 8) * LD + kk * 16 + ((lane / 8) % 2) * 8);
      qs_att_mma<T>(s[2 * np], st.qf[kk], r[0], r[1]);
      qs_att_mma<T>(s[2 * np + 1], st.qf[kk], r[2], r[3]);
    }
  }
}

// Online softmax over one tile: new running max, rescale of l and o, s <- exp(scale (s - max)).
template <int D>
__device__ __forceinline__ void qs_att_softmax(float s[8][4], qs_att_state<D> &st, float scale_log2) {
  float mx[2] = {st.m[0], st.m[1]}, rs[2] = {0.0f, 0.0f};
#pragma unroll
  for (int nt = 0; nt < 8; nt++) {
    mx[0] = fmaxf(mx[0], fmaxf(s[nt][0], s[nt][1]));
    mx[1] = fmaxf(mx[1], fmaxf(s[nt][2], s[nt][3]));
  }
#pragma unroll
  for (int r = 0; r < 2; r++) { // a row's 64 columns live in the 4 lanes of a quad
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
  }
  float alpha[2], msc[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    alpha[r] = exp2f((st.m[r] - mx[r]) * scale_log2); // 0 on the first tile (m = -inf)
    st.m[r] = mx[r];
    msc[r] = mx[r] * scale_log2;
  }
#pragma unroll
  for (int nt = 0; nt < 8; nt++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      s[nt][e] = exp2f(fmaf(s[nt][e], scale_log2, -msc[e / 2])); // masked -inf -> 0
      rs[e / 2] += s[nt][e];
    }
  }
#pragma unroll
  for (int r = 0; r < 2; r++) st.l[r] = st.l[r] * alpha[r] + rs[r];
#pragma unroll
  for (int dt = 0; dt < qs_att_dims<D>::DP / 8; dt++) {
    st.o[dt][0] *= alpha[0];
    st.o[dt][1] *= alpha[0];
    st.o[dt][2] *= alpha[1];
    st.o[dt][3] *= alpha[1];
  }
}

// O[16 x DP] += P[16 x 64] V[64 x DP]; the S accumulator layout of two adjacent n-tiles is the
// A-fragment layout of one k step, so P goes from registers straight into the mma.
template <typename T, int D>
__device__ __forceinline__ void qs_att_pv(const float s[8][4], qs_att_state<D> &st, const T *vb, int lane) {
  constexpr int LD = qs_att_dims<D>::LD;
#pragma unroll
  for (int kk = 0; kk < 4; kk++) {
    const uint32_t a[4] = {qs_att_pack<T>(s[2 * kk][0], s[2 * kk][1]), qs_att_pack<T>(s[2 * kk][2], s[2 * kk][3]),
                           qs_att_pack<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                           qs_att_pack<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
    for (int dp = 0; dp < qs_att_dims<D>::DP / 16; dp++) { // matrices (keys 0-7 | 8-15) x (d 0-7 | 8-15)
      uint32_t r[4];
      qs_att_ldsm_t(r, vb + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * LD + dp * 16 + (lane / 16) * 8);
      qs_att_mma<T>(st.o[2 * dp], a, r[0], r[1]);
      qs_att_mma<T>(st.o[2 * dp + 1], a, r[2], r[3]);
    }
  }
}

// One key tile for one warp: scores, causal mask on the diagonal tile, softmax, P V.
template <typename T, int D>
__device__ __forceinline__ void qs_att_tile(qs_att_state<D> &st, const T *kb, const T *vb, bool diagonal, int qrow,
                                            int key0, float scale_log2, int lane) {
  float s[8][4];
  qs_att_scores<T, D>(s, st, kb, lane);
  if (diagonal) {
#pragma unroll
    for (int nt = 0; nt < 8; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++)
        if (key0 + nt * 8 + (lane % 4) * 2 + (e & 1) > qrow + (e / 2) * 8) s[nt][e] = -INFINITY;
  }
  qs_att_softmax<D>(s, st, scale_log2);
  qs_att_pv<T, D>(s, st, vb, lane);
}

// o / l rounded to T, staged through this warp's 16 rows of the Q tile, stored 16 bytes at a time.
template <typename T, int D>
__device__ __forceinline__ void qs_att_store(qs_att_state<D> &st, T *ow, T *og, size_t stride, int rows, int lane) {
  constexpr int LD = qs_att_dims<D>::LD;
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    st.l[r] += __shfl_xor_sync(0xffffffffu, st.l[r], 1);
    st.l[r] += __shfl_xor_sync(0xffffffffu, st.l[r], 2);
    inv[r] = 1.0f / st.l[r];
  }
#pragma unroll
  for (int dt = 0; dt < qs_att_dims<D>::DP / 8; dt++) {
    const int col = dt * 8 + (lane % 4) * 2;
    *(uint32_t *)(ow + (lane / 4) * LD + col) = qs_att_pack<T>(st.o[dt][0] * inv[0], st.o[dt][1] * inv[0]);
    *(uint32_t *)(ow + (lane / 4 + 8) * LD + col) = qs_att_pack<T>(st.o[dt][2] * inv[1], st.o[dt][3] * inv[1]);
  }
  __syncwarp();
  for (int c = lane; c < 16 * (D / 8); c += 32) {
    const int r = c / (D / 8), col = (c % (D / 8)) * 8;
    if (r < rows) *(uint4 *)(og + (size_t)r * stride + col) = *(const uint4 *)(ow + r * LD + col);
  }
}

template <typename T, int D>
__global__ void __launch_bounds__(QS_ATT_THREADS)
    qs_attention_kernel(const T *__restrict__ q, const T *__restrict__ k, const T *__restrict__ v, T *out, int T_len,
                        int n_heads, int n_kv_heads, float scale_log2) {
  constexpr int TILE = qs_att_dims<D>::TILE, LD = qs_att_dims<D>::LD;
  extern __shared__ __align__(16) unsigned char qs_att_smem_raw[];
  T *qs = (T *)qs_att_smem_raw, *ks = qs + TILE, *vs = ks + 2 * TILE;
  const int n_qt = (T_len + QS_ATT_B - 1) / QS_ATT_B;
  const int qt = n_qt - 1 - (int)blockIdx.x; // longest rows (most key tiles) first
  const int h = blockIdx.y, b = blockIdx.z, hk = h / (n_heads / n_kv_heads);
  const size_t qstride = (size_t)n_heads * D, kvstride = (size_t)n_kv_heads * D;
  const T *qg = q + (size_t)b * T_len * qstride + (size_t)h * D;
  const T *kg = k + (size_t)b * T_len * kvstride + (size_t)hk * D;
  const T *vg = v + (size_t)b * T_len * kvstride + (size_t)hk * D;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = qt * QS_ATT_B, wrow0 = row0 + warp * 16;
  const bool active = wrow0 < T_len; // warps wholly past T only help load

  qs_att_load_tile<T, D>(qs, qg, qstride, row0, T_len);
  qs_att_load_tile<T, D>(ks, kg, kvstride, 0, T_len);
  qs_att_load_tile<T, D>(vs, vg, kvstride, 0, T_len);
  qs_att_commit();

  qs_att_state<D> st;
#pragma unroll
  for (int dt = 0; dt < qs_att_dims<D>::DP / 8; dt++) st.o[dt][0] = st.o[dt][1] = st.o[dt][2] = st.o[dt][3] = 0.0f;
  st.m[0] = st.m[1] = -INFINITY;
  st.l[0] = st.l[1] = 0.0f;

  for (int kt = 0; kt <= qt; kt++) { // causal: key tiles 0..qt
    const int buf = kt & 1;
    if (kt < qt) { // prefetch the next K/V tile into the other buffer
      qs_att_load_tile<T, D>(ks + (buf ^ 1) * TILE, kg, kvstride, (kt + 1) * QS_ATT_B, T_len);
      qs_att_load_tile<T, D>(vs + (buf ^ 1) * TILE, vg, kvstride, (kt + 1) * QS_ATT_B, T_len);
      qs_att_commit();
      qs_att_wait<1>();
    } else {
      qs_att_wait<0>();
    }
    __syncthreads();
    if (active) {
      if (kt == 0) {
#pragma unroll
        for (int kk = 0; kk < qs_att_dims<D>::DP / 16; kk++) // (rows 0-7 | 8-15) x (d 0-7 | 8-15)
          qs_att_ldsm(st.qf[kk], qs + (warp * 16 + lane % 16) * LD + kk * 16 + (lane / 16) * 8);
      }
      qs_att_tile<T, D>(st, ks + buf * TILE, vs + buf * TILE, kt == qt, wrow0 + lane / 4, kt * QS_ATT_B, scale_log2,
                        lane);
    }
    __syncthreads(); // the next iteration's prefetch overwrites this buffer
  }
  if (active)
    qs_att_store<T, D>(st, qs + warp * 16 * LD, out + (size_t)b * T_len * qstride + (size_t)wrow0 * qstride + (size_t)h * D,
                       qstride, T_len - wrow0, lane);
}

template <typename T, int D>
static qs_status qs_attention_launch(const void *q, const void *k, const void *v, void *out, int batch, int T_len,
                                     int n_heads, int n_kv_heads, cudaStream_t stream) {
  qs_status status = QS_OK;
  const int smem = qs_att_dims<D>::SMEM;
  // head_dim**-0.5 as the reference's float, times log2(e): softmax through exp2.
  const float scale_log2 = (float)(1.0 / sqrt((double)D)) * 1.4426950408889634f;
  const dim3 grid((unsigned)((T_len + QS_ATT_B - 1) / QS_ATT_B), (unsigned)n_heads, (unsigned)batch);
  QS_CUDA_CHECK(cudaFuncSetAttribute(qs_attention_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  qs_attention_kernel<T, D><<<grid, QS_ATT_THREADS, smem, stream>>>((const T *)q, (const T *)k, (const T *)v, (T *)out,
                                                                    T_len, n_heads, n_kv_heads, scale_log2);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

template <typename T>
static qs_status qs_attention_dispatch(const void *q, const void *k, const void *v, void *out, int batch, int T_len,
                                       int n_heads, int n_kv_heads, int head_dim, cudaStream_t stream) {
  switch (head_dim) {
  case 8: return qs_attention_launch<T, 8>(q, k, v, out, batch, T_len, n_heads, n_kv_heads, stream);
  case 16: return qs_attention_launch<T, 16>(q, k, v, out, batch, T_len, n_heads, n_kv_heads, stream);
  case 32: return qs_attention_launch<T, 32>(q, k, v, out, batch, T_len, n_heads, n_kv_heads, stream);
  case 48: return qs_attention_launch<T, 48>(q, k, v, out, batch, T_len, n_heads, n_kv_heads, stream);
  case 64: return qs_attention_launch<T, 64>(q, k, v, out, batch, T_len, n_heads, n_kv_heads, stream);
  case 96: return qs_attention_launch<T, 96>(q, k, v, out, batch, T_len, n_heads, n_kv_heads, stream);
  case 128: return qs_attention_launch<T, 128>(q, k, v, out, batch, T_len, n_heads, n_kv_heads, stream);
  default: return QS_ERR_UNSUPPORTED; // reported by the caller
  }
}

extern "C" qs_status qs_attention_cuda(const void *q, const void *k, const void *v, void *out, int batch, int T,
                                       int n_heads, int n_kv_heads, int head_dim, qs_dtype dt, cudaStream_t stream) {
  qs_status status = QS_OK;
  if (dt == QS_DTYPE_F32) // the all-fp32 mode: its own scalar kernel, with its own checks
    return qs_attention_f32_cuda((const float *)q, (const float *)k, (const float *)v, (float *)out, batch, T, n_heads,
                                 n_kv_heads, head_dim, stream);
  if (batch <= 0 || T <= 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0)
    QS_FAIL(QS_ERR_ARG, "attention: batch %d, T %d, n_heads %d, n_kv_heads %d, head_dim %d must be positive",
            batch, T, n_heads, n_kv_heads, head_dim);
  if (n_heads % n_kv_heads)
    QS_FAIL(QS_ERR_ARG, "attention: n_heads %d not a multiple of n_kv_heads %d", n_heads, n_kv_heads);
  if (batch > 65535 || n_heads > 65535) QS_FAIL(QS_ERR_ARG, "attention: batch %d / n_heads %d > 65535", batch, n_heads);
  if (((uintptr_t)q | (uintptr_t)k | (uintptr_t)v | (uintptr_t)out) % 16)
    QS_FAIL(QS_ERR_ARG, "attention: q %p, k %p, v %p, out %p must be 16-byte aligned", q, k, v, out);
  if (dt == QS_DTYPE_BF16)
    status = qs_attention_dispatch<__nv_bfloat16>(q, k, v, out, batch, T, n_heads, n_kv_heads, head_dim, stream);
  else if (dt == QS_DTYPE_F16)
    status = qs_attention_dispatch<__half>(q, k, v, out, batch, T, n_heads, n_kv_heads, head_dim, stream);
  else
    QS_FAIL(QS_ERR_UNSUPPORTED, "attention: dtype %s not supported (F32, BF16, F16)", qs_dtype_name(dt));
  if (status == QS_ERR_UNSUPPORTED)
    QS_FAIL(QS_ERR_UNSUPPORTED, "attention: head_dim %d not supported (8, 16, 32, 48, 64, 96, 128)", head_dim);
fail:
  return status;
}
