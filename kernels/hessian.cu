// hessian.cu — GPTQ Hessian S += XᵀX on tensor cores (bf16/f16 in, fp32 accumulate) or in fp32, and
// its finalization H = (2/n) S mirrored. Test and benchmark: tests/test_gptq_cuda.c (label gpu;
// `test_gptq_cuda --bench` prints seconds and TFLOP/s per llama shape).
//
// Row-major S and X seen by column-major cuBLAS: X [rows, K] row-major is Xᵀ column-major (ld K),
// so C = A·Bᵀ with A = B = that matrix is XᵀX; a row-major block S[r0.., c0..] is the column-major
// block at (c0, r0). The row-major upper triangle is the column-major lower one.
//
// UPPER in 16-bit, two shapes of the same sum (each S entry is one fp32 dot product over the rows):
//  - K >= 4·B (B = 2048): bands. Band b is rows [b0, b0+B) of S from column b0 on, one GemmEx of
//    (K - b0) x B x rows: a few large GEMMs that run at full-GEMM speed; work (nb+1)/(2 nb) of the
//    full product with nb = K/B bands (57 % at K = 14336, 54 % at 28672). On an H100 (262144
//    tokens): 96 ms at K = 14336 and 338 ms at 28672 (~85 % of 800 TFLOP/s executed) against 146
//    and 632 ms for one full GEMM; the batched tiles below reached only ~50 % of the tensor-core
//    rate at K >= 14336 (139 / 595 ms), hence bands for large K. (B = 1024 measured 2-6 % faster
//    at K >= 8192, but slower than the tiles at 4096.)
//  - smaller K: the upper T x T tiles (T = 256, bi <= bj) as one cublasGemmBatchedEx (all tiles the
//    same shape, so one launch fills the machine where bands would be too few and too small); the
//    columns past the last whole tile, if any, are one more GemmEx over all rows of S. Work
//    (nt+1)/(2 nt) with nt = K/T (53 % at K = 4096: 7.6 ms vs 10.7 ms for the full GEMM, H100).
#include <limits.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "hessian.h"
#include "qs_cuda.h"

// Tile side of the UPPER 16-bit path (a multiple of 8 keeps the tiles 16-byte aligned for the
// tensor cores). Larger tiles run closer to peak per tile; smaller ones waste less on the diagonal
// and fill the machine better at small K. QS_HESSIAN_TILE overrides it (benchmarks).
QS_PARAM(hess_tile, "QS_HESSIAN_TILE", 256)
// Band height B of the large-K path (a multiple of 8); QS_HESSIAN_BAND overrides it (tests use a
// small B to exercise the band path at small K).
QS_PARAM(hess_band, "QS_HESSIAN_BAND", 2048)
constexpr int QS_HESS_FIN_TILE = 32; // finalize: 32 x 32 tiles, transposed through shared memory

// Pointers of upper tile t (tiles enumerated row by row: bi = 0: bj = 0..nt-1, bi = 1: bj = 1..).
// Column-major: C tile at (bj*T, bi*T) = A rows bj*T.. times (B rows bi*T..)ᵀ.
__global__ void qs_hess_tile_ptrs_kernel(const char *X, float *S, int64_t K, int T, int nt, int ntiles, size_t es,
                                         const void **A, const void **B, void **C) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= ntiles) return;
  int bi = 0, rem = t;
  while (rem >= nt - bi) rem -= nt - bi++;
  int bj = bi + rem;
  A[t] = X + (size_t)bj * T * es;
  B[t] = X + (size_t)bi * T * es;
  C[t] = S + (size_t)bi * T * K + (size_t)bj * T;
}

// Tile (by, bx) with by <= bx of the upper triangle: v = S[i][j] * c for j >= i, written to S[i][j]
// and S[j][i]; the transpose goes through shared memory so both writes are coalesced.
__global__ void qs_hess_finalize_kernel(float *S, int64_t K, float c) {
  __shared__ float tile[QS_HESS_FIN_TILE][QS_HESS_FIN_TILE + 1];
  int bx = blockIdx.x, by = blockIdx.y;
  if (by > bx) return;
  int64_t i0 = (int64_t)by * QS_HESS_FIN_TILE, j0 = (int64_t)bx * QS_HESS_FIN_TILE;
  int tx = threadIdx.x;
  for (int ty = threadIdx.y; ty < QS_HESS_FIN_TILE; ty += blockDim.y) {
    int64_t i = i0 + ty, j = j0 + tx;
    if (i < K && j < K && j >= i) {
      float v = S[i * K + j] * c;
      S[i * K + j] = v;
      tile[ty][tx] = v;
    }
  }
  __syncthreads();
  for (int ty = threadIdx.y; ty < QS_HESS_FIN_TILE; ty += blockDim.y) {
    int64_t j = j0 + ty, i = i0 + tx; // lower element S[j][i] = upper S[i][j]
    if (i < K && j < K && j > i) S[j * K + i] = tile[tx][ty];
  }
}

static qs_status qs_hess_check_math(cublasHandle_t blas) {
  qs_status status = QS_OK;
  cublasMath_t mode;
  QS_CUBLAS_CHECK(cublasGetMathMode(blas, &mode));
  if ((int)mode & (int)CUBLAS_TF32_TENSOR_OP_MATH)
    QS_FAIL(QS_ERR_ARG, "gptq: the cuBLAS handle allows TF32; fp32 Hessians and updates need full fp32");
fail:
  return status;
}

// 16-bit UPPER: batched upper tiles, then the ragged columns [Kt, K) of every row.
static qs_status qs_hess_upper16_launch(float *S, const void *X, int rows, int K, cudaDataType_t t,
                                        size_t es, cublasHandle_t blas, cudaStream_t stream) {
  qs_status status = QS_OK;
  const float one = 1.0f;
  const int T = (int)qs_param_hess_tile(), nt = T >= 8 && T % 8 == 0 ? K / T : 0, Kt = nt * T,
            ntiles = nt * (nt + 1) / 2;
  void **ptrs = NULL;
  if (ntiles > 0) {
    QS_CUDA_CHECK(cudaMallocAsync((void **)&ptrs, sizeof(void *) * 3 * (size_t)ntiles, stream));
    qs_hess_tile_ptrs_kernel<<<(ntiles + 127) / 128, 128, 0, stream>>>(
        (const char *)X, S, K, T, nt, ntiles, es, (const void **)ptrs, (const void **)ptrs + ntiles, ptrs + 2 * ntiles);
    QS_CUDA_CHECK(cudaGetLastError());
    QS_CUBLAS_CHECK(cublasGemmBatchedEx(blas, CUBLAS_OP_N, CUBLAS_OP_T, T, T, rows, &one,
                                        (const void *const *)ptrs, t, K, (const void *const *)ptrs + ntiles,
                                        t, K, &one, ptrs + 2 * ntiles, CUDA_R_32F, K, ntiles,
                                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  if (Kt < K) // row-major S[0:K, Kt:K] += X[:, 0:K]ᵀ X[:, Kt:K]
    QS_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_T, K - Kt, K, rows, &one,
                                 (const char *)X + (size_t)Kt * es, t, K, X, t, K, &one, S + Kt, CUDA_R_32F,
                                 K, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
fail:
  if (ptrs) cudaFreeAsync(ptrs, stream);
  return status;
}

// 16-bit UPPER, bands of B rows: row-major S[b0:b1, b0:K] += X[:, b0:b1]ᵀ X[:, b0:K].
static qs_status qs_hess_bands16_launch(float *S, const void *X, int rows, int K, int B, cudaDataType_t t,
                                        size_t es, cublasHandle_t blas) {
  qs_status status = QS_OK;
  const float one = 1.0f;
  for (int b0 = 0; b0 < K; b0 += B) {
    const char *xb = (const char *)X + (size_t)b0 * es;
    QS_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_T, K - b0, QS_MIN(B, K - b0), rows, &one, xb, t, K, xb,
                                 t, K, &one, S + (size_t)b0 * K + b0, CUDA_R_32F, K, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
  }
fail:
  return status;
}

static qs_status qs_hess_add_launch(float *S, const void *X, int rows, int K, qs_dtype dt,
                                    enum qs_hessian_fill fill, cublasHandle_t blas, cudaStream_t stream) {
  qs_status status = QS_OK;
  const float one = 1.0f;
  if (dt == QS_DTYPE_F32 && fill == QS_HESSIAN_UPPER) {
    QS_CUBLAS_CHECK(cublasSsyrk(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, K, rows, &one, (const float *)X,
                                K, &one, S, K));
  } else if (dt == QS_DTYPE_F32) {
    QS_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, K, K, rows, &one, (const float *)X, K,
                                (const float *)X, K, &one, S, K));
  } else {
    cudaDataType_t t = dt == QS_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    const int B = (int)qs_param_hess_band();
    if (fill == QS_HESSIAN_UPPER && B >= 8 && B % 8 == 0 && K >= 4 * B) {
      QS_TRY(qs_hess_bands16_launch(S, X, rows, K, B, t, 2, blas));
    } else if (fill == QS_HESSIAN_UPPER) {
      QS_TRY(qs_hess_upper16_launch(S, X, rows, K, t, 2, blas, stream));
    } else {
      QS_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_T, K, K, rows, &one, X, t, K, X, t, K, &one,
                                   S, CUDA_R_32F, K, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
  }
fail:
  return status;
}

extern "C" qs_status qs_gptq_hessian_add_cuda(float *S, const void *X, int64_t rows, int64_t K, qs_dtype dt,
                                              enum qs_hessian_fill fill, cublasHandle_t blas,
                                              cudaStream_t stream) {
  qs_status status = QS_OK;
  if (rows < 0 || K <= 0 || rows > INT_MAX || K > INT_MAX)
    QS_FAIL(QS_ERR_ARG, "gptq hessian: rows %lld, K %lld out of range", (long long)rows, (long long)K);
  if (dt != QS_DTYPE_F32 && dt != QS_DTYPE_BF16 && dt != QS_DTYPE_F16)
    QS_FAIL(QS_ERR_UNSUPPORTED, "gptq hessian: inputs of dtype %s (F32, BF16 or F16)", qs_dtype_name(dt));
  if (fill != QS_HESSIAN_UPPER && fill != QS_HESSIAN_FULL) QS_FAIL(QS_ERR_ARG, "gptq hessian: fill %d", (int)fill);
  if (rows == 0) return QS_OK;
  QS_TRY(qs_hess_check_math(blas));
  QS_CUBLAS_CHECK(cublasSetStream(blas, stream));
  QS_TRY(qs_hess_add_launch(S, X, (int)rows, (int)K, dt, fill, blas, stream));
fail:
  return status;
}

extern "C" qs_status qs_gptq_hessian_finalize_cuda(float *S, int64_t K, int64_t nsamples, cudaStream_t stream) {
  qs_status status = QS_OK;
  if (nsamples <= 0) QS_FAIL(QS_ERR_ARG, "Hessian finalize: %lld calibration samples", (long long)nsamples);
  if (K <= 0) QS_FAIL(QS_ERR_ARG, "Hessian finalize: K = %lld", (long long)K);
  {
    const float c = (float)(2.0 / (double)nsamples); // the CPU path's factor, bit for bit
    int64_t nb = (K + QS_HESS_FIN_TILE - 1) / QS_HESS_FIN_TILE;
    if (nb > 65535) QS_FAIL(QS_ERR_UNSUPPORTED, "Hessian finalize: K = %lld too large", (long long)K);
    dim3 grid((unsigned)nb, (unsigned)nb), block(QS_HESS_FIN_TILE, 8);
    qs_hess_finalize_kernel<<<grid, block, 0, stream>>>(S, K, c);
    QS_CUDA_CHECK(cudaGetLastError());
  }
fail:
  return status;
}
