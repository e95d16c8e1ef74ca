// pipeline.c — one decoder layer, engine- and method-independent (contract: pipeline.h).
#include "run/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "comm.h"
#include "quant/imatrix.h"
#include "run/engine.h"
#include "run/qstate.h"

// The module's record into the stage leader's layer file (moved to the saver thread, qstate.h), its
// report line everywhere.
static qs_status emit(struct qs_qrun *run, const struct qs_qreport *rep, struct qs_qrecord *rec) {
  qs_status status = QS_OK;
  if (qs_comm_rank(run->data) == 0) QS_TRY(qs_qstate_put_record(run->state, rec));
  QS_TRY(qs_qreport_push(run, rep));
fail:
  return status;
}

// imatrix.h's sums of the group's input (QS_IMP_CALIB) as the record's extra "in_sum2" [K]: the
// GGUF writer saves them as llama.cpp's imatrix file. H is host memory here (block grids, and so
// QS_IMP_CALIB, run on the CPU engine only).
static qs_status attach_sum2(const struct qs_qopts *o, const float *H, struct qs_qrecord *rec) {
  qs_status status = QS_OK;
  const int64_t K = rec->K;
  if (rec->n_extra == QS_QRECORD_MAX_EXTRA) QS_FAIL(QS_ERR_INTERNAL, "%s: no room for the imatrix sums", rec->name);
  struct qs_qextra *x = &rec->extra[rec->n_extra];
  QS_ALLOC(x->data, K);
  snprintf(x->name, sizeof(x->name), "in_sum2");
  x->ndim = 1;
  x->shape[0] = K;
  for (int64_t k = 0; k < K; k++) x->data[k] = qs_imatrix_sum2_from_hessian(H[k * K + k], o->imp_count);
  rec->n_extra++;
fail:
  return status;
}

static qs_status group(struct qs_qrun *run, enum qs_group g) {
  qs_status status = QS_OK;
  struct qs_qengine *e = run->engine;
  const struct qs_layout *lay = qs_layout_of(&run->m->cfg);
  const struct qs_layout_group *grp = &lay->group[g];
  struct qs_qprep_info info = {0};
  struct qs_qrecord rec = {0};
  struct qs_qopts o, o_prep;
  float *H = NULL;
  void *state = NULL;
  int n_out, n_in, bias;
  char name[160];
  qs_layout_shape(&run->m->cfg, (enum qs_lin)grp->first, &n_out, &n_in, &bias);
  QS_TRY(e->hessian(e, run, g, &H));
  for (int i = grp->first; i < grp->first + grp->count; i++) {
    struct qs_qreport rep;
    // One prep per group, again only for a module that a format puts on other options.
    qs_run_module_opts(run, (enum qs_lin)i, &o);
    if (!state || !qs_qopts_same(&o, &o_prep)) {
      if (state) e->prep_free(e, run, state);
      state = NULL;
      qs_layout_module_path(lay, run->layer, (enum qs_lin)i, name, sizeof(name));
      QS_TRY(e->prep(e, run, &o, H, n_in, name, &state, &info));
      o_prep = o;
      if (info.damp_raises && qs_comm_rank(run->data) == 0) // each stage's leader: its own layers
        qs_log(QS_LOG_INFO, "  %s: Cholesky failed at damp %g, succeeded at damp %g", name, (double)o.damp,
               (double)info.damp);
    }
    double t0 = qs_time_now();
    qs_qreport_init(&rep, run, (enum qs_lin)i);
    if (run->a->method->needs & QS_METHOD_HESSIAN) {
      rep.damp = info.damp;
      rep.damp_raises = info.damp_raises;
    }
    QS_TRY(e->module(e, run, &o, state, H, (enum qs_lin)i, &rep, &rec));
    rep.seconds = qs_time_now() - t0;
    if (o.importance == QS_IMP_CALIB && H && rec.codes) QS_TRY(attach_sum2(&o, H, &rec));
    QS_TRY(emit(run, &rep, &rec));
    qs_qrecord_free(&rec);
  }
fail:
  qs_qrecord_free(&rec);
  if (state) e->prep_free(e, run, state);
  if (H) e->hessian_free(e, H);
  return status;
}

qs_status qs_pipeline_layer(struct qs_qrun *run, int l) {
  qs_status status = QS_OK;
  struct qs_qengine *e = run->engine;
  run->layer = l;
  QS_TRY(e->load(e, run, l));
  for (int g = 0; g < QS_GROUP_COUNT; g++) QS_TRY(group(run, (enum qs_group)g));
  QS_TRY(e->finish(e, run, l));
fail:
  return status;
}
