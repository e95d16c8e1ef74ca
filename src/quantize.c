// quantize.c — `qshard quantize`: layer-by-layer GPTQ / RTN on the CPU, exact under MPI, written as
// a GPTQ v1 checkpoint (see quantize_layer.c for the per-group step, gptq_ckpt.c for the output).
//
// Pipeline (DESIGN.md "Numerics"): the calibration samples are split over the ranks and embedded;
// then for each decoder layer l: load l, run it forward once on this rank's samples, and at each
// linear group (q/k/v, o, gate/up, down) — just before the group is applied — form the Hessian of
// its input over all samples, quantize the group's modules, and apply the quantized weights. The
// layer's outputs, computed with its quantized modules, are the inputs of layer l+1.
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "calib.h"
#include "commands.h"
#include "eval.h"
#include "outdir.h"
#include "quantize.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: qshard quantize --model DIR --calib FILE.h5 --out DIR [options]\n"
          "  --method gptq|rtn      algorithm (default gptq; rtn may omit --calib)\n"
          "  --bits 2|3|4|8         weight bits (default 4)\n"
          "  --group-size N         columns per scale group: 32, 64, 128 or -1 = per row (default 128;\n"
          "                         a ragged last group is allowed)\n"
          "  --sym | --asym         symmetric (default; what vLLM's Marlin kernels take) or min/max grid\n"
          "  --act-order            quantize columns by decreasing Hessian diagonal (desc_act)\n"
          "  --static-groups        with --act-order: groups fixed on contiguous columns first\n"
          "  --damp F               damping, fraction of mean(diag H) (default 0.01; raised x10 on failure)\n"
          "  --block N              GPTQ lazy-update block in columns (default 128)\n"
          "  --samples N            calibration windows cut from a 1-D stream (default 128)\n"
          "  --seqlen L             tokens per calibration window (default min(2048, max positions))\n"
          "  --seed S               seed of the window offsets (default 0; see calib.h)\n"
          "  --format gptq          output format (GPTQ v1: vLLM, transformers/optimum, AutoGPTQ)\n"
          "  --max-shard-size MB    safetensors shard size (default 4096)\n"
          "  --eval FILE.h5         perplexity of the quantized model as computed, before packing\n"
          "  --eval-seqlen L        (default --seqlen)   --eval-windows N  score only the first N windows\n"
          "  --force                replace an existing --out\n"
          "Writes OUT/ (under OUT.tmp.PID until complete): model*.safetensors, config.json with\n"
          "quantization_config, quantize_config.json, tokenizer files, quant_report.json.\n");
}

enum { OPT_ASYM = 256, OPT_SYM, OPT_ACT, OPT_STATIC, OPT_EVAL_SEQ, OPT_EVAL_WIN, OPT_SHARD, OPT_GS };

static int parse_num(const char *opt, const char *v, long long lo, long long hi, long long *out) {
  char *end = NULL;
  long long x = strtoll(v, &end, 10);
  if (!*v || *end || x < lo || x > hi) {
    fprintf(stderr, "qshard quantize: %s '%s': expected an integer in [%lld, %lld]\n", opt, v, lo, hi);
    return -1;
  }
  *out = x;
  return 0;
}

// Returns 0 ok, 1 help printed, -1 error (message printed).
static int parse_args(int argc, char **argv, struct qs_qargs *a) {
  static const struct option opts[] = {
      {"model", 1, 0, 'm'}, {"calib", 1, 0, 'c'}, {"out", 1, 0, 'o'}, {"method", 1, 0, 'M'},
      {"bits", 1, 0, 'b'}, {"group-size", 1, 0, OPT_GS}, {"sym", 0, 0, OPT_SYM}, {"asym", 0, 0, OPT_ASYM},
      {"act-order", 0, 0, OPT_ACT}, {"static-groups", 0, 0, OPT_STATIC}, {"damp", 1, 0, 'd'},
      {"block", 1, 0, 'B'}, {"samples", 1, 0, 'n'}, {"seqlen", 1, 0, 'L'}, {"seed", 1, 0, 's'},
      {"format", 1, 0, 'f'}, {"max-shard-size", 1, 0, OPT_SHARD}, {"eval", 1, 0, 'e'},
      {"eval-seqlen", 1, 0, OPT_EVAL_SEQ}, {"eval-windows", 1, 0, OPT_EVAL_WIN}, {"force", 0, 0, 'F'},
      {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  long long v = 0;
  *a = (struct qs_qargs){.q = qs_quant_opts_default(), .samples = 128, .max_shard_mb = 4096};
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'm': a->model = optarg; break;
    case 'c': a->calib = optarg; break;
    case 'o': a->out = optarg; break;
    case 'e': a->eval_data = optarg; break;
    case 'F': a->force = 1; break;
    case OPT_SYM: a->q.sym = 1; break;
    case OPT_ASYM: a->q.sym = 0; break;
    case OPT_ACT: a->q.act_order = 1; break;
    case OPT_STATIC: a->q.static_groups = 1; break;
    case 'h': usage(stdout); return 1;
    case 'M':
      if (!strcmp(optarg, "gptq")) a->method = QS_QMETHOD_GPTQ;
      else if (!strcmp(optarg, "rtn")) a->method = QS_QMETHOD_RTN;
      else { fprintf(stderr, "qshard quantize: --method '%s': expected gptq or rtn\n", optarg); return -1; }
      break;
    case 'f':
      if (strcmp(optarg, "gptq")) {
        fprintf(stderr, "qshard quantize: --format '%s': this build writes gptq\n", optarg);
        return -1;
      }
      break;
    case 'd': {
      char *end = NULL;
      a->q.damp = strtof(optarg, &end);
      if (!*optarg || *end) { fprintf(stderr, "qshard quantize: --damp '%s': not a number\n", optarg); return -1; }
      break;
    }
    case 'b': if (parse_num("--bits", optarg, 2, 8, &v)) return -1; a->q.bits = (int)v; break;
    case OPT_GS: if (parse_num("--group-size", optarg, -1, 1 << 20, &v)) return -1; a->q.group_size = (int)v; break;
    case 'B': if (parse_num("--block", optarg, 1, 1 << 16, &v)) return -1; a->q.block_size = (int)v; break;
    case 'n': if (parse_num("--samples", optarg, 1, 1 << 24, &v)) return -1; a->samples = (int)v; break;
    case 'L': if (parse_num("--seqlen", optarg, 1, 1 << 22, &v)) return -1; a->seqlen = (int)v; break;
    case 's': if (parse_num("--seed", optarg, 0, (1ll << 62), &v)) return -1; a->seed = (unsigned long long)v; break;
    case OPT_SHARD: if (parse_num("--max-shard-size", optarg, 1, 1 << 30, &v)) return -1; a->max_shard_mb = v; break;
    case OPT_EVAL_SEQ: if (parse_num("--eval-seqlen", optarg, 2, 1 << 22, &v)) return -1; a->eval_seqlen = (int)v; break;
    case OPT_EVAL_WIN: if (parse_num("--eval-windows", optarg, 1, 1ll << 40, &v)) return -1; a->eval_windows = v; break;
    default:
      fprintf(stderr, "qshard quantize: unknown or incomplete option '%s' (see --help)\n", argv[optind - 1]);
      return -1;
    }
  }
  if (optind < argc) { fprintf(stderr, "qshard quantize: unexpected argument '%s'\n", argv[optind]); return -1; }
  if (!a->model || !a->out) { fprintf(stderr, "qshard quantize: --model and --out are required\n"); return -1; }
  if (!a->calib && a->method == QS_QMETHOD_GPTQ) { fprintf(stderr, "qshard quantize: gptq needs --calib\n"); return -1; }
  if (a->q.bits != 2 && a->q.bits != 3 && a->q.bits != 4 && a->q.bits != 8) {
    fprintf(stderr, "qshard quantize: --bits %d: expected 2, 3, 4 or 8\n", a->q.bits);
    return -1;
  }
  if (a->q.static_groups && !a->q.act_order) { fprintf(stderr, "qshard quantize: --static-groups needs --act-order\n"); return -1; }
  if (a->method == QS_QMETHOD_RTN && a->q.act_order) { fprintf(stderr, "qshard quantize: --act-order is a GPTQ option\n"); return -1; }
  if (!a->q.sym) a->q.min_zero = 1; // GPTQ v1 stores zero - 1 (quant.h)
  return 0;
}

// Calibration samples of this rank, embedded: x [B, T, hidden].
static qs_status embed_samples(struct qs_qrun *run, const struct qs_calib *cal, float **x) {
  qs_status status = QS_OK;
  int hidden = run->m->cfg.hidden;
  long long B = run->s1 - run->s0;
  QS_ALLOC(*x, (size_t)B * (size_t)cal->seqlen * (size_t)hidden);
  for (long long b = 0; b < B; b++)
    qs_model_embed(run->m, cal->ids + (size_t)(run->s0 + b) * cal->seqlen, cal->seqlen,
                   *x + (size_t)b * cal->seqlen * hidden);
fail:
  return status;
}

static void print_layer_reports(const struct qs_qrun *run, int first, double seconds, int n_layers) {
  for (int i = first; i < run->n_reports; i++) {
    const struct qs_qreport *r = &run->reports[i];
    qs_log0("  %-36s [%6d x %6d]  loss %-10.4g rel.err %-8.4g damp %-6g %6.2fs%s", r->name, r->n, r->k,
            r->loss, r->rel_err, (double)r->damp, r->seconds, r->packed ? "" : "  (unpackable: kept dense)");
  }
  qs_log0("layer %d/%d quantized in %.2f s (peak host memory %.2f GiB)", run->layer + 1, n_layers, seconds,
          (double)qs_peak_rss_bytes() / (1 << 30));
}

// Quantizes every layer; with keep, the quantized layers stay in m->layers (for --eval).
static qs_status quantize_layers(struct qs_qrun *run, float *x, int keep) {
  qs_status status = QS_OK;
  struct qs_fwd ws = {0};
  struct qs_layer L = {0};
  const struct qs_config *cfg = &run->m->cfg;
  int B = (int)(run->s1 - run->s0);
  if (x) QS_TRY(qs_fwd_init(&ws, cfg, B, run->T));
  if (keep && !run->m->layers) QS_ALLOC(run->m->layers, cfg->n_layers);
  for (int l = 0; l < cfg->n_layers; l++) {
    double t0 = qs_time_now();
    int first = run->n_reports;
    run->layer = l;
    QS_TRY(qs_model_load_layer(run->m, l, &L));
    if (x) QS_TRY(qs_layer_forward(cfg, run->m->rope_inv_freq, &L, x, B, run->T, &ws, qs_quantize_group, run));
    else QS_TRY(qs_quantize_layer_weights_only(run, &L));
    print_layer_reports(run, first, qs_time_now() - t0, cfg->n_layers);
    if (keep) run->m->layers[l] = L;
    else qs_layer_free(&L);
    memset(&L, 0, sizeof(L));
  }
fail:
  qs_layer_free(&L);
  qs_fwd_free(&ws);
  return status;
}

static qs_status write_checkpoint(struct qs_qrun *run, const char *tmp, double seconds, json_t *eval) {
  qs_status status = QS_OK;
  json_t *rep = NULL;
  QS_TRY(qs_gptq_ckpt_add_rest(run));
  QS_TRY(qs_st_writer_finish(run->writer));
  QS_TRY(qs_gptq_ckpt_write_configs(run, tmp));
  rep = qs_qreport_json(run, seconds, eval);
  eval = NULL;
  if (!rep) QS_FAIL(QS_ERR_OOM, "out of memory building the report");
  QS_TRY(qs_outdir_write_json(tmp, "quant_report.json", rep));
fail:
  json_decref(rep);
  json_decref(eval);
  return status;
}

static json_t *eval_json(const struct qs_eval_result *r, const char *data) {
  return json_pack("{s:s, s:f, s:f, s:I, s:I, s:I, s:i, s:f}", "data", data, "ppl", r->ppl, "nll", r->nll,
                   "windows", (json_int_t)r->windows, "tokens", (json_int_t)r->tokens, "predicted",
                   (json_int_t)r->predicted, "seqlen", r->seqlen, "seconds", r->seconds);
}

// Everything after the arguments and the model: collective; a failure here leaves peers inside a
// collective, so the caller aborts the job when there is more than one rank.
static qs_status quantize_run(struct qs_qrun *run, const char *tmp) {
  qs_status status = QS_OK;
  const struct qs_qargs *a = run->a;
  struct qs_calib cal = {0};
  struct qs_eval_result er = {0};
  float *x = NULL;
  json_t *ej = NULL;
  double t0 = qs_time_now();
  int P = qs_comm_size(run->world);
  if (a->calib) {
    int seqlen = a->seqlen ? a->seqlen : QS_MIN(2048, run->m->cfg.max_pos);
    QS_TRY(qs_calib_load(a->calib, a->samples, seqlen, a->seed, run->m->cfg.vocab, &cal));
    if (cal.n < P) QS_FAIL(QS_ERR_ARG, "%d calibration samples for %d ranks: need at least one per rank", cal.n, P);
    run->n_samples = cal.n;
    run->T = cal.seqlen;
    qs_comm_split_range(cal.n, P, qs_comm_rank(run->world), &run->s0, &run->s1);
    QS_TRY(embed_samples(run, &cal, &x));
    qs_log0("calibration: %d samples x %d tokens from %s, %d per rank", cal.n, cal.seqlen, a->calib,
            (int)(run->s1 - run->s0));
  }
  if (qs_comm_rank(run->world) == 0)
    QS_TRY(qs_st_writer_init(&run->writer, tmp, (uint64_t)a->max_shard_mb << 20));
  QS_TRY(quantize_layers(run, x, a->eval_data != NULL));
  double seconds = qs_time_now() - t0;
  qs_log0("quantized %d layers in %.2f s", run->m->cfg.n_layers, seconds);
  if (a->eval_data) {
    QS_TRY(qs_eval_model(run->world, run->m, a->eval_data, a->eval_seqlen ? a->eval_seqlen : run->T,
                         a->eval_windows, &er));
    qs_eval_print(&er, a->eval_data);
    ej = eval_json(&er, a->eval_data);
  }
  if (qs_comm_rank(run->world) == 0) {
    QS_TRY(write_checkpoint(run, tmp, seconds, ej));
    ej = NULL;
  }
fail:
  json_decref(ej);
  free(x);
  qs_calib_free(&cal);
  return status;
}

static void qrun_free(struct qs_qrun *run) {
  qs_st_writer_free(run->writer);
  for (int i = 0; i < run->n_replaced; i++) free(run->replaced[i]);
  free(run->replaced);
  free(run->reports);
}

int qs_cmd_quantize(struct qs_comm *world, int argc, char **argv) {
  struct qs_qargs a;
  struct qs_model m = {0};
  struct qs_qrun run = {.world = world, .a = &a, .m = &m};
  char *tmp = NULL;
  int pr = parse_args(argc, argv, &a), ok = 1, rc = 1;
  if (pr != 0) return pr > 0 ? 0 : 2;
  if (qs_model_open(&m, a.model) != QS_OK) return 1;
  if (qs_comm_rank(world) == 0) ok = qs_outdir_begin(a.out, a.force, &tmp) == QS_OK;
  if (qs_comm_allreduce_and(world, &ok) != QS_OK || !ok) goto done;
  if (quantize_run(&run, tmp) != QS_OK) {
    qs_outdir_abort(tmp);
    if (qs_comm_size(world) > 1) qs_comm_abort(world, 1);
    goto done;
  }
  if (qs_comm_rank(world) == 0) {
    if (qs_outdir_commit(tmp, a.out, a.force) != QS_OK) { qs_outdir_abort(tmp); ok = 0; }
    else qs_log0("wrote %s", a.out);
  }
  if (qs_comm_allreduce_and(world, &ok) == QS_OK && ok) rc = 0;
done:
  qrun_free(&run);
  qs_model_close(&m);
  free(tmp);
  return rc;
}
