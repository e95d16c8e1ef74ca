// attention_f32.h — causal grouped-query attention in fp32 on the GPU (the all-fp32 mode; no tensor
// cores); the spec is qs_attention_ref (src/model/ops.h), applied to each sequence of the batch.
// qs_attention_cuda (attention.h) forwards QS_DTYPE_F32 here.
#ifndef QS_KERNEL_ATTENTION_F32_H
#define QS_KERNEL_ATTENTION_F32_H

#include <cuda_runtime_api.h>

#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// out = softmax(q k^T / sqrt(head_dim) + causal mask) v for each of `batch` sequences — q, out:
// [batch, T, n_heads, head_dim]; k, v: [batch, T, n_kv_heads, head_dim]; fp32 on the device,
// 8-byte aligned. Query head h reads KV head h / (n_heads / n_kv_heads). Scores (fp32 dot products),
// the online softmax (running max subtraction, expf) and the weighted sums all in fp32; nothing is
// rounded below fp32. head_dim: any even value <= 256 (else QS_ERR_UNSUPPORTED); n_heads a
// multiple of n_kv_heads. out may equal q, not k or v. Asynchronous on `stream`.
qs_status qs_attention_f32_cuda(const float *q, const float *k, const float *v, float *out, int batch, int T,
                                int n_heads, int n_kv_heads, int head_dim, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
