// awq_cuda.c — the GPU entries of the `awq` method (method.h): clipped round-to-nearest of the
// scaled weights (kernels/awq_clip.h), the spec being awq.c's rows. (`awq+gptq` uses GPTQ's GPU
// entries as they are; the scale search and the fold are the engine's: run/engine_scales_cuda.c.)
#include <stdlib.h>

#include "awq_clip.h"
#include "qs_cuda.h"
#include "quant/awq.h"
#include "quant/method.h"

struct awq_cuda_state {
  struct qs_grid grid;
  int64_t K;
  int clip;        // 0 for q_proj / k_proj (awq.h)
  const float *H;  // the group's Hessian (device), alive while the state is (the pipeline frees it after)
};

static qs_status awq_cuda_prep(struct qs_cuda_ctx *c, const struct qs_qopts *o, const float *H, int64_t K,
                               const char *name, void **state, struct qs_qprep_info *info) {
  qs_status status = QS_OK;
  struct awq_cuda_state *s = NULL;
  (void)c;
  QS_TRY(qs_qopts_check(o, K, name));
  if (o->grid.kind != QS_GRID_INT)
    QS_FAIL(QS_ERR_ARG, "%s: awq quantizes on integer grids (--bits 2..8), not llama.cpp's block types", name);
  if (!H) QS_FAIL(QS_ERR_ARG, "%s: awq needs calibration data (--calib)", name);
  QS_ALLOC(s, 1);
  *s = (struct awq_cuda_state){.grid = o->grid, .K = K, .H = H,
                               .clip = !qs_str_has_suffix(name, "q_proj") && !qs_str_has_suffix(name, "k_proj")};
  *info = (struct qs_qprep_info){0};
  *state = s;
fail:
  return status;
}

static qs_status awq_cuda_rows(struct qs_cuda_ctx *c, const void *state, float *W, int64_t nrows, int64_t row_tile,
                               const struct qs_qrows *out) {
  const struct awq_cuda_state *s = state;
  (void)row_tile; // rows are independent
  return qs_awq_clip_rows_cuda(&s->grid, s->H, s->K, s->clip ? QS_AWQ_N_CLIP : 1, W, nrows, out->codes, out->scales, out->zeros, out->loss,
                               c->stream);
}

static void awq_cuda_group_map(const void *state, int32_t *g_idx) {
  const struct awq_cuda_state *s = state;
  qs_grid_g_idx_contiguous(&s->grid, s->K, g_idx);
}

static void awq_cuda_free(void *state) { free(state); }

QS_METHOD_CUDA_DECL(awq);
const struct qs_method_cuda qs_method_awq_cuda = {
    .prep = awq_cuda_prep, .rows = awq_cuda_rows, .group_map = awq_cuda_group_map, .free = awq_cuda_free};
