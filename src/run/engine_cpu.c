// engine_cpu.c — the CPU layer engine (engine.h): the residual stream of this rank's calibration
// samples in host memory, the layer forward in steps (model.h qs_layer_step), fp32 throughout.
//
// Exactness under MPI: samples are split contiguously over the stage's ranks (run->data); the
// Hessian is a fixed tree sum over samples (qs_comm_treesum_f32), so every rank holds the same bits
// for any rank count; the method's prep is computed from it identically on every rank; a row's
// quantization does not depend on which rank does it (method.h); the rows are then all-gathered.
// Hence the checkpoint is byte-identical for -np 1, 2, 4.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "io/calib.h"
#include "base/parallel.h"
#include "quant/awq.h"
#include "quant/gptq.h"
#include "run/engine.h"

struct cpu_engine {
  struct qs_qengine base;
  float *x;          // [s1 - s0, T, hidden], NULL without calibration data
  struct qs_fwd ws;
  struct qs_layer L; // the current layer (fp32)
  const float *X;    // the current group's input [(s1-s0)*T, K] (for the Hessian leaves)
  int K;
  const struct qs_qrun *run;
  int x_done;        // x is already this layer's output (stats with advance: engine.h)
};

// QS_ERR_NUMERIC naming the tensor and the element when x [rows, cols] (cols 0: a vector of rows)
// holds a NaN or an Inf: a checkpoint value no method can quantize, and which would otherwise be
// copied into (or spread through) the output.
static qs_status check_finite(const float *x, int64_t rows, int64_t cols, const char *tensor) {
  qs_status status = QS_OK;
  const int64_t n = rows * (cols > 0 ? cols : 1);
  for (int64_t i = 0; i < n; i++) {
    if (isfinite(x[i])) continue;
    if (cols > 0)
      QS_FAIL(QS_ERR_NUMERIC, "%s[%lld, %lld] = %g: the checkpoint holds a non-finite value", tensor,
              (long long)(i / cols), (long long)(i % cols), (double)x[i]);
    QS_FAIL(QS_ERR_NUMERIC, "%s[%lld] = %g: the checkpoint holds a non-finite value", tensor, (long long)i,
            (double)x[i]);
  }
fail:
  return status;
}

// check_finite of a mapped [rows, cols] tensor in its stored dtype, a block of rows at a time.
static qs_status check_finite_rows(const struct qs_st_tensor *t, int64_t rows, int64_t cols, const char *tensor) {
  qs_status status = QS_OK;
  const int64_t per = QS_MAX(1, (1 << 20) / cols);
  float *buf = NULL;
  QS_ALLOC(buf, (size_t)(per * cols));
  for (int64_t r0 = 0; r0 < rows; r0 += per) {
    const int64_t n = QS_MIN(per, rows - r0);
    qs_st_read_f32_range(t, (size_t)(r0 * cols), (size_t)(n * cols), buf);
    for (int64_t i = 0; i < n * cols; i++)
      if (!isfinite(buf[i]))
        QS_FAIL(QS_ERR_NUMERIC, "%s[%lld, %lld] = %g: the checkpoint holds a non-finite value", tensor,
                (long long)(r0 + i / cols), (long long)(i % cols), (double)buf[i]);
  }
fail:
  free(buf);
  return status;
}

// Every tensor of layer l (linears, biases, norms) finite, before any forward or method reads it:
// the error names the weight, not whatever activation or Hessian it would have spoiled first.
static qs_status check_layer(const struct qs_qrun *run, int l, const struct qs_layer *L) {
  qs_status status = QS_OK;
  const struct qs_layout *lay = qs_layout_of(&run->m->cfg);
  char path[160], name[192];
  for (int i = 0; i < QS_LIN_COUNT; i++) {
    const struct qs_linear *lin = &L->lin[i];
    qs_layout_module_path(lay, l, (enum qs_lin)i, path, sizeof(path));
    snprintf(name, sizeof(name), "%s.weight", path);
    QS_TRY(check_finite(lin->w, lin->n_out, lin->n_in, name));
    snprintf(name, sizeof(name), "%s.bias", path);
    if (lin->b) QS_TRY(check_finite(lin->b, lin->n_out, 0, name));
  }
  snprintf(name, sizeof(name), "model.layers.%d.input_layernorm.weight", l);
  QS_TRY(check_finite(L->attn_norm, run->m->cfg.hidden, 0, name));
  snprintf(name, sizeof(name), "model.layers.%d.post_attention_layernorm.weight", l);
  QS_TRY(check_finite(L->mlp_norm, run->m->cfg.hidden, 0, name));
fail:
  return status;
}

static qs_status cpu_load(struct qs_qengine *e, struct qs_qrun *run, int l) {
  qs_status status = QS_OK;
  struct cpu_engine *c = (struct cpu_engine *)e;
  c->x_done = 0;
  qs_layer_free(&c->L);
  QS_TRY(qs_model_load_layer(run->m, l, &c->L));
  QS_TRY(check_layer(run, l, &c->L));
fail:
  return status;
}

// QS_ERR_NUMERIC naming the layer and the group's input when the finished H [K, K] holds a NaN or
// an Inf: a calibration activation is NaN/Inf, or large enough that X^T X overflows float32 (a huge
// norm weight, an exploding residual). Every rank holds the same H (a fixed tree sum), so every rank
// fails here together. The first non-finite diagonal names the input channel (|H[i,j]| <=
// sqrt(H[i,i] H[j,j]) for X^T X, so a finite diagonal with a non-finite entry elsewhere is unexpected,
// and reported as the entry).
static qs_status check_hessian(const struct qs_qrun *run, enum qs_group g, const float *H, int K) {
  qs_status status = QS_OK;
  const struct qs_layout *lay = qs_layout_of(&run->m->cfg);
  const struct qs_layout_group *grp = &lay->group[g];
  char mods[256] = "";
  for (int i = grp->first; i < grp->first + grp->count; i++)
    snprintf(mods + strlen(mods), sizeof(mods) - strlen(mods), "%s%s", i > grp->first ? ", " : "", lay->lin_name[i]);
  for (int k = 0; k < K; k++)
    if (!isfinite(H[(size_t)k * K + k]))
      QS_FAIL(QS_ERR_NUMERIC, "layer %d, %s (the input of %s): calibration activations are NaN/Inf or overflow "
              "float32 in X^T X (channel %d: H[%d, %d] = %g); check the model's norm and embedding weights for "
              "huge values", run->layer, grp->input, mods, k, k, k, (double)H[(size_t)k * K + k]);
  for (size_t i = 0; i < (size_t)K * K; i++)
    if (!isfinite(H[i]))
      QS_FAIL(QS_ERR_NUMERIC, "layer %d, %s: the Hessian of the calibration activations has H[%lld, %lld] = %g",
              run->layer, grp->input, (long long)(i / (size_t)K), (long long)(i % (size_t)K), (double)H[i]);
fail:
  return status;
}

// Leaf of the Hessian tree: X_s^T X_s of calibration sample s (upper triangle).
static qs_status hessian_leaf(void *ctx, long long s, float *out) {
  const struct cpu_engine *c = ctx;
  const struct qs_qrun *run = c->run;
  size_t K = (size_t)c->K;
  memset(out, 0, K * K * sizeof(float));
  qs_gptq_hessian_add(out, c->X + (size_t)(s - run->s0) * (size_t)run->T * K, run->T, c->K);
  return QS_OK;
}

static qs_status cpu_hessian(struct qs_qengine *e, struct qs_qrun *run, enum qs_group g, float **H) {
  qs_status status = QS_OK;
  struct cpu_engine *c = (struct cpu_engine *)e;
  *H = NULL;
  if (!c->x) return QS_OK;
  QS_TRY(qs_layer_step(&run->m->cfg, run->m->rope_inv_freq, &c->L, c->x, (int)(run->s1 - run->s0), run->T, &c->ws,
                       g, &c->X, &c->K));
  c->run = run;
  QS_ALLOC(*H, (size_t)c->K * (size_t)c->K);
  QS_TRY(qs_comm_treesum_f32(run->data, run->n_samples, (size_t)c->K * (size_t)c->K, hessian_leaf, c, *H));
  QS_TRY(qs_gptq_hessian_finalize(*H, c->K, run->n_samples));
  QS_TRY(check_hessian(run, g, *H, c->K));
  return QS_OK;
fail:
  free(*H);
  *H = NULL;
  return status;
}

static void cpu_hessian_free(struct qs_qengine *e, float *H) { (void)e, free(H); }

// Leaf of the channel-mean tree: Σ over sample s's tokens of |x_k| (float, in token order).
static qs_status xabs_leaf(void *ctx, long long s, float *out) {
  const struct cpu_engine *c = ctx;
  const struct qs_qrun *run = c->run;
  const size_t K = (size_t)c->K;
  const float *X = c->X + (size_t)(s - run->s0) * (size_t)run->T * K;
  memset(out, 0, K * sizeof(float));
  qs_awq_xabs_add_ref(X, run->T, (int64_t)K, out);
  return QS_OK;
}

static qs_status cpu_stats(struct qs_qengine *e, struct qs_qrun *run, float *H[QS_GROUP_COUNT],
                           float *xabs[QS_GROUP_COUNT], int advance) {
  qs_status status = QS_OK;
  struct cpu_engine *c = (struct cpu_engine *)e;
  const size_t nx = (size_t)(run->s1 - run->s0) * (size_t)run->T * (size_t)run->m->cfg.hidden;
  float *x0 = NULL;
  const float *X;
  int K;
  for (int g = 0; g < QS_GROUP_COUNT; g++) H[g] = xabs[g] = NULL;
  if (!c->x) QS_FAIL(QS_ERR_ARG, "layer %d: the scale search needs calibration data", run->layer);
  if (!advance) { // the steps add the attention output to x: put it back after
    QS_ALLOC(x0, nx);
    memcpy(x0, c->x, nx * sizeof(float));
  }
  for (int g = 0; g < QS_GROUP_COUNT; g++) {
    QS_TRY(cpu_hessian(e, run, (enum qs_group)g, &H[g]));
    QS_ALLOC(xabs[g], c->K);
    QS_TRY(qs_comm_treesum_f32(run->data, run->n_samples, (size_t)c->K, xabs_leaf, c, xabs[g]));
    const float n = (float)run->n_samples * (float)run->T;
    for (int k = 0; k < c->K; k++) xabs[g][k] /= n;
  }
  if (advance) { // the full-precision layer's output: the next layer's input
    QS_TRY(qs_layer_step(&run->m->cfg, run->m->rope_inv_freq, &c->L, c->x, (int)(run->s1 - run->s0), run->T, &c->ws,
                         QS_GROUP_COUNT, &X, &K));
    c->x_done = 1;
    return QS_OK;
  }
  memcpy(c->x, x0, nx * sizeof(float));
  free(x0);
  return QS_OK;
fail:
  if (x0) memcpy(c->x, x0, nx * sizeof(float));
  free(x0);
  for (int g = 0; g < QS_GROUP_COUNT; g++) {
    free(H[g]);
    free(xabs[g]);
    H[g] = xabs[g] = NULL;
  }
  return status;
}

// The scale search's work items: this rank's tiles, every candidate of a tile in one product.
struct scale_job {
  const struct qs_layer *L;
  const struct qs_qopts *o;
  const float *H, *S;
  int n, K, first;
  const long long *tile_start; // [count + 1] first global tile of each module of the group
  long long t0;                // this rank's first tile
  double *err;                 // [(t1 - t0) * n]: tile sums, candidate fastest
  qs_status status;            // a failure (set by any thread)
};

static void scale_range(void *arg, int64_t i0, int64_t i1) {
  struct scale_job *j = arg;
  double e[QS_AWQ_TILE * QS_AWQ_N_ALPHA];
  for (int64_t i = i0; i < i1; i++) {
    long long t = j->t0 + i;
    int m = 0;
    while (t >= j->tile_start[m + 1]) m++;
    const struct qs_linear *lin = &j->L->lin[j->first + m];
    int64_t r0 = (t - j->tile_start[m]) * QS_AWQ_TILE, nr = QS_MIN(QS_AWQ_TILE, lin->n_out - r0);
    qs_status st = j->n > QS_AWQ_N_ALPHA ? QS_ERR_INTERNAL
                                         : qs_awq_scaled_error_ref(&j->o->grid, j->H, j->K, lin->w + r0 * j->K, nr, j->S, j->n, e);
    if (st != QS_OK) {
      j->status = st;
      return;
    }
    for (int a = 0; a < j->n; a++) {
      double sum = 0;
      for (int64_t r = 0; r < nr; r++) sum += e[a * nr + r];
      j->err[i * j->n + a] = sum;
    }
  }
}

// Tiles of QS_AWQ_TILE rows of each module, numbered over the group; rank r computes every candidate
// of tiles split_range(n_tiles, P, r); the tile sums are gathered and added in tile order.
static qs_status cpu_scale_error(struct qs_qengine *e, struct qs_qrun *run, enum qs_group g, const struct qs_qopts *o,
                                 const float *H, const float *S, int n, double *err) {
  qs_status status = QS_OK;
  struct cpu_engine *c = (struct cpu_engine *)e;
  const struct qs_layout_group *grp = &qs_layout_of(&run->m->cfg)->group[g];
  long long tile_start[QS_LIN_COUNT + 1], b, t1;
  double *all = NULL;
  const long long nt = qs_scale_tiles(&run->m->cfg, g, QS_AWQ_TILE, tile_start);
  QS_ALLOC(all, (size_t)nt * (size_t)n);
  qs_comm_split_range(nt, qs_comm_size(run->data), qs_comm_rank(run->data), &b, &t1);
  struct scale_job job = {.L = &c->L, .o = o, .H = H, .S = S, .n = n, .K = c->L.lin[grp->first].n_in,
                          .first = grp->first, .tile_start = tile_start, .t0 = b, .err = all + b * n, .status = QS_OK};
  qs_parallel_for(t1 - b, 1, scale_range, &job);
  QS_TRY(job.status);
  QS_TRY(qs_scale_tiles_reduce(run->data, nt, n, all, err));
fail:
  free(all);
  return status;
}

static qs_status cpu_fold(struct qs_qengine *e, struct qs_qrun *run, enum qs_group g, const float *s,
                          qs_dtype norm_dtype, float *norm_out, float *H) {
  qs_status status = QS_OK;
  struct cpu_engine *c = (struct cpu_engine *)e;
  QS_TRY(qs_layer_fold(&c->L, &run->m->cfg, g, s, norm_dtype, norm_out));
  if (H) {
    const int64_t K = c->L.lin[qs_layout_of(&run->m->cfg)->group[g].first].n_in;
    qs_awq_fold_ref(H, K, K, s, QS_AWQ_FOLD_ROWS_DIV);
    qs_awq_fold_ref(H, K, K, s, QS_AWQ_FOLD_COLS_DIV);
  }
fail:
  return status;
}

static qs_status cpu_prep(struct qs_qengine *e, struct qs_qrun *run, const struct qs_qopts *o, const float *H, int64_t K,
                          const char *name, void **state, struct qs_qprep_info *info) {
  (void)e;
  return run->a->method->prep(o, H, K, name, state, info);
}

static void cpu_prep_free(struct qs_qengine *e, struct qs_qrun *run, void *state) {
  (void)e;
  run->a->method->free(state);
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
  int64_t N, K, G, C, r0, r1; // C: code bytes per row (qs_grid_row_codes)
  uint8_t *codes;     // [N, C]
  float *scales;      // [N, G]
  uint8_t *zeros;     // [N, G]
  float *loss;        // [N]
  double *num, *den;  // [N] output error terms
  float *W0;          // [r1-r0, K] original rows of this rank
};

static void qmod_free(struct qmod *q) {
  free(q->codes); free(q->scales); free(q->zeros); free(q->loss); free(q->num); free(q->den); free(q->W0);
}

static qs_status qmod_init(struct qmod *q, struct qs_comm *c, const struct qs_linear *lin, const struct qs_grid *g) {
  qs_status status = QS_OK;
  q->N = lin->n_out;
  q->K = lin->n_in;
  q->G = qs_grid_n_groups(g, q->K);
  q->C = qs_grid_row_codes(g, q->K);
  long long b, e;
  qs_comm_split_range(q->N, qs_comm_size(c), qs_comm_rank(c), &b, &e);
  q->r0 = b;
  q->r1 = e;
  QS_ALLOC(q->codes, q->N * q->C);
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
  QS_TRY(gather_rows(c, q->codes, q->N, (size_t)q->C));
  QS_TRY(gather_rows(c, q->scales, q->N, (size_t)q->G * sizeof(float)));
  QS_TRY(gather_rows(c, q->zeros, q->N, (size_t)q->G));
  QS_TRY(gather_rows(c, q->loss, q->N, sizeof(float)));
  QS_TRY(gather_rows(c, q->num, q->N, sizeof(double)));
  QS_TRY(gather_rows(c, q->den, q->N, sizeof(double)));
fail:
  return status;
}

// The gathered module as a record (the leader's): the buffers move into it.
static qs_status qmod_record(struct qmod *q, const struct qs_qrun *run, const struct qs_qopts *o, const void *state,
                             const struct qs_linear *lin, const char *name, struct qs_qrecord *rec) {
  qs_status status = QS_OK;
  *rec = (struct qs_qrecord){.layer = run->layer, .N = q->N, .K = q->K, .G = q->G, .grid = o->grid};
  snprintf(rec->name, sizeof(rec->name), "%s", name);
  rec->codes = q->codes, q->codes = NULL;
  rec->scales = q->scales, q->scales = NULL;
  rec->zeros = q->zeros, q->zeros = NULL;
  QS_ALLOC(rec->g_idx, q->K);
  run->a->method->group_map(state, rec->g_idx);
  if (lin->b) {
    QS_ALLOC(rec->bias, q->N);
    memcpy(rec->bias, lin->b, (size_t)q->N * sizeof(float));
  }
fail:
  return status;
}

static qs_status cpu_module(struct qs_qengine *e, struct qs_qrun *run, const struct qs_qopts *o, const void *state,
                            const float *H, enum qs_lin li, struct qs_qreport *rep, struct qs_qrecord *rec) {
  qs_status status = QS_OK;
  struct cpu_engine *c = (struct cpu_engine *)e;
  struct qs_linear *lin = &c->L.lin[li];
  struct qmod q = {0};
  QS_TRY(qs_qopts_check(o, lin->n_in, rep->name));
  QS_TRY(qmod_init(&q, run->data, lin, &o->grid));
  int64_t nr = q.r1 - q.r0;
  float *Wr = lin->w + q.r0 * q.K;
  struct qs_qrows out = {.codes = q.codes + q.r0 * q.C, .scales = q.scales + q.r0 * q.G,
                         .zeros = q.zeros + q.r0 * q.G, .loss = q.loss + q.r0};
  QS_TRY(run->a->method->rows(state, Wr, nr, q.r0, &out));
  if (H) QS_TRY(row_output_error(q.W0, Wr, H, nr, q.K, q.num + q.r0, q.den + q.r0));
  QS_TRY(qmod_gather(&q, run->data, lin));
  double loss = 0, num = 0, den = 0;
  for (int64_t r = 0; r < q.N; r++) { loss += q.loss[r]; num += q.num[r]; den += q.den[r]; }
  rep->loss = (run->a->method->needs & QS_METHOD_HESSIAN) ? loss : NAN;
  if (H) rep->rel_err = den > 0 ? sqrt(num / den) : 0.0;
  if (qs_comm_rank(run->data) == 0) QS_TRY(qmod_record(&q, run, o, state, lin, rep->name, rec));
fail:
  qmod_free(&q);
  return status;
}

static qs_status cpu_finish(struct qs_qengine *e, struct qs_qrun *run, int l) {
  struct cpu_engine *c = (struct cpu_engine *)e;
  const float *X;
  int K;
  (void)l;
  if (!c->x || c->x_done) return QS_OK;
  return qs_layer_step(&run->m->cfg, run->m->rope_inv_freq, &c->L, c->x, (int)(run->s1 - run->s0), run->T, &c->ws,
                       QS_GROUP_COUNT, &X, &K);
}

static size_t cpu_x_floats(const struct qs_qrun *run) {
  return (size_t)(run->s1 - run->s0) * (size_t)run->T * (size_t)run->m->cfg.hidden;
}

static qs_status cpu_get_x(struct qs_qengine *e, const struct qs_qrun *run, float *x) {
  struct cpu_engine *c = (struct cpu_engine *)e;
  if (c->x) memcpy(x, c->x, cpu_x_floats(run) * sizeof(float));
  return QS_OK;
}

static qs_status cpu_set_x(struct qs_qengine *e, const struct qs_qrun *run, const float *x) {
  struct cpu_engine *c = (struct cpu_engine *)e;
  if (c->x) memcpy(c->x, x, cpu_x_floats(run) * sizeof(float));
  return QS_OK;
}

static long long cpu_device_peak(struct qs_qengine *e) {
  (void)e;
  return -1;
}

static void cpu_free(struct qs_qengine *e) {
  struct cpu_engine *c = (struct cpu_engine *)e;
  if (!c) return;
  qs_fwd_free(&c->ws);
  qs_layer_free(&c->L);
  free(c->x);
  free(c);
}

qs_status qs_qengine_cpu_init(struct qs_qrun *run, const struct qs_calib *cal, struct qs_qengine **out) {
  qs_status status = QS_OK;
  struct cpu_engine *c = NULL;
  int P = qs_comm_size(run->data), hidden = run->m->cfg.hidden;
  QS_ALLOC(c, 1);
  c->base = (struct qs_qengine){.name = "cpu", .load = cpu_load, .hessian = cpu_hessian,
                                .hessian_free = cpu_hessian_free, .prep = cpu_prep, .prep_free = cpu_prep_free,
                                .module = cpu_module, .stats = cpu_stats,
                                .scale_error = cpu_scale_error, .fold = cpu_fold, .finish = cpu_finish, .get_x = cpu_get_x, .set_x = cpu_set_x,
                                .device_peak = cpu_device_peak, .free = cpu_free};
  // the tensors outside the layers: the output copies them, the calibration forward reads them
  if (run->m->embed) QS_TRY(check_finite_rows(run->m->embed, run->m->cfg.vocab, hidden, "model.embed_tokens.weight"));
  if (run->m->norm) QS_TRY(check_finite(run->m->norm, hidden, 0, "model.norm.weight"));
  if (run->m->lm_head && run->m->lm_head != run->m->embed)
    QS_TRY(check_finite_rows(run->m->lm_head, run->m->cfg.vocab, hidden, "lm_head.weight"));
  if (cal) {
    if (cal->n < P)
      QS_FAIL(QS_ERR_ARG, "%d calibration samples for %d (data) ranks: need at least one per rank", cal->n, P);
    run->n_samples = cal->n;
    run->T = cal->seqlen;
    qs_comm_split_range(cal->n, P, qs_comm_rank(run->data), &run->s0, &run->s1);
    long long B = run->s1 - run->s0;
    QS_ALLOC(c->x, (size_t)B * (size_t)cal->seqlen * (size_t)hidden);
    for (long long b = 0; b < B; b++)
      qs_model_embed(run->m, cal->ids + (size_t)(run->s0 + b) * cal->seqlen, cal->seqlen,
                     c->x + (size_t)b * cal->seqlen * hidden);
    QS_TRY(qs_fwd_init(&c->ws, &run->m->cfg, (int)B, run->T));
  }
  *out = &c->base;
  return QS_OK;
fail:
  if (c) cpu_free(&c->base);
  return status;
}
