// summary.c — see summary.h.
#include "run/summary.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "run/output.h"
#include "run/progress.h"

double qs_summary_weight_bytes(const char *dir, char **first_gguf) {
  DIR *d = opendir(dir);
  double sum = 0;
  if (!d) return 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (!qs_str_has_suffix(e->d_name, ".safetensors") && !(qs_str_has_suffix(e->d_name, ".gguf") && strcmp(e->d_name, "imatrix.gguf")))
      continue;
    char *path = qs_path_join(dir, e->d_name);
    struct stat st;
    if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
      sum += (double)st.st_size;
      if (first_gguf && !*first_gguf && qs_str_has_suffix(e->d_name, ".gguf")) { *first_gguf = path; path = NULL; }
    }
    free(path);
  }
  closedir(d);
  return sum;
}

// hint with {OUT} and {FILE} replaced.
static void fill_hint(const char *hint, const char *out, const char *file, char *buf, size_t cap) {
  size_t k = 0;
  for (const char *p = hint; *p && k + 1 < cap;) {
    const char *rep = !strncmp(p, "{OUT}", 5) ? out : !strncmp(p, "{FILE}", 6) ? (file ? file : "?") : NULL;
    if (rep) {
      k += (size_t)snprintf(buf + k, cap - k, "%s", rep);
      if (k >= cap) k = cap - 1;
      p += p[1] == 'O' ? 5 : 6;
    } else {
      buf[k++] = *p++;
    }
  }
  buf[k] = 0;
}

void qs_summary_print(const struct qs_qrun *run, const struct qs_summary_in *in) {
  const struct qs_run_opts *a = run->a;
  const struct qs_ckpt *ck = &run->m->ckpt;
  double params = 0, bytes_in = 0;
  for (size_t i = 0; i < ck->n_tensors; i++) {
    int64_t n = qs_st_numel(ck->by_name[i]);
    params += (double)n;
    bytes_in += (double)n * (double)qs_dtype_size(ck->by_name[i]->dtype);
  }
  int dense = 0, raised = 0;
  for (int i = 0; i < run->n_reports; i++) {
    dense += !run->reports[i].packed;
    raised += run->reports[i].damp_raises > 0;
  }
  json_t *formats = json_array();
  const int text = !a->log_json; // --log-json: one "summary" event with every field instead of the lines
  if (text) qs_progress_note(run, "summary", NULL, "summary: %s — %d linear modules quantized%s, %.4g M parameters, %.2f s, "
                   "peak host memory %.2f GiB (max over ranks)", a->out, run->n_reports - dense,
                   dense ? "" : " (none kept dense)", params / 1e6, in->seconds, (double)in->peak_host / 1073741824.0);
  if (text && dense) {
    char names[512] = "";
    for (int i = 0, k = 0, shown = 0; i < run->n_reports && shown < 4; i++)
      if (!run->reports[i].packed) {
        k += snprintf(names + k, sizeof(names) - (size_t)k, "%s%s", k ? ", " : "", run->reports[i].name);
        shown++;
      }
    qs_progress_note(run, "summary", NULL, "  kept dense (the first format cannot pack their shape): %d — %s%s", dense,
                     names, dense > 4 ? ", ... (quant_report.json: unpacked)" : "");
  }
  if (text && raised) qs_progress_note(run, "summary", NULL, "  damping raised (Cholesky retried) in %d modules: see quant_report.json", raised);
  if (text && isfinite(in->eval_ppl) && isfinite(in->eval_fp_ppl))
    qs_progress_note(run, "summary", NULL, "  perplexity of the written checkpoint on %s: %.4f -> %.4f (%+.2f %%), KLD %.6f",
                     in->eval_data, in->eval_fp_ppl, in->eval_ppl, 100.0 * (in->eval_ppl / in->eval_fp_ppl - 1.0),
                     in->eval_kld);
  else if (text && isfinite(in->eval_ppl))
    qs_progress_note(run, "summary", NULL, "  perplexity of the written checkpoint on %s: %.4f", in->eval_data, in->eval_ppl);
  for (int i = 0; i < a->n_formats; i++) {
    char *dir = qs_output_dir(a, i, a->out), *gguf = NULL, hint[1024];
    if (!dir) continue;
    double b = qs_summary_weight_bytes(dir, &gguf);
    fill_hint(a->formats[i]->load_hint ? a->formats[i]->load_hint : "", dir, gguf, hint, sizeof(hint));
    if (text) qs_progress_note(run, "summary", NULL, "  %-18s %s: %.1f MB (from %.1f MB, %.2f bits per parameter)",
                     a->formats[i]->name, dir, b / 1e6, bytes_in / 1e6, params > 0 ? 8.0 * b / params : 0.0);
    if (text && *hint) qs_progress_note(run, "summary", NULL, "    load: %s", hint);
    json_array_append_new(formats, json_pack("{s:s, s:s, s:f, s:s}", "format", a->formats[i]->name, "dir", dir,
                                             "bytes", b, "load", hint));
    free(dir);
    free(gguf);
  }
  json_t *fields = json_pack("{s:s, s:f, s:f, s:i, s:i, s:i, s:f, s:I, s:o, s:o}", "out", a->out, "parameters", params,
                             "bytes_in", bytes_in, "modules", run->n_reports, "kept_dense", dense, "damp_raised", raised,
                             "seconds", in->seconds, "peak_host_bytes", (json_int_t)in->peak_host, "eval_ppl",
                             qs_json_num(in->eval_ppl), "formats", formats);
  json_object_set_new(fields, "eval_fp_ppl", qs_json_num(in->eval_fp_ppl));
  json_object_set_new(fields, "eval_kld", qs_json_num(in->eval_kld));
  if (text) json_decref(fields);
  else qs_progress_note(run, "summary", fields, "summary");
}
