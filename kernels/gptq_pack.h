// gptq_pack.h — GPTQ v1 checkpoint packing (qweight, qzeros, transposed scales) on the GPU; the spec is
// qs_gptq_pack (src/quant.h, FORMATS.md §2.1-2.3): same words, bit for bit.
#ifndef QS_KERNEL_GPTQ_PACK_H
#define QS_KERNEL_GPTQ_PACK_H

#include <cuda_runtime_api.h>

#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// Device buffers: codes [N, K] (original column order), scales (fp16 bits) and zeros (true zeros)
// [N, G] as the solvers write them. Out: qweight [K*bits/32, N] int32, qzeros [G, N*bits/32] int32
// (v1: stored zero - 1, masked), scales_out [G, N] fp16 bits. bits 2, 3, 4 or 8 with K*bits and
// N*bits multiples of 32 (QS_ERR_UNSUPPORTED otherwise); a zero above 2^bits - 1 is QS_ERR_ARG
// naming its row. n_wrapped (host, may be NULL) = zeros equal to 0 (stored wrapped). Synchronizes
// `stream` at the end (to read those counts).
qs_status qs_gptq_pack_cuda(const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros, int bits, int64_t N,
                            int64_t K, int64_t G, int32_t *qweight, int32_t *qzeros, uint16_t *scales_out,
                            int64_t *n_wrapped, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
