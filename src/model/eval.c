// eval.c — `qshard eval`: perplexity of a model on an HDF5 token stream, the same number for any
// number of MPI ranks.
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
#include "cli/commands.h"
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

#define QS_EVAL_DEFAULT_SEQLEN 2048

struct qs_eval_opts {
  const char *model, *data, *dataset, *json;
  long long seqlen;      // 0: not given
  long long max_windows; // 0: all
  struct qs_eval_device dev;
};

// What rank 0 decided from the token file and the config, sent to every rank.
struct qs_eval_plan {
  long long n_windows; // windows evaluated
  long long n_avail;   // windows in the file
  long long n_tokens;  // tokens in the file
  int seqlen;
  int ok;
};

static void qs_eval_usage(FILE *out) {
  fprintf(out,
          "usage: qshard eval --model DIR --data TOKENS.h5 [options]     (alone or under mpirun -np P)\n"
          "\n"
          "Perplexity of the model in DIR (fp32 on the CPU, bf16 or fp32 on a GPU; FP or GPTQ checkpoints) on the\n"
          "token ids of an HDF5 dataset, as GPTQ/transformers evaluations compute it: a 1-D stream of n\n"
          "tokens is cut into n / seqlen non-overlapping windows (the tail is dropped); a 2-D dataset\n"
          "[rows, cols] is rows windows of cols tokens. In each window every token after the first is\n"
          "predicted from the earlier ones in the same window (seqlen - 1 predictions per window).\n"
          "Windows are split across MPI ranks; the result is bit-identical for any rank count.\n"
          "\n"
          "options:\n"
          "  --model DIR        Hugging Face model directory (config.json + safetensors)\n"
          "  --data FILE        HDF5 file of token ids (any integer type; ids must be < vocab_size)\n"
          "  --dataset NAME     dataset in FILE (default /input_ids)\n"
          "  --seqlen N         window length for a 1-D stream (default min(%d, max_position_embeddings));\n"
          "                     a 2-D dataset fixes it to its column count. N > max_position_embeddings\n"
          "                     is allowed with a warning (RoPE positions past the trained range).\n"
          "  --eval-windows N   only the first N windows (quick checks)\n"
          "  --device D         cuda, cpu or auto (default: cuda when built with CUDA and every rank sees a\n"
          "                     GPU); --precision bf16|fp32 (cuda; default bf16 activations, fp32 sums)\n"
          "  --json FILE        also write {\"ppl\", \"nll\", \"windows\", \"tokens\", \"seqlen\", ...} to FILE\n"
          "\n"
          "output (rank 0): progress lines, then\n"
          "  ppl <P> nll <mean NLL> windows <W> tokens <W*seqlen> predicted <W*(seqlen-1)> seqlen <S>\n"
          "  time <seconds> s load <seconds> s ranks <P> windows/s <rate>\n"
          "The ppl line does not depend on the rank count; the time line does.\n",
          QS_EVAL_DEFAULT_SEQLEN);
}

// Parses a decimal integer option value in [lo, hi]; 0 on success, else a message in err.
static int qs_eval_parse_int(const char *opt, const char *val, long long lo, long long hi, long long *out,
                             char *err, size_t errlen) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(val, &end, 10);
  if (errno || end == val || *end || v < lo || v > hi) {
    snprintf(err, errlen, "%s '%s': expected an integer in [%lld, %lld]", opt, val, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

// --opt VALUE or --opt=VALUE; *i advances past a separate value.
static const char *qs_eval_opt_value(int argc, char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] != '\0' || *i + 1 >= argc) return NULL;
  return argv[++*i];
}

// Every rank parses the same argv; errors come back in err (printed once, by rank 0).
static int qs_eval_parse(int argc, char **argv, struct qs_eval_opts *o, int *help, char *err, size_t errlen) {
  const char *v;
  memset(o, 0, sizeof(*o));
  *help = 0;
  for (int i = 1; i < argc; i++) {
    int bad = 0;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) *help = 1;
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--model"))) o->model = v;
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--data"))) o->data = v;
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--dataset"))) o->dataset = v;
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--json"))) o->json = v;
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--device"))) {
      if ((o->dev.kind = qs_device_parse(v)) < 0) { snprintf(err, errlen, "--device '%s': expected cuda, cpu or auto", v); bad = 1; }
    } else if ((v = qs_eval_opt_value(argc, argv, &i, "--precision"))) {
      if (strcmp(v, "bf16") && strcmp(v, "fp32")) { snprintf(err, errlen, "--precision '%s': expected bf16 or fp32", v); bad = 1; }
      o->dev.f32 = !strcmp(v, "fp32");
    }
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--seqlen")))
      bad = qs_eval_parse_int("--seqlen", v, 2, 1 << 24, &o->seqlen, err, errlen);
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--eval-windows")))
      bad = qs_eval_parse_int("--eval-windows", v, 1, (long long)1 << 40, &o->max_windows, err, errlen);
    else {
      snprintf(err, errlen, "unknown option or missing value '%s'", argv[i]);
      bad = 1;
    }
    if (bad) return -1;
  }
  if (!*help && (!o->model || !o->data)) {
    snprintf(err, errlen, "--model DIR and --data FILE are required");
    return -1;
  }
  return 0;
}

// Window length and count from the token shape and the options (rank 0).
static qs_status qs_eval_plan_windows(const struct qs_tokens *t, const struct qs_config *cfg,
                                      const struct qs_eval_opts *o, struct qs_eval_plan *p) {
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
static qs_status qs_eval_prepare(const struct qs_eval_opts *o, const struct qs_config *loaded, struct qs_tokens *t,
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

// Rank 0 prepares; every rank gets the plan and the ids of the evaluated windows
// (*ids: [n_windows, seqlen]). Returns QS_ERR_ARG silently on ranks > 0 when rank 0 failed.
static qs_status qs_eval_share_tokens(struct qs_comm *world, const struct qs_eval_opts *o, const struct qs_config *cfg,
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
    qs_model_logits(m, w->x + (size_t)r0 * H, w->logits, rows, w->xn);
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

static qs_status qs_eval_write_json(const char *path, const struct qs_eval_opts *o, const struct qs_eval_plan *p,
                                    double nll_sum, double seconds, int ranks) {
  qs_status status = QS_OK;
  double pred = (double)p->n_windows * (p->seqlen - 1);
  json_t *j = json_pack("{s:f, s:f, s:f, s:I, s:I, s:I, s:i, s:I, s:s, s:s, s:s, s:f, s:i}", "ppl",
                        exp(nll_sum / pred), "nll", nll_sum / pred, "nll_sum", nll_sum, "windows",
                        (json_int_t)p->n_windows, "tokens", (json_int_t)p->n_windows * p->seqlen, "predicted",
                        (json_int_t)p->n_windows * (p->seqlen - 1), "seqlen", p->seqlen, "windows_available",
                        (json_int_t)p->n_avail, "model", o->model, "data", o->data, "dataset",
                        o->dataset ? o->dataset : "/input_ids", "seconds", seconds, "ranks", ranks);
  if (!j) QS_FAIL(QS_ERR_OOM, "%s: cannot build the JSON report", path);
  QS_TRY(qs_json_write_file(path, j, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)));
fail:
  json_decref(j);
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

// Every rank: its share of the planned windows, then the ordered sum over all of them. A rank that
// fails is known to all before the gather, so none waits for it.
static qs_status qs_eval_windows(struct qs_comm *world, struct qs_model *m, const struct qs_eval_plan *p,
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

// Prints the result (rank 0) and writes --json.
static qs_status qs_eval_report(struct qs_comm *world, const struct qs_eval_opts *o, const struct qs_eval_plan *p,
                                double nll_sum, double t0, double t_load) {
  qs_status status = QS_OK;
  int size = qs_comm_size(world);
  double pred = (double)p->n_windows * (p->seqlen - 1);
  double seconds = qs_time_now() - t0;
  if (qs_comm_rank(world) == 0) {
    printf("ppl %.6f nll %.9f windows %lld tokens %lld predicted %lld seqlen %d\n", exp(nll_sum / pred),
           nll_sum / pred, p->n_windows, p->n_windows * p->seqlen, p->n_windows * (p->seqlen - 1), p->seqlen);
    printf("time %.2f s load %.2f s ranks %d windows/s %.3f\n", seconds, t_load, size,
           (double)p->n_windows / QS_MAX(seconds - t_load, 1e-9));
    fflush(stdout);
    if (o->json) QS_TRY(qs_eval_write_json(o->json, o, p, nll_sum, seconds, size));
  }
fail:
  return status;
}

// All ranks: open the model, then agree that every rank succeeded (a rank that failed has printed
// why; the others must not wait for it in a collective).
static qs_status qs_eval_open_model(struct qs_comm *world, const char *dir, int kind, struct qs_model *m,
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

int qs_cmd_eval(struct qs_comm *world, int argc, char **argv) {
  struct qs_eval_opts o;
  struct qs_eval_plan p;
  struct qs_model m;
  int help = 0, opened = 0, rank = qs_comm_rank(world);
  int32_t *ids = NULL;
  double t0 = qs_time_now(), t_load = 0.0, nll_sum = 0.0;
  char err[512];
  qs_status status = QS_OK;
  if (qs_eval_parse(argc, argv, &o, &help, err, sizeof(err)) != 0) {
    if (rank == 0) fprintf(stderr, "qshard eval: %s (qshard eval --help)\n", err);
    return 2;
  }
  if (help) {
    if (rank == 0) qs_eval_usage(stdout);
    return 0;
  }
  // Failures inside these two were reported where they happened (rank 0 for the token file).
  if ((status = qs_device_resolve(world, &o.dev.kind)) != QS_OK) goto fail;
  if ((status = qs_eval_share_tokens(world, &o, NULL, &p, &ids)) != QS_OK) goto fail;
  if ((status = qs_eval_open_model(world, o.model, o.dev.kind, &m, &opened)) != QS_OK) goto fail;
  t_load = qs_time_now() - t0;
  qs_log0("eval: %s on %s, load %.2f s", o.model, o.data, t_load);
  QS_TRY(qs_eval_windows(world, &m, &p, ids, &o.dev, t0, &nll_sum));
  QS_TRY(qs_eval_report(world, &o, &p, nll_sum, t0, t_load));
fail:
  if (opened) qs_model_close(&m);
  free(ids);
  return status == QS_OK ? 0 : 1;
}

// The engine behind `quantize --eval` (eval.h): same windows, same per-window NLLs, same ordered
// sum as `qshard eval`, on a model whose layers are already in memory.
qs_status qs_eval_model(struct qs_comm *world, struct qs_model *m, const char *data, int seqlen,
                        long long max_windows, const struct qs_eval_device *dev, struct qs_eval_result *r) {
  qs_status status = QS_OK;
  struct qs_eval_opts o = {.model = m->dir, .data = data, .seqlen = seqlen, .max_windows = max_windows};
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
