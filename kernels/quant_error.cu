// quant_error.cu — see quant_error.h. Test: tests/test_gptq_cuda.c (label gpu).
#include "qs_cuda.h"
#include "quant_error.h"

constexpr int QS_QE_THREADS = 256;

__global__ void qs_qe_sub_kernel(const float *a, const float *b, float *d, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    d[i] = a[i] - b[i];
}

// out[r] = sum_k a[r, k] * b[r, k] in double: thread-strided partial sums, then a fixed tree.
__global__ void qs_qe_rowdot_kernel(const float *a, const float *b, int64_t K, double *out) {
  __shared__ double part[QS_QE_THREADS];
  const float *ar = a + blockIdx.x * K, *br = b + blockIdx.x * K;
  double s = 0.0;
  for (int64_t k = threadIdx.x; k < K; k += QS_QE_THREADS) s += (double)ar[k] * (double)br[k];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = QS_QE_THREADS / 2; w > 0; w /= 2) {
    if ((int)threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = part[0];
}

// Y [rows, K] = X [rows, K] · H [K, K] (H symmetric), TF32 tensor cores, fp32 accumulation.
static qs_status qs_qe_gemm(const float *X, const float *H, float *Y, int64_t rows, int64_t K, cublasHandle_t blas) {
  qs_status status = QS_OK;
  const float one = 1.0f, zero = 0.0f;
  // Column-major view: Yᵀ [K, rows] = Hᵀ [K, K] · Xᵀ [K, rows], and Hᵀ = H.
  QS_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)K, (int)rows, (int)K, &one, H, CUDA_R_32F, (int)K,
                               X, CUDA_R_32F, (int)K, &zero, Y, CUDA_R_32F, (int)K, CUBLAS_COMPUTE_32F_FAST_TF32,
                               CUBLAS_GEMM_DEFAULT));
fail:
  return status;
}

extern "C" qs_status qs_quant_error_cuda(const float *W0, const float *Q, const float *H, int64_t rows, int64_t K,
                                         double *num, double *den, cublasHandle_t blas, cudaStream_t stream) {
  qs_status status = QS_OK;
  float *D = NULL, *DH = NULL, *WH = NULL;
  size_t n = (size_t)rows * (size_t)K;
  if (rows <= 0) return QS_OK;
  if (rows > 2147483647 || K > 2147483647) QS_FAIL(QS_ERR_UNSUPPORTED, "quant error: %lld x %lld too large", (long long)rows, (long long)K);
  QS_CUBLAS_CHECK(cublasSetStream(blas, stream));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&D, n * sizeof(float), stream));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&DH, n * sizeof(float), stream));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&WH, n * sizeof(float), stream));
  qs_qe_sub_kernel<<<(unsigned)QS_MIN(QS_CEIL_DIV(n, (size_t)QS_QE_THREADS), (size_t)65535), QS_QE_THREADS, 0, stream>>>(
      W0, Q, D, n);
  QS_CUDA_CHECK(cudaGetLastError());
  QS_TRY(qs_qe_gemm(D, H, DH, rows, K, blas));
  QS_TRY(qs_qe_gemm(W0, H, WH, rows, K, blas));
  qs_qe_rowdot_kernel<<<(unsigned)rows, QS_QE_THREADS, 0, stream>>>(D, DH, K, num);
  QS_CUDA_CHECK(cudaGetLastError());
  qs_qe_rowdot_kernel<<<(unsigned)rows, QS_QE_THREADS, 0, stream>>>(W0, WH, K, den);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  if (D) cudaFreeAsync(D, stream);
  if (DH) cudaFreeAsync(DH, stream);
  if (WH) cudaFreeAsync(WH, stream);
  return status;
}
