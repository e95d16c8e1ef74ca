// eval.c — perplexity of a model on an HDF5 token stream, the same number for any number of MPI
// ranks: the engine of `qshard eval` (cli/eval.c) and of `quantize --eval` (contract: eval.h).
//
// Windows (as the GPTQ and transformers evaluations): a 1-D stream of n tokens is cut into
// W = n / seqlen non-overlapping windows (the tail is dropped); a 2-D dataset [rows, cols] is rows
// windows of cols tokens. In each window every token after the first is predicted from the ones
// before it in that window: seqlen - 1 predictions per window, PPL = exp(sum NLL / predictions).
//
// Exactness over ranks: windows are split contiguously; each rank computes one double per window
// (the NLL sum of its tokens, in order); the per-window values are all-gathered in window order
// and every rank adds them in window order. A window's forward pass does not depend on which rank
// runs it, so the printed result line is bit-identical for -np 1, 2, 4, ...
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "io/config.h"
#include "model/device.h"
#include "model/eval.h"
#include "io/outdir.h"
#include "model/model.h"
#include "model/ops.h"
#include "io/tokens.h"

// Logits are computed a block of rows at a time so [rows, vocab] stays within this many floats
// (64 MiB); the block size depends only on seqlen and vocab, never on the rank count.
QS_PARAM(eval_logit_floats, "QS_EVAL_LOGIT_FLOATS", 16 << 20)


// Window length and count from the token shape and the options (rank 0).
static qs_status qs_eval_plan_windows(const struct qs_tokens *t, const struct qs_config *cfg,
                                      const struct qs_eval_request *o, struct qs_eval_plan *p) {
  qs_status status = QS_OK;
  const char *dset = o->dataset ? o->dataset : "/input_ids";
  long long seqlen = o->seqlen ? o->seqlen : QS_MIN(QS_EVAL_DEFAULT_SEQLEN, cfg->max_pos);
  p->n_tokens = t->rows * t->cols;
  if (t->ndim == 2) {
    if (o->seqlen && o->seqlen != t->cols)
      QS_FAIL(QS_ERR_ARG, "%s: %s is 2-D [%lld, %lld]: its windows are %lld tokens, --seqlen %lld differs",
              o->data, dset, (long long)t->rows, (long long)t->cols, (long long)t->cols, o->seqlen);
    if (t->cols < 2) QS_FAIL(QS_ERR_FORMAT, "%s: %s: windows of %lld tokens predict nothing", o->data, dset,
                             (long long)t->cols);
    seqlen = t->cols;
    p->n_avail = t->rows;
  } else {
    if (seqlen < 2) QS_FAIL(QS_ERR_ARG, "eval: seqlen %lld: need at least 2 tokens per window", seqlen);
    p->n_avail = t->cols / seqlen;
  }
  if (seqlen > cfg->max_pos)
    qs_log(QS_LOG_WARN, "eval: seqlen %lld > max_position_embeddings %d of %s: positions past the trained "
           "range", seqlen, cfg->max_pos, o->model);
  if (seqlen > INT32_MAX) QS_FAIL(QS_ERR_UNSUPPORTED, "%s: windows of %lld tokens are too long", o->data, seqlen);
  if (p->n_avail == 0)
    QS_FAIL(QS_ERR_FORMAT, "%s: %s has %lld tokens, fewer than one window of %lld", o->data, dset,
            p->n_tokens, seqlen);
  p->seqlen = (int)seqlen;
  p->n_windows = o->max_windows ? QS_MIN(o->max_windows, p->n_avail) : p->n_avail;
fail:
  return status;
}

// Rank 0: reads the tokens and the model config, checks the ids against the vocabulary and plans
// the windows. Errors are reported here, once.
static qs_status qs_eval_prepare(const struct qs_eval_request *o, const struct qs_config *loaded, struct qs_tokens *t,
                                 struct qs_eval_plan *p) {
  qs_status status = QS_OK;
  struct qs_config cfg;
  char *cfg_path = qs_path_join(o->model, "config.json");
  if (!cfg_path) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (loaded) cfg = *loaded;
  else QS_TRY(qs_config_load(&cfg, cfg_path));
  QS_TRY(qs_tokens_read(o->data, o->dataset, t));
  // The whole file is checked (also the dropped tail and windows past --eval-windows): a bad id
  // means a file made for another tokenizer, which a quick check should reveal too.
  QS_TRY(qs_tokens_check(t, cfg.vocab, o->data));
  QS_TRY(qs_eval_plan_windows(t, &cfg, o, p));
fail:
  free(cfg_path);
  return status;
}

qs_status qs_eval_share_tokens(struct qs_comm *world, const struct qs_eval_request *o, const struct qs_config *cfg,
                                      struct qs_eval_plan *p, int32_t **ids) {
  qs_status status = QS_OK;
  struct qs_tokens t = {0};
  memset(p, 0, sizeof(*p));
  if (qs_comm_rank(world) == 0) p->ok = qs_eval_prepare(o, cfg, &t, p) == QS_OK;
  QS_TRY(qs_comm_bcast(world, p, sizeof(*p), 0));
  if (!p->ok) { status = QS_ERR_ARG; goto fail; }
  size_t n = (size_t)p->n_windows * (size_t)p->seqlen;
  if (qs_comm_rank(world) == 0) {
    *ids = t.ids; // windows are the first n ids for both 1-D and 2-D layouts
    t.ids = NULL;
  } else {
    QS_ALLOC(*ids, n);
  }
  QS_TRY(qs_comm_bcast(world, *ids, n * sizeof(int32_t), 0));
fail:
  qs_tokens_free(&t);
  return status;
}

// Scratch for one window of T tokens.
struct qs_eval_ws {
  struct qs_fwd fwd;
  float *x;      // [T, hidden] residual stream
  float *logits; // [rows, vocab], rows = logit block
  float *xn;     // [rows, hidden]
  int rows;
};

static qs_status qs_eval_ws_init(struct qs_eval_ws *w, const struct qs_config *c, int T) {
  qs_status status = QS_OK;
  memset(w, 0, sizeof(*w));
  long long rows = qs_param_eval_logit_floats() / c->vocab;
  w->rows = (int)QS_MAX(1, QS_MIN(rows, (long long)T - 1));
  QS_TRY(qs_fwd_init(&w->fwd, c, 1, T));
  QS_ALLOC(w->x, (size_t)T * c->hidden);
  QS_ALLOC(w->logits, (size_t)w->rows * c->vocab);
  QS_ALLOC(w->xn, (size_t)w->rows * c->hidden);
fail:
  return status;
}

static void qs_eval_ws_free(struct qs_eval_ws *w) {
  qs_fwd_free(&w->fwd);
  free(w->x);
  free(w->logits);
  free(w->xn);
  memset(w, 0, sizeof(*w));
}

// Sum over t = 0 .. T-2 of -log p(ids[t+1] | ids[0..t]), added in token order.
static qs_status qs_eval_window_nll(struct qs_model *m, struct qs_eval_ws *w, const int32_t *ids, int T,
                                    double *nll) {
  qs_status status = QS_OK;
  const int H = m->cfg.hidden, V = m->cfg.vocab;
  double sum = 0.0;
  qs_model_embed(m, ids, T, w->x);
  QS_TRY(qs_model_forward_layers(m, w->x, T, &w->fwd));
  for (int r0 = 0; r0 < T - 1; r0 += w->rows) {
    int rows = QS_MIN(w->rows, T - 1 - r0);
    QS_TRY(qs_model_logits(m, w->x + (size_t)r0 * H, w->logits, rows, w->xn));
    for (int r = 0; r < rows; r++) sum += qs_nll_ref(w->logits + (size_t)r * V, V, ids[r0 + r + 1]);
  }
  *nll = sum;
fail:
  return status;
}

// This rank's windows [begin, end): nll[i] for window begin + i. Rank 0 prints progress about every
// 10% of its windows with the running perplexity of its own windows.
static qs_status qs_eval_run_windows(struct qs_model *m, const int32_t *ids, int T, long long begin,
                                     long long end, double *nll, double t0) {
  qs_status status = QS_OK;
  struct qs_eval_ws w;
  long long n = end - begin, step = QS_MAX(1, QS_CEIL_DIV(n, 10));
  double sum = 0.0;
  if (n == 0) return QS_OK; // more ranks than windows
  QS_TRY(qs_eval_ws_init(&w, &m->cfg, T));
  for (long long i = 0; i < n; i++) {
    QS_TRY(qs_eval_window_nll(m, &w, ids + (size_t)(begin + i) * T, T, &nll[i]));
    if (!isfinite(nll[i]))
      QS_FAIL(QS_ERR_NUMERIC, "eval: window %lld: NLL %g (non-finite logits)", begin + i, nll[i]);
    sum += nll[i];
    if ((i + 1) % step == 0 || i + 1 == n)
      qs_log0("eval: %lld/%lld windows (rank 0), %.1f s, ppl %.4f so far", i + 1, n, qs_time_now() - t0,
              exp(sum / ((double)(i + 1) * (T - 1))));
  }
fail:
  qs_eval_ws_free(&w);
  return status;
}

// Gathers the per-window NLLs in window order and adds them in that order on every rank.
static qs_status qs_eval_gather_sum(struct qs_comm *world, const struct qs_eval_plan *p, const double *local,
                                    double *nll_sum) {
  qs_status status = QS_OK;
  int size = qs_comm_size(world);
  double *all = NULL;
  size_t *counts = NULL;
  QS_ALLOC(all, p->n_windows);
  QS_ALLOC(counts, size);
  for (int r = 0; r < size; r++) {
    long long b, e;
    qs_comm_split_range(p->n_windows, size, r, &b, &e);
    counts[r] = (size_t)(e - b) * sizeof(double);
  }
  QS_TRY(qs_comm_allgatherv(world, local, all, counts));
  double sum = 0.0;
  for (long long w = 0; w < p->n_windows; w++) sum += all[w];
  *nll_sum = sum;
fail:
  free(all);
  free(counts);
  return status;
}

qs_status qs_eval_windows(struct qs_comm *world, struct qs_model *m, const struct qs_eval_plan *p,
                                 const int32_t *ids, const struct qs_eval_device *dev, double t0,
                                 double *nll_sum) {
  qs_status status = QS_OK;
  double *nll = NULL;
  long long begin = 0, end = 0;
  qs_comm_split_range(p->n_windows, qs_comm_size(world), qs_comm_rank(world), &begin, &end);
  qs_log0("eval: %s: %lld of %lld windows of %d tokens, %d ranks (rank 0: %lld windows)", m->dir, p->n_windows,
          p->n_avail, p->seqlen, qs_comm_size(world), end - begin);
  QS_ALLOC(nll, QS_MAX(end - begin, 1));
  qs_status st = QS_OK;
  if (dev->kind == QS_DEVICE_KIND_CUDA) {
#ifdef QS_USE_CUDA
    st = qs_eval_windows_cuda(m, ids, p->seqlen, begin, end, dev->f32, nll);
#else
    st = QS_ERR_UNSUPPORTED;
#endif
  } else {
    if (!m->layers) st = qs_model_load_layers(m);
    if (st == QS_OK) st = qs_eval_run_windows(m, ids, p->seqlen, begin, end, nll, t0);
  }
  int ok = st == QS_OK;
  QS_TRY(qs_comm_allreduce_and(world, &ok));
  if (!ok) { status = st != QS_OK ? qs_trace(st, __FILE__, __LINE__, __func__) : QS_ERR_NUMERIC; goto fail; }
  QS_TRY(qs_eval_gather_sum(world, p, nll, nll_sum));
fail:
  free(nll);
  return status;
}

qs_status qs_eval_open_model(struct qs_comm *world, const char *dir, int kind, struct qs_model *m,
                                    int *opened) {
  qs_status status = QS_OK;
  qs_status st = qs_model_open(m, dir);
  *opened = st == QS_OK;
  if (st == QS_OK && kind == QS_DEVICE_KIND_CPU) st = qs_model_load_layers(m);
  int ok = st == QS_OK;
  QS_TRY(qs_comm_allreduce_and(world, &ok));
  if (!ok) status = st != QS_OK ? st : QS_ERR_COMM;
fail:
  return status;
}

// ---- a model against its reference (eval --reference) ------------------------------------------------

// Window `ids` (T tokens) through both models: the QS_EVAL_CMP_N-double record (eval.h) of each
// predicted token into out[(T-1) * QS_EVAL_CMP_N].
static qs_status cmp_window(struct qs_model *q, struct qs_model *ref, struct qs_eval_ws *wq, struct qs_eval_ws *wr,
                            const int32_t *ids, int T, double *out) {
  qs_status status = QS_OK;
  const int H = q->cfg.hidden, V = q->cfg.vocab;
  qs_model_embed(q, ids, T, wq->x);
  QS_TRY(qs_model_forward_layers(q, wq->x, T, &wq->fwd));
  qs_model_embed(ref, ids, T, wr->x);
  QS_TRY(qs_model_forward_layers(ref, wr->x, T, &wr->fwd));
  for (int r0 = 0; r0 < T - 1; r0 += wq->rows) {
    int rows = QS_MIN(wq->rows, T - 1 - r0);
    QS_TRY(qs_model_logits(q, wq->x + (size_t)r0 * H, wq->logits, rows, wq->xn));
    QS_TRY(qs_model_logits(ref, wr->x + (size_t)r0 * H, wr->logits, rows, wr->xn));
    for (int r = 0; r < rows; r++) {
      struct qs_tok_cmp c;
      qs_tok_cmp_ref(wr->logits + (size_t)r * V, wq->logits + (size_t)r * V, V, ids[r0 + r + 1], &c);
      double *o = out + (size_t)(r0 + r) * QS_EVAL_CMP_N;
      o[QS_EVAL_CMP_KLD] = c.kld, o[QS_EVAL_CMP_NLL_Q] = c.nll_q, o[QS_EVAL_CMP_NLL_REF] = c.nll_ref;
      o[QS_EVAL_CMP_DP] = c.dp, o[QS_EVAL_CMP_TOP] = c.same_top;
      if (!isfinite(c.kld) || !isfinite(c.nll_q) || !isfinite(c.nll_ref))
        QS_FAIL(QS_ERR_NUMERIC, "eval: non-finite logits at token %d of a window", r0 + r + 1);
    }
  }
fail:
  return status;
}

// The CPU engine's records of this rank's windows [begin, end) into out[(end - begin) * (T-1) * QS_EVAL_CMP_N].
static qs_status cmp_run_windows(struct qs_model *q, struct qs_model *ref, const int32_t *ids, int T, long long begin,
                                 long long end, double t0, double *out) {
  qs_status status = QS_OK;
  struct qs_eval_ws wq = {0}, wr = {0};
  const size_t per_win = (size_t)(T - 1) * QS_EVAL_CMP_N;
  const long long step = QS_MAX(1, QS_CEIL_DIV(end - begin, 10));
  if (!q->layers) QS_TRY(qs_model_load_layers(q));
  if (!ref->layers) QS_TRY(qs_model_load_layers(ref));
  QS_TRY(qs_eval_ws_init(&wq, &q->cfg, T));
  QS_TRY(qs_eval_ws_init(&wr, &ref->cfg, T));
  for (long long w = begin; w < end; w++) {
    QS_TRY(cmp_window(q, ref, &wq, &wr, ids + (size_t)w * T, T, out + (size_t)(w - begin) * per_win));
    if ((w - begin + 1) % step == 0 || w + 1 == end)
      qs_log0("eval: %lld/%lld windows (rank 0), %.1f s", w - begin + 1, end - begin, qs_time_now() - t0);
  }
fail:
  qs_eval_ws_free(&wq);
  qs_eval_ws_free(&wr);
  return status;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

// The statistics of eval.h from every token's record, all[n_windows * (T-1) * QS_EVAL_CMP_N] in
// window and token order (the same array on every rank, whatever engine wrote it).
static qs_status cmp_summarize(const double *all, long long n_windows, int T, struct qs_eval_cmp *out) {
  qs_status status = QS_OK;
  const long long n = n_windows * (T - 1);
  double *kld = NULL;
  QS_ALLOC(kld, n);
  // NLLs as qs_eval_windows adds them (within a window in token order, then windows in order), so the
  // perplexities equal those of `qshard eval` of each model alone on the same device, bit for bit
  double s[QS_EVAL_CMP_N] = {0};
  for (long long w = 0; w < n_windows; w++) {
    double wn[QS_EVAL_CMP_N] = {0};
    for (int j = 0; j < T - 1; j++) {
      const double *o = all + ((size_t)w * (T - 1) + j) * QS_EVAL_CMP_N;
      for (int k = 0; k < QS_EVAL_CMP_N; k++) wn[k] += o[k];
      kld[w * (T - 1) + j] = o[QS_EVAL_CMP_KLD];
    }
    s[QS_EVAL_CMP_NLL_Q] += wn[QS_EVAL_CMP_NLL_Q], s[QS_EVAL_CMP_NLL_REF] += wn[QS_EVAL_CMP_NLL_REF];
  }
  for (long long i = 0; i < n; i++) // the per-token statistics in token order
    for (int k = 0; k < QS_EVAL_CMP_N; k++)
      if (k != QS_EVAL_CMP_NLL_Q && k != QS_EVAL_CMP_NLL_REF) s[k] += all[(size_t)i * QS_EVAL_CMP_N + k];
  qsort(kld, (size_t)n, sizeof(double), cmp_double);
  *out = (struct qs_eval_cmp){.nll_q = s[QS_EVAL_CMP_NLL_Q], .nll_ref = s[QS_EVAL_CMP_NLL_REF],
                              .kld_mean = s[QS_EVAL_CMP_KLD] / (double)n,
                              .kld_p99 = kld[(size_t)ceil(0.99 * (double)n) - 1], .kld_max = kld[n - 1],
                              .top1 = s[QS_EVAL_CMP_TOP] / (double)n, .dp_mean = s[QS_EVAL_CMP_DP] / (double)n,
                              .tokens = n};
fail:
  free(kld);
  return status;
}

qs_status qs_eval_compare(struct qs_comm *world, struct qs_model *q, struct qs_model *ref, const struct qs_eval_plan *p,
                          const int32_t *ids, const struct qs_eval_device *dev, double t0, struct qs_eval_cmp *out) {
  qs_status status = QS_OK, st = QS_OK;
  double *mine = NULL, *all = NULL;
  size_t *counts = NULL;
  const int T = p->seqlen, size = qs_comm_size(world);
  const size_t per_win = (size_t)(T - 1) * QS_EVAL_CMP_N;
  long long begin = 0, end = 0;
  if (q->cfg.vocab != ref->cfg.vocab || q->cfg.hidden != ref->cfg.hidden || q->cfg.n_layers != ref->cfg.n_layers)
    QS_FAIL(QS_ERR_ARG, "eval --reference %s: not the same model as %s (vocab %d/%d, hidden %d/%d, layers %d/%d)",
            ref->dir, q->dir, ref->cfg.vocab, q->cfg.vocab, ref->cfg.hidden, q->cfg.hidden, ref->cfg.n_layers,
            q->cfg.n_layers);
  qs_comm_split_range(p->n_windows, size, qs_comm_rank(world), &begin, &end);
  qs_log0("eval: %s against %s: %lld windows of %d tokens, %d ranks (%s)", q->dir, ref->dir, p->n_windows, T, size,
          dev->kind == QS_DEVICE_KIND_CUDA ? (dev->f32 ? "cuda fp32" : "cuda bf16") : "cpu");
  QS_ALLOC(mine, QS_MAX(1, (size_t)(end - begin) * per_win));
  if (end > begin && dev->kind == QS_DEVICE_KIND_CUDA) {
#ifdef QS_USE_CUDA
    st = qs_eval_compare_cuda(q, ref, ids, T, begin, end, dev->f32, mine);
#else
    st = QS_ERR_UNSUPPORTED;
#endif
  } else if (end > begin) {
    st = cmp_run_windows(q, ref, ids, T, begin, end, t0, mine);
  }
  int ok = st == QS_OK;
  QS_TRY(qs_comm_allreduce_and(world, &ok));
  if (!ok) { status = st != QS_OK ? qs_trace(st, __FILE__, __LINE__, __func__) : QS_ERR_NUMERIC; goto fail; }
  // every token's record, in window order, on every rank: the sums below see the same array for any
  // rank count
  QS_ALLOC(all, (size_t)p->n_windows * per_win);
  QS_ALLOC(counts, size);
  for (int r = 0; r < size; r++) {
    long long b, e;
    qs_comm_split_range(p->n_windows, size, r, &b, &e);
    counts[r] = (size_t)(e - b) * per_win * sizeof(double);
  }
  QS_TRY(qs_comm_allgatherv(world, mine, all, counts));
  QS_TRY(cmp_summarize(all, p->n_windows, T, out));
fail:
  free(mine);
  free(all);
  free(counts);
  return status;
}

// The engine behind `quantize --eval` (eval.h): same windows, same per-window NLLs, same ordered
// sum as `qshard eval`, on a model whose layers are already in memory.
qs_status qs_eval_model(struct qs_comm *world, struct qs_model *m, const char *data, int seqlen,
                        long long max_windows, const struct qs_eval_device *dev, struct qs_eval_result *r) {
  qs_status status = QS_OK;
  struct qs_eval_request o = {.model = m->dir, .data = data, .seqlen = seqlen, .max_windows = max_windows};
  struct qs_eval_plan p;
  int32_t *ids = NULL;
  double t0 = qs_time_now(), sum = 0.0;
  QS_TRY(qs_eval_share_tokens(world, &o, &m->cfg, &p, &ids));
  QS_TRY(qs_eval_windows(world, m, &p, ids, dev, t0, &sum));
  r->seqlen = p.seqlen;
  r->windows = p.n_windows;
  r->tokens = p.n_windows * p.seqlen;
  r->predicted = p.n_windows * (p.seqlen - 1);
  r->nll = sum;
  r->ppl = exp(sum / (double)r->predicted);
  r->seconds = qs_time_now() - t0;
fail:
  free(ids);
  return status;
}

void qs_eval_print(const struct qs_eval_result *r, const char *data) {
  qs_log0("ppl %.6f nll %.9f windows %lld tokens %lld predicted %lld seqlen %d (%s, %.2f s)", r->ppl,
          r->nll / (double)r->predicted, r->windows, r->tokens, r->predicted, r->seqlen, data, r->seconds);
}
