// swiglu.h — the SwiGLU gate of the Llama MLP on the GPU; the spec is qs_swiglu_ref (src/model/ops.h).
#ifndef QS_KERNEL_SWIGLU_H
#define QS_KERNEL_SWIGLU_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)), for i < n — gate, up, out: [n] of
// `dt` (F32, BF16 or F16) on the device; fp32 arithmetic in the reference's order, one rounding to
// `dt`. out may alias gate or up. Asynchronous on `stream`.
qs_status qs_swiglu_cuda(const void *gate, const void *up, void *out, size_t n, qs_dtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
