// gptq_cuda.c — the GPU entries of the GPTQ method (method.h): the factor with cuSOLVER
// (kernels/gptq_factor.h) and the fused column solve with per-tile lazy updates
// (kernels/gptq_solve.h). The spec is the CPU path of gptq.c.
#include <stdlib.h>

#include "gptq_factor.h"
#include "gptq_solve.h"
#include "qs_cuda.h"
#include "quant/gptq.h"

static qs_status gptq_cuda_prep(struct qs_cuda_ctx *c, const struct qs_qopts *o, const float *H, int64_t K,
                                const char *name, void **state, struct qs_qprep_info *info) {
  qs_status status = QS_OK;
  struct qs_gptq_prep_cuda *prep = NULL;
  if (!H) QS_FAIL(QS_ERR_ARG, "%s: gptq needs the Hessian of calibration data", name);
  if (o->grid.kind != QS_GRID_INT)
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: GPTQ into llama.cpp's block grids runs on the CPU engine (--device cpu)", name);
  QS_ALLOC(prep, 1);
  QS_TRY(qs_gptq_prep_cuda_init(prep, H, K, o, o->factor_f64, name, c->solver, c->stream));
  *info = (struct qs_qprep_info){.damp = prep->damp_used, .damp_raises = prep->damp_raises};
  *state = prep;
  return QS_OK;
fail:
  free(prep);
  return status;
}

static qs_status gptq_cuda_rows(struct qs_cuda_ctx *c, const void *state, float *W, int64_t nrows, int64_t row_tile,
                                const struct qs_qrows *out) {
  return qs_gptq_quantize_tiled_cuda(state, W, nrows, row_tile, out->codes, out->scales, out->zeros, out->loss, c->blas,
                                     c->stream);
}

// The CPU's g_idx rule on a host view of the device prep (same perm, same options).
static void gptq_cuda_group_map(const void *state, int32_t *g_idx) {
  const struct qs_gptq_prep_cuda *p = state;
  struct qs_gptq_prep view = {.K = p->K, .opts = p->opts, .perm = p->perm_host};
  qs_gptq_g_idx(&view, g_idx);
}

static void gptq_cuda_free(void *state) {
  if (!state) return;
  qs_gptq_prep_cuda_free(state);
  free(state);
}

QS_METHOD_CUDA_DECL(gptq);
const struct qs_method_cuda qs_method_gptq_cuda = {
    .prep = gptq_cuda_prep, .rows = gptq_cuda_rows, .group_map = gptq_cuda_group_map, .free = gptq_cuda_free};
