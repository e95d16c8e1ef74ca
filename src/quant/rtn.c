// rtn.c — the min/max integer grid shared by every GPTQ-family quantizer (AutoGPTQ's Quantizer with
// perchannel=True, mse=False) and round-to-nearest (RTN): the grid applied per group to the original
// weights with no error feedback. Contract and conventions: quant.h.
#include "quant/quant.h"

#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"

struct qs_quant_opts qs_quant_opts_default(void) {
  struct qs_quant_opts o = {.bits = 4, .group_size = 128, .sym = 1, .act_order = 0,
                            .static_groups = 0, .damp = 0.01f, .block_size = 128};
  return o;
}

qs_status qs_quant_opts_check(const struct qs_quant_opts *o, int64_t K, const char *what) {
  qs_status status = QS_OK;
  if (o->bits != 2 && o->bits != 3 && o->bits != 4 && o->bits != 8)
    QS_FAIL(QS_ERR_ARG, "%s: bits = %d, expected 2, 3, 4 or 8", what, o->bits);
  if (o->group_size == 0 || o->group_size < -1)
    QS_FAIL(QS_ERR_ARG, "%s: group size %d, expected -1 or a positive number", what, o->group_size);
  if (!(o->damp >= 0.0f && o->damp < 1.0f))
    QS_FAIL(QS_ERR_ARG, "%s: damp %g, expected 0 <= damp < 1", what, (double)o->damp);
  if (K <= 0) QS_FAIL(QS_ERR_ARG, "%s: %lld input columns", what, (long long)K);
fail:
  return status;
}

int64_t qs_quant_n_groups(int64_t K, int group_size) {
  return group_size <= 0 ? 1 : QS_CEIL_DIV(K, (int64_t)group_size);
}

void qs_quant_g_idx_plain(int64_t K, int group_size, int32_t *g_idx) {
  for (int64_t k = 0; k < K; k++) g_idx[k] = group_size <= 0 ? 0 : (int32_t)(k / group_size);
}

// fp16 rounding of a positive scale, kept usable: 0 (underflow) -> smallest subnormal, inf -> max.
static uint16_t qs_quant_scale_to_f16(float scale) {
  uint16_t h = qs_f32_to_f16(scale);
  if ((h & 0x7FFF) == 0) h = 0x0001;      // 2^-24: a grid finer than fp16 can store
  if ((h & 0x7FFF) >= 0x7C00) h = 0x7BFF; // 65504: codes clamp at the ends of the grid
  return h;
}

struct qs_quant_grid qs_quant_grid_find(const float *x, int64_t n, int bits, int sym, int min_zero) {
  float maxq = (float)((1 << bits) - 1);
  // The range always contains 0 so that 0 is (nearly) representable and a zero point exists.
  float xmin = 0.0f, xmax = 0.0f;
  for (int64_t i = 0; i < n; i++) {
    xmin = x[i] < xmin ? x[i] : xmin;
    xmax = x[i] > xmax ? x[i] : xmax;
  }
  if (sym) {
    xmax = fabsf(xmin) > xmax ? fabsf(xmin) : xmax;
    if (xmin < 0.0f) xmin = -xmax;
  }
  if (xmin == 0.0f && xmax == 0.0f) { // all-zero group: any scale works; the reference uses [-1, 1]
    xmin = -1.0f;
    xmax = 1.0f;
  }
  struct qs_quant_grid g;
  // Round the scale to fp16 first: codes, zero point and error feedback then all use the value the
  // checkpoint stores, so the checkpoint dequantizes to exactly the Q the solver produced.
  g.scale_f16 = qs_quant_scale_to_f16((xmax - xmin) / maxq);
  g.scale = qs_f16_to_f32(g.scale_f16);
  if (sym) {
    g.zero = (maxq + 1.0f) / 2.0f;
  } else {
    // Clamped because the fp16-rounded scale can be a little smaller than the exact one.
    float z = rintf(-xmin / g.scale);
    float zmin = (float)min_zero;
    g.zero = z < zmin ? zmin : (z > maxq ? maxq : z);
  }
  return g;
}

void qs_rtn_quantize_row_ref(const float *x, int64_t K, const struct qs_quant_opts *o, uint8_t *codes,
                             uint16_t *scales, uint8_t *zeros, float *q_out) {
  float maxq = (float)((1 << o->bits) - 1);
  int64_t gs = o->group_size <= 0 ? K : o->group_size;
  for (int64_t g = 0, k0 = 0; k0 < K; g++, k0 += gs) {
    int64_t n = QS_MIN(gs, K - k0); // the last group may be ragged
    struct qs_quant_grid grid = qs_quant_grid_find(x + k0, n, o->bits, o->sym, o->min_zero);
    scales[g] = grid.scale_f16;
    zeros[g] = (uint8_t)grid.zero;
    for (int64_t k = k0; k < k0 + n; k++) {
      float q = qs_quant_code(x[k], grid, maxq);
      codes[k] = (uint8_t)q;
      q_out[k] = qs_quant_dequant(q, grid);
    }
  }
}

qs_status qs_rtn_quantize_rows(float *W, int64_t nrows, int64_t K, const struct qs_quant_opts *o,
                               uint8_t *codes, uint16_t *scales, uint8_t *zeros) {
  qs_status status = QS_OK;
  QS_TRY(qs_quant_opts_check(o, K, "rtn"));
  int64_t G = qs_quant_n_groups(K, o->group_size);
  for (int64_t r = 0; r < nrows; r++) {
    float *w = W + r * K;
    for (int64_t k = 0; k < K; k++)
      if (!isfinite(w[k])) QS_FAIL(QS_ERR_NUMERIC, "rtn: weight [%lld, %lld] is %g", (long long)r,
                                   (long long)k, (double)w[k]);
    qs_rtn_quantize_row_ref(w, K, o, codes + r * K, scales + r * G, zeros + r * G, w);
  }
fail:
  return status;
}
