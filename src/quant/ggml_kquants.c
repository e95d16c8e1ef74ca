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
// Inputs are expected finite (callers reject NaN/Inf); nearest_int is exact for |f| <= 4194303.
#include <math.h>
#include <string.h>

#include "base/dtype.h"
#include "quant/ggml_blocks.h"
#include "quant/grid_ggml.h"

#define QS_GGML_GROUP_MAX_EPS 1e-15f // below this amax a group counts as all zero (GROUP_MAX_EPS)

static inline int qs_ggml_clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// The signed value of largest magnitude (the first one on ties) and that magnitude.
static float qs_ggml_signed_absmax(int n, const float *x, float *amax) {
  float max = 0;
  *amax = 0;
  for (int i = 0; i < n; i++) {
    float ax = fabsf(x[i]);
    if (ax > *amax) {
      *amax = ax;
      max = x[i];
    }
  }
  return max;
}

// ---- sub-block fits ----------------------------------------------------------------------------

// make_qkx2_quants (make_qkx3_quants is the same function once weights are given): the affine grid
// x ≈ scale*L + min, L in [0, nmax], min <= 0, minimizing Σ w·|e| (use_mad) or Σ w·e². It starts from
// the min/max grid and tries the stretched grids iscale = (rmin + rdelta*is + nmax)/range, is = 0..nstep,
// each with the weighted least-squares (scale, min) of its codes; a candidate must be strictly better.
// Returns the scale; *neg_min = -min (>= 0; -0.0f when min is 0) is the "min" the block stores.
static float qs_ggml_fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                                float rmin, float rdelta, int nstep, int use_mad) {
  float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    memset(L, 0, (size_t)n);
    *neg_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min), scale = 1 / iscale, best = 0;
  for (int i = 0; i < n; i++) {
    L[i] = (uint8_t)qs_ggml_clamp(qs_ggml_nearest_int(iscale * (x[i] - min)), 0, nmax);
    float diff = scale * L[i] + min - x[i];
    best += w[i] * (use_mad ? fabsf(diff) : diff * diff);
  }
  uint8_t Laux[32];
  for (int is = 0; nstep >= 1 && is <= nstep; is++) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; i++) {
      int l = qs_ggml_clamp(qs_ggml_nearest_int(iscale * (x[i] - min)), 0, nmax);
      Laux[i] = (uint8_t)l;
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) continue;
    float s = (sum_w * sum_xl - sum_x * sum_l) / D, m = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (m > 0) { // the grid must reach 0 from below: refit the scale alone
      m = 0;
      s = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; i++) {
      float diff = s * Laux[i] + m - x[i];
      err += w[i] * (use_mad ? fabsf(diff) : diff * diff);
    }
    if (err < best) {
      memcpy(L, Laux, (size_t)n);
      best = err;
      scale = s;
      min = m;
    }
  }
  *neg_min = -min;
  return scale;
}

// One pass of make_qx_quants at a given iscale: codes l = clamp(round(iscale*x), -nmax, nmax-1),
// stored as l + nmax, and the weighted sums Σ w·x·l, Σ w·l² (w = qw, else x²).
static void qs_ggml_sym_pass(int n, int nmax, const float *x, const float *qw, float iscale, int8_t *L,
                             float *sumlx, float *suml2) {
  *sumlx = *suml2 = 0;
  for (int i = 0; i < n; i++) {
    int l = qs_ggml_clamp(qs_ggml_nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = (int8_t)(l + nmax);
    float w = qw ? qw[i] : x[i] * x[i];
    *sumlx += w * x[i] * l;
    *suml2 += w * l * l;
  }
}

// make_qx_quants(rmse_type 1): the symmetric grid x ≈ scale*l, l in [-nmax, nmax-1], scaled so the
// largest |x| lands on -nmax, then 18 stretched grids; keeps the one with the largest
// (Σ w·x·l)² / Σ w·l² (the least weighted error at its best scale). L gets l + nmax (all 0 for an
// all-zero group). Returns the least-squares scale (its sign follows the largest |x|).
static float qs_ggml_fit_symmetric(int n, int nmax, const float *x, const float *qw, int8_t *L) {
  float amax, max = qs_ggml_signed_absmax(n, x, &amax);
  if (amax < QS_GGML_GROUP_MAX_EPS) {
    memset(L, 0, (size_t)n);
    return 0.f;
  }
  float sumlx, suml2;
  qs_ggml_sym_pass(n, nmax, x, qw, -nmax / max, L, &sumlx, &suml2);
  float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
  for (int is = -9; is <= 9; is++) {
    if (!is) continue;
    int8_t Laux[32];
    qs_ggml_sym_pass(n, nmax, x, qw, -(nmax + 0.1f * is) / max, Laux, &sumlx, &suml2);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      memcpy(L, Laux, (size_t)n);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// make_q3_quants(do_rmse): the symmetric grid of fit_symmetric without the stretched grids, then up
// to 5 rounds of coordinate descent, each code moved to its best value given the others (weights x²)
// while that raises (Σ w·x·l)² / Σ w·l². L gets l + nmax (all 0 for an all-zero group).
static float qs_ggml_fit_q3(int n, int nmax, const float *x, int8_t *L) {
  float amax, max = qs_ggml_signed_absmax(n, x, &amax);
  if (amax < QS_GGML_GROUP_MAX_EPS) {
    memset(L, 0, (size_t)n);
    return 0.f;
  }
  float iscale = -nmax / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    int l = qs_ggml_clamp(qs_ggml_nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = (int8_t)l;
    float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; itry++) {
    int changed = 0;
    for (int i = 0; i < n; i++) {
      float w = x[i] * x[i], slx = sumlx - w * x[i] * L[i];
      if (!(slx > 0)) continue;
      float sl2 = suml2 - w * L[i] * L[i];
      int nl = qs_ggml_clamp(qs_ggml_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (nl == L[i]) continue;
      slx += w * x[i] * nl;
      sl2 += w * nl * nl;
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = (int8_t)nl;
        sumlx = slx;
        suml2 = sl2;
        changed++;
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// make_qp_quants: the importance path's quantizer of a block's (non-negative) sub-block scales or
// mins onto 0..nmax times one step, weighted by each sub-block's total weight w. The best of 9 grids
// by weighted squared error, then coordinate descent as in fit_q3. L is uint8 as in the reference
// (a negative code would wrap there; the sums of the last pass use the unwrapped value).
static float qs_ggml_fit_steps(int n, int nmax, const float *x, uint8_t *L, const float *w) {
  float max = 0;
  for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
  if (max < QS_GGML_GROUP_MAX_EPS) {
    memset(L, 0, (size_t)n);
    return 0.f;
  }
  float iscale = nmax / max, scale = 1 / iscale, best = 0;
  for (int i = 0; i < n; i++) L[i] = (uint8_t)qs_ggml_nearest_int(iscale * x[i]);
  for (int i = 0; i < n; i++) {
    float diff = x[i] - scale * L[i];
    best += w[i] * diff * diff;
  }
  for (int is = -4; is <= 4; is++) {
    if (!is) continue;
    float iscale_is = (0.1f * is + nmax) / max, scale_is = 1 / iscale_is, mse = 0;
    for (int i = 0; i < n; i++) {
      int l = qs_ggml_nearest_int(iscale_is * x[i]);
      float diff = x[i] - scale_is * (l < nmax ? l : nmax);
      mse += w[i] * diff * diff;
    }
    if (mse < best) {
      best = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    int l = qs_ggml_nearest_int(iscale * x[i]);
    l = l < nmax ? l : nmax;
    L[i] = (uint8_t)l;
    sumlx += w[i] * x[i] * l;
    suml2 += w[i] * l * l;
  }
  for (int itry = 0; itry < 5; itry++) {
    int changed = 0;
    for (int i = 0; i < n; i++) {
      float slx = sumlx - w[i] * x[i] * L[i], sl2 = suml2 - w[i] * L[i] * L[i];
      if (!(slx > 0 && sl2 > 0)) continue;
      int nl = qs_ggml_nearest_int(x[i] * sl2 / slx);
      nl = nl < nmax ? nl : nmax;
      if (nl == L[i]) continue;
      slx += w[i] * x[i] * nl;
      sl2 += w[i] * nl * nl;
      if (slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = (uint8_t)nl;
        sumlx = slx;
        suml2 = sl2;
        changed++;
      }
    }
    if (!changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// The importance path's per-value weight: imatrix × sqrt(sigma2 + x²), sigma2 = f·Σx²/256 over the
// super-block (f = 1 for Q2_K, 2 for the others) — columns that matter, and large values, weigh more.
static float qs_ggml_sigma2(const float *x, float f) {
  float sumx2 = 0;
  for (int j = 0; j < QS_QK_K; j++) sumx2 += x[j] * x[j];
  return f * sumx2 / QS_QK_K;
}

// Codes of an affine sub-block from the stored scale: L = clamp(round((x + dm)/d), 0, nmax). d == 0
// keeps the fit's codes (the reference skips the sub-block).
static void qs_ggml_requant_affine(int n, const float *x, float d, float dm, int nmax, uint8_t *L) {
  if (!d) return;
  for (int i = 0; i < n; i++) L[i] = (uint8_t)qs_ggml_clamp(qs_ggml_nearest_int((x[i] + dm) / d), 0, nmax);
}

// The same for a symmetric sub-block: L = clamp(round(x/d), -half, half-1) + half.
static void qs_ggml_requant_symmetric(int n, const float *x, float d, int half, int8_t *L) {
  if (!d) return;
  for (int i = 0; i < n; i++) L[i] = (int8_t)(qs_ggml_clamp(qs_ggml_nearest_int(x[i] / d), -half, half - 1) + half);
}

// ---- layouts -------------------------------------------------------------------------------------
// Where element e (0..255) of a super-block keeps its bits; pack and dequant share these.
// 2-bit codes (Q2_K, Q3_K low bits): qs[32·(e/128) + e%32], bits 2·((e%128)/32).
static inline int qs_ggml_2bit_byte(int e) { return 32 * (e / 128) + e % 32; }
static inline int qs_ggml_2bit_shift(int e) { return 2 * (e % 128 / 32); }
// 4-bit codes (Q4_K, Q5_K low bits): qs[32·(e/64) + e%32], the high nibble for the second 32 of a 64.
static inline int qs_ggml_4bit_byte(int e) { return 32 * (e / 64) + e % 32; }
static inline int qs_ggml_4bit_shift(int e) { return 4 * (e / 32 % 2); }
// One high bit per element (Q3_K hmask, Q5_K qh): byte e%32, bit e/32.
// Q6_K: low nibble in ql[64·(e/128) + 32·((e/32)%2) + e%32] at bits 4·((e%128)/64); the 2 high bits
// in qh[32·(e/128) + e%32] at bits 2·((e%128)/32).
static inline int qs_ggml_q6_ql_byte(int e) { return 64 * (e / 128) + 32 * (e / 32 % 2) + e % 32; }
static inline int qs_ggml_q6_ql_shift(int e) { return 4 * (e % 128 / 64); }

static void qs_ggml_pack_2bit(const uint8_t *L, uint8_t *qs) {
  memset(qs, 0, QS_QK_K / 4);
  for (int e = 0; e < QS_QK_K; e++) qs[qs_ggml_2bit_byte(e)] |= (uint8_t)((L[e] & 3) << qs_ggml_2bit_shift(e));
}

// Q4_K / Q5_K: 8 six-bit scales and 8 six-bit mins in 12 bytes. Sub-blocks 0..3 take the low 6 bits of
// bytes 0..3 (scale) and 4..7 (min); 4..7 put their low nibbles in bytes 8..11 (scale low, min high)
// and their top 2 bits in the top bits of bytes j-4 (scale) and j (min). Called for j = 0..7 in order
// on zeroed bytes. The uint8 truncation of an out-of-range code is the reference's.
static void qs_ggml_k4_put_scale_min(uint8_t *q, int j, uint8_t ls, uint8_t lm) {
  if (j < 4) {
    q[j] = ls;
    q[j + 4] = lm;
  } else {
    q[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
    q[j - 4] |= (uint8_t)((ls >> 4) << 6);
    q[j] |= (uint8_t)((lm >> 4) << 6);
  }
}

static void qs_ggml_k4_get_scale_min(const uint8_t *q, int j, uint8_t *sc, uint8_t *m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q3_K: 16 six-bit codes (scale + 32) in 12 bytes: low nibbles in bytes 0..7 (sub-blocks 8..15 in the
// high nibbles), the top 2 bits of sub-block j in byte 8 + j%4 at bits 2·(j/4).
static void qs_ggml_q3_put_scale(uint8_t *q, int j, int l) {
  q[j % 8] |= (uint8_t)((l & 0xF) << (j < 8 ? 0 : 4));
  q[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}

static int qs_ggml_q3_get_scale(const uint8_t *q, int j) {
  int lo = j < 8 ? q[j] & 0xF : q[j - 8] >> 4;
  return lo | (((q[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
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
  float sigma2 = qs_ggml_sigma2(x, 1);
  for (int j = 0; j < 16; j++) {
    sw[j] = 0;
    for (int l = 0; l < 16; l++) w[l] = qw[16 * j + l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
    for (int l = 0; l < 16; l++) sw[j] += w[l];
    scales[j] = qs_ggml_fit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.9f, 0.05f, 36, 0);
  }
  b->d = qs_f32_to_f16(qs_ggml_fit_steps(16, 15, scales, Ls, sw));
  b->dmin = qs_f32_to_f16(qs_ggml_fit_steps(16, 15, mins, Lm, sw));
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
static void qs_ggml_q3_K_fit_ref(const float *x, struct qs_block_q3_K *b, int8_t *L) {
  float scales[16], max_scale = 0, amax = 0;
  for (int j = 0; j < 16; j++) {
    scales[j] = qs_ggml_fit_q3(16, 4, x + 16 * j, L + 16 * j);
    if (fabsf(scales[j]) > amax) {
      amax = fabsf(scales[j]);
      max_scale = scales[j];
    }
  }
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
static void qs_ggml_q3_K_fit_imp(const float *x, const float *qw, struct qs_block_q3_K *b, int8_t *L) {
  float scales[16], sw[16], w[16];
  int8_t Ls[16];
  float sigma2 = qs_ggml_sigma2(x, 2);
  for (int j = 0; j < 16; j++) {
    for (int l = 0; l < 16; l++) w[l] = qw[16 * j + l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
    float sumw = 0;
    for (int l = 0; l < 16; l++) sumw += w[l];
    sw[j] = sumw;
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
    int8_t L[QS_QK_K];
    if (imp) qs_ggml_q3_K_fit_imp(x, imp + QS_QK_K * i, &y[i], L);
    else qs_ggml_q3_K_fit_ref(x, &y[i], L);
    float d = qs_f16_to_f32(y[i].d);
    for (int j = 0; j < 16; j++)
      qs_ggml_requant_symmetric(16, x + 16 * j, d * (int8_t)(qs_ggml_q3_get_scale(y[i].scales, j) - 32), 4, L + 16 * j);
    // codes 0..7: the high bit goes to hmask, the low 2 bits to qs
    uint8_t lo[QS_QK_K];
    memset(y[i].hmask, 0, sizeof y[i].hmask);
    for (int e = 0; e < QS_QK_K; e++) {
      if (L[e] > 3) y[i].hmask[e % 32] |= (uint8_t)(1 << (e / 32));
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
      y[e] = dl * (q - ((b[i].hmask[e % 32] >> (e / 32)) & 1 ? 0 : 4));
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
  float sigma2 = qw ? qs_ggml_sigma2(x, 2) : 0;
  for (int j = 0; j < 8; j++) {
    const float *xj = x + 32 * j;
    if (qw) {
      for (int l = 0; l < 32; l++) w[l] = qw[32 * j + l] * sqrtf(sigma2 + xj[l] * xj[l]);
      float sumw = 0;
      for (int l = 0; l < 32; l++) sumw += w[l];
      sw[j] = sumw;
      scales[j] = qs_ggml_fit_affine(32, nmax, xj, w, L + 32 * j, &mins[j], -0.9f, 0.05f, 36, 0);
      continue;
    }
    float sum_x2 = 0;
    for (int l = 0; l < 32; l++) sum_x2 += xj[l] * xj[l];
    float av_x = sqrtf(sum_x2 / 32);
    for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xj[l]);
    scales[j] = nmax == 15 ? qs_ggml_fit_affine(32, 15, xj, w, L + 32 * j, &mins[j], -1.f, 0.1f, 20, 0)
                           : qs_ggml_fit_affine(32, 31, xj, w, L + 32 * j, &mins[j], -0.5f, 0.1f, 15, 0);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  memset(q, 0, QS_K_SCALE_SIZE);
  if (qw) {
    uint8_t Ls[8], Lm[8];
    float d_block = qs_ggml_fit_steps(8, 63, scales, Ls, sw), m_block = qs_ggml_fit_steps(8, 63, mins, Lm, sw);
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

void qs_ggml_quantize_q4_K_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q4_K *y = out;
  for (int64_t i = 0; i < n / QS_QK_K; i++, x += QS_QK_K) {
    uint8_t L[QS_QK_K];
    qs_ggml_k45_fit(x, imp ? imp + QS_QK_K * i : NULL, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
    qs_ggml_k45_requant(x, y[i].d, y[i].dmin, y[i].scales, 15, L);
    memset(y[i].qs, 0, sizeof y[i].qs);
    for (int e = 0; e < QS_QK_K; e++) y[i].qs[qs_ggml_4bit_byte(e)] |= (uint8_t)(L[e] << qs_ggml_4bit_shift(e));
  }
}

void qs_ggml_dequant_q4_K_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_q4_K *b = in;
  for (int64_t i = 0; i < n / QS_QK_K; i++, y += QS_QK_K) {
    float d = qs_f16_to_f32(b[i].d), min = qs_f16_to_f32(b[i].dmin);
    for (int e = 0; e < QS_QK_K; e++) {
      uint8_t sc, m;
      qs_ggml_k4_get_scale_min(b[i].scales, e / 32, &sc, &m);
      float d1 = d * sc, m1 = min * m;
      y[e] = d1 * ((b[i].qs[qs_ggml_4bit_byte(e)] >> qs_ggml_4bit_shift(e)) & 0xF) - m1;
    }
  }
}

void qs_ggml_quantize_q5_K_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q5_K *y = out;
  for (int64_t i = 0; i < n / QS_QK_K; i++, x += QS_QK_K) {
    uint8_t L[QS_QK_K];
    qs_ggml_k45_fit(x, imp ? imp + QS_QK_K * i : NULL, 31, &y[i].d, &y[i].dmin, y[i].scales, L);
    qs_ggml_k45_requant(x, y[i].d, y[i].dmin, y[i].scales, 31, L);
    memset(y[i].qs, 0, sizeof y[i].qs);
    memset(y[i].qh, 0, sizeof y[i].qh);
    for (int e = 0; e < QS_QK_K; e++) {
      y[i].qs[qs_ggml_4bit_byte(e)] |= (uint8_t)((L[e] & 0xF) << qs_ggml_4bit_shift(e));
      y[i].qh[e % 32] |= (uint8_t)((L[e] >> 4) << (e / 32));
    }
  }
}

void qs_ggml_dequant_q5_K_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_q5_K *b = in;
  for (int64_t i = 0; i < n / QS_QK_K; i++, y += QS_QK_K) {
    float d = qs_f16_to_f32(b[i].d), min = qs_f16_to_f32(b[i].dmin);
    for (int e = 0; e < QS_QK_K; e++) {
      uint8_t sc, m;
      qs_ggml_k4_get_scale_min(b[i].scales, e / 32, &sc, &m);
      float d1 = d * sc, m1 = min * m;
      int q = ((b[i].qs[qs_ggml_4bit_byte(e)] >> qs_ggml_4bit_shift(e)) & 0xF);
      q += (b[i].qh[e % 32] >> (e / 32)) & 1 ? 16 : 0;
      y[e] = d1 * q - m1;
    }
  }
}

// ---- Q6_K: 16 × 16, y = d·sc·(q-32), q 6-bit, sc int8 ----------------------------------------------
// Both paths: fit_symmetric(nmax 32) per sub-block, weights x² without importance and the bare imatrix
// row with it (the reference's sigma2 weighting is commented out for Q6_K); the signed scale of largest
// |.| maps to -128. A block whose scales are all ~0 is written all zero.
void qs_ggml_quantize_q6_K_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q6_K *y = out;
  for (int64_t i = 0; i < n / QS_QK_K; i++, x += QS_QK_K) {
    int8_t L[QS_QK_K];
    float scales[16], max_scale = 0, max_abs = 0;
    for (int ib = 0; ib < 16; ib++) {
      scales[ib] = qs_ggml_fit_symmetric(16, 32, x + 16 * ib, imp ? imp + QS_QK_K * i + 16 * ib : NULL, L + 16 * ib);
      if (fabsf(scales[ib]) > max_abs) {
        max_abs = fabsf(scales[ib]);
        max_scale = scales[ib];
      }
    }
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
