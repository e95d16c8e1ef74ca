// quantize.c — the command line of `qshard quantize`: options parsed into the run description
// (run/run.h), then the run (run/quantize.c).
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "comm.h"
#include "model/device.h"
#include "run/run.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: qshard quantize --model DIR --calib FILE.h5 --out DIR [options]\n"
          "  --method NAME          gptq (default; needs --calib) or rtn (--calib optional: only for the\n"
          "                         report's output error, and --imatrix); with --format gguf the default is\n"
          "                         rtn (llama.cpp's own quantizers), gptq chooses the codes in its blocks;\n"
          "                         awq (needs --calib; asymmetric unless --sym): activation-aware scales\n"
          "                         folded into the norms / preceding linears, then clipped round-to-nearest;\n"
          "                         awq+gptq: those scales, then GPTQ (CPU engine)\n"
          "  --bits 2|3|4|8         weight bits (default 4)\n"
          "  --group-size N         columns per scale group: 32, 64, 128 or -1 = per row (default 128;\n"
          "                         a ragged last group is allowed)\n"
          "  --sym | --asym         symmetric (default for gptq/rtn: what vLLM's Marlin kernels take) or\n"
          "                         min/max grid with zero points (default for awq, awq+gptq)\n"
          "  --act-order            GPTQ: quantize columns by decreasing Hessian diagonal, with static groups\n"
          "                         (groups fixed on contiguous columns first: the stored layout is that of\n"
          "                         no act-order, desc_act false, which every engine reads right)\n"
          "  --act-order=group      groups over the activation order (non-monotone g_idx, desc_act true; GPTQ\n"
          "                         v1 only): current vLLM ignores g_idx and loads it wrong\n"
          "  --static-groups        accepted for compatibility: what --act-order does by default\n"
          "  --damp F               damping, fraction of mean(diag H) (default 0.01; raised x10 on failure)\n"
          "  --block N              GPTQ lazy-update block in columns (default 128)\n"
          "  --calib-text FILE      calibration from a UTF-8 text file instead of --calib: tokenized on rank 0 with\n"
          "                         the model's tokenizer into the windows `qshard calib --text FILE` writes\n"
          "                         (same --samples/--seqlen/--seed); --calib-jsonl FILE: one {\"text\": ...} a line\n"
          "  --samples N            calibration windows cut from a 1-D stream (default 128)\n"
          "  --seqlen L             tokens per calibration window (default min(2048, max positions); longer\n"
          "                         than the model's max_position_embeddings only with --allow-long)\n"
          "  --seed S               seed of the window offsets (default 0; see calib.h)\n"
          "  --format F[,F...]      output formats (default gptq): gptq = GPTQ v1 (vLLM, transformers +\n"
          "                         optimum/GPTQModel, AutoGPTQ), awq = AutoAWQ GEMM, 4-bit (vLLM, transformers\n"
          "                         + GPTQModel; default method awq), compressed-tensors = pack-quantized (vLLM,\n"
          "                         transformers + compressed-tensors), trtllm = TensorRT-LLM rank files (needs\n"
          "                         --tp), gguf:TYPE = llama.cpp's GGUF (OUT/<model>-TYPE.gguf; TYPE F32 F16\n"
          "                         BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S/M/L Q4_K_S/M Q5_K_S/M Q6_K IQ4_NL:\n"
          "                         llama-quantize's mix, each tensor byte for byte its output; method rtn,\n"
          "                         grid options do not apply). The first model directory goes to OUT, the\n"
          "                         others to OUT/<format>\n"
          "  --imatrix[=FILE]       gguf: importance-weighted k-quant searches (llama-quantize --imatrix): from\n"
          "                         the --calib activations (also written as OUT/imatrix.gguf, llama.cpp's\n"
          "                         imatrix format), or =FILE an imatrix GGUF (e.g. made by llama-imatrix)\n"
          "  --max-shard-size MB    safetensors shard size (default 4096)\n"
          "  --tp T                 also write OUT/trtllm/: a TensorRT-LLM checkpoint for T tensor-parallel\n"
          "                         ranks (config.json, rank{t}.safetensors; 4-bit W4A16_GPTQ, see README)\n"
          "  --device cuda|cpu|auto where to run (default auto: cuda when built with CUDA and every rank\n"
          "                         sees a GPU; one MPI rank per GPU, local rank -> device)\n"
          "  --precision bf16|fp32  cuda: dtype of the calibration forward and of the Hessian inputs\n"
          "                         (default bf16, fp32 accumulation; fp32 = the all-fp32 path, as the CPU;\n"
          "                         --hessian-precision is the same option)\n"
          "  --factor-precision fp32|fp64  cuda: the inverse-Hessian factorization (default fp32)\n"
          "  --eval FILE.h5         perplexity of the written checkpoint and its KL divergence from the original\n"
          "                         (both on --device, as `qshard eval --reference`), in quant_report.json\n"
          "  --eval-seqlen L        (default --seqlen)   --eval-windows N  score only the first N windows\n"
          "  --force                replace an existing --out; without --resume, discard OUT.partial/\n"
          "  --resume               continue an interrupted run from OUT.partial/ (same model, data, options\n"
          "                         and rank count, else refused); starts from scratch when there is none\n"
          "  --state-interval S     seconds between saves of the resume state (0: after every layer; default 0\n"
          "                         on the CPU, 600 on GPUs, where a layer takes seconds and the saved\n"
          "                         activations are GBs per rank)\n"
          "                         SIGTERM, SIGUSR1/2 or Ctrl-C (Slurm's --signal, Kubernetes' grace period):\n"
          "                         every rank finishes the current layer, the state is saved, exit status 200\n"
          "  --comm-timeout S       a wait on other ranks longer than S seconds aborts the job naming the ranks\n"
          "                         that never came, exit status 201 (default 3600 or QS_COMM_TIMEOUT; 0: none)\n"
          "  --metrics-file FILE    Prometheus text file (node-exporter textfile collector) rewritten after\n"
          "                         every layer: layers done/total, seconds per layer, ETA, peak memory\n"
          "  --log-json             progress lines as JSON objects, one per line\n"
          "  --stages S             S pipeline stages x P/S data ranks (default 1: exact GPTQ): world ranks\n"
          "                         [s*P/S, (s+1)*P/S) quantize a contiguous layer range (balanced by parameter\n"
          "                         count) from the full-precision activations at its first layer, all stages\n"
          "                         at once; only the stage boundaries differ from S = 1 (CPU engine; OUT must\n"
          "                         be on a filesystem every stage sees)\n"
          "Writes OUT/ (in OUT.partial/ until complete, with the resume state in OUT.partial/.state/): the\n"
          "first model-directory format (model*.safetensors, config.json with quantization_config, tokenizer\n"
          "files), the other formats in OUT/<format>/, quant_report.json.\n");
}

enum { OPT_ASYM = 256, OPT_SYM, OPT_ACT, OPT_STATIC, OPT_EVAL_SEQ, OPT_EVAL_WIN, OPT_SHARD, OPT_GS, OPT_DEVICE,
       OPT_PREC, OPT_FPREC, OPT_TP, OPT_DAMP, OPT_BLOCK };

enum { OPT_RESUME = 512, OPT_STATE_INT, OPT_METRICS, OPT_LOG_JSON, OPT_COMM_TIMEOUT, OPT_ALLOW_LONG }; // resume and progress (qstate.h, progress.h)
enum { OPT_STAGES = 768 };                                            // the stage x data grid (stages.h)
enum { OPT_IMATRIX = 1024 };                                          // importance (quant/imatrix.h)
enum { OPT_CALIB_TEXT = 1280, OPT_CALIB_JSONL };                      // calibration from text (io/calib_text.h)


// Returns 0 ok, 1 help printed, -1 error (message printed).
// --format a,b,...: each a row of the format table, once.
// NAME:ARG passes ARG to the format (gguf:Q4_K_M), which checks it.
static int parse_formats(const char *list, struct qs_run_opts *a) {
  static char buf[512]; // the arguments point into it for the rest of the run
  char msg[256];
  snprintf(buf, sizeof(buf), "%s", list);
  a->n_formats = 0;
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    char *arg = strchr(t, ':');
    if (arg) *arg++ = '\0';
    const struct qs_format *f = qs_format_find(t);
    if (!f) {
      qs_cli_err("qshard quantize: --format '%s': expected a list of %s\n", t, qs_format_names());
      return -1;
    }
    if (f->parse_arg ? f->parse_arg(arg, msg, sizeof(msg)) : arg != NULL) {
      if (!f->parse_arg) snprintf(msg, sizeof(msg), "%s takes no argument (':%s')", t, arg);
      qs_cli_err("qshard quantize: --format %s\n", msg);
      return -1;
    }
    a->format_args[a->n_formats] = arg;
    for (int i = 0; i < a->n_formats; i++)
      if (a->formats[i] == f) { qs_cli_err("qshard quantize: --format: %s given twice\n", t); return -1; }
    if (a->n_formats == QS_MAX_FORMATS) { qs_cli_err("qshard quantize: --format: too many\n"); return -1; }
    a->formats[a->n_formats++] = f;
  }
  if (!a->n_formats) { qs_cli_err("qshard quantize: --format '%s': no format named\n", list); return -1; }
  return 0;
}

// The method's own options (method.h QS_MOPT_*): an option the method does not take is refused.
static int check_method_options(const struct qs_run_opts *a, unsigned given) {
  static const struct { unsigned flag; const char *opt; } k[] = {
      {QS_MOPT_ACT_ORDER, "--act-order"}, {QS_MOPT_DAMP, "--damp"}, {QS_MOPT_BLOCK, "--block"}};
  for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
    if ((given & k[i].flag) && !(a->method->accepts & k[i].flag)) {
      qs_cli_err("qshard quantize: %s is not an option of --method %s\n", k[i].opt, a->method->name);
      return -1;
    }
  if (!a->calib && (a->method->needs & QS_METHOD_CALIB)) {
    qs_cli_err("qshard quantize: %s needs --calib\n", a->method->name);
    return -1;
  }
  return 0;
}

static int parse_args(int argc, char **argv, struct qs_run_opts *a) {
  static const struct option opts[] = {
      {"model", 1, 0, 'm'}, {"calib", 1, 0, 'c'}, {"out", 1, 0, 'o'}, {"method", 1, 0, 'M'},
      {"bits", 1, 0, 'b'}, {"group-size", 1, 0, OPT_GS}, {"sym", 0, 0, OPT_SYM}, {"asym", 0, 0, OPT_ASYM},
      {"act-order", 2, 0, OPT_ACT}, {"static-groups", 0, 0, OPT_STATIC}, {"damp", 1, 0, OPT_DAMP},
      {"block", 1, 0, OPT_BLOCK}, {"samples", 1, 0, 'n'}, {"seqlen", 1, 0, 'L'}, {"seed", 1, 0, 's'},
      {"format", 1, 0, 'f'}, {"max-shard-size", 1, 0, OPT_SHARD}, {"eval", 1, 0, 'e'},
      {"eval-seqlen", 1, 0, OPT_EVAL_SEQ}, {"eval-windows", 1, 0, OPT_EVAL_WIN}, {"force", 0, 0, 'F'},
      {"resume", 0, 0, OPT_RESUME}, {"state-interval", 1, 0, OPT_STATE_INT}, {"comm-timeout", 1, 0, OPT_COMM_TIMEOUT}, {"allow-long", 0, 0, OPT_ALLOW_LONG}, {"metrics-file", 1, 0, OPT_METRICS},
      {"log-json", 0, 0, OPT_LOG_JSON}, {"stages", 1, 0, OPT_STAGES},
      {"device", 1, 0, OPT_DEVICE}, {"precision", 1, 0, OPT_PREC}, {"hessian-precision", 1, 0, OPT_PREC},
      {"factor-precision", 1, 0, OPT_FPREC}, {"tp", 1, 0, OPT_TP}, {"imatrix", 2, 0, OPT_IMATRIX},
      {"calib-text", 1, 0, OPT_CALIB_TEXT}, {"calib-jsonl", 1, 0, OPT_CALIB_JSONL}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  long long v = 0;
  unsigned given = 0; // QS_MOPT_* options on the command line
  int static_groups = 0, method_given = 0, sym_given = 0;
  const char *grid_opt = NULL; // a grid option given (--bits, --group-size, --sym, --asym)
  *a = (struct qs_run_opts){.method = qs_method_find("gptq"), .q = qs_qopts_default(), .formats = {qs_format_find("gptq")},
                            .n_formats = 1, .samples = 128, .max_shard_mb = 4096, .stages = 1, .state_interval = -1};
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'm': a->model = optarg; break;
    case 'c': case OPT_CALIB_TEXT: case OPT_CALIB_JSONL:
      if (a->calib) { qs_cli_err("qshard quantize: give one of --calib, --calib-text, --calib-jsonl\n"); return -1; }
      a->calib = optarg;
      a->calib_text = c == OPT_CALIB_TEXT ? 1 : c == OPT_CALIB_JSONL ? 2 : 0;
      break;
    case 'o': a->out = optarg; break;
    case 'e': a->eval_data = optarg; break;
    case 'F': a->force = 1; break;
    case OPT_RESUME: a->resume = 1; break;
    case OPT_ALLOW_LONG: a->allow_long = 1; break;
    case OPT_LOG_JSON: a->log_json = 1; break;
    case OPT_METRICS: a->metrics_file = optarg; break;
    case OPT_COMM_TIMEOUT: if (qs_cli_parse_num("qshard quantize", "--comm-timeout", optarg, 0, 1ll << 30, &v)) return -1; qs_comm_set_timeout((double)v); break;
    case OPT_STATE_INT: if (qs_cli_parse_num("qshard quantize", "--state-interval", optarg, 0, 1ll << 40, &v)) return -1; a->state_interval = v; break;
    case OPT_SYM: a->q.grid.sym = 1; grid_opt = "--sym"; sym_given = 1; break;
    case OPT_ASYM: a->q.grid.sym = 0; grid_opt = "--asym"; sym_given = 1; break;
    case OPT_IMATRIX:
      a->imatrix = optarg ? QS_IMP_TABLE : QS_IMP_CALIB;
      a->imatrix_file = optarg;
      break;
    case OPT_ACT:
      given |= QS_MOPT_ACT_ORDER;
      if (!optarg || !strcmp(optarg, "static") || !strcmp(optarg, "weight")) a->q.act_order = QS_ACT_ORDER_STATIC;
      else if (!strcmp(optarg, "group")) a->q.act_order = QS_ACT_ORDER_GROUP;
      else { qs_cli_err("qshard quantize: --act-order=%s: expected static or group\n", optarg); return -1; }
      break;
    case OPT_STATIC: static_groups = 1; break;
    case 'h': usage(stdout); return 1;
    case OPT_DEVICE:
      if ((a->device = qs_device_parse(optarg)) < 0) {
        qs_cli_err("qshard quantize: --device '%s': expected cuda, cpu or auto\n", optarg);
        return -1;
      }
      break;
    case OPT_PREC:
      if (strcmp(optarg, "bf16") && strcmp(optarg, "fp32")) {
        qs_cli_err("qshard quantize: --precision '%s': expected bf16 or fp32\n", optarg);
        return -1;
      }
      a->precision_f32 = !strcmp(optarg, "fp32");
      break;
    case OPT_FPREC:
      if (strcmp(optarg, "fp32") && strcmp(optarg, "fp64")) {
        qs_cli_err("qshard quantize: --factor-precision '%s': expected fp32 or fp64\n", optarg);
        return -1;
      }
      a->q.factor_f64 = !strcmp(optarg, "fp64");
      break;
    case 'M':
      method_given = 1;
      if (!(a->method = qs_method_find(optarg))) {
        qs_cli_err("qshard quantize: --method '%s': expected %s\n", optarg, qs_method_names());
        return -1;
      }
      break;
    case 'f': if (parse_formats(optarg, a)) return -1; break;
    case OPT_DAMP: {
      char *end = NULL;
      given |= QS_MOPT_DAMP;
      a->q.damp = strtof(optarg, &end);
      if (!*optarg || *end) { qs_cli_err("qshard quantize: --damp '%s': not a number\n", optarg); return -1; }
      break;
    }
    case 'b': if (qs_cli_parse_num("qshard quantize", "--bits", optarg, 2, 8, &v)) return -1; a->q.grid.bits = (int)v; grid_opt = "--bits"; break;
    case OPT_GS:
      if (qs_cli_parse_num("qshard quantize", "--group-size", optarg, -1, 1 << 20, &v)) return -1;
      if (v == 0) {
        qs_cli_err("qshard quantize: --group-size 0: expected a column count (32, 64, 128) or -1 for one group "
                "per row\n");
        return -1;
      }
      a->q.grid.group_size = (int)v;
      grid_opt = "--group-size";
      break;
    case OPT_BLOCK: given |= QS_MOPT_BLOCK; if (qs_cli_parse_num("qshard quantize", "--block", optarg, 1, 1 << 16, &v)) return -1; a->q.block_size = (int)v; break;
    case 'n': if (qs_cli_parse_num("qshard quantize", "--samples", optarg, 1, 1 << 24, &v)) return -1; a->samples = (int)v; break;
    case 'L': if (qs_cli_parse_num("qshard quantize", "--seqlen", optarg, 1, 1 << 22, &v)) return -1; a->seqlen = (int)v; break;
    case 's': if (qs_cli_parse_num("qshard quantize", "--seed", optarg, 0, (1ll << 62), &v)) return -1; a->seed = (unsigned long long)v; break;
    case OPT_SHARD: if (qs_cli_parse_num("qshard quantize", "--max-shard-size", optarg, 1, 1 << 30, &v)) return -1; a->max_shard_mb = v; break;
    case OPT_TP: if (qs_cli_parse_num("qshard quantize", "--tp", optarg, 1, 4096, &v)) return -1; a->tp = (int)v; break;
    case OPT_STAGES: if (qs_cli_parse_num("qshard quantize", "--stages", optarg, 1, 1 << 20, &v)) return -1; a->stages = (int)v; break;
    case OPT_EVAL_SEQ: if (qs_cli_parse_num("qshard quantize", "--eval-seqlen", optarg, 2, 1 << 22, &v)) return -1; a->eval_seqlen = (int)v; break;
    case OPT_EVAL_WIN: if (qs_cli_parse_num("qshard quantize", "--eval-windows", optarg, 1, 1ll << 40, &v)) return -1; a->eval_windows = v; break;
    default:
      qs_cli_err("qshard quantize: unknown or incomplete option '%s' (see --help)\n", argv[optind - 1]);
      return -1;
    }
  }
  if (optind < argc) { qs_cli_err("qshard quantize: unexpected argument '%s'\n", argv[optind]); return -1; }
  if (!a->model || !a->out) { qs_cli_err("qshard quantize: --model and --out are required\n"); return -1; }
  // A format that sets its own grid (gguf:TYPE) brings its method and takes no grid options.
  int own_grid = 0;
  for (int i = 0; i < a->n_formats; i++) own_grid |= a->formats[i]->module_grid != NULL;
  if (!method_given && a->formats[0]->method) a->method = qs_method_find(a->formats[0]->method);
  if (a->method->asym && !sym_given) a->q.grid.sym = 0;
  if (own_grid && grid_opt) {
    qs_cli_err("qshard quantize: %s: the gguf:TYPE format sets the grid of every tensor (its TYPE)\n", grid_opt);
    return -1;
  }
  if (a->imatrix && !own_grid) {
    qs_cli_err("qshard quantize: --imatrix weights llama.cpp's k-quant searches: it needs --format gguf:TYPE\n");
    return -1;
  }
  if (a->imatrix == QS_IMP_CALIB && !a->calib) {
    qs_cli_err("qshard quantize: --imatrix without a file computes the importance from --calib: give --calib "
            "(or --imatrix=FILE)\n");
    return -1;
  }
  if (check_method_options(a, given)) return -1;
  if (a->q.grid.bits != 2 && a->q.grid.bits != 3 && a->q.grid.bits != 4 && a->q.grid.bits != 8) {
    qs_cli_err("qshard quantize: --bits %d: expected 2, 3, 4 or 8\n", a->q.grid.bits);
    return -1;
  }
  if (static_groups && a->q.act_order != QS_ACT_ORDER_STATIC) {
    qs_cli_err("qshard quantize: --static-groups needs --act-order (and is what it does)\n");
    return -1;
  }
  return 0;
}

int qs_cmd_quantize(struct qs_comm *world, int argc, char **argv) {
  struct qs_run_opts a;
  qs_cli_set_quiet(qs_comm_rank(world) != 0);
  int pr = parse_args(argc, argv, &a);
  if (pr != 0) return pr > 0 ? 0 : 2;
  return qs_quantize(world, &a);
}

