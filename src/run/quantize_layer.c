// quantize_layer.c — one linear group of one decoder layer: the Hessian of its input over every
// rank's calibration samples, then GPTQ (or RTN) of each module, rows split over the ranks.
//
// Exactness under MPI: the Hessian is a fixed tree sum over samples (qs_comm_treesum_f32), so every
// rank holds the same bits for any rank count; the factor is computed from it identically on every
// rank; a row's quantization does not depend on which rank does it (quant.h); the rows are then
// all-gathered. Hence the checkpoint is byte-identical for -np 1, 2, 4. "Ranks" are those of this
// rank's stage (run->data, stages.h): the world when there is one stage.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "run/quantize.h"

static int group_linears(enum qs_group g, struct qs_layer *L, struct qs_linear **out) {
  switch (g) {
  case QS_GROUP_QKV: out[0] = &L->q; out[1] = &L->k; out[2] = &L->v; return 3;
  case QS_GROUP_O: out[0] = &L->o; return 1;
  case QS_GROUP_GATE_UP: out[0] = &L->gate; out[1] = &L->up; return 2;
  default: out[0] = &L->down; return 1;
  }
}

// Leaf of the Hessian tree: X_s^T X_s of calibration sample s (upper triangle).
static qs_status hessian_leaf(void *ctx, long long s, float *out) {
  struct qs_qrun *run = ctx;
  size_t K = (size_t)run->K;
  memset(out, 0, K * K * sizeof(float));
  qs_gptq_hessian_add(out, run->X + (size_t)(s - run->s0) * (size_t)run->T * K, run->T, run->K);
  return QS_OK;
}

// Per-row ||(w - q) X|| and ||w X|| squared, as (w-q) H (w-q)^T and w H w^T (H ∝ X^T X).
static qs_status row_output_error(const float *W0, const float *Q, const float *H, int64_t nrows, int64_t K,
                                  double *num, double *den) {
  qs_status status = QS_OK;
  float *D = NULL, *DH = NULL, *WH = NULL;
  QS_ALLOC(D, K);
  QS_ALLOC(DH, K);
  QS_ALLOC(WH, K);
  for (int64_t r = 0; r < nrows; r++) {
    const float *w = W0 + r * K, *q = Q + r * K;
    for (int64_t k = 0; k < K; k++) D[k] = w[k] - q[k];
    cblas_ssymv(CblasRowMajor, CblasUpper, (int)K, 1.0f, H, (int)K, D, 1, 0.0f, DH, 1);
    cblas_ssymv(CblasRowMajor, CblasUpper, (int)K, 1.0f, H, (int)K, w, 1, 0.0f, WH, 1);
    double a = 0, b = 0;
    for (int64_t k = 0; k < K; k++) { a += (double)D[k] * DH[k]; b += (double)w[k] * WH[k]; }
    num[r] = a;
    den[r] = b;
  }
fail:
  free(D);
  free(DH);
  free(WH);
  return status;
}

// Buffers of one module: full [N, ...] arrays; this rank fills rows [r0, r1), the gather the rest.
struct qmod {
  int64_t N, K, G, r0, r1;
  uint8_t *codes;     // [N, K]
  uint16_t *scales;   // [N, G] fp16 bits
  uint8_t *zeros;     // [N, G]
  float *loss;        // [N]
  double *num, *den;  // [N] output error terms
  float *W0;          // [r1-r0, K] original rows of this rank
};

static void qmod_free(struct qmod *q) {
  free(q->codes); free(q->scales); free(q->zeros); free(q->loss); free(q->num); free(q->den); free(q->W0);
}

static qs_status qmod_init(struct qmod *q, struct qs_comm *c, const struct qs_linear *lin, int group_size) {
  qs_status status = QS_OK;
  q->N = lin->n_out;
  q->K = lin->n_in;
  q->G = qs_quant_n_groups(q->K, group_size);
  long long b, e;
  qs_comm_split_range(q->N, qs_comm_size(c), qs_comm_rank(c), &b, &e);
  q->r0 = b;
  q->r1 = e;
  QS_ALLOC(q->codes, q->N * q->K);
  QS_ALLOC(q->scales, q->N * q->G);
  QS_ALLOC(q->zeros, q->N * q->G);
  QS_ALLOC(q->loss, q->N);
  QS_ALLOC(q->num, q->N);
  QS_ALLOC(q->den, q->N);
  QS_ALLOC(q->W0, (q->r1 - q->r0) * q->K);
  memcpy(q->W0, lin->w + q->r0 * q->K, (size_t)((q->r1 - q->r0) * q->K) * sizeof(float));
fail:
  return status;
}

// All-gathers `elem` bytes per row of a [N, ...] array whose rows [r0, r1) this rank filled.
static qs_status gather_rows(struct qs_comm *c, void *buf, int64_t N, size_t elem) {
  qs_status status = QS_OK;
  size_t *counts = NULL;
  int P = qs_comm_size(c);
  QS_ALLOC(counts, P);
  for (int r = 0; r < P; r++) {
    long long b, e;
    qs_comm_split_range(N, P, r, &b, &e);
    counts[r] = (size_t)(e - b) * elem;
  }
  QS_TRY(qs_comm_allgatherv(c, NULL, buf, counts));
fail:
  free(counts);
  return status;
}

static qs_status qmod_gather(struct qmod *q, struct qs_comm *c, struct qs_linear *lin) {
  qs_status status = QS_OK;
  QS_TRY(gather_rows(c, lin->w, q->N, (size_t)q->K * sizeof(float)));
  QS_TRY(gather_rows(c, q->codes, q->N, (size_t)q->K));
  QS_TRY(gather_rows(c, q->scales, q->N, (size_t)q->G * sizeof(uint16_t)));
  QS_TRY(gather_rows(c, q->zeros, q->N, (size_t)q->G));
  QS_TRY(gather_rows(c, q->loss, q->N, sizeof(float)));
  QS_TRY(gather_rows(c, q->num, q->N, sizeof(double)));
  QS_TRY(gather_rows(c, q->den, q->N, sizeof(double)));
fail:
  return status;
}

// Quantizes this rank's rows of one module, gathers all rows (lin->w becomes Q), reports, and
// (rank 0) hands the result to the checkpoint writer. prep NULL: RTN. H NULL: no output error.
static qs_status quantize_module(struct qs_qrun *run, const struct qs_gptq_prep *prep, const float *H,
                                 struct qs_linear *lin, const char *module) {
  qs_status status = QS_OK;
  struct qmod q = {0};
  int32_t *g_idx = NULL;
  const struct qs_quant_opts *o = &run->a->q;
  int32_t *qweight = NULL, *qzeros = NULL;
  uint16_t *scales_out = NULL;
  struct qs_qreport rep;
  double t0 = qs_time_now();
  qs_qreport_init(&rep, run, module, lin->n_out, lin->n_in);
  QS_TRY(qs_quant_opts_check(o, lin->n_in, rep.name));
  QS_TRY(qmod_init(&q, run->data, lin, o->group_size));
  int64_t nr = q.r1 - q.r0;
  float *Wr = lin->w + q.r0 * q.K;
  if (prep) QS_TRY(qs_gptq_quantize_rows(prep, Wr, nr, q.r0, q.codes + q.r0 * q.K, q.scales + q.r0 * q.G,
                                         q.zeros + q.r0 * q.G, q.loss + q.r0));
  else QS_TRY(qs_rtn_quantize_rows(Wr, nr, q.K, o, q.codes + q.r0 * q.K, q.scales + q.r0 * q.G,
                                   q.zeros + q.r0 * q.G));
  if (H) QS_TRY(row_output_error(q.W0, Wr, H, nr, q.K, q.num + q.r0, q.den + q.r0));
  QS_TRY(qmod_gather(&q, run->data, lin));
  QS_ALLOC(g_idx, q.K);
  if (prep) qs_gptq_g_idx(prep, g_idx);
  else qs_quant_g_idx_plain(q.K, o->group_size, g_idx);
  double loss = 0, num = 0, den = 0;
  for (int64_t r = 0; r < q.N; r++) { loss += q.loss[r]; num += q.num[r]; den += q.den[r]; }
  if (prep) { rep.loss = loss; rep.damp = prep->damp_used; rep.damp_raises = prep->damp_raises; }
  if (H) rep.rel_err = den > 0 ? sqrt(num / den) : 0.0;
  rep.packed = qs_gptq_can_pack(q.N, q.K, o->bits, o->group_size);
  if (rep.packed && qs_quantize_wants_packed(run))
    QS_TRY(qs_gptq_pack_module(run, q.N, q.K, q.codes, q.scales, q.zeros, &qweight, &qzeros, &scales_out,
                               &rep.wrapped));
  rep.seconds = qs_time_now() - t0;
  struct qs_qpacked pk = {.N = q.N, .K = q.K, .G = q.G, .qweight = qweight, .qzeros = qzeros,
                          .scales = scales_out, .g_idx = g_idx, .bias = lin->b};
  QS_TRY(qs_quantize_emit(run, &rep, rep.packed ? &pk : NULL));
fail:
  qmod_free(&q);
  free(g_idx);
  free(qweight);
  free(qzeros);
  free(scales_out);
  return status;
}

qs_status qs_quantize_group(void *ctx, enum qs_group g, struct qs_layer *L, const float *X, int rows, int K) {
  qs_status status = QS_OK;
  struct qs_qrun *run = ctx;
  struct qs_gptq_prep prep = {0};
  int have_prep = 0;
  float *H = NULL;
  struct qs_linear *lins[3];
  int n = group_linears(g, L, lins);
  char name[160];
  snprintf(name, sizeof(name), "model.layers.%d.%s", run->layer, qs_group_modules[g][0]);
  if (rows != (int)((run->s1 - run->s0) * run->T))
    QS_FAIL(QS_ERR_INTERNAL, "%s: hook got %d rows, expected %lld", name, rows, (run->s1 - run->s0) * run->T);
  run->X = X;
  run->K = K;
  QS_ALLOC(H, (size_t)K * (size_t)K);
  QS_TRY(qs_comm_treesum_f32(run->data, run->n_samples, (size_t)K * (size_t)K, hessian_leaf, run, H));
  QS_TRY(qs_gptq_hessian_finalize(H, K, run->n_samples));
  if (run->a->method == QS_QMETHOD_GPTQ) {
    QS_TRY(qs_gptq_prep_init(&prep, H, K, &run->a->q, name));
    have_prep = 1;
    if (prep.damp_raises && qs_comm_rank(run->data) == 0) // each stage's leader: its own layers
      qs_log(QS_LOG_INFO, "  %s: Cholesky failed at damp %g, succeeded at damp %g", name, (double)run->a->q.damp,
             (double)prep.damp_used);
  }
  for (int i = 0; i < n; i++)
    QS_TRY(quantize_module(run, have_prep ? &prep : NULL, H, lins[i], qs_group_modules[g][i]));
fail:
  if (have_prep) qs_gptq_prep_free(&prep);
  free(H);
  return status;
}

qs_status qs_quantize_layer_weights_only(struct qs_qrun *run, struct qs_layer *L) {
  qs_status status = QS_OK;
  for (int g = 0; g < QS_GROUP_COUNT; g++) {
    struct qs_linear *lins[3];
    int n = group_linears((enum qs_group)g, L, lins);
    for (int i = 0; i < n; i++) QS_TRY(quantize_module(run, NULL, NULL, lins[i], qs_group_modules[g][i]));
  }
fail:
  return status;
}
