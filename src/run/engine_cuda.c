// engine_cuda.c — the cuda engine of `qshard quantize` (engine.h): this rank's calibration samples
// stay on its GPU as an fp32 residual stream; each layer is streamed in, and for each linear group
// the pipeline asks for (pipeline.h) the group's inputs are formed sample by sample and their Hessian
// is summed in the fixed leaf order (engine_cuda.h); the method's GPU entries quantize the modules
// (engine_module_cuda.c). Per layer: q/k/v/o GEMMs once, gate/up once when the down_proj inputs fit
// on the device (else twice: for the down Hessian and for the output).
#include <stdlib.h>
#include <string.h>

#include "awq_xabs.h"
#include "hessian.h"
#include "io/calib.h"
#include "qs_cuda.h"
#include "residual.h"
#include "run/engine_cuda.h"

// Keep the down_proj inputs of every sample (-1: when they fit, 0: never, 1: always).
QS_PARAM(cuda_store_act, "QS_CUDA_STORE_ACT", -1)

static const char *const k_phase_names[QS_PH_COUNT] = {"load",  "forward", "hessian", "search",
                                                       "factor", "solve",  "gather",  "record"};

static float *x_of(struct qs_cuda_engine *e, long long b) {
  return e->x + (size_t)b * e->T * e->ctx.cfg->hidden;
}
static void *act_of(struct qs_cuda_engine *e, long long b) {
  return (char *)e->act + (size_t)b * e->T * e->ctx.cfg->intermediate * qs_dtype_size(e->ctx.dt);
}
static void *att_of(struct qs_cuda_engine *e, long long b) {
  const struct qs_config *c = e->ctx.cfg;
  return (char *)e->att + (size_t)b * e->T * c->n_heads * c->head_dim * qs_dtype_size(e->ctx.dt);
}

// The input of group g for local sample b (and the forward steps that precede it): returns the
// device [T, K] matrix of dt.
static qs_status group_input(struct qs_cuda_engine *e, enum qs_group g, long long b, const void **X) {
  qs_status status = QS_OK;
  struct qs_dctx *c = &e->ctx;
  struct qs_dseq *s = &e->seq;
  switch (g) {
  case QS_GROUP_QKV:
    QS_TRY(qs_dfwd_norm(c, x_of(e, b), e->L.attn_norm, s));
    *X = s->xn;
    break;
  case QS_GROUP_O:
    QS_TRY(qs_dfwd_norm(c, x_of(e, b), e->L.attn_norm, s));
    QS_TRY(qs_dfwd_attention(c, &e->L, s, att_of(e, b)));
    *X = att_of(e, b);
    break;
  case QS_GROUP_GATE_UP: // o_proj is quantized now: finish the attention block first
    if (e->xs) { // statistics pass: on a copy, x stays the layer's input
      QS_CUDA_CHECK(cudaMemcpyAsync(e->xs, x_of(e, b), (size_t)e->T * c->cfg->hidden * sizeof(float),
                                    cudaMemcpyDeviceToDevice, c->stream));
      QS_TRY(qs_dfwd_attn_out(c, &e->L, att_of(e, b), e->xs, s));
      QS_TRY(qs_dfwd_norm(c, e->xs, e->L.mlp_norm, s));
    } else {
      QS_TRY(qs_dfwd_attn_out(c, &e->L, att_of(e, b), x_of(e, b), s));
      QS_TRY(qs_dfwd_norm(c, x_of(e, b), e->L.mlp_norm, s));
    }
    *X = s->xn;
    break;
  default:
    if (e->xs) { // statistics pass: the attention block again on the copy (the forward is as above)
      QS_CUDA_CHECK(cudaMemcpyAsync(e->xs, x_of(e, b), (size_t)e->T * c->cfg->hidden * sizeof(float),
                                    cudaMemcpyDeviceToDevice, c->stream));
      QS_TRY(qs_dfwd_attn_out(c, &e->L, att_of(e, b), e->xs, s));
      QS_TRY(qs_dfwd_norm(c, e->xs, e->L.mlp_norm, s));
      QS_TRY(qs_dfwd_mlp_act(c, &e->L, s));
      *X = s->gate;
      break;
    }
    QS_TRY(qs_dfwd_norm(c, x_of(e, b), e->L.mlp_norm, s));
    QS_TRY(qs_dfwd_mlp_act(c, &e->L, s));
    *X = s->gate;
    if (e->act) {
      QS_CUDA_CHECK(cudaMemcpyAsync(act_of(e, b), s->gate, (size_t)e->T * c->cfg->intermediate * qs_dtype_size(c->dt),
                                    cudaMemcpyDeviceToDevice, c->stream));
      *X = act_of(e, b);
    }
  }
fail:
  return status;
}

// Leaf v (a global leaf index owned by this rank) of group g into S (zeroed here): its samples' XᵀX
// added in sample order, and with `xabs` the channels' Σ|x| in S[K·K ...] (awq_xabs.h), samples in
// order. Forward and Hessian times are attributed separately.
static qs_status leaf_sum(struct qs_cuda_engine *e, struct qs_qrun *run, enum qs_group g, long long v, int K,
                          int xabs, float *S) {
  qs_status status = QS_OK;
  long long a, z;
  qs_comm_split_range(run->n_samples, (int)e->n_leaves, (int)v, &a, &z);
  QS_CUDA_CHECK(cudaMemsetAsync(S, 0, ((size_t)K * K + (xabs ? (size_t)K : 0)) * sizeof(float), e->ctx.stream));
  for (long long smp = a; smp < z; smp++) {
    const void *X = NULL;
    QS_TRY(group_input(e, g, smp - run->s0, &X));
    QS_TRY(qs_cuda_phase(e, QS_PH_FORWARD));
    QS_TRY(qs_gptq_hessian_add_cuda(S, X, e->T, K, e->ctx.dt, QS_HESSIAN_UPPER, e->ctx.blas, e->ctx.stream));
    if (xabs) QS_TRY(qs_awq_xabs_add_cuda(X, e->ctx.dt, e->T, K, S + (size_t)K * K, e->ctx.stream));
    QS_TRY(qs_cuda_phase(e, QS_PH_HESSIAN));
  }
fail:
  return status;
}

// H (device [K, K], allocated here) = the group's Hessian over every rank's samples, in the fixed
// leaf order of engine_cuda.h, finalized (scaled, both triangles) and identical on every rank. With
// `xabs`, H is [K·K + K]: the channels' Σ|x| over every token follow the Hessian, summed along the
// same chain (so identical on every rank and for any rank count), not scaled.
static qs_status group_hessian(struct qs_cuda_engine *e, struct qs_qrun *run, enum qs_group g, int K, int xabs,
                               float **H) {
  qs_status status = QS_OK;
  int rank = qs_comm_rank(run->data), P = qs_comm_size(run->data);
  long long n_own = e->leaf1 - e->leaf0;
  size_t bytes = ((size_t)K * K + (xabs ? (size_t)K : 0)) * sizeof(float);
  float *acc = NULL, **own = NULL;
  QS_CUDA_CHECK(cudaMalloc((void **)&acc, bytes));
  QS_ALLOC(own, QS_MAX(n_own, 1));
  memset(own, 0, sizeof(*own) * (size_t)QS_MAX(n_own, 1));
  if (rank == 0) { // fold as the leaves come: acc = L0, then acc += Lv
    for (long long j = 0; j < n_own; j++) {
      if (j == 1) QS_CUDA_CHECK(cudaMalloc((void **)&own[0], bytes));
      QS_TRY(leaf_sum(e, run, g, e->leaf0 + j, K, xabs, j == 0 ? acc : own[0]));
      if (j > 0) QS_TRY(qs_residual_add_cuda(acc, QS_DTYPE_F32, own[0], QS_DTYPE_F32, bytes / sizeof(float), e->ctx.stream));
    }
  } else { // own leaves first, then the running sum from rank - 1 and the additions in leaf order
    for (long long j = 0; j < n_own; j++) {
      QS_CUDA_CHECK(cudaMalloc((void **)&own[j], bytes));
      QS_TRY(leaf_sum(e, run, g, e->leaf0 + j, K, xabs, own[j]));
    }
    QS_TRY(qs_dcomm_recv(e->dcomm, acc, bytes, rank - 1, e->ctx.stream));
    for (long long j = 0; j < n_own; j++)
      QS_TRY(qs_residual_add_cuda(acc, QS_DTYPE_F32, own[j], QS_DTYPE_F32, bytes / sizeof(float), e->ctx.stream));
  }
  if (rank < P - 1) QS_TRY(qs_dcomm_send(e->dcomm, acc, bytes, rank + 1, e->ctx.stream));
  QS_TRY(qs_dcomm_bcast(e->dcomm, acc, bytes, P - 1, e->ctx.stream));
  QS_TRY(qs_gptq_hessian_finalize_cuda(acc, K, run->n_samples, e->ctx.stream));
  QS_TRY(qs_cuda_phase(e, QS_PH_HESSIAN));
  *H = acc;
  acc = NULL;
fail:
  for (long long j = 0; own && j < QS_MAX(n_own, 1); j++) cudaFree(own[j]);
  free(own);
  cudaFree(acc);
  return status;
}

static qs_status cuda_hessian(struct qs_qengine *base, struct qs_qrun *run, enum qs_group g, float **H) {
  struct qs_cuda_engine *e = (struct qs_cuda_engine *)base;
  *H = NULL;
  if (!e->x) return QS_OK;
  return group_hessian(e, run, g, e->L.n_in[qs_layout_of(&run->m->cfg)->group[g].first], 0, H);
}

static qs_status finish_layer(struct qs_cuda_engine *e);

// engine.h stats: each group's Hessian and channel means from the full-precision layer, in the
// groups' order. advance 0: the attention block's output is added to a scratch copy of each sample's
// residual (e->xs), never to x; advance 1: the groups' inputs formed as the sequential pass forms
// them (x takes the attention block), then the MLP block: x = the full-precision layer's output.
static qs_status cuda_stats(struct qs_qengine *base, struct qs_qrun *run, float *H[QS_GROUP_COUNT],
                            float *xabs[QS_GROUP_COUNT], int advance) {
  qs_status status = QS_OK;
  struct qs_cuda_engine *e = (struct qs_cuda_engine *)base;
  const struct qs_layout *lay = qs_layout_of(&run->m->cfg);
  for (int g = 0; g < QS_GROUP_COUNT; g++) H[g] = xabs[g] = NULL;
  if (!e->x) QS_FAIL(QS_ERR_ARG, "layer %d: the scale search needs calibration data", run->layer);
  if (!advance) QS_CUDA_CHECK(cudaMalloc((void **)&e->xs, (size_t)e->T * run->m->cfg.hidden * sizeof(float)));
  for (int g = 0; g < QS_GROUP_COUNT; g++) {
    const int K = e->L.n_in[lay->group[g].first];
    QS_TRY(group_hessian(e, run, (enum qs_group)g, K, 1, &H[g]));
    QS_ALLOC(xabs[g], K);
    QS_CUDA_CHECK(cudaMemcpyAsync(xabs[g], H[g] + (size_t)K * K, (size_t)K * sizeof(float), cudaMemcpyDeviceToHost,
                                  e->ctx.stream));
    QS_CUDA_CHECK(cudaStreamSynchronize(e->ctx.stream));
    const float n = (float)run->n_samples * (float)run->T; // as the CPU engine divides
    for (int k = 0; k < K; k++) xabs[g][k] /= n;
  }
  cudaFree(e->xs);
  e->xs = NULL;
  if (advance) {
    QS_TRY(finish_layer(e));
    e->x_done = 1;
  }
  return QS_OK;
fail:
  cudaFree(e->xs);
  e->xs = NULL;
  for (int g = 0; g < QS_GROUP_COUNT; g++) {
    cudaFree(H[g]);
    free(xabs[g]);
    H[g] = xabs[g] = NULL;
  }
  return status;
}

static void cuda_hessian_free(struct qs_qengine *base, float *H) { (void)base, cudaFree(H); }

// The method's GPU prep (GPTQ: the factor); the factor phase.
static qs_status cuda_prep(struct qs_qengine *base, struct qs_qrun *run, const struct qs_qopts *o, const float *H,
                           int64_t K, const char *name, void **state, struct qs_qprep_info *info) {
  qs_status status = QS_OK;
  struct qs_cuda_engine *e = (struct qs_cuda_engine *)base;
  QS_TRY(run->a->method->cuda->prep(&e->cctx, o, H, K, name, state, info));
  QS_TRY(qs_cuda_phase(e, QS_PH_FACTOR));
fail:
  return status;
}

static void cuda_prep_free(struct qs_qengine *base, struct qs_qrun *run, void *state) {
  (void)base;
  run->a->method->cuda->free(state);
}

static qs_status cuda_module(struct qs_qengine *base, struct qs_qrun *run, const struct qs_qopts *o, const void *state,
                             const float *H, enum qs_lin lin, struct qs_qreport *rep, struct qs_qrecord *rec) {
  return qs_cuda_quantize_module((struct qs_cuda_engine *)base, run, o, state, H, lin, rep, rec);
}

// The layer's output for every local sample, with the quantized down_proj.
static qs_status finish_layer(struct qs_cuda_engine *e) {
  qs_status status = QS_OK;
  for (long long b = 0; b < e->B; b++) {
    if (e->act) {
      QS_TRY(qs_dfwd_mlp_out(&e->ctx, &e->L, act_of(e, b), x_of(e, b), &e->seq));
      continue;
    }
    QS_TRY(qs_dfwd_norm(&e->ctx, x_of(e, b), e->L.mlp_norm, &e->seq));
    QS_TRY(qs_dfwd_mlp_act(&e->ctx, &e->L, &e->seq));
    QS_TRY(qs_dfwd_mlp_out(&e->ctx, &e->L, e->seq.gate, x_of(e, b), &e->seq));
  }
  QS_TRY(qs_cuda_phase(e, QS_PH_FORWARD));
fail:
  return status;
}

static void log_phases(struct qs_cuda_engine *e, int l) {
  char line[512];
  int n = 0;
  double sum = 0;
  for (int p = 0; p < QS_PH_COUNT; p++) {
    n += snprintf(line + n, sizeof(line) - (size_t)n, "%s%s %.3f", p ? ", " : "", k_phase_names[p], e->ph[p]);
    sum += e->ph[p];
  }
  qs_log0("layer %d phases (s, rank 0): %s; sum %.3f; peak device memory %.2f GiB", l, line, sum,
          (double)e->ctx.peak / (1 << 30));
}

static qs_status cuda_load(struct qs_qengine *base, struct qs_qrun *run, int l) {
  qs_status status = QS_OK;
  struct qs_cuda_engine *e = (struct qs_cuda_engine *)base;
  struct qs_hslot *slot = NULL;
  (void)run;
  memset(e->ph, 0, sizeof(e->ph));
  e->t_mark = qs_time_now();
  e->x_done = 0;
  for (int i = 0; i < QS_LIN_COUNT; i++) {
    free(e->out_scale[i]);
    e->out_scale[i] = NULL;
  }
  QS_TRY(qs_wstream_get(&e->ws, l, &slot));
  QS_TRY(qs_dlayer_upload(&e->ctx, slot, &e->L));
  QS_TRY(qs_wstream_prefetch(&e->ws, l + 1)); // read the next layer while this one computes
  QS_TRY(qs_cuda_phase(e, QS_PH_LOAD));
fail:
  return status;
}

static qs_status cuda_finish(struct qs_qengine *base, struct qs_qrun *run, int l) {
  qs_status status = QS_OK;
  struct qs_cuda_engine *e = (struct qs_cuda_engine *)base;
  (void)run;
  if (e->x && !e->x_done) QS_TRY(finish_layer(e));
  log_phases(e, l);
fail:
  return status;
}

static size_t x_bytes(const struct qs_cuda_engine *e) {
  return (size_t)e->B * e->T * e->ctx.cfg->hidden * sizeof(float);
}

static qs_status cuda_get_x(struct qs_qengine *base, const struct qs_qrun *run, float *x) {
  qs_status status = QS_OK;
  struct qs_cuda_engine *e = (struct qs_cuda_engine *)base;
  (void)run;
  if (!e->x) return QS_OK;
  QS_CUDA_CHECK(cudaMemcpyAsync(x, e->x, x_bytes(e), cudaMemcpyDeviceToHost, e->ctx.stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(e->ctx.stream));
fail:
  return status;
}

static qs_status cuda_set_x(struct qs_qengine *base, const struct qs_qrun *run, const float *x) {
  qs_status status = QS_OK;
  struct qs_cuda_engine *e = (struct qs_cuda_engine *)base;
  (void)run;
  if (!e->x) return QS_OK;
  QS_CUDA_CHECK(cudaMemcpyAsync(e->x, x, x_bytes(e), cudaMemcpyHostToDevice, e->ctx.stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(e->ctx.stream));
fail:
  return status;
}

static long long cuda_device_peak(struct qs_qengine *base) {
  struct qs_cuda_engine *e = (struct qs_cuda_engine *)base;
  qs_dctx_sample_memory(&e->ctx);
  return e->ctx.peak;
}

static void cuda_free(struct qs_qengine *base) {
  struct qs_cuda_engine *e = (struct qs_cuda_engine *)base;
  if (!e) return;
  if (e->ctx.stream) cudaStreamSynchronize(e->ctx.stream);
  qs_wstream_free(&e->ws);
  qs_dlayer_free(&e->L);
  qs_dseq_free(&e->seq);
  cudaFree(e->x);
  cudaFree(e->att);
  cudaFree(e->act);
  cudaFree(e->xs);
  for (int i = 0; i < QS_LIN_COUNT; i++) free(e->out_scale[i]);
  for (int k = 0; k < QS_CUDA_REC_SLOTS; k++)
    if (e->slot[k].buf) cudaFreeHost(e->slot[k].buf);
  if (e->slot_sync) {
    pthread_cond_destroy(&e->slot_free);
    pthread_mutex_destroy(&e->slot_mu);
  }
  qs_dcomm_free(e->dcomm);
  qs_dctx_free(&e->ctx);
  free(e);
}

// This rank's leaves and samples (engine_cuda.h); more ranks than leaves is an error.
static qs_status plan_samples(struct qs_cuda_engine *e, struct qs_qrun *run, const struct qs_calib *cal) {
  qs_status status = QS_OK;
  int P = qs_comm_size(run->data);
  e->n_leaves = QS_MIN((long long)QS_HESSIAN_LEAVES, (long long)cal->n);
  if (P > e->n_leaves)
    QS_FAIL(QS_ERR_ARG, "--device cuda: %d data ranks but the calibration set is summed in %lld fixed Hessian "
            "leaves (min(%d, samples)); use at most %lld ranks per stage", P, e->n_leaves, QS_HESSIAN_LEAVES,
            e->n_leaves);
  qs_comm_split_range(e->n_leaves, P, qs_comm_rank(run->data), &e->leaf0, &e->leaf1);
  long long b0, b1, dummy;
  qs_comm_split_range(cal->n, (int)e->n_leaves, (int)e->leaf0, &b0, &dummy);
  qs_comm_split_range(cal->n, (int)e->n_leaves, (int)e->leaf1 - 1, &dummy, &b1);
  run->n_samples = cal->n;
  run->T = cal->seqlen;
  run->s0 = b0;
  run->s1 = b1;
  e->B = (int)(b1 - b0);
  e->T = cal->seqlen;
fail:
  return status;
}

// The down_proj inputs stay on the device when, after them, there is still room for about two raw
// layers and three K x K fp32 buffers of the widest Hessian (sum, leaf, factor) plus 2 GiB.
static qs_status reserve_act(struct qs_cuda_engine *e, struct qs_qrun *run) {
  qs_status status = QS_OK;
  const struct qs_config *c = &run->m->cfg;
  size_t bytes = (size_t)e->B * e->T * c->intermediate * qs_dtype_size(e->ctx.dt), fr = 0, total = 0;
  long long mode = qs_param_cuda_store_act();
  int no[QS_LIN_COUNT], ni[QS_LIN_COUNT];
  double layer = 0, kmax = QS_MAX(c->intermediate, c->hidden);
  qs_dlayer_shapes(c, no, ni);
  for (int i = 0; i < QS_LIN_COUNT; i++) layer += (double)no[i] * ni[i] * 4; // fp32 upper bound
  QS_CUDA_CHECK(cudaMemGetInfo(&fr, &total));
  double need = (double)bytes + 2 * layer + 3 * kmax * kmax * 4 + 2.0 * (1 << 30);
  if (mode == 0 || (mode < 0 && need > (double)fr)) {
    qs_log0("cuda engine: down_proj inputs (%.1f GiB) recomputed, not stored (%.1f GiB free)",
            (double)bytes / (1 << 30), (double)fr / (1 << 30));
    return QS_OK;
  }
  QS_CUDA_CHECK(cudaMalloc(&e->act, bytes));
fail:
  return status;
}

static qs_status embed_samples(struct qs_cuda_engine *e, struct qs_qrun *run, const struct qs_calib *cal) {
  qs_status status = QS_OK;
  const struct qs_config *c = &run->m->cfg;
  size_t hd = (size_t)c->n_heads * c->head_dim;
  QS_CUDA_CHECK(cudaMalloc((void **)&e->x, x_bytes(e)));
  QS_CUDA_CHECK(cudaMalloc(&e->att, (size_t)e->B * e->T * hd * qs_dtype_size(e->ctx.dt)));
  for (long long b = 0; b < e->B; b++)
    QS_TRY(qs_dfwd_embed(&e->ctx, run->m, cal->ids + (size_t)(run->s0 + b) * cal->seqlen, e->T, x_of(e, b)));
  QS_TRY(qs_dseq_init(&e->seq, &e->ctx, e->T));
  QS_TRY(reserve_act(e, run));
fail:
  return status;
}

qs_status qs_qengine_cuda_init(struct qs_qrun *run, const struct qs_calib *cal, struct qs_qengine **out) {
  qs_status status = QS_OK;
  struct qs_cuda_engine *e = NULL;
  const struct qs_run_opts *a = run->a;
  if (!a->method->cuda)
    QS_FAIL(QS_ERR_UNSUPPORTED, "--device cuda: method %s has no GPU entries (use --device cpu)", a->method->name);
  if (a->q.block_size > 0 && a->q.block_size != 128)
    QS_FAIL(QS_ERR_UNSUPPORTED, "--device cuda: --block %d (the GPU solve is built for 128; use --device cpu)",
            a->q.block_size);
  QS_ALLOC(e, 1);
  memset(e, 0, sizeof(*e));
  e->base = (struct qs_qengine){.name = "cuda", .load = cuda_load, .hessian = cuda_hessian,
                                .hessian_free = cuda_hessian_free, .prep = cuda_prep, .prep_free = cuda_prep_free,
                                .module = cuda_module, .stats = cuda_stats, .scale_error = qs_cuda_scale_error,
                                .fold = qs_cuda_fold, .finish = cuda_finish, .get_x = cuda_get_x,
                                .set_x = cuda_set_x, .device_peak = cuda_device_peak, .free = cuda_free};
  QS_TRY(qs_dctx_init(&e->ctx, run->m, a->precision_f32 ? QS_DTYPE_F32 : QS_DTYPE_BF16));
  e->cctx = (struct qs_cuda_ctx){.blas = e->ctx.blas, .solver = e->ctx.solver, .stream = e->ctx.stream};
  if (pthread_mutex_init(&e->slot_mu, NULL) || pthread_cond_init(&e->slot_free, NULL))
    QS_FAIL(QS_ERR_INTERNAL, "cuda engine: pthread mutex/cond init failed");
  e->slot_sync = 1;
  QS_TRY(qs_dcomm_init(run->data, &e->dcomm));
  qs_log0("cuda engine: %s activations, %s factor, device collectives: %s", a->precision_f32 ? "fp32" : "bf16",
          a->q.factor_f64 ? "fp64" : "fp32", qs_dcomm_backend(e->dcomm));
  if (cal) {
    QS_TRY(plan_samples(e, run, cal));
    QS_TRY(embed_samples(e, run, cal));
  }
  QS_TRY(qs_wstream_init(&e->ws, run->m));
  QS_TRY(qs_wstream_prefetch(&e->ws, 0));
  *out = &e->base;
  return QS_OK;
fail:
  cuda_free(e ? &e->base : NULL);
  return status;
}
