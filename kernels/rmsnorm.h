// rmsnorm.h — RMSNorm on the GPU; the spec is qs_rmsnorm_ref (src/model/ops.h).
#ifndef QS_KERNEL_RMSNORM_H
#define QS_KERNEL_RMSNORM_H

#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// out[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * w — x, out: [rows, n] of `dt` (F32, BF16 or
// F16) on the device, w: [n] of the same type; fp32 accumulation. Asynchronous on `stream`.
qs_status qs_rmsnorm_cuda(const void *x, const void *w, void *out, int rows, int n, float eps,
                          qs_dtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
