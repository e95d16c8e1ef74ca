// report_doc.c — see report_doc.h: quant_report.json read and checked, the sizes gathered, and the
// Markdown summary. The SVG chart is report_svg.c.
#include "run/report_doc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "run/output.h"
#include "run/summary.h"

// ---- reading ---------------------------------------------------------------------------------------

enum field_type { F_STR, F_INT, F_NUM, F_NUM_OR_NULL, F_BOOL, F_ARRAY, F_OBJECT };
static const char *const k_type_names[] = {"a string", "an integer", "a number", "a number or null", "a boolean",
                                           "an array", "an object"};

static int field_ok(const json_t *v, enum field_type t) {
  switch (t) {
  case F_STR: return json_is_string(v);
  case F_INT: return json_is_integer(v);
  case F_NUM: return json_is_number(v);
  case F_NUM_OR_NULL: return json_is_number(v) || json_is_null(v);
  case F_BOOL: return json_is_boolean(v);
  case F_ARRAY: return json_is_array(v);
  case F_OBJECT: return json_is_object(v);
  }
  return 0;
}

// obj[key], which must exist and be of type t; `where` names obj in the message ("" for the top,
// "modules[3]."). *out borrows from obj.
static qs_status field(const char *file, const json_t *obj, const char *where, const char *key, enum field_type t,
                       json_t **out) {
  qs_status status = QS_OK;
  json_t *v = json_object_get(obj, key);
  if (!v) QS_FAIL(QS_ERR_FORMAT, "%s: missing field \"%s%s\" (%s); is this a qshard quantize report?", file, where,
                  key, k_type_names[t]);
  if (!field_ok(v, t)) QS_FAIL(QS_ERR_FORMAT, "%s: field \"%s%s\" must be %s", file, where, key, k_type_names[t]);
  *out = v;
fail:
  return status;
}

static qs_status field_int(const char *file, const json_t *obj, const char *where, const char *key, long long lo,
                           long long hi, long long *out) {
  qs_status status = QS_OK;
  json_t *v = NULL;
  QS_TRY(field(file, obj, where, key, F_INT, &v));
  *out = (long long)json_integer_value(v);
  if (*out < lo || *out > hi) QS_FAIL(QS_ERR_FORMAT, "%s: field \"%s%s\" = %lld is outside [%lld, %lld]", file, where,
                                      key, *out, lo, hi);
fail:
  return status;
}

// A number or null (NAN); a negative or non-finite number is refused (errors and losses are >= 0).
static qs_status field_nonneg(const char *file, const json_t *obj, const char *where, const char *key, double *out) {
  qs_status status = QS_OK;
  json_t *v = NULL;
  QS_TRY(field(file, obj, where, key, F_NUM_OR_NULL, &v));
  *out = json_is_null(v) ? NAN : json_number_value(v);
  if (!json_is_null(v) && !(*out >= 0 && isfinite(*out)))
    QS_FAIL(QS_ERR_FORMAT, "%s: field \"%s%s\" = %g must be a finite number >= 0 or null", file, where, key, *out);
fail:
  return status;
}

// The module kind of an HF module path: its last component without "_proj" ("q", "gate", ...).
static int module_kind(struct qs_report_doc *d, const char *name) {
  const char *s = strrchr(name, '.');
  char kind[24];
  snprintf(kind, sizeof(kind), "%s", s ? s + 1 : name);
  char *p = strstr(kind, "_proj");
  if (p && p != kind && !p[5]) *p = 0;
  for (int i = 0; i < d->n_kinds; i++)
    if (!strcmp(d->kinds[i], kind)) return i;
  if (d->n_kinds == QS_REPORT_MAX_KINDS) return QS_REPORT_MAX_KINDS - 1; // the last one is "other"
  if (d->n_kinds == QS_REPORT_MAX_KINDS - 1) snprintf(kind, sizeof(kind), "other");
  snprintf(d->kinds[d->n_kinds], sizeof(d->kinds[0]), "%s", kind);
  return d->n_kinds++;
}

static qs_status read_module(struct qs_report_doc *d, const json_t *e, int i) {
  qs_status status = QS_OK;
  struct qs_report_module *m = &d->mods[i];
  char where[48];
  json_t *v = NULL;
  long long x;
  snprintf(where, sizeof(where), "modules[%d].", i);
  if (!json_is_object(e)) QS_FAIL(QS_ERR_FORMAT, "%s: modules[%d] must be an object", d->file, i);
  QS_TRY(field(d->file, e, where, "name", F_STR, &v));
  m->name = json_string_value(v);
  QS_TRY(field_int(d->file, e, where, "layer", 0, 1 << 20, &x));
  m->layer = (int)x;
  QS_TRY(field_int(d->file, e, where, "out_features", 0, 1LL << 40, &m->n));
  QS_TRY(field_int(d->file, e, where, "in_features", 0, 1LL << 40, &m->k));
  QS_TRY(field_nonneg(d->file, e, where, "loss", &m->loss));
  QS_TRY(field_nonneg(d->file, e, where, "rel_output_error", &m->rel_err));
  QS_TRY(field_int(d->file, e, where, "damp_raises", 0, 1 << 20, &x));
  m->damp_raises = (int)x;
  QS_TRY(field(d->file, e, where, "packed", F_BOOL, &v));
  m->packed = json_is_true(v);
  v = json_object_get(e, "damp");
  m->damp = json_is_number(v) ? json_number_value(v) : NAN;
  m->kind = module_kind(d, m->name);
  d->n_layers = QS_MAX(d->n_layers, m->layer + 1);
fail:
  return status;
}

static qs_status read_settings(struct qs_report_doc *d) {
  qs_status status = QS_OK;
  const json_t *r = d->root;
  json_t *v = NULL;
  long long x;
  QS_TRY(field(d->file, r, "", "model", F_STR, &v));
  d->model = json_string_value(v);
  QS_TRY(field(d->file, r, "", "method", F_STR, &v));
  d->method = json_string_value(v);
  QS_TRY(field_int(d->file, r, "", "bits", 1, 64, &x));
  d->bits = (int)x;
  QS_TRY(field_int(d->file, r, "", "group_size", -1, 1LL << 31, &x));
  d->group_size = (int)x;
  QS_TRY(field_int(d->file, r, "", "samples", 0, 1LL << 31, &x));
  d->samples = (int)x;
  QS_TRY(field_int(d->file, r, "", "seqlen", 0, 1LL << 31, &x));
  d->seqlen = (int)x;
  QS_TRY(field(d->file, r, "", "seconds", F_NUM, &v));
  d->seconds = json_number_value(v);
  d->act_order = json_string_value(json_object_get(r, "act_order"));
  d->scale_dtype = json_string_value(json_object_get(r, "scale_dtype"));
  v = json_object_get(r, "sym");
  d->sym = json_is_boolean(v) ? json_is_true(v) : -1;
  v = json_object_get(r, "damp");
  d->damp = json_is_number(v) ? json_number_value(v) : NAN;
  d->ranks = json_is_integer(json_object_get(r, "ranks")) ? (int)json_integer_value(json_object_get(r, "ranks")) : 0;
fail:
  return status;
}

static double num_or_nan(const json_t *v) { return json_is_number(v) ? json_number_value(v) : NAN; }

static void read_eval(struct qs_report_doc *d) {
  const json_t *e = json_object_get(d->root, "eval"), *ref = json_object_get(e, "reference");
  d->eval_data = json_string_value(json_object_get(e, "data"));
  d->ppl = num_or_nan(json_object_get(e, "ppl"));
  d->eval_windows = json_is_integer(json_object_get(e, "windows")) ? json_integer_value(json_object_get(e, "windows")) : 0;
  d->fp_ppl = num_or_nan(json_object_get(ref, "ppl"));
  d->kld = num_or_nan(json_object_get(ref, "kld_mean"));
  d->kld_p99 = num_or_nan(json_object_get(ref, "kld_p99"));
  d->top1 = num_or_nan(json_object_get(ref, "top1_agreement"));
}

// Each output format's directory (placed as output.h says: the first model directory at OUT, the
// others at OUT/<name>) and its weight bytes. A format this build does not know is left out.
static qs_status read_outputs(struct qs_report_doc *d, const char *out_dir) {
  qs_status status = QS_OK;
  struct qs_run_opts a = {0};
  const json_t *fmts = json_object_get(d->root, "formats"), *f;
  size_t i;
  if (fmts && !json_is_array(fmts)) QS_FAIL(QS_ERR_FORMAT, "%s: field \"formats\" must be an array", d->file);
  json_array_foreach(fmts, i, f) {
    if (!json_is_string(f)) QS_FAIL(QS_ERR_FORMAT, "%s: formats[%zu] must be a string", d->file, i);
    const struct qs_format *fmt = qs_format_find(json_string_value(f));
    if (fmt && a.n_formats < QS_REPORT_MAX_OUTS) a.formats[a.n_formats++] = fmt;
  }
  for (int k = 0; k < a.n_formats; k++) {
    struct qs_report_out *o = &d->outs[d->n_outs];
    if (!(o->dir = qs_output_dir(&a, k, out_dir))) QS_FAIL(QS_ERR_OOM, "out of memory");
    o->format = a.formats[k]->name;
    o->bytes = qs_summary_weight_bytes(o->dir, NULL);
    d->n_outs++;
  }
fail:
  return status;
}

// The original checkpoint's parameters and bytes, as the end-of-run summary counts them; NAN when no
// checkpoint is at `model` any more (moved, or another machine's path). One that is there but cannot
// be read is an error naming it.
static qs_status read_original(struct qs_report_doc *d) {
  qs_status status = QS_OK;
  struct qs_ckpt ck;
  char *single = qs_path_join(d->model, "model.safetensors"), *index = qs_path_join(d->model, "model.safetensors.index.json");
  d->params = d->bytes_in = NAN;
  if (!single || !index) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (!qs_path_is_dir(d->model) || !(qs_path_exists(single) || qs_path_exists(index)))
    goto fail; // not there: sizes unknown, not an error
  QS_TRY(qs_ckpt_open(&ck, d->model));
  d->params = d->bytes_in = 0;
  for (size_t i = 0; i < ck.n_tensors; i++) {
    double n = (double)qs_st_numel(ck.by_name[i]);
    d->params += n;
    d->bytes_in += n * (double)qs_dtype_size(ck.by_name[i]->dtype);
  }
  qs_ckpt_close(&ck);
fail:
  free(single);
  free(index);
  return status;
}

static void choose_metric(struct qs_report_doc *d) {
  int rel = 0, loss = 0;
  for (int i = 0; i < d->n_mods; i++) {
    rel |= isfinite(d->mods[i].rel_err);
    loss |= isfinite(d->mods[i].loss);
  }
  d->metric = rel ? QS_REPORT_METRIC_REL_ERR : loss ? QS_REPORT_METRIC_LOSS : QS_REPORT_METRIC_NONE;
}

qs_status qs_report_doc_load(struct qs_report_doc *d, const char *out_dir) {
  qs_status status = QS_OK;
  json_error_t err;
  json_t *mods;
  *d = (struct qs_report_doc){0};
  if (!qs_path_is_dir(out_dir))
    QS_FAIL(QS_ERR_IO, "%s: no such directory (expected the --out directory of qshard quantize)", out_dir);
  if (!(d->file = qs_path_join(out_dir, "quant_report.json"))) QS_FAIL(QS_ERR_OOM, "out of memory");
  FILE *f = fopen(d->file, "rb");
  if (!f) QS_FAIL(QS_ERR_IO, "%s: cannot open: %s (qshard quantize writes it into OUT)", d->file, strerror(errno));
  d->root = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
  fclose(f);
  if (!d->root) QS_FAIL(QS_ERR_FORMAT, "%s: not JSON (line %d, column %d: %s)", d->file, err.line, err.column, err.text);
  if (!json_is_object(d->root)) QS_FAIL(QS_ERR_FORMAT, "%s: not a JSON object", d->file);
  QS_TRY(read_settings(d));
  QS_TRY(field(d->file, d->root, "", "modules", F_ARRAY, &mods));
  d->n_mods = (int)json_array_size(mods);
  QS_ALLOC(d->mods, d->n_mods);
  for (int i = 0; i < d->n_mods; i++) QS_TRY(read_module(d, json_array_get(mods, (size_t)i), i));
  choose_metric(d);
  read_eval(d);
  QS_TRY(read_outputs(d, out_dir));
  QS_TRY(read_original(d));
  return QS_OK;
fail:
  qs_report_doc_free(d);
  return status;
}

void qs_report_doc_free(struct qs_report_doc *d) {
  for (int i = 0; i < d->n_outs; i++) free(d->outs[i].dir);
  free(d->mods);
  json_decref(d->root);
  free(d->file);
  *d = (struct qs_report_doc){0};
}

double qs_report_doc_value(const struct qs_report_doc *d, const struct qs_report_module *m) {
  return d->metric == QS_REPORT_METRIC_REL_ERR ? m->rel_err : d->metric == QS_REPORT_METRIC_LOSS ? m->loss : NAN;
}

const char *qs_report_doc_metric_name(const struct qs_report_doc *d) {
  return d->metric == QS_REPORT_METRIC_REL_ERR ? "relative output error" : d->metric == QS_REPORT_METRIC_LOSS ? "loss" : "error";
}

// ---- Markdown ----------------------------------------------------------------------------------------

// Text as Markdown: ASCII punctuation that Markdown (or a table's '|') would read is backslash-escaped,
// line breaks become spaces.
static void md_text(FILE *o, const char *s) {
  for (; s && *s; s++) {
    if (strchr("\\`*_[]<>|#!~", *s)) fputc('\\', o);
    fputc(*s == '\n' || *s == '\r' ? ' ' : *s, o);
  }
}

static void md_num(FILE *o, double v) {
  if (isfinite(v)) fprintf(o, "%.4g", v);
  else fputs("–", o);
}

static void md_settings(FILE *o, const struct qs_report_doc *d) {
  fprintf(o, "## Settings\n\n| setting | value |\n|---|---|\n| model | ");
  md_text(o, d->model);
  fprintf(o, " |\n| method | ");
  md_text(o, d->method);
  fprintf(o, " |\n| bits | %d%s |\n| group size | ", d->bits, d->sym < 0 ? "" : d->sym ? " (symmetric)" : " (asymmetric)");
  if (d->group_size > 0) fprintf(o, "%d |\n", d->group_size);
  else fprintf(o, "per row |\n");
  fprintf(o, "| act-order | ");
  md_text(o, d->act_order ? d->act_order : "–");
  fprintf(o, " |\n| scale dtype | ");
  md_text(o, d->scale_dtype ? d->scale_dtype : "–");
  fprintf(o, " |\n| damping | ");
  md_num(o, d->damp);
  fprintf(o, " |\n| formats | ");
  const json_t *f;
  size_t i;
  json_array_foreach(json_object_get(d->root, "formats"), i, f) {
    if (i) fputs(", ", o);
    md_text(o, json_string_value(f));
  }
  if (d->samples > 0) fprintf(o, " |\n| calibration | %d samples × %d tokens |\n", d->samples, d->seqlen);
  else fprintf(o, " |\n| calibration | none |\n");
  if (d->ranks > 0) fprintf(o, "| ranks | %d |\n", d->ranks);
}

// "name, name, ... (N)" of the modules with pick(m) true, the first `show`.
static void md_module_list(FILE *o, const struct qs_report_doc *d, int (*pick)(const struct qs_report_module *), int show) {
  int n = 0;
  for (int i = 0; i < d->n_mods; i++)
    if (pick(&d->mods[i])) {
      if (n < show) {
        fputs(n ? ", " : "", o);
        md_text(o, d->mods[i].name);
      }
      n++;
    }
  if (n > show) fprintf(o, ", ... (%d more)", n - show);
}

static int is_dense(const struct qs_report_module *m) { return !m->packed; }
static int is_raised(const struct qs_report_module *m) { return m->damp_raises > 0; }

static void md_totals(FILE *o, const struct qs_report_doc *d) {
  int dense = 0, raised = 0;
  for (int i = 0; i < d->n_mods; i++) dense += is_dense(&d->mods[i]), raised += is_raised(&d->mods[i]);
  fprintf(o, "\n## Totals\n\n- linear modules: %d quantized", d->n_mods - dense);
  if (dense) {
    fprintf(o, ", %d kept dense (the first format cannot pack their shape): ", dense);
    md_module_list(o, d, is_dense, 20);
  } else {
    fprintf(o, " (none kept dense)");
  }
  if (isfinite(d->params)) {
    fprintf(o, "\n- parameters: %.4g M; original checkpoint %.1f MB\n", d->params / 1e6, d->bytes_in / 1e6);
  } else {
    fprintf(o, "\n- original checkpoint: not found at ");
    md_text(o, d->model);
    fprintf(o, " (sizes before and bits per parameter not shown)\n");
  }
  for (int i = 0; i < d->n_outs; i++) {
    fprintf(o, "- ");
    md_text(o, d->outs[i].format);
    fprintf(o, " in ");
    md_text(o, d->outs[i].dir);
    if (d->outs[i].bytes <= 0) fprintf(o, ": no weight files found\n");
    else if (isfinite(d->params) && d->params > 0)
      fprintf(o, ": %.1f MB (from %.1f MB, %.2f bits per parameter)\n", d->outs[i].bytes / 1e6, d->bytes_in / 1e6,
              8.0 * d->outs[i].bytes / d->params);
    else fprintf(o, ": %.1f MB\n", d->outs[i].bytes / 1e6);
  }
  if (isfinite(d->ppl)) {
    fprintf(o, "- perplexity of the written checkpoint on ");
    md_text(o, d->eval_data ? d->eval_data : "?");
    if (d->eval_windows > 0) fprintf(o, " (%lld windows)", d->eval_windows);
    if (isfinite(d->fp_ppl))
      fprintf(o, ": %.4f → %.4f (%+.2f %%), KLD %.6f (p99 %.6f), top-1 agreement %.2f %%\n", d->fp_ppl, d->ppl,
              100.0 * (d->ppl / d->fp_ppl - 1.0), d->kld, d->kld_p99, 100.0 * d->top1);
    else fprintf(o, ": %.4f\n", d->ppl);
  } else {
    fprintf(o, "- perplexity: not evaluated (quantize --eval)\n");
  }
  fprintf(o, "- damping raised (Cholesky retried) in %d module%s", raised, raised == 1 ? "" : "s");
  if (raised) fputs(": ", o), md_module_list(o, d, is_raised, 20);
  fprintf(o, "\n- quantize time: %.2f s (layers, wall)\n", d->seconds);
}

struct ranked {
  double v; // the module's value (NAN: none)
  int i;    // its index in the document
};

// Descending value, modules without one last, then file order (a deterministic ranking).
static int by_value_desc(const void *pa, const void *pb) {
  const struct ranked *a = pa, *b = pb;
  if (isfinite(a->v) != isfinite(b->v)) return isfinite(a->v) ? -1 : 1;
  if (isfinite(a->v) && a->v != b->v) return a->v > b->v ? -1 : 1;
  return (a->i > b->i) - (a->i < b->i);
}

static qs_status md_worst(FILE *o, const struct qs_report_doc *d) {
  qs_status status = QS_OK;
  struct ranked *order = NULL;
  fprintf(o, "\n## Worst modules by %s\n\n", qs_report_doc_metric_name(d));
  if (d->metric == QS_REPORT_METRIC_NONE) {
    fprintf(o, "The report holds no per-module error or loss (RTN without --calib records neither).\n");
    return QS_OK;
  }
  QS_ALLOC(order, d->n_mods);
  for (int i = 0; i < d->n_mods; i++) order[i] = (struct ranked){qs_report_doc_value(d, &d->mods[i]), i};
  qsort(order, (size_t)d->n_mods, sizeof(*order), by_value_desc);
  fprintf(o, "| # | module | shape (out × in) | rel. error | loss | damping | kept dense |\n|---|---|---|---|---|---|---|\n");
  for (int i = 0; i < d->n_mods && i < 10 && isfinite(order[i].v); i++) {
    const struct qs_report_module *m = &d->mods[order[i].i];
    fprintf(o, "| %d | ", i + 1);
    md_text(o, m->name);
    fprintf(o, " | %lld × %lld | ", m->n, m->k);
    md_num(o, m->rel_err);
    fputs(" | ", o);
    md_num(o, m->loss);
    fputs(" | ", o);
    md_num(o, m->damp);
    fprintf(o, "%s | %s |\n", m->damp_raises ? " (raised)" : "", m->packed ? "" : "yes");
  }
fail:
  free(order);
  return status;
}

// One row per layer that has modules: their count, mean and max value, the worst module.
static void md_layers(FILE *o, const struct qs_report_doc *d) {
  const char *metric = d->metric == QS_REPORT_METRIC_LOSS ? "loss" : "rel. error";
  fprintf(o, "\n## Per layer\n\n| layer | modules | mean %s | max %s | worst module |\n|---|---|---|---|---|\n", metric, metric);
  for (int l = 0; l < d->n_layers; l++) {
    int n = 0, n_val = 0;
    double sum = 0;
    const struct qs_report_module *worst = NULL;
    for (int i = 0; i < d->n_mods; i++) {
      const struct qs_report_module *m = &d->mods[i];
      double v = qs_report_doc_value(d, m);
      if (m->layer != l) continue;
      n++;
      if (!isfinite(v)) continue;
      n_val++, sum += v;
      if (!worst || v > qs_report_doc_value(d, worst)) worst = m;
    }
    if (!n) continue;
    fprintf(o, "| %d | %d | ", l, n);
    md_num(o, n_val ? sum / n_val : NAN);
    fputs(" | ", o);
    md_num(o, worst ? qs_report_doc_value(d, worst) : NAN);
    fputs(" | ", o);
    md_text(o, worst ? worst->name : "–");
    fputs(" |\n", o);
  }
}

qs_status qs_report_doc_markdown(const struct qs_report_doc *d, const char *svg_name, char **text, size_t *len) {
  qs_status status = QS_OK;
  const char *base = strrchr(d->model, '/');
  FILE *o = open_memstream(text, len);
  if (!o) QS_FAIL(QS_ERR_OOM, "open_memstream: %s", strerror(errno));
  fprintf(o, "# Quantization report: ");
  md_text(o, base && base[1] ? base + 1 : d->model);
  fprintf(o, "\n\nFrom ");
  md_text(o, d->file);
  fprintf(o, " (`qshard report`).\n\n");
  md_settings(o, d);
  md_totals(o, d);
  QS_TRY(md_worst(o, d));
  md_layers(o, d);
  fprintf(o, "\n![per-module error](%s)\n", svg_name);
fail:
  if (o && (fclose(o) != 0 || status != QS_OK)) {
    free(*text);
    *text = NULL;
    if (status == QS_OK) status = qs_report(QS_ERR_OOM, __FILE__, __LINE__, __func__, "out of memory rendering Markdown");
  }
  return status;
}
