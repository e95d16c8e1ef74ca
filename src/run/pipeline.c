// pipeline.c — one decoder layer, engine- and method-independent (contract: pipeline.h).
#include "run/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "comm.h"
#include "quant/awq.h"
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
  float *d = NULL;
  QS_TRY(qs_qrecord_add_extra(rec, "in_sum2", NULL, K, &d));
  for (int64_t k = 0; k < K; k++) d[k] = qs_imatrix_sum2_from_hessian(H[k * K + k], o->imp_count);
fail:
  return status;
}

long long qs_scale_tiles(const struct qs_config *cfg, enum qs_group g, int tile, long long tile_start[QS_LIN_COUNT + 1]) {
  const struct qs_layout_group *grp = &qs_layout_of(cfg)->group[g];
  tile_start[0] = 0;
  for (int m = 0; m < grp->count; m++) {
    int n_out, n_in, bias;
    qs_layout_shape(cfg, (enum qs_lin)(grp->first + m), &n_out, &n_in, &bias);
    tile_start[m + 1] = tile_start[m] + QS_CEIL_DIV((long long)n_out, (long long)tile);
  }
  return tile_start[grp->count];
}

qs_status qs_scale_tiles_reduce(struct qs_comm *c, long long n_tiles, int n, double *all, double *err) {
  qs_status status = QS_OK;
  const int P = qs_comm_size(c);
  size_t *counts = NULL;
  QS_ALLOC(counts, P);
  for (int r = 0; r < P; r++) {
    long long b, e;
    qs_comm_split_range(n_tiles, P, r, &b, &e);
    counts[r] = (size_t)(e - b) * (size_t)n * sizeof(double);
  }
  QS_TRY(qs_comm_allgatherv(c, NULL, all, counts));
  for (int a = 0; a < n; a++) {
    double sum = 0;
    for (long long t = 0; t < n_tiles; t++) sum += all[t * n + a];
    err[a] = sum;
  }
fail:
  free(counts);
  return status;
}

// Per-input-channel scales of the layer's groups (method.h QS_METHOD_SCALES, quant/awq.h): all
// searched on the full-precision layer (stats), then folded, before any module is quantized (as
// AutoAWQ orders it). Then either the groups' Hessians are taken again from the folded layer as
// usual (sequentially, from the quantized groups before: awq+gptq), or (QS_METHOD_FP_INPUTS: awq)
// the full-precision ones are kept, made those of the folded inputs, and the stats pass has already
// made x the full-precision layer's output. scales[g] / norm[g]: the chosen scales and the folded
// norm weight of group g, or NULL; H[g]: the kept Hessian of group g (engine memory), or NULL.
struct layer_scales {
  float *scales[QS_GROUP_COUNT];
  float *norm[QS_GROUP_COUNT];
  float *H[QS_GROUP_COUNT];
};

static void layer_scales_free(struct qs_qengine *e, struct layer_scales *ls) {
  for (int g = 0; g < QS_GROUP_COUNT; g++) {
    free(ls->scales[g]);
    free(ls->norm[g]);
    if (ls->H[g]) e->hessian_free(e, ls->H[g]);
    ls->scales[g] = ls->norm[g] = ls->H[g] = NULL;
  }
}

static qs_status equalize(struct qs_qrun *run, struct layer_scales *ls) {
  qs_status status = QS_OK;
  struct qs_qengine *e = run->engine;
  const struct qs_config *cfg = &run->m->cfg;
  const struct qs_layout *lay = qs_layout_of(cfg);
  float *H[QS_GROUP_COUNT] = {0}, *xabs[QS_GROUP_COUNT] = {0}, *S = NULL;
  double err[QS_AWQ_N_ALPHA];
  char name[160];
  const int fp_inputs = (run->a->method->needs & QS_METHOD_FP_INPUTS) != 0;
  if (!e->stats || !e->scale_error || !e->fold)
    QS_FAIL(QS_ERR_UNSUPPORTED, "--method %s: the %s engine has no scale search (use --device cpu)",
            run->a->method->name, e->name);
  QS_TRY(e->stats(e, run, H, xabs, fp_inputs));
  for (int g = 0; g < QS_GROUP_COUNT; g++) {
    const struct qs_layout_group *grp = &lay->group[g];
    struct qs_qopts o;
    int n_out, K, bias, best = 0;
    if (qs_layout_prev_lin(lay, cfg, (enum qs_group)g) < 0 && !grp->prev_norm) continue;
    qs_layout_shape(cfg, (enum qs_lin)grp->first, &n_out, &K, &bias);
    qs_run_module_opts(run, (enum qs_lin)grp->first, &o);
    QS_ALLOC(S, (size_t)QS_AWQ_N_ALPHA * K);
    for (int a = 0; a < QS_AWQ_N_ALPHA; a++) qs_awq_scales_ref((float)a / QS_AWQ_N_ALPHA, xabs[g], K, S + (size_t)a * K);
    QS_TRY(e->scale_error(e, run, (enum qs_group)g, &o, H[g], S, QS_AWQ_N_ALPHA, err));
    for (int a = 1; a < QS_AWQ_N_ALPHA; a++)
      if (err[a] < err[best]) best = a;
    if (!isfinite(err[best])) {
      qs_layout_module_path(lay, run->layer, (enum qs_lin)grp->first, name, sizeof(name));
      QS_FAIL(QS_ERR_NUMERIC, "%s: the scale search's output error is %g (non-finite weights or activations)", name,
              err[best]);
    }
    QS_ALLOC(ls->scales[g], K);
    memcpy(ls->scales[g], S + (size_t)best * K, (size_t)K * sizeof(float));
    free(S);
    S = NULL;
    if (qs_comm_rank(run->data) == 0)
      qs_log(QS_LOG_DEBUG, "  layer %d %s: alpha %.2f, output error %.4g (%.1f %% of round-to-nearest's)", run->layer,
             grp->input, (double)best / QS_AWQ_N_ALPHA, err[best], err[0] > 0 ? 100.0 * err[best] / err[0] : 100.0);
  }
  for (int g = 0; g < QS_GROUP_COUNT; g++) {
    const struct qs_layout_group *grp = &lay->group[g];
    qs_dtype dt = QS_DTYPE_F32;
    if (!ls->scales[g]) continue;
    if (grp->prev_norm) {
      snprintf(name, sizeof(name), "model.layers.%d.%s.weight", run->layer, grp->prev_norm);
      const struct qs_st_tensor *t = qs_ckpt_find(&run->m->ckpt, name);
      if (!t) QS_FAIL(QS_ERR_FORMAT, "%s: tensor missing", name);
      dt = t->dtype;
      QS_ALLOC(ls->norm[g], cfg->hidden);
    }
    QS_TRY(e->fold(e, run, (enum qs_group)g, ls->scales[g], dt, ls->norm[g], fp_inputs ? H[g] : NULL));
  }
  if (fp_inputs)
    for (int g = 0; g < QS_GROUP_COUNT; g++) ls->H[g] = H[g], H[g] = NULL; // the groups' Hessians from here
fail:
  free(S);
  for (int g = 0; g < QS_GROUP_COUNT; g++) {
    if (H[g]) e->hessian_free(e, H[g]);
    free(xabs[g]);
  }
  return status;
}

static qs_status group(struct qs_qrun *run, enum qs_group g, struct layer_scales *ls) {
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
  if (ls->H[g]) { // the full-precision one, kept by equalize (QS_METHOD_FP_INPUTS); group() frees it
    H = ls->H[g];
    ls->H[g] = NULL;
  } else {
    QS_TRY(e->hessian(e, run, g, &H));
  }
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
      if (info.rtn_fallback && qs_comm_rank(run->data) == 0) // once per prep (group), each stage's leader
        qs_log(QS_LOG_WARN, "%s: the Hessian of its input (%s) is not positive definite even with damp %g: "
               "falling back to RTN for this module (and the others of the group that share it)", name, grp->input,
               (double)info.damp);
      else if (info.damp_raises && qs_comm_rank(run->data) == 0) // each stage's leader: its own layers
        qs_log(QS_LOG_INFO, "  %s: Cholesky failed at damp %g, succeeded at damp %g", name, (double)o.damp,
               (double)info.damp);
    }
    double t0 = qs_time_now();
    qs_qreport_init(&rep, run, (enum qs_lin)i);
    if (run->a->method->needs & QS_METHOD_HESSIAN) {
      rep.damp = info.rtn_fallback ? -1.0f : info.damp; // run.h: -1 = quantized by the RTN fallback
      rep.damp_raises = info.damp_raises;
    }
    QS_TRY(e->module(e, run, &o, state, H, (enum qs_lin)i, &rep, &rec));
    rep.seconds = qs_time_now() - t0;
    if (o.importance == QS_IMP_CALIB && H && rec.codes) QS_TRY(attach_sum2(&o, H, &rec));
    // the scales stay with the modules' records; the folded norm (which the writers put in place of
    // the input's) with the group's first module
    if (ls->scales[g] && rec.codes) QS_TRY(qs_qrecord_add_extra(&rec, QS_QRECORD_X_SCALES, ls->scales[g], n_in, NULL));
    if (ls->norm[g] && rec.codes && i == grp->first) QS_TRY(qs_qrecord_add_extra(&rec, QS_QRECORD_X_NORM, ls->norm[g], n_in, NULL));
    for (int g2 = 0; g2 < QS_GROUP_COUNT; g2++)
      if (ls->scales[g2] && rec.codes && qs_layout_prev_lin(lay, &run->m->cfg, (enum qs_group)g2) == i)
        QS_TRY(qs_qrecord_add_extra(&rec, QS_QRECORD_X_OUT_SCALES, ls->scales[g2], n_out, NULL));
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
  struct layer_scales ls = {0};
  QS_TRY(e->load(e, run, l));
  if (run->a->method->needs & QS_METHOD_SCALES) QS_TRY(equalize(run, &ls));
  for (int g = 0; g < QS_GROUP_COUNT; g++) QS_TRY(group(run, (enum qs_group)g, &ls));
  QS_TRY(e->finish(e, run, l));
fail:
  layer_scales_free(e, &ls);
  return status;
}
