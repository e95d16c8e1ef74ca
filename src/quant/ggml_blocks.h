// ggml_blocks.h — the block structures of llama.cpp's types (ggml-common.h; FORMATS.md §5.6) and the
// per-type references behind the table of grid_ggml.c. ggml_half = IEEE fp16 bits, little-endian.
// Legacy 32-blocks: quant/ggml_quants.c; k-quants (256-blocks): quant/ggml_kquants.c.
#ifndef QS_GGML_BLOCKS_H
#define QS_GGML_BLOCKS_H

#include <stdint.h>

#include "io/ggml_types.h"

#define QS_QK4_0 32
#define QS_QK4_1 32
#define QS_QK5_0 32
#define QS_QK5_1 32
#define QS_QK8_0 32
#define QS_QK4_NL 32
#define QS_QK_MXFP4 32
#define QS_K_SCALE_SIZE 12

struct qs_block_q4_0 { uint16_t d; uint8_t qs[QS_QK4_0 / 2]; };
struct qs_block_q4_1 { uint16_t d, m; uint8_t qs[QS_QK4_1 / 2]; };
struct qs_block_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QS_QK5_0 / 2]; };
struct qs_block_q5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QS_QK5_1 / 2]; };
struct qs_block_q8_0 { uint16_t d; int8_t qs[QS_QK8_0]; };
struct qs_block_iq4_nl { uint16_t d; uint8_t qs[QS_QK4_NL / 2]; };
struct qs_block_mxfp4 { uint8_t e; uint8_t qs[QS_QK_MXFP4 / 2]; };
struct qs_block_q2_K { uint8_t scales[QS_QK_K / 16]; uint8_t qs[QS_QK_K / 4]; uint16_t d, dmin; };
struct qs_block_q3_K { uint8_t hmask[QS_QK_K / 8]; uint8_t qs[QS_QK_K / 4]; uint8_t scales[12]; uint16_t d; };
struct qs_block_q4_K { uint16_t d, dmin; uint8_t scales[QS_K_SCALE_SIZE]; uint8_t qs[QS_QK_K / 2]; };
struct qs_block_q5_K { uint16_t d, dmin; uint8_t scales[QS_K_SCALE_SIZE]; uint8_t qh[QS_QK_K / 8]; uint8_t qs[QS_QK_K / 2]; };
struct qs_block_q6_K { uint8_t ql[QS_QK_K / 2]; uint8_t qh[QS_QK_K / 4]; int8_t scales[QS_QK_K / 16]; uint16_t d; };

_Static_assert(sizeof(struct qs_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(struct qs_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(struct qs_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(struct qs_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(struct qs_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(struct qs_block_iq4_nl) == 18, "iq4_nl block");
_Static_assert(sizeof(struct qs_block_mxfp4) == 17, "mxfp4 block");
_Static_assert(sizeof(struct qs_block_q2_K) == 84, "q2_K block");
_Static_assert(sizeof(struct qs_block_q3_K) == 110, "q3_K block");
_Static_assert(sizeof(struct qs_block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(struct qs_block_q5_K) == 176, "q5_K block");
_Static_assert(sizeof(struct qs_block_q6_K) == 210, "q6_K block");

// Per type: quantize one row (imp NULL: the *_ref path; else the quant_weights path) and dequantize.
#define QS_GGML_DECLARE(t)                                                                         \
  void qs_ggml_quantize_##t##_ref(const float *x, const float *imp, int64_t n, void *out);        \
  void qs_ggml_dequant_##t##_ref(const void *in, int64_t n, float *y);
QS_GGML_DECLARE(f16)
QS_GGML_DECLARE(bf16)
QS_GGML_DECLARE(q4_0)
QS_GGML_DECLARE(q4_1)
QS_GGML_DECLARE(q5_0)
QS_GGML_DECLARE(q5_1)
QS_GGML_DECLARE(q8_0)
QS_GGML_DECLARE(iq4_nl)
QS_GGML_DECLARE(mxfp4)
QS_GGML_DECLARE(q2_K)
QS_GGML_DECLARE(q3_K)
QS_GGML_DECLARE(q4_K)
QS_GGML_DECLARE(q5_K)
QS_GGML_DECLARE(q6_K)
#undef QS_GGML_DECLARE

#endif
