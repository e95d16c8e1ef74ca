// residual.cu — residual add and dtype conversion, elementwise over a grid-stride loop; both are
// instantiated for every pair of F32/BF16/F16. Test: tests/test_kernels_fwd_cuda.c (label gpu).
#include "qs_cuda.h"
#include "qs_cuda_cvt.cuh"
#include "residual.h"

using qs_cvt::from_f32;
using qs_cvt::to_f32;

enum { QS_RESIDUAL_ADD, QS_RESIDUAL_CONVERT };

// ADD: a[i] = a[i] + b[i]; CONVERT: a[i] = b[i] (a: the written array).
template <int OP, typename A, typename B>
__global__ void qs_residual_kernel(A *a, const B *b, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float v = to_f32(b[i]);
    a[i] = from_f32<A>(OP == QS_RESIDUAL_ADD ? __fadd_rn(to_f32(a[i]), v) : v);
  }
}

template <int OP, typename A, typename B>
static qs_status qs_residual_launch(void *a, const void *b, size_t n, cudaStream_t stream) {
  qs_status status = QS_OK;
  const int threads = 256;
  const size_t want = (n + threads - 1) / threads;
  const int blocks = want < 65536 ? (int)want : 65536;
  qs_residual_kernel<OP, A, B><<<blocks, threads, 0, stream>>>((A *)a, (const B *)b, n);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

// The second dtype's dispatch; QS_ERR_UNSUPPORTED (reported by the caller) for other types.
template <int OP, typename A>
static qs_status qs_residual_dispatch_b(void *a, const void *b, qs_dtype bdt, size_t n, cudaStream_t stream) {
  switch (bdt) {
  case QS_DTYPE_F32: return qs_residual_launch<OP, A, float>(a, b, n, stream);
  case QS_DTYPE_BF16: return qs_residual_launch<OP, A, __nv_bfloat16>(a, b, n, stream);
  case QS_DTYPE_F16: return qs_residual_launch<OP, A, __half>(a, b, n, stream);
  default: return QS_ERR_UNSUPPORTED;
  }
}

template <int OP>
static qs_status qs_residual_dispatch(void *a, qs_dtype adt, const void *b, qs_dtype bdt, size_t n,
                                      cudaStream_t stream) {
  qs_status status = QS_OK;
  const char *what = OP == QS_RESIDUAL_ADD ? "residual add" : "convert";
  if (n == 0) QS_FAIL(QS_ERR_ARG, "%s: n must be positive", what);
  switch (adt) {
  case QS_DTYPE_F32: status = qs_residual_dispatch_b<OP, float>(a, b, bdt, n, stream); break;
  case QS_DTYPE_BF16: status = qs_residual_dispatch_b<OP, __nv_bfloat16>(a, b, bdt, n, stream); break;
  case QS_DTYPE_F16: status = qs_residual_dispatch_b<OP, __half>(a, b, bdt, n, stream); break;
  default: status = QS_ERR_UNSUPPORTED;
  }
  if (status == QS_ERR_UNSUPPORTED)
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: dtypes %s, %s not supported (F32, BF16, F16)", what, qs_dtype_name(adt),
            qs_dtype_name(bdt));
fail:
  return status;
}

extern "C" qs_status qs_residual_add_cuda(void *x, qs_dtype xdt, const void *y, qs_dtype ydt, size_t n,
                                          cudaStream_t stream) {
  return qs_residual_dispatch<QS_RESIDUAL_ADD>(x, xdt, y, ydt, n, stream);
}

extern "C" qs_status qs_convert_cuda(const void *src, qs_dtype sdt, void *dst, qs_dtype ddt, size_t n,
                                     cudaStream_t stream) {
  return qs_residual_dispatch<QS_RESIDUAL_CONVERT>(dst, ddt, src, sdt, n, stream);
}
