// linear.cu — y = x wᵀ as one cublasGemmEx (fp32 accumulate, beta = 0), then y += bias in fp32 by a
// small elementwise kernel. Test: tests/test_kernels_fwd2_cuda.c (label gpu).
//
// Row-major seen by column-major cuBLAS: y [M, N] row-major is yᵀ column-major (ld N), x [M, K] is
// xᵀ (ld K) and w [N, K] is wᵀ (ld K); yᵀ = w · xᵀ = op(wᵀ) · xᵀ with op = transpose:
// GemmEx(OP_T, OP_N, m = N, n = M, k = K, A = w, lda = K, B = x, ldb = K, C = y, ldc = N).
//
// Why not the bias through beta = 1 (y pre-filled with it, as torch.addmm does): measured on an
// H100 (CUDA 13), bf16/f16 y with beta = 1 at M 64, N 128, K 256 was off by up to ~1.2 ulp, as if
// alpha·acc were rounded to the output type before C is added: one rounding is not guaranteed
// that way either, so the bias is a separate add whose two roundings are stated.
#include <limits.h>
#include <stdint.h>

#include "linear.h"
#include "qs_cuda.h"
#include "qs_cuda_cvt.cuh"

using qs_cvt::from_f32;
using qs_cvt::to_f32;

// y[i] = round_T(float(y[i]) + float(bias[i % N])) for i < M N: one IEEE fp32 add per element.
template <typename T> __global__ void qs_linear_bias_kernel(T *y, const T *__restrict__ bias, size_t MN, size_t N) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < MN; i += (size_t)gridDim.x * blockDim.x)
    y[i] = from_f32<T>(__fadd_rn(to_f32(y[i]), to_f32(bias[i % N])));
}

template <typename T>
static qs_status qs_linear_bias_launch(void *y, const void *bias, size_t M, size_t N, cudaStream_t stream) {
  qs_status status = QS_OK;
  const int threads = 256;
  const size_t want = (M * N + threads - 1) / threads;
  const int blocks = want < 65536 ? (int)want : 65536;
  qs_linear_bias_kernel<T><<<blocks, threads, 0, stream>>>((T *)y, (const T *)bias, M * N, N);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

// The GEMM under the caller's math mode plus DISALLOW_REDUCED_PRECISION_REDUCTION; the mode is
// restored on every path (it only steers cuBLAS's choice at enqueue time).
static qs_status qs_linear_gemm(const void *x, const void *w, void *y, int M, int N, int K, cudaDataType_t t,
                                qs_dtype dt, cublasHandle_t blas) {
  qs_status status = QS_OK;
  const float one = 1.0f, zero = 0.0f;
  cublasMath_t mode = CUBLAS_DEFAULT_MATH;
  int mode_set = 0;
  QS_CUBLAS_CHECK(cublasGetMathMode(blas, &mode));
  // Low bits: 1 = fast 16F, 3 = TF32, 4 = BF16x9 emulation (and mixes): all lose fp32 bits.
  if (dt == QS_DTYPE_F32 && ((int)mode & 0x7) != CUBLAS_DEFAULT_MATH && ((int)mode & 0x7) != CUBLAS_PEDANTIC_MATH)
    QS_FAIL(QS_ERR_ARG, "linear: the cuBLAS handle's math mode %d allows reduced fp32 precision (TF32 or "
            "emulation); F32 needs CUBLAS_DEFAULT_MATH", (int)mode);
  QS_CUBLAS_CHECK(
      cublasSetMathMode(blas, (cublasMath_t)((int)mode | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
  mode_set = 1;
  QS_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w, t, K, x, t, K, &zero, y, t, N,
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
fail:
  if (mode_set && cublasSetMathMode(blas, mode) != CUBLAS_STATUS_SUCCESS && status == QS_OK)
    status = qs_report(QS_ERR_CUDA, __FILE__, __LINE__, __func__, "linear: cublasSetMathMode(%d) failed", (int)mode);
  return status;
}

extern "C" qs_status qs_linear_cuda(const void *x, const void *w, const void *bias, void *y, int64_t M, int64_t N,
                                    int64_t K, qs_dtype dt, cublasHandle_t blas, cudaStream_t stream) {
  qs_status status = QS_OK;
  cudaDataType_t t = CUDA_R_32F;
  if (M <= 0 || N <= 0 || K <= 0 || M > INT_MAX || N > INT_MAX || K > INT_MAX)
    QS_FAIL(QS_ERR_ARG, "linear: M %lld, N %lld, K %lld must be in [1, INT_MAX]", (long long)M, (long long)N,
            (long long)K);
  switch (dt) {
  case QS_DTYPE_F32: t = CUDA_R_32F; break;
  case QS_DTYPE_BF16: t = CUDA_R_16BF; break;
  case QS_DTYPE_F16: t = CUDA_R_16F; break;
  default: QS_FAIL(QS_ERR_UNSUPPORTED, "linear: dtype %s not supported (F32, BF16, F16)", qs_dtype_name(dt));
  }
  QS_CUBLAS_CHECK(cublasSetStream(blas, stream));
  QS_TRY(qs_linear_gemm(x, w, y, (int)M, (int)N, (int)K, t, dt, blas));
  if (bias && dt == QS_DTYPE_F32) QS_TRY(qs_linear_bias_launch<float>(y, bias, (size_t)M, (size_t)N, stream));
  if (bias && dt == QS_DTYPE_BF16) QS_TRY(qs_linear_bias_launch<__nv_bfloat16>(y, bias, (size_t)M, (size_t)N, stream));
  if (bias && dt == QS_DTYPE_F16) QS_TRY(qs_linear_bias_launch<__half>(y, bias, (size_t)M, (size_t)N, stream));
fail:
  return status;
}
