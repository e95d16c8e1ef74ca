// progress.c — progress lines, --log-json and the --metrics-file of `qshard quantize` (progress.h).
#include "run/progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm.h"
#include "run/engine.h"

json_t *qs_json_num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static double unix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// One compact JSON object on stdout (rank 0 only; no rank prefix, so every line parses).
static void print_json(const char *event, json_t *fields) {
  json_t *o = json_pack("{s:s, s:f}", "event", event, "ts", unix_now());
  if (o && fields) json_object_update(o, fields);
  char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
  if (s) fprintf(stdout, "%s\n", s);
  else fprintf(stdout, "{\"event\": \"%s\", \"error\": \"out of memory\"}\n", event);
  fflush(stdout);
  free(s);
  json_decref(o);
}

void qs_progress_note(const struct qs_qrun *run, const char *event, json_t *fields, const char *fmt, ...) {
  if (qs_comm_rank(run->world) == 0) {
    if (run->a->log_json) {
      print_json(event, fields);
    } else {
      char msg[2048];
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(msg, sizeof(msg), fmt, ap);
      va_end(ap);
      qs_log0("%s", msg);
    }
  }
  json_decref(fields);
}

void qs_progress_stage_note(const struct qs_qrun *run, const char *event, json_t *fields, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (run->grid->S == 1) {
    qs_progress_note(run, event, fields, "%s", msg);
    return;
  }
  if (qs_comm_rank(run->data) == 0) {
    if (run->a->log_json) {
      if (!fields) fields = json_object();
      if (fields) json_object_set_new(fields, "stage", json_integer(run->grid->stage));
      print_json(event, fields);
    } else {
      qs_log(QS_LOG_INFO, "stage %d/%d: %s", run->grid->stage, run->grid->S, msg);
    }
  }
  json_decref(fields);
}

// "42 s", "7m05s", "3h12m".
static const char *fmt_duration(double s, char buf[32]) {
  if (!isfinite(s)) snprintf(buf, 32, "?");
  else if (s < 60) snprintf(buf, 32, "%.0f s", s);
  else if (s < 3600) snprintf(buf, 32, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
  else snprintf(buf, 32, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
  return buf;
}

// ---- the figures ---------------------------------------------------------------------------------

struct figures {
  int done, total;
  double spl, eta;         // seconds per layer of this run, seconds left (NaN before the first layer)
  long long host, device;  // peak bytes, max over ranks (device -1: no device)
};

// Collective over the stage (the peaks are maxima over its ranks). done: layers [0, done) are done.
static qs_status gather_figures(const struct qs_progress *p, const struct qs_qrun *run, int done,
                                struct figures *f) {
  qs_status status = QS_OK;
  f->done = done - run->grid->l0; // of this stage's layers
  f->total = p->n_layers;
  f->spl = f->done > p->first ? (qs_time_now() - p->t0) / (f->done - p->first) : NAN;
  f->eta = f->done == p->n_layers ? 0.0 : f->spl * (p->n_layers - f->done);
  f->host = (long long)qs_peak_rss_bytes();
  f->device = run->engine ? run->engine->device_peak(run->engine) : -1;
  QS_TRY(qs_comm_allreduce_max_i64(run->data, &f->host));
  QS_TRY(qs_comm_allreduce_max_i64(run->data, &f->device));
fail:
  return status;
}

// ---- the metrics file ----------------------------------------------------------------------------

// A label value with \, " and newline escaped (exposition format).
static void label_escape(const char *s, char *out, size_t cap) {
  size_t k = 0;
  for (; *s && k + 3 < cap; s++) {
    if (*s == '\\' || *s == '"') { out[k++] = '\\'; out[k++] = *s; }
    else if (*s == '\n') { out[k++] = '\\'; out[k++] = 'n'; }
    else out[k++] = *s;
  }
  out[k] = '\0';
}

// labels: the label set, e.g. out="x" or out="x",stage="1".
static size_t metric(char *buf, size_t cap, size_t k, const char *name, const char *help, const char *labels,
                     double v) {
  if (k >= cap) return k;
  char val[64];
  if (isnan(v)) snprintf(val, sizeof(val), "NaN");
  else snprintf(val, sizeof(val), "%.17g", v);
  int n = snprintf(buf + k, cap - k, "# HELP %s %s\n# TYPE %s gauge\n%s{%s} %s\n", name, help, name, name, labels,
                   val);
  return n < 0 ? cap : k + (size_t)n;
}

// The metrics file of this rank's stage: --metrics-file, or with S > 1 its per-stage name (progress.h).
static void metrics_path(const struct qs_qrun *run, char *buf, size_t cap) {
  const char *f = run->a->metrics_file;
  size_t n = strlen(f);
  if (run->grid->S == 1) snprintf(buf, cap, "%s", f);
  else if (n > 5 && !strcmp(f + n - 5, ".prom")) snprintf(buf, cap, "%.*s.stage%d.prom", (int)(n - 5), f, run->grid->stage);
  else snprintf(buf, cap, "%s.stage%d", f, run->grid->stage);
}

static qs_status write_metrics(const struct qs_qrun *run, const struct figures *f) {
  qs_status status = QS_OK;
  char out[4096], label[4200], buf[8192], path[4200];
  size_t k = 0, cap = sizeof(buf);
  label_escape(run->a->out, out, sizeof(out));
  if (run->grid->S == 1) snprintf(label, sizeof(label), "out=\"%s\"", out);
  else snprintf(label, sizeof(label), "out=\"%s\",stage=\"%d\"", out, run->grid->stage);
  metrics_path(run, path, sizeof(path));
  k = metric(buf, cap, k, "qshard_layers_done", "Decoder layers quantized (rank 0's view; includes layers "
             "restored by --resume).", label, f->done);
  k = metric(buf, cap, k, "qshard_layers_total", "Decoder layers of the model.", label, f->total);
  k = metric(buf, cap, k, "qshard_seconds_per_layer", "Mean wall seconds per layer quantized by this run "
             "(state saves included; NaN before the first).", label, f->spl);
  k = metric(buf, cap, k, "qshard_eta_seconds", "Estimated seconds until every layer is quantized.", label, f->eta);
  k = metric(buf, cap, k, "qshard_peak_host_bytes", "Peak resident host memory of the largest rank.", label,
             (double)f->host);
  if (f->device >= 0)
    k = metric(buf, cap, k, "qshard_peak_device_bytes", "Peak device memory of the largest rank.", label,
               (double)f->device);
  if (k >= cap) QS_FAIL(QS_ERR_INTERNAL, "%s: metrics text longer than %zu bytes", path, cap);
  QS_TRY(qs_file_write_all(path, buf, k)); // tmp + rename: the collector never sees half
fail:
  return status;
}

qs_status qs_progress_init(struct qs_progress *p, const struct qs_qrun *run, int first) {
  qs_status status = QS_OK, mine = QS_OK;
  struct figures f;
  *p = (struct qs_progress){.n_layers = run->grid->l1 - run->grid->l0, .first = first - run->grid->l0,
                             .t0 = qs_time_now()};
  QS_TRY(gather_figures(p, run, first, &f));
  if (qs_comm_rank(run->data) == 0 && run->a->metrics_file) mine = write_metrics(run, &f);
  int ok = mine == QS_OK;
  QS_TRY(qs_comm_bcast(run->data, &ok, sizeof(ok), 0));
  if (!ok) {
    if (qs_comm_rank(run->data) == 0) QS_FAIL(mine, "--metrics-file %s cannot be written", run->a->metrics_file);
    status = QS_ERR_IO;
  }
fail:
  return status;
}

// ---- per layer -----------------------------------------------------------------------------------

static json_t *module_json(const struct qs_qreport *r) {
  return json_pack("{s:s, s:i, s:i, s:i, s:o, s:o, s:f, s:i, s:f}", "name", r->name, "layer", r->layer,
                   "out_features", r->n, "in_features", r->k, "loss", qs_json_num(r->loss), "rel_output_error",
                   qs_json_num(r->rel_err), "damp", (double)r->damp, "damp_raises", r->damp_raises, "seconds",
                   r->seconds);
}

static void print_layer(const struct qs_qrun *run, const struct figures *f, double seconds) {
  char eta[32], dev[64] = "";
  const double gib = (double)(1 << 30);
  if (f->device >= 0) snprintf(dev, sizeof(dev), ", device %.2f GiB", (double)f->device / gib);
  json_t *j = json_pack("{s:i, s:i, s:i, s:f, s:o, s:o, s:I, s:o}", "layer", run->layer, "layers_done", f->done,
                        "layers_total", f->total, "seconds", seconds, "seconds_per_layer", qs_json_num(f->spl),
                        "eta_seconds", qs_json_num(f->eta), "peak_host_bytes", (json_int_t)f->host,
                        "peak_device_bytes", f->device >= 0 ? json_integer(f->device) : json_null());
  qs_progress_stage_note(run, "layer", j,
                         "layer %d/%d quantized in %.2f s; %d/%d done, %.2f s/layer, ETA %s; peak memory (max "
                         "over ranks): host %.2f GiB%s", run->layer + 1, run->m->cfg.n_layers, seconds, f->done,
                         f->total, f->spl, fmt_duration(f->eta, eta), (double)f->host / gib, dev);
}

qs_status qs_progress_layer(struct qs_progress *p, const struct qs_qrun *run, int first_report, double seconds) {
  qs_status status = QS_OK;
  struct figures f;
  QS_TRY(gather_figures(p, run, run->layer + 1, &f));
  for (int i = first_report; i < run->n_reports; i++) {
    const struct qs_qreport *r = &run->reports[i];
    // RTN has no Hessian (no GPTQ loss) and, without calibration, no output error: "-" rather than nan
    char loss[32], err[32], damp[32];
    if (isfinite(r->loss)) snprintf(loss, sizeof(loss), "%-10.4g", r->loss);
    else snprintf(loss, sizeof(loss), "%-10s", "-");
    if (isfinite(r->rel_err)) snprintf(err, sizeof(err), "%-8.4g", r->rel_err);
    else snprintf(err, sizeof(err), "%-8s", "-");
    if (r->damp < 0) snprintf(damp, sizeof(damp), "%-6s", "RTN"); // the fallback (run.h)
    else snprintf(damp, sizeof(damp), "%-6g", (double)r->damp);
    qs_progress_stage_note(run, "module", module_json(r), "  %-36s [%6d x %6d]  loss %s rel.err %s damp "
                           "%s %6.2fs", r->name, r->n, r->k, loss, err, damp, r->seconds);
  }
  print_layer(run, &f, seconds);
  if (qs_comm_rank(run->data) == 0 && run->a->metrics_file && !p->warned && write_metrics(run, &f) != QS_OK) {
    qs_log(QS_LOG_WARN, "--metrics-file %s could not be rewritten; the run goes on without it", run->a->metrics_file);
    p->warned = 1;
  }
fail:
  return status;
}
