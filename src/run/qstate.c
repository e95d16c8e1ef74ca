// qstate.c — resume state of `qshard quantize`: OUT.partial/, the fingerprint, the save protocol,
// restore, and the final checkpoint assembled from the per-layer files (layout and rules: qstate.h).
#include "run/qstate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/stop.h"
#include "comm.h"
#include "io/manifest.h"
#include "quant/record.h"
#include "run/progress.h"
#include "run/saver.h"
#include "run/engine.h"

// ---- paths ---------------------------------------------------------------------------------------

// "<out>.partial" (trailing slashes of out dropped: "a/" must not give "a/.partial").
static char *partial_path(const char *out) {
  size_t n = strlen(out);
  while (n > 1 && out[n - 1] == '/') n--;
  char *p = malloc(n + sizeof(".partial"));
  if (!p) return NULL;
  memcpy(p, out, n);
  memcpy(p + n, ".partial", sizeof(".partial"));
  return p;
}

static char *state_file(const char *partial) {
  char buf[4096];
  snprintf(buf, sizeof(buf), "%s/.state/state.h5", partial);
  return strdup(buf);
}

// The state file of this rank's stage: state.h5 with one stage, state-stage<s>-of-<S>.h5 with S > 1
// (each stage saves its own progress, stages.h).
static char *stage_state_file(const char *partial, const struct qs_stages *g) {
  char buf[4096];
  if (g->S == 1) return state_file(partial);
  snprintf(buf, sizeof(buf), "%s/.state/state-stage%d-of-%d.h5", partial, g->stage, g->S);
  return strdup(buf);
}

// 1 for the name of a state file of any stage layout (state.h5, state-stage*.h5).
static int is_state_name(const char *name) {
  size_t n = strlen(name);
  return !strcmp(name, "state.h5") || (!strncmp(name, "state-stage", 11) && n > 14 && !strcmp(name + n - 3, ".h5"));
}

// 1 when the directory holds a state file of any stage layout.
static int has_state(const char *state_dir) {
  int found = 0;
  DIR *d = opendir(state_dir);
  if (!d) return 0;
  for (struct dirent *e; !found && (e = readdir(d)) != NULL;) found = is_state_name(e->d_name);
  closedir(d);
  return found;
}

static void layer_dir(const struct qs_qstate *st, int l, char buf[4096]) {
  snprintf(buf, 4096, "%s/layer-%05d", st->dir, l);
}

static void x_file(const struct qs_qstate *st, int completed, int rank, int ranks, char buf[4096]) {
  snprintf(buf, 4096, "%s/x-c%d-rank%d-of-%d.h5", st->dir, completed, rank, ranks);
}

// The activations are saved only where a later layer of the stage needs them: with calibration data,
// between layers (with stages also at the stage's first layer: its boundary activations).
static int needs_x(const struct qs_qrun *run, int completed) {
  return run->T > 0 && completed > 0 && completed < run->grid->l1;
}

// Rank 0's status on every rank (the others return it without a message of their own).
static qs_status agree(struct qs_comm *w, qs_status mine) {
  int s = (int)mine;
  if (qs_comm_bcast(w, &s, sizeof(s), 0) != QS_OK) return QS_ERR_COMM;
  return (qs_status)s;
}

// ---- OUT.partial ---------------------------------------------------------------------------------

qs_status qs_qstate_begin_dir(const char *out, int force, int resume, char **partial) {
  qs_status status = QS_OK;
  char *p = partial_path(out), *d = NULL;
  *partial = NULL;
  if (!p || !(d = qs_path_join(p, ".state"))) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (qs_path_exists(out) && !force) QS_FAIL(QS_ERR_ARG, "output %s already exists (use --force to replace it)", out);
  if (qs_path_exists(p)) {
    if (!qs_path_is_dir(p)) QS_FAIL(QS_ERR_ARG, "%s exists and is not a directory", p);
    if (!resume && !force)
      QS_FAIL(QS_ERR_ARG, "%s exists: an earlier run into %s did not finish (use --resume to continue it or --force "
              "to start over)", p, out);
    if (!resume) QS_TRY(qs_dir_remove_tree(p));
  }
  QS_TRY(qs_dir_make(d));
  *partial = p;
  p = NULL;
fail:
  free(p);
  free(d);
  return status;
}

void qs_qstate_abort_dir(const char *partial) {
  if (!partial || !qs_path_exists(partial)) return;
  char *sf = qs_path_join(partial, ".state");
  if (sf && has_state(sf))
    qs_log(QS_LOG_WARN, "the resume state in %s is kept: rerun with --resume to continue, or --force to start over",
           partial);
  else qs_dir_remove_tree(partial);
  free(sf);
}

// ---- fingerprint ---------------------------------------------------------------------------------

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

// A file's name, size and a sample of its content: the first 64 KiB (a safetensors file's header,
// config.json and tokenizer files whole) and 4 KiB at 17 evenly spaced offsets through the rest.
// Copying the model (a pod restaging it into node-local storage) keeps it; another checkpoint of the
// same architecture (a different fine-tune: every weight differs) changes it. Not a full-content
// hash: reading 405B of weights on every restart would cost minutes.
static qs_status hash_file(uint64_t *h, const char *path, const char *name, int64_t size) {
  qs_status status = QS_OK;
  enum { HEAD = 64 << 10, BLOCK = 4 << 10, SAMPLES = 17 };
  unsigned char *buf = NULL;
  int fd = open(path, O_RDONLY);
  if (fd < 0) QS_FAIL(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  QS_ALLOC(buf, HEAD);
  *h = fnv1a(*h, name, strlen(name) + 1);
  *h = fnv1a(*h, &size, sizeof(size));
  for (int i = -1; i < SAMPLES; i++) { // i = -1: the head
    if (i >= 0 && size <= HEAD) break;  // the head covered it all
    int64_t span = QS_MAX(size - HEAD - BLOCK, 0), off = i < 0 ? 0 : HEAD + span * i / (SAMPLES - 1);
    int64_t n = QS_MIN(i < 0 ? HEAD : BLOCK, size - off);
    ssize_t got = pread(fd, buf, (size_t)n, (off_t)off);
    if (got != n) QS_FAIL(QS_ERR_IO, "%s: short read at %lld: %s", path, (long long)off, got < 0 ? strerror(errno) : "end of file");
    *h = fnv1a(*h, buf, (size_t)n);
  }
fail:
  if (fd >= 0) close(fd);
  free(buf);
  return status;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// hash_file of every regular file of a directory (sorted by name), or of one file.
static qs_status files_hash(const char *path, char hex[17]) {
  qs_status status = QS_OK;
  uint64_t h = 0xcbf29ce484222325ull;
  char **names = NULL, *child = NULL;
  size_t n = 0, cap = 0;
  struct stat s;
  DIR *d = NULL;
  if (stat(path, &s) != 0) QS_FAIL(QS_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
  if (!S_ISDIR(s.st_mode)) {
    const char *base = strrchr(path, '/');
    QS_TRY(hash_file(&h, path, base ? base + 1 : path, (int64_t)s.st_size));
  } else {
    if (!(d = opendir(path))) QS_FAIL(QS_ERR_IO, "cannot list %s: %s", path, strerror(errno));
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
      if (e->d_name[0] == '.') continue;
      if (n == cap) {
        char **q = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof(*q));
        if (!q) QS_FAIL(QS_ERR_OOM, "out of memory");
        names = q;
      }
      if (!(names[n] = strdup(e->d_name))) QS_FAIL(QS_ERR_OOM, "out of memory");
      n++;
    }
    qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
      if (!(child = qs_path_join(path, names[i]))) QS_FAIL(QS_ERR_OOM, "out of memory");
      if (stat(child, &s) == 0 && S_ISREG(s.st_mode)) QS_TRY(hash_file(&h, child, names[i], (int64_t)s.st_size));
      free(child);
      child = NULL;
    }
  }
  snprintf(hex, 17, "%016llx", (unsigned long long)h);
fail:
  if (d) closedir(d);
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  free(child);
  return status;
}

// Everything the quantized layers depend on: the inputs, the options, the rank layout (the x files
// are per rank) and the engine with its precision. --eval*, --max-shard-size and the logging options
// are not in it: they act after the layers (the checkpoint is assembled at the end).
static qs_status fingerprint(const struct qs_qrun *run, char **out) {
  qs_status status = QS_OK;
  const struct qs_run_opts *a = run->a;
  const struct qs_qopts *o = &a->q;
  static const char *const act[] = {"none", "static", "group"};
  char model[17], calib[17] = "none", damp[32];
  int cpu = !strcmp(run->engine->name, "cpu");
  json_t *j = NULL;
  char mix[256] = "", imat[17] = "none";
  QS_TRY(files_hash(a->model, model));
  if (a->calib) QS_TRY(files_hash(a->calib, calib));
  // A format choosing grids per module (gguf:TYPE) changes the records by its argument; so does the
  // importance the block grids are searched with.
  for (int i = 0; i < a->n_formats; i++)
    if (a->formats[i]->module_grid)
      snprintf(mix + strlen(mix), sizeof(mix) - strlen(mix), "%s:%s;", a->formats[i]->name,
               a->format_args[i] ? a->format_args[i] : "");
  if (a->imatrix == QS_IMP_CALIB) snprintf(imat, sizeof(imat), "calib");
  else if (a->imatrix == QS_IMP_TABLE) QS_TRY(files_hash(a->imatrix_file, imat));
  snprintf(damp, sizeof(damp), "%.9g", (double)o->damp);
  // The grid as the formats narrowed it (min_zero, scale dtype) changes the records; the formats
  // themselves do not: they are written from the records at the end.
  j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:b, s:i, s:s, s:s, s:s, s:i, s:I, s:i, s:I, s:i, s:i, s:s, s:s, s:s, s:s, s:s}",
                "model_files", model, "calib_file", calib, "method", a->method->name, "bits", o->grid.bits,
                "group_size", o->grid.group_size, "sym", o->grid.sym, "min_zero", o->grid.min_zero, "scale_dtype",
                qs_dtype_name((qs_dtype)o->grid.scale_dtype), "act_order", act[o->act_order], "damp", damp, "block",
                o->block_size, "samples", (json_int_t)run->n_samples, "seqlen", run->T, "seed", (json_int_t)a->seed,
                "ranks", qs_comm_size(run->world), "stages", run->grid->S, "engine", run->engine->name, "precision",
                cpu || a->precision_f32 ? "fp32" : "bf16", "factor_precision",
                cpu ? "cpu" : o->factor_f64 ? "fp64" : "fp32", "module_grids", mix, "imatrix", imat);
  if (!j || !(*out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS))) QS_FAIL(QS_ERR_OOM, "out of memory");
fail:
  json_decref(j);
  return status;
}

// Rank 0's fingerprint on every rank (one reading of the files; every x file carries the same text).
static qs_status shared_fingerprint(const struct qs_qrun *run, char **out) {
  qs_status status = QS_OK, mine = QS_OK;
  long long len = 0;
  *out = NULL;
  if (qs_comm_rank(run->world) == 0) {
    mine = fingerprint(run, out);
    len = mine == QS_OK ? (long long)strlen(*out) + 1 : 0;
  }
  QS_TRY(agree(run->world, mine));
  QS_TRY(qs_comm_bcast(run->world, &len, sizeof(len), 0));
  if (qs_comm_rank(run->world) != 0) QS_ALLOC(*out, len);
  QS_TRY(qs_comm_bcast(run->world, *out, (size_t)len, 0));
fail:
  return status;
}

// The option a fingerprint key stands for, as the user knows it.
static void key_label(const char *key, char *buf, size_t cap) {
  static const char *special[][2] = {
      {"model_files", "the files of --model (names, sizes, sampled content)"},
      {"calib_file", "the --calib file (name, size, sampled content)"},
      {"ranks", "the MPI rank count"}, {"engine", "--device"}, {"sym", "--sym/--asym"},
      {"min_zero", "the smallest zero point the formats store (--format)"},
      {"scale_dtype", "the scale dtype the formats store (--format)"}};
  for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
    if (!strcmp(key, special[i][0])) { snprintf(buf, cap, "%s", special[i][1]); return; }
  snprintf(buf, cap, "--%s", key);
  for (char *c = buf; *c; c++) if (*c == '_') *c = '-';
}

// Appends "label: A in the state, B now" for every key whose values differ.
static void diff_append(char *msg, size_t cap, const char *key, json_t *was, json_t *now) {
  char label[96];
  char *a = was ? json_dumps(was, JSON_ENCODE_ANY) : NULL, *b = now ? json_dumps(now, JSON_ENCODE_ANY) : NULL;
  size_t k = strlen(msg);
  key_label(key, label, sizeof(label));
  snprintf(msg + k, cap - k, "%s%s: %s in the state, %s now", k ? "; " : "", label, a ? a : "absent", b ? b : "absent");
  free(a);
  free(b);
}

static qs_status fingerprint_check(const char *path, const char *was_text, const char *now_text) {
  qs_status status = QS_OK;
  char msg[2048] = "";
  const char *key;
  json_t *v, *was = json_loads(was_text, 0, NULL), *now = json_loads(now_text, 0, NULL);
  if (!was || !json_is_object(was)) QS_FAIL(QS_ERR_FORMAT, "%s: the fingerprint is not a JSON object", path);
  if (!now) QS_FAIL(QS_ERR_OOM, "out of memory");
  json_object_foreach(now, key, v) {
    json_t *w = json_object_get(was, key);
    if (!w || !json_equal(w, v)) diff_append(msg, sizeof(msg), key, w, v);
  }
  json_object_foreach(was, key, v) if (!json_object_get(now, key)) diff_append(msg, sizeof(msg), key, v, NULL);
  if (msg[0])
    QS_FAIL(QS_ERR_ARG, "%s: cannot resume: this run differs from the one that saved the state (%s); rerun it as "
            "it was, or use --force to start over", path, msg);
fail:
  json_decref(was);
  json_decref(now);
  return status;
}

static qs_status save(struct qs_qstate *st, struct qs_qrun *run);

// ---- restore -------------------------------------------------------------------------------------

qs_status qs_qstate_open_layer(const struct qs_qstate *st, int l, struct qs_st_file *f) {
  char path[4200];
  snprintf(path, sizeof(path), "%s/layer-%05d/model.safetensors", st->dir, l);
  return qs_st_open(f, path);
}

qs_status qs_qstate_check_layers(const struct qs_qstate *st, const struct qs_qrun *run, int from, int to) {
  qs_status status = QS_OK;
  struct qs_st_file f = {0};
  int open = 0, bad = 0;
  char name[256], dir[4096];
  for (int l = from; l < to; l++) {
    // the layer's file as it was written (its manifest, written when the state that names it was saved)
    layer_dir(st, l, dir);
    if (qs_manifest_available()) {
      QS_TRY(qs_manifest_verify(dir, 1, &bad));
      if (bad) QS_FAIL(QS_ERR_FORMAT, "%s: the saved layer's file changed since it was written (see above)", dir);
    }
    QS_TRY(qs_qstate_open_layer(st, l, &f));
    open = 1;
    for (int i = 0; i < run->n_reports; i++) {
      if (run->reports[i].layer != l) continue;
      snprintf(name, sizeof(name), "%s.codes", run->reports[i].name);
      if (!qs_st_find(&f, name)) QS_FAIL(QS_ERR_FORMAT, "%s: no record of %s", f.path, run->reports[i].name);
    }
    qs_st_close(&f);
    open = 0;
  }
fail:
  if (open) qs_st_close(&f);
  return status;
}

// The stage leader: reads and checks its state file; *completed layers (the stage's layers [l0,
// *completed) are done; *completed = l0 > 0: only its boundary activations) and their reports.
static qs_status load_root(struct qs_qstate *st, struct qs_qrun *run, int *completed, struct qs_qreport **r, int *n) {
  qs_status status = QS_OK;
  char *path = stage_state_file(st->partial, run->grid), *fp = NULL;
  int ranks = 0, l0 = run->grid->l0, l1 = run->grid->l1;
  if (!path) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(qs_qstate_h5_read_state(path, completed, &ranks, &fp, r, n));
  QS_TRY(fingerprint_check(path, fp, st->fp));
  if (*completed < QS_MAX(l0, 1) || *completed > l1)
    QS_FAIL(QS_ERR_FORMAT, "%s: %d completed layers, outside the stage's layers %d..%d", path, *completed, l0, l1);
  for (int i = 0; i < *n; i++)
    if ((*r)[i].layer < l0 || (*r)[i].layer >= *completed)
      QS_FAIL(QS_ERR_FORMAT, "%s: report of %s is not in a completed layer", path, (*r)[i].name);
fail:
  if (status != QS_OK) { free(*r); *r = NULL; }
  free(path);
  free(fp);
  return status;
}

// The SHA-256 of an x file in "<x file>.sha256" (sha256sum's format), written after the file, or
// checked before it is read (a file changed since it was saved is refused).
static qs_status x_digest(const char *path, int write) {
  qs_status status = QS_OK;
  char hex[65], side[4200], line[4400], *was = NULL;
  uint64_t bytes = 0;
  size_t n = 0;
  const char *base = strrchr(path, '/');
  snprintf(side, sizeof(side), "%s.sha256", path);
  QS_TRY(qs_sha256_file(path, hex, &bytes));
  snprintf(line, sizeof(line), "%s  %s\n", hex, base ? base + 1 : path);
  if (write) {
    QS_TRY(qs_file_write_all(side, line, strlen(line)));
  } else {
    QS_TRY(qs_file_read_all(side, &was, &n));
    if (strcmp(was, line))
      QS_FAIL(QS_ERR_FORMAT, "%s: its SHA-256 is %s, not the %.64s recorded when it was saved; use --force to start "
              "over", path, hex, was);
  }
fail:
  free(was);
  return status;
}

// Every rank: its residual stream after `completed` layers between the engine and its x file
// (write: engine -> file; else file -> engine).
static qs_status x_transfer(struct qs_qstate *st, struct qs_qrun *run, int completed, int write) {
  qs_status status = QS_OK;
  int rank = qs_comm_rank(run->world), P = qs_comm_size(run->world);
  struct qs_qstate_x id = {.completed = completed, .rank = rank, .ranks = P, .s0 = run->s0, .s1 = run->s1,
                           .T = run->T, .hidden = run->m->cfg.hidden, .fp = st->fp};
  char path[4096];
  float *x = NULL;
  x_file(st, completed, rank, P, path);
  QS_ALLOC(x, (size_t)(run->s1 - run->s0) * (size_t)run->T * (size_t)id.hidden);
  if (write) {
    QS_TRY(run->engine->get_x(run->engine, run, x));
    QS_TRY(qs_qstate_h5_write_x(path, &id, x));
    if (qs_manifest_available()) QS_TRY(x_digest(path, 1));
  } else {
    if (qs_manifest_available()) QS_TRY(x_digest(path, 0));
    QS_TRY(qs_qstate_h5_read_x(path, &id, x));
    QS_TRY(run->engine->set_x(run->engine, run, x));
  }
fail:
  free(x);
  return status;
}

// Collective over the stage: its saved state into this run (reports on every rank of the stage, as
// its leader read them).
static qs_status load(struct qs_qstate *st, struct qs_qrun *run) {
  qs_status status = QS_OK;
  struct qs_qreport *r = NULL;
  int c[2] = {0, 0}; // completed, report count
  int ok, l0 = run->grid->l0, nl = run->grid->l1 - l0;
  if (qs_comm_rank(run->data) == 0) status = load_root(st, run, &c[0], &r, &c[1]);
  QS_TRY(agree(run->data, status));
  QS_TRY(qs_comm_bcast(run->data, c, sizeof(c), 0));
  if (qs_comm_rank(run->data) != 0) QS_ALLOC(r, c[1]);
  QS_TRY(qs_comm_bcast(run->data, r, (size_t)c[1] * sizeof(*r), 0));
  run->reports = r;
  run->n_reports = run->cap_reports = c[1];
  r = NULL;
  ok = qs_comm_rank(run->data) != 0 || qs_qstate_check_layers(st, run, l0, c[0]) == QS_OK;
  QS_TRY(qs_comm_allreduce_and(run->data, &ok));
  if (!ok) QS_FAIL(QS_ERR_FORMAT, "%s: the completed layers' record files are not all readable (see above); use "
                   "--force to start over", st->partial);
  ok = !needs_x(run, c[0]) || x_transfer(st, run, c[0], 0) == QS_OK;
  QS_TRY(qs_comm_allreduce_and(run->data, &ok));
  if (!ok) QS_FAIL(QS_ERR_FORMAT, "%s: the saved activations could not be restored on every rank (see above); "
                   "use --force to start over", st->partial);
  st->completed = st->saved = c[0];
  json_t *j = json_pack("{s:s, s:i, s:i}", "dir", st->partial, "layers_done", c[0] - l0, "layers_total", nl);
  qs_progress_stage_note(run, "resume", j, "resuming from %s: %d/%d layers done", st->partial, c[0] - l0, nl);
fail:
  free(r);
  return status;
}

// World rank 0, --resume: a state saved under another stage count (other file names) is refused with
// the fingerprint's difference rather than silently ignored.
static qs_status check_layout(struct qs_qstate *st) {
  qs_status status = QS_OK;
  struct qs_qreport *r = NULL;
  char *path = NULL, *fp = NULL;
  int completed = 0, ranks = 0, n = 0;
  json_t *now = json_loads(st->fp, 0, NULL);
  int S = now ? (int)json_integer_value(json_object_get(now, "stages")) : 0, s = 0, S2 = 0;
  DIR *d = opendir(st->dir);
  for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
    if (!is_state_name(e->d_name)) continue;
    if (S == 1 ? !strcmp(e->d_name, "state.h5") : sscanf(e->d_name, "state-stage%d-of-%d.h5", &s, &S2) == 2 && S2 == S)
      continue;
    if (!(path = qs_path_join(st->dir, e->d_name))) QS_FAIL(QS_ERR_OOM, "out of memory");
    QS_TRY(qs_qstate_h5_read_state(path, &completed, &ranks, &fp, &r, &n));
    QS_TRY(fingerprint_check(path, fp, st->fp));
    QS_FAIL(QS_ERR_ARG, "%s: cannot resume: saved by a run with another --stages; use --force to start over", path);
  }
fail:
  if (d) closedir(d);
  json_decref(now);
  free(path);
  free(fp);
  free(r);
  return status;
}

qs_status qs_qstate_init(struct qs_qstate *st, struct qs_qrun *run) {
  qs_status status = QS_OK, mine = QS_OK;
  char *sf = NULL;
  int have = 0, any;
  memset(st, 0, sizeof(*st));
  st->completed = run->grid->l0; // this stage's layers start here (0 with one stage)
  st->partial = partial_path(run->a->out);
  if (!st->partial || !(st->dir = qs_path_join(st->partial, ".state")) ||
      !(sf = stage_state_file(st->partial, run->grid)))
    QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(shared_fingerprint(run, &st->fp));
  st->last_save = qs_time_now();
  if (qs_comm_rank(run->world) == 0) {
    have = run->a->resume && has_state(st->dir);
    if (have) mine = check_layout(st);
    if (!have) { // nothing to continue: leftovers of a run killed before its first save go
      mine = qs_dir_remove_tree(st->dir);
      if (mine == QS_OK) mine = qs_dir_make(st->dir);
      if (mine == QS_OK && run->a->resume)
        qs_progress_note(run, "resume", json_pack("{s:s, s:i}", "dir", st->partial, "layers_done", 0),
                         "--resume: no saved state in %s, starting from the first layer", st->partial);
    }
  }
  QS_TRY(agree(run->world, mine));
  QS_TRY(qs_comm_bcast(run->world, &have, sizeof(have), 0));
  any = have;
  // each stage continues from its own state file (one stage: state.h5), when it has one
  if (qs_comm_rank(run->data) == 0) have = any && qs_path_exists(sf);
  QS_TRY(qs_comm_bcast(run->data, &have, sizeof(have), 0));
  if (have) QS_TRY(load(st, run));
  else if (any)
    qs_progress_stage_note(run, "resume", json_pack("{s:s, s:i}", "dir", st->partial, "layers_done", 0),
                           "no saved state of this stage in %s: starting from its first layer", st->partial);
fail:
  free(sf);
  return status;
}

qs_status qs_qstate_save_boundary(struct qs_qstate *st, struct qs_qrun *run) {
  if (run->a->state_interval > 0) return QS_OK; // saves are timed: the first one comes after a layer
  return save(st, run);
}

// ---- per layer: the layer file, the save --------------------------------------------------------

qs_status qs_qstate_layer_begin(struct qs_qstate *st, struct qs_qrun *run, int l) {
  qs_status status = QS_OK;
  char dir[4096];
  if (qs_comm_rank(run->data) != 0) return QS_OK;
  layer_dir(st, l, dir);
  if (!st->saver) QS_TRY(qs_qsaver_init(&st->saver));
  qs_st_writer_free(st->writer);
  st->writer = NULL;
  QS_TRY(qs_st_writer_init(&st->writer, dir, 0)); // one file per layer
fail:
  return status;
}

qs_status qs_qstate_put_record(struct qs_qstate *st, struct qs_qrecord *rec) {
  qs_status status = QS_OK;
  if (!st->writer || !st->saver || !rec->codes) QS_FAIL(QS_ERR_INTERNAL, "%s: no layer file open for it", rec->name);
  QS_TRY(qs_qsaver_submit(st->saver, st->writer, rec));
fail:
  return status;
}

// Collective: the protocol of qstate.h for st->completed layers.
static qs_status save(struct qs_qstate *st, struct qs_qrun *run) {
  qs_status status = QS_OK, mine = QS_OK;
  int c = st->completed, rank = qs_comm_rank(run->world), P = qs_comm_size(run->world), nr = 0, ok;
  char path[4096];
  double t0 = qs_time_now();
  ok = !needs_x(run, c) || x_transfer(st, run, c, 1) == QS_OK;
  QS_TRY(qs_comm_allreduce_and(run->data, &ok)); // every rank's file is in place (or one failed)
  if (!ok) QS_FAIL(QS_ERR_IO, "%s: state not saved: a rank could not write its activations (see above)", st->dir);
  if (qs_comm_rank(run->data) == 0) { // the stage leader: the layers' manifests, then the stage's state file
    for (int l = QS_MAX(st->saved, run->grid->l0); mine == QS_OK && l < c && qs_manifest_available(); l++) {
      layer_dir(st, l, path);
      mine = qs_manifest_write(path);
    }
    char *sf = mine == QS_OK ? stage_state_file(st->partial, run->grid) : NULL;
    while (nr < run->n_reports && run->reports[nr].layer < c) nr++;
    if (mine == QS_OK)
      mine = sf ? qs_qstate_h5_write_state(sf, c, run->m->cfg.n_layers, P, st->fp, run->reports, nr) : QS_ERR_OOM;
    free(sf);
  }
  QS_TRY(agree(run->data, mine));
  if (needs_x(run, st->saved) && st->saved != c) { // no state names the previous files any more
    x_file(st, st->saved, rank, P, path);
    if (unlink(path) != 0 && errno != ENOENT) qs_log(QS_LOG_WARN, "cannot remove %s: %s", path, strerror(errno));
    strncat(path, ".sha256", sizeof(path) - strlen(path) - 1);
    if (unlink(path) != 0 && errno != ENOENT) qs_log(QS_LOG_WARN, "cannot remove %s: %s", path, strerror(errno));
  }
  st->saved = c;
  st->last_save = qs_time_now();
  int l0 = run->grid->l0, nl = run->grid->l1 - l0;
  json_t *j = json_pack("{s:i, s:i, s:f}", "layers_done", c - l0, "layers_total", nl, "seconds", st->last_save - t0);
  qs_progress_stage_note(run, "state_saved", j, "  state: %d/%d layers saved in %s (%.2f s)", c - l0, nl, st->dir,
                         st->last_save - t0);
fail:
  return status;
}

qs_status qs_qstate_layer_end(struct qs_qstate *st, struct qs_qrun *run, int l) {
  qs_status status = QS_OK, mine = QS_OK;
  int leader = qs_comm_rank(run->data) == 0, msg[2] = {0, 0};
  if (leader) {
    mine = qs_qsaver_drain(st->saver);
    if (mine == QS_OK) mine = qs_st_writer_finish(st->writer);
    qs_st_writer_free(st->writer);
    st->writer = NULL;
  }
  st->completed = l + 1;
  // A stop signal (stop.h) on any rank of the stage: all of them save now and stop here, together.
  long long stop = qs_stop_requested();
  QS_TRY(qs_comm_allreduce_max_i64(run->data, &stop));
  // the stage leader decides for its ranks: the ranks' clocks need not agree on when the interval has passed
  msg[0] = (int)mine;
  msg[1] = st->completed == run->grid->l1 || run->a->state_interval <= 0 || stop ||
           qs_time_now() - st->last_save >= (double)run->a->state_interval;
  QS_TRY(qs_comm_bcast(run->data, msg, sizeof(msg), 0));
  if (msg[0] != QS_OK) { status = (qs_status)msg[0]; goto fail; }
  if (msg[1]) QS_TRY(save(st, run));
  if (stop) {
    st->stop_signal = (int)stop;
    return QS_ERR_STOPPED;
  }
fail:
  return status;
}

// ---- the end ------------------------------------------------------------------------------------

qs_status qs_qstate_finish(struct qs_qstate *st) { return qs_dir_remove_tree(st->dir); }

void qs_qstate_free(struct qs_qstate *st) {
  if (!st) return;
  qs_qsaver_free(st->saver); // before the writer it may be writing into
  qs_st_writer_free(st->writer);
  free(st->partial);
  free(st->dir);
  free(st->fp);
  memset(st, 0, sizeof(*st));
}
