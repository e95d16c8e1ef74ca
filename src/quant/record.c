// record.c — the neutral module record (contract and the state's encoding: record.h).
#include "quant/record.h"

#include <stdlib.h>
#include <string.h>

#include "base/bits.h"
#include "base/parallel.h"
#include "quant/grid_ggml.h"

qs_status qs_qrecord_init(struct qs_qrecord *r, const char *name, int layer, int64_t N, int64_t K,
                          const struct qs_grid *g, int with_bias) {
  qs_status status = QS_OK;
  memset(r, 0, sizeof(*r));
  if (snprintf(r->name, sizeof(r->name), "%s", name) >= (int)sizeof(r->name))
    QS_FAIL(QS_ERR_ARG, "module name too long: %s", name);
  QS_TRY(qs_grid_check(g, K, name));
  r->layer = layer;
  r->N = N;
  r->K = K;
  r->G = qs_grid_n_groups(g, K);
  r->grid = *g;
  QS_ALLOC(r->codes, N * qs_grid_row_codes(g, K));
  QS_ALLOC(r->scales, N * r->G);
  QS_ALLOC(r->zeros, N * r->G);
  QS_ALLOC(r->g_idx, K);
  if (with_bias) QS_ALLOC(r->bias, N);
  return QS_OK;
fail:
  qs_qrecord_free(r);
  return status;
}

void qs_qrecord_free(struct qs_qrecord *r) {
  if (!r) return;
  if (r->release) {
    r->release(r->release_ctx, r);
  } else {
    free(r->codes);
    free(r->scales);
    free(r->zeros);
  }
  free(r->g_idx);
  free(r->bias);
  for (int i = 0; i < r->n_extra; i++) free(r->extra[i].data);
  memset(r, 0, sizeof(*r));
}

qs_status qs_qrecord_add_extra(struct qs_qrecord *r, const char *name, const float *v, int64_t n, float **data) {
  qs_status status = QS_OK;
  if (r->n_extra == QS_QRECORD_MAX_EXTRA) QS_FAIL(QS_ERR_INTERNAL, "%s: no room for %s", r->name, name);
  struct qs_qextra *x = &r->extra[r->n_extra];
  QS_ALLOC(x->data, n);
  if (v) memcpy(x->data, v, (size_t)n * sizeof(float));
  snprintf(x->name, sizeof(x->name), "%s", name);
  x->ndim = 1;
  x->shape[0] = n;
  r->n_extra++;
  if (data) *data = x->data;
fail:
  return status;
}

const float *qs_qrecord_find_extra(const struct qs_qrecord *r, const char *name, int64_t n) {
  for (int i = 0; i < r->n_extra; i++)
    if (!strcmp(r->extra[i].name, name) && r->extra[i].ndim == 1 && r->extra[i].shape[0] == n) return r->extra[i].data;
  return NULL;
}

int qs_qrecord_contiguous(const struct qs_qrecord *r) {
  int gs = r->grid.group_size;
  for (int64_t k = 0; k < r->K; k++)
    if (r->g_idx[k] != (gs <= 0 ? 0 : (int32_t)(k / gs))) return 0;
  return 1;
}

qs_status qs_qrecord_dequant(const struct qs_qrecord *r, float *W) {
  qs_status status = QS_OK;
  if (r->grid.kind == QS_GRID_GGML) {
    const int64_t C = qs_grid_row_codes(&r->grid, r->K);
    for (int64_t n = 0; n < r->N; n++) QS_TRY(qs_ggml_dequant_row_ref(r->grid.ggml_type, r->codes + n * C, r->K, W + n * r->K));
    return QS_OK;
  }
  for (int64_t k = 0; k < r->K; k++)
    if (r->g_idx[k] < 0 || r->g_idx[k] >= r->G)
      QS_FAIL(QS_ERR_FORMAT, "%s: g_idx[%lld] = %d is outside [0, %lld)", r->name, (long long)k, r->g_idx[k],
              (long long)r->G);
  for (int64_t n = 0; n < r->N; n++)
    for (int64_t k = 0; k < r->K; k++) {
      int64_t g = n * r->G + r->g_idx[k];
      struct qs_qparams p = {.scale = r->scales[g], .zero = (float)r->zeros[g]};
      W[n * r->K + k] = qs_grid_value(&r->grid, p, (float)r->codes[n * r->K + k]);
    }
fail:
  return status;
}

// ---- row bit streams ---------------------------------------------------------------------------------

void qs_qrecord_codes_compact(const uint8_t *codes, int64_t n, int bits, uint8_t *out) {
  int64_t nb = (n * bits + 7) / 8, i = 0;
  if (bits == 8) { memcpy(out, codes, (size_t)n); return; }
  memset(out, 0, (size_t)nb);
  if (bits == 4) {
    for (; i + 8 <= n; i += 8) { // a word of 8 codes at a time
      uint32_t w = qs_bits_pack4(qs_bits_load64(codes + i));
      memcpy(out + i / 2, &w, 4);
    }
    for (; i + 1 < n; i += 2) out[i / 2] = (uint8_t)(codes[i] | codes[i + 1] << 4);
    if (i < n) out[i / 2] = codes[i];
    return;
  }
  for (; i < n; i++) { // any width: field i at stream bits [bits*i, bits*i + bits)
    int64_t s = (int64_t)bits * i;
    unsigned v = (unsigned)codes[i] << (s & 7);
    out[s >> 3] |= (uint8_t)v;
    if ((s & 7) + bits > 8) out[(s >> 3) + 1] |= (uint8_t)(v >> 8);
  }
}

void qs_qrecord_codes_expand(const uint8_t *in, int64_t n, int bits, uint8_t *codes) {
  const unsigned mask = (1u << bits) - 1u;
  int64_t i = 0;
  if (bits == 8) { memcpy(codes, in, (size_t)n); return; }
  if (bits == 4) {
    for (; i + 8 <= n; i += 8) {
      uint32_t w;
      memcpy(&w, in + i / 2, 4);
      uint64_t x = qs_bits_unpack4(w);
      memcpy(codes + i, &x, 8);
    }
    for (; i < n; i++) codes[i] = (uint8_t)((in[i / 2] >> (4 * (i & 1))) & 0xF);
    return;
  }
  int64_t nb = (n * bits + 7) / 8;
  for (; i < n; i++) {
    int64_t s = (int64_t)bits * i, b = s >> 3;
    unsigned v = in[b];
    if (b + 1 < nb) v |= (unsigned)in[b + 1] << 8;
    codes[i] = (uint8_t)((v >> (s & 7)) & mask);
  }
}

// ---- the resume state's encoding -----------------------------------------------------------------------

// Rows [r0, r1) of the codes between [N, K] one per byte and [N, row] streams (parallel over rows).
struct rows_job {
  uint8_t *codes, *stream;
  int64_t K, row;
  int bits, expand;
};

static void rows_convert(void *arg, int64_t r0, int64_t r1) {
  const struct rows_job *j = arg;
  for (int64_t n = r0; n < r1; n++)
    if (j->expand) qs_qrecord_codes_expand(j->stream + n * j->row, j->K, j->bits, j->codes + n * j->K);
    else qs_qrecord_codes_compact(j->codes + n * j->K, j->K, j->bits, j->stream + n * j->row);
}

static qs_status add(struct qs_st_writer *w, const char *name, const char *suffix, qs_dtype dt, int ndim,
                     int64_t d0, int64_t d1, const void *data) {
  char full[256];
  int64_t shape[2] = {d0, d1};
  snprintf(full, sizeof(full), "%s.%s", name, suffix);
  return qs_st_writer_add(w, full, dt, ndim, shape, data, 1);
}

qs_status qs_qrecord_save(struct qs_st_writer *w, const struct qs_qrecord *r) {
  qs_status status = QS_OK;
  const int64_t C = qs_grid_row_codes(&r->grid, r->K), row = (C * r->grid.bits + 7) / 8;
  uint8_t *packed = NULL;
  int32_t grid[7] = {(int32_t)r->grid.kind, r->grid.bits,       r->grid.sym,        r->grid.group_size,
                     r->grid.min_zero,      r->grid.scale_dtype, r->grid.ggml_type};
  QS_ALLOC(packed, r->N * row);
  struct rows_job job = {.codes = r->codes, .stream = packed, .K = C, .row = row, .bits = r->grid.bits};
  qs_parallel_for(r->N, 256, rows_convert, &job);
  QS_TRY(add(w, r->name, "codes", QS_DTYPE_U8, 2, r->N, row, packed));
  QS_TRY(add(w, r->name, "scales", QS_DTYPE_F32, 2, r->N, r->G, r->scales));
  QS_TRY(add(w, r->name, "zeros", QS_DTYPE_U8, 2, r->N, r->G, r->zeros));
  QS_TRY(add(w, r->name, "g_idx", QS_DTYPE_I32, 1, r->K, 0, r->g_idx));
  QS_TRY(add(w, r->name, "grid", QS_DTYPE_I32, 1, 7, 0, grid));
  if (r->bias) QS_TRY(add(w, r->name, "bias", QS_DTYPE_F32, 1, r->N, 0, r->bias));
  for (int i = 0; i < r->n_extra; i++) {
    char suffix[48];
    snprintf(suffix, sizeof(suffix), "x.%s", r->extra[i].name);
    QS_TRY(add(w, r->name, suffix, QS_DTYPE_F32, r->extra[i].ndim, r->extra[i].shape[0], r->extra[i].shape[1],
               r->extra[i].data));
  }
fail:
  free(packed);
  return status;
}

// Tensor `name.suffix` of f with dtype dt and shape (ndim dims); NULL when absent and optional.
static qs_status get(const struct qs_st_file *f, const char *name, const char *suffix, qs_dtype dt, int ndim,
                     int64_t d0, int64_t d1, int optional, const struct qs_st_tensor **out) {
  qs_status status = QS_OK;
  char full[256];
  snprintf(full, sizeof(full), "%s.%s", name, suffix);
  const struct qs_st_tensor *t = qs_st_find(f, full);
  *out = t;
  if (!t) {
    if (!optional) QS_FAIL(QS_ERR_FORMAT, "%s: record tensor %s is missing", f->path, full);
    return QS_OK;
  }
  if (t->dtype != dt || t->ndim != ndim || t->shape[0] != d0 || (ndim > 1 && t->shape[1] != d1))
    QS_FAIL(QS_ERR_FORMAT, "%s: record tensor %s has dtype %s and %d dims, expected %s [%lld%s%lld]", f->path, full,
            qs_dtype_name(t->dtype), t->ndim, qs_dtype_name(dt), (long long)d0, ndim > 1 ? ", " : "",
            ndim > 1 ? (long long)d1 : 0LL);
fail:
  return status;
}

qs_status qs_qrecord_load(const struct qs_st_file *f, const char *name, int layer, struct qs_qrecord *r) {
  qs_status status = QS_OK;
  const struct qs_st_tensor *gt, *ct, *st, *zt, *it, *bt;
  memset(r, 0, sizeof(*r));
  int32_t gv[7];
  QS_TRY(get(f, name, "grid", QS_DTYPE_I32, 1, 7, 0, 0, &gt));
  memcpy(gv, gt->data, sizeof(gv)); // a mapping offset need not be 4-aligned
  struct qs_grid g = {.kind = (enum qs_grid_kind)gv[0], .bits = gv[1], .sym = gv[2], .group_size = gv[3],
                      .min_zero = gv[4], .scale_dtype = gv[5], .ggml_type = gv[6]};
  char full[256];
  snprintf(full, sizeof(full), "%s.codes", name);
  const struct qs_st_tensor *c0 = qs_st_find(f, full);
  snprintf(full, sizeof(full), "%s.g_idx", name);
  const struct qs_st_tensor *i0 = qs_st_find(f, full);
  if (!c0 || c0->ndim != 2 || !i0 || i0->ndim != 1)
    QS_FAIL(QS_ERR_FORMAT, "%s: record %s: codes or g_idx missing or not 2-D / 1-D", f->path, name);
  int64_t N = c0->shape[0], K = i0->shape[0];
  QS_TRY(qs_qrecord_init(r, name, layer, N, K, &g, 0));
  const int64_t C = qs_grid_row_codes(&g, K), row = (C * g.bits + 7) / 8;
  QS_TRY(get(f, name, "codes", QS_DTYPE_U8, 2, N, row, 0, &ct));
  QS_TRY(get(f, name, "scales", QS_DTYPE_F32, 2, N, r->G, 0, &st));
  QS_TRY(get(f, name, "zeros", QS_DTYPE_U8, 2, N, r->G, 0, &zt));
  QS_TRY(get(f, name, "g_idx", QS_DTYPE_I32, 1, K, 0, 0, &it));
  QS_TRY(get(f, name, "bias", QS_DTYPE_F32, 1, N, 0, 1, &bt));
  struct rows_job job = {.codes = r->codes, .stream = (uint8_t *)ct->data, .K = C, .row = row, .bits = g.bits,
                         .expand = 1};
  qs_parallel_for(N, 256, rows_convert, &job);
  memcpy(r->scales, st->data, (size_t)(N * r->G) * sizeof(float));
  memcpy(r->zeros, zt->data, (size_t)(N * r->G));
  memcpy(r->g_idx, it->data, (size_t)K * sizeof(int32_t));
  if (bt) {
    QS_ALLOC(r->bias, N);
    memcpy(r->bias, bt->data, (size_t)N * sizeof(float));
  }
  size_t prefix = strlen(name) + 3; // "<name>.x."
  for (size_t i = 0; i < f->n_tensors; i++) {
    const struct qs_st_tensor *t = &f->tensors[i];
    if (strncmp(t->name, name, strlen(name)) || strncmp(t->name + strlen(name), ".x.", 3)) continue;
    if (r->n_extra == QS_QRECORD_MAX_EXTRA || t->dtype != QS_DTYPE_F32 || t->ndim < 1 || t->ndim > 2)
      QS_FAIL(QS_ERR_FORMAT, "%s: record extra tensor %s not supported", f->path, t->name);
    struct qs_qextra *e = &r->extra[r->n_extra];
    snprintf(e->name, sizeof(e->name), "%s", t->name + prefix);
    e->ndim = t->ndim;
    e->shape[0] = t->shape[0];
    e->shape[1] = t->ndim > 1 ? t->shape[1] : 0;
    QS_ALLOC(e->data, qs_st_numel(t));
    r->n_extra++;
    memcpy(e->data, t->data, (size_t)qs_st_numel(t) * sizeof(float));
  }
  for (int64_t k = 0; k < K && g.kind != QS_GRID_GGML; k++)
    if (r->g_idx[k] < 0 || r->g_idx[k] >= r->G)
      QS_FAIL(QS_ERR_FORMAT, "%s: record %s: g_idx[%lld] = %d outside [0, %lld)", f->path, name, (long long)k,
              r->g_idx[k], (long long)r->G);
  return QS_OK;
fail:
  qs_qrecord_free(r);
  return status;
}
