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
//                Q8_0, MXFP4, F16, BF16 ignore it, as ggml does.
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
#include "quant/grid_ggml.h"
#include "quant/grid_ggml.h"

#define GROUP_MAX_EPS 1e-15f // below this |max| a group is all zero (ggml-quants.c)

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

// ---- packing: 32 codes of a block, element j in the low nibble of byte j and element j+16 in the
// high nibble; 5-bit codes add their bit 4 as bit j (element j) of the little-endian uint32 qh.

static void pack_nibbles(const uint8_t L[32], uint8_t qs[16]) {
  for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
}

static void unpack_nibbles(const uint8_t qs[16], int q[32]) {
  for (int j = 0; j < 16; j++) {
    q[j] = qs[j] & 15;
    q[j + 16] = qs[j] >> 4;
  }
}

static void pack_q5(const uint8_t L[32], uint8_t qs[16], uint8_t qh[4]) {
  uint32_t h = 0;
  for (int j = 0; j < 16; j++) {
    qs[j] = (uint8_t)((L[j] & 15) | (L[j + 16] & 15) << 4);
    h |= (uint32_t)((L[j] & 0x10u) >> 4) << j;
    h |= (uint32_t)((L[j + 16] & 0x10u) >> 4) << (j + 16);
  }
  for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> 8 * k);
}

static void unpack_q5(const uint8_t qs[16], const uint8_t qh[4], int q[32]) {
  uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
  for (int j = 0; j < 16; j++) {
    q[j] = (qs[j] & 15) | (int)((h >> j) & 1) << 4;
    q[j + 16] = (qs[j] >> 4) | (int)((h >> (j + 16)) & 1) << 4;
  }
}

// The signed value of largest magnitude (the first one on ties): the symmetric types map it to the
// grid's negative end, which has one level more than the positive one.
static float signed_absmax(const float *x, int n, float *amax_out) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; j++)
    if (amax < fabsf(x[j])) {
      amax = fabsf(x[j]);
      max = x[j];
    }
  if (amax_out) *amax_out = amax;
  return max;
}

static void min_max(const float *x, int n, float *min, float *max) {
  *min = FLT_MAX;
  *max = -FLT_MAX;
  for (int j = 0; j < n; j++) {
    if (x[j] < *min) *min = x[j];
    if (x[j] > *max) *max = x[j];
  }
}

// ---- importance searches (the quant_weights paths)

// make_qx_quants with weights w (rmse_type 1): codes L in [0, 2·nmax) for x ≈ scale·(L - nmax).
// Grids map max to -(nmax + 0.1·is), is = 0 then ±1..±9; each gets its weighted least-squares scale
// Σw·x·l / Σw·l², and the grid of largest (Σw·x·l)²/Σw·l² (least weighted squared error) is kept.
// Returns the scale (0 for an all-zero group).
static float qx_quants(int n, int nmax, const float *x, uint8_t *L, const float *w) {
  float amax;
  const float max = signed_absmax(x, n, &amax);
  if (amax < GROUP_MAX_EPS) {
    memset(L, 0, (size_t)n);
    return 0.0f;
  }
  float iscale = (float)-nmax / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    int l = qs_ggml_nearest_int(iscale * x[i]);
    l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
    L[i] = (uint8_t)(l + nmax);
    sumlx += w[i] * x[i] * (float)l;
    suml2 += w[i] * (float)l * (float)l;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f, best = scale * sumlx;
  for (int is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = -((float)nmax + 0.1f * (float)is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; i++) {
      int l = qs_ggml_nearest_int(iscale * x[i]);
      l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
      sumlx += w[i] * x[i] * (float)l;
      suml2 += w[i] * (float)l * (float)l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; i++) {
        int l = qs_ggml_nearest_int(iscale * x[i]);
        L[i] = (uint8_t)(nmax + (l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// make_qkx3_quants with weights w, use_mad false: codes L in [0, nmax] for x ≈ scale*L - the_min,
// the min never above 0. Starts from the min/max grid, then tries nstep+1 grids of
// (rmin + rdelta·is + nmax) levels over [min, max], each with its weighted least-squares scale and
// min, keeping the one of least weighted squared error.
static float qkx3_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, float rmin,
                         float rdelta, int nstep) {
  uint8_t Laux[32];
  float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max <= min) {
    memset(L, 0, (size_t)n);
    *the_min = -min;
    return 0.0f;
  }
  float iscale = (float)nmax / (max - min), scale = 1 / iscale, best_mad = 0;
  for (int i = 0; i < n; i++) {
    int l = qs_ggml_nearest_int(iscale * (x[i] - min));
    L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
    float diff = scale * (float)L[i] + min - x[i];
    best_mad += w[i] * (diff * diff);
  }
  for (int is = 0; is <= nstep; is++) {
    iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; i++) {
      int l = qs_ggml_nearest_int(iscale * (x[i] - min));
      l = l < 0 ? 0 : l > nmax ? nmax : l;
      Laux[i] = (uint8_t)l;
      sum_l += w[i] * (float)l;
      sum_l2 += w[i] * (float)l * (float)l;
      sum_xl += w[i] * (float)l * x[i];
    }
    float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float mad = 0;
      for (int i = 0; i < n; i++) {
        float diff = this_scale * (float)Laux[i] + this_min - x[i];
        mad += w[i] * (diff * diff);
      }
      if (mad < best_mad) {
        memcpy(L, Laux, (size_t)n);
        best_mad = mad;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// The row-wide spread sigma2 = Σx²/n that the legacy types' importance weights are relative to.
static float row_sigma2(const float *x, int64_t n) {
  float sum_x2 = 0;
  for (int64_t j = 0; j < n; j++) sum_x2 += x[j] * x[j];
  return sum_x2 / (float)n;
}

// The block's weights imp · sqrt(sigma2 + x²) (the importance, raised for the block's large values),
// or NULL without imp.
static const float *imp_weights(const float *x, const float *imp, float sigma2, float w[32]) {
  if (!imp) return NULL;
  for (int j = 0; j < 32; j++) w[j] = imp[j] * sqrtf(sigma2 + x[j] * x[j]);
  return w;
}

// Q4_0 / Q5_0 (nmax 8 / 16): x ≈ d·(q - nmax), q in [0, 2·nmax). Without weights the block's signed
// absmax maps to q = 0 (d = max/-nmax) and q = trunc(x/d + nmax + 0.5) clipped to 2·nmax - 1: round
// half up, not nearest_int; the clip catches +absmax, one level beyond the grid. With weights: the
// weighted search. Returns d.
static float fit_sym(const float *x, const float *w, int nmax, uint8_t L[32]) {
  if (w) return qx_quants(32, nmax, x, L, w);
  const float d = signed_absmax(x, 32, NULL) / (float)-nmax, id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < 32; j++) {
    const int q = cast_i8(x[j] * id + ((float)nmax + 0.5f));
    L[j] = (uint8_t)(q < 2 * nmax - 1 ? q : 2 * nmax - 1);
  }
  return d;
}

// Q4_1 / Q5_1 (nmax 15 / 31): x ≈ d·q + min, q in [0, nmax]. Without weights min is the block's,
// d = (max - min)/nmax and q = trunc((x - min)/d + 0.5); ggml clips Q4_1's int8 cast at 15 and
// casts Q5_1's to uint8 unclipped (clip 127 on the int8 is that same byte): they differ only where a
// subnormal d makes x/d overshoot. With weights: the weighted min/scale search. Returns d.
static float fit_affine(const float *x, const float *w, int nmax, int clip, uint8_t L[32], float *min) {
  if (w) {
    float the_min;
    const float d = qkx3_quants(32, nmax, x, w, L, &the_min, -0.9f, 0.05f, 36);
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
    y[b].d = fp16(fit_sym(xb, imp_weights(xb, imp ? imp + b * QS_QK4_0 : NULL, sigma2, w), 8, L));
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
    y[b].d = fp16(fit_sym(xb, imp_weights(xb, imp ? imp + b * QS_QK5_0 : NULL, sigma2, w), 16, L));
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
    y[b].d = fp16(fit_affine(xb, imp_weights(xb, imp ? imp + b * QS_QK4_1 : NULL, sigma2, w), 15, 15, L, &min));
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
    y[b].d = fp16(fit_affine(xb, imp_weights(xb, imp ? imp + b * QS_QK5_1 : NULL, sigma2, w), 31, 127, L, &min));
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
  float sigma2 = 0, w[32];
  for (int j = 0; j < 32; j++) sigma2 += x[j] * x[j];
  sigma2 *= 2.0f / 32;
  for (int j = 0; j < 32; j++) w[j] = qw ? qw[j] * sqrtf(sigma2 + x[j] * x[j]) : x[j] * x[j];
  float amax, scale = 0;
  const float max = signed_absmax(x, 32, &amax);
  if (amax >= GROUP_MAX_EPS) {
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
    signed_absmax(xb, 32, &amax);
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
