// rope.h — rotary position embedding on the GPU; the spec is qs_rope_ref (src/model/ops.h).
#ifndef QS_KERNEL_ROPE_H
#define QS_KERNEL_ROPE_H

#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// Rotate-half RoPE in place on `batch` sequences: x: [batch, T, n_heads, head_dim] of `dt` (F32,
// BF16 or F16) on the device; token t of every sequence sits at position pos0 + t. inv_freq:
// [head_dim / 2] fp32 on the device (qs_rope_inv_freq). As qs_rope_ref: angle = pos * inv_freq[i]
// in fp32, (x_i, x_{i+h}) <- (x_i cos - x_{i+h} sin, x_{i+h} cos + x_i sin) with the same fp32
// roundings (no fused multiply-add), one rounding to `dt` at the end. head_dim even; pos0 >= 0 and
// pos0 + T <= 2^24 (positions exact in fp32). Asynchronous on `stream`.
qs_status qs_rope_cuda(void *x, int batch, int T, int n_heads, int head_dim, const float *inv_freq, int pos0,
                       qs_dtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
