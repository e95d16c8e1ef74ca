// awq_fold.h — folding AWQ's per-channel scales into weights on the GPU. The spec is
// qs_awq_fold_ref (src/quant/awq.h): one IEEE multiply or divide per element, the same bits.
#ifndef QS_KERNEL_AWQ_FOLD_H
#define QS_KERNEL_AWQ_FOLD_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// W: [rows, K] fp32 and s on the device; mode (awq.h QS_AWQ_FOLD_*): 0 W[r, k] *= s[k], 1 W[r, k] /=
// s[r] (s: [rows]), 2 W[r, k] /= s[k]. Asynchronous on `stream`.
qs_status qs_awq_fold_cuda(float *W, int64_t rows, int64_t K, const float *s, int mode, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
