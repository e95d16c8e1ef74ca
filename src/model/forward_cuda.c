// forward_cuda.c — the decoder layer on the GPU (contract in forward_cuda.h): context, device
// layer upload, per-sequence steps. The weight reader is wstream_cuda.c.
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "embedding.h"
#include "model/forward_cuda.h"
#include "linear.h"
#include "model/ops.h"
#include "qs_cuda.h"
#include "residual.h"
#include "rmsnorm.h"
#include "rope.h"
#include "swiglu.h"

qs_status qs_dctx_init(struct qs_dctx *c, const struct qs_model *m, qs_dtype dt) {
  qs_status status = QS_OK;
  memset(c, 0, sizeof(*c));
  c->cfg = &m->cfg;
  c->dt = dt;
  QS_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
  QS_CUBLAS_CHECK(cublasCreate(&c->blas));
  QS_CUBLAS_CHECK(cublasSetStream(c->blas, c->stream));
  QS_CUBLAS_CHECK(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH)); // no TF32 anywhere
  QS_CUSOLVER_CHECK(cusolverDnCreate(&c->solver));
  QS_CUSOLVER_CHECK(cusolverDnSetStream(c->solver, c->stream));
  size_t nf = (size_t)m->cfg.head_dim / 2;
  QS_CUDA_CHECK(cudaMalloc((void **)&c->inv_freq, nf * sizeof(float)));
  QS_CUDA_CHECK(cudaMemcpy(c->inv_freq, m->rope_inv_freq, nf * sizeof(float), cudaMemcpyHostToDevice));
  qs_dctx_sample_memory(c);
fail:
  return status;
}

void qs_dctx_free(struct qs_dctx *c) {
  if (c->stream) cudaStreamSynchronize(c->stream);
  cudaFree(c->inv_freq);
  if (c->solver) cusolverDnDestroy(c->solver);
  if (c->blas) cublasDestroy(c->blas);
  if (c->stream) cudaStreamDestroy(c->stream);
  memset(c, 0, sizeof(*c));
}

void qs_dctx_sample_memory(struct qs_dctx *c) {
  size_t fr = 0, total = 0;
  if (cudaMemGetInfo(&fr, &total) != cudaSuccess) return;
  long long used = (long long)(total - fr);
  if (used > c->peak) c->peak = used;
}

void qs_dlayer_shapes(const struct qs_config *cfg, int *n_out, int *n_in) {
  for (int i = 0; i < QS_LIN_COUNT; i++) {
    int bias;
    qs_layout_shape(cfg, (enum qs_lin)i, &n_out[i], &n_in[i], &bias);
  }
}

// (Re)allocates *p to at least `bytes` device bytes.
static qs_status dev_reserve(void **p, size_t *cap, size_t bytes) {
  qs_status status = QS_OK;
  if (bytes <= *cap && *p) return QS_OK;
  QS_CUDA_CHECK(cudaFree(*p));
  *p = NULL;
  *cap = 0;
  QS_CUDA_CHECK(cudaMalloc(p, bytes ? bytes : 1));
  *cap = bytes;
fail:
  return status;
}

// Host slot tensor i -> device dst of dtype ddt (n elements): a direct async copy when the dtypes
// agree, else through `stage` (device, at least the stored bytes) and a conversion.
static qs_status upload_tensor(struct qs_dctx *c, const struct qs_hslot *s, int i, void *dst, qs_dtype ddt,
                               size_t n, void *stage) {
  qs_status status = QS_OK;
  const void *src = (const char *)s->pinned + s->t[i].off;
  if (s->t[i].dt == ddt) {
    QS_CUDA_CHECK(cudaMemcpyAsync(dst, src, s->t[i].bytes, cudaMemcpyHostToDevice, c->stream));
  } else {
    QS_CUDA_CHECK(cudaMemcpyAsync(stage, src, s->t[i].bytes, cudaMemcpyHostToDevice, c->stream));
    QS_TRY(qs_convert_cuda(stage, s->t[i].dt, dst, ddt, n, c->stream));
  }
fail:
  return status;
}

static qs_status upload_linear(struct qs_dctx *c, struct qs_hslot *s, struct qs_dlayer *L, int i, void **stage,
                               size_t *stage_cap) {
  qs_status status = QS_OK;
  size_t n = (size_t)L->n_out[i] * (size_t)L->n_in[i];
  qs_dtype sdt = s->t[QS_LT_W + i].dt;
  L->raw_dt[i] = sdt;
  if (L->w[i] == L->raw[i]) L->w[i] = NULL; // an alias of the raw buffer, which may move
  QS_TRY(dev_reserve(&L->raw[i], &L->cap_raw[i], s->t[QS_LT_W + i].bytes));
  QS_CUDA_CHECK(cudaMemcpyAsync(L->raw[i], (char *)s->pinned + s->t[QS_LT_W + i].off, s->t[QS_LT_W + i].bytes,
                                cudaMemcpyHostToDevice, c->stream));
  if (sdt == c->dt) {
    QS_CUDA_CHECK(cudaFree(L->w[i]));
    L->w[i] = L->raw[i];
    L->cap_w[i] = 0;
  } else {
    QS_TRY(dev_reserve(&L->w[i], &L->cap_w[i], n * qs_dtype_size(c->dt)));
    QS_TRY(qs_convert_cuda(L->raw[i], sdt, L->w[i], c->dt, n, c->stream));
  }
  if (s->t[QS_LT_B + i].bytes) {
    size_t cap = L->b[i] ? (size_t)L->n_out[i] * qs_dtype_size(c->dt) : 0;
    QS_TRY(dev_reserve(&L->b[i], &cap, (size_t)L->n_out[i] * qs_dtype_size(c->dt)));
    QS_TRY(dev_reserve(stage, stage_cap, s->t[QS_LT_B + i].bytes));
    QS_TRY(upload_tensor(c, s, QS_LT_B + i, L->b[i], c->dt, (size_t)L->n_out[i], *stage));
  }
fail:
  return status;
}

qs_status qs_dlayer_upload(struct qs_dctx *c, struct qs_hslot *s, struct qs_dlayer *L) {
  qs_status status = QS_OK;
  const int H = c->cfg->hidden;
  size_t stage_cap = 0, norm_cap = 0;
  void *stage = NULL;
  qs_dlayer_shapes(c->cfg, L->n_out, L->n_in);
  for (int i = 0; i < QS_LIN_COUNT; i++) QS_TRY(upload_linear(c, s, L, i, &stage, &stage_cap));
  norm_cap = L->attn_norm ? (size_t)H * sizeof(float) : 0;
  QS_TRY(dev_reserve((void **)&L->attn_norm, &norm_cap, (size_t)H * sizeof(float)));
  norm_cap = L->mlp_norm ? (size_t)H * sizeof(float) : 0;
  QS_TRY(dev_reserve((void **)&L->mlp_norm, &norm_cap, (size_t)H * sizeof(float)));
  QS_TRY(dev_reserve(&stage, &stage_cap, QS_MAX(s->t[QS_LT_ATTN_NORM].bytes, s->t[QS_LT_MLP_NORM].bytes)));
  QS_TRY(upload_tensor(c, s, QS_LT_ATTN_NORM, L->attn_norm, QS_DTYPE_F32, (size_t)H, stage));
  QS_TRY(upload_tensor(c, s, QS_LT_MLP_NORM, L->mlp_norm, QS_DTYPE_F32, (size_t)H, stage));
  QS_CUDA_CHECK(cudaEventRecord(s->uploaded, c->stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(c->stream)); // the stage buffer is freed below
fail:
  cudaFree(stage);
  return status;
}

void qs_dlayer_free(struct qs_dlayer *L) {
  for (int i = 0; i < QS_LIN_COUNT; i++) {
    if (L->w[i] != L->raw[i]) cudaFree(L->w[i]);
    cudaFree(L->raw[i]);
    cudaFree(L->b[i]);
  }
  cudaFree(L->attn_norm);
  cudaFree(L->mlp_norm);
  memset(L, 0, sizeof(*L));
}

qs_status qs_dseq_init(struct qs_dseq *s, const struct qs_dctx *c, int T) {
  qs_status status = QS_OK;
  const struct qs_config *f = c->cfg;
  size_t e = qs_dtype_size(c->dt), hd = (size_t)f->n_heads * f->head_dim, kvd = (size_t)f->n_kv_heads * f->head_dim;
  memset(s, 0, sizeof(*s));
  s->T = T;
  QS_CUDA_CHECK(cudaMalloc((void **)&s->xf, (size_t)T * f->hidden * sizeof(float)));
  QS_CUDA_CHECK(cudaMalloc(&s->xn, (size_t)T * f->hidden * e));
  QS_CUDA_CHECK(cudaMalloc(&s->q, (size_t)T * hd * e));
  QS_CUDA_CHECK(cudaMalloc(&s->k, (size_t)T * kvd * e));
  QS_CUDA_CHECK(cudaMalloc(&s->v, (size_t)T * kvd * e));
  QS_CUDA_CHECK(cudaMalloc(&s->att, (size_t)T * hd * e));
  QS_CUDA_CHECK(cudaMalloc(&s->gate, (size_t)T * f->intermediate * e));
  QS_CUDA_CHECK(cudaMalloc(&s->up, (size_t)T * f->intermediate * e));
  QS_CUDA_CHECK(cudaMalloc(&s->tmp, (size_t)T * f->hidden * e));
fail:
  return status;
}

void qs_dseq_free(struct qs_dseq *s) {
  void *p[] = {s->xf, s->xn, s->q, s->k, s->v, s->att, s->gate, s->up, s->tmp};
  for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) cudaFree(p[i]);
  memset(s, 0, sizeof(*s));
}

qs_status qs_dfwd_norm(struct qs_dctx *c, const float *x, const float *w, struct qs_dseq *s) {
  qs_status status = QS_OK;
  const int H = c->cfg->hidden;
  if (c->dt == QS_DTYPE_F32) {
    QS_TRY(qs_rmsnorm_cuda(x, w, s->xn, s->T, H, c->cfg->rms_eps, QS_DTYPE_F32, c->stream));
  } else {
    QS_TRY(qs_rmsnorm_cuda(x, w, s->xf, s->T, H, c->cfg->rms_eps, QS_DTYPE_F32, c->stream));
    QS_TRY(qs_convert_cuda(s->xf, QS_DTYPE_F32, s->xn, c->dt, (size_t)s->T * H, c->stream));
  }
fail:
  return status;
}

static qs_status dlinear(struct qs_dctx *c, const struct qs_dlayer *L, int i, const void *x, void *y, int T) {
  return qs_linear_cuda(x, L->w[i], L->b[i], y, T, L->n_out[i], L->n_in[i], c->dt, c->blas, c->stream);
}

qs_status qs_dfwd_attention(struct qs_dctx *c, const struct qs_dlayer *L, struct qs_dseq *s, void *att) {
  qs_status status = QS_OK;
  const struct qs_config *f = c->cfg;
  QS_TRY(dlinear(c, L, QS_LIN_Q, s->xn, s->q, s->T));
  QS_TRY(dlinear(c, L, QS_LIN_K, s->xn, s->k, s->T));
  QS_TRY(dlinear(c, L, QS_LIN_V, s->xn, s->v, s->T));
  QS_TRY(qs_rope_cuda(s->q, 1, s->T, f->n_heads, f->head_dim, c->inv_freq, 0, c->dt, c->stream));
  QS_TRY(qs_rope_cuda(s->k, 1, s->T, f->n_kv_heads, f->head_dim, c->inv_freq, 0, c->dt, c->stream));
  QS_TRY(qs_attention_cuda(s->q, s->k, s->v, att, 1, s->T, f->n_heads, f->n_kv_heads, f->head_dim, c->dt,
                           c->stream));
fail:
  return status;
}

qs_status qs_dfwd_attn_out(struct qs_dctx *c, const struct qs_dlayer *L, const void *att, float *x,
                           struct qs_dseq *s) {
  qs_status status = QS_OK;
  QS_TRY(dlinear(c, L, QS_LIN_O, att, s->tmp, s->T));
  QS_TRY(qs_residual_add_cuda(x, QS_DTYPE_F32, s->tmp, c->dt, (size_t)s->T * c->cfg->hidden, c->stream));
fail:
  return status;
}

qs_status qs_dfwd_mlp_act(struct qs_dctx *c, const struct qs_dlayer *L, struct qs_dseq *s) {
  qs_status status = QS_OK;
  QS_TRY(dlinear(c, L, QS_LIN_GATE, s->xn, s->gate, s->T));
  QS_TRY(dlinear(c, L, QS_LIN_UP, s->xn, s->up, s->T));
  QS_TRY(qs_swiglu_cuda(s->gate, s->up, s->gate, (size_t)s->T * c->cfg->intermediate, c->dt, c->stream));
fail:
  return status;
}

qs_status qs_dfwd_mlp_out(struct qs_dctx *c, const struct qs_dlayer *L, const void *act, float *x,
                          struct qs_dseq *s) {
  qs_status status = QS_OK;
  QS_TRY(dlinear(c, L, QS_LIN_DOWN, act, s->tmp, s->T));
  QS_TRY(qs_residual_add_cuda(x, QS_DTYPE_F32, s->tmp, c->dt, (size_t)s->T * c->cfg->hidden, c->stream));
fail:
  return status;
}

qs_status qs_dfwd_layer(struct qs_dctx *c, const struct qs_dlayer *L, float *x, struct qs_dseq *s) {
  qs_status status = QS_OK;
  QS_TRY(qs_dfwd_norm(c, x, L->attn_norm, s));
  QS_TRY(qs_dfwd_attention(c, L, s, s->att));
  QS_TRY(qs_dfwd_attn_out(c, L, s->att, x, s));
  QS_TRY(qs_dfwd_norm(c, x, L->mlp_norm, s));
  QS_TRY(qs_dfwd_mlp_act(c, L, s));
  QS_TRY(qs_dfwd_mlp_out(c, L, s->gate, x, s));
fail:
  return status;
}

qs_status qs_dfwd_embed(struct qs_dctx *c, const struct qs_model *m, const int32_t *ids, int T, float *x) {
  qs_status status = QS_OK;
  float *h = NULL;
  size_t bytes = (size_t)T * m->cfg.hidden * sizeof(float);
  QS_CUDA_CHECK(cudaMallocHost((void **)&h, bytes));
  qs_model_embed(m, ids, T, h);
  QS_CUDA_CHECK(cudaMemcpyAsync(x, h, bytes, cudaMemcpyHostToDevice, c->stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(c->stream));
fail:
  if (h) cudaFreeHost(h);
  return status;
}
