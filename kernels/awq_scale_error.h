// awq_scale_error.h — AWQ's scale search on the GPU: the output error of a row block quantized
// after scaling by each candidate scale vector. The spec is qs_awq_scaled_error_ref (src/quant/
// awq.h): d = w - Q(w ∘ s) / s with Q the grid's round-to-nearest (kernels/rtn.h, the same grid
// code, so d is the reference's bits), then err = d H dᵀ: the product D·H as one GEMM over every
// candidate and row (fp32, or TF32 tensor cores with fp32 accumulation: about 2^-10 relative per
// product, which moves err by far less than the gaps between candidates it ranks), the row dot
// products in double with a fixed reduction tree.
#ifndef QS_KERNEL_AWQ_SCALE_ERROR_H
#define QS_KERNEL_AWQ_SCALE_ERROR_H

#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "base/qs_common.h"
#include "quant/grid.h"

#ifdef __cplusplus
extern "C" {
#endif

// Device buffers: H [K, K] fp32 symmetric (both triangles), W [nrows, K] fp32, S [n, K] the
// candidates' scales, err [n * nrows] double (err[a * nrows + r], as the reference). tf32: the
// GEMM's math. Uses about 2·n·nrows·K floats of stream-ordered scratch; synchronizes `stream` (the
// rounding step checks for non-finite values: QS_ERR_NUMERIC).
qs_status qs_awq_scaled_error_cuda(const struct qs_grid *g, const float *H, int64_t K, const float *W, int64_t nrows,
                                   const float *S, int n, double *err, int tf32, cublasHandle_t blas,
                                   cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
