// quantize.c — `qshard quantize`: layer-by-layer GPTQ / RTN on the CPU, exact under MPI, written as
// a GPTQ v1 checkpoint (see quantize_layer.c for the per-group step, gptq_ckpt.c for the output).
//
// Pipeline (DESIGN.md "Numerics"): the calibration samples are split over the ranks and embedded;
// then for each decoder layer l: load l, run it forward once on this rank's samples, and at each
// linear group (q/k/v, o, gate/up, down) — just before the group is applied — form the Hessian of
// its input over all samples, quantize the group's modules, and apply the quantized weights. The
// layer's outputs, computed with its quantized modules, are the inputs of layer l+1.
// With --stages S > 1 (stages.h) every stage runs this loop on its own layers at once, from the
// full-precision activations at its first layer, and rank 0 assembles the stages' layer files.
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "io/calib.h"
#include "cli/commands.h"
#include "model/device.h"
#include "model/eval.h"
#include "io/outdir.h"
#include "run/progress.h"
#include "run/qstate.h"
#include "run/quantize.h"
#include "run/stages.h"
#include "formats/trtllm.h"

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
          "  --tp T                 also write OUT/trtllm/: a TensorRT-LLM checkpoint for T tensor-parallel\n"
          "                         ranks (config.json, rank{t}.safetensors; 4-bit W4A16_GPTQ, see README)\n"
          "  --device cuda|cpu|auto where to run (default auto: cuda when built with CUDA and every rank\n"
          "                         sees a GPU; one MPI rank per GPU, local rank -> device)\n"
          "  --precision bf16|fp32  cuda: dtype of the calibration forward and of the Hessian inputs\n"
          "                         (default bf16, fp32 accumulation; fp32 = the all-fp32 path, as the CPU;\n"
          "                         --hessian-precision is the same option)\n"
          "  --factor-precision fp32|fp64  cuda: the inverse-Hessian factorization (default fp32)\n"
          "  --eval FILE.h5         perplexity of the written checkpoint (on --device), in quant_report.json\n"
          "  --eval-seqlen L        (default --seqlen)   --eval-windows N  score only the first N windows\n"
          "  --force                replace an existing --out; without --resume, discard OUT.partial/\n"
          "  --resume               continue an interrupted run from OUT.partial/ (same model, data, options\n"
          "                         and rank count, else refused); starts from scratch when there is none\n"
          "  --state-interval S     seconds between saves of the resume state (0: after every layer; default 0\n"
          "                         on the CPU, 600 on GPUs, where a layer takes seconds and the saved\n"
          "                         activations are GBs per rank)\n"
          "  --metrics-file FILE    Prometheus text file (node-exporter textfile collector) rewritten after\n"
          "                         every layer: layers done/total, seconds per layer, ETA, peak memory\n"
          "  --log-json             progress lines as JSON objects, one per line\n"
          "  --stages S             S pipeline stages x P/S data ranks (default 1: exact GPTQ): world ranks\n"
          "                         [s*P/S, (s+1)*P/S) quantize a contiguous layer range (balanced by parameter\n"
          "                         count) from the full-precision activations at its first layer, all stages\n"
          "                         at once; only the stage boundaries differ from S = 1 (CPU engine; OUT must\n"
          "                         be on a filesystem every stage sees)\n"
          "Writes OUT/ (in OUT.partial/ until complete, with the resume state in OUT.partial/.state/):\n"
          "model*.safetensors, config.json with quantization_config, quantize_config.json, tokenizer files,\n"
          "quant_report.json.\n");
}

enum { OPT_ASYM = 256, OPT_SYM, OPT_ACT, OPT_STATIC, OPT_EVAL_SEQ, OPT_EVAL_WIN, OPT_SHARD, OPT_GS, OPT_DEVICE,
       OPT_PREC, OPT_FPREC, OPT_TP };

enum { OPT_RESUME = 512, OPT_STATE_INT, OPT_METRICS, OPT_LOG_JSON }; // resume and progress (qstate.h, progress.h)
enum { OPT_STAGES = 768 };                                            // the stage x data grid (stages.h)

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
      {"resume", 0, 0, OPT_RESUME}, {"state-interval", 1, 0, OPT_STATE_INT}, {"metrics-file", 1, 0, OPT_METRICS},
      {"log-json", 0, 0, OPT_LOG_JSON}, {"stages", 1, 0, OPT_STAGES},
      {"device", 1, 0, OPT_DEVICE}, {"precision", 1, 0, OPT_PREC}, {"hessian-precision", 1, 0, OPT_PREC},
      {"factor-precision", 1, 0, OPT_FPREC}, {"tp", 1, 0, OPT_TP}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  long long v = 0;
  *a = (struct qs_qargs){.q = qs_quant_opts_default(), .samples = 128, .max_shard_mb = 4096, .stages = 1,
                         .state_interval = -1};
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
    case OPT_RESUME: a->resume = 1; break;
    case OPT_LOG_JSON: a->log_json = 1; break;
    case OPT_METRICS: a->metrics_file = optarg; break;
    case OPT_STATE_INT: if (parse_num("--state-interval", optarg, 0, 1ll << 40, &v)) return -1; a->state_interval = v; break;
    case OPT_SYM: a->q.sym = 1; break;
    case OPT_ASYM: a->q.sym = 0; break;
    case OPT_ACT: a->q.act_order = 1; break;
    case OPT_STATIC: a->q.static_groups = 1; break;
    case 'h': usage(stdout); return 1;
    case OPT_DEVICE:
      if ((a->device = qs_device_parse(optarg)) < 0) {
        fprintf(stderr, "qshard quantize: --device '%s': expected cuda, cpu or auto\n", optarg);
        return -1;
      }
      break;
    case OPT_PREC:
      if (strcmp(optarg, "bf16") && strcmp(optarg, "fp32")) {
        fprintf(stderr, "qshard quantize: --precision '%s': expected bf16 or fp32\n", optarg);
        return -1;
      }
      a->precision_f32 = !strcmp(optarg, "fp32");
      break;
    case OPT_FPREC:
      if (strcmp(optarg, "fp32") && strcmp(optarg, "fp64")) {
        fprintf(stderr, "qshard quantize: --factor-precision '%s': expected fp32 or fp64\n", optarg);
        return -1;
      }
      a->factor_f64 = !strcmp(optarg, "fp64");
      break;
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
    case OPT_TP: if (parse_num("--tp", optarg, 1, 4096, &v)) return -1; a->tp = (int)v; break;
    case OPT_STAGES: if (parse_num("--stages", optarg, 1, 1 << 20, &v)) return -1; a->stages = (int)v; break;
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

// Every layer of this rank's stage (all layers when S = 1) not yet done (all, unless --resume restored
// some) through the engine, in order; each completed layer's packed tensors go to its file in the
// state directory (qstate.h).
static qs_status quantize_layers(struct qs_qrun *run) {
  qs_status status = QS_OK;
  struct qs_progress p;
  QS_TRY(qs_progress_init(&p, run, run->state->completed));
  for (int l = run->state->completed; l < run->grid->l1; l++) {
    double t0 = qs_time_now();
    int first = run->n_reports;
    run->layer = l;
    QS_TRY(qs_qstate_layer_begin(run->state, run, l));
    QS_TRY(run->engine->layer(run->engine, run, l));
    QS_TRY(qs_progress_layer(&p, run, first, qs_time_now() - t0));
    QS_TRY(qs_qstate_layer_end(run->state, run, l)); // the layer's file; the state when due
  }
fail:
  return status;
}

// Rank 0: every tensor, the index and the config files into tmp (the report comes last).
static qs_status write_checkpoint(struct qs_qrun *run, const char *tmp) {
  qs_status status = QS_OK;
  QS_TRY(qs_qstate_assemble(run->state, run, tmp)); // the layers' packed tensors, from their files
  QS_TRY(qs_gptq_ckpt_add_rest(run));
  QS_TRY(qs_st_writer_finish(run->writer));
  QS_TRY(qs_gptq_ckpt_write_configs(run, tmp));
fail:
  return status;
}

static qs_status write_report(struct qs_qrun *run, const char *tmp, double seconds, json_t *eval) {
  qs_status status = QS_OK;
  json_t *rep = qs_qreport_json(run, seconds, eval);
  if (!rep) QS_FAIL(QS_ERR_OOM, "out of memory building the report");
  QS_TRY(qs_outdir_write_json(tmp, "quant_report.json", rep));
fail:
  json_decref(rep);
  return status;
}

static json_t *eval_json(const struct qs_eval_result *r, const char *data) {
  return json_pack("{s:s, s:f, s:f, s:I, s:I, s:I, s:i, s:f}", "data", data, "ppl", r->ppl, "nll", r->nll,
                   "windows", (json_int_t)r->windows, "tokens", (json_int_t)r->tokens, "predicted",
                   (json_int_t)r->predicted, "seqlen", r->seqlen, "seconds", r->seconds);
}

// --eval: the checkpoint as written in tmp (rank 0's directory, named to every rank), opened and
// scored on the run's device — exactly what a later `qshard eval` of the output reports.
static qs_status eval_checkpoint(struct qs_qrun *run, const char *tmp, json_t **ej) {
  qs_status status = QS_OK;
  const struct qs_qargs *a = run->a;
  struct qs_model q = {0};
  struct qs_eval_result er = {0};
  struct qs_eval_device dev = {.kind = a->device, .f32 = a->precision_f32};
  char path[4096] = {0};
  int opened = 0, ok;
  if (qs_comm_rank(run->world) == 0) snprintf(path, sizeof(path), "%s", tmp);
  QS_TRY(qs_comm_bcast(run->world, path, sizeof(path), 0));
  qs_status st = qs_model_open(&q, path);
  ok = opened = st == QS_OK;
  QS_TRY(qs_comm_allreduce_and(run->world, &ok));
  if (!ok) QS_FAIL(QS_ERR_IO, "--eval: the written checkpoint %s could not be opened on every rank", path);
  QS_TRY(qs_eval_model(run->world, &q, a->eval_data, a->eval_seqlen ? a->eval_seqlen : run->T, a->eval_windows,
                       &dev, &er));
  *ej = eval_json(&er, a->eval_data);
  if (a->log_json) qs_progress_note(run, "eval", json_deep_copy(*ej), "eval");
  else qs_eval_print(&er, a->eval_data);
fail:
  if (opened) qs_model_close(&q);
  return status;
}

static qs_status start_engine(struct qs_qrun *run, const struct qs_calib *cal) {
  qs_status status = QS_OK;
  if (run->a->device == QS_DEVICE_KIND_CUDA) {
#ifdef QS_USE_CUDA
    QS_TRY(qs_qengine_cuda_init(run, cal, &run->engine));
#else
    QS_FAIL(QS_ERR_UNSUPPORTED, "built without CUDA");
#endif
  } else {
    QS_TRY(qs_qengine_cpu_init(run, cal, &run->engine));
  }
  if (cal)
    qs_progress_note(run, "calibration", json_pack("{s:i, s:i, s:s, s:s, s:I}", "samples", cal->n, "seqlen",
                                                   cal->seqlen, "calib", run->a->calib, "engine", run->engine->name,
                                                   "samples_rank0", (json_int_t)(run->s1 - run->s0)),
                     "calibration: %d samples x %d tokens from %s on %s, %lld on rank 0", cal->n, cal->seqlen,
                     run->a->calib, run->engine->name, run->s1 - run->s0);
fail:
  return status;
}

// Everything after the arguments and the model: collective; a failure here leaves peers inside a
// collective, so the caller aborts the job when there is more than one rank.
static qs_status quantize_run(struct qs_qrun *run, const char *tmp) {
  qs_status status = QS_OK;
  const struct qs_qargs *a = run->a;
  struct qs_calib cal = {0};
  json_t *ej = NULL;
  double t0 = qs_time_now();
  if (a->calib) {
    int seqlen = a->seqlen ? a->seqlen : QS_MIN(2048, run->m->cfg.max_pos);
    QS_TRY(qs_calib_load(a->calib, a->samples, seqlen, a->seed, run->m->cfg.vocab, &cal));
  }
  QS_TRY(start_engine(run, a->calib ? &cal : NULL));
  if (a->tp) QS_TRY(qs_trtllm_init(run, tmp));
  QS_TRY(qs_qstate_init(run->state, run)); // --resume: the completed layers restored
  QS_TRY(qs_stages_boundary(run, a->calib ? &cal : NULL)); // S > 1: each stage's FP input activations
  QS_TRY(quantize_layers(run));
  run->engine->free(run->engine); // its device memory is the evaluation's
  run->engine = NULL;
  QS_TRY(qs_stages_join(run)); // S > 1: every stage done; every module's report on every rank
  double seconds = qs_time_now() - t0;
  qs_progress_note(run, "quantized", json_pack("{s:i, s:f}", "layers", run->m->cfg.n_layers, "seconds", seconds),
                   "quantized %d layers in %.2f s", run->m->cfg.n_layers, seconds);
  if (qs_comm_rank(run->world) == 0) QS_TRY(write_checkpoint(run, tmp));
  if (a->tp) QS_TRY(qs_trtllm_finish(run)); // writer ranks, in parallel
  if (a->eval_data) QS_TRY(eval_checkpoint(run, tmp, &ej));
  if (qs_comm_rank(run->world) == 0) {
    json_t *e = ej; // stolen by the report
    ej = NULL;
    QS_TRY(write_report(run, tmp, seconds, e));
    QS_TRY(qs_qstate_finish(run->state)); // the checkpoint is complete: the state goes
  }
fail:
  json_decref(ej);
  qs_calib_free(&cal);
  return status;
}

static void qrun_free(struct qs_qrun *run) {
  if (run->engine) run->engine->free(run->engine);
  qs_trtllm_free(run->trtllm);
  qs_st_writer_free(run->writer);
  for (int i = 0; i < run->n_replaced; i++) free(run->replaced[i]);
  free(run->replaced);
  free(run->reports);
  qs_qstate_free(run->state);
}

int qs_cmd_quantize(struct qs_comm *world, int argc, char **argv) {
  struct qs_qargs a;
  struct qs_model m = {0};
  struct qs_qstate state = {0};
  struct qs_stages grid = {0};
  struct qs_qrun run = {.world = world, .data = world, .a = &a, .m = &m, .state = &state, .grid = &grid};
  char *tmp = NULL;
  int pr = parse_args(argc, argv, &a), ok = 1, rc = 1;
  if (pr != 0) return pr > 0 ? 0 : 2;
  if (a.log_json) qs_log_set_json(1); // every log line of the run a JSON object (progress.h)
  if (qs_device_resolve(world, &a.device) != QS_OK) return 1;
  if (a.state_interval < 0) a.state_interval = a.device == QS_DEVICE_KIND_CUDA ? 600 : 0;
  if (qs_model_open(&m, a.model) != QS_OK) return 1;
  if (qs_stages_check(world, &a, &m) != QS_OK) goto done;          // before any work or output
  if (a.tp && qs_trtllm_check(world, &a, &m) != QS_OK) goto done; // before any work or output
  if (qs_stages_init(&grid, world, a.stages, &m) != QS_OK) goto done;
  run.data = grid.data;
  if (qs_comm_rank(world) == 0) ok = qs_qstate_begin_dir(a.out, a.force, a.resume, &tmp) == QS_OK; // OUT.partial
  if (qs_comm_allreduce_and(world, &ok) != QS_OK || !ok) goto done;
  if (quantize_run(&run, tmp) != QS_OK) {
    qs_qstate_abort_dir(tmp); // kept when it holds a saved state
    if (qs_comm_size(world) > 1) qs_comm_abort(world, 1);
    goto done;
  }
  if (qs_comm_rank(world) == 0) {
    if (qs_outdir_commit(tmp, a.out, a.force) != QS_OK) { qs_outdir_abort(tmp); ok = 0; }
    else qs_progress_note(&run, "wrote", json_pack("{s:s}", "out", a.out), "wrote %s", a.out);
  }
  if (qs_comm_allreduce_and(world, &ok) == QS_OK && ok) rc = 0;
done:
  qrun_free(&run);
  qs_stages_free(&grid);
  qs_model_close(&m);
  free(tmp);
  return rc;
}
