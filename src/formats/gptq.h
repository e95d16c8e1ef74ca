// gptq.h — the GPTQ v1 format (FORMATS.md §2: vLLM, transformers/optimum + GPTQModel, AutoGPTQ):
// its packing (gptq_pack.c) and its writer and reader (gptq.c, the format row qs_format_gptq).
//
// Codes are a little-endian bit stream of `bits`-wide fields in int32 words: field i at stream bits
// [bits*i, bits*i + bits) (for 3 bits, 32 fields fill 3 words and fields 10 and 21 straddle words).
// qweight [K*bits/32, N]: the stream runs along K for each column n. qzeros [G, N*bits/32]: along N
// for each group, holding the v1 stored zero (zero - 1) & (2^bits - 1): a zero of 0 would wrap to
// 2^bits - 1, which v1 readers (stored + 1) see as 2^bits; the format therefore asks the grid for
// zero points >= 1 (qs_grid.min_zero), and asymmetric v1 checkpoints dequantize exactly.
#ifndef QS_FORMATS_GPTQ_H
#define QS_FORMATS_GPTQ_H

#include <stdint.h>

#include "base/qs_common.h"

// 1 when N and K can be packed: K*bits % 32 == 0 and N*bits % 32 == 0 (K % 32, N % 32 for 3 bits),
// bits in {2,3,4,8}, group_size -1 or > 0. Consumer limits (vLLM K % group_size) are the caller's.
int qs_gptq_can_pack(int64_t N, int64_t K, int bits, int group_size);
// codes [N, K] original column order; scales (fp16 bits) and zeros (true zeros) [N, G] as the
// solvers write them. Out: qweight [K*bits/32, N], qzeros [G, N*bits/32], scales_out [G, N] fp16.
// n_wrapped (may be NULL) = number of zeros equal to 0 (stored wrapped, see above).
qs_status qs_gptq_pack(const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros, int bits,
                       int64_t N, int64_t K, int64_t G, int32_t *qweight, int32_t *qzeros,
                       uint16_t *scales_out, int64_t *n_wrapped);
// qweight -> codes [N, K].
qs_status qs_gptq_unpack_codes(const int32_t *qweight, int bits, int64_t N, int64_t K, uint8_t *codes);
// qzeros -> v1 effective zeros stored + 1 (1 .. 2^bits) as [N, G].
qs_status qs_gptq_unpack_zeros(const int32_t *qzeros, int bits, int64_t N, int64_t G, int32_t *zeros);
// Loading a v1 checkpoint: W[n, k] = scale[g, n] * (q[k, n] - (stored_zero[g, n] + 1)), g = g_idx[k],
// in fp32 (scales fp16 [G, N]). QS_ERR_FORMAT if a g_idx entry is outside [0, G).
qs_status qs_gptq_unpack_dequant(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales,
                                 const int32_t *g_idx, int bits, int64_t N, int64_t K, int64_t G,
                                 float *W);

#endif
