// linear.h — the linear layer y = x wᵀ (+ bias) on the GPU through cuBLAS; the spec is qs_matmul_ref
// (src/model/ops.h).
#ifndef QS_KERNEL_LINEAR_H
#define QS_KERNEL_LINEAR_H

#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// y = x · wᵀ (+ bias) — x: [M, K], w: [N, K] (nn.Linear's weight), bias: [N] or NULL, y: [M, N];
// row-major, all of `dt` (F32, BF16 or F16) on the device. One cublasGemmEx with fp32 products,
// fp32 accumulation (CUBLAS_COMPUTE_32F) and fp32 alpha/beta: x wᵀ is rounded once to `dt`. The
// bias, if any, is then added by a separate kernel, y = round(float(y) + float(bias)), so with a
// bias a 16-bit y is rounded twice (<= 1 ulp from the once-rounded sum torch's fused addmm aims
// at; Llama's projections have no bias). F32: both roundings are fp32 ones.
// The handle's math mode must not allow TF32 or BF16x9 emulation for F32 (QS_ERR_ARG): fp32
// inputs would lose mantissa bits. For the call the mode gets CUBLAS_MATH_DISALLOW_REDUCED_
// PRECISION_REDUCTION (split-K partial sums stay fp32, not `dt`); the caller's mode is restored
// before returning. y must not overlap x, w or bias. M, N, K in [1, INT_MAX]. Asynchronous on
// `stream` (the handle is bound to it).
qs_status qs_linear_cuda(const void *x, const void *w, const void *bias, void *y, int64_t M, int64_t N, int64_t K,
                         qs_dtype dt, cublasHandle_t blas, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
