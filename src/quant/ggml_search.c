// ggml_search.c — llama.cpp's grid searches (ggml-quants.c make_qx_quants, make_qkx2_quants /
// make_qkx3_quants, make_q3_quants, make_qp_quants) and their helpers, once for the references of the
// 32-blocks (ggml_quants.c: the importance paths of Q4_0..Q5_1) and of the k-quants (ggml_kquants.c).
// Declared in ggml_blocks.h. Each search fits one group of n <= 32 values with weights and returns its
// scale; codes go to L (uint8: every final code is non-negative).
//
// Bit-exactness: the reference's float32 operations in its order (products grouped as written there,
// sums sequential; -ffp-contract=off here, no FMA in ggml-base's x86-64 build), its rounding
// (nearest_int, ties to even) and its comparisons (a candidate grid must be strictly better, so ties
// keep the earlier one).
#include <math.h>
#include <string.h>

#include "quant/ggml_blocks.h"

float qs_ggml_find_absmax(int n, const float *x, float *amax) {
  float max = 0, a = 0;
  for (int i = 0; i < n; i++)
    if (fabsf(x[i]) > a) {
      a = fabsf(x[i]);
      max = x[i];
    }
  if (amax) *amax = a;
  return max;
}

float qs_ggml_sum_squares(int64_t n, const float *x) {
  float sum = 0;
  for (int64_t i = 0; i < n; i++) sum += x[i] * x[i];
  return sum;
}

float qs_ggml_fill_weights(int n, const float *x, const float *imp, float sigma2, float *w) {
  float sum = 0;
  for (int i = 0; i < n; i++) w[i] = imp[i] * sqrtf(sigma2 + x[i] * x[i]);
  for (int i = 0; i < n; i++) sum += w[i];
  return sum;
}

// ---- make_qx_quants ------------------------------------------------------------------------------

// One grid at iscale: l = clamp(nearest_int(iscale·x), -nmax, nmax-1), stored as l + nmax, and the
// weighted sums Σ w·x·l, Σ w·l² (w NULL: x²).
static void sym_pass(int n, int nmax, const float *x, const float *w, float iscale, uint8_t *L, float *sumlx,
                     float *suml2) {
  *sumlx = *suml2 = 0;
  for (int i = 0; i < n; i++) {
    int l = qs_ggml_clamp(qs_ggml_nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = (uint8_t)(l + nmax);
    float wi = w ? w[i] : x[i] * x[i];
    *sumlx += wi * x[i] * l;
    *suml2 += wi * l * l;
  }
}

// make_qx_quants with rmse_type 1 (llama.cpp passes weights x² where it has no importance: w NULL).
// n values x, nmax the grid's half-width (Q4_0 8, Q5_0 16, Q3_K 4, Q6_K and the Q3_K scales 32).
// The grid maps the largest |x| to -nmax, then 18 stretched grids -(nmax + 0.1·is)/max, is = ±1..±9;
// each gets its weighted least-squares scale Σw·x·l / Σw·l² and the one of largest (Σw·x·l)²/Σw·l²
// (least weighted squared error) is kept. L = l + nmax, all 0 for an all-zero group (scale 0). Returns
// the scale, whose sign follows the largest |x|.
float qs_ggml_fit_symmetric(int n, int nmax, const float *x, const float *w, uint8_t *L) {
  float amax, max = qs_ggml_find_absmax(n, x, &amax);
  if (amax < QS_GGML_GROUP_MAX_EPS) {
    memset(L, 0, (size_t)n);
    return 0.f;
  }
  float sumlx, suml2;
  sym_pass(n, nmax, x, w, -nmax / max, L, &sumlx, &suml2);
  float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
  for (int is = -9; is <= 9; is++) {
    if (!is) continue;
    uint8_t Laux[32];
    sym_pass(n, nmax, x, w, -(nmax + 0.1f * is) / max, Laux, &sumlx, &suml2);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      memcpy(L, Laux, (size_t)n);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// ---- make_qkx2_quants / make_qkx3_quants ------------------------------------------------------------

// The affine grid x ≈ scale·L + min, L in [0, nmax], min <= 0, with weights w (required), minimizing
// Σ w·|e| (use_mad: Q2_K without importance) or Σ w·e² (make_qkx3_quants is this once weights are
// given, use_mad off). It starts from the min/max grid and tries the stretched grids
// iscale = (rmin + rdelta·is + nmax)/(max - min), is = 0..nstep (nstep < 1: none), each with the
// weighted least-squares (scale, min) of its codes (a min above 0 refits the scale alone); a candidate
// must be strictly better. The callers' (rmin, rdelta, nstep): Q4_1/Q5_1 and every importance path
// (-0.9, 0.05, 36); Q2_K (-0.5, 0.1, 15); Q4_K (-1, 0.1, 20); Q5_K (-0.5, 0.1, 15). Returns the scale;
// *neg_min = -min (>= 0; -0.0f when min is 0) is the "min" the k-quants store.
float qs_ggml_fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, float rmin,
                         float rdelta, int nstep, int use_mad) {
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

// ---- make_q3_quants, make_qp_quants (k-quants only) --------------------------------------------------

// make_q3_quants(do_rmse), Q3_K without importance: the first grid of fit_symmetric (weights x²)
// without the stretched ones, then up to 5 rounds of coordinate descent, each code moved to its best
// value given the others while that raises (Σ w·x·l)² / Σ w·l². L = l + nmax (all 0 for an all-zero
// group). The descent works on the signed l, as int8 like the reference's.
float qs_ggml_fit_q3(int n, int nmax, const float *x, uint8_t *L) {
  float amax, max = qs_ggml_find_absmax(n, x, &amax);
  if (amax < QS_GGML_GROUP_MAX_EPS) {
    memset(L, 0, (size_t)n);
    return 0.f;
  }
  int8_t l8[32];
  float iscale = -nmax / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    int l = qs_ggml_clamp(qs_ggml_nearest_int(iscale * x[i]), -nmax, nmax - 1);
    l8[i] = (int8_t)l;
    float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; itry++) {
    int changed = 0;
    for (int i = 0; i < n; i++) {
      float w = x[i] * x[i], slx = sumlx - w * x[i] * l8[i];
      if (!(slx > 0)) continue;
      float sl2 = suml2 - w * l8[i] * l8[i];
      int nl = qs_ggml_clamp(qs_ggml_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (nl == l8[i]) continue;
      slx += w * x[i] * nl;
      sl2 += w * nl * nl;
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        l8[i] = (int8_t)nl;
        sumlx = slx;
        suml2 = sl2;
        changed++;
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; i++) L[i] = (uint8_t)(l8[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// make_qp_quants: the importance path's quantizer of a block's (non-negative) sub-block scales or mins
// x onto 0..nmax times one step, weighted by each sub-block's total weight w. The best of 9 grids
// (nmax + 0.1·is)/max, is = -4..4, by weighted squared error, then coordinate descent as in fit_q3.
// L is uint8 as in the reference (a negative code would wrap there; the sums of the last pass use the
// unwrapped value). Returns the step.
float qs_ggml_fit_steps(int n, int nmax, const float *x, const float *w, uint8_t *L) {
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
