// ggml_kquants.c — the C references of llama.cpp's k-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K: the bytes
// ggml_quantize_chunk writes for a float32 row (ggml-quants.c: quantize_row_<t>_ref when no importance
// is given, quantize_row_<t>_impl with an imatrix row), and dequantize_row_<t>. FORMATS.md §5.6–5.7.
//
// A 256-value super-block has 16 sub-blocks of 16 (Q2_K, Q3_K, Q6_K) or 8 of 32 (Q4_K, Q5_K). Each
// sub-block is fitted on its own (a scale, and for the affine types a min), then those scales are
// themselves quantized — to 4, 6 or 8 bits against one fp16 d (and dmin) per super-block — and the
// codes are recomputed from the stored, rounded values: the bytes are the result, not the fit.
//
// Bit-exactness: each float32 operation is the reference's, in its order (sums sequential, products
// grouped as written there); C is built with -ffp-contract=off, and llama.cpp's ggml-base is built
// without FMA on x86-64, so neither side contracts. The integer ↔ uint8/int8 conversions of the
// reference are kept (a negative code wrapping in a uint8, an int8 scale): they only matter on
// degenerate rows, but there they decide the bytes. fp16 is base/dtype.h's, equal to ggml's
// GGML_FP32_TO_FP16 for all 2^32 inputs (round to nearest even, NaN → 0x7E00 keeping the sign).
// nearest_int is exact for |f| <= 4194303. The sub-block searches are quant/ggml_search.c's; the code
// layouts and the scale packings are ggml_blocks.h's.
#include <math.h>
#include <string.h>

#include "base/dtype.h"
#include "quant/ggml_blocks.h"

// Codes of an affine sub-block from the stored scale: L = clamp(round((x + dm)/d), 0, nmax). d == 0
// keeps the fit's codes (the reference skips the sub-block).
static void qs_ggml_requant_affine(int n, const float *x, float d, float dm, int nmax, uint8_t *L) {
  if (!d) return;
  for (int i = 0; i < n; i++) L[i] = (uint8_t)qs_ggml_round_affine(x[i], d, dm, nmax);
}

// The same for a symmetric sub-block: L = clamp(round(x/d), -half, half-1) + half.
static void qs_ggml_requant_symmetric(int n, const float *x, float d, int half, uint8_t *L) {
  if (!d) return;
  for (int i = 0; i < n; i++) L[i] = (uint8_t)qs_ggml_round_symmetric(x[i], d, half);
}

// The 2-bit codes of a super-block (Q2_K, Q3_K's low bits) into zeroed qs.
static void qs_ggml_pack_2bit(const uint8_t *L, uint8_t *qs) {
  memset(qs, 0, QS_QK_K / 4);
  for (int e = 0; e < QS_QK_K; e++) qs[qs_ggml_2bit_byte(e)] |= (uint8_t)((L[e] & 3) << qs_ggml_2bit_shift(e));
}

// ---- Q2_K: 16 × 16, y = d·sc·q - dmin·m, q 2-bit, sc/m the low/high nibble of scales[j] ------------

// Without importance: sub-blocks fitted with weights |x| and least absolute error; the 4-bit scales
// and mins are max-scaled (largest → 15).
static void qs_ggml_q2_K_fit_ref(const float *x, struct qs_block_q2_K *b, uint8_t *L) {
  float scales[16], mins[16], w[16], max_scale = 0, max_min = 0;
  for (int j = 0; j < 16; j++) {
    for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
    scales[j] = qs_ggml_fit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, 1);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  memset(b->scales, 0, sizeof b->scales);
  b->d = b->dmin = qs_f32_to_f16(0.f);
  if (max_scale > 0) {
    float iscale = 15.f / max_scale;
    for (int j = 0; j < 16; j++) b->scales[j] = (uint8_t)qs_ggml_nearest_int(iscale * scales[j]);
    b->d = qs_f32_to_f16(max_scale / 15.f);
  }
  if (max_min > 0) {
    float iscale = 15.f / max_min; // inf for a subnormal max_min: the code is then nearest_int(NaN) < 0,
    for (int j = 0; j < 16; j++)  // shifted as unsigned for the reference's (two's complement) bits
      b->scales[j] |= (uint8_t)((unsigned)qs_ggml_nearest_int(iscale * mins[j]) << 4);
    b->dmin = qs_f32_to_f16(max_min / 15.f);
  }
}

// With importance: weights imp·sqrt(sigma2 + x²), least squares, a wider grid search; the scales and
// mins go through fit_steps weighted by each sub-block's total weight.
static void qs_ggml_q2_K_fit_imp(const float *x, const float *qw, struct qs_block_q2_K *b, uint8_t *L) {
  float scales[16], mins[16], sw[16], w[16];
  uint8_t Ls[16], Lm[16];
  float sigma2 = qs_ggml_sum_squares(QS_QK_K, x) / QS_QK_K;
  for (int j = 0; j < 16; j++) {
    sw[j] = qs_ggml_fill_weights(16, x + 16 * j, qw + 16 * j, sigma2, w);
    scales[j] = qs_ggml_fit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.9f, 0.05f, 36, 0);
  }
  b->d = qs_f32_to_f16(qs_ggml_fit_steps(16, 15, scales, sw, Ls));
  b->dmin = qs_f32_to_f16(qs_ggml_fit_steps(16, 15, mins, sw, Lm));
  for (int j = 0; j < 16; j++) b->scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
}

void qs_ggml_quantize_q2_K_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q2_K *y = out;
  for (int64_t i = 0; i < n / QS_QK_K; i++, x += QS_QK_K) {
    uint8_t L[QS_QK_K];
    if (imp) qs_ggml_q2_K_fit_imp(x, imp + QS_QK_K * i, &y[i], L);
    else qs_ggml_q2_K_fit_ref(x, &y[i], L);
    float d = qs_f16_to_f32(y[i].d), dmin = qs_f16_to_f32(y[i].dmin);
    for (int j = 0; j < 16; j++)
      qs_ggml_requant_affine(16, x + 16 * j, d * (y[i].scales[j] & 0xF), dmin * (y[i].scales[j] >> 4), 3, L + 16 * j);
    qs_ggml_pack_2bit(L, y[i].qs);
  }
}

void qs_ggml_dequant_q2_K_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_q2_K *b = in;
  for (int64_t i = 0; i < n / QS_QK_K; i++, y += QS_QK_K) {
    float d = qs_f16_to_f32(b[i].d), dmin = qs_f16_to_f32(b[i].dmin);
    for (int e = 0; e < QS_QK_K; e++) {
      uint8_t sc = b[i].scales[e / 16];
      float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
      y[e] = dl * ((b[i].qs[qs_ggml_2bit_byte(e)] >> qs_ggml_2bit_shift(e)) & 3) - ml;
    }
  }
}

// ---- Q3_K: 16 × 16, y = d·(sc-32)·(q-4), q = 2 low bits + a high bit in hmask, sc 6-bit -----------

// Without importance: make_q3_quants per sub-block; the signed scale of largest |.| maps to -32.
static void qs_ggml_q3_K_fit_ref(const float *x, struct qs_block_q3_K *b, uint8_t *L) {
  float scales[16];
  for (int j = 0; j < 16; j++) scales[j] = qs_ggml_fit_q3(16, 4, x + 16 * j, L + 16 * j);
  float max_scale = qs_ggml_find_absmax(16, scales, NULL);
  memset(b->scales, 0, sizeof b->scales);
  if (!max_scale) {
    b->d = qs_f32_to_f16(0.f);
    return;
  }
  float iscale = -32.f / max_scale;
  for (int j = 0; j < 16; j++) {
    int8_t l = (int8_t)qs_ggml_nearest_int(iscale * scales[j]); // the reference narrows before clamping
    qs_ggml_q3_put_scale(b->scales, j, qs_ggml_clamp(l, -32, 31) + 32);
  }
  b->d = qs_f32_to_f16(1 / iscale);
}

// With importance: fit_symmetric weighted by imp·sqrt(sigma2 + x²), then the 16 scales themselves by
// fit_symmetric(nmax 32) weighted by each sub-block's total weight.
static void qs_ggml_q3_K_fit_imp(const float *x, const float *qw, struct qs_block_q3_K *b, uint8_t *L) {
  float scales[16], sw[16], w[16];
  uint8_t Ls[16];
  float sigma2 = 2 * qs_ggml_sum_squares(QS_QK_K, x) / QS_QK_K;
  for (int j = 0; j < 16; j++) {
    sw[j] = qs_ggml_fill_weights(16, x + 16 * j, qw + 16 * j, sigma2, w);
    scales[j] = qs_ggml_fit_symmetric(16, 4, x + 16 * j, w, L + 16 * j);
  }
  memset(b->scales, 0, sizeof b->scales);
  float d_block = qs_ggml_fit_symmetric(16, 32, scales, sw, Ls);
  for (int j = 0; j < 16; j++) qs_ggml_q3_put_scale(b->scales, j, Ls[j]);
  b->d = qs_f32_to_f16(d_block);
}

void qs_ggml_quantize_q3_K_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q3_K *y = out;
  for (int64_t i = 0; i < n / QS_QK_K; i++, x += QS_QK_K) {
    uint8_t L[QS_QK_K];
    if (imp) qs_ggml_q3_K_fit_imp(x, imp + QS_QK_K * i, &y[i], L);
    else qs_ggml_q3_K_fit_ref(x, &y[i], L);
    float d = qs_f16_to_f32(y[i].d);
    for (int j = 0; j < 16; j++)
      qs_ggml_requant_symmetric(16, x + 16 * j, d * (int8_t)(qs_ggml_q3_get_scale(y[i].scales, j) - 32), 4, L + 16 * j);
    // codes 0..7: the high bit goes to hmask, the low 2 bits to qs
    uint8_t lo[QS_QK_K];
    memset(y[i].hmask, 0, sizeof y[i].hmask);
    for (int e = 0; e < QS_QK_K; e++) {
      if (L[e] > 3) y[i].hmask[qs_ggml_hbit_byte(e)] |= (uint8_t)(1 << qs_ggml_hbit_shift(e));
      lo[e] = (uint8_t)(L[e] > 3 ? L[e] - 4 : L[e]);
    }
    qs_ggml_pack_2bit(lo, y[i].qs);
  }
}

void qs_ggml_dequant_q3_K_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_q3_K *b = in;
  for (int64_t i = 0; i < n / QS_QK_K; i++, y += QS_QK_K) {
    float d_all = qs_f16_to_f32(b[i].d);
    for (int e = 0; e < QS_QK_K; e++) {
      float dl = d_all * (qs_ggml_q3_get_scale(b[i].scales, e / 16) - 32);
      int q = (b[i].qs[qs_ggml_2bit_byte(e)] >> qs_ggml_2bit_shift(e)) & 3;
      y[e] = dl * (q - ((b[i].hmask[qs_ggml_hbit_byte(e)] >> qs_ggml_hbit_shift(e)) & 1 ? 0 : 4));
    }
  }
}

// ---- Q4_K / Q5_K: 8 × 32, y = d·sc·q - dmin·m, q 4 or 5 bits, sc/m 6-bit ---------------------------

// The header (d, dmin, scales[12]) and the codes L of one super-block; nmax = 15 (Q4_K) or 31 (Q5_K).
// Without importance: weights av_x + |x| (av_x = the sub-block's rms), a per-type grid search, and
// the 6-bit scales and mins max-scaled (largest → 63). With importance: weights imp·sqrt(sigma2 + x²)
// and the scales and mins through fit_steps.
static void qs_ggml_k45_fit(const float *x, const float *qw, int nmax, uint16_t *d, uint16_t *dmin, uint8_t *q,
                            uint8_t *L) {
  float scales[8], mins[8], sw[8], w[32], max_scale = 0, max_min = 0;
  float sigma2 = qw ? 2 * qs_ggml_sum_squares(QS_QK_K, x) / QS_QK_K : 0;
  for (int j = 0; j < 8; j++) {
    const float *xj = x + 32 * j;
    if (qw) {
      sw[j] = qs_ggml_fill_weights(32, xj, qw + 32 * j, sigma2, w);
      scales[j] = qs_ggml_fit_affine(32, nmax, xj, w, L + 32 * j, &mins[j], -0.9f, 0.05f, 36, 0);
      continue;
    }
    float av_x = sqrtf(qs_ggml_sum_squares(32, xj) / 32);
    for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xj[l]);
    scales[j] = nmax == 15 ? qs_ggml_fit_affine(32, 15, xj, w, L + 32 * j, &mins[j], -1.f, 0.1f, 20, 0)
                           : qs_ggml_fit_affine(32, 31, xj, w, L + 32 * j, &mins[j], -0.5f, 0.1f, 15, 0);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  memset(q, 0, QS_K_SCALE_SIZE);
  if (qw) {
    uint8_t Ls[8], Lm[8];
    float d_block = qs_ggml_fit_steps(8, 63, scales, sw, Ls), m_block = qs_ggml_fit_steps(8, 63, mins, sw, Lm);
    for (int j = 0; j < 8; j++) // Q5_K caps the codes at 63, Q4_K does not (they only differ on a wrapped code)
      qs_ggml_k4_put_scale_min(q, j, nmax == 31 && Ls[j] > 63 ? 63 : Ls[j], nmax == 31 && Lm[j] > 63 ? 63 : Lm[j]);
    *d = qs_f32_to_f16(d_block);
    *dmin = qs_f32_to_f16(m_block);
    return;
  }
  float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < 8; j++) {
    uint8_t ls = (uint8_t)qs_ggml_nearest_int(inv_scale * scales[j]);
    uint8_t lm = (uint8_t)qs_ggml_nearest_int(inv_min * mins[j]);
    qs_ggml_k4_put_scale_min(q, j, ls < 63 ? ls : 63, lm < 63 ? lm : 63);
  }
  *d = qs_f32_to_f16(max_scale / 63.f);
  *dmin = qs_f32_to_f16(max_min / 63.f);
}

// The codes recomputed from the stored d·sc and dmin·m.
static void qs_ggml_k45_requant(const float *x, uint16_t d, uint16_t dmin, const uint8_t *q, int nmax, uint8_t *L) {
  for (int j = 0; j < 8; j++) {
    uint8_t sc, m;
    qs_ggml_k4_get_scale_min(q, j, &sc, &m);
    qs_ggml_requant_affine(32, x + 32 * j, qs_f16_to_f32(d) * sc, qs_f16_to_f32(dmin) * m, nmax, L + 32 * j);
  }
}

// The codes of a super-block into zeroed bytes: the low 4 bits in qs, bit 4 in qh (Q5_K; NULL for Q4_K,
// whose codes are 0..15).
static void qs_ggml_k45_pack(const uint8_t *L, uint8_t *qs, uint8_t *qh) {
  memset(qs, 0, QS_QK_K / 2);
  if (qh) memset(qh, 0, QS_QK_K / 8);
  for (int e = 0; e < QS_QK_K; e++) {
    qs[qs_ggml_4bit_byte(e)] |= (uint8_t)((L[e] & 0xF) << qs_ggml_4bit_shift(e));
    if (qh) qh[qs_ggml_hbit_byte(e)] |= (uint8_t)((L[e] >> 4) << qs_ggml_hbit_shift(e));
  }
}

// y = d·sc·q - dmin·m for one super-block (qh NULL for Q4_K).
static void qs_ggml_k45_dequant(uint16_t dh, uint16_t dminh, const uint8_t *scales, const uint8_t *qs,
                                const uint8_t *qh, float *y) {
  float d = qs_f16_to_f32(dh), min = qs_f16_to_f32(dminh);
  for (int e = 0; e < QS_QK_K; e++) {
    uint8_t sc, m;
    qs_ggml_k4_get_scale_min(scales, e / 32, &sc, &m);
    float d1 = d * sc, m1 = min * m;
    int q = (qs[qs_ggml_4bit_byte(e)] >> qs_ggml_4bit_shift(e)) & 0xF;
    if (qh) q += (qh[qs_ggml_hbit_byte(e)] >> qs_ggml_hbit_shift(e)) & 1 ? 16 : 0;
    y[e] = d1 * q - m1;
  }
}

void qs_ggml_quantize_q4_K_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q4_K *y = out;
  for (int64_t i = 0; i < n / QS_QK_K; i++, x += QS_QK_K) {
    uint8_t L[QS_QK_K];
    qs_ggml_k45_fit(x, imp ? imp + QS_QK_K * i : NULL, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    qs_ggml_k45_requant(x, y[i].d, y[i].dmin, y[i].scales, 15, L);
    qs_ggml_k45_pack(L, y[i].qs, NULL);
  }
}

void qs_ggml_dequant_q4_K_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_q4_K *b = in;
  for (int64_t i = 0; i < n / QS_QK_K; i++, y += QS_QK_K) qs_ggml_k45_dequant(b[i].d, b[i].dmin, b[i].scales, b[i].qs, NULL, y);
}

void qs_ggml_quantize_q5_K_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q5_K *y = out;
  for (int64_t i = 0; i < n / QS_QK_K; i++, x += QS_QK_K) {
    uint8_t L[QS_QK_K];
    qs_ggml_k45_fit(x, imp ? imp + QS_QK_K * i : NULL, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
    qs_ggml_k45_requant(x, y[i].d, y[i].dmin, y[i].scales, 31, L);
    qs_ggml_k45_pack(L, y[i].qs, y[i].qh);
  }
}

void qs_ggml_dequant_q5_K_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_q5_K *b = in;
  for (int64_t i = 0; i < n / QS_QK_K; i++, y += QS_QK_K) qs_ggml_k45_dequant(b[i].d, b[i].dmin, b[i].scales, b[i].qs, b[i].qh, y);
}

// ---- Q6_K: 16 × 16, y = d·sc·(q-32), q 6-bit, sc int8 ----------------------------------------------
// Both paths: fit_symmetric(nmax 32) per sub-block, weights x² without importance and the bare imatrix
// row with it (the reference's sigma2 weighting is commented out for Q6_K); the signed scale of largest
// |.| maps to -128. A block whose scales are all ~0 is written all zero.
void qs_ggml_quantize_q6_K_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q6_K *y = out;
  for (int64_t i = 0; i < n / QS_QK_K; i++, x += QS_QK_K) {
    uint8_t L[QS_QK_K];
    float scales[16], max_abs;
    for (int ib = 0; ib < 16; ib++)
      scales[ib] = qs_ggml_fit_symmetric(16, 32, x + 16 * ib, imp ? imp + QS_QK_K * i + 16 * ib : NULL, L + 16 * ib);
    float max_scale = qs_ggml_find_absmax(16, scales, &max_abs);
    memset(&y[i], 0, sizeof y[i]);
    if (max_abs < QS_GGML_GROUP_MAX_EPS) continue;
    float iscale = -128.f / max_scale;
    y[i].d = qs_f32_to_f16(1 / iscale);
    for (int ib = 0; ib < 16; ib++) {
      int l = qs_ggml_nearest_int(iscale * scales[ib]);
      y[i].scales[ib] = (int8_t)(l < 127 ? l : 127);
    }
    float d = qs_f16_to_f32(y[i].d);
    for (int j = 0; j < 16; j++) qs_ggml_requant_symmetric(16, x + 16 * j, d * y[i].scales[j], 32, L + 16 * j);
    for (int e = 0; e < QS_QK_K; e++) {
      y[i].ql[qs_ggml_q6_ql_byte(e)] |= (uint8_t)((L[e] & 0xF) << qs_ggml_q6_ql_shift(e));
      y[i].qh[qs_ggml_2bit_byte(e)] |= (uint8_t)((L[e] >> 4) << qs_ggml_2bit_shift(e));
    }
  }
}

void qs_ggml_dequant_q6_K_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_q6_K *b = in;
  for (int64_t i = 0; i < n / QS_QK_K; i++, y += QS_QK_K) {
    float d = qs_f16_to_f32(b[i].d);
    for (int e = 0; e < QS_QK_K; e++) {
      int lo = (b[i].ql[qs_ggml_q6_ql_byte(e)] >> qs_ggml_q6_ql_shift(e)) & 0xF;
      int hi = (b[i].qh[qs_ggml_2bit_byte(e)] >> qs_ggml_2bit_shift(e)) & 3;
      y[e] = d * b[i].scales[e / 16] * (int8_t)((lo | hi << 4) - 32);
    }
  }
}
