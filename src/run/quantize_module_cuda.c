// quantize_module_cuda.c — one module of a decoder layer on the GPU: GPTQ (or RTN) of this rank's
// row tiles, the all-gather of every row (weights in dt for the next forward, codes, scales,
// zeros, per-row loss and error terms), v1 packing on the device, report and emit (quantize.h).
// Exactness for any rank count: see quantize_cuda.h.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gptq_pack.h"
#include "gptq_solve.h"
#include "qs_cuda.h"
#include "quant_error.h"
#include "residual.h"
#include "run/quantize_cuda.h"

// Device buffers of one module: full [N, ...] arrays (this rank fills its tiles' rows).
struct dmod {
  int64_t N, K, G, r0, r1;   // this rank's rows [r0, r1)
  uint8_t *codes;            // [N, K]
  uint16_t *scales;          // [N, G]
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
  QS_CUDA_CHECK(cudaMalloc((void **)&d->scales, (size_t)(N * G) * 2));
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

// Solves this rank's rows [r0, r1) in one call (sgemms per row tile: quantize_cuda.h), then the
// output error tile by tile against the original rows, and the quantized rows into L.w[i] (dt).
static qs_status solve_rows(struct qs_cuda_engine *e, struct dmod *d, int i, const struct qs_gptq_prep_cuda *prep,
                            const float *H) {
  qs_status status = QS_OK;
  const int64_t RT = QS_GPTQ_CUDA_ROW_TILE, K = d->K, G = d->G, n = d->r1 - d->r0;
  struct qs_dctx *c = &e->ctx;
  const struct qs_dlayer *L = &e->L;
  size_t es = qs_dtype_size(L->raw_dt[i]);
  if (n <= 0) return QS_OK;
  QS_TRY(qs_convert_cuda((const char *)L->raw[i] + (size_t)(d->r0 * K) * es, L->raw_dt[i], d->W, QS_DTYPE_F32,
                         (size_t)(n * K), c->stream));
  QS_TRY(qs_gptq_quantize_tiled_cuda(prep, d->W, n, RT, d->codes + d->r0 * K, d->scales + d->r0 * G,
                                     d->zeros + d->r0 * G, d->loss + d->r0, c->blas, c->stream));
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
  QS_TRY(gather_rows(e, run, d->scales, N, (size_t)G * 2));
  QS_TRY(gather_rows(e, run, d->zeros, N, (size_t)G));
  QS_TRY(gather_rows(e, run, d->loss, N, sizeof(float)));
  QS_TRY(gather_rows(e, run, d->num, N, sizeof(double)));
  QS_TRY(gather_rows(e, run, d->den, N, sizeof(double)));
fail:
  return status;
}

// Loss (GPTQ) and output-error sums over all rows, in row order (host), into the report.
static qs_status dmod_report(struct qs_cuda_engine *e, struct dmod *d, const struct qs_gptq_prep_cuda *gptq,
                             const float *H, struct qs_qreport *rep) {
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
  if (gptq) {
    rep->loss = ls;
    rep->damp = gptq->damp_used;
    rep->damp_raises = gptq->damp_raises;
  }
  if (H) rep->rel_err = ds > 0 ? sqrt(ns / ds) : 0.0;
fail:
  free(loss);
  free(num);
  free(den);
  return status;
}

// Pinned host staging of at least `bytes` (kept by the engine, reused by every module).
static qs_status pinned_reserve(struct qs_cuda_engine *e, size_t bytes) {
  qs_status status = QS_OK;
  if (bytes <= e->pin_cap) return QS_OK;
  if (e->pin) QS_CUDA_CHECK(cudaFreeHost(e->pin));
  e->pin = NULL;
  e->pin_cap = 0;
  QS_CUDA_CHECK(cudaMallocHost(&e->pin, bytes));
  e->pin_cap = bytes;
fail:
  return status;
}

// Packs the gathered module on the device and copies the GPTQ v1 tensors into the engine's pinned
// staging (ranks that hand them to a writer; the writers copy them before the next module).
static qs_status dmod_pack(struct qs_cuda_engine *e, struct dmod *d, int bits, int32_t **qweight, int32_t **qzeros,
                           uint16_t **scales, long long *wrapped) {
  qs_status status = QS_OK;
  int32_t *dqw = NULL, *dqz = NULL;
  uint16_t *dsc = NULL;
  int64_t N = d->N, K = d->K, G = d->G, w64 = 0;
  size_t nqw = (size_t)(K * bits / 32 * N), nqz = (size_t)(G * (N * bits / 32)), nsc = (size_t)(G * N);
  size_t oqz = QS_CEIL_DIV(nqw * 4, 256) * 256, osc = oqz + QS_CEIL_DIV(nqz * 4, 256) * 256;
  cudaStream_t st = e->ctx.stream;
  QS_TRY(pinned_reserve(e, osc + nsc * 2));
  *qweight = (int32_t *)e->pin;
  *qzeros = (int32_t *)((char *)e->pin + oqz);
  *scales = (uint16_t *)((char *)e->pin + osc);
  QS_CUDA_CHECK(cudaMallocAsync((void **)&dqw, nqw * 4, st));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&dqz, nqz * 4, st));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&dsc, nsc * 2, st));
  QS_TRY(qs_gptq_pack_cuda(d->codes, d->scales, d->zeros, bits, N, K, G, dqw, dqz, dsc, &w64, st));
  *wrapped = w64;
  QS_CUDA_CHECK(cudaMemcpyAsync(*qweight, dqw, nqw * 4, cudaMemcpyDeviceToHost, st));
  QS_CUDA_CHECK(cudaMemcpyAsync(*qzeros, dqz, nqz * 4, cudaMemcpyDeviceToHost, st));
  QS_CUDA_CHECK(cudaMemcpyAsync(*scales, dsc, nsc * 2, cudaMemcpyDeviceToHost, st));
  QS_CUDA_CHECK(cudaStreamSynchronize(st));
fail:
  if (dqw) cudaFreeAsync(dqw, st);
  if (dqz) cudaFreeAsync(dqz, st);
  if (dsc) cudaFreeAsync(dsc, st);
  return status;
}

static qs_status bias_host(struct qs_cuda_engine *e, int i, float **out) {
  qs_status status = QS_OK;
  const struct qs_dlayer *L = &e->L;
  float *d = NULL;
  size_t n = (size_t)L->n_out[i];
  *out = NULL;
  if (!L->b[i]) return QS_OK;
  QS_ALLOC(*out, n);
  QS_CUDA_CHECK(cudaMallocAsync((void **)&d, n * sizeof(float), e->ctx.stream));
  QS_TRY(qs_convert_cuda(L->b[i], e->ctx.dt, d, QS_DTYPE_F32, n, e->ctx.stream));
  QS_CUDA_CHECK(cudaMemcpyAsync(*out, d, n * sizeof(float), cudaMemcpyDeviceToHost, e->ctx.stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(e->ctx.stream));
fail:
  if (d) cudaFreeAsync(d, e->ctx.stream);
  return status;
}

static const char *const k_modules[QS_LW_COUNT] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                   "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                   "mlp.down_proj"};

qs_status qs_cuda_quantize_module(struct qs_cuda_engine *e, struct qs_qrun *run, int i,
                                  const struct qs_gptq_prep_cuda *prep, const float *H) {
  qs_status status = QS_OK;
  const struct qs_quant_opts *o = &run->a->q;
  struct dmod d;
  struct qs_qreport rep;
  int32_t *g_idx = NULL, *qweight = NULL, *qzeros = NULL;
  uint16_t *scales = NULL;
  float *bias = NULL;
  int gptq = run->a->method == QS_QMETHOD_GPTQ;
  int64_t N = e->L.n_out[i], K = e->L.n_in[i], G = qs_quant_n_groups(K, o->group_size);
  double t0 = qs_time_now();
  memset(&d, 0, sizeof(d));
  qs_qreport_init(&rep, run, k_modules[i], (int)N, (int)K);
  QS_TRY(qs_quant_opts_check(o, K, rep.name));
  QS_TRY(dmod_init(&d, N, K, G, qs_comm_size(run->data), qs_comm_rank(run->data)));
  QS_TRY(solve_rows(e, &d, i, prep, H));
  QS_TRY(qs_cuda_phase(e, QS_PH_SOLVE));
  QS_TRY(dmod_gather(e, run, &d, i));
  QS_TRY(dmod_report(e, &d, gptq ? prep : NULL, H, &rep));
  QS_TRY(qs_cuda_phase(e, QS_PH_GATHER));
  QS_ALLOC(g_idx, K);
  struct qs_gptq_prep view = {.K = K, .opts = prep->opts, .perm = prep->perm_host};
  qs_gptq_g_idx(&view, g_idx);
  rep.packed = qs_gptq_can_pack(N, K, o->bits, o->group_size);
  if (rep.packed && qs_quantize_wants_packed(run))
    QS_TRY(dmod_pack(e, &d, o->bits, &qweight, &qzeros, &scales, &rep.wrapped));
  QS_TRY(bias_host(e, i, &bias));
  QS_TRY(qs_cuda_phase(e, QS_PH_PACK));
  rep.seconds = qs_time_now() - t0;
  struct qs_qpacked pk = {.N = N, .K = K, .G = G, .qweight = qweight, .qzeros = qzeros, .scales = scales,
                          .g_idx = g_idx, .bias = bias};
  QS_TRY(qs_quantize_emit(run, &rep, rep.packed ? &pk : NULL));
fail:
  dmod_free(&d);
  free(g_idx);
  free(bias);
  return status;
}

qs_status qs_cuda_prep_identity(struct qs_gptq_prep_cuda *prep, int64_t K, const struct qs_quant_opts *o,
                                cudaStream_t stream) {
  qs_status status = QS_OK;
  float *ones = NULL;
  memset(prep, 0, sizeof(*prep));
  prep->K = K;
  prep->opts = *o;
  prep->opts.block_size = 128;
  prep->opts.act_order = 0;
  prep->opts.static_groups = 0;
  QS_ALLOC(ones, K);
  QS_ALLOC(prep->perm_host, K);
  QS_ALLOC(prep->dead_host, K);
  for (int64_t k = 0; k < K; k++) {
    ones[k] = 1.0f;
    prep->perm_host[k] = (int32_t)k;
    prep->dead_host[k] = 0;
  }
  QS_CUDA_CHECK(cudaMalloc((void **)&prep->U, (size_t)(K * K) * sizeof(float)));
  QS_CUDA_CHECK(cudaMalloc((void **)&prep->perm, (size_t)K * sizeof(int32_t)));
  QS_CUDA_CHECK(cudaMalloc((void **)&prep->dead, (size_t)K));
  QS_CUDA_CHECK(cudaMemsetAsync(prep->U, 0, (size_t)(K * K) * sizeof(float), stream));
  // The diagonal: element k at k * (K + 1), i.e. a column of K ones with pitch K + 1 floats.
  QS_CUDA_CHECK(cudaMemcpy2DAsync(prep->U, (size_t)(K + 1) * sizeof(float), ones, sizeof(float), sizeof(float),
                                  (size_t)K, cudaMemcpyHostToDevice, stream));
  QS_CUDA_CHECK(cudaMemcpyAsync(prep->perm, prep->perm_host, (size_t)K * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
  QS_CUDA_CHECK(cudaMemcpyAsync(prep->dead, prep->dead_host, (size_t)K, cudaMemcpyHostToDevice, stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(stream));
fail:
  free(ones);
  return status;
}
