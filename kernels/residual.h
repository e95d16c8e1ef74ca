// residual.h — the residual add (x += y) and dtype conversion on the GPU. Their reference is one
// fp32 addition / conversion per element with round-to-nearest-even (qs_f32_to_bf16 and
// qs_f32_to_f16 in src/base/dtype.h): results match the host bit for bit.
#ifndef QS_KERNEL_RESIDUAL_H
#define QS_KERNEL_RESIDUAL_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// x[i] = round_xdt(float(x[i]) + float(y[i])) for i < n — x: [n] of xdt, y: [n] of ydt, each F32,
// BF16 or F16, on the device (e.g. an fp32 residual stream plus a bf16 layer output). y may
// alias x. Asynchronous on `stream`.
qs_status qs_residual_add_cuda(void *x, qs_dtype xdt, const void *y, qs_dtype ydt, size_t n, cudaStream_t stream);

// dst[i] = round_ddt(float(src[i])) for i < n — src: [n] of sdt, dst: [n] of ddt (F32, BF16, F16);
// src and dst must not overlap unless they are the same buffer of one dtype. Asynchronous.
qs_status qs_convert_cuda(const void *src, qs_dtype sdt, void *dst, qs_dtype ddt, size_t n, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
