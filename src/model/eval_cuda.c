// eval_cuda.c — the cuda forward of `qshard eval` (eval.h: qs_eval_windows_cuda) and of `eval
// --reference` (qs_eval_compare_cuda). Layer-major over a chunk of this rank's windows: each layer is
// streamed in once per chunk (forward_cuda.h) and applied to every window of the chunk, each window
// alone, so a window's NLL does not depend on the chunk or the rank count. Logits in fp32 (bf16
// inputs, fp32 accumulation in cuBLAS), per-token NLL in double on the device (kernels/nll.h), summed
// per window in token order on the host. The comparison runs both models through the same steps
// with the same shapes (their logits are the plain eval's bits) and reduces each token's pair of
// logit rows on the device (kernels/tok_cmp.h, whose NLLs are nll.h's bits).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/eval.h"
#include "model/forward_cuda.h"
#include "nll.h"
#include "qs_cuda.h"
#include "residual.h"
#include "tok_cmp.h"

// The kernel writes eval.h's per-token record (two enums: compared as ints).
#define QS_SAME_FIELD(f) ((int)QS_TOK_CMP_##f == (int)QS_EVAL_CMP_##f)
_Static_assert(QS_SAME_FIELD(KLD) && QS_SAME_FIELD(NLL_Q) && QS_SAME_FIELD(NLL_REF) && QS_SAME_FIELD(DP) &&
                   QS_SAME_FIELD(TOP) && QS_SAME_FIELD(N),
               "kernels/tok_cmp.h's record differs from eval.h's");
#undef QS_SAME_FIELD

// Residual-stream bytes of one chunk of windows (fp32 [windows, T, hidden]); eval --reference splits
// them between its two models.
QS_PARAM(eval_cuda_chunk_bytes, "QS_EVAL_CUDA_CHUNK_BYTES", 8ll << 30)
// fp32 logits per lm_head GEMM (rows x vocab floats).
QS_PARAM(eval_cuda_logit_floats, "QS_EVAL_CUDA_LOGIT_FLOATS", 256ll << 20)

struct ev {
  struct qs_dctx c;
  struct qs_wstream ws;
  struct qs_dlayer L;
  struct qs_dseq s;
  float *x;          // [chunk, T, hidden]
  float *norm;       // [hidden] model.norm
  void *lm_head;     // [vocab, hidden] dt
  float *logits;     // [rows, vocab]
  int32_t *targets;  // [T]
  double *nll_d;     // [T]
  double *nll_h;     // [T] pinned
  int rows;          // logit rows per GEMM
};

static qs_status ev_init(struct ev *v, struct qs_model *m, int T, long long chunk, int f32) {
  qs_status status = QS_OK;
  const struct qs_config *c = &m->cfg;
  size_t H = (size_t)c->hidden, V = (size_t)c->vocab;
  float *stage = NULL;
  memset(v, 0, sizeof(*v));
  QS_TRY(qs_dctx_init(&v->c, m, f32 ? QS_DTYPE_F32 : QS_DTYPE_BF16));
  QS_TRY(qs_wstream_init(&v->ws, m));
  QS_TRY(qs_dseq_init(&v->s, &v->c, T));
  QS_CUDA_CHECK(cudaMalloc((void **)&v->x, (size_t)chunk * T * H * sizeof(float)));
  QS_CUDA_CHECK(cudaMalloc((void **)&v->norm, H * sizeof(float)));
  QS_CUDA_CHECK(cudaMemcpy(v->norm, m->norm, H * sizeof(float), cudaMemcpyHostToDevice));
  QS_CUDA_CHECK(cudaMalloc(&v->lm_head, V * H * qs_dtype_size(v->c.dt)));
  // lm_head as stored (the checkpoint's mapped bytes), converted on the device
  QS_CUDA_CHECK(cudaMalloc((void **)&stage, V * H * qs_dtype_size(m->lm_head->dtype)));
  QS_CUDA_CHECK(cudaMemcpy(stage, m->lm_head->data, V * H * qs_dtype_size(m->lm_head->dtype), cudaMemcpyHostToDevice));
  QS_TRY(qs_convert_cuda(stage, m->lm_head->dtype, v->lm_head, v->c.dt, V * H, v->c.stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(v->c.stream));
  v->rows = (int)QS_MAX(1, QS_MIN((long long)T, qs_param_eval_cuda_logit_floats() / (long long)V));
  QS_CUDA_CHECK(cudaMalloc((void **)&v->logits, (size_t)v->rows * V * sizeof(float)));
  QS_CUDA_CHECK(cudaMalloc((void **)&v->targets, (size_t)T * sizeof(int32_t)));
  QS_CUDA_CHECK(cudaMalloc((void **)&v->nll_d, (size_t)T * sizeof(double)));
  QS_CUDA_CHECK(cudaMallocHost((void **)&v->nll_h, (size_t)T * sizeof(double)));
fail:
  cudaFree(stage);
  return status;
}

static void ev_free(struct ev *v) {
  if (v->c.stream) cudaStreamSynchronize(v->c.stream);
  qs_wstream_free(&v->ws);
  qs_dlayer_free(&v->L);
  qs_dseq_free(&v->s);
  cudaFree(v->x);
  cudaFree(v->norm);
  cudaFree(v->lm_head);
  cudaFree(v->logits);
  cudaFree(v->targets);
  cudaFree(v->nll_d);
  if (v->nll_h) cudaFreeHost(v->nll_h);
  qs_dctx_free(&v->c);
}

// logits [rows, vocab] fp32 = xn [rows, hidden] (dt) · lm_headᵀ.
static qs_status ev_logits(struct ev *v, const void *xn, int rows) {
  qs_status status = QS_OK;
  const struct qs_config *c = v->c.cfg;
  const float one = 1.0f, zero = 0.0f;
  cudaDataType_t t = v->c.dt == QS_DTYPE_F32 ? CUDA_R_32F : CUDA_R_16BF;
  QS_CUBLAS_CHECK(cublasGemmEx(v->c.blas, CUBLAS_OP_T, CUBLAS_OP_N, c->vocab, rows, c->hidden, &one, v->lm_head, t,
                               c->hidden, xn, t, c->hidden, &zero, v->logits, CUDA_R_32F, c->vocab,
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
fail:
  return status;
}

// NLL sum of window ids [T] whose final residual is x [T, hidden].
static qs_status ev_window_nll(struct ev *v, float *x, const int32_t *ids, int T, double *nll) {
  qs_status status = QS_OK;
  const struct qs_config *c = v->c.cfg;
  size_t es = qs_dtype_size(v->c.dt);
  double sum = 0.0;
  QS_TRY(qs_dfwd_norm(&v->c, x, v->norm, &v->s)); // s.xn [T, hidden]
  QS_CUDA_CHECK(cudaMemcpyAsync(v->targets, ids + 1, (size_t)(T - 1) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                v->c.stream));
  for (int r0 = 0; r0 < T - 1; r0 += v->rows) {
    int rows = QS_MIN(v->rows, T - 1 - r0);
    QS_TRY(ev_logits(v, (const char *)v->s.xn + (size_t)r0 * c->hidden * es, rows));
    QS_TRY(qs_nll_cuda(v->logits, v->targets + r0, v->nll_d + r0, rows, c->vocab, QS_DTYPE_F32, v->c.stream));
  }
  QS_CUDA_CHECK(cudaMemcpyAsync(v->nll_h, v->nll_d, (size_t)(T - 1) * sizeof(double), cudaMemcpyDeviceToHost,
                                v->c.stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(v->c.stream));
  for (int t = 0; t < T - 1; t++) sum += v->nll_h[t];
  *nll = sum;
fail:
  return status;
}

// Windows [w0, w1) of ids through every layer of m: v->x [w1 - w0, T, hidden] = their final residuals.
static qs_status ev_forward(struct ev *v, struct qs_model *m, const int32_t *ids, int T, long long w0, long long w1) {
  qs_status status = QS_OK;
  const size_t H = (size_t)m->cfg.hidden;
  struct qs_hslot *slot = NULL;
  for (long long w = w0; w < w1; w++)
    QS_TRY(qs_dfwd_embed(&v->c, m, ids + (size_t)w * T, T, v->x + (size_t)(w - w0) * T * H));
  for (int l = 0; l < m->cfg.n_layers; l++) {
    QS_TRY(qs_wstream_get(&v->ws, l, &slot));
    QS_TRY(qs_dlayer_upload(&v->c, slot, &v->L));
    QS_TRY(qs_wstream_prefetch(&v->ws, l + 1 < m->cfg.n_layers ? l + 1 : m->cfg.n_layers));
    for (long long w = w0; w < w1; w++) QS_TRY(qs_dfwd_layer(&v->c, &v->L, v->x + (size_t)(w - w0) * T * H, &v->s));
  }
fail:
  return status;
}

// Windows [w0, w1) of ids through every layer, then their NLLs into nll[0 .. w1 - w0).
static qs_status ev_chunk(struct ev *v, struct qs_model *m, const int32_t *ids, int T, long long w0, long long w1,
                          double *nll) {
  qs_status status = QS_OK;
  const size_t H = (size_t)m->cfg.hidden;
  QS_TRY(ev_forward(v, m, ids, T, w0, w1));
  for (long long w = w0; w < w1; w++)
    QS_TRY(ev_window_nll(v, v->x + (size_t)(w - w0) * T * H, ids + (size_t)w * T, T, &nll[w - w0]));
fail:
  return status;
}

qs_status qs_eval_windows_cuda(struct qs_model *m, const int32_t *ids, int T, long long begin, long long end,
                               int f32, double *nll) {
  qs_status status = QS_OK;
  struct ev v;
  long long n = end - begin;
  long long chunk = QS_MAX(1, qs_param_eval_cuda_chunk_bytes() / ((long long)T * m->cfg.hidden * 4));
  double t0 = qs_time_now();
  memset(&v, 0, sizeof(v));
  if (n <= 0) return QS_OK;
  chunk = QS_MIN(chunk, n);
  QS_TRY(ev_init(&v, m, T, chunk, f32));
  for (long long w = begin; w < end; w += chunk) {
    long long w1 = QS_MIN(end, w + chunk);
    QS_TRY(ev_chunk(&v, m, ids, T, w, w1, nll + (w - begin)));
    double s = 0;
    for (long long i = 0; i < w1 - begin; i++) s += nll[i];
    qs_log0("eval: %lld/%lld windows (rank 0, cuda %s), %.1f s, ppl %.4f so far", w1 - begin, n,
            f32 ? "fp32" : "bf16", qs_time_now() - t0, exp(s / ((double)(w1 - begin) * (T - 1))));
  }
  for (long long i = 0; i < n; i++)
    if (!isfinite(nll[i])) QS_FAIL(QS_ERR_NUMERIC, "eval: window %lld: NLL %g (non-finite logits)", begin + i, nll[i]);
fail:
  ev_free(&v);
  return status;
}

// ---- a model against its reference (eval --reference) ------------------------------------------------

// One window whose final residuals are xq / xr [T, hidden] (model / reference): the record of each
// predicted token into out[(T-1) * QS_EVAL_CMP_N] (host), through rec (device, as large). Norm and
// logits are ev_window_nll's steps with its row blocks (the same GEMM shapes: the same logits bits).
static qs_status ev_window_cmp(struct ev *vq, struct ev *vr, const float *xq, const float *xr, const int32_t *ids,
                               int T, double *rec, double *out) {
  qs_status status = QS_OK;
  const struct qs_config *c = vq->c.cfg;
  const size_t row_bytes = (size_t)c->hidden * qs_dtype_size(vq->c.dt);
  QS_TRY(qs_dfwd_norm(&vr->c, xr, vr->norm, &vr->s)); // s.xn [T, hidden] of each model
  QS_TRY(qs_dfwd_norm(&vq->c, xq, vq->norm, &vq->s));
  QS_CUDA_CHECK(cudaMemcpyAsync(vq->targets, ids + 1, (size_t)(T - 1) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                vq->c.stream));
  for (int r0 = 0; r0 < T - 1; r0 += vq->rows) {
    int rows = QS_MIN(vq->rows, T - 1 - r0);
    QS_TRY(ev_logits(vr, (const char *)vr->s.xn + (size_t)r0 * row_bytes, rows));
    QS_CUDA_CHECK(cudaStreamSynchronize(vr->c.stream)); // the reference's logits done before vq's stream reads them
    QS_TRY(ev_logits(vq, (const char *)vq->s.xn + (size_t)r0 * row_bytes, rows));
    QS_TRY(qs_tok_cmp_cuda(vr->logits, vq->logits, vq->targets + r0, rec + (size_t)r0 * QS_EVAL_CMP_N, rows, c->vocab,
                           vq->c.stream));
    QS_CUDA_CHECK(cudaStreamSynchronize(vq->c.stream)); // read before the next block overwrites vr->logits
  }
  QS_CUDA_CHECK(cudaMemcpyAsync(out, rec, (size_t)(T - 1) * QS_EVAL_CMP_N * sizeof(double), cudaMemcpyDeviceToHost,
                                vq->c.stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(vq->c.stream));
fail:
  return status;
}

// Layer-major as qs_eval_windows_cuda, model then reference per chunk; each model's residual stream
// gets half the chunk bytes, so device memory is a plain eval's plus the reference's lm_head, layer,
// sequence workspace and logit block. The NLLs in `out`, added per window in token order (eval.c),
// are the sums qs_eval_windows_cuda gives for each model alone: same forward, same logit GEMMs, and
// tok_cmp.cu's NLL steps are nll.cu's. Keep the three in step.
qs_status qs_eval_compare_cuda(struct qs_model *q, struct qs_model *ref, const int32_t *ids, int T, long long begin,
                               long long end, int f32, double *out) {
  qs_status status = QS_OK;
  struct ev vq, vr;
  double *rec = NULL; // [T-1, QS_EVAL_CMP_N] device
  const size_t H = (size_t)q->cfg.hidden, per_win = (size_t)(T - 1) * QS_EVAL_CMP_N;
  const long long n = end - begin;
  long long chunk = QS_MAX(1, qs_param_eval_cuda_chunk_bytes() / (2ll * T * q->cfg.hidden * 4));
  double t0 = qs_time_now();
  memset(&vq, 0, sizeof(vq));
  memset(&vr, 0, sizeof(vr));
  if (n <= 0) return QS_OK;
  chunk = QS_MIN(chunk, n);
  QS_TRY(ev_init(&vq, q, T, chunk, f32));
  QS_TRY(ev_init(&vr, ref, T, chunk, f32));
  if (vq.rows != vr.rows) QS_FAIL(QS_ERR_ARG, "eval --reference: vocab %d / %d differ", q->cfg.vocab, ref->cfg.vocab);
  QS_CUDA_CHECK(cudaMalloc((void **)&rec, per_win * sizeof(double)));
  for (long long w = begin; w < end; w += chunk) {
    long long w1 = QS_MIN(end, w + chunk);
    QS_TRY(ev_forward(&vq, q, ids, T, w, w1));
    QS_TRY(ev_forward(&vr, ref, ids, T, w, w1));
    for (long long i = w; i < w1; i++)
      QS_TRY(ev_window_cmp(&vq, &vr, vq.x + (size_t)(i - w) * T * H, vr.x + (size_t)(i - w) * T * H,
                           ids + (size_t)i * T, T, rec, out + (size_t)(i - begin) * per_win));
    qs_log0("eval: %lld/%lld windows (rank 0, cuda %s, model and reference), %.1f s", w1 - begin, n,
            f32 ? "fp32" : "bf16", qs_time_now() - t0);
  }
  for (long long i = 0; i < n * (T - 1); i++) { // as the CPU engine's check
    const double *o = out + (size_t)i * QS_EVAL_CMP_N;
    if (!isfinite(o[QS_EVAL_CMP_KLD]) || !isfinite(o[QS_EVAL_CMP_NLL_Q]) || !isfinite(o[QS_EVAL_CMP_NLL_REF]))
      QS_FAIL(QS_ERR_NUMERIC, "eval: window %lld: non-finite logits at token %lld", begin + i / (T - 1),
              i % (T - 1) + 1);
  }
fail:
  ev_free(&vq);
  ev_free(&vr);
  cudaFree(rec);
  return status;
}
