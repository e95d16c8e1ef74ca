// stages.c — `qshard quantize --stages S`: the stage × data grid, the layer split, the pipelined
// full-precision forward that gives every stage its boundary activations, and the join after the
// stages have quantized their layers (contract and rank mapping: stages.h).
#include "run/stages.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/calib.h"
#include "comm.h"
#include "model/device.h"
#include "run/progress.h"
#include "run/engine.h"
#include "run/qstate.h"

QS_PARAM(stage_microbatch, "QS_STAGE_MICROBATCH", 1) // samples per message of the boundary pipeline

enum { TAG_BOUNDARY = 7100 }; // point-to-point tag of the boundary micro-batches (FIFO per pair)

// ---- the check and the split --------------------------------------------------------------------

// One message from rank 0 naming the option; QS_ERR_ARG everywhere (run.h).
#define refuse(world, value, ...) qs_quantize_refuse(world, "--stages", value, __VA_ARGS__)

qs_status qs_stages_check(struct qs_comm *world, const struct qs_run_opts *a, const struct qs_model *m) {
  int S = a->stages, P = qs_comm_size(world);
  if (S < 1) return refuse(world, S, "expected a positive stage count");
  if (P % S)
    return refuse(world, S, "%d MPI ranks do not form %d stages of equal size (the rank count must be a multiple "
                  "of the stage count: S stages x D data ranks)", P, S);
  if (S > m->cfg.n_layers)
    return refuse(world, S, "%s has %d decoder layers: at most one stage per layer", m->dir, m->cfg.n_layers);
  if (S > 1 && a->device == QS_DEVICE_KIND_CUDA)
    return refuse(world, S, "stages run on the CPU engine only for now (use --device cpu): the CUDA engine's "
                  "collectives span every rank");
  return QS_OK;
}

void qs_stages_split_layers(const long long *params, int n, int S, int *bounds) {
  long long total = 0;
  for (int l = 0; l < n; l++) total += params[l];
  bounds[0] = 0;
  bounds[S] = n;
  for (int s = 1; s < S; s++) {
    int lo = bounds[s - 1] + 1, hi = n - (S - s); // every stage before and after keeps a layer
    long long p = 0, target = (long long)s * total;  // compare S * prefix with s * total: no rounding
    for (int l = 0; l < lo; l++) p += params[l];
    long long best_d = llabs((long long)S * p - target);
    bounds[s] = lo;
    for (int l = lo + 1; l <= hi; l++) {
      p += params[l - 1];
      long long d = llabs((long long)S * p - target);
      if (d < best_d) { best_d = d; bounds[s] = l; }
    }
  }
}

// Parameters of each decoder layer: the element counts of the checkpoint's "model.layers.L.*" tensors.
static qs_status layer_params(const struct qs_model *m, long long *params) {
  qs_status status = QS_OK;
  int n = m->cfg.n_layers;
  for (size_t i = 0; i < m->ckpt.n_tensors; i++) {
    const struct qs_st_tensor *t = m->ckpt.by_name[i];
    int l = -1, off = 0;
    if (sscanf(t->name, "model.layers.%d.%n", &l, &off) == 1 && off > 0 && l >= 0 && l < n)
      params[l] += (long long)qs_st_numel(t);
  }
  for (int l = 0; l < n; l++)
    if (params[l] <= 0) QS_FAIL(QS_ERR_FORMAT, "%s: no tensors of decoder layer %d", m->ckpt.path, l);
fail:
  return status;
}

qs_status qs_stages_init(struct qs_stages *g, struct qs_comm *world, int S, const struct qs_model *m) {
  qs_status status = QS_OK;
  long long *params = NULL;
  int P = qs_comm_size(world), rank = qs_comm_rank(world), n = m->cfg.n_layers;
  *g = (struct qs_stages){.S = S, .D = P / S, .data = world};
  g->stage = rank / g->D;
  g->drank = rank % g->D;
  QS_ALLOC(g->bounds, S + 1);
  QS_ALLOC(params, n);
  QS_TRY(layer_params(m, params));
  qs_stages_split_layers(params, n, S, g->bounds);
  g->l0 = g->bounds[g->stage];
  g->l1 = g->bounds[g->stage + 1];
  if (S > 1) {
    g->data = NULL;
    QS_TRY(qs_comm_split(world, g->stage, g->drank, &g->data));
  }
fail:
  free(params);
  return status;
}

void qs_stages_free(struct qs_stages *g) {
  if (!g) return;
  if (g->S > 1) qs_comm_free(g->data);
  free(g->bounds);
  memset(g, 0, sizeof(*g));
}

json_t *qs_stages_json(const struct qs_stages *g) {
  json_t *arr = json_array();
  for (int s = 0; arr && s < g->S; s++)
    json_array_append_new(arr, json_pack("{s:i, s:[i, i], s:[i, i]}", "stage", s, "layers", g->bounds[s],
                                         g->bounds[s + 1] - 1, "ranks", s * g->D, (s + 1) * g->D - 1));
  return arr;
}

// ---- the boundary pass --------------------------------------------------------------------------

struct pass {
  int n;                 // stage layers loaded (0 on the last stage: it forwards nothing)
  struct qs_layer *L;    // [n] fp32 copies of layers [l0, l0 + n)
  struct qs_fwd ws;      // sized for one micro-batch
  float *buf;            // [mb, T, hidden] the micro-batch in flight
};

static void pass_free(struct pass *p) {
  for (int i = 0; i < p->n; i++) qs_layer_free(&p->L[i]);
  free(p->L);
  qs_fwd_free(&p->ws);
  free(p->buf);
}

static qs_status pass_init(struct pass *p, const struct qs_qrun *run, int mb) {
  qs_status status = QS_OK;
  const struct qs_stages *g = run->grid;
  memset(p, 0, sizeof(*p));
  QS_ALLOC(p->buf, (size_t)mb * (size_t)run->T * (size_t)run->m->cfg.hidden);
  if (g->stage == g->S - 1) return QS_OK;
  QS_ALLOC(p->L, g->l1 - g->l0);
  for (; p->n < g->l1 - g->l0; p->n++) QS_TRY(qs_model_load_layer(run->m, g->l0 + p->n, &p->L[p->n]));
  QS_TRY(qs_fwd_init(&p->ws, &run->m->cfg, mb, run->T));
fail:
  return status;
}

// One micro-batch of nb samples (this rank's samples [b0, b0 + nb)): in (embedded or received), kept in
// xin when this stage takes its boundary, through the stage's layers, out to the next stage.
static qs_status pass_microbatch(struct pass *p, struct qs_qrun *run, const struct qs_calib *cal, long long b0, int nb,
                                 float *xin) {
  qs_status status = QS_OK;
  const struct qs_stages *g = run->grid;
  const struct qs_model *m = run->m;
  size_t per = (size_t)run->T * (size_t)m->cfg.hidden, bytes = (size_t)nb * per * sizeof(float);
  if (g->stage == 0) {
    for (int b = 0; b < nb; b++)
      qs_model_embed(m, cal->ids + (size_t)(run->s0 + b0 + b) * (size_t)cal->seqlen, cal->seqlen,
                     p->buf + (size_t)b * per);
  } else {
    QS_TRY(qs_comm_recv(run->world, p->buf, bytes, (g->stage - 1) * g->D + g->drank, TAG_BOUNDARY));
  }
  if (xin) memcpy(xin + (size_t)b0 * per, p->buf, bytes);
  if (g->stage == g->S - 1) return QS_OK;
  for (int i = 0; i < p->n; i++)
    QS_TRY(qs_layer_forward(&m->cfg, m->rope_inv_freq, &p->L[i], p->buf, nb, run->T, &p->ws));
  QS_TRY(qs_comm_send(run->world, p->buf, bytes, (g->stage + 1) * g->D + g->drank, TAG_BOUNDARY));
fail:
  return status;
}

// xin: [s1 - s0, T, hidden] receives this stage's boundary activations, or NULL.
static qs_status pass_run(struct qs_qrun *run, const struct qs_calib *cal, float *xin) {
  qs_status status = QS_OK;
  struct pass p = {0};
  long long B = run->s1 - run->s0, mb = QS_MAX(1, qs_param_stage_microbatch());
  mb = QS_MIN(mb, QS_MAX(B, 1));
  QS_TRY(pass_init(&p, run, (int)mb));
  for (long long b0 = 0; b0 < B; b0 += mb) QS_TRY(pass_microbatch(&p, run, cal, b0, (int)QS_MIN(mb, B - b0), xin));
fail:
  pass_free(&p);
  return status;
}

qs_status qs_stages_boundary(struct qs_qrun *run, const struct qs_calib *cal) {
  qs_status status = QS_OK;
  const struct qs_stages *g = run->grid;
  float *xin = NULL;
  // A stage takes its boundary unless it is the first (its input is the embedding) or --resume
  // restored activations of its own.
  int need = g->stage > 0 && run->state->saved == 0, none = !need;
  double t0 = qs_time_now();
  if (g->S == 1 || !cal) return QS_OK;
  QS_TRY(qs_comm_allreduce_and(run->world, &none));
  if (none) return QS_OK; // every stage restored its state: no pass
  if (need) QS_ALLOC(xin, (size_t)(run->s1 - run->s0) * (size_t)run->T * (size_t)run->m->cfg.hidden);
  QS_TRY(pass_run(run, cal, xin));
  if (need) {
    QS_TRY(run->engine->set_x(run->engine, run, xin));
    QS_TRY(qs_qstate_save_boundary(run->state, run));
  }
  qs_progress_stage_note(run, "boundary", json_pack("{s:i, s:i, s:b, s:f}", "first_layer", g->l0, "last_layer",
                                                    g->l1 - 1, "taken", need, "seconds", qs_time_now() - t0),
                         "layers %d..%d: full-precision boundary pass in %.2f s%s", g->l0, g->l1 - 1,
                         qs_time_now() - t0, need || g->stage == 0 ? "" : " (activations restored by --resume)");
fail:
  free(xin);
  return status;
}

// ---- the join -----------------------------------------------------------------------------------

// Every stage's reports on every rank, in stage (= layer) order: stage leaders contribute theirs.
static qs_status gather_reports(struct qs_qrun *run) {
  qs_status status = QS_OK;
  int P = qs_comm_size(run->world), rank = qs_comm_rank(run->world);
  long long *n = NULL, total = 0;
  size_t *counts = NULL;
  struct qs_qreport *all = NULL;
  QS_ALLOC(n, P);
  QS_ALLOC(counts, P);
  for (int r = 0; r < P; r++) counts[r] = sizeof(long long);
  n[rank] = run->grid->drank == 0 ? run->n_reports : 0;
  QS_TRY(qs_comm_allgatherv(run->world, NULL, n, counts));
  for (int r = 0; r < P; r++) { counts[r] = (size_t)n[r] * sizeof(struct qs_qreport); total += n[r]; }
  QS_ALLOC(all, total);
  // a send buffer on every rank (MPI allows in-place on all ranks or none); non-leaders send 0 bytes
  const void *mine = run->grid->drank == 0 && run->reports ? (const void *)run->reports : (const void *)n;
  QS_TRY(qs_comm_allgatherv(run->world, mine, all, counts));
  free(run->reports);
  run->reports = all;
  run->n_reports = run->cap_reports = (int)total;
  all = NULL;
fail:
  free(n);
  free(counts);
  free(all);
  return status;
}

qs_status qs_stages_join(struct qs_qrun *run) {
  qs_status status = QS_OK;
  const struct qs_stages *g = run->grid;
  int ok = 1, L = run->m->cfg.n_layers;
  if (g->S == 1) return QS_OK;
  double t0 = qs_time_now();
  QS_TRY(qs_comm_barrier_idle(run->world)); // early stages sleep here until the last one is done
  qs_progress_note(run, "stages_joined", json_pack("{s:i, s:f}", "stages", g->S, "waited_rank0", qs_time_now() - t0),
                   "all %d stages done (rank 0 waited %.2f s)", g->S, qs_time_now() - t0);
  QS_TRY(gather_reports(run));
  // The other stages' record files, as rank 0 sees them (the outputs are written from them).
  if (qs_comm_rank(run->world) == 0) ok = qs_qstate_check_layers(run->state, run, g->l1, L) == QS_OK;
  QS_TRY(qs_comm_allreduce_and(run->world, &ok));
  if (!ok) QS_FAIL(QS_ERR_IO, "the layer files of the other stages could not be read (see above): the output "
                   "directory must be on a filesystem every stage leader and rank 0 see");
fail:
  return status;
}
