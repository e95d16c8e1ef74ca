// engine_module_cuda.c — one module of a decoder layer on the GPU: the method's GPU rows entry on
// this rank's row tiles, the all-gather of every row (weights in dt for the next forward, codes,
// scales, zeros, per-row loss and error terms), the report's figures and, on the stage leader, the
// record copied to the host (engine.h). Exactness for any rank count: see engine_cuda.h.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qs_cuda.h"
#include "quant/awq.h"
#include "quant_error.h"
#include "residual.h"
#include "run/engine_cuda.h"

// Device buffers of one module: full [N, ...] arrays (this rank fills its tiles' rows).
struct dmod {
  int64_t N, K, G, r0, r1;   // this rank's rows [r0, r1)
  uint8_t *codes;            // [N, K]
  float *scales;             // [N, G]
  uint8_t *zeros;            // [N, G]
  float *loss;               // [N]
  double *num, *den;         // [N]
  float *W;                  // [r1 - r0, K] this rank's rows in fp32, solved in place
  float *W0;                 // [RT, K] one tile of original rows (for the output error)
};

static void dmod_free(struct dmod *d) {
  void *p[] = {d->codes, d->scales, d->zeros, d->loss, d->num, d->den, d->W, d->W0};
  for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) cudaFree(p[i]);
}

// Rows of rank r: tiles split_range(n_tiles, P, r), clipped to N.
static void tile_rows(int64_t N, int P, int r, int64_t *r0, int64_t *r1) {
  long long nt = QS_CEIL_DIV(N, (int64_t)QS_GPTQ_CUDA_ROW_TILE), b, e;
  qs_comm_split_range(nt, P, r, &b, &e);
  *r0 = QS_MIN(N, b * QS_GPTQ_CUDA_ROW_TILE);
  *r1 = QS_MIN(N, e * QS_GPTQ_CUDA_ROW_TILE);
}

static qs_status dmod_init(struct dmod *d, int64_t N, int64_t K, int64_t G, int P, int r) {
  qs_status status = QS_OK;
  memset(d, 0, sizeof(*d));
  d->N = N, d->K = K, d->G = G;
  tile_rows(N, P, r, &d->r0, &d->r1);
  QS_CUDA_CHECK(cudaMalloc((void **)&d->codes, (size_t)(N * K)));
  QS_CUDA_CHECK(cudaMalloc((void **)&d->scales, (size_t)(N * G) * sizeof(float)));
  QS_CUDA_CHECK(cudaMalloc((void **)&d->zeros, (size_t)(N * G)));
  QS_CUDA_CHECK(cudaMalloc((void **)&d->loss, (size_t)N * sizeof(float)));
  QS_CUDA_CHECK(cudaMalloc((void **)&d->num, (size_t)N * sizeof(double)));
  QS_CUDA_CHECK(cudaMalloc((void **)&d->den, (size_t)N * sizeof(double)));
  QS_CUDA_CHECK(cudaMalloc((void **)&d->W, (size_t)(QS_MAX(d->r1 - d->r0, 1) * K) * sizeof(float)));
  QS_CUDA_CHECK(cudaMalloc((void **)&d->W0, (size_t)(QS_GPTQ_CUDA_ROW_TILE * K) * sizeof(float)));
  QS_CUDA_CHECK(cudaMemset(d->num, 0, (size_t)N * sizeof(double)));
  QS_CUDA_CHECK(cudaMemset(d->den, 0, (size_t)N * sizeof(double)));
fail:
  return status;
}

// Solves this rank's rows [r0, r1) in one call (GEMMs per row tile: engine_cuda.h), then the
// output error tile by tile against the original rows, and the quantized rows into L.w[i] (dt).
static qs_status solve_rows(struct qs_cuda_engine *e, const struct qs_method *method, struct dmod *d, int i,
                            const void *state, const float *H) {
  qs_status status = QS_OK;
  const int64_t RT = QS_GPTQ_CUDA_ROW_TILE, K = d->K, G = d->G, n = d->r1 - d->r0;
  struct qs_dctx *c = &e->ctx;
  const struct qs_dlayer *L = &e->L;
  size_t es = qs_dtype_size(L->raw_dt[i]);
  if (n <= 0) return QS_OK;
  QS_TRY(qs_convert_cuda((const char *)L->raw[i] + (size_t)(d->r0 * K) * es, L->raw_dt[i], d->W, QS_DTYPE_F32,
                         (size_t)(n * K), c->stream));
  struct qs_qrows out = {.codes = d->codes + d->r0 * K, .scales = d->scales + d->r0 * G,
                         .zeros = d->zeros + d->r0 * G, .loss = d->loss + d->r0};
  QS_TRY(method->cuda->rows(&e->cctx, state, d->W, n, RT, &out));
  for (int64_t t = 0; H && t < n; t += RT) {
    int64_t m = QS_MIN(RT, n - t);
    QS_TRY(qs_convert_cuda((const char *)L->raw[i] + (size_t)((d->r0 + t) * K) * es, L->raw_dt[i], d->W0,
                           QS_DTYPE_F32, (size_t)(m * K), c->stream));
    QS_TRY(qs_quant_error_cuda(d->W0, d->W + t * K, H, m, K, d->num + d->r0 + t, d->den + d->r0 + t, c->blas,
                               c->stream));
  }
  // The quantized rows replace the module's weights for the rest of the forward.
  QS_TRY(qs_convert_cuda(d->W, QS_DTYPE_F32, (char *)L->w[i] + (size_t)(d->r0 * K) * qs_dtype_size(c->dt), c->dt,
                         (size_t)(n * K), c->stream));
fail:
  return status;
}

// In-place all-gather of a [N, row_bytes] device array whose rows [r0, r1) of each rank are filled.
static qs_status gather_rows(struct qs_cuda_engine *e, struct qs_qrun *run, void *buf, int64_t N, size_t row_bytes) {
  qs_status status = QS_OK;
  int P = qs_comm_size(run->data);
  size_t *counts = NULL;
  QS_ALLOC(counts, P);
  for (int r = 0; r < P; r++) {
    int64_t a, b;
    tile_rows(N, P, r, &a, &b);
    counts[r] = (size_t)(b - a) * row_bytes;
  }
  QS_TRY(qs_dcomm_allgatherv(e->dcomm, buf, counts, e->ctx.stream));
fail:
  free(counts);
  return status;
}

static qs_status dmod_gather(struct qs_cuda_engine *e, struct qs_qrun *run, struct dmod *d, int i) {
  qs_status status = QS_OK;
  int64_t N = d->N, K = d->K, G = d->G;
  QS_TRY(gather_rows(e, run, e->L.w[i], N, (size_t)K * qs_dtype_size(e->ctx.dt)));
  QS_TRY(gather_rows(e, run, d->codes, N, (size_t)K));
  QS_TRY(gather_rows(e, run, d->scales, N, (size_t)G * sizeof(float)));
  QS_TRY(gather_rows(e, run, d->zeros, N, (size_t)G));
  QS_TRY(gather_rows(e, run, d->loss, N, sizeof(float)));
  QS_TRY(gather_rows(e, run, d->num, N, sizeof(double)));
  QS_TRY(gather_rows(e, run, d->den, N, sizeof(double)));
fail:
  return status;
}

// Loss (the method's) and output-error sums over all rows, in row order (host), into the report.
static qs_status dmod_report(struct qs_cuda_engine *e, struct dmod *d, int has_loss, const float *H,
                             struct qs_qreport *rep) {
  qs_status status = QS_OK;
  float *loss = NULL;
  double *num = NULL, *den = NULL;
  QS_ALLOC(loss, d->N);
  QS_ALLOC(num, d->N);
  QS_ALLOC(den, d->N);
  QS_CUDA_CHECK(cudaMemcpyAsync(loss, d->loss, (size_t)d->N * sizeof(float), cudaMemcpyDeviceToHost, e->ctx.stream));
  QS_CUDA_CHECK(cudaMemcpyAsync(num, d->num, (size_t)d->N * sizeof(double), cudaMemcpyDeviceToHost, e->ctx.stream));
  QS_CUDA_CHECK(cudaMemcpyAsync(den, d->den, (size_t)d->N * sizeof(double), cudaMemcpyDeviceToHost, e->ctx.stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(e->ctx.stream));
  double ls = 0, ns = 0, ds = 0;
  for (int64_t r = 0; r < d->N; r++) { ls += loss[r]; ns += num[r]; ds += den[r]; }
  rep->loss = has_loss ? ls : NAN;
  if (H) rep->rel_err = ds > 0 ? sqrt(ns / ds) : 0.0;
fail:
  free(loss);
  free(num);
  free(den);
  return status;
}


// The saver is done with a record lent a slot: the slot is free again (called on the saver thread).
static void slot_release(void *ctx, struct qs_qrecord *r) {
  struct qs_cuda_engine *e = ctx;
  pthread_mutex_lock(&e->slot_mu);
  for (int k = 0; k < QS_CUDA_REC_SLOTS; k++)
    if (e->slot[k].busy && (void *)r->codes == e->slot[k].buf) e->slot[k].busy = 0;
  pthread_cond_broadcast(&e->slot_free);
  pthread_mutex_unlock(&e->slot_mu);
}

// A free slot of at least `bytes` (waiting for the saver to release one when all are lent).
static qs_status slot_acquire(struct qs_cuda_engine *e, size_t bytes, struct qs_cuda_recslot **out) {
  qs_status status = QS_OK;
  struct qs_cuda_recslot *s = NULL;
  pthread_mutex_lock(&e->slot_mu);
  for (;;) {
    for (int k = 0; k < QS_CUDA_REC_SLOTS && !s; k++)
      if (!e->slot[k].busy) s = &e->slot[k];
    if (s) break;
    pthread_cond_wait(&e->slot_free, &e->slot_mu);
  }
  s->busy = 1;
  pthread_mutex_unlock(&e->slot_mu);
  if (s->cap < bytes) { // only this thread touches a busy slot's buffer
    if (s->buf) QS_CUDA_CHECK(cudaFreeHost(s->buf));
    s->buf = NULL;
    s->cap = 0;
    QS_CUDA_CHECK(cudaMallocHost(&s->buf, bytes));
    s->cap = bytes;
  }
  *out = s;
  return QS_OK;
fail:
  pthread_mutex_lock(&e->slot_mu);
  s->busy = 0;
  pthread_mutex_unlock(&e->slot_mu);
  return status;
}

// The gathered module as the leader's host record: codes, scales, zeros copied from the device into a
// pinned slot the record borrows, g_idx from the method, the bias as the checkpoint stores it.
static qs_status dmod_record(struct qs_cuda_engine *e, const struct qs_qrun *run, const struct qs_qopts *o,
                             struct dmod *d, const void *state, int i, const char *name, struct qs_qrecord *rec) {
  qs_status status = QS_OK;
  cudaStream_t st = e->ctx.stream;
  struct qs_cuda_recslot *slot = NULL;
  int n_out, n_in, bias;
  char bname[192];
  size_t nc = (size_t)(d->N * d->K), ng = (size_t)(d->N * d->G);
  size_t o_sc = QS_CEIL_DIV(nc, 256) * 256, o_z = o_sc + QS_CEIL_DIV(ng * sizeof(float), 256) * 256;
  qs_layout_shape(&run->m->cfg, (enum qs_lin)i, &n_out, &n_in, &bias);
  *rec = (struct qs_qrecord){.layer = run->layer, .N = d->N, .K = d->K, .G = d->G, .grid = o->grid};
  snprintf(rec->name, sizeof(rec->name), "%s", name);
  QS_ALLOC(rec->g_idx, d->K);
  if (bias) QS_ALLOC(rec->bias, d->N);
  QS_TRY(slot_acquire(e, o_z + ng, &slot));
  rec->codes = slot->buf;
  rec->scales = (float *)((char *)slot->buf + o_sc);
  rec->zeros = (uint8_t *)slot->buf + o_z;
  rec->release = slot_release;
  rec->release_ctx = e;
  QS_CUDA_CHECK(cudaMemcpyAsync(rec->codes, d->codes, nc, cudaMemcpyDeviceToHost, st));
  QS_CUDA_CHECK(cudaMemcpyAsync(rec->scales, d->scales, ng * sizeof(float), cudaMemcpyDeviceToHost, st));
  QS_CUDA_CHECK(cudaMemcpyAsync(rec->zeros, d->zeros, ng, cudaMemcpyDeviceToHost, st));
  run->a->method->cuda->group_map(state, rec->g_idx);
  snprintf(bname, sizeof(bname), "%s.bias", name);
  if (bias) QS_TRY(qs_ckpt_read_f32(&run->m->ckpt, bname, 1, (int64_t[]){d->N}, rec->bias));
  if (bias && e->out_scale[i]) qs_awq_fold_ref(rec->bias, d->N, 1, e->out_scale[i], QS_AWQ_FOLD_ROWS_DIV); // folded (AWQ), as the forward's
  QS_CUDA_CHECK(cudaStreamSynchronize(st));
  return QS_OK;
fail:
  qs_qrecord_free(rec); // gives the slot back
  return status;
}

qs_status qs_cuda_quantize_module(struct qs_cuda_engine *e, struct qs_qrun *run, const struct qs_qopts *o,
                                  const void *state, const float *H, enum qs_lin i, struct qs_qreport *rep,
                                  struct qs_qrecord *rec) {
  qs_status status = QS_OK;
  const struct qs_method *m = run->a->method;
  struct dmod d;
  int64_t N = e->L.n_out[i], K = e->L.n_in[i], G = qs_grid_n_groups(&o->grid, K);
  memset(&d, 0, sizeof(d));
  QS_TRY(qs_qopts_check(o, K, rep->name));
  QS_TRY(dmod_init(&d, N, K, G, qs_comm_size(run->data), qs_comm_rank(run->data)));
  QS_TRY(solve_rows(e, m, &d, i, state, H));
  QS_TRY(qs_cuda_phase(e, QS_PH_SOLVE));
  QS_TRY(dmod_gather(e, run, &d, i));
  QS_TRY(dmod_report(e, &d, (m->needs & QS_METHOD_HESSIAN) != 0, H, rep));
  QS_TRY(qs_cuda_phase(e, QS_PH_GATHER));
  if (qs_comm_rank(run->data) == 0) QS_TRY(dmod_record(e, run, o, &d, state, i, rep->name, rec));
  QS_TRY(qs_cuda_phase(e, QS_PH_RECORD));
fail:
  dmod_free(&d);
  return status;
}
