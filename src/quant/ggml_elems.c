// ggml_elems.c — the element view of llama.cpp's block grids (contract: grid_ggml.h, qs_ggml_elem_*):
// with a block's parameters fixed (d, dmin, the sub-block scales — as its reference found them), the
// code of one element for a value x, that code's value, and storing it. For the k-quants the code is
// the reference's own final rounding on the decoded parameters (ggml-quants.c: L = nearest_int((x +
// dm)/dd) clamped — qs_ggml_round_affine/_symmetric, the very functions ggml_kquants.c rounds with; a
// sub-block whose scale decodes to 0 keeps the code it has), so re-coding a reference block's own
// inputs gives its bytes back; for the 32-blocks it is the nearest code on the stored fp16 grid. Values
// are computed as the type's dequantization computes them, bit for bit. Code layouts: ggml_blocks.h.
#include <string.h>

#include "base/dtype.h"
#include "quant/ggml_blocks.h"
#include "quant/grid_ggml.h"

static inline float h2f(uint16_t h) { return qs_f16_to_f32(h); }

// Rewrites the width-bit field at bit shift of *p (the layouts: ggml_blocks.h).
static inline void put_bits(uint8_t *p, int shift, int width, int v) {
  *p = (uint8_t)((*p & ~(((1 << width) - 1) << shift)) | ((v & ((1 << width) - 1)) << shift));
}

// ---- per type: the current code, the code for x, the value, storing ----------------------------------

static int32_t stored(int type, const void *blk, int e) {
  switch (type) {
  case QS_GGML_Q2_K: { const struct qs_block_q2_K *b = blk; return (b->qs[qs_ggml_2bit_byte(e)] >> qs_ggml_2bit_shift(e)) & 3; }
  case QS_GGML_Q3_K: {
    const struct qs_block_q3_K *b = blk;
    return ((b->qs[qs_ggml_2bit_byte(e)] >> qs_ggml_2bit_shift(e)) & 3) |
           (((b->hmask[qs_ggml_hbit_byte(e)] >> qs_ggml_hbit_shift(e)) & 1) << 2);
  }
  case QS_GGML_Q4_K: { const struct qs_block_q4_K *b = blk; return (b->qs[qs_ggml_4bit_byte(e)] >> qs_ggml_4bit_shift(e)) & 0xF; }
  case QS_GGML_Q5_K: {
    const struct qs_block_q5_K *b = blk;
    return ((b->qs[qs_ggml_4bit_byte(e)] >> qs_ggml_4bit_shift(e)) & 0xF) |
           (((b->qh[qs_ggml_hbit_byte(e)] >> qs_ggml_hbit_shift(e)) & 1) << 4);
  }
  case QS_GGML_Q6_K: {
    const struct qs_block_q6_K *b = blk;
    return ((b->ql[qs_ggml_q6_ql_byte(e)] >> qs_ggml_q6_ql_shift(e)) & 0xF) |
           (((b->qh[qs_ggml_2bit_byte(e)] >> qs_ggml_2bit_shift(e)) & 3) << 4);
  }
  default: return 0;
  }
}

int qs_ggml_elem_supported(int type) {
  switch (type) {
  case QS_GGML_F32: case QS_GGML_F16: case QS_GGML_BF16: case QS_GGML_Q8_0: case QS_GGML_Q4_0: case QS_GGML_Q4_1:
  case QS_GGML_Q5_0: case QS_GGML_Q5_1: case QS_GGML_Q2_K: case QS_GGML_Q3_K: case QS_GGML_Q4_K: case QS_GGML_Q5_K:
  case QS_GGML_Q6_K:
    return 1;
  default: return 0;
  }
}

int32_t qs_ggml_elem_code(int type, const void *blk, int e, float x) {
  switch (type) {
  case QS_GGML_F32: { union { float f; int32_t i; } u = {x}; return u.i; }
  case QS_GGML_F16: return qs_f32_to_f16(x);
  case QS_GGML_BF16: return qs_f32_to_bf16(x);
  case QS_GGML_Q8_0: {
    float d = h2f(((const struct qs_block_q8_0 *)blk)->d);
    return d == 0.0f ? 0 : qs_ggml_clamp(qs_ggml_nearest_int(x / d), -127, 127);
  }
  case QS_GGML_Q4_0: case QS_GGML_Q5_0: {
    const uint16_t dh = type == QS_GGML_Q4_0 ? ((const struct qs_block_q4_0 *)blk)->d : ((const struct qs_block_q5_0 *)blk)->d;
    const int half = type == QS_GGML_Q4_0 ? 8 : 16;
    float d = h2f(dh);
    return d == 0.0f ? half : qs_ggml_round_symmetric(x, d, half);
  }
  case QS_GGML_Q4_1: case QS_GGML_Q5_1: {
    const struct qs_block_q4_1 *b4 = blk;
    const struct qs_block_q5_1 *b5 = blk;
    float d = h2f(type == QS_GGML_Q4_1 ? b4->d : b5->d), m = h2f(type == QS_GGML_Q4_1 ? b4->m : b5->m);
    return d == 0.0f ? 0 : qs_ggml_round_affine(x, d, -m, type == QS_GGML_Q4_1 ? 15 : 31); // x + (-m) is exactly x - m
  }
  case QS_GGML_Q2_K: {
    const struct qs_block_q2_K *b = blk;
    uint8_t sc = b->scales[e / 16];
    float dd = h2f(b->d) * (sc & 0xF), dm = h2f(b->dmin) * (sc >> 4);
    return dd == 0.0f ? stored(type, blk, e) : qs_ggml_round_affine(x, dd, dm, 3);
  }
  case QS_GGML_Q3_K: {
    const struct qs_block_q3_K *b = blk;
    float dd = h2f(b->d) * (qs_ggml_q3_get_scale(b->scales, e / 16) - 32);
    return dd == 0.0f ? stored(type, blk, e) : qs_ggml_round_symmetric(x, dd, 4);
  }
  case QS_GGML_Q4_K: case QS_GGML_Q5_K: {
    const struct qs_block_q4_K *b4 = blk;
    const struct qs_block_q5_K *b5 = blk;
    const uint8_t *scales = type == QS_GGML_Q4_K ? b4->scales : b5->scales;
    uint8_t sc, m;
    qs_ggml_k4_get_scale_min(scales, e / 32, &sc, &m);
    float dd = h2f(type == QS_GGML_Q4_K ? b4->d : b5->d) * sc, dm = h2f(type == QS_GGML_Q4_K ? b4->dmin : b5->dmin) * m;
    return dd == 0.0f ? stored(type, blk, e) : qs_ggml_round_affine(x, dd, dm, type == QS_GGML_Q4_K ? 15 : 31);
  }
  case QS_GGML_Q6_K: {
    const struct qs_block_q6_K *b = blk;
    float dd = h2f(b->d) * b->scales[e / 16];
    return dd == 0.0f ? stored(type, blk, e) : qs_ggml_round_symmetric(x, dd, 32);
  }
  default: return 0;
  }
}

float qs_ggml_elem_value(int type, const void *blk, int e, int32_t q) {
  switch (type) {
  case QS_GGML_F32: { union { int32_t i; float f; } u = {q}; return u.f; }
  case QS_GGML_F16: return qs_f16_to_f32((uint16_t)q);
  case QS_GGML_BF16: return qs_bf16_to_f32((uint16_t)q);
  case QS_GGML_Q8_0: return (float)q * h2f(((const struct qs_block_q8_0 *)blk)->d);
  case QS_GGML_Q4_0: return (float)(q - 8) * h2f(((const struct qs_block_q4_0 *)blk)->d);
  case QS_GGML_Q5_0: return (float)(q - 16) * h2f(((const struct qs_block_q5_0 *)blk)->d);
  case QS_GGML_Q4_1: { const struct qs_block_q4_1 *b = blk; return (float)q * h2f(b->d) + h2f(b->m); }
  case QS_GGML_Q5_1: { const struct qs_block_q5_1 *b = blk; return (float)q * h2f(b->d) + h2f(b->m); }
  case QS_GGML_Q2_K: {
    const struct qs_block_q2_K *b = blk;
    uint8_t sc = b->scales[e / 16];
    float dl = h2f(b->d) * (sc & 0xF), ml = h2f(b->dmin) * (sc >> 4);
    return dl * q - ml;
  }
  case QS_GGML_Q3_K: {
    const struct qs_block_q3_K *b = blk;
    float dl = h2f(b->d) * (qs_ggml_q3_get_scale(b->scales, e / 16) - 32);
    return dl * ((q & 3) - ((q >> 2) & 1 ? 0 : 4));
  }
  case QS_GGML_Q4_K: case QS_GGML_Q5_K: {
    const struct qs_block_q4_K *b4 = blk;
    const struct qs_block_q5_K *b5 = blk;
    uint8_t sc, m;
    qs_ggml_k4_get_scale_min(type == QS_GGML_Q4_K ? b4->scales : b5->scales, e / 32, &sc, &m);
    float d1 = h2f(type == QS_GGML_Q4_K ? b4->d : b5->d) * sc, m1 = h2f(type == QS_GGML_Q4_K ? b4->dmin : b5->dmin) * m;
    return d1 * q - m1;
  }
  case QS_GGML_Q6_K: {
    const struct qs_block_q6_K *b = blk;
    return h2f(b->d) * b->scales[e / 16] * (int8_t)(q - 32);
  }
  default: return 0.0f;
  }
}

void qs_ggml_elem_put(int type, void *blk, int e, int32_t q) {
  switch (type) {
  case QS_GGML_F32: memcpy((char *)blk + 4 * e, &q, 4); break;
  case QS_GGML_F16: case QS_GGML_BF16: { uint16_t h = (uint16_t)q; memcpy((char *)blk + 2 * e, &h, 2); break; }
  case QS_GGML_Q8_0: ((struct qs_block_q8_0 *)blk)->qs[e] = (int8_t)q; break;
  case QS_GGML_Q4_0: case QS_GGML_Q4_1: {
    uint8_t *qs = type == QS_GGML_Q4_0 ? ((struct qs_block_q4_0 *)blk)->qs : ((struct qs_block_q4_1 *)blk)->qs;
    put_bits(&qs[qs_ggml_nib_byte(e)], qs_ggml_nib_shift(e), 4, q);
    break;
  }
  case QS_GGML_Q5_0: case QS_GGML_Q5_1: {
    uint8_t *qs = type == QS_GGML_Q5_0 ? ((struct qs_block_q5_0 *)blk)->qs : ((struct qs_block_q5_1 *)blk)->qs;
    uint8_t *qh = type == QS_GGML_Q5_0 ? ((struct qs_block_q5_0 *)blk)->qh : ((struct qs_block_q5_1 *)blk)->qh;
    put_bits(&qs[qs_ggml_nib_byte(e)], qs_ggml_nib_shift(e), 4, q & 0xF);
    put_bits(&qh[qs_ggml_bit32_byte(e)], qs_ggml_bit32_shift(e), 1, (q >> 4) & 1);
    break;
  }
  case QS_GGML_Q2_K: put_bits(&((struct qs_block_q2_K *)blk)->qs[qs_ggml_2bit_byte(e)], qs_ggml_2bit_shift(e), 2, q); break;
  case QS_GGML_Q3_K: {
    struct qs_block_q3_K *b = blk;
    put_bits(&b->qs[qs_ggml_2bit_byte(e)], qs_ggml_2bit_shift(e), 2, q & 3);
    put_bits(&b->hmask[qs_ggml_hbit_byte(e)], qs_ggml_hbit_shift(e), 1, (q >> 2) & 1);
    break;
  }
  case QS_GGML_Q4_K: put_bits(&((struct qs_block_q4_K *)blk)->qs[qs_ggml_4bit_byte(e)], qs_ggml_4bit_shift(e), 4, q); break;
  case QS_GGML_Q5_K: {
    struct qs_block_q5_K *b = blk;
    put_bits(&b->qs[qs_ggml_4bit_byte(e)], qs_ggml_4bit_shift(e), 4, q & 0xF);
    put_bits(&b->qh[qs_ggml_hbit_byte(e)], qs_ggml_hbit_shift(e), 1, (q >> 4) & 1);
    break;
  }
  case QS_GGML_Q6_K: {
    struct qs_block_q6_K *b = blk;
    put_bits(&b->ql[qs_ggml_q6_ql_byte(e)], qs_ggml_q6_ql_shift(e), 4, q & 0xF);
    put_bits(&b->qh[qs_ggml_2bit_byte(e)], qs_ggml_2bit_shift(e), 2, (q >> 4) & 3);
    break;
  }
  default: break;
  }
}
