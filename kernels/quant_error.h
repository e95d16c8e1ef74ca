// quant_error.h — the output error of a quantized weight over the calibration inputs, per row:
// num[r] = (w - q) H (w - q)ᵀ and den[r] = w H wᵀ, so that ||WX - QX|| / ||WX|| = sqrt(sum num /
// sum den) with H ∝ XᵀX. The spec is row_output_error in src/run/engine_cpu.c (fp32 ssymv, double
// dot products); this is a report figure, not part of the checkpoint, so the two products run as
// TF32 tensor-core GEMMs (about 2^-11 relative per product) and the dot products in double.
#ifndef QS_KERNEL_QUANT_ERROR_H
#define QS_KERNEL_QUANT_ERROR_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// W0, Q: [rows, K] fp32; H: [K, K] fp32 symmetric (both triangles); num, den: [rows] double; all
// on the device. Uses about 3 * rows * K floats of stream-ordered scratch. Asynchronous on `stream`.
qs_status qs_quant_error_cuda(const float *W0, const float *Q, const float *H, int64_t rows, int64_t K, double *num,
                              double *den, cublasHandle_t blas, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
