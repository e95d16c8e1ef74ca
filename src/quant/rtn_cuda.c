// rtn_cuda.c — the GPU entries of RTN (method.h): kernels/rtn.h runs the grid code of the CPU path
// (rtn.c), so both give the same bytes.
#include <stdlib.h>

#include "qs_cuda.h"
#include "quant/method.h"
#include "rtn.h"

struct rtn_cuda_state {
  struct qs_grid grid;
  int64_t K;
};

static qs_status rtn_cuda_prep(struct qs_cuda_ctx *c, const struct qs_qopts *o, const float *H, int64_t K,
                               const char *name, void **state, struct qs_qprep_info *info) {
  qs_status status = QS_OK;
  struct rtn_cuda_state *s = NULL;
  (void)c, (void)H;
  QS_TRY(qs_qopts_check(o, K, name));
  if (o->grid.kind != QS_GRID_INT) // llama.cpp's block quantizers have C references only
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: llama.cpp block grids (--format gguf) run on the CPU engine: use --device cpu", name);
  QS_ALLOC(s, 1);
  *s = (struct rtn_cuda_state){.grid = o->grid, .K = K};
  *info = (struct qs_qprep_info){0};
  *state = s;
fail:
  return status;
}

static qs_status rtn_cuda_rows(struct qs_cuda_ctx *c, const void *state, float *W, int64_t nrows, int64_t row_tile,
                               const struct qs_qrows *out) {
  qs_status status = QS_OK;
  const struct rtn_cuda_state *s = state;
  (void)row_tile; // rows are independent
  QS_TRY(qs_rtn_quantize_cuda(&s->grid, W, nrows, s->K, 0, out->codes, out->scales, out->zeros, c->stream));
  if (out->loss) QS_CUDA_CHECK(cudaMemsetAsync(out->loss, 0xFF, (size_t)nrows * sizeof(float), c->stream)); // NaN
fail:
  return status;
}

static void rtn_cuda_group_map(const void *state, int32_t *g_idx) {
  const struct rtn_cuda_state *s = state;
  qs_grid_g_idx_contiguous(&s->grid, s->K, g_idx);
}

static void rtn_cuda_free(void *state) { free(state); }

QS_METHOD_CUDA_DECL(rtn);
const struct qs_method_cuda qs_method_rtn_cuda = {
    .prep = rtn_cuda_prep, .rows = rtn_cuda_rows, .group_map = rtn_cuda_group_map, .free = rtn_cuda_free};
