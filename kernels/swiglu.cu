// swiglu.cu — SwiGLU, elementwise over a grid-stride loop (memory bound: 3 accesses per element).
// Test: tests/test_kernels_fwd_cuda.c (label gpu).
#include "qs_cuda.h"
#include "qs_cuda_cvt.cuh"
#include "swiglu.h"

using qs_cvt::from_f32;
using qs_cvt::to_f32;

template <typename T>
__global__ void qs_swiglu_kernel(const T *gate, const T *up, T *out, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const float g = to_f32(gate[i]), u = to_f32(up[i]);
    // expf (<= 2 ulp) and IEEE division; exp(-g) = inf for g < -88.7 gives -0, as the reference.
    out[i] = from_f32<T>(__fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u));
  }
}

template <typename T>
static qs_status qs_swiglu_launch(const void *gate, const void *up, void *out, size_t n, cudaStream_t stream) {
  qs_status status = QS_OK;
  const int threads = 256;
  const size_t want = (n + threads - 1) / threads;
  const int blocks = want < 65536 ? (int)want : 65536; // grid-stride beyond 16M elements
  qs_swiglu_kernel<T><<<blocks, threads, 0, stream>>>((const T *)gate, (const T *)up, (T *)out, n);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

extern "C" qs_status qs_swiglu_cuda(const void *gate, const void *up, void *out, size_t n, qs_dtype dt,
                                    cudaStream_t stream) {
  qs_status status = QS_OK;
  if (n == 0) QS_FAIL(QS_ERR_ARG, "swiglu: n must be positive");
  switch (dt) {
  case QS_DTYPE_F32: return qs_swiglu_launch<float>(gate, up, out, n, stream);
  case QS_DTYPE_BF16: return qs_swiglu_launch<__nv_bfloat16>(gate, up, out, n, stream);
  case QS_DTYPE_F16: return qs_swiglu_launch<__half>(gate, up, out, n, stream);
  default: QS_FAIL(QS_ERR_UNSUPPORTED, "swiglu: dtype %s not supported", qs_dtype_name(dt));
  }
fail:
  return status;
}
