// formats.c — the format table (format.h) and what the model-directory writers share.
#include "formats/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/outdir.h"

extern const struct qs_format qs_format_gptq, qs_format_ct, qs_format_awq, qs_format_trtllm, qs_format_gguf;

// One row per format; a format is its own file plus its row here.
static const struct qs_format *const k_formats[] = {&qs_format_gptq, &qs_format_ct, &qs_format_awq, &qs_format_trtllm,
                                                    &qs_format_gguf};
#define QS_N_FORMATS (sizeof(k_formats) / sizeof(k_formats[0]))

const struct qs_format *qs_format_find(const char *name) {
  for (size_t i = 0; i < QS_N_FORMATS; i++)
    if (!strcmp(k_formats[i]->name, name)) return k_formats[i];
  return NULL;
}

const char *qs_format_names(void) {
  static char buf[160];
  if (!buf[0])
    for (size_t i = 0; i < QS_N_FORMATS; i++) {
      size_t n = strlen(buf);
      snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "|" : "", k_formats[i]->name);
    }
  return buf;
}

const struct qs_format *qs_format_for_dir(const char *dir) {
  for (size_t i = 0; i < QS_N_FORMATS; i++)
    if (k_formats[i]->is_dir && k_formats[i]->is_dir(dir)) return k_formats[i];
  return NULL;
}

const struct qs_format *qs_format_detect(const json_t *qc, char *msg, size_t cap) {
  for (size_t i = 0; i < QS_N_FORMATS; i++)
    if (k_formats[i]->detect && k_formats[i]->detect(qc)) return k_formats[i];
  const char *m = json_string_value(json_object_get(qc, "quant_method"));
  snprintf(msg, cap, "quantization_config with quant_method '%s' is not a format qshard reads (%s)", m ? m : "?",
           qs_format_names());
  return NULL;
}

int qs_format_scale_dtype(const struct qs_format *const *fmts, int n, qs_dtype model) {
  unsigned ok = 1u << QS_DTYPE_F16 | 1u << QS_DTYPE_BF16 | 1u << QS_DTYPE_F32;
  for (int i = 0; i < n; i++) ok &= fmts[i]->scale_dtypes;
  const int pref[] = {(int)model, QS_DTYPE_F16, QS_DTYPE_BF16, QS_DTYPE_F32};
  for (size_t i = 0; i < sizeof(pref) / sizeof(pref[0]); i++)
    if (ok & 1u << pref[i]) return pref[i];
  return -1;
}

qs_status qs_fdir_init(struct qs_fdir *d, const struct qs_format *fmt, const struct qs_format_run *fr, const char *dir) {
  qs_status status = QS_OK;
  memset(d, 0, sizeof(*d));
  d->base = (struct qs_fwriter){.fmt = fmt, .fr = fr};
  if (!(d->dir = strdup(dir))) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(qs_st_writer_init(&d->st, dir, fr->max_shard_bytes));
fail:
  return status;
}

void qs_fdir_free(struct qs_fdir *d) {
  qs_st_writer_free(d->st);
  for (int i = 0; i < d->n_replaced; i++) free(d->replaced[i]);
  free(d->replaced);
  free(d->dir);
  memset(d, 0, sizeof(*d));
}

qs_status qs_fdir_replaced(struct qs_fdir *d, const char *prefix, const char *suffix) {
  qs_status status = QS_OK;
  if (d->n_replaced == d->cap_replaced) {
    int cap = d->cap_replaced ? 2 * d->cap_replaced : 256;
    char **p = realloc(d->replaced, (size_t)cap * sizeof(*p));
    if (!p) QS_FAIL(QS_ERR_OOM, "out of memory");
    d->replaced = p;
    d->cap_replaced = cap;
  }
  size_t n = strlen(prefix) + strlen(suffix) + 2;
  QS_ALLOC(d->replaced[d->n_replaced], n);
  snprintf(d->replaced[d->n_replaced], n, "%s.%s", prefix, suffix);
  d->n_replaced++;
fail:
  return status;
}

qs_status qs_fdir_dense(struct qs_fdir *d, const struct qs_st_tensor *t) {
  for (int i = 0; i < d->n_replaced; i++)
    if (!strcmp(d->replaced[i], t->name)) return QS_OK;
  return qs_st_writer_add(d->st, t->name, t->dtype, t->ndim, t->shape, t->data, 0); // mapped until written
}

qs_status qs_fdir_dense_record(struct qs_fdir *d, const struct qs_qrecord *r) {
  qs_status status = QS_OK;
  const float *s_in = qs_qrecord_find_extra(r, QS_QRECORD_X_SCALES, r->K),
              *s_out = qs_qrecord_find_extra(r, QS_QRECORD_X_OUT_SCALES, r->N);
  float *W = NULL, *b = NULL;
  void *buf = NULL;
  char name[192];
  if (!s_in && !s_out) return QS_OK; // the input's tensors pass through as they are
  snprintf(name, sizeof(name), "%s.weight", r->name);
  const struct qs_st_tensor *t = qs_ckpt_find(d->base.fr->ckpt, name);
  if (!t || t->ndim != 2 || t->shape[0] != r->N || t->shape[1] != r->K || !qs_dtype_is_float(t->dtype))
    QS_FAIL(QS_ERR_FORMAT, "%s: missing, or not a float [%lld, %lld] tensor", name, (long long)r->N, (long long)r->K);
  QS_ALLOC(W, r->N * r->K);
  qs_convert_to_f32(t->data, t->dtype, W, (size_t)(r->N * r->K));
  // as the engine folded them: the group's columns first, then the rows feeding the next group
  for (int64_t n = 0; n < r->N; n++)
    for (int64_t k = 0; k < r->K; k++) {
      float v = W[n * r->K + k];
      if (s_in) v *= s_in[k];
      if (s_out) v /= s_out[n];
      W[n * r->K + k] = v;
    }
  QS_ALLOC(*(uint8_t **)&buf, (size_t)(r->N * r->K) * qs_dtype_size(t->dtype));
  qs_convert_from_f32(W, t->dtype, buf, (size_t)(r->N * r->K));
  QS_TRY(qs_format_add(d->st, r->name, "weight", t->dtype, 2, r->N, r->K, buf));
  QS_TRY(qs_fdir_replaced(d, r->name, "weight"));
  if (r->bias) { // the record's bias is the folded one
    QS_ALLOC(b, r->N);
    memcpy(b, r->bias, (size_t)r->N * sizeof(float));
    qs_convert_from_f32(b, t->dtype, buf, (size_t)r->N);
    QS_TRY(qs_format_add(d->st, r->name, "bias", t->dtype, 1, r->N, 0, buf));
    QS_TRY(qs_fdir_replaced(d, r->name, "bias"));
  }
fail:
  free(W);
  free(b);
  free(buf);
  return status;
}

qs_status qs_format_add(struct qs_st_writer *w, const char *prefix, const char *suffix, qs_dtype dt, int ndim,
                        int64_t d0, int64_t d1, const void *data) {
  char name[256];
  int64_t shape[2] = {d0, d1};
  snprintf(name, sizeof(name), "%s.%s", prefix, suffix);
  return qs_st_writer_add(w, name, dt, ndim, shape, data, 1);
}

qs_status qs_format_write_config(const struct qs_format_run *fr, const char *dir, json_t *qc) {
  qs_status status = QS_OK;
  if (!qc) QS_FAIL(QS_ERR_OOM, "out of memory building quantization_config");
  QS_TRY(qs_outdir_write_config(fr->model_dir, dir, "quantization_config", qc));
  QS_TRY(qs_outdir_copy_aux(fr->model_dir, dir));
fail:
  json_decref(qc);
  return status;
}

qs_status qs_format_record_lin(const struct qs_format_run *fr, const struct qs_qrecord *r, int *lin) {
  qs_status status = QS_OK;
  int l = -1, off = 0;
  if (sscanf(r->name, "model.layers.%d.%n", &l, &off) != 1 || off == 0 || l != r->layer)
    QS_FAIL(QS_ERR_INTERNAL, "%s: not a linear of decoder layer %d", r->name, r->layer);
  *lin = qs_layout_find(qs_layout_of(fr->cfg), r->name + off);
  if (*lin < 0) QS_FAIL(QS_ERR_INTERNAL, "%s: not a linear of the layout", r->name);
fail:
  return status;
}

double qs_format_float_json(float f) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.6g", (double)f);
  return strtod(buf, NULL);
}
