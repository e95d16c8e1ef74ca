// plan.c — the command line of `qshard plan`: a model (--model DIR or --config NAME), the quantize
// options that change the plan, the machine (--np, --gpus-per-node, card and node memory, disk
// rates); prints per-rank GPU and host memory, disk, seconds per layer and end to end, and a line per
// warning (run/plan.h is the model). Runs on rank 0 only under mpirun.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "comm.h"
#include "io/outdir.h"
#include "model/device.h"
#include "run/plan.h"

#define GIB 1073741824.0

static void usage(FILE *out) {
  fprintf(out,
          "usage: qshard plan --model DIR | --config NAME [quantize options] [--np P] [--gpus-per-node G]\n"
          "Predicts what `qshard quantize` with the same options will need, before it runs: GPU and host\n"
          "memory per rank, disk (checkpoint read, outputs, resume state; free space at --out), seconds per\n"
          "layer and end to end; warns when a configuration will not fit or will be refused.\n"
          "  --model DIR            a model directory (config.json and the safetensors headers; no data is read)\n"
          "  --config NAME          a built-in shape of `qshard synth --config`: %s\n"
          "  --layers N             with --config: the first N layers only (as synth --layers)\n"
          "quantize options (see qshard quantize --help): --device cuda|cpu (default cuda), --method, --bits,\n"
          "  --group-size, --sym/--asym, --act-order[=group], --block, --damp, --samples (128), --seqlen,\n"
          "  --calib FILE (RTN: calibration on; GPTQ always calibrates), --format F[,F...], --tp, --precision\n"
          "  bf16|fp32, --factor-precision fp32|fp64, --stages S, --state-interval S, --max-shard-size MB,\n"
          "  --allow-long, --imatrix, --eval FILE (not planned), --out DIR (its free space is checked)\n"
          "the machine:\n"
          "  --np P                 MPI ranks (default 1; one per GPU)\n"
          "  --gpus-per-node G      ranks per node (default 8)\n"
          "  --gpu-mem GIB          memory of one card (default 79.65: H100 80GB)\n"
          "  --host-mem GIB         memory of one node (default: this host's)\n"
          "  --cores N              cores of one node, --device cpu (default: this host's)\n"
          "  --read-gbs R           cold read rate of the checkpoint's filesystem, GB/s (default 2, not measured)\n"
          "  --write-gbs W          output write rate, GB/s (default 0.86, BENCHMARKS.md §7)\n"
          "output:\n"
          "  --json FILE            also the plan as JSON (FILE - : JSON alone on stdout)\n"
          "  --constants            the model's constants, each with the benchmark that measured it\n",
          qs_plan_shape_names());
}

struct plan_cli {
  struct qs_run_opts a;
  struct qs_plan_site site;
  const char *config, *json;
  int layers, constants;
};

enum { OPT_ASYM = 256, OPT_SYM, OPT_ACT, OPT_GS, OPT_DEVICE, OPT_PREC, OPT_FPREC, OPT_TP, OPT_BLOCK, OPT_DAMP,
       OPT_STAGES, OPT_STATE, OPT_SHARD, OPT_LONG, OPT_IMATRIX, OPT_NP, OPT_GPN, OPT_GPUMEM, OPT_HOSTMEM, OPT_CORES,
       OPT_READ, OPT_WRITE, OPT_JSON, OPT_CONSTS, OPT_LAYERS, OPT_EVAL };

// --format a,b,...: each a row of the format table (NAME:ARG checked by the format), as quantize parses it.
static int parse_formats(const char *list, struct qs_run_opts *a) {
  static char buf[512]; // the arguments point into it
  char msg[256];
  snprintf(buf, sizeof(buf), "%s", list);
  a->n_formats = 0;
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    char *arg = strchr(t, ':');
    if (arg) *arg++ = '\0';
    const struct qs_format *f = qs_format_find(t);
    if (!f) { qs_cli_err("qshard plan: --format '%s': expected a list of %s\n", t, qs_format_names()); return -1; }
    if (f->parse_arg ? f->parse_arg(arg, msg, sizeof(msg)) : arg != NULL) {
      if (!f->parse_arg) snprintf(msg, sizeof(msg), "%s takes no argument (':%s')", t, arg);
      qs_cli_err("qshard plan: --format %s\n", msg);
      return -1;
    }
    if (a->n_formats == QS_MAX_FORMATS) { qs_cli_err("qshard plan: --format: too many\n"); return -1; }
    a->format_args[a->n_formats] = arg;
    a->formats[a->n_formats++] = f;
  }
  if (!a->n_formats) { qs_cli_err("qshard plan: --format '%s': no format named\n", list); return -1; }
  return 0;
}

static int parse_real(const char *opt, const char *v, double lo, double *out) {
  char *end = NULL;
  double x = strtod(v, &end);
  if (!*v || *end || !(x > lo)) { qs_cli_err("qshard plan: %s '%s': expected a number above %g\n", opt, v, lo); return -1; }
  *out = x;
  return 0;
}

// The options of quantize's grid, method and run description that the plan reads.
static int parse_quantize_opt(int c, const char *v, struct qs_run_opts *a, int *method_given, int *sym_given) {
  long long n = 0;
  const char *cmd = "qshard plan";
  switch (c) {
  case 'M':
    *method_given = 1;
    if (!(a->method = qs_method_find(v))) { qs_cli_err("%s: --method '%s': expected %s\n", cmd, v, qs_method_names()); return -1; }
    return 0;
  case 'b': if (qs_cli_parse_num(cmd, "--bits", v, 2, 8, &n)) return -1; a->q.grid.bits = (int)n; return 0;
  case OPT_GS:
    if (qs_cli_parse_num(cmd, "--group-size", v, -1, 1 << 20, &n)) return -1;
    if (n == 0) { qs_cli_err("%s: --group-size 0: expected a column count or -1 for one group per row\n", cmd); return -1; }
    a->q.grid.group_size = (int)n;
    return 0;
  case OPT_SYM: a->q.grid.sym = 1, *sym_given = 1; return 0;
  case OPT_ASYM: a->q.grid.sym = 0, *sym_given = 1; return 0;
  case OPT_ACT: a->q.act_order = v && !strcmp(v, "group") ? QS_ACT_ORDER_GROUP : QS_ACT_ORDER_STATIC; return 0;
  case OPT_BLOCK: if (qs_cli_parse_num(cmd, "--block", v, 1, 1 << 16, &n)) return -1; a->q.block_size = (int)n; return 0;
  case OPT_DAMP: return 0; // --damp, --seed, --static-groups, --eval-*: do not change the plan
  case 'n': if (qs_cli_parse_num(cmd, "--samples", v, 1, 1 << 24, &n)) return -1; a->samples = (int)n; return 0;
  case 'L': if (qs_cli_parse_num(cmd, "--seqlen", v, 1, 1 << 22, &n)) return -1; a->seqlen = (int)n; return 0;
  case 'c': a->calib = v; return 0;
  case 'o': a->out = v; return 0;
  case OPT_EVAL: a->eval_data = v; return 0;
  case 'f': return parse_formats(v, a);
  case OPT_TP: if (qs_cli_parse_num(cmd, "--tp", v, 1, 4096, &n)) return -1; a->tp = (int)n; return 0;
  case OPT_STAGES: if (qs_cli_parse_num(cmd, "--stages", v, 1, 4096, &n)) return -1; a->stages = (int)n; return 0;
  case OPT_STATE: if (qs_cli_parse_num(cmd, "--state-interval", v, 0, 1ll << 40, &n)) return -1; a->state_interval = n; return 0;
  case OPT_SHARD: if (qs_cli_parse_num(cmd, "--max-shard-size", v, 1, 1 << 30, &n)) return -1; a->max_shard_mb = n; return 0;
  case OPT_LONG: a->allow_long = 1; return 0;
  case OPT_IMATRIX: a->imatrix = v ? QS_IMP_TABLE : QS_IMP_CALIB; a->q.importance = a->imatrix; return 0;
  case OPT_DEVICE:
    a->device = qs_device_parse(v);
    if (a->device != QS_DEVICE_KIND_CPU && a->device != QS_DEVICE_KIND_CUDA) {
      qs_cli_err("%s: --device '%s': expected cuda or cpu (the machine the plan is for)\n", cmd, v);
      return -1;
    }
    return 0;
  case OPT_PREC:
    if (strcmp(v, "bf16") && strcmp(v, "fp32")) { qs_cli_err("%s: --precision '%s': expected bf16 or fp32\n", cmd, v); return -1; }
    a->precision_f32 = !strcmp(v, "fp32");
    return 0;
  case OPT_FPREC:
    if (strcmp(v, "fp32") && strcmp(v, "fp64")) { qs_cli_err("%s: --factor-precision '%s': expected fp32 or fp64\n", cmd, v); return -1; }
    a->q.factor_f64 = !strcmp(v, "fp64");
    return 0;
  }
  return 1; // not a quantize option
}

static int parse_site_opt(int c, const char *v, struct plan_cli *o) {
  long long n = 0;
  double x = 0;
  const char *cmd = "qshard plan";
  switch (c) {
  case OPT_NP: if (qs_cli_parse_num(cmd, "--np", v, 1, 1 << 20, &n)) return -1; o->site.np = (int)n; return 0;
  case OPT_GPN: if (qs_cli_parse_num(cmd, "--gpus-per-node", v, 1, 1024, &n)) return -1; o->site.gpus_per_node = (int)n; return 0;
  case OPT_CORES: if (qs_cli_parse_num(cmd, "--cores", v, 1, 1 << 20, &n)) return -1; o->site.cores_per_node = (int)n; return 0;
  case OPT_GPUMEM: if (parse_real("--gpu-mem", v, 0, &x)) return -1; o->site.gpu_bytes = x * GIB; return 0;
  case OPT_HOSTMEM: if (parse_real("--host-mem", v, 0, &x)) return -1; o->site.host_bytes = x * GIB; return 0;
  case OPT_READ: if (parse_real("--read-gbs", v, 0, &x)) return -1; o->site.read_bps = x * 1e9; return 0;
  case OPT_WRITE: if (parse_real("--write-gbs", v, 0, &x)) return -1; o->site.write_bps = x * 1e9; return 0;
  case OPT_LAYERS: if (qs_cli_parse_num(cmd, "--layers", v, 1, 1 << 20, &n)) return -1; o->layers = (int)n; return 0;
  case OPT_JSON: o->json = v; return 0;
  case OPT_CONSTS: o->constants = 1; return 0;
  case 'm': o->a.model = v; return 0;
  case 'C': o->config = v; return 0;
  }
  return 1;
}

// Free bytes of the filesystem that will hold `out` (its nearest existing ancestor), -1 when unknown.
static double free_bytes(const char *out) {
  char dir[4096];
  struct statvfs st;
  if (!out) return -1;
  snprintf(dir, sizeof(dir), "%s", out);
  for (;;) {
    if (statvfs(dir[0] ? dir : ".", &st) == 0) return (double)st.f_bavail * (double)st.f_frsize;
    char *slash = strrchr(dir, '/');
    if (!slash) { dir[0] = '\0'; continue; }
    if (slash == dir) { dir[1] = '\0'; if (statvfs(dir, &st) == 0) return (double)st.f_bavail * (double)st.f_frsize; return -1; }
    *slash = '\0';
  }
}

static int parse_args(int argc, char **argv, struct plan_cli *o) {
  static const struct option opts[] = {
      {"model", 1, 0, 'm'}, {"config", 1, 0, 'C'}, {"layers", 1, 0, OPT_LAYERS}, {"calib", 1, 0, 'c'},
      {"out", 1, 0, 'o'}, {"method", 1, 0, 'M'}, {"bits", 1, 0, 'b'}, {"group-size", 1, 0, OPT_GS},
      {"sym", 0, 0, OPT_SYM}, {"asym", 0, 0, OPT_ASYM}, {"act-order", 2, 0, OPT_ACT}, {"static-groups", 0, 0, OPT_DAMP},
      {"damp", 1, 0, OPT_DAMP}, {"block", 1, 0, OPT_BLOCK}, {"samples", 1, 0, 'n'}, {"seqlen", 1, 0, 'L'},
      {"seed", 1, 0, OPT_DAMP}, {"eval", 1, 0, OPT_EVAL}, {"eval-seqlen", 1, 0, OPT_DAMP},
      {"eval-windows", 1, 0, OPT_DAMP}, {"format", 1, 0, 'f'}, {"max-shard-size", 1, 0, OPT_SHARD}, {"tp", 1, 0, OPT_TP},
      {"device", 1, 0, OPT_DEVICE}, {"precision", 1, 0, OPT_PREC}, {"hessian-precision", 1, 0, OPT_PREC},
      {"factor-precision", 1, 0, OPT_FPREC}, {"stages", 1, 0, OPT_STAGES}, {"state-interval", 1, 0, OPT_STATE},
      {"allow-long", 0, 0, OPT_LONG}, {"imatrix", 2, 0, OPT_IMATRIX}, {"np", 1, 0, OPT_NP},
      {"gpus-per-node", 1, 0, OPT_GPN}, {"gpu-mem", 1, 0, OPT_GPUMEM}, {"host-mem", 1, 0, OPT_HOSTMEM},
      {"cores", 1, 0, OPT_CORES}, {"read-gbs", 1, 0, OPT_READ}, {"write-gbs", 1, 0, OPT_WRITE},
      {"json", 1, 0, OPT_JSON}, {"constants", 0, 0, OPT_CONSTS}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int c, method_given = 0, sym_given = 0;
  int nconst = 0;
  const struct qs_plan_const *k = qs_plan_consts(&nconst);
  memset(o, 0, sizeof(*o));
  o->a = (struct qs_run_opts){.method = qs_method_find("gptq"), .q = qs_qopts_default(), .formats = {qs_format_find("gptq")},
                              .n_formats = 1, .samples = 128, .max_shard_mb = 4096, .stages = 1, .state_interval = -1,
                              .device = QS_DEVICE_KIND_CUDA};
  o->site = (struct qs_plan_site){.np = 1, .gpus_per_node = 8,
                                  .host_bytes = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE),
                                  .cores_per_node = (int)sysconf(_SC_NPROCESSORS_ONLN)};
  for (int i = 0; i < nconst; i++) { // the card and the disk rates default to the table's
    if (!strcmp(k[i].name, "gpu_memory")) o->site.gpu_bytes = k[i].value * GIB;
    if (!strcmp(k[i].name, "checkpoint_read")) o->site.read_bps = k[i].value * 1e9;
    if (!strcmp(k[i].name, "output_write")) o->site.write_bps = k[i].value * 1e9;
  }
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'h') { usage(stdout); return 1; }
    int r = parse_quantize_opt(c, optarg, &o->a, &method_given, &sym_given);
    if (r > 0) r = parse_site_opt(c, optarg, o);
    if (r > 0) { qs_cli_err("qshard plan: unknown or incomplete option '%s' (see --help)\n", argv[optind - 1]); return -1; }
    if (r < 0) return -1;
  }
  if (optind < argc) { qs_cli_err("qshard plan: unexpected argument '%s'\n", argv[optind]); return -1; }
  if (o->constants && !o->a.model && !o->config) return 0;
  if (!o->a.model == !o->config) { qs_cli_err("qshard plan: give one of --model DIR and --config NAME\n"); return -1; }
  if (o->layers && !o->config) { qs_cli_err("qshard plan: --layers goes with --config\n"); return -1; }
  if (!method_given && o->a.formats[0]->method) o->a.method = qs_method_find(o->a.formats[0]->method);
  if (o->a.method->asym && !sym_given) o->a.q.grid.sym = 0;
  if (o->a.method->needs & QS_METHOD_CALIB && !o->a.calib) o->a.calib = "(calibration)";
  o->site.out_free = free_bytes(o->a.out);
  return 0;
}

// ---- the table -------------------------------------------------------------------------------------

// What the table prints from, and its unit of memory (MiB for a model under 1 GiB, else GiB).
struct view {
  const struct qs_plan_shape *s;
  const struct qs_run_opts *a;
  const struct qs_plan_site *site;
  const struct qs_plan *p;
  double unit;
  const char *unit_name;
};

static void row(const struct view *v, const char *name, double bytes, const char *note) {
  printf("  %-30s %8.2f  %s\n", name, bytes / v->unit, note ? note : "");
}

static void print_gpu(const struct view *v) {
  const struct qs_plan *p = v->p;
  char a[200];
  printf("GPU memory per rank              %s\n", v->unit_name);
  snprintf(a, sizeof(a), "of %.2f; peak in %s (data rank %d); %.2f at phase ends (the log's \"peak device memory\")",
           v->site->gpu_bytes / v->unit, p->gpu.peak_phase, p->gpu.rank, p->gpu.sampled / v->unit);
  row(v, "peak", p->gpu.peak, a);
  row(v, "context, cuBLAS, NCCL", p->gpu.ctx, NULL);
  snprintf(a, sizeof(a), "fp32 [%lld, %d, %d] residual stream", p->B, p->T, v->s->cfg.hidden);
  row(v, "x", p->gpu.x, a);
  row(v, "att", p->gpu.att, "attention outputs, kept for o_proj");
  row(v, "act", p->gpu.act, p->act_stored ? "down_proj inputs, kept" : "down_proj inputs not kept: gate/up recomputed");
  row(v, "sequence workspace", p->gpu.seq, NULL);
  row(v, "layer weights", p->gpu.layer, NULL);
  row(v, "+ Hessian buffers", p->gpu.hessian, "widest group: the sum and the leaves held");
  row(v, "+ factor", p->gpu.factor, "H + U (+ an fp64 copy)");
  row(v, "+ solve", p->gpu.solve, "H + U + the module's rows and codes");
  row(v, "  + solve scratch", p->gpu.scratch, "stream-ordered, freed at the phase end");
}

static void print_host(const struct view *v) {
  const struct qs_plan *p = v->p;
  const int rpn = QS_MAX(1, QS_MIN(v->site->np, v->site->gpus_per_node));
  char a[160];
  printf("host memory per rank             %s\n", v->unit_name);
  snprintf(a, sizeof(a), "of %.2f (the node's %.2f / %d ranks)", v->site->host_bytes / rpn / v->unit,
           v->site->host_bytes / v->unit, rpn);
  row(v, "peak", p->host.peak, a);
  row(v, "process", p->host.base, "runtime, libraries, calibration ids");
  row(v, "embeddings, lm_head fp32", p->host.embed, NULL);
  if (p->cuda) {
    row(v, "weight reader slots", p->host.slots, "pinned, two layers");
  } else {
    row(v, "x", p->host.x, "fp32 residual stream");
    row(v, "forward workspace", p->host.fwd, NULL);
    row(v, "layer fp32", p->host.layer, NULL);
    row(v, "Hessian tree sum", p->host.hessian, NULL);
    row(v, "module (H, U, rows)", p->host.module, NULL);
  }
  row(v, "record slots", p->host.records, "stage leader");
  row(v, "layer record file", p->host.writer, "stage leader");
  row(v, "activation save", p->host.xsave, "copy of x during a resume-state save");
  row(v, "output writers", p->host.output, "at the end, instead of the above");
  row(v, "mapped checkpoint", p->host.mapped, "page cache: in RSS, reclaimable, shared by a node's ranks");
  row(v, "peak RSS", p->host.peak + p->host.mapped, "with the mapped pages: what /usr/bin/time -v reports");
}

static void print_disk(const struct view *v) {
  const struct qs_plan *p = v->p;
  char n[64], note[160];
  printf("disk                             %s\n", v->unit_name);
  row(v, "checkpoint", p->disk.in, "read per node: every rank maps it, a node's ranks share the pages");
  for (int i = 0; i < v->a->n_formats; i++) {
    snprintf(n, sizeof(n), "output %s%s%s", v->a->formats[i]->name, v->a->format_args[i] ? ":" : "",
             v->a->format_args[i] ? v->a->format_args[i] : "");
    row(v, n, p->disk.out[i], NULL);
  }
  row(v, "resume state: layer records", p->disk.state_layers, "OUT.partial/.state, until the outputs are written");
  row(v, "resume state: activations", p->disk.state_x, "x of every rank, twice during a save");
  if (p->disk.free >= 0) snprintf(note, sizeof(note), "free at --out: %.2f", p->disk.free / v->unit);
  else snprintf(note, sizeof(note), "free space: give --out");
  row(v, "OUT.partial at most", p->disk.peak, note);
}

static void print_time(const struct qs_plan *p) {
  printf("time                               s\n");
  printf("  %-30s %8.3f ", "per layer", p->t.layer);
  for (int i = 0; i < QS_PLAN_PH_COUNT; i++) printf(" %s %.3f", qs_plan_phase_names[i], p->t.ph[i]);
  printf("\n  %-30s %8.1f  = %.2f h: start %.1f + %d layers x %.3f", "end to end", p->t.total, p->t.total / 3600,
         p->t.start, p->layers, p->t.layer);
  if (p->t.boundary > 0) printf(" + boundary pass %.1f", p->t.boundary);
  printf(" + saves %.1f (%d) + output %.1f\n", p->t.saves, p->t.n_saves, p->t.output);
}

static void print_plan(const struct view *v) {
  const struct qs_config *c = &v->s->cfg;
  const struct qs_run_opts *a = v->a;
  const struct qs_plan *p = v->p;
  const double params = (double)qs_config_param_count(c);
  char grid[96];
  qs_grid_name(&a->q.grid, grid, sizeof(grid));
  printf("qshard plan: %s: %d layers, hidden %d, intermediate %d, heads %d/%d x %d, vocab %d, %s, %.2f %s params\n",
         v->s->name, c->n_layers, c->hidden, c->intermediate, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab,
         qs_dtype_name(c->dtype), params >= 1e9 ? params / 1e9 : params / 1e6, params >= 1e9 ? "B" : "M");
  printf("run: --device %s, %s on %s%s, ", p->cuda ? "cuda" : "cpu", a->method->name, grid,
         a->q.act_order ? " act-order" : "");
  if (p->n_samples > 0) printf("%lld x %d calibration tokens, ", p->n_samples, p->T);
  else printf("no calibration, ");
  printf("--np %d = %d stage(s) x %d data rank(s) on %d node(s); data rank 0 holds %lld samples, %d layers per stage\n",
         p->P, p->S, p->D, p->nodes, p->B, p->layers);
  if (p->cuda) print_gpu(v);
  print_host(v);
  print_disk(v);
  print_time(p);
  for (int i = 0; i < p->n_warn; i++) printf("%s%s\n", strncmp(p->warn[i], "note: ", 6) ? "warning: " : "", p->warn[i]);
}

static void print_constants(void) {
  int n = 0;
  const struct qs_plan_const *k = qs_plan_consts(&n);
  printf("constants of the plan (src/run/plan.c k_plan_consts; [h100 run]: the runs tabled above it — one H100,\n"
         "tree 28418f2, scripts/bench_gpu_layers.sh's commands; §N: BENCHMARKS.md)\n");
  for (int i = 0; i < n; i++) printf("  %-20s %10.4g %-8s %s\n", k[i].name, k[i].value, k[i].unit, k[i].source);
}

static int plan_run(struct plan_cli *o) {
  struct qs_plan_shape s;
  struct qs_plan p;
  char why[sizeof(((struct qs_plan *)0)->warn[0])];
  json_t *j = NULL;
  int rc = 1;
  if (o->config ? qs_plan_shape_preset(&s, o->config) != QS_OK : qs_plan_shape_dir(&s, o->a.model) != QS_OK) return 1;
  if (o->layers && o->layers < s.cfg.n_layers) {
    s.in_bytes -= (s.cfg.n_layers - o->layers) * (double)s.layer_params * s.wsize;
    s.cfg.n_layers = o->layers;
  }
  if (qs_plan_settle_formats(&s, &o->a, why, sizeof(why)) != QS_OK) goto done;
  if (qs_plan_compute(&s, &o->a, &o->site, &p) != QS_OK) goto done;
  if (why[0] && p.n_warn < QS_PLAN_MAX_WARN) snprintf(p.warn[p.n_warn++], sizeof(p.warn[0]), "%s", why);
  const int small = s.in_bytes < GIB;
  const struct view v = {&s, &o->a, &o->site, &p, small ? 1048576.0 : GIB, small ? "MiB" : "GiB"};
  if (!o->json || strcmp(o->json, "-")) print_plan(&v);
  if (o->json) {
    if (!(j = qs_plan_json(&s, &o->a, &o->site, &p))) goto done;
    if (!strcmp(o->json, "-")) {
      if (json_dumpf(j, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))) goto done;
      printf("\n");
    } else if (qs_json_write_file(o->json, j, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) != QS_OK) {
      goto done;
    }
  }
  rc = 0;
done:
  json_decref(j);
  qs_plan_shape_free(&s);
  return rc;
}

int qs_cmd_plan(struct qs_comm *world, int argc, char **argv) {
  struct plan_cli o;
  qs_cli_set_quiet(qs_comm_rank(world) != 0);
  int pr = parse_args(argc, argv, &o);
  if (pr != 0) return pr > 0 ? 0 : 2;
  if (qs_comm_rank(world) != 0) return 0; // one plan, printed once
  if (o.constants) print_constants();
  if (!o.a.model && !o.config) return 0;
  int rc = plan_run(&o);
  fflush(stdout);
  return rc ? rc : ferror(stdout) ? 1 : 0;
}
