// pipeline.c — one decoder layer, engine- and method-independent (contract: pipeline.h).
#include "run/pipeline.h"

#include <math.h>
#include <string.h>

#include "comm.h"
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

static qs_status group(struct qs_qrun *run, enum qs_group g) {
  qs_status status = QS_OK;
  struct qs_qengine *e = run->engine;
  const struct qs_layout *lay = qs_layout_of(&run->m->cfg);
  const struct qs_layout_group *grp = &lay->group[g];
  struct qs_qprep_info info = {0};
  struct qs_qrecord rec = {0};
  float *H = NULL;
  void *state = NULL;
  int n_out, n_in, bias;
  char name[160];
  qs_layout_shape(&run->m->cfg, (enum qs_lin)grp->first, &n_out, &n_in, &bias);
  qs_layout_module_path(lay, run->layer, (enum qs_lin)grp->first, name, sizeof(name));
  QS_TRY(e->hessian(e, run, g, &H));
  QS_TRY(e->prep(e, run, H, n_in, name, &state, &info));
  if (info.damp_raises && qs_comm_rank(run->data) == 0) // each stage's leader: its own layers
    qs_log(QS_LOG_INFO, "  %s: Cholesky failed at damp %g, succeeded at damp %g", name, (double)run->a->q.damp,
           (double)info.damp);
  for (int i = grp->first; i < grp->first + grp->count; i++) {
    struct qs_qreport rep;
    double t0 = qs_time_now();
    qs_qreport_init(&rep, run, (enum qs_lin)i);
    if (run->a->method->needs & QS_METHOD_HESSIAN) {
      rep.damp = info.damp;
      rep.damp_raises = info.damp_raises;
    }
    QS_TRY(e->module(e, run, state, H, (enum qs_lin)i, &rep, &rec));
    rep.seconds = qs_time_now() - t0;
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
