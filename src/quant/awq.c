// awq.c — AWQ's references (awq.h) and its two method rows (method.h):
//   awq       the layer's scales (run/pipeline.c searches and folds them before the groups are
//             quantized), then each module's rows by clipped RTN on the scaled weights; every
//             input from the full-precision layer (method.h QS_METHOD_FP_INPUTS), as AutoAWQ and
//             llm-compressor's AWQModifier compute them: one forward per layer;
//   awq+gptq  the same scales, then GPTQ on the scaled weights (its prep and rows as they are).
// Both default to an asymmetric grid with zero points (AutoAWQ's zero_point=True; --sym allowed).
#include "quant/awq.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/parallel.h"
#include "quant/method.h"

void qs_awq_scales_ref(float alpha, const float *xabs, int64_t K, float *s) {
  float mx = 0.0f, mn = INFINITY;
  for (int64_t k = 0; k < K; k++) {
    float v = powf(xabs[k], alpha);
    v = v > 1e-4f ? v : 1e-4f; // AutoAWQ's clamp(min=1e-4): a silent channel keeps a usable scale
    s[k] = v;
    mx = v > mx ? v : mx;
    mn = v < mn ? v : mn;
  }
  float norm = sqrtf(mx * mn); // AutoAWQ: scales / (scales.max() * scales.min()).sqrt()
  for (int64_t k = 0; k < K; k++) s[k] /= norm;
}

qs_status qs_awq_scaled_error_ref(const struct qs_grid *g, const float *H, int64_t K, const float *W, int64_t nrows,
                                  const float *S, int n, double *err) {
  qs_status status = QS_OK;
  const int64_t G = qs_grid_n_groups(g, K), C = qs_grid_row_codes(g, K);
  float *D = NULL, *DH = NULL, *ws = NULL, *sc = NULL;
  uint8_t *codes = NULL, *zeros = NULL;
  const int64_t M = nrows * n;
  if (M <= 0) return QS_OK;
  QS_ALLOC(D, M * K);
  QS_ALLOC(DH, M * K);
  QS_ALLOC(ws, K);
  QS_ALLOC(sc, G);
  QS_ALLOC(codes, C);
  QS_ALLOC(zeros, G);
  for (int64_t i = 0; i < M; i++) {
    const float *w = W + (i % nrows) * K, *s = S + (i / nrows) * K;
    float *d = D + i * K;
    for (int64_t k = 0; k < K; k++) ws[k] = w[k] * s[k];
    qs_grid_quantize_row_ref(g, ws, NULL, K, codes, sc, zeros, ws);
    for (int64_t k = 0; k < K; k++) d[k] = w[k] - ws[k] / s[k];
  }
  // DH = D·H (H symmetric), then err[i] = Σ_k D[i,k]·DH[i,k] in double
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)K, (int)K, 1.0f, D, (int)K, H, (int)K, 0.0f,
              DH, (int)K);
  for (int64_t r = 0; r < M; r++) {
    double a = 0;
    for (int64_t k = 0; k < K; k++) a += (double)D[r * K + k] * DH[r * K + k];
    err[r] = a;
  }
fail:
  free(D);
  free(DH);
  free(ws);
  free(sc);
  free(codes);
  free(zeros);
  return status;
}

void qs_awq_xabs_add_ref(const float *X, int64_t T, int64_t K, float *sum) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t k = 0; k < K; k++) sum[k] += fabsf(X[t * K + k]);
}

void qs_awq_fold_ref(float *W, int64_t rows, int64_t K, const float *s, int mode) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t k = 0; k < K; k++) {
      if (mode == QS_AWQ_FOLD_ROWS_DIV) W[r * K + k] /= s[r];
      else if (mode == QS_AWQ_FOLD_COLS_DIV) W[r * K + k] /= s[k];
      else W[r * K + k] *= s[k];
    }
}

void qs_awq_diag_blocks(const struct qs_grid *g, const float *H, int64_t K, float *Hb) {
  const int64_t gs = g->group_size > 0 ? g->group_size : K, G = qs_grid_n_groups(g, K);
  for (int64_t gi = 0; gi < G; gi++) {
    const int64_t c0 = gi * gs, n = QS_MIN(gs, K - c0);
    float *b = Hb + gi * gs * gs;
    for (int64_t i = 0; i < n; i++) memcpy(b + i * n, H + (c0 + i) * K + c0, (size_t)n * sizeof(float));
  }
}

// The parameters of x [n] clamped to [-m, m] (m = INFINITY: unclamped), and the values into q.
static struct qs_qparams clip_params(const struct qs_grid *g, const float *x, int64_t n, float m, float *q,
                                     uint8_t *codes) {
  const float maxq = (float)((1 << g->bits) - 1);
  float mn = 0.0f, mx = 0.0f;
  for (int64_t i = 0; i < n; i++) {
    float v = x[i] < -m ? -m : (x[i] > m ? m : x[i]);
    qs_grid_int_minmax(v, &mn, &mx);
  }
  struct qs_qparams p = qs_grid_int_params(mn, mx, g->bits, g->sym, g->min_zero, g->scale_dtype);
  for (int64_t i = 0; i < n; i++) {
    float v = x[i] < -m ? -m : (x[i] > m ? m : x[i]);
    float c = qs_grid_int_code(p, v, maxq);
    if (codes) codes[i] = (uint8_t)c;
    q[i] = qs_grid_int_value(p, c);
  }
  return p;
}

double qs_awq_clip_row_ref(const struct qs_grid *g, const float *Hb, int clip, float *w, int64_t K, uint8_t *codes,
                           float *scales, uint8_t *zeros) {
  const int64_t gs = g->group_size > 0 ? g->group_size : K, G = qs_grid_n_groups(g, K);
  const int nc = clip ? QS_AWQ_N_CLIP : 1;
  // the candidates' values and differences of one group, [nc, gs] each, and D·B
  float *q = malloc((size_t)(3 * nc + 1) * (size_t)gs * sizeof(float)), *d = q + nc * gs, *dB = d + nc * gs,
        *best_q = dB + nc * gs;
  double total = 0;
  if (!q) return NAN; // the caller checks the rows' results (a NaN loss is reported)
  for (int64_t gi = 0; gi < G; gi++) {
    const int64_t c0 = gi * gs, n = QS_MIN(gs, K - c0);
    float *x = w + c0, amax = 0.0f;
    const float *B = Hb ? Hb + gi * gs * gs : NULL;
    for (int64_t i = 0; i < n; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    float best_m = INFINITY;
    if (B) {
      // every shrink ratio's differences, then their errors d B dᵀ in one product (fixed shapes per
      // group: a row's result does not depend on which rank or thread computes it)
      for (int i = 0; i < nc; i++) {
        float m = i ? amax * (1.0f - (float)i / 20.0f) : INFINITY;
        clip_params(g, x, n, m, q + i * n, NULL);
        for (int64_t j = 0; j < n; j++) d[i * n + j] = x[j] - q[i * n + j];
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nc, (int)n, (int)n, 1.0f, d, (int)n, B, (int)n, 0.0f, dB,
                  (int)n);
      double best = INFINITY;
      for (int i = 0; i < nc; i++) {
        double e = 0;
        for (int64_t j = 0; j < n; j++) e += (double)d[i * n + j] * dB[i * n + j];
        if (e < best) best = e, best_m = i ? amax * (1.0f - (float)i / 20.0f) : INFINITY;
      }
      total += best;
    }
    struct qs_qparams p = clip_params(g, x, n, best_m, best_q, codes + c0);
    scales[gi] = p.scale;
    zeros[gi] = (uint8_t)p.zero;
    memcpy(x, best_q, (size_t)n * sizeof(float));
  }
  free(q);
  return total;
}

// ---- the `awq` method: clipped RTN of the scaled weights -----------------------------------------------

struct awq_state {
  struct qs_qopts o;
  int64_t K;
  int clip;  // 0 for q_proj / k_proj
  float *Hb; // H's diagonal blocks (qs_awq_diag_blocks)
};

static void awq_free(void *state) {
  struct awq_state *s = state;
  if (!s) return;
  free(s->Hb);
  free(s);
}

static qs_status awq_prep(const struct qs_qopts *o, const float *H, int64_t K, const char *name, void **state,
                          struct qs_qprep_info *info) {
  qs_status status = QS_OK;
  struct awq_state *s = NULL;
  QS_TRY(qs_qopts_check(o, K, name));
  if (o->grid.kind != QS_GRID_INT)
    QS_FAIL(QS_ERR_ARG, "%s: awq quantizes on integer grids (--bits 2..8), not llama.cpp's block types", name);
  if (!H) QS_FAIL(QS_ERR_ARG, "%s: awq needs calibration data (--calib)", name);
  const int64_t gs = o->grid.group_size > 0 ? o->grid.group_size : K, G = qs_grid_n_groups(&o->grid, K);
  QS_ALLOC(s, 1);
  *s = (struct awq_state){.o = *o, .K = K, .clip = !qs_str_has_suffix(name, "q_proj") && !qs_str_has_suffix(name, "k_proj")};
  QS_ALLOC(s->Hb, G * gs * gs);
  qs_awq_diag_blocks(&o->grid, H, K, s->Hb);
  *info = (struct qs_qprep_info){0};
  *state = s;
  return QS_OK;
fail:
  awq_free(s);
  return status;
}

struct awq_job {
  const struct awq_state *s;
  float *W;
  const struct qs_qrows *out;
};

static void awq_rows_range(void *arg, int64_t r0, int64_t r1) {
  const struct awq_job *j = arg;
  const struct awq_state *s = j->s;
  const int64_t K = s->K, G = qs_grid_n_groups(&s->o.grid, K);
  for (int64_t r = r0; r < r1; r++) {
    double e = qs_awq_clip_row_ref(&s->o.grid, s->Hb, s->clip, j->W + r * K, K, j->out->codes + r * K,
                                   j->out->scales + r * G, j->out->zeros + r * G);
    if (j->out->loss) j->out->loss[r] = (float)(e / 2.0); // GPTQ's loss convention: Σ (w-q)H(w-q)ᵀ / 2
  }
}

static qs_status awq_rows(const void *state, float *W, int64_t nrows, int64_t row0, const struct qs_qrows *out) {
  qs_status status = QS_OK;
  const struct awq_state *s = state;
  const int64_t K = s->K;
  for (int64_t i = 0; i < nrows * K; i++)
    if (!isfinite(W[i]))
      QS_FAIL(QS_ERR_NUMERIC, "awq: weight [%lld, %lld] is %g", (long long)(row0 + i / K), (long long)(i % K),
              (double)W[i]);
  struct awq_job job = {.s = s, .W = W, .out = out};
  qs_parallel_for(nrows, 8, awq_rows_range, &job);
fail:
  return status;
}

static void awq_group_map(const void *state, int32_t *g_idx) {
  const struct awq_state *s = state;
  qs_grid_g_idx_contiguous(&s->o.grid, s->K, g_idx);
}

QS_METHOD_CUDA_DECL(awq);
const struct qs_method qs_method_awq = {
    .name = "awq",
    .help = "AWQ (Lin et al. 2024): per-channel scales from the activations, folded into the preceding norm or "
            "linear, then clipped round-to-nearest; needs --calib; asymmetric by default",
    .needs = QS_METHOD_CALIB | QS_METHOD_HESSIAN | QS_METHOD_SCALES | QS_METHOD_FP_INPUTS,
    .accepts = 0,
    .asym = 1,
    .prep = awq_prep,
    .rows = awq_rows,
    .group_map = awq_group_map,
    .free = awq_free,
    .cuda = QS_METHOD_CUDA(awq),
};

// ---- `awq+gptq`: AWQ's scales, then GPTQ's solve on the scaled weights ---------------------------------

extern const struct qs_method qs_method_gptq;
QS_METHOD_CUDA_DECL(gptq);

static qs_status awq_gptq_prep(const struct qs_qopts *o, const float *H, int64_t K, const char *name, void **state,
                               struct qs_qprep_info *info) {
  return qs_method_gptq.prep(o, H, K, name, state, info);
}
static qs_status awq_gptq_rows(const void *state, float *W, int64_t nrows, int64_t row0, const struct qs_qrows *out) {
  return qs_method_gptq.rows(state, W, nrows, row0, out);
}
static void awq_gptq_group_map(const void *state, int32_t *g_idx) { qs_method_gptq.group_map(state, g_idx); }
static void awq_gptq_free(void *state) { qs_method_gptq.free(state); }

const struct qs_method qs_method_awq_gptq = {
    .name = "awq+gptq",
    .help = "AWQ's scales folded as --method awq does, then GPTQ on the scaled weights; needs --calib; asymmetric "
            "by default",
    .needs = QS_METHOD_CALIB | QS_METHOD_HESSIAN | QS_METHOD_SCALES,
    .accepts = QS_MOPT_ACT_ORDER | QS_MOPT_DAMP | QS_MOPT_BLOCK,
    .asym = 1,
    .prep = awq_gptq_prep,
    .rows = awq_gptq_rows,
    .group_map = awq_gptq_group_map,
    .free = awq_gptq_free,
    .cuda = QS_METHOD_CUDA(gptq), // GPTQ's GPU entries as they are (the engine searches and folds the scales)
};
