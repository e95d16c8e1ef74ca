// attention.h — causal grouped-query attention on the GPU (flash-style, tensor cores); the spec is
// qs_attention_ref (src/model/ops.h), applied to each sequence of the batch.
#ifndef QS_KERNEL_ATTENTION_H
#define QS_KERNEL_ATTENTION_H

#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// out = softmax(q k^T / sqrt(head_dim) + causal mask) v for each of `batch` sequences — q, out:
// [batch, T, n_heads, head_dim]; k, v: [batch, T, n_kv_heads, head_dim]; all of `dt` (BF16 or F16)
// on the device, 16-byte aligned. Query head h reads KV head h / (n_heads / n_kv_heads). Scores,
// softmax (max subtraction) and the weighted sum in fp32; the softmax weights are rounded to `dt`
// for the tensor-core product with v (the flash-attention scheme), the output once to `dt`.
// head_dim: 8, 16, 32, 48, 64, 96 or 128 (else QS_ERR_UNSUPPORTED); n_heads a multiple of
// n_kv_heads. out may equal q (each block reads its own query rows before writing them), not k or v.
// dt F32 is forwarded to qs_attention_f32_cuda (attention_f32.h: fp32 throughout, 8-byte alignment,
// any even head_dim <= 256). Asynchronous on `stream`.
qs_status qs_attention_cuda(const void *q, const void *k, const void *v, void *out, int batch, int T, int n_heads,
                            int n_kv_heads, int head_dim, qs_dtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
