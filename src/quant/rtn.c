// rtn.c — round-to-nearest (RTN): each group's grid found on the original weights and every weight
// rounded to it, no error feedback (the method row of method.h). On llama.cpp's block grids it is
// llama.cpp's own quantizer (grid_ggml.h), optionally weighted by an importance vector (--imatrix):
// what llama-quantize writes. The GPU entries (rtn_cuda.c) run the same INT grid code (grid_int.h)
// in a kernel: identical bytes.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/parallel.h"
#include "quant/imatrix.h"
#include "quant/method.h"

struct rtn_state {
  struct qs_qopts o;
  int64_t K;
  float *imp; // [K] importance, or NULL
};

static void rtn_free(void *state) {
  struct rtn_state *s = state;
  if (!s) return;
  free(s->imp);
  free(s);
}

// The state is the options, the row length and the group's importance (QS_IMP_CALIB: from H; the
// weights themselves never depend on H).
static qs_status rtn_prep(const struct qs_qopts *o, const float *H, int64_t K, const char *name, void **state,
                          struct qs_qprep_info *info) {
  qs_status status = QS_OK;
  struct rtn_state *s = NULL;
  QS_TRY(qs_qopts_check(o, K, name));
  QS_ALLOC(s, 1);
  *s = (struct rtn_state){.o = *o, .K = K};
  if (o->importance == QS_IMP_CALIB) {
    if (!H) QS_FAIL(QS_ERR_ARG, "%s: --imatrix from calibration needs --calib", name);
    QS_ALLOC(s->imp, K);
    for (int64_t k = 0; k < K; k++)
      s->imp[k] = qs_imatrix_sum2_from_hessian(H[k * K + k], o->imp_count) / o->imp_count;
  } else if (o->importance == QS_IMP_TABLE) {
    const float *v = qs_imatrix_find(o->imatrix, name, K, &status);
    QS_TRY(status);
    if (v) {
      QS_ALLOC(s->imp, K);
      memcpy(s->imp, v, (size_t)K * sizeof(float));
    }
  }
  *info = (struct qs_qprep_info){0};
  *state = s;
  return QS_OK;
fail:
  rtn_free(s);
  return status;
}

struct rtn_job {
  const struct rtn_state *s;
  float *W;
  const struct qs_qrows *out;
};

// Rows [r0, r1) of the block: each row on its own, so the bytes do not depend on the split.
static void rtn_rows_range(void *arg, int64_t r0, int64_t r1) {
  const struct rtn_job *j = arg;
  const struct rtn_state *s = j->s;
  const int64_t K = s->K, G = qs_grid_n_groups(&s->o.grid, K), C = qs_grid_row_codes(&s->o.grid, K);
  for (int64_t r = r0; r < r1; r++) {
    float *w = j->W + r * K;
    qs_grid_quantize_row_ref(&s->o.grid, w, s->imp, K, j->out->codes + r * C, j->out->scales + r * G,
                             j->out->zeros + r * G, w);
    if (j->out->loss) j->out->loss[r] = NAN;
  }
}

static qs_status rtn_rows(const void *state, float *W, int64_t nrows, int64_t row0, const struct qs_qrows *out) {
  qs_status status = QS_OK;
  const struct rtn_state *s = state;
  const int64_t K = s->K;
  for (int64_t i = 0; i < nrows * K; i++)
    if (!isfinite(W[i]))
      QS_FAIL(QS_ERR_NUMERIC, "rtn: weight [%lld, %lld] is %g", (long long)(row0 + i / K), (long long)(i % K), (double)W[i]);
  // llama.cpp's block searches cost ~1-10 us per 256 values: the rows go to the host's threads
  struct rtn_job job = {.s = s, .W = W, .out = out};
  qs_parallel_for(nrows, 16, rtn_rows_range, &job);
fail:
  return status;
}

static void rtn_group_map(const void *state, int32_t *g_idx) {
  const struct rtn_state *s = state;
  qs_grid_g_idx_contiguous(&s->o.grid, s->K, g_idx);
}

QS_METHOD_CUDA_DECL(rtn);
const struct qs_method qs_method_rtn = {
    .name = "rtn",
    .help = "round to nearest on each group's min/max grid, or llama.cpp's own quantizer on its block grids "
            "(--format gguf:TYPE); --calib optional (the report's output error; --imatrix)",
    .needs = 0,
    .accepts = 0,
    .prep = rtn_prep,
    .rows = rtn_rows,
    .group_map = rtn_group_map,
    .free = rtn_free,
    .cuda = QS_METHOD_CUDA(rtn),
};
