// grid.c — the C reference of the grids (contract: grid.h; the INT grid's arithmetic: grid_int.h).
#include "quant/grid.h"

#include <stdio.h>

#include "quant/grid_ggml.h"

struct qs_grid qs_grid_default(void) {
  return (struct qs_grid){.kind = QS_GRID_INT, .bits = 4, .sym = 1, .group_size = 128, .min_zero = 0,
                          .scale_dtype = QS_DTYPE_F16};
}

struct qs_grid qs_grid_ggml(int ggml_type) {
  return (struct qs_grid){.kind = QS_GRID_GGML, .bits = 8, .sym = 0, .group_size = qs_ggml_blck_size(ggml_type),
                          .scale_dtype = QS_DTYPE_F16, .ggml_type = ggml_type};
}

qs_status qs_grid_check(const struct qs_grid *g, int64_t K, const char *what) {
  qs_status status = QS_OK;
  if (g->kind == QS_GRID_GGML) {
    const char *t = qs_ggml_type_name(g->ggml_type);
    if (!qs_ggml_can_quantize(g->ggml_type)) QS_FAIL(QS_ERR_ARG, "%s: ggml type %s is not one qshard writes", what, t ? t : "?");
    if (K <= 0 || K % qs_ggml_blck_size(g->ggml_type))
      QS_FAIL(QS_ERR_ARG, "%s: %lld input columns are not whole %d-blocks of %s", what, (long long)K,
              qs_ggml_blck_size(g->ggml_type), t);
    return QS_OK;
  }
  if (g->kind != QS_GRID_INT) QS_FAIL(QS_ERR_ARG, "%s: unknown grid kind %d", what, (int)g->kind);
  if (g->bits != 2 && g->bits != 3 && g->bits != 4 && g->bits != 8)
    QS_FAIL(QS_ERR_ARG, "%s: bits = %d, expected 2, 3, 4 or 8", what, g->bits);
  if (g->group_size == 0 || g->group_size < -1)
    QS_FAIL(QS_ERR_ARG, "%s: group size %d, expected -1 or a positive number", what, g->group_size);
  if (g->min_zero < 0 || g->min_zero > 1) QS_FAIL(QS_ERR_ARG, "%s: min_zero %d", what, g->min_zero);
  if (g->scale_dtype != QS_DTYPE_F16 && g->scale_dtype != QS_DTYPE_BF16 && g->scale_dtype != QS_DTYPE_F32)
    QS_FAIL(QS_ERR_ARG, "%s: scale dtype %d, expected F16, BF16 or F32", what, g->scale_dtype);
  if (K <= 0) QS_FAIL(QS_ERR_ARG, "%s: %lld input columns", what, (long long)K);
fail:
  return status;
}

int64_t qs_grid_n_groups(const struct qs_grid *g, int64_t K) {
  if (g->kind == QS_GRID_GGML) return 0; // the blocks carry their scales
  return g->group_size <= 0 ? 1 : QS_CEIL_DIV(K, (int64_t)g->group_size);
}

int64_t qs_grid_row_codes(const struct qs_grid *g, int64_t K) {
  return g->kind == QS_GRID_GGML ? qs_ggml_row_size(g->ggml_type, K) : K;
}

void qs_grid_name(const struct qs_grid *g, char *buf, size_t cap) {
  char gs[32];
  if (g->kind == QS_GRID_GGML) {
    const char *t = qs_ggml_type_name(g->ggml_type);
    snprintf(buf, cap, "ggml %s", t ? t : "?");
    return;
  }
  if (g->group_size > 0) snprintf(gs, sizeof(gs), "g%d", g->group_size);
  else snprintf(gs, sizeof(gs), "per-row");
  snprintf(buf, cap, "int%d %s %s %s scales", g->bits, g->sym ? "sym" : "asym", gs, qs_dtype_name(g->scale_dtype));
}

struct qs_qparams qs_grid_find(const struct qs_grid *g, const float *x, int64_t n) {
  float mn = 0.0f, mx = 0.0f;
  for (int64_t i = 0; i < n; i++) qs_grid_int_minmax(x[i], &mn, &mx);
  return qs_grid_int_params(mn, mx, g->bits, g->sym, g->min_zero, g->scale_dtype);
}

void qs_grid_quantize_row_ref(const struct qs_grid *g, const float *x, const float *imp, int64_t K, uint8_t *codes,
                              float *scales, uint8_t *zeros, float *q_out) {
  if (g->kind == QS_GRID_GGML) { // checked by qs_grid_check: a type with a reference, whole blocks
    (void)qs_ggml_quantize_row_ref(g->ggml_type, x, imp, K, codes);
    (void)qs_ggml_dequant_row_ref(g->ggml_type, codes, K, q_out);
    return;
  }
  int64_t gs = g->group_size <= 0 ? K : g->group_size;
  for (int64_t j = 0, k0 = 0; k0 < K; j++, k0 += gs) {
    int64_t n = QS_MIN(gs, K - k0); // the last group may be ragged
    struct qs_qparams p = qs_grid_find(g, x + k0, n);
    scales[j] = p.scale;
    zeros[j] = (uint8_t)p.zero;
    for (int64_t k = k0; k < k0 + n; k++) {
      float q = qs_grid_code(g, p, x[k]);
      codes[k] = (uint8_t)q;
      q_out[k] = qs_grid_value(g, p, q);
    }
  }
}

void qs_grid_g_idx_contiguous(const struct qs_grid *g, int64_t K, int32_t *g_idx) {
  if (g->kind == QS_GRID_GGML) { // no scale groups: every column maps to the (empty) group 0
    for (int64_t k = 0; k < K; k++) g_idx[k] = 0;
    return;
  }
  for (int64_t k = 0; k < K; k++) g_idx[k] = g->group_size <= 0 ? 0 : (int32_t)(k / g->group_size);
}
