// hessian.h — GPTQ Hessian accumulation S += XᵀX on the GPU and its finalization; the spec is
// qs_gptq_hessian_add_ref / qs_gptq_hessian_finalize (src/quant/gptq.h).
#ifndef QS_KERNEL_HESSIAN_H
#define QS_KERNEL_HESSIAN_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// Which entries of S the add maintains.
enum qs_hessian_fill {
  QS_HESSIAN_UPPER = 0, // S[i][j], j >= i (row-major upper triangle, as the CPU path); the strict
                        // lower triangle is scratch afterwards (parts of it may be updated too)
  QS_HESSIAN_FULL = 1,  // every entry (twice the products of UPPER)
};

// S += Xᵀ X. S: [K, K] fp32 row-major, X: [rows, K] row-major of `dt`, both on the device.
//  - BF16 / F16: tensor cores, products exact in fp32, fp32 accumulation (cublasGemmEx /
//    cublasGemmBatchedEx, CUBLAS_COMPUTE_32F). UPPER computes only bands of 2048 rows from the
//    diagonal on (K >= 8192) or the upper 256 x 256 tiles (one batched call; a ragged K adds one
//    thin product for the last columns): a little over half of FULL's work, whose one GEMM
//    computes all K² entries. (Env QS_HESSIAN_BAND / QS_HESSIAN_TILE change 2048 / 256.)
//  - F32: cublasSsyrk (UPPER) or cublasSgemm (FULL), fp32 products and sums.
// The handle's math mode must not allow TF32 (QS_ERR_ARG): fp32 inputs would lose 13 mantissa
// bits. Asynchronous on `stream` (the handle is bound to it). rows, K <= INT_MAX.
qs_status qs_gptq_hessian_add_cuda(float *S, const void *X, int64_t rows, int64_t K, qs_dtype dt,
                                   enum qs_hessian_fill fill, cublasHandle_t blas, cudaStream_t stream);

// H = (2/nsamples) * S from S's upper triangle, mirrored to the lower one: exactly
// qs_gptq_hessian_finalize (same fp32 factor and products). Asynchronous on `stream`.
qs_status qs_gptq_hessian_finalize_cuda(float *S, int64_t K, int64_t nsamples, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
