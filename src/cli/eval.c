// eval.c — the command line of `qshard eval`: options, the result line and --json; the windows, the
// forward passes and the ordered sum are model/eval.h's.
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "comm.h"
#include "io/outdir.h"
#include "model/device.h"
#include "model/eval.h"

struct qs_eval_opts {
  struct qs_eval_request r;
  const char *json;
  const char *reference; // --reference DIR: the model to compare with (KL divergence, top-1 agreement)
  struct qs_eval_device dev;
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
          "  --reference DIR    also the original (unquantized) model: on the same windows its perplexity, the\n"
          "                     KL divergence KL(reference || model) per predicted token (mean, 99th\n"
          "                     percentile, max), top-1 agreement and the mean change of the correct token's\n"
          "                     probability (llama.cpp's --kl-divergence statistics); on --device with\n"
          "                     --precision, both perplexities exactly as `qshard eval` of each model alone\n"
          "  --json FILE        also write {\"ppl\", \"nll\", \"windows\", \"tokens\", \"seqlen\", ...} to FILE\n"
          "\n"
          "output (rank 0): progress lines, then\n"
          "  ppl <P> nll <mean NLL> windows <W> tokens <W*seqlen> predicted <W*(seqlen-1)> seqlen <S>\n"
          "  reference ppl <P_ref> (<change> %%) kld <mean> p99 <p99> max <max> top1 <%%> dp <mean>   (--reference)\n"
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
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--model"))) o->r.model = v;
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--data"))) o->r.data = v;
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--dataset"))) o->r.dataset = v;
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--json"))) o->json = v;
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--reference"))) o->reference = v;
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--device"))) {
      if ((o->dev.kind = qs_device_parse(v)) < 0) { snprintf(err, errlen, "--device '%s': expected cuda, cpu or auto", v); bad = 1; }
    } else if ((v = qs_eval_opt_value(argc, argv, &i, "--precision"))) {
      if (strcmp(v, "bf16") && strcmp(v, "fp32")) { snprintf(err, errlen, "--precision '%s': expected bf16 or fp32", v); bad = 1; }
      o->dev.f32 = !strcmp(v, "fp32");
    }
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--seqlen")))
      bad = qs_eval_parse_int("--seqlen", v, 2, 1 << 24, &o->r.seqlen, err, errlen);
    else if ((v = qs_eval_opt_value(argc, argv, &i, "--eval-windows")))
      bad = qs_eval_parse_int("--eval-windows", v, 1, (long long)1 << 40, &o->r.max_windows, err, errlen);
    else {
      snprintf(err, errlen, "unknown option or missing value '%s'", argv[i]);
      bad = 1;
    }
    if (bad) return -1;
  }
  if (!*help && (!o->r.model || !o->r.data)) {
    snprintf(err, errlen, "--model DIR and --data FILE are required");
    return -1;
  }
  return 0;
}

static qs_status qs_eval_write_json(const char *path, const struct qs_eval_opts *o, const struct qs_eval_plan *p,
                                    double nll_sum, const struct qs_eval_cmp *c, double seconds, int ranks) {
  qs_status status = QS_OK;
  double pred = (double)p->n_windows * (p->seqlen - 1);
  json_t *j = json_pack("{s:f, s:f, s:f, s:I, s:I, s:I, s:i, s:I, s:s, s:s, s:s, s:f, s:i}", "ppl",
                        exp(nll_sum / pred), "nll", nll_sum / pred, "nll_sum", nll_sum, "windows",
                        (json_int_t)p->n_windows, "tokens", (json_int_t)p->n_windows * p->seqlen, "predicted",
                        (json_int_t)p->n_windows * (p->seqlen - 1), "seqlen", p->seqlen, "windows_available",
                        (json_int_t)p->n_avail, "model", o->r.model, "data", o->r.data, "dataset",
                        o->r.dataset ? o->r.dataset : "/input_ids", "seconds", seconds, "ranks", ranks);
  if (!j) QS_FAIL(QS_ERR_OOM, "%s: cannot build the JSON report", path);
  if (c && json_object_set_new(j, "reference", json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f}", "model",
                                                         o->reference, "ppl", exp(c->nll_ref / pred), "kld_mean",
                                                         c->kld_mean, "kld_p99", c->kld_p99, "kld_max", c->kld_max,
                                                         "top1_agreement", c->top1, "dp_mean", c->dp_mean)))
    QS_FAIL(QS_ERR_OOM, "%s: cannot build the JSON report", path);
  QS_TRY(qs_json_write_file(path, j, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)));
fail:
  json_decref(j);
  return status;
}

// Prints the result (rank 0) and writes --json.
static qs_status qs_eval_report(struct qs_comm *world, const struct qs_eval_opts *o, const struct qs_eval_plan *p,
                                double nll_sum, const struct qs_eval_cmp *c, double t0, double t_load) {
  qs_status status = QS_OK;
  int size = qs_comm_size(world);
  double pred = (double)p->n_windows * (p->seqlen - 1);
  double seconds = qs_time_now() - t0;
  if (qs_comm_rank(world) == 0) {
    printf("ppl %.6f nll %.9f windows %lld tokens %lld predicted %lld seqlen %d\n", exp(nll_sum / pred),
           nll_sum / pred, p->n_windows, p->n_windows * p->seqlen, p->n_windows * (p->seqlen - 1), p->seqlen);
    if (c)
      printf("reference ppl %.6f (%+.2f %%) kld %.6f p99 %.6f max %.6f top1 %.2f %% dp %+.6f\n", exp(c->nll_ref / pred),
             100.0 * (exp((nll_sum - c->nll_ref) / pred) - 1.0), c->kld_mean, c->kld_p99, c->kld_max, 100.0 * c->top1,
             c->dp_mean);
    printf("time %.2f s load %.2f s ranks %d windows/s %.3f\n", seconds, t_load, size,
           (double)p->n_windows / QS_MAX(seconds - t_load, 1e-9));
    fflush(stdout);
    if (o->json) QS_TRY(qs_eval_write_json(o->json, o, p, nll_sum, c, seconds, size));
  }
fail:
  return status;
}

int qs_cmd_eval(struct qs_comm *world, int argc, char **argv) {
  struct qs_eval_opts o;
  struct qs_eval_plan p;
  struct qs_model m, ref;
  struct qs_eval_cmp cmp;
  int help = 0, opened = 0, ref_opened = 0, rank = qs_comm_rank(world);
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
  // The model first: its config (which a format's own directory layout may hold) checks the ids.
  if ((status = qs_eval_open_model(world, o.r.model, o.dev.kind, &m, &opened)) != QS_OK) goto fail;
  if (o.reference && (status = qs_eval_open_model(world, o.reference, o.dev.kind, &ref, &ref_opened)) != QS_OK) goto fail;
  if ((status = qs_eval_share_tokens(world, &o.r, &m.cfg, &p, &ids)) != QS_OK) goto fail;
  t_load = qs_time_now() - t0;
  qs_log0("eval: %s on %s, load %.2f s", o.r.model, o.r.data, t_load);
  if (o.reference) {
    QS_TRY(qs_eval_compare(world, &m, &ref, &p, ids, &o.dev, t0, &cmp));
    nll_sum = cmp.nll_q;
  } else {
    QS_TRY(qs_eval_windows(world, &m, &p, ids, &o.dev, t0, &nll_sum));
  }
  QS_TRY(qs_eval_report(world, &o, &p, nll_sum, o.reference ? &cmp : NULL, t0, t_load));
fail:
  if (opened) qs_model_close(&m);
  if (ref_opened) qs_model_close(&ref);
  free(ids);
  return status == QS_OK ? 0 : 1;
}

