// gptq.c — GPTQ (Frantar et al. 2022) on the CPU, following the IST-DASLab reference `fasterquant`
// and AutoGPTQ's act-order / static-groups variant: Hessian accumulation, the damped inverse-Cholesky
// factor, and the lazy-block column solve on any grid (grid.h). Contract: gptq.h. The method row
// (qs_method_gptq, method.h) is at the end.
//
// The idea: quantize W's columns one at a time and push each column's rounding error onto the
// columns not yet quantized, weighted by the inverse Hessian, so that the layer output error
// ||(W - Q) X^T||^2 (whose Hessian in W is H = 2 X^T X) stays small. With U the upper Cholesky factor
// of H^-1, the optimal update after quantizing column i is W[:, j] -= (w_i - q_i)/U[i,i] * U[i, j]
// for j > i (the reference's err1 * Hinv1[i, i:]); the lazy-block form applies it eagerly inside a
// block of 128 columns and once, as a matrix product, to the columns after the block.
#include "quant/gptq.h"
#include "quant/grid_ggml.h"
#include "quant/imatrix.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

// ---- Hessian ------------------------------------------------------------------------------------------

void qs_gptq_hessian_add(float *S, const float *X, int64_t rows, int K) {
  if (rows <= 0) return;
  // Upper triangle of S += X^T X: X is [rows, K] row-major, so "trans" makes X^T X.
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, K, (int)rows, 1.0f, X, K, 1.0f, S, K);
}

void qs_gptq_hessian_add_ref(float *S, const float *X, int64_t rows, int K) {
  for (int64_t r = 0; r < rows; r++) {
    const float *x = X + r * K;
    for (int i = 0; i < K; i++)
      for (int j = i; j < K; j++) S[(size_t)i * K + j] += x[i] * x[j];
  }
}

qs_status qs_gptq_hessian_finalize(float *S, int K, int64_t nsamples) {
  qs_status status = QS_OK;
  if (nsamples <= 0) QS_FAIL(QS_ERR_ARG, "Hessian finalize: %lld calibration samples", (long long)nsamples);
  float c = (float)(2.0 / (double)nsamples);
  for (int i = 0; i < K; i++)
    for (int j = i; j < K; j++) {
      float v = S[(size_t)i * K + j] * c;
      S[(size_t)i * K + j] = v;
      S[(size_t)j * K + i] = v;
    }
fail:
  return status;
}

// ---- factor: U upper with A^-1 = U^T U ----------------------------------------------------------------
//
// With J the reversal (J A J)[i][j] = A[K-1-i][K-1-j]: if J A J = L L^T then
// A^-1 = J L^-T L^-1 J = (J L^-1 J)^T (J L^-1 J), and J L^-1 J is upper triangular with a positive
// diagonal, so it is THE Cholesky factor U of A^-1. On a row-major K x K buffer, J A J is simply the
// buffer read backwards (element i*K+j <-> K*K-1-(i*K+j)), and LAPACK's column-major 'U' Cholesky
// of a row-major buffer is the row-major lower L (the transpose). Hence: reverse, potrf 'U', trtri
// 'U', reverse: one factorization and one triangular inverse, no transposes or copies.

static void qs_gptq_reverse(float *A, size_t n) {
  for (size_t i = 0, j = n - 1; i < j; i++, j--) {
    float t = A[i];
    A[i] = A[j];
    A[j] = t;
  }
}

// Row-major A (only its lower triangle is read) -> L^-1 in the lower triangle, upper part zeroed.
static int qs_gptq_chol_inverse_lower(float *A, int K) {
  int info = LAPACKE_spotrf(LAPACK_COL_MAJOR, 'U', K, A, K); // row-major view: A = L L^T
  if (info != 0) return info;
  info = LAPACKE_strtri(LAPACK_COL_MAJOR, 'U', 'N', K, A, K); // row-major view: L^-1
  if (info != 0) return info;
  for (int i = 0; i < K; i++) memset(A + (size_t)i * K + i + 1, 0, sizeof(float) * (size_t)(K - 1 - i));
  return 0;
}

int qs_gptq_inverse_factor(float *A, int K) {
  size_t n = (size_t)K * K;
  qs_gptq_reverse(A, n); // J A J
  int info = qs_gptq_chol_inverse_lower(A, K);
  if (info != 0) return info;
  qs_gptq_reverse(A, n); // U = J L^-1 J (the zeroed upper part of L^-1 becomes U's lower part)
  return 0;
}

int qs_gptq_inverse_factor_ref(float *A, int K) {
  int info = LAPACKE_spotrf(LAPACK_ROW_MAJOR, 'L', K, A, K); // A = L L^T
  if (info != 0) return info;
  info = LAPACKE_spotri(LAPACK_ROW_MAJOR, 'L', K, A, K); // lower triangle of A^-1
  if (info != 0) return info;
  for (int i = 0; i < K; i++)
    for (int j = i + 1; j < K; j++) A[(size_t)i * K + j] = A[(size_t)j * K + i];
  info = LAPACKE_spotrf(LAPACK_ROW_MAJOR, 'U', K, A, K); // A^-1 = U^T U
  if (info != 0) return info;
  for (int i = 1; i < K; i++) memset(A + (size_t)i * K, 0, sizeof(float) * (size_t)i);
  return 0;
}

// ---- prepare: dead columns, act-order permutation, damping, factor -------------------------------------

struct qs_gptq_diag_key {
  float d;
  int32_t k;
};

// Decreasing diag(H); ties keep increasing column index (a stable order, unlike torch.argsort, so
// the permutation is reproducible).
static int qs_gptq_diag_cmp(const void *a, const void *b) {
  const struct qs_gptq_diag_key *x = a, *y = b;
  if (x->d != y->d) return x->d > y->d ? -1 : 1;
  return (x->k > y->k) - (x->k < y->k);
}

static qs_status qs_gptq_prep_order(struct qs_gptq_prep *prep, const float *H) {
  qs_status status = QS_OK;
  int64_t K = prep->K;
  struct qs_gptq_diag_key *keys = NULL;
  QS_ALLOC(keys, K);
  for (int64_t k = 0; k < K; k++) {
    float d = H[(size_t)k * K + k];
    prep->dead[k] = d == 0.0f; // an input that never fired: no information, quantize it to 0
    prep->n_dead += prep->dead[k];
    keys[k].d = prep->dead[k] ? 1.0f : d; // the reference sets H[dead, dead] = 1 before sorting
    keys[k].k = (int32_t)k;
  }
  if (prep->opts.act_order) qsort(keys, (size_t)K, sizeof(*keys), qs_gptq_diag_cmp);
  for (int64_t p = 0; p < K; p++) prep->perm[p] = keys[p].k;
fail:
  free(keys);
  return status;
}

// U's buffer <- J Hp J + damp I (lower triangle of the row-major view only, which is all that
// potrf reads), where Hp = H[perm][:, perm] with dead diagonals set to 1.
static void qs_gptq_prep_gather(const struct qs_gptq_prep *prep, const float *H, float damp) {
  int64_t K = prep->K;
  for (int64_t i = 0; i < K; i++) {
    int64_t pi = prep->perm[K - 1 - i];
    const float *h = H + (size_t)pi * K;
    float *a = prep->U + (size_t)i * K;
    for (int64_t j = 0; j < i; j++) a[j] = h[prep->perm[K - 1 - j]];
    a[i] = (prep->dead[pi] ? 1.0f : h[pi]) + damp;
  }
}

// Factorize with damping `frac` of mean(diag H), raising it x10 (from 1e-3 when 0 was asked) up to
// QS_GPTQ_DAMP_RAISES times when H + damp I is not positive definite (e.g. too few calibration
// tokens). When the last raise fails too: with factored == NULL a QS_ERR_NUMERIC naming the module,
// else *factored = 0 and QS_OK, nothing printed (the caller falls back; U is then meaningless).
static qs_status qs_gptq_prep_factor(struct qs_gptq_prep *prep, const float *H, const char *name, int *factored) {
  qs_status status = QS_OK;
  int64_t K = prep->K;
  double sum = 0.0;
  for (int64_t k = 0; k < K; k++) sum += prep->dead[k] ? 1.0 : (double)H[(size_t)k * K + k];
  float mean = (float)(sum / (double)K);
  float frac = prep->opts.damp;
  for (int attempt = 0;; attempt++) {
    qs_gptq_prep_gather(prep, H, frac * mean); // already J Hp J: no reversal before the Cholesky
    int info = qs_gptq_chol_inverse_lower(prep->U, (int)K);
    if (info < 0) QS_FAIL(QS_ERR_INTERNAL, "%s: LAPACK argument %d invalid", name, -info);
    if (info == 0) break;
    float next = qs_gptq_damp_next(frac);
    if (attempt == QS_GPTQ_DAMP_RAISES && factored) {
      prep->damp_used = frac;
      *factored = 0;
      return QS_OK;
    }
    if (attempt == QS_GPTQ_DAMP_RAISES)
      QS_FAIL(QS_ERR_NUMERIC, "%s: Hessian not positive definite even with damp %g of mean diag %g "
              "(leading minor %d); more calibration data is needed", name, (double)frac, (double)mean, info);
    qs_log(QS_LOG_WARN, "%s: Cholesky failed with damp %g (leading minor %d); retrying with damp %g",
           name, (double)frac, info, (double)next);
    frac = next;
    prep->damp_raises++;
  }
  if (factored) *factored = 1;
  qs_gptq_reverse(prep->U, (size_t)K * K);
  prep->damp_used = frac;
  for (int64_t k = 0; k < K; k++) {
    float d = prep->U[(size_t)k * K + k];
    if (!(isfinite(d) && d > 0.0f))
      QS_FAIL(QS_ERR_NUMERIC, "%s: inverse Hessian factor U[%lld,%lld] = %g", name, (long long)k,
              (long long)k, (double)d);
  }
fail:
  return status;
}

// qs_gptq_prep_init (factored == NULL) and qs_gptq_prep_try_init.
static qs_status qs_gptq_prep_init_impl(struct qs_gptq_prep *prep, const float *H, int64_t K,
                                        const struct qs_qopts *opts, const char *name, int *factored) {
  qs_status status = QS_OK;
  memset(prep, 0, sizeof(*prep));
  QS_TRY(qs_qopts_check(opts, K, name));
  if (opts->grid.kind == QS_GRID_GGML) { // GPTQ into llama.cpp's block grids (grid_ggml.h element view)
    if (!qs_ggml_elem_supported(opts->grid.ggml_type))
      QS_FAIL(QS_ERR_UNSUPPORTED, "%s: GPTQ into %s blocks is not built (its codes are not a rounding on the block's "
              "scales); use --method rtn", name, qs_ggml_type_name(opts->grid.ggml_type));
    if (opts->act_order != QS_ACT_ORDER_NONE)
      QS_FAIL(QS_ERR_UNSUPPORTED, "%s: --act-order with llama.cpp's block grids is not built", name);
  }
  if (K > INT_MAX) QS_FAIL(QS_ERR_UNSUPPORTED, "%s: K = %lld columns is too large", name, (long long)K);
  // A non-finite H is an error, never a fallback: no damping makes it positive definite, and it
  // means the calibration activations are NaN/Inf or overflow fp32 in X^T X (the CPU engine reports
  // that earlier, naming the layer's input: run/engine_cpu.c).
  for (size_t i = 0; i < (size_t)K * K; i++)
    if (!isfinite(H[i]))
      QS_FAIL(QS_ERR_NUMERIC, "%s: Hessian H[%lld, %lld] = %g is not finite (its calibration inputs are NaN/Inf or "
              "overflow float32)", name, (long long)(i / (size_t)K), (long long)(i % (size_t)K), (double)H[i]);
  prep->K = K;
  prep->opts = *opts;
  if (prep->opts.block_size <= 0) prep->opts.block_size = 128;
  QS_ALLOC(prep->U, (size_t)K * K);
  QS_ALLOC(prep->perm, K);
  QS_ALLOC(prep->dead, K);
  QS_TRY(qs_gptq_prep_order(prep, H));
  if (opts->grid.kind == QS_GRID_GGML && opts->importance != QS_IMP_NONE) {
    // the block parameters are searched with the importance, as llama-quantize --imatrix does
    const float *v = NULL;
    if (opts->importance == QS_IMP_TABLE) {
      v = qs_imatrix_find(opts->imatrix, name, K, &status);
      QS_TRY(status);
    }
    if (v || opts->importance == QS_IMP_CALIB) {
      QS_ALLOC(prep->imp, K);
      for (int64_t k = 0; k < K; k++)
        prep->imp[k] = v ? v[k] : qs_imatrix_sum2_from_hessian(H[k * K + k], opts->imp_count) / opts->imp_count;
    }
  }
  QS_TRY(qs_gptq_prep_factor(prep, H, name, factored));
  if (factored && !*factored) { // keep what the report needs, free the rest
    float damp = prep->damp_used;
    int raises = prep->damp_raises;
    qs_gptq_prep_free(prep);
    prep->K = K;
    prep->opts = *opts;
    prep->damp_used = damp;
    prep->damp_raises = raises;
  }
  return QS_OK;
fail:
  qs_gptq_prep_free(prep);
  return status;
}

qs_status qs_gptq_prep_init(struct qs_gptq_prep *prep, const float *H, int64_t K,
                            const struct qs_qopts *opts, const char *name) {
  return qs_gptq_prep_init_impl(prep, H, K, opts, name, NULL);
}

qs_status qs_gptq_prep_try_init(struct qs_gptq_prep *prep, const float *H, int64_t K,
                                const struct qs_qopts *opts, const char *name, int *factored) {
  *factored = 0;
  return qs_gptq_prep_init_impl(prep, H, K, opts, name, factored);
}

void qs_gptq_prep_free(struct qs_gptq_prep *prep) {
  free(prep->imp);
  free(prep->U);
  free(prep->perm);
  free(prep->dead);
  memset(prep, 0, sizeof(*prep));
}

int64_t qs_gptq_n_groups(const struct qs_gptq_prep *prep) { return qs_grid_n_groups(&prep->opts.grid, prep->K); }

void qs_gptq_g_idx(const struct qs_gptq_prep *prep, int32_t *g_idx) {
  const struct qs_qopts *o = &prep->opts;
  int gs = o->grid.group_size;
  qs_grid_g_idx_contiguous(&o->grid, prep->K, g_idx);
  // Act-order without static groups: groups are runs of quantization positions, so column perm[p]
  // belongs to group p / gs (non-monotonic in k; scales/zeros row g is the g-th group quantized).
  if (o->act_order == QS_ACT_ORDER_GROUP && gs > 0)
    for (int64_t p = 0; p < prep->K; p++) g_idx[prep->perm[p]] = (int32_t)(p / gs);
}

// ---- lazy-block update of the columns after a block ---------------------------------------------------

void qs_gptq_update_block(float *W, int64_t ldw, const float *Err, int64_t lde, const float *U,
                          int64_t K, int64_t rows, int64_t i1, int64_t i2) {
  if (i2 >= K || rows <= 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)(K - i2), (int)(i2 - i1), -1.0f,
              Err, (int)lde, U + (size_t)i1 * K + i2, (int)K, 1.0f, W + i2, (int)ldw);
}

void qs_gptq_update_block_ref(float *W, int64_t ldw, const float *Err, int64_t lde, const float *U,
                              int64_t K, int64_t rows, int64_t i1, int64_t i2) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = i2; j < K; j++) {
      float acc = 0.0f;
      for (int64_t i = i1; i < i2; i++) acc += Err[r * lde + (i - i1)] * U[(size_t)i * K + j];
      W[r * ldw + j] -= acc;
    }
}


// ---- the column solve, one tile of QS_GPTQ_ROW_TILE rows at a time ----------------------------------

// Working state of one row tile. Columns are in quantization order (position p = column perm[p]).
struct qs_gptq_tile {
  int64_t K, G, bs;
  float *W;                    // [T, K] lazily updated weights; a block's columns become Q when done
  float *W1;                   // [bs, T] the current block, eagerly updated (the reference's W1)
  float *Err;                  // [T, bs] scaled errors (w - q)/d of the block; padding rows stay 0
  float *row;                  // [K] scratch: one original row with dead columns zeroed
  uint8_t *codes;              // [T, K]
  struct qs_qparams *grid;     // [T, G] in quantization order
  uint8_t *blocks;             // llama.cpp grids: [T, C] each row's blocks (parameters found at each
  int64_t C;                   // block's first column, codes put as the solve chooses them), or NULL
  double *loss;                // [T]
};

static void qs_gptq_tile_free(struct qs_gptq_tile *t) {
  free(t->W);
  free(t->W1);
  free(t->Err);
  free(t->row);
  free(t->codes);
  free(t->grid);
  free(t->blocks);
  free(t->loss);
}

static qs_status qs_gptq_tile_init(struct qs_gptq_tile *t, const struct qs_gptq_prep *prep) {
  qs_status status = QS_OK;
  int64_t T = QS_GPTQ_ROW_TILE;
  t->K = prep->K;
  t->G = qs_gptq_n_groups(prep);
  t->bs = prep->opts.block_size;
  QS_ALLOC(t->W, T * t->K);
  QS_ALLOC(t->W1, T * t->bs);
  QS_ALLOC(t->Err, T * t->bs);
  QS_ALLOC(t->row, t->K);
  QS_ALLOC(t->codes, T * t->K);
  QS_ALLOC(t->grid, T * t->G);
  if (prep->opts.grid.kind == QS_GRID_GGML) {
    t->C = qs_grid_row_codes(&prep->opts.grid, t->K);
    QS_ALLOC(t->blocks, T * t->C);
  }
  QS_ALLOC(t->loss, T);
fail:
  return status;
}

// Grids fixed before the solve, from the row as given: per-row (gs = -1) on the original weights,
// dead columns included, because the reference calls find_params before zeroing them; static
// groups on the original contiguous columns after zeroing dead ones (the reference's order).
static void qs_gptq_tile_grids(const struct qs_gptq_prep *prep, struct qs_gptq_tile *t, int64_t ti,
                               const float *src) {
  const struct qs_grid *g = &prep->opts.grid;
  struct qs_qparams *grid = t->grid + ti * t->G;
  if (g->group_size <= 0) {
    grid[0] = qs_grid_find(g, src, t->K);
    return;
  }
  if (prep->opts.act_order != QS_ACT_ORDER_STATIC) return; // found during the solve
  for (int64_t k = 0; k < t->K; k++) t->row[k] = prep->dead[k] ? 0.0f : src[k];
  for (int64_t j = 0; j < t->G; j++) {
    int64_t k0 = j * g->group_size;
    grid[j] = qs_grid_find(g, t->row + k0, QS_MIN(g->group_size, t->K - k0));
  }
}

// Loads rows [lo, hi) (global indices; W holds rows from row0) at tile rows lo-ts.., permuted, with
// dead columns zeroed; other tile rows are zero so that every BLAS call has the full tile shape.
static qs_status qs_gptq_tile_load(const struct qs_gptq_prep *prep, struct qs_gptq_tile *t, const float *W,
                                   int64_t row0, int64_t ts, int64_t lo, int64_t hi) {
  qs_status status = QS_OK;
  int64_t K = t->K, T = QS_GPTQ_ROW_TILE;
  memset(t->W, 0, sizeof(float) * (size_t)(T * K));
  memset(t->Err, 0, sizeof(float) * (size_t)(T * t->bs));
  memset(t->loss, 0, sizeof(double) * (size_t)T);
  for (int64_t r = lo; r < hi; r++) {
    const float *src = W + (r - row0) * K;
    float *dst = t->W + (r - ts) * K;
    for (int64_t k = 0; k < K; k++)
      if (!isfinite(src[k]))
        QS_FAIL(QS_ERR_NUMERIC, "gptq: weight [%lld, %lld] is %g", (long long)r, (long long)k, (double)src[k]);
    qs_gptq_tile_grids(prep, t, r - ts, src);
    for (int64_t p = 0; p < K; p++) {
      int32_t k = prep->perm[p];
      dst[p] = prep->dead[k] ? 0.0f : src[k];
    }
  }
fail:
  return status;
}

// The grid for position p of tile row ti. Non-static groups are (re)found at each group start from
// t->W, i.e. from W exactly as the reference's find_params(W[:, p:p+gs]) sees it: updated by the
// previous blocks' lazy updates, but (for a group starting inside a block) not by this block's
// eager ones, which live in W1. With gs a multiple of the block size the distinction vanishes.
static struct qs_qparams qs_gptq_tile_grid(const struct qs_gptq_prep *prep, struct qs_gptq_tile *t, int64_t ti,
                                           int64_t p) {
  const struct qs_grid *g = &prep->opts.grid;
  const int64_t gs = g->group_size;
  struct qs_qparams *grid = t->grid + ti * t->G;
  if (gs <= 0) return grid[0];
  if (prep->opts.act_order == QS_ACT_ORDER_STATIC) return grid[prep->perm[p] / gs];
  if (p % gs == 0) grid[p / gs] = qs_grid_find(g, t->W + ti * t->K + p, QS_MIN(gs, t->K - p));
  return grid[p / gs];
}

// Quantizes column p = i1 + i of the tile rows [tlo, thi) on their grids; e[ti] receives the
// scaled error (w - q)/U[p,p] (padding rows keep 0).
static void qs_gptq_tile_solve_column(const struct qs_gptq_prep *prep, struct qs_gptq_tile *t, int64_t tlo,
                                      int64_t thi, int64_t i1, int64_t i, float *e) {
  const int64_t T = QS_GPTQ_ROW_TILE, K = t->K, p = i1 + i;
  const struct qs_grid *grid = &prep->opts.grid;
  float d = prep->U[(size_t)p * K + p];
  float *w1 = t->W1 + i * T;
  if (grid->kind == QS_GRID_GGML) {
    // A llama.cpp block: its parameters found by its reference at the block's first column from W as
    // find_params would see it (as a group above), then each code the reference's rounding of the
    // updated weight on them; the block's bytes collect the codes.
    const int type = grid->ggml_type, bl = grid->group_size, j = (int)(p % bl);
    const size_t bsz = (size_t)qs_ggml_type_size(type);
    for (int64_t ti = tlo; ti < thi; ti++) {
      uint8_t *blk = t->blocks + ti * t->C + (size_t)(p / bl) * bsz;
      if (j == 0) (void)qs_ggml_quantize_row_ref(type, t->W + ti * K + p, prep->imp ? prep->imp + p : NULL, bl, blk);
      float w = w1[ti];
      int32_t q = qs_ggml_elem_code(type, blk, j, w);
      float wq = qs_ggml_elem_value(type, blk, j, q);
      qs_ggml_elem_put(type, blk, j, q);
      t->loss[ti] += (double)(w - wq) * (double)(w - wq) / ((double)d * (double)d);
      e[ti] = (w - wq) / d;
      t->Err[ti * t->bs + i] = e[ti];
      w1[ti] = wq;
    }
    return;
  }
  for (int64_t ti = tlo; ti < thi; ti++) {
    struct qs_qparams g = qs_gptq_tile_grid(prep, t, ti, p);
    float w = w1[ti];
    float q = qs_grid_code(grid, g, w);
    float wq = qs_grid_value(grid, g, q);
    t->codes[ti * K + p] = (uint8_t)q;
    t->loss[ti] += (double)(w - wq) * (double)(w - wq) / ((double)d * (double)d);
    e[ti] = (w - wq) / d;
    t->Err[ti * t->bs + i] = e[ti];
    w1[ti] = wq; // the column is final: keep its dequantized value
  }
}

// One block [i1, i2) of the tile: columns in order, each followed by the eager update of the
// block's later columns, W1[j, :] -= e * U[p, j]. W1 is [bs, T] (the tile's rows contiguous) so
// that update runs over a fixed T rows and vectorizes; per element it is the reference's
// w - e*u, so the layout does not change a bit.
static void qs_gptq_tile_solve_block(const struct qs_gptq_prep *prep, struct qs_gptq_tile *t, int64_t tlo,
                                     int64_t thi, int64_t i1, int64_t i2) {
  const int64_t T = QS_GPTQ_ROW_TILE, K = t->K, count = i2 - i1;
  float e[QS_GPTQ_ROW_TILE] = {0};
  for (int64_t i = 0; i < count; i++)
    for (int64_t ti = 0; ti < T; ti++) t->W1[i * T + ti] = t->W[ti * K + i1 + i];
  for (int64_t i = 0; i < count; i++) {
    const float *u = prep->U + (size_t)(i1 + i) * K + i1; // U[p, i1:i2]
    qs_gptq_tile_solve_column(prep, t, tlo, thi, i1, i, e);
    for (int64_t j = i + 1; j < count; j++) {
      float uj = u[j], *w1 = t->W1 + j * T;
      for (int64_t ti = 0; ti < T; ti++) w1[ti] -= e[ti] * uj;
    }
  }
}

// All blocks of the tile rows [tlo, thi); the update after each block runs on all T rows.
static void qs_gptq_tile_solve(const struct qs_gptq_prep *prep, struct qs_gptq_tile *t, int64_t tlo,
                               int64_t thi) {
  const int64_t K = t->K, T = QS_GPTQ_ROW_TILE;
  for (int64_t i1 = 0; i1 < K; i1 += t->bs) {
    int64_t i2 = QS_MIN(i1 + t->bs, K);
    qs_gptq_tile_solve_block(prep, t, tlo, thi, i1, i2);
    if (prep->update_ref)
      qs_gptq_update_block_ref(t->W, K, t->Err, t->bs, prep->U, K, T, i1, i2);
    else
      qs_gptq_update_block(t->W, K, t->Err, t->bs, prep->U, K, T, i1, i2);
    // Only after the update: group grids found inside this block read its block-start weights.
    for (int64_t i = i1; i < i2; i++)
      for (int64_t ti = tlo; ti < thi; ti++) t->W[ti * K + i] = t->W1[(i - i1) * T + ti];
  }
}

// Un-permutes tile rows back into the caller's rows: Q into W, codes, grids, losses.
static void qs_gptq_tile_store(const struct qs_gptq_prep *prep, const struct qs_gptq_tile *t, float *W,
                               int64_t row0, int64_t ts, int64_t lo, int64_t hi, const struct qs_qrows *out) {
  int64_t K = t->K, G = t->G;
  for (int64_t r = lo; r < hi; r++) {
    int64_t ti = r - ts, ro = r - row0;
    if (t->blocks) { // llama.cpp grids: no permutation (act-order is refused), the blocks are the codes
      memcpy(W + ro * K, t->W + ti * K, (size_t)K * sizeof(float));
      memcpy(out->codes + ro * t->C, t->blocks + ti * t->C, (size_t)t->C);
      if (out->loss) out->loss[ro] = (float)(t->loss[ti] / 2.0);
      continue;
    }
    for (int64_t p = 0; p < K; p++) {
      int32_t k = prep->perm[p];
      W[ro * K + k] = t->W[ti * K + p];
      out->codes[ro * K + k] = t->codes[ti * K + p];
    }
    for (int64_t g = 0; g < G; g++) {
      out->scales[ro * G + g] = t->grid[ti * G + g].scale;
      out->zeros[ro * G + g] = (uint8_t)t->grid[ti * G + g].zero;
    }
    if (out->loss) out->loss[ro] = (float)(t->loss[ti] / 2.0);
  }
}

qs_status qs_gptq_quantize_rows(const struct qs_gptq_prep *prep, float *W, int64_t nrows, int64_t row0,
                                const struct qs_qrows *out) {
  qs_status status = QS_OK;
  struct qs_gptq_tile t = {0};
  const int64_t T = QS_GPTQ_ROW_TILE;
  if (nrows < 0 || row0 < 0) QS_FAIL(QS_ERR_ARG, "gptq: rows [%lld, +%lld)", (long long)row0, (long long)nrows);
  QS_TRY(qs_gptq_tile_init(&t, prep));
  // Tiles are aligned to the global row index, so a row's tile (shape and position) does not
  // depend on which block of rows this call was given.
  for (int64_t ts = row0 / T * T; ts < row0 + nrows; ts += T) {
    int64_t lo = QS_MAX(ts, row0), hi = QS_MIN(ts + T, row0 + nrows);
    QS_TRY(qs_gptq_tile_load(prep, &t, W, row0, ts, lo, hi));
    qs_gptq_tile_solve(prep, &t, lo - ts, hi - ts);
    qs_gptq_tile_store(prep, &t, W, row0, ts, lo, hi, out);
  }
fail:
  qs_gptq_tile_free(&t);
  return status;
}

qs_status qs_gptq_quantize(float *W, int64_t N, int64_t K, const float *H, const struct qs_qopts *o,
                           const char *name, const struct qs_qrows *out, int32_t *g_idx, float *damp_used) {
  qs_status status = QS_OK;
  struct qs_gptq_prep prep = {0};
  QS_TRY(qs_gptq_prep_init(&prep, H, K, o, name));
  QS_TRY(qs_gptq_quantize_rows(&prep, W, N, 0, out));
  if (g_idx) qs_gptq_g_idx(&prep, g_idx);
  if (damp_used) *damp_used = prep.damp_used;
fail:
  qs_gptq_prep_free(&prep);
  return status;
}

// ---- the method row (method.h) ---------------------------------------------------------------------
//
// Fallback: when H + damp I is still not positive definite after the last damping raise (damp.h),
// the group's modules are quantized by RTN (qs_method_rtn: qs_grid_quantize_row_ref on each row,
// contiguous groups, no loss) and prep says so (info->rtn_fallback; the pipeline warns and reports
// damp -1). That cannot come from a Hessian 2/n X^T X of finite inputs in exact arithmetic (it is
// PSD, and the last attempt adds 10x (damp 0: 1x) its mean diagonal), but fp32 rounding, a Hessian
// from other hands (the method API takes any symmetric H) or a future one from low-precision
// products can be indefinite; quantizing the module plainly beats stopping a long run. A
// non-finite H is never a fallback: it is the error of qs_gptq_prep_init.

extern const struct qs_method qs_method_rtn;

struct gptq_state {
  struct qs_gptq_prep prep; // factored, unless rtn is set
  void *rtn;                // qs_method_rtn's state of the fallback, or NULL
};

static void gptq_free(void *state) {
  struct gptq_state *s = state;
  if (!s) return;
  qs_gptq_prep_free(&s->prep);
  if (s->rtn) qs_method_rtn.free(s->rtn);
  free(s);
}

static qs_status gptq_prep(const struct qs_qopts *o, const float *H, int64_t K, const char *name, void **state,
                           struct qs_qprep_info *info) {
  qs_status status = QS_OK;
  struct gptq_state *s = NULL;
  struct qs_qprep_info rtn_info;
  int factored = 0;
  if (!H) QS_FAIL(QS_ERR_ARG, "%s: gptq needs the Hessian of calibration data", name);
  QS_ALLOC(s, 1);
  QS_TRY(qs_gptq_prep_try_init(&s->prep, H, K, o, name, &factored));
  if (!factored) QS_TRY(qs_method_rtn.prep(o, H, K, name, &s->rtn, &rtn_info));
  *info = (struct qs_qprep_info){.damp = s->prep.damp_used, .damp_raises = s->prep.damp_raises,
                                 .rtn_fallback = !factored};
  *state = s;
  return QS_OK;
fail:
  gptq_free(s);
  return status;
}

static qs_status gptq_rows(const void *state, float *W, int64_t nrows, int64_t row0, const struct qs_qrows *out) {
  const struct gptq_state *s = state;
  if (s->rtn) return qs_method_rtn.rows(s->rtn, W, nrows, row0, out);
  return qs_gptq_quantize_rows(&s->prep, W, nrows, row0, out);
}

static void gptq_group_map(const void *state, int32_t *g_idx) {
  const struct gptq_state *s = state;
  if (s->rtn) qs_method_rtn.group_map(s->rtn, g_idx);
  else qs_gptq_g_idx(&s->prep, g_idx);
}

QS_METHOD_CUDA_DECL(gptq);
const struct qs_method qs_method_gptq = {
    .name = "gptq",
    .help = "GPTQ (Frantar et al. 2022): Hessian-weighted error feedback; needs --calib",
    .needs = QS_METHOD_CALIB | QS_METHOD_HESSIAN,
    .accepts = QS_MOPT_ACT_ORDER | QS_MOPT_DAMP | QS_MOPT_BLOCK,
    .prep = gptq_prep,
    .rows = gptq_rows,
    .group_map = gptq_group_map,
    .free = gptq_free,
    .cuda = QS_METHOD_CUDA(gptq),
};
