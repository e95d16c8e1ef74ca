// awq_xabs.h — the channel statistic of AWQ's scale search on the GPU: per input channel, the sum
// of |x| over a sample's tokens. The spec is qs_awq_xabs_add_ref (src/quant/awq.h): one float
// running sum per channel, tokens added in order, so the bits are the reference's.
#ifndef QS_KERNEL_AWQ_XABS_H
#define QS_KERNEL_AWQ_XABS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// sum[k] += Σ_t |X[t, k]| for t < T in order — X: [T, K] of dt (F32, BF16 or F16; converted to fp32
// exactly), sum: [K] fp32, both on the device. Asynchronous on `stream`.
qs_status qs_awq_xabs_add_cuda(const void *X, qs_dtype dt, int64_t T, int64_t K, float *sum, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
