// ggml_quants.c — the C references of llama.cpp's 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, IQ4_NL, MXFP4) and of F16/BF16: for one row of float32 the exact bytes that ggml_quantize_chunk
// (ggml/src/ggml.c) writes, and the floats of ggml's to_float (dequantize_row_*). Facts from
// ggml/src/ggml-quants.c, ggml-impl.h and ggml-common.h (llama.cpp as vendored by llama-cpp-python
// 0.3.36; tests/py/ggml_oracle.py checks every byte against that build).
//
// What ggml_quantize_chunk runs, per type:
//   imp == NULL  Q4_0..Q5_1, Q8_0, MXFP4: quantize_row_<t>_ref (plain absmax / min-max grids);
//                IQ4_NL: NOT quantize_row_iq4_nl_ref but quantize_iq4_nl with weights x^2 and the
//                scale search (ntry 7); F16/BF16: element-wise conversion.
//   imp != NULL  Q4_0/Q5_0: weighted symmetric search (make_qx_quants), Q4_1/Q5_1: weighted
//                min/scale search (make_qkx3_quants), IQ4_NL: weights imp*sqrt(sigma2 + x^2);
//                Q8_0, MXFP4, F16, BF16 ignore it, as ggml does. The searches the k-quants share are
//                quant/ggml_search.c's; the code layouts ggml_blocks.h's.
// Bit-exactness rests on: float32 arithmetic in ggml's operation order (each product and sum rounded
// on its own: qshard builds with -ffp-contract=off, and llama-cpp-python builds ggml-base for plain
// x86-64, which has no FMA to contract into); sums in index order; ggml's two roundings — the ref
// paths truncate x + 0.5 (or roundf, ties away from zero, for Q8_0), the searches use nearest_int
// (ties to even) — kept per type.
#include <float.h>
#include <math.h>
#include <string.h>

#include "base/dtype.h"
#include "quant/ggml_blocks.h"

// llama.cpp's non-linear 4-bit grid (ggml-common.h kvalues_iq4nl) and MXFP4's E2M1 values doubled
// (kvalues_mxfp4: index bit 3 is the sign; doubled so that the block scale is E8M0/2).
static const int8_t k_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
static const int8_t k_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// GGML_FP32_TO_FP16: round to nearest even, overflow to inf, NaN -> sign|0x7E00. qs_f32_to_f16 is
// the same function (checked on all 2^32 inputs against ggml's ggml_fp32_to_fp16_row).
static inline uint16_t fp16(float f) { return qs_f32_to_f16(f); }

// GGML_FP16_TO_FP32: exact widening, except that ggml builds a NaN by a float multiply, which quiets
// a signaling NaN (sets mantissa bit 22); qs_f16_to_f32 keeps the payload as it is.
static inline float fp16_to_f32(uint16_t h) {
  if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu))
    return bits_f32(((uint32_t)(h & 0x8000u) << 16) | 0x7fc00000u | ((uint32_t)(h & 0x3ffu) << 13));
  return qs_f16_to_f32(h);
}

// ggml's ref paths cast float to int8_t/uint8_t directly (C: undefined out of range). What the x86-64
// build computes is a truncation to int32 (cvttss2si, or cvttps2dq when vectorized) that gives
// INT32_MIN for NaN and for |v| >= 2^31, of which the cast keeps the low byte. Only degenerate blocks
// reach those cases (a scale whose inverse overflows, NaN input), but they must give the same bytes.
static inline int32_t trunc_i32(float v) {
  if (!(v > -2147483648.0f && v < 2147483648.0f)) return INT32_MIN;
  return (int32_t)v;
}
static inline int8_t cast_i8(float v) { return (int8_t)(uint8_t)(uint32_t)trunc_i32(v); }
static inline uint8_t cast_u8(float v) { return (uint8_t)(uint32_t)trunc_i32(v); }

// E8M0 exponent e as 2^(e-128) (GGML_E8M0_TO_FP32_HALF): half the block scale, since the E2M1
// values are stored doubled. e < 2 are float32 subnormals.
static inline float e8m0_half(uint8_t e) {
  return bits_f32(e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23);
}

// The index of the grid value nearest to x (values ascending); a tie goes to the upper value.
static int best_index_int8(int n, const int8_t *val, float x) {
  if (x <= val[0]) return 0;
  if (x >= val[n - 1]) return n - 1;
  int ml = 0, mu = n - 1;
  while (mu - ml > 1) {
    int mav = (ml + mu) / 2;
    if (x < val[mav]) mu = mav;
    else ml = mav;
  }
  return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

// ---- packing: 32 codes of a block (ggml_blocks.h: qs_ggml_nib_* for the 4-bit codes, qs_ggml_bit32_*
// for bit 4 of the 5-bit ones). Q4_0/Q4_1 OR the whole code into its nibble, as ggml does (their codes
// are 0..15); Q5_0/Q5_1 mask, as ggml does (Q5_1's unclipped code may exceed 31).

static void pack_nibbles(const uint8_t L[32], uint8_t qs[16]) {
  memset(qs, 0, 16);
  for (int j = 0; j < 32; j++) qs[qs_ggml_nib_byte(j)] |= (uint8_t)(L[j] << qs_ggml_nib_shift(j));
}

static void unpack_nibbles(const uint8_t qs[16], int q[32]) {
  for (int j = 0; j < 32; j++) q[j] = (qs[qs_ggml_nib_byte(j)] >> qs_ggml_nib_shift(j)) & 15;
}

static void pack_q5(const uint8_t L[32], uint8_t qs[16], uint8_t qh[4]) {
  memset(qs, 0, 16);
  memset(qh, 0, 4);
  for (int j = 0; j < 32; j++) {
    qs[qs_ggml_nib_byte(j)] |= (uint8_t)((L[j] & 15) << qs_ggml_nib_shift(j));
    qh[qs_ggml_bit32_byte(j)] |= (uint8_t)(((L[j] >> 4) & 1) << qs_ggml_bit32_shift(j));
  }
}

static void unpack_q5(const uint8_t qs[16], const uint8_t qh[4], int q[32]) {
  unpack_nibbles(qs, q);
  for (int j = 0; j < 32; j++) q[j] |= ((qh[qs_ggml_bit32_byte(j)] >> qs_ggml_bit32_shift(j)) & 1) << 4;
}

static void min_max(const float *x, int n, float *min, float *max) {
  *min = FLT_MAX;
  *max = -FLT_MAX;
  for (int j = 0; j < n; j++) {
    if (x[j] < *min) *min = x[j];
    if (x[j] > *max) *max = x[j];
  }
}

// ---- importance (the quant_weights paths; the searches are quant/ggml_search.c's)

// The row-wide spread sigma2 = Σx²/n that the legacy types' importance weights are relative to.
static float row_sigma2(const float *x, int64_t n) { return qs_ggml_sum_squares(n, x) / (float)n; }

// The block's weights imp · sqrt(sigma2 + x²) (the importance, raised for the block's large values),
// or NULL without imp.
static const float *imp_weights(const float *x, const float *imp, float sigma2, float w[32]) {
  if (!imp) return NULL;
  qs_ggml_fill_weights(32, x, imp, sigma2, w);
  return w;
}

// Q4_0 / Q5_0 (nmax 8 / 16): x ≈ d·(q - nmax), q in [0, 2·nmax). Without weights the block's signed
// absmax maps to q = 0 (d = max/-nmax) and q = trunc(x/d + nmax + 0.5) clipped to 2·nmax - 1: round
// half up, not nearest_int; the clip catches +absmax, one level beyond the grid. With weights: the
// weighted search (make_qx_quants). Returns d.
static float legacy_fit_sym(const float *x, const float *w, int nmax, uint8_t L[32]) {
  if (w) return qs_ggml_fit_symmetric(32, nmax, x, w, L);
  const float d = qs_ggml_find_absmax(32, x, NULL) / (float)-nmax, id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < 32; j++) {
    const int q = cast_i8(x[j] * id + ((float)nmax + 0.5f));
    L[j] = (uint8_t)(q < 2 * nmax - 1 ? q : 2 * nmax - 1);
  }
  return d;
}

// Q4_1 / Q5_1 (nmax 15 / 31): x ≈ d·q + min, q in [0, nmax]. Without weights min is the block's,
// d = (max - min)/nmax and q = trunc((x - min)/d + 0.5); ggml clips Q4_1's int8 cast at 15 and
// casts Q5_1's to uint8 unclipped (clip 127 on the int8 is that same byte): they differ only where a
// subnormal d makes x/d overshoot. With weights: the weighted min/scale search (make_qkx3_quants).
// Returns d.
static float legacy_fit_affine(const float *x, const float *w, int nmax, int clip, uint8_t L[32], float *min) {
  if (w) {
    float the_min;
    const float d = qs_ggml_fit_affine(32, nmax, x, w, L, &the_min, -0.9f, 0.05f, 36, 0);
    *min = -the_min;
    return d;
  }
  float max;
  min_max(x, 32, min, &max);
  const float d = (max - *min) / (float)nmax, id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < 32; j++) {
    const int q = cast_i8((x[j] - *min) * id + 0.5f);
    L[j] = (uint8_t)(q < clip ? q : clip);
  }
  return d;
}

// ---- F16, BF16: element-wise (ggml_fp32_to_fp16_row; ggml_fp32_to_bf16_row_ref, not the AVX512-BF16
// row that flushes subnormals)

void qs_ggml_quantize_f16_ref(const float *x, const float *imp, int64_t n, void *out) {
  uint16_t *y = out;
  for (int64_t i = 0; i < n; i++) y[i] = fp16(x[i]);
}

void qs_ggml_dequant_f16_ref(const void *in, int64_t n, float *y) {
  const uint16_t *h = in;
  for (int64_t i = 0; i < n; i++) y[i] = fp16_to_f32(h[i]);
}

// qs_f32_to_bf16 is ggml_compute_fp32_to_bf16: round to nearest even, NaN kept and quieted (|0x40).
void qs_ggml_quantize_bf16_ref(const float *x, const float *imp, int64_t n, void *out) {
  uint16_t *y = out;
  for (int64_t i = 0; i < n; i++) y[i] = qs_f32_to_bf16(x[i]);
}

void qs_ggml_dequant_bf16_ref(const void *in, int64_t n, float *y) {
  const uint16_t *h = in;
  for (int64_t i = 0; i < n; i++) y[i] = qs_bf16_to_f32(h[i]);
}

// ---- Q4_0, Q4_1, Q5_0, Q5_1: the fits above, fp16 scale (and min), codes packed (q5: qh).

void qs_ggml_quantize_q4_0_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q4_0 *y = out;
  const float sigma2 = imp ? row_sigma2(x, n) : 0;
  for (int64_t b = 0; b < n / QS_QK4_0; b++) {
    const float *xb = x + b * QS_QK4_0;
    float w[32];
    uint8_t L[32];
    y[b].d = fp16(legacy_fit_sym(xb, imp_weights(xb, imp ? imp + b * QS_QK4_0 : NULL, sigma2, w), 8, L));
    pack_nibbles(L, y[b].qs);
  }
}

void qs_ggml_quantize_q5_0_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q5_0 *y = out;
  const float sigma2 = imp ? row_sigma2(x, n) : 0;
  for (int64_t b = 0; b < n / QS_QK5_0; b++) {
    const float *xb = x + b * QS_QK5_0;
    float w[32];
    uint8_t L[32];
    y[b].d = fp16(legacy_fit_sym(xb, imp_weights(xb, imp ? imp + b * QS_QK5_0 : NULL, sigma2, w), 16, L));
    pack_q5(L, y[b].qs, y[b].qh);
  }
}

void qs_ggml_quantize_q4_1_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q4_1 *y = out;
  const float sigma2 = imp ? row_sigma2(x, n) : 0;
  for (int64_t b = 0; b < n / QS_QK4_1; b++) {
    const float *xb = x + b * QS_QK4_1;
    float w[32], min;
    uint8_t L[32];
    y[b].d = fp16(legacy_fit_affine(xb, imp_weights(xb, imp ? imp + b * QS_QK4_1 : NULL, sigma2, w), 15, 15, L, &min));
    y[b].m = fp16(min);
    pack_nibbles(L, y[b].qs);
  }
}

void qs_ggml_quantize_q5_1_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q5_1 *y = out;
  const float sigma2 = imp ? row_sigma2(x, n) : 0;
  for (int64_t b = 0; b < n / QS_QK5_1; b++) {
    const float *xb = x + b * QS_QK5_1;
    float w[32], min;
    uint8_t L[32];
    y[b].d = fp16(legacy_fit_affine(xb, imp_weights(xb, imp ? imp + b * QS_QK5_1 : NULL, sigma2, w), 31, 127, L, &min));
    y[b].m = fp16(min);
    pack_q5(L, y[b].qs, y[b].qh);
  }
}

void qs_ggml_dequant_q4_0_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_q4_0 *x = in;
  for (int64_t b = 0; b < n / QS_QK4_0; b++) {
    const float d = fp16_to_f32(x[b].d);
    int q[32];
    unpack_nibbles(x[b].qs, q);
    for (int j = 0; j < 32; j++) y[b * 32 + j] = (float)(q[j] - 8) * d;
  }
}

void qs_ggml_dequant_q5_0_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_q5_0 *x = in;
  for (int64_t b = 0; b < n / QS_QK5_0; b++) {
    const float d = fp16_to_f32(x[b].d);
    int q[32];
    unpack_q5(x[b].qs, x[b].qh, q);
    for (int j = 0; j < 32; j++) y[b * 32 + j] = (float)(q[j] - 16) * d;
  }
}

void qs_ggml_dequant_q4_1_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_q4_1 *x = in;
  for (int64_t b = 0; b < n / QS_QK4_1; b++) {
    const float d = fp16_to_f32(x[b].d), m = fp16_to_f32(x[b].m);
    int q[32];
    unpack_nibbles(x[b].qs, q);
    for (int j = 0; j < 32; j++) y[b * 32 + j] = (float)q[j] * d + m;
  }
}

void qs_ggml_dequant_q5_1_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_q5_1 *x = in;
  for (int64_t b = 0; b < n / QS_QK5_1; b++) {
    const float d = fp16_to_f32(x[b].d), m = fp16_to_f32(x[b].m);
    int q[32];
    unpack_q5(x[b].qs, x[b].qh, q);
    for (int j = 0; j < 32; j++) y[b * 32 + j] = (float)q[j] * d + m;
  }
}

// ---- Q8_0: x ≈ d·q, q in [-127, 127], d = absmax/127, q = roundf(x/d) (ties away from zero, with
// the unrounded d). ggml's running max is MAX(amax, |x|), which takes |x| when amax is NaN.

void qs_ggml_quantize_q8_0_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_q8_0 *y = out;
  for (int64_t b = 0; b < n / QS_QK8_0; b++) {
    const float *xb = x + b * QS_QK8_0;
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = amax > fabsf(xb[j]) ? amax : fabsf(xb[j]);
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp16(d);
    for (int j = 0; j < 32; j++) y[b].qs[j] = cast_i8(roundf(xb[j] * id));
  }
}

void qs_ggml_dequant_q8_0_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_q8_0 *x = in;
  for (int64_t b = 0; b < n / QS_QK8_0; b++) {
    const float d = fp16_to_f32(x[b].d);
    for (int j = 0; j < 32; j++) y[b * 32 + j] = (float)x[b].qs[j] * d;
  }
}

// ---- IQ4_NL: x ≈ d·k_iq4nl[q]. ggml_quantize_chunk runs quantize_iq4_nl for both paths (ntry 7):
// weights x² without imp, imp·sqrt(sigma2 + x²) with it, where sigma2 = 2·Σx²/32 is the BLOCK's (not
// the row's). First scale: max/127 and its weighted LS fit; then the 15 grids mapping max to
// -127 + itry (itry in [-7, 7]), keeping the fit of largest sumqx²/sumq2; codes are then re-picked
// (nearest grid value, ties up) for the chosen d. A block with |max| < 1e-15 gets d = 0, codes 0x88.

// The weighted sums of the fit on the codes nearest to id·x: Σw·q·x and Σw·q² (q = grid values).
static void iq4_nl_sums(const float *x, const float *w, float id, float *sumqx, float *sumq2) {
  *sumqx = *sumq2 = 0;
  for (int j = 0; j < 32; j++) {
    const float q = k_iq4nl[best_index_int8(16, k_iq4nl, id * x[j])];
    *sumqx += w[j] * q * x[j];
    *sumq2 += w[j] * q * q;
  }
}

static void iq4_nl_block(const float *x, const float *qw, struct qs_block_iq4_nl *y) {
  const int ntry = 7;
  // ggml's Σx²·(2/32), not the k-quants' 2·Σx²/n: the two round apart at overflow and for subnormals
  const float sigma2 = qs_ggml_sum_squares(32, x) * (2.0f / 32);
  float w[32];
  if (qw) qs_ggml_fill_weights(32, x, qw, sigma2, w);
  else
    for (int j = 0; j < 32; j++) w[j] = x[j] * x[j];
  float amax, scale = 0;
  const float max = qs_ggml_find_absmax(32, x, &amax);
  if (amax >= QS_GGML_GROUP_MAX_EPS) {
    float d = -max / (float)k_iq4nl[0], sumqx, sumq2;
    iq4_nl_sums(x, w, 1 / d, &sumqx, &sumq2);
    d = sumq2 > 0 ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; itry++) {
      iq4_nl_sums(x, w, (float)(itry + k_iq4nl[0]) / max, &sumqx, &sumq2);
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scale = d;
  }
  y->d = fp16(scale);
  const float id = scale != 0.0f ? 1 / scale : 0;
  uint8_t L[32];
  for (int j = 0; j < 32; j++) L[j] = (uint8_t)best_index_int8(16, k_iq4nl, id * x[j]);
  pack_nibbles(L, y->qs);
}

void qs_ggml_quantize_iq4_nl_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_iq4_nl *y = out;
  for (int64_t b = 0; b < n / QS_QK4_NL; b++)
    iq4_nl_block(x + b * QS_QK4_NL, imp ? imp + b * QS_QK4_NL : NULL, &y[b]);
}

void qs_ggml_dequant_iq4_nl_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_iq4_nl *x = in;
  for (int64_t b = 0; b < n / QS_QK4_NL; b++) {
    const float d = fp16_to_f32(x[b].d);
    int q[32];
    unpack_nibbles(x[b].qs, q);
    for (int j = 0; j < 32; j++) y[b * 32 + j] = d * (float)k_iq4nl[q[j]];
  }
}

// ---- MXFP4 (OCP MX): x ≈ 2^(e-127)·E2M1[q], stored as e (E8M0) and q (sign bit 3). e puts the
// absmax at 2^(floor(log2 absmax) - 2) · {4..8}: the largest E2M1 magnitude is 6, so values in
// [6, 8)·2^(..) saturate. Codes: the nearest value of k_mxfp4·2^(e-128), the first on ties. The
// exponent uses libm's log2f (glibc here, as in the oracle); an all-zero block gets e = 0.

void qs_ggml_quantize_mxfp4_ref(const float *x, const float *imp, int64_t n, void *out) {
  struct qs_block_mxfp4 *y = out;
  for (int64_t b = 0; b < n / QS_QK_MXFP4; b++) {
    const float *xb = x + b * QS_QK_MXFP4;
    float amax;
    qs_ggml_find_absmax(32, xb, &amax);
    const uint8_t e = amax > 0.0f ? cast_u8(floorf(log2f(amax)) - 2.0f + 127.0f) : 0;
    const float d = e8m0_half(e);
    y[b].e = e;
    uint8_t L[32];
    for (int j = 0; j < 32; j++) {
      int best = 0;
      float best_err = fabsf((float)k_mxfp4[0] * d - xb[j]);
      for (int i = 1; i < 16; i++) {
        const float err = fabsf((float)k_mxfp4[i] * d - xb[j]);
        if (err < best_err) {
          best = i;
          best_err = err;
        }
      }
      L[j] = (uint8_t)best;
    }
    pack_nibbles(L, y[b].qs);
  }
}

void qs_ggml_dequant_mxfp4_ref(const void *in, int64_t n, float *y) {
  const struct qs_block_mxfp4 *x = in;
  for (int64_t b = 0; b < n / QS_QK_MXFP4; b++) {
    const float d = e8m0_half(x[b].e);
    int q[32];
    unpack_nibbles(x[b].qs, q);
    for (int j = 0; j < 32; j++) y[b * 32 + j] = (float)k_mxfp4[q[j]] * d;
  }
}
