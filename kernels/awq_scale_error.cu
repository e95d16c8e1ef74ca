// awq_scale_error.cu — see awq_scale_error.h. Test: tests/test_awq_cuda.c (label gpu), against
// qs_awq_scaled_error_ref.
#include "awq_scale_error.h"
#include "qs_cuda.h"
#include "rtn.h"

constexpr int QS_ASE_THREADS = 256;

// Q[i, k] = W[i % nrows, k] · S[i / nrows, k] for the n · nrows rows of every candidate.
__global__ void qs_ase_scale_kernel(const float *W, const float *S, float *Q, int64_t nrows, int64_t K, size_t total) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    size_t row = i / (size_t)K, k = i % (size_t)K;
    Q[i] = W[(row % (size_t)nrows) * (size_t)K + k] * S[(row / (size_t)nrows) * (size_t)K + k];
  }
}

// Q[i, k] (the rounded scaled values) becomes d = W[i % nrows, k] - Q[i, k] / S[i / nrows, k].
__global__ void qs_ase_diff_kernel(const float *W, const float *S, float *Q, int64_t nrows, int64_t K, size_t total) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    size_t row = i / (size_t)K, k = i % (size_t)K;
    Q[i] = W[(row % (size_t)nrows) * (size_t)K + k] - Q[i] / S[(row / (size_t)nrows) * (size_t)K + k];
  }
}

// out[r] = Σ_k a[r, k] · b[r, k] in double: thread-strided partial sums, then a fixed tree.
__global__ void qs_ase_rowdot_kernel(const float *a, const float *b, int64_t K, double *out) {
  __shared__ double part[QS_ASE_THREADS];
  const float *ar = a + blockIdx.x * K, *br = b + blockIdx.x * K;
  double s = 0.0;
  for (int64_t k = threadIdx.x; k < K; k += QS_ASE_THREADS) s += (double)ar[k] * (double)br[k];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = QS_ASE_THREADS / 2; w > 0; w /= 2) {
    if ((int)threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = part[0];
}

extern "C" qs_status qs_awq_scaled_error_cuda(const struct qs_grid *g, const float *H, int64_t K, const float *W,
                                              int64_t nrows, const float *S, int n, double *err, int tf32,
                                              cublasHandle_t blas, cudaStream_t stream) {
  qs_status status = QS_OK;
  const int64_t M = nrows * (int64_t)n, gs = g->group_size <= 0 ? K : g->group_size, G = QS_CEIL_DIV(K, gs);
  const size_t total = (size_t)M * (size_t)K;
  const unsigned blocks = (unsigned)QS_MIN(QS_CEIL_DIV(total, (size_t)QS_ASE_THREADS), (size_t)65535);
  const float one = 1.0f, zero = 0.0f;
  float *Q = NULL, *QH = NULL, *scales = NULL;
  uint8_t *codes = NULL, *zeros = NULL;
  if (M <= 0) return QS_OK;
  if (M > 2147483647 || K > 2147483647)
    QS_FAIL(QS_ERR_UNSUPPORTED, "awq scale error: %lld x %lld too large", (long long)M, (long long)K);
  QS_CUBLAS_CHECK(cublasSetStream(blas, stream));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&Q, total * sizeof(float), stream));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&QH, total * sizeof(float), stream));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&codes, total, stream));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&scales, (size_t)(M * G) * sizeof(float), stream));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&zeros, (size_t)(M * G), stream));
  qs_ase_scale_kernel<<<blocks, QS_ASE_THREADS, 0, stream>>>(W, S, Q, nrows, K, total);
  QS_CUDA_CHECK(cudaGetLastError());
  QS_TRY(qs_rtn_quantize_cuda(g, Q, M, K, 0, codes, scales, zeros, stream));
  qs_ase_diff_kernel<<<blocks, QS_ASE_THREADS, 0, stream>>>(W, S, Q, nrows, K, total);
  QS_CUDA_CHECK(cudaGetLastError());
  // Column-major view: (DH)ᵀ [K, M] = Hᵀ [K, K] · Dᵀ [K, M], and Hᵀ = H.
  QS_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)K, (int)M, (int)K, &one, H, CUDA_R_32F, (int)K, Q,
                               CUDA_R_32F, (int)K, &zero, QH, CUDA_R_32F, (int)K,
                               tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  qs_ase_rowdot_kernel<<<(unsigned)M, QS_ASE_THREADS, 0, stream>>>(Q, QH, K, err);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  if (Q) cudaFreeAsync(Q, stream);
  if (QH) cudaFreeAsync(QH, stream);
  if (codes) cudaFreeAsync(codes, stream);
  if (scales) cudaFreeAsync(scales, stream);
  if (zeros) cudaFreeAsync(zeros, stream);
  return status;
}
