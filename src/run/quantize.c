// quantize.c — `qshard quantize` once the command line is parsed (run.h): the model, the formats and
// the grid they need, the engine, the layer loop through the pipeline (pipeline.h) with the resume
// state, the outputs written from the layer records (output.h), --eval, the report, the rename.
//
// Pipeline (DESIGN.md "Numerics"): the calibration samples are split over the ranks and embedded;
// then for each decoder layer l: load l, run it forward once on this rank's samples, and at each
// linear group (q/k/v, o, gate/up, down) — just before the group is applied — form the Hessian of
// its input over all samples, quantize the group's modules, and apply the quantized weights. The
// layer's outputs, computed with its quantized modules, are the inputs of layer l+1.
// With --stages S > 1 (stages.h) every stage runs this loop on its own layers at once, from the
// full-precision activations at its first layer.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/stop.h"
#include "comm.h"
#include "io/calib.h"
#include "io/calib_text.h"
#include "io/manifest.h"
#include "io/outdir.h"
#include "model/device.h"
#include "formats/gguf.h"
#include "model/eval.h"
#include "run/engine.h"
#include "run/output.h"
#include "run/pipeline.h"
#include "run/progress.h"
#include "run/qstate.h"
#include "run/stages.h"
#include "run/summary.h"

// ---- before any work: the formats and the grid they need ------------------------------------------

// --tp T implies the TensorRT-LLM format; the grid narrowed to what every chosen format stores
// exactly (zero points, scale dtype); each format's refusal, once, before any work.
static qs_status settle_formats(struct qs_comm *world, struct qs_run_opts *a, const struct qs_model *m) {
  const struct qs_format *trt = qs_format_find("trtllm");
  char msg[512];
  int has_trt = 0;
  for (int i = 0; i < a->n_formats; i++) has_trt |= a->formats[i] == trt;
  if (a->tp && !has_trt) {
    if (a->n_formats == QS_MAX_FORMATS) return qs_quantize_refuse(world, "--tp", a->tp, "too many formats");
    a->formats[a->n_formats++] = trt;
  }
  int sd = qs_format_scale_dtype(a->formats, a->n_formats, m->cfg.dtype);
  if (sd < 0) {
    if (qs_comm_rank(world) == 0) fprintf(stderr, "qshard quantize: --format: no scale dtype that every format stores\n");
    return QS_ERR_ARG;
  }
  a->q.grid.scale_dtype = sd;
  for (int i = 0; i < a->n_formats; i++) {
    struct qs_format_run fr = qs_run_format_run(a, m, i, qs_comm_rank(world), qs_comm_size(world));
    if (a->formats[i]->constrain) a->formats[i]->constrain(&fr, &a->q.grid);
  }
  int model_dir = 0;
  for (int i = 0; i < a->n_formats; i++) {
    struct qs_format_run fr = qs_run_format_run(a, m, i, qs_comm_rank(world), qs_comm_size(world));
    model_dir |= a->formats[i]->model_dir;
    if (a->formats[i]->refuse && a->formats[i]->refuse(&fr, msg, sizeof(msg))) {
      if (qs_comm_rank(world) == 0) fprintf(stderr, "qshard quantize: --format %s: %s\n", a->formats[i]->name, msg);
      return QS_ERR_ARG;
    }
  }
  if (a->eval_data && !model_dir) {
    if (qs_comm_rank(world) == 0)
      fprintf(stderr, "qshard quantize: --eval scores a model directory; none of the formats writes one\n");
    return QS_ERR_ARG;
  }
  if (a->q.act_order == QS_ACT_ORDER_GROUP && qs_comm_rank(world) == 0)
    qs_log(QS_LOG_WARN, "--act-order=group: groups follow the activation order (non-monotone g_idx); current vLLM "
           "ignores g_idx and loads such a checkpoint wrong (FORMATS §2.4). --act-order alone keeps static groups.");
  return QS_OK;
}

// The sizes the options ask for against the model, from its config alone (before any data is read):
// windows within the model's positions (--allow-long to go past them), a group size engines' kernels
// take (others only warned about), and, on the CPU engine, the calibration activations against the
// memory this host has available.
static qs_status check_sizes(struct qs_comm *world, const struct qs_run_opts *a, const struct qs_model *m) {
  const int r0 = qs_comm_rank(world) == 0, maxp = m->cfg.max_pos;
  const int gs = a->q.grid.group_size;
  if (!a->allow_long && maxp > 0 && (a->seqlen > maxp || a->eval_seqlen > maxp)) {
    if (r0)
      fprintf(stderr, "qshard quantize: --%s %d is longer than the model's %d positions (max_position_embeddings): "
              "its attention was never trained that far; --allow-long to run anyway\n",
              a->seqlen > maxp ? "seqlen" : "eval-seqlen", a->seqlen > maxp ? a->seqlen : a->eval_seqlen, maxp);
    return QS_ERR_ARG;
  }
  int own_grid = 0;
  for (int i = 0; i < a->n_formats; i++) own_grid |= a->formats[i]->module_grid != NULL;
  if (r0 && !own_grid && gs > 0 && gs != 32 && gs != 64 && gs != 128)
    qs_log(QS_LOG_WARN, "--group-size %d: vLLM's and ExLlama's GPTQ kernels take 32, 64 or 128 (or -1); other sizes "
           "load slowly there or not at all%s", gs, gs >= m->cfg.hidden && gs >= m->cfg.intermediate ? " (this one is wider "
           "than every module's input: one group per row, as -1)" : "");
  if (a->calib && a->device == QS_DEVICE_KIND_CPU) {
    // per rank: the residual stream of its windows and one layer's largest input (the MLP's), fp32
    long long D = qs_comm_size(world) / QS_MAX(1, a->stages), n = (a->samples + D - 1) / QS_MAX(1, D);
    int seqlen = a->seqlen ? a->seqlen : QS_MIN(2048, maxp);
    double need = (double)n * seqlen * (2.0 * m->cfg.hidden + m->cfg.intermediate) * 4.0;
    double avail = qs_mem_available_bytes() / QS_MAX(1, qs_comm_local_size(world));
    if (avail > 0 && need > avail) {
      if (r0)
        fprintf(stderr, "qshard quantize: --samples %d x --seqlen %d: each rank's calibration activations need about "
                "%.1f GiB, more than the %.1f GiB this host has available per rank; use fewer --samples, a shorter "
                "--seqlen or more ranks\n", a->samples, seqlen, need / 1073741824.0, avail / 1073741824.0);
      return QS_ERR_ARG;
    }
  }
  return QS_OK;
}

// llama.cpp's block grids (--format gguf) and methods without GPU entries have C references only:
// --device auto runs them on the CPU, --device cuda is refused.
static qs_status block_grids_cpu(struct qs_comm *world, struct qs_run_opts *a) {
  for (int i = 0; i < a->n_formats; i++) {
    if (!a->formats[i]->module_grid) continue;
    if (a->device == QS_DEVICE_KIND_AUTO) a->device = QS_DEVICE_KIND_CPU;
    if (a->device == QS_DEVICE_KIND_CUDA) {
      if (qs_comm_rank(world) == 0)
        fprintf(stderr, "qshard quantize: --device cuda: --format %s: llama.cpp's block quantizers run on the CPU "
                "engine (--device cpu)\n", a->formats[i]->name);
      return QS_ERR_ARG;
    }
  }
  if (!a->method->cuda) {
    if (a->device == QS_DEVICE_KIND_AUTO) a->device = QS_DEVICE_KIND_CPU;
    if (a->device == QS_DEVICE_KIND_CUDA) {
      if (qs_comm_rank(world) == 0)
        fprintf(stderr, "qshard quantize: --device cuda: --method %s runs on the CPU engine only in this build "
                "(--device cpu)\n", a->method->name);
      return QS_ERR_ARG;
    }
  }
  return QS_OK;
}

// --imatrix: the importance the run's grids are searched with (method.h qs_qopts.importance).
static qs_status load_imatrix(struct qs_comm *world, struct qs_run_opts *a, const struct qs_model *m,
                              struct qs_imatrix *imat) {
  qs_status status = QS_OK;
  int ok = 1;
  a->q.importance = a->imatrix;
  if (a->imatrix != QS_IMP_TABLE) return QS_OK;
  ok = qs_gguf_imatrix_read(a->imatrix_file, &m->cfg, imat) == QS_OK; // every rank reads it (small)
  QS_TRY(qs_comm_allreduce_and(world, &ok));
  if (!ok) return QS_ERR_ARG;
  a->q.imatrix = imat;
  qs_log0("imatrix %s: %d entries", a->imatrix_file, imat->n);
fail:
  return status;
}

// ---- the run ----------------------------------------------------------------------------------------

// Every layer of this rank's stage (all layers when S = 1) not yet done (all, unless --resume restored
// some) through the pipeline, in order; each completed layer's records go to its file in the state
// directory (qstate.h).
static qs_status quantize_layers(struct qs_qrun *run) {
  qs_status status = QS_OK;
  struct qs_progress p;
  QS_TRY(qs_progress_init(&p, run, run->state->completed));
  for (int l = run->state->completed; l < run->grid->l1; l++) {
    double t0 = qs_time_now();
    int first = run->n_reports;
    run->layer = l;
    QS_TRY(qs_qstate_layer_begin(run->state, run, l));
    QS_TRY(qs_pipeline_layer(run, l));
    QS_TRY(qs_progress_layer(&p, run, first, qs_time_now() - t0));
    QS_TRY(qs_qstate_layer_end(run->state, run, l)); // the layer's file; the state when due
  }
fail:
  return status;
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *report_json(const struct qs_qrun *run, double seconds, json_t *eval) {
  static const char *const act[] = {"none", "static", "group"};
  const struct qs_run_opts *a = run->a;
  const struct qs_grid *g = &a->q.grid;
  json_t *mods = json_array(), *unpacked = json_array(), *formats = json_array();
  for (int i = 0; i < run->n_reports; i++) {
    const struct qs_qreport *r = &run->reports[i];
    json_t *e = json_pack("{s:s, s:i, s:i, s:i, s:o, s:o, s:f, s:i, s:f, s:b}", "name", r->name, "layer", r->layer,
                          "out_features", r->n, "in_features", r->k, "loss", num_or_null(r->loss), "rel_output_error",
                          num_or_null(r->rel_err), "damp", (double)r->damp, "damp_raises", r->damp_raises, "seconds",
                          r->seconds, "packed", r->packed);
    json_array_append_new(mods, e);
    if (!r->packed) json_array_append_new(unpacked, json_string(r->name));
  }
  for (int i = 0; i < a->n_formats; i++) json_array_append_new(formats, json_string(a->formats[i]->name));
  json_t *rep = json_pack("{s:s, s:s, s:o, s:i, s:i, s:b, s:s, s:s, s:f, s:i, s:i, s:I, s:i, s:f, s:o, s:o}",
                          "model", a->model, "method", a->method->name, "formats", formats, "bits", g->bits,
                          "group_size", g->group_size, "sym", g->sym, "scale_dtype",
                          qs_dtype_name((qs_dtype)g->scale_dtype), "act_order", act[a->q.act_order], "damp",
                          qs_format_float_json(a->q.damp), "samples", (int)run->n_samples, "seqlen", run->T, "seed",
                          (json_int_t)a->seed, "ranks", qs_comm_size(run->world), "seconds", seconds, "modules", mods,
                          "unpacked", unpacked);
  if (rep && run->grid->S > 1) json_object_set_new(rep, "stages", qs_stages_json(run->grid));
  if (rep && eval) json_object_set_new(rep, "eval", eval);
  else json_decref(eval);
  return rep;
}

static qs_status write_report(struct qs_qrun *run, const char *tmp, double seconds, json_t *eval) {
  qs_status status = QS_OK;
  json_t *rep = report_json(run, seconds, eval);
  if (!rep) QS_FAIL(QS_ERR_OOM, "out of memory building the report");
  QS_TRY(qs_outdir_write_json(tmp, "quant_report.json", rep));
fail:
  json_decref(rep);
  return status;
}

static json_t *eval_json(const struct qs_eval_result *r, const char *data) {
  // nll: the mean per predicted token, as the console and `qshard eval --json` print it; nll_sum the total
  return json_pack("{s:s, s:f, s:f, s:f, s:I, s:I, s:I, s:i, s:f}", "data", data, "ppl", r->ppl, "nll",
                   r->nll / (double)QS_MAX(1, r->predicted), "nll_sum", r->nll, "windows", (json_int_t)r->windows, "tokens", (json_int_t)r->tokens, "predicted",
                   (json_int_t)r->predicted, "seqlen", r->seqlen, "seconds", r->seconds);
}

// --eval: the first model directory as written in tmp (rank 0's directory, named to every rank),
// opened and scored on the run's device — exactly what a later `qshard eval` of the output reports.
static qs_status eval_checkpoint(struct qs_qrun *run, const char *tmp, json_t **ej) {
  qs_status status = QS_OK;
  const struct qs_run_opts *a = run->a;
  struct qs_model q = {0};
  struct qs_eval_result er = {0};
  struct qs_eval_device dev = {.kind = a->device, .f32 = a->precision_f32};
  struct qs_eval_cmp cmp = {0};
  int32_t *ids = NULL;
  char path[4096] = {0};
  int opened = 0, ok;
  if (qs_comm_rank(run->world) == 0) snprintf(path, sizeof(path), "%s", tmp);
  QS_TRY(qs_comm_bcast(run->world, path, sizeof(path), 0));
  qs_status st = qs_model_open(&q, path);
  ok = opened = st == QS_OK;
  QS_TRY(qs_comm_allreduce_and(run->world, &ok));
  if (!ok) QS_FAIL(QS_ERR_IO, "--eval: the written checkpoint %s could not be opened on every rank", path);
  const int seqlen = a->eval_seqlen ? a->eval_seqlen : run->T;
  // The original model runs beside it on the same windows, on the run's device: the checkpoint's
  // perplexity (the same bits as `qshard eval` of it on that device) and how far its next-token
  // distributions moved (eval.h). On cuda both models stream their layers from the checkpoints.
  struct qs_eval_request o = {.model = q.dir, .data = a->eval_data, .seqlen = seqlen, .max_windows = a->eval_windows};
  struct qs_eval_plan p;
  double t0 = qs_time_now();
  QS_TRY(qs_eval_share_tokens(run->world, &o, &q.cfg, &p, &ids));
  if (dev.kind == QS_DEVICE_KIND_CPU) {
    st = qs_model_load_layers(&q);
    if (st == QS_OK && !run->m->layers) st = qs_model_load_layers(run->m);
    ok = st == QS_OK;
    QS_TRY(qs_comm_allreduce_and(run->world, &ok));
    if (!ok) QS_FAIL(QS_ERR_IO, "--eval: the models could not be loaded on every rank");
  }
  QS_TRY(qs_eval_compare(run->world, &q, run->m, &p, ids, &dev, t0, &cmp));
  er = (struct qs_eval_result){.ppl = exp(cmp.nll_q / (double)cmp.tokens), .nll = cmp.nll_q, .windows = p.n_windows,
                               .tokens = p.n_windows * p.seqlen, .predicted = cmp.tokens, .seqlen = p.seqlen,
                               .seconds = qs_time_now() - t0};
  *ej = eval_json(&er, a->eval_data);
  double fp = exp(cmp.nll_ref / (double)cmp.tokens);
  json_object_set_new(*ej, "reference", json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "ppl", fp, "kld_mean",
                                                  cmp.kld_mean, "kld_p99", cmp.kld_p99, "kld_max", cmp.kld_max,
                                                  "top1_agreement", cmp.top1, "dp_mean", cmp.dp_mean));
  if (!a->log_json)
    qs_log0("eval: PPL %.4f -> %.4f (%+.2f %%), KLD %.6f (p99 %.6f), top-1 agreement %.2f %% (the original model "
            "and the checkpoint, same %lld windows)", fp, er.ppl, 100.0 * (er.ppl / fp - 1.0), cmp.kld_mean,
            cmp.kld_p99, 100.0 * cmp.top1, er.windows);
  if (a->log_json) qs_progress_note(run, "eval", json_deep_copy(*ej), "eval");
  else qs_eval_print(&er, a->eval_data);
fail:
  if (opened) qs_model_close(&q);
  free(ids);
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
  const struct qs_run_opts *a = run->a;
  struct qs_calib cal = {0};
  json_t *ej = NULL;
  char grid[96];
  double t0 = qs_time_now();
  if (a->calib) {
    int seqlen = a->seqlen ? a->seqlen : QS_MIN(2048, run->m->cfg.max_pos);
    if (a->calib_text) { // the windows `qshard calib` would write, tokenized on rank 0 and broadcast
      const char *texts[1] = {a->calib};
      struct qs_calib_text_opts o = {.tokenizer = a->model, .text = a->calib_text == 1 ? texts : NULL,
                                     .n_text = a->calib_text == 1, .jsonl = a->calib_text == 2 ? a->calib : NULL,
                                     .samples = a->samples, .seqlen = seqlen, .seed = a->seed};
      QS_TRY(qs_calib_text_share(run->world, &o, run->m->cfg.vocab, &cal));
    } else {
      QS_TRY(qs_calib_load(a->calib, a->samples, seqlen, a->seed, run->m->cfg.vocab, &cal));
    }
  }
  QS_TRY(start_engine(run, a->calib ? &cal : NULL));
  if (a->q.importance == QS_IMP_CALIB) ((struct qs_run_opts *)a)->q.imp_count = (float)run->n_samples * (float)run->T;
  qs_grid_name(&a->q.grid, grid, sizeof(grid));
  qs_log0("method %s on the %s grid", a->method->name, grid);
  QS_TRY(qs_qstate_init(run->state, run)); // --resume: the completed layers restored
  QS_TRY(qs_stages_boundary(run, a->calib ? &cal : NULL)); // S > 1: each stage's FP input activations
  QS_TRY(quantize_layers(run));
  run->engine->free(run->engine); // its device memory is the evaluation's
  run->engine = NULL;
  QS_TRY(qs_stages_join(run)); // S > 1: every stage done; every module's report on every rank
  double seconds = qs_time_now() - t0;
  qs_progress_note(run, "quantized", json_pack("{s:i, s:f}", "layers", run->m->cfg.n_layers, "seconds", seconds),
                   "quantized %d layers in %.2f s", run->m->cfg.n_layers, seconds);
  QS_TRY(qs_output_write(run, tmp));
  if (a->eval_data) {
    QS_TRY(eval_checkpoint(run, tmp, &ej));
    run->eval_ppl = json_real_value(json_object_get(ej, "ppl"));
    json_t *ref = json_object_get(ej, "reference");
    if (ref) {
      run->eval_fp_ppl = json_real_value(json_object_get(ref, "ppl"));
      run->eval_kld = json_real_value(json_object_get(ref, "kld_mean"));
    }
  }
  if (qs_comm_rank(run->world) == 0) {
    json_t *e = ej; // stolen by the report
    ej = NULL;
    QS_TRY(write_report(run, tmp, seconds, e));
    QS_TRY(qs_qstate_finish(run->state)); // the outputs are complete: the state goes
    QS_TRY(qs_manifest_write(tmp));       // last: every file's size and SHA-256 (qshard verify)
  }
fail:
  json_decref(ej);
  qs_calib_free(&cal);
  return status;
}

static void qrun_free(struct qs_qrun *run) {
  qs_qstate_free(run->state); // first: its saver thread may hold records lent by the engine
  if (run->engine) run->engine->free(run->engine);
  free(run->reports);
}

int qs_quantize(struct qs_comm *world, struct qs_run_opts *a) {
  struct qs_model m = {0};
  struct qs_qstate state = {0};
  struct qs_stages grid = {0};
  struct qs_qrun run = {.world = world, .data = world, .a = a, .m = &m, .state = &state, .grid = &grid, .eval_ppl = NAN,
                        .eval_fp_ppl = NAN, .eval_kld = NAN};
  double t0 = qs_time_now();
  struct qs_imatrix imat = {0};
  char *tmp = NULL;
  int ok = 1, rc = 1;
  if (a->log_json) qs_log_set_json(1); // every log line of the run a JSON object (progress.h)
  if (block_grids_cpu(world, a) != QS_OK) return 1;
  if (qs_device_resolve(world, &a->device) != QS_OK) return 1;
  if (a->state_interval < 0) a->state_interval = a->device == QS_DEVICE_KIND_CUDA ? 600 : 0;
  if (qs_model_open(&m, a->model) != QS_OK) return 1;
  if (settle_formats(world, a, &m) != QS_OK) goto done;  // before any work or output
  if (check_sizes(world, a, &m) != QS_OK) goto done;
  if (load_imatrix(world, a, &m, &imat) != QS_OK) goto done;
  if (qs_stages_check(world, a, &m) != QS_OK) goto done; // before any work or output
  if (qs_stages_init(&grid, world, a->stages, &m) != QS_OK) goto done;
  run.data = grid.data;
  if (qs_comm_rank(world) == 0) ok = qs_qstate_begin_dir(a->out, a->force, a->resume, &tmp) == QS_OK; // OUT.partial
  if (qs_comm_allreduce_and(world, &ok) != QS_OK || !ok) goto done;
  qs_stop_install("finishing the current layer");
  qs_status st = quantize_run(&run, tmp);
  qs_stop_uninstall();
  if (st == QS_ERR_STOPPED) { // every rank of the stage is here, its state saved after layer completed - 1
    if (qs_comm_rank(run.data) == 0)
      qs_log(QS_LOG_WARN, "stopped by %s with %d of %s%d layers done: the resume state is in %s.partial; the same "
             "command with --resume continues from there", qs_stop_signal_name(state.stop_signal),
             state.completed - grid.l0, grid.S > 1 ? "this stage's " : "", grid.l1 - grid.l0, a->out);
    rc = QS_EXIT_STOPPED;
    // other stages are elsewhere in their layers: the job ends here (their states are saved per layer)
    if (grid.S > 1) qs_comm_abort(world, QS_EXIT_STOPPED);
    goto done;
  }
  if (st != QS_OK) {
    qs_qstate_abort_dir(tmp); // kept when it holds a saved state
    goto done; // cli/main.c settles the failure with the other ranks (prints it once, or aborts)
  }
  long long peak = (long long)qs_peak_rss_bytes();
  if (qs_comm_allreduce_max_i64(world, &peak) != QS_OK) goto done;
  if (qs_comm_rank(world) == 0) {
    if (qs_outdir_commit(tmp, a->out, a->force) != QS_OK) { qs_outdir_abort(tmp); ok = 0; }
    else {
      qs_progress_note(&run, "wrote", json_pack("{s:s}", "out", a->out), "wrote %s", a->out);
      struct qs_summary_in in = {.seconds = qs_time_now() - t0, .peak_host = peak, .eval_ppl = run.eval_ppl,
                                 .eval_fp_ppl = run.eval_fp_ppl, .eval_kld = run.eval_kld, .eval_data = a->eval_data};
      qs_summary_print(&run, &in);
    }
  }
  if (qs_comm_allreduce_and(world, &ok) == QS_OK && ok) rc = 0;
done:
  qrun_free(&run);
  qs_stages_free(&grid);
  qs_imatrix_free(&imat);
  qs_model_close(&m);
  free(tmp);
  return rc;
}
