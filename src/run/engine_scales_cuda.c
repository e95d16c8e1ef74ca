// engine_scales_cuda.c — AWQ's scale search and fold on the cuda engine (engine.h scale_error and
// fold; the statistics pass is engine_cuda.c's cuda_stats). The references are the CPU engine's:
// cpu_scale_error (engine_cpu.c) and qs_layer_fold (model/model.c).
//
// Exactness for any rank count: the group's rows are cut into fixed tiles of QS_AWQ_CUDA_TILE rows
// per module (aligned to each module's row 0); a tile's every candidate is one call of
// qs_awq_scaled_error_cuda whichever rank runs it (fixed shapes: cuBLAS gives the same bits), its
// rows summed in order on the host; rank r runs tiles split_range(n_tiles, P, r); the tile sums are
// all-gathered and added in tile order. The fold is the same arithmetic on every rank (each holds
// the whole layer).
#include <stdlib.h>
#include <string.h>

#include "awq_fold.h"
#include "awq_scale_error.h"
#include "comm.h"
#include "qs_cuda.h"
#include "quant/awq.h"
#include "residual.h"
#include "run/engine_cuda.h"

// Rows per tile: every candidate of a tile in one GEMM of QS_AWQ_N_ALPHA · 256 rows (K = 28672:
// about 1.2 GiB of scratch).
#define QS_AWQ_CUDA_TILE 256

// The search's GEMM on TF32 tensor cores (1) or in fp32 (0): awq_scale_error.h. 0 costs about 8x
// the time of the GEMM (BENCHMARKS.md §11).
QS_PARAM(awq_search_tf32, "QS_AWQ_SEARCH_TF32", 1)

qs_status qs_cuda_scale_error(struct qs_qengine *base, struct qs_qrun *run, enum qs_group g, const struct qs_qopts *o,
                              const float *H, const float *S, int n, double *err) {
  qs_status status = QS_OK;
  struct qs_cuda_engine *e = (struct qs_cuda_engine *)base;
  const struct qs_layout_group *grp = &qs_layout_of(&run->m->cfg)->group[g];
  const int K = e->L.n_in[grp->first];
  cudaStream_t st = e->ctx.stream;
  long long tile_start[QS_LIN_COUNT + 1], b, t1;
  double *all = NULL, *herr = NULL;
  float *dS = NULL, *dW = NULL;
  double *derr = NULL;
  const long long nt = qs_scale_tiles(&run->m->cfg, g, QS_AWQ_CUDA_TILE, tile_start);
  QS_ALLOC(all, (size_t)nt * (size_t)n);
  QS_ALLOC(herr, (size_t)n * QS_AWQ_CUDA_TILE);
  qs_comm_split_range(nt, qs_comm_size(run->data), qs_comm_rank(run->data), &b, &t1);
  QS_CUDA_CHECK(cudaMalloc((void **)&dS, (size_t)n * K * sizeof(float)));
  QS_CUDA_CHECK(cudaMalloc((void **)&dW, (size_t)QS_AWQ_CUDA_TILE * K * sizeof(float)));
  QS_CUDA_CHECK(cudaMalloc((void **)&derr, (size_t)n * QS_AWQ_CUDA_TILE * sizeof(double)));
  QS_CUDA_CHECK(cudaMemcpyAsync(dS, S, (size_t)n * K * sizeof(float), cudaMemcpyHostToDevice, st));
  for (long long t = b; t < t1; t++) {
    int m = 0;
    while (t >= tile_start[m + 1]) m++;
    const int lin = grp->first + m;
    const int64_t r0 = (t - tile_start[m]) * QS_AWQ_CUDA_TILE, nr = QS_MIN(QS_AWQ_CUDA_TILE, e->L.n_out[lin] - r0);
    const size_t es = qs_dtype_size(e->L.raw_dt[lin]);
    QS_TRY(qs_convert_cuda((const char *)e->L.raw[lin] + (size_t)(r0 * K) * es, e->L.raw_dt[lin], dW, QS_DTYPE_F32,
                           (size_t)(nr * K), st));
    QS_TRY(qs_awq_scaled_error_cuda(&o->grid, H, K, dW, nr, dS, n, derr, (int)qs_param_awq_search_tf32(), e->ctx.blas,
                                    st));
    QS_CUDA_CHECK(cudaMemcpyAsync(herr, derr, (size_t)n * nr * sizeof(double), cudaMemcpyDeviceToHost, st));
    QS_CUDA_CHECK(cudaStreamSynchronize(st));
    for (int a = 0; a < n; a++) {
      double sum = 0;
      for (int64_t r = 0; r < nr; r++) sum += herr[a * nr + r];
      all[t * n + a] = sum;
    }
  }
  QS_TRY(qs_cuda_phase(e, QS_PH_SEARCH));
  QS_TRY(qs_scale_tiles_reduce(run->data, nt, n, all, err));
fail:
  cudaFree(dS);
  cudaFree(dW);
  cudaFree(derr);
  free(all);
  free(herr);
  return status;
}

// Linear i's stored weights as fp32 (the fold must not round them to the stored dtype): a new raw
// buffer; the old one stays as the compute-dtype copy when it was that (aliased), else is freed.
static qs_status raw_to_f32(struct qs_cuda_engine *e, int i) {
  qs_status status = QS_OK;
  struct qs_dlayer *L = &e->L;
  const size_t n = (size_t)L->n_out[i] * (size_t)L->n_in[i];
  float *f = NULL;
  if (L->raw_dt[i] == QS_DTYPE_F32) return QS_OK;
  QS_CUDA_CHECK(cudaMalloc((void **)&f, n * sizeof(float)));
  QS_TRY(qs_convert_cuda(L->raw[i], L->raw_dt[i], f, QS_DTYPE_F32, n, e->ctx.stream));
  if (L->w[i] == L->raw[i]) {
    L->cap_w[i] = L->cap_raw[i];
  } else {
    QS_CUDA_CHECK(cudaStreamSynchronize(e->ctx.stream));
    QS_CUDA_CHECK(cudaFree(L->raw[i]));
  }
  L->raw[i] = f;
  L->cap_raw[i] = n * sizeof(float);
  L->raw_dt[i] = QS_DTYPE_F32;
  return QS_OK;
fail:
  cudaFree(f);
  return status;
}

// The forward's copy of linear i (compute dtype) from its fp32 weights.
static qs_status refresh_w(struct qs_cuda_engine *e, int i) {
  struct qs_dlayer *L = &e->L;
  if (L->w[i] == L->raw[i]) return QS_OK;
  return qs_convert_cuda(L->raw[i], QS_DTYPE_F32, L->w[i], e->ctx.dt, (size_t)L->n_out[i] * (size_t)L->n_in[i],
                         e->ctx.stream);
}

// The folded bias of linear `prev` for the forward: the checkpoint's, divided by s as the CPU
// engine divides its fp32 bias, then in the compute dtype; s kept for the module's record.
static qs_status fold_bias(struct qs_cuda_engine *e, struct qs_qrun *run, int prev, const float *s) {
  qs_status status = QS_OK;
  const int64_t N = e->L.n_out[prev];
  char name[192];
  float *b = NULL;
  void *buf = NULL;
  QS_ALLOC(b, N);
  QS_ALLOC(buf, (size_t)N * 4);
  qs_layout_module_path(qs_layout_of(&run->m->cfg), run->layer, (enum qs_lin)prev, name, sizeof(name) - 8);
  strcat(name, ".bias");
  QS_TRY(qs_ckpt_read_f32(&run->m->ckpt, name, 1, (int64_t[]){N}, b));
  qs_awq_fold_ref(b, N, 1, s, QS_AWQ_FOLD_ROWS_DIV);
  qs_convert_from_f32(b, e->ctx.dt, buf, (size_t)N);
  QS_CUDA_CHECK(cudaMemcpyAsync(e->L.b[prev], buf, (size_t)N * qs_dtype_size(e->ctx.dt), cudaMemcpyHostToDevice,
                                e->ctx.stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(e->ctx.stream));
  free(e->out_scale[prev]);
  QS_ALLOC(e->out_scale[prev], N);
  memcpy(e->out_scale[prev], s, (size_t)N * sizeof(float));
fail:
  free(b);
  free(buf);
  return status;
}

qs_status qs_cuda_fold(struct qs_qengine *base, struct qs_qrun *run, enum qs_group g, const float *s,
                       qs_dtype norm_dtype, float *norm_out, float *H) {
  qs_status status = QS_OK;
  struct qs_cuda_engine *e = (struct qs_cuda_engine *)base;
  const struct qs_config *cfg = &run->m->cfg;
  const struct qs_layout *lay = qs_layout_of(cfg);
  const struct qs_layout_group *grp = &lay->group[g];
  const int prev = qs_layout_prev_lin(lay, cfg, g), K = e->L.n_in[grp->first];
  float *norm = NULL, *ds = NULL, *hn = NULL;
  if (grp->prev_norm && !strcmp(grp->prev_norm, "input_layernorm")) norm = e->L.attn_norm;
  if (grp->prev_norm && !strcmp(grp->prev_norm, "post_attention_layernorm")) norm = e->L.mlp_norm;
  if (prev < 0 && !norm) QS_FAIL(QS_ERR_INTERNAL, "fold: %s has no op to fold scales into", grp->input);
  QS_CUDA_CHECK(cudaMalloc((void **)&ds, (size_t)K * sizeof(float)));
  QS_CUDA_CHECK(cudaMemcpyAsync(ds, s, (size_t)K * sizeof(float), cudaMemcpyHostToDevice, e->ctx.stream));
  for (int i = grp->first; i < grp->first + grp->count; i++) {
    QS_TRY(raw_to_f32(e, i));
    QS_TRY(qs_awq_fold_cuda(e->L.raw[i], e->L.n_out[i], K, ds, QS_AWQ_FOLD_COLS_MUL, e->ctx.stream));
    QS_TRY(refresh_w(e, i));
  }
  if (prev >= 0) {
    QS_TRY(raw_to_f32(e, prev));
    QS_TRY(qs_awq_fold_cuda(e->L.raw[prev], K, e->L.n_in[prev], ds, QS_AWQ_FOLD_ROWS_DIV, e->ctx.stream));
    QS_TRY(refresh_w(e, prev));
    if (e->L.b[prev]) QS_TRY(fold_bias(e, run, prev, s));
  } else { // the norm on the host, exactly as qs_layer_fold rounds it to the checkpoint's dtype
    QS_ALLOC(hn, K);
    QS_CUDA_CHECK(cudaMemcpyAsync(hn, norm, (size_t)K * sizeof(float), cudaMemcpyDeviceToHost, e->ctx.stream));
    QS_CUDA_CHECK(cudaStreamSynchronize(e->ctx.stream));
    for (int k = 0; k < K; k++) {
      float v = hn[k] / s[k];
      uint8_t buf[8];
      qs_convert_from_f32(&v, norm_dtype, buf, 1);
      qs_convert_to_f32(buf, norm_dtype, &hn[k], 1);
      if (norm_out) norm_out[k] = hn[k];
    }
    QS_CUDA_CHECK(cudaMemcpyAsync(norm, hn, (size_t)K * sizeof(float), cudaMemcpyHostToDevice, e->ctx.stream));
  }
  if (H) { // the Hessian of the divided input (engine.h), in the reference's order: rows, then columns
    QS_TRY(qs_awq_fold_cuda(H, K, K, ds, QS_AWQ_FOLD_ROWS_DIV, e->ctx.stream));
    QS_TRY(qs_awq_fold_cuda(H, K, K, ds, QS_AWQ_FOLD_COLS_DIV, e->ctx.stream));
  }
  QS_TRY(qs_cuda_phase(e, QS_PH_SEARCH));
fail:
  cudaFree(ds);
  free(hn);
  return status;
}
