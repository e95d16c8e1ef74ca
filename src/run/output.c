// output.c — every output format written from the layer records (contract: output.h).
#include "run/output.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "comm.h"
#include "run/progress.h"
#include "run/qstate.h"

char *qs_output_dir(const struct qs_run_opts *a, int i, const char *top) {
  for (int j = 0; j < a->n_formats; j++)
    if (a->formats[j]->model_dir) {
      if (j == i) return strdup(top);
      break;
    }
  return qs_path_join(top, a->formats[i]->name);
}

// Regular files an earlier, interrupted output left at the top of dir (another --max-shard-size would
// leave shards the new index does not name); everything there is rewritten. Subdirectories (the
// resume state, other formats) are left alone.
static qs_status remove_old_files(const char *dir) {
  qs_status status = QS_OK;
  char *path = NULL;
  struct stat s;
  DIR *d = opendir(dir);
  if (!d) QS_FAIL(QS_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (!(path = qs_path_join(dir, e->d_name))) QS_FAIL(QS_ERR_OOM, "out of memory");
    if (lstat(path, &s) == 0 && S_ISREG(s.st_mode) && unlink(path) != 0)
      QS_FAIL(QS_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    free(path);
    path = NULL;
  }
fail:
  free(path);
  if (d) closedir(d);
  return status;
}

// Rank 0: every format's directory fresh (the top one emptied of files, the others recreated).
static qs_status prepare_dirs(const struct qs_run_opts *a, const char *tmp) {
  qs_status status = QS_OK;
  char *dir = NULL;
  QS_TRY(remove_old_files(tmp));
  for (int i = 0; i < a->n_formats; i++) {
    if (!(dir = qs_output_dir(a, i, tmp))) QS_FAIL(QS_ERR_OOM, "out of memory");
    if (strcmp(dir, tmp)) {
      QS_TRY(qs_dir_remove_tree(dir));
      QS_TRY(qs_dir_make(dir));
    }
    free(dir);
    dir = NULL;
  }
fail:
  free(dir);
  return status;
}

// An input tensor written with other values: a norm weight an AWQ-style method folded its scales
// into (record.h QS_QRECORD_X_NORM), as float32 values exact in the tensor's dtype.
struct override {
  char name[192];
  float *v;
  int64_t n;
  void *bytes; // v in the input tensor's dtype: the writers may hold the pointer until they finish
};

struct writers {
  struct qs_format_run fr[QS_MAX_FORMATS];
  struct qs_fwriter *w[QS_MAX_FORMATS]; // NULL where this rank does not write format i
  int n_open;
  struct override *ov;
  int n_ov;
};

static void writers_free(const struct qs_run_opts *a, struct writers *ws) {
  for (int i = 0; i < a->n_formats; i++)
    if (ws->w[i]) a->formats[i]->free(ws->w[i]);
  for (int i = 0; i < ws->n_ov; i++) free(ws->ov[i].v), free(ws->ov[i].bytes);
  free(ws->ov);
}

// A record's folded norm as the override of "model.layers.L.<prev_norm>.weight".
static qs_status take_override(const struct qs_qrun *run, struct writers *ws, const struct qs_qrecord *rec) {
  qs_status status = QS_OK;
  const struct qs_layout *lay = qs_layout_of(&run->m->cfg);
  const float *v = qs_qrecord_find_extra(rec, QS_QRECORD_X_NORM, rec->K);
  int lin;
  if (!v) return QS_OK;
  QS_TRY(qs_format_record_lin(&ws->fr[0], rec, &lin));
  const char *norm = lay->group[lay->lin_group[lin]].prev_norm;
  if (!norm) QS_FAIL(QS_ERR_FORMAT, "%s: a folded norm, but its group reads no norm", rec->name);
  struct override *o = realloc(ws->ov, (size_t)(ws->n_ov + 1) * sizeof(*o));
  if (!o) QS_FAIL(QS_ERR_OOM, "out of memory");
  ws->ov = o;
  o = &ws->ov[ws->n_ov++];
  *o = (struct override){.n = rec->K};
  snprintf(o->name, sizeof(o->name), "model.layers.%d.%s.weight", rec->layer, norm);
  QS_ALLOC(o->v, o->n);
  memcpy(o->v, v, (size_t)o->n * sizeof(float));
fail:
  return status;
}

// Input tensor t, or its override converted to t's dtype.
static qs_status dense_tensor(struct writers *ws, const struct qs_st_tensor *t, struct qs_st_tensor *out) {
  qs_status status = QS_OK;
  *out = *t;
  for (int i = 0; i < ws->n_ov; i++) {
    struct override *o = &ws->ov[i];
    if (strcmp(o->name, t->name)) continue;
    if (t->ndim != 1 || t->shape[0] != o->n || !qs_dtype_is_float(t->dtype))
      QS_FAIL(QS_ERR_FORMAT, "%s: the folded norm [%lld] does not match the input tensor", t->name, (long long)o->n);
    if (!o->bytes) {
      QS_ALLOC(*(uint8_t **)&o->bytes, (size_t)o->n * qs_dtype_size(t->dtype));
      qs_convert_from_f32(o->v, t->dtype, o->bytes, (size_t)o->n);
    }
    out->data = o->bytes;
    out->begin = 0;
    out->end = (uint64_t)o->n * qs_dtype_size(t->dtype);
    break;
  }
fail:
  return status;
}

static qs_status writers_open(struct qs_qrun *run, const char *tmp, struct writers *ws) {
  qs_status status = QS_OK;
  const struct qs_run_opts *a = run->a;
  char *dir = NULL;
  for (int i = 0; i < a->n_formats; i++) {
    ws->fr[i] = qs_run_format_run(a, run->m, i, qs_comm_rank(run->world), qs_comm_size(run->world));
    if (!a->formats[i]->writes(&ws->fr[i])) continue;
    if (!(dir = qs_output_dir(a, i, tmp))) QS_FAIL(QS_ERR_OOM, "out of memory");
    QS_TRY(a->formats[i]->open(&ws->w[i], &ws->fr[i], dir));
    ws->n_open++;
    free(dir);
    dir = NULL;
  }
fail:
  free(dir);
  return status;
}

// Every record, layer by layer in report order, to every writer of this rank.
static qs_status feed_records(struct qs_qrun *run, struct writers *ws) {
  qs_status status = QS_OK;
  const struct qs_run_opts *a = run->a;
  struct qs_st_file f = {0};
  struct qs_qrecord rec = {0};
  int open = 0, L = run->m->cfg.n_layers, i = 0;
  for (int l = 0; l < L; l++) {
    QS_TRY(qs_qstate_open_layer(run->state, l, &f));
    open = 1;
    for (; i < run->n_reports && run->reports[i].layer == l; i++) {
      QS_TRY(qs_qrecord_load(&f, run->reports[i].name, l, &rec));
      QS_TRY(take_override(run, ws, &rec));
      for (int j = 0; j < a->n_formats; j++) {
        int dense = 0;
        if (!ws->w[j]) continue;
        QS_TRY(a->formats[j]->module(ws->w[j], &rec, &dense));
        if (j == 0 && dense) run->reports[i].packed = 0;
      }
      qs_qrecord_free(&rec);
    }
    qs_st_close(&f);
    open = 0;
  }
  if (i != run->n_reports) QS_FAIL(QS_ERR_INTERNAL, "reports out of layer order at %s", run->reports[i].name);
fail:
  qs_qrecord_free(&rec);
  if (open) qs_st_close(&f);
  return status;
}

static qs_status write_local(struct qs_qrun *run, const char *tmp, struct writers *ws) {
  qs_status status = QS_OK;
  const struct qs_run_opts *a = run->a;
  const struct qs_ckpt *ck = &run->m->ckpt;
  QS_TRY(writers_open(run, tmp, ws));
  if (!ws->n_open) return QS_OK;
  QS_TRY(feed_records(run, ws));
  for (size_t t = 0; t < ck->n_tensors; t++) {
    struct qs_st_tensor tt;
    QS_TRY(dense_tensor(ws, ck->by_name[t], &tt));
    for (int j = 0; j < a->n_formats; j++)
      if (ws->w[j]) QS_TRY(a->formats[j]->dense(ws->w[j], &tt));
  }
  for (int j = 0; j < a->n_formats; j++)
    if (ws->w[j]) QS_TRY(a->formats[j]->finish(ws->w[j]));
fail:
  return status;
}

qs_status qs_output_write(struct qs_qrun *run, const char *tmp) {
  qs_status status = QS_OK, mine = QS_OK;
  struct writers ws = {0};
  char path[4096] = {0};
  double t0 = qs_time_now();
  int ok;
  if (qs_comm_rank(run->world) == 0) {
    snprintf(path, sizeof(path), "%s", tmp);
    mine = prepare_dirs(run->a, tmp);
  }
  ok = mine == QS_OK;
  QS_TRY(qs_comm_allreduce_and(run->world, &ok));
  if (!ok) QS_FAIL(QS_ERR_IO, "the output directories in %s could not be prepared (see above)", tmp);
  QS_TRY(qs_comm_bcast(run->world, path, sizeof(path), 0)); // rank 0's directory, named to every writer
  ok = write_local(run, path, &ws) == QS_OK;
  writers_free(run->a, &ws);
  QS_TRY(qs_comm_allreduce_and(run->world, &ok));
  if (!ok) QS_FAIL(QS_ERR_IO, "writing the outputs in %s failed (see above)", path);
  qs_progress_note(run, "written", json_pack("{s:i, s:f}", "formats", run->a->n_formats, "seconds", qs_time_now() - t0),
                   "wrote %d format(s) from the layer records in %.2f s", run->a->n_formats, qs_time_now() - t0);
fail:
  return status;
}
