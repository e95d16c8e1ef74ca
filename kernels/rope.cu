// rope.cu — rotary position embedding, one thread block per token: the block computes cos/sin of
// its position once into shared memory (head_dim/2 values), then rotates every head's pairs.
// Test: tests/test_kernels_fwd_cuda.c (label gpu).
#include "qs_cuda.h"
#include "qs_cuda_cvt.cuh"
#include "rope.h"

using qs_cvt::from_f32;
using qs_cvt::to_f32;

constexpr int QS_ROPE_MAX_HALF = 256; // head_dim <= 512

// x: [batch * T, n_heads, head_dim]; row r is token r % T at position pos0 + r % T.
template <typename T>
__global__ void qs_rope_kernel(T *__restrict__ x, int T_len, int n_heads, int head_dim,
                               const float *__restrict__ inv_freq, int pos0) {
  __shared__ float cs[QS_ROPE_MAX_HALF], sn[QS_ROPE_MAX_HALF];
  const int h = head_dim / 2;
  const float pos = (float)(pos0 + (int)(blockIdx.x % (unsigned)T_len));
  for (int i = threadIdx.x; i < h; i += blockDim.x) {
    // Full-range sinf/cosf (no fast math): <= 2 ulp, the argument exactly the reference's float.
    float s, c;
    sincosf(__fmul_rn(pos, inv_freq[i]), &s, &c);
    cs[i] = c;
    sn[i] = s;
  }
  __syncthreads();
  T *row = x + (size_t)blockIdx.x * n_heads * head_dim;
  for (int k = threadIdx.x; k < n_heads * h; k += blockDim.x) {
    const int hd = k / h, i = k - hd * h;
    T *xh = row + (size_t)hd * head_dim;
    const float x0 = to_f32(xh[i]), x1 = to_f32(xh[i + h]), c = cs[i], s = sn[i];
    // The reference's order and roundings: x0*c + (-x1)*s and x1*c + x0*s, no FMA contraction.
    xh[i] = from_f32<T>(__fadd_rn(__fmul_rn(x0, c), __fmul_rn(-x1, s)));
    xh[i + h] = from_f32<T>(__fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s)));
  }
}

template <typename T>
static qs_status qs_rope_launch(void *x, int batch, int T_len, int n_heads, int head_dim, const float *inv_freq,
                                int pos0, cudaStream_t stream) {
  qs_status status = QS_OK;
  const int pairs = n_heads * (head_dim / 2);
  const int threads = pairs >= 256 ? 256 : ((pairs + 31) / 32) * 32;
  qs_rope_kernel<T><<<batch * T_len, threads, 0, stream>>>((T *)x, T_len, n_heads, head_dim, inv_freq, pos0);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

extern "C" qs_status qs_rope_cuda(void *x, int batch, int T, int n_heads, int head_dim, const float *inv_freq,
                                  int pos0, qs_dtype dt, cudaStream_t stream) {
  qs_status status = QS_OK;
  if (batch <= 0 || T <= 0 || n_heads <= 0 || head_dim <= 0 || head_dim % 2)
    QS_FAIL(QS_ERR_ARG, "rope: batch %d, T %d, n_heads %d must be positive and head_dim %d positive and even",
            batch, T, n_heads, head_dim);
  if (head_dim / 2 > QS_ROPE_MAX_HALF)
    QS_FAIL(QS_ERR_UNSUPPORTED, "rope: head_dim %d > %d", head_dim, 2 * QS_ROPE_MAX_HALF);
  if (pos0 < 0 || (long long)pos0 + T > (1LL << 24))
    QS_FAIL(QS_ERR_ARG, "rope: positions %d..%lld not exact in fp32", pos0, (long long)pos0 + T - 1);
  if ((long long)batch * T > 0x7FFFFFFFLL) QS_FAIL(QS_ERR_ARG, "rope: batch %d x T %d rows too many", batch, T);
  switch (dt) {
  case QS_DTYPE_F32: return qs_rope_launch<float>(x, batch, T, n_heads, head_dim, inv_freq, pos0, stream);
  case QS_DTYPE_BF16: return qs_rope_launch<__nv_bfloat16>(x, batch, T, n_heads, head_dim, inv_freq, pos0, stream);
  case QS_DTYPE_F16: return qs_rope_launch<__half>(x, batch, T, n_heads, head_dim, inv_freq, pos0, stream);
  default: QS_FAIL(QS_ERR_UNSUPPORTED, "rope: dtype %s not supported", qs_dtype_name(dt));
  }
fail:
  return status;
}
