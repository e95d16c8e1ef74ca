// run.h — the run description of `qshard quantize`: what the command line asked for (struct
// qs_run_opts, parsed by cli/quantize.c), and the state every part of the run shares (struct qs_qrun:
// communicators, the model, the method, the module reports). It sits below the engines, the
// pipeline, the resume state and the output; none of them includes the command line.
#ifndef QS_RUN_H
#define QS_RUN_H

#include <jansson.h>

#include "formats/format.h"
#include "model/model.h"
#include "quant/method.h"

struct qs_comm;

#define QS_MAX_FORMATS 8

// What the user asked for.
struct qs_run_opts {
  const char *model, *calib, *out, *eval_data;
  const struct qs_method *method;   // --method (method.h)
  struct qs_qopts q;                // grid and method options; the grid's min_zero and scale dtype
                                    // are set by the chosen formats (qs_quantize)
  const struct qs_format *formats[QS_MAX_FORMATS]; // --format, in order (the first model directory goes
  int n_formats;                                   // to OUT, the others to OUT/<name>)
  const char *format_args[QS_MAX_FORMATS];         // --format NAME:ARG: ARG (or NULL)
  int imatrix;              // --imatrix: importance for llama.cpp's block grids (QS_IMP_CALIB from --calib,
  const char *imatrix_file; // or QS_IMP_TABLE read from imatrix_file, llama.cpp's imatrix GGUF)
  int calib_text;           // --calib-text / --calib-jsonl: calib names a text (1) or JSON-lines (2) file, tokenized
                            // on rank 0 with the model's tokenizer (io/calib_text.h); 0: an HDF5 token file
  int samples, seqlen;
  int allow_long;        // --allow-long: windows longer than the model's max_position_embeddings
  unsigned long long seed;
  int eval_seqlen;
  long long eval_windows;
  int force;
  long long max_shard_mb;
  int tp;                 // --tp T: TensorRT-LLM rank files for T ranks (implies the trtllm format)
  int device;             // model/device.h: QS_DEVICE_KIND_* (AUTO resolved before the run)
  int precision_f32;      // cuda: 1 = all-fp32 path (forward GEMMs, attention, Hessian inputs), else bf16
  int resume;             // --resume: continue from OUT.partial/ (state.h)
  long long state_interval; // --state-interval: seconds between state saves (0 = after every layer;
                            // -1 until the device is known: 0 on the CPU, 600 on GPUs)
  const char *metrics_file; // --metrics-file: Prometheus text file rewritten after every layer (progress.h)
  int log_json;           // --log-json: rank 0's progress lines as JSON objects
  int stages;             // --stages S: S stages x P/S data ranks (stages.h; default 1 = exact GPTQ)
};

// One quantized linear, as reported (stdout table and quant_report.json). Saved in the resume state
// (state_h5.c report_type lists the fields): a new field goes there too.
struct qs_qreport {
  char name[128];       // HF module path, e.g. model.layers.3.mlp.down_proj
  int layer, n, k;
  double loss;          // the method's own loss (GPTQ: sum of the reference's per-row losses), or NAN
  double rel_err;       // ||WX - QX|| / ||WX|| over the calibration inputs (NAN without them)
  float damp;           // damping fraction used (GPTQ); -1: no damping factorized H, the module was
                        // quantized by RTN instead (quant/gptq.c fallback; quant_report.json "damp": -1)
  int damp_raises;
  double seconds;       // quantize + gather of this module (its group's Hessian not included)
  int packed;           // 0: the first format kept it dense (a shape it cannot pack); set when written
};

// The stage x data grid of --stages S (stages.h builds it): stage s holds world ranks [s*D, (s+1)*D)
// and the contiguous layers [bounds[s], bounds[s+1]).
struct qs_stages {
  int S, D;             // stages, data ranks per stage
  int stage, drank;     // this rank's stage and data rank
  int l0, l1;           // this rank's stage owns layers [l0, l1)
  int *bounds;          // [S + 1]: stage s owns [bounds[s], bounds[s+1])
  struct qs_comm *data; // the ranks of this stage (owned when S > 1; the world when S = 1)
};

struct qs_qengine;
struct qs_qstate;

// The state of a run, shared by its parts.
struct qs_qrun {
  struct qs_comm *world;       // every rank: job-wide agreement, progress, output, eval
  struct qs_comm *data;        // this rank's stage (stages.h): the engines' data-parallel ranks (sample
                               // split, Hessian sums, row gathers); the world when S = 1
  const struct qs_stages *grid; // stage x data grid: this stage's layers [grid->l0, grid->l1)
  const struct qs_run_opts *a;
  struct qs_model *m;
  int layer;                   // the layer being quantized
  long long s0, s1, n_samples; // this rank's calibration samples [s0, s1) of n_samples
  int T;                       // calibration sequence length
  struct qs_qreport *reports;
  int n_reports, cap_reports;
  struct qs_qengine *engine;
  struct qs_qstate *state;     // resume state and per-layer record files (state.h)
  double eval_ppl;             // --eval: the written checkpoint's perplexity (NaN until then)
  double eval_fp_ppl, eval_kld; // and the original model's, with the mean KL divergence (NaN: none)
};

// What format i's writer and hooks know of the run (formats/format.h).
struct qs_format_run qs_run_format_run(const struct qs_run_opts *a, const struct qs_model *m, int i, int rank, int ranks);
// The options module `lin` of the current layer is quantized with: the run's, with the grid the
// formats choose for it (a format's module_grid hook, e.g. the GGUF mixes).
void qs_run_module_opts(const struct qs_qrun *run, enum qs_lin lin, struct qs_qopts *o);

// `qshard quantize`: collective over world. 0 on success; errors were printed.
int qs_quantize(struct qs_comm *world, struct qs_run_opts *a);

// An option that cannot work with this model or layout, refused before any work: rank 0 prints
// "qshard quantize: OPT VALUE: <message>"; every rank returns QS_ERR_ARG.
qs_status qs_quantize_refuse(struct qs_comm *world, const char *opt, int value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// Report line of module `lin` of the current layer: name, sizes.
void qs_qreport_init(struct qs_qreport *rep, const struct qs_qrun *run, enum qs_lin lin);
qs_status qs_qreport_push(struct qs_qrun *run, const struct qs_qreport *r);

#endif
