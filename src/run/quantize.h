// quantize.h — internals of `qshard quantize` shared by quantize.c (CLI, layer loop),
// quantize_layer.c (the per-group GPTQ/RTN step) and gptq_ckpt.c (the GPTQ checkpoint).
#ifndef QS_QUANTIZE_H
#define QS_QUANTIZE_H

#include <jansson.h>

#include "model/model.h"
#include "quant/quant.h"
#include "io/safetensors.h"

struct qs_comm;

enum qs_qmethod { QS_QMETHOD_GPTQ = 0, QS_QMETHOD_RTN };

struct qs_qargs {
  const char *model, *calib, *out, *eval_data;
  enum qs_qmethod method;
  struct qs_quant_opts q;
  int samples, seqlen;
  unsigned long long seed;
  int eval_seqlen;
  long long eval_windows;
  int force;
  long long max_shard_mb;
  int tp;                // --tp T: also a TensorRT-LLM checkpoint for T ranks in OUT/trtllm (0 = off)
  int device;            // device.h: QS_DEVICE_KIND_* (AUTO resolved before the run)
  int precision_f32;     // cuda: 1 = all-fp32 path (forward GEMMs, attention, Hessian inputs), else bf16
  int factor_f64;        // cuda: inverse-Hessian factor in fp64
  int resume;            // --resume: continue from OUT.partial/ (qstate.h)
  long long state_interval; // --state-interval: seconds between state saves (0 = after every layer;
                            // -1 until the device is known: 0 on the CPU, 600 on GPUs)
  const char *metrics_file; // --metrics-file: Prometheus text file rewritten after every layer (progress.h)
  int log_json;          // --log-json: rank 0's progress lines as JSON objects
  int stages;            // --stages S: S stages x P/S data ranks (stages.h; default 1 = exact GPTQ)
};

// One quantized linear, as reported (stdout table and quant_report.json). Saved in the resume state
// (qstate_h5.c report_type lists the fields): a new field goes there too.
struct qs_qreport {
  char name[128];       // HF module path, e.g. model.layers.3.mlp.down_proj
  int layer, n, k;
  double loss;          // GPTQ: sum of the reference's per-row losses; RTN: NAN
  double rel_err;       // ||WX - QX|| / ||WX|| over the calibration inputs (NAN without them)
  float damp;           // damping fraction used (GPTQ)
  int damp_raises;
  double seconds;       // quantize + gather of this module (its group's Hessian not included)
  int packed;           // 0: the format cannot pack its shape; written unquantized
  long long wrapped;    // asymmetric v1 zeros of 0 (stored wrapped; see quant.h)
};

struct qs_qengine;

struct qs_stages;

struct qs_qrun {
  struct qs_comm *world;       // every rank: job-wide agreement, progress, output assembly, eval
  struct qs_comm *data;        // this rank's stage (stages.h): the engines' data-parallel ranks (sample
                               // split, Hessian sums, row gathers); the world when S = 1
  const struct qs_stages *grid; // stage x data grid: this stage's layers [grid->l0, grid->l1)
  const struct qs_qargs *a;
  struct qs_model *m;
  int layer;
  long long s0, s1, n_samples; // this rank's calibration samples [s0, s1) of n_samples
  int T;                       // calibration sequence length
  const float *X;              // current group input [(s1-s0)*T, K] (for the Hessian leaves)
  int K;
  struct qs_st_writer *writer; // the current layer's file (data rank 0, the stage leader), then the
                               // checkpoint (world rank 0, qs_qstate_assemble)
  char **replaced;             // tensor names of the input replaced by packed ones (rank 0)
  int n_replaced, cap_replaced;
  struct qs_qreport *reports;
  int n_reports, cap_reports;
  struct qs_qengine *engine;
  struct qs_trtllm *trtllm;    // --tp: this rank's TensorRT-LLM shards (trtllm.h), NULL otherwise
  struct qs_qstate *state;     // resume state and per-layer files (qstate.h)
};

// ---- layer engines: where the calibration activations live and how a layer is quantized ---------
// An engine owns this rank's calibration samples [s0, s1) (it sets run->s0/s1/n_samples/T) as the
// residual stream x [s1 - s0, T, hidden] fp32. layer(l) quantizes decoder layer l — every module
// emitted through qs_quantize_emit — and leaves x = the layer's output computed with its quantized
// modules. Without calibration data (RTN), x is empty and layer() quantizes from weights alone.
struct qs_qengine {
  const char *name; // "cpu" or "cuda"
  qs_status (*layer)(struct qs_qengine *e, struct qs_qrun *run, int l);
  // x copied out to / in from host memory (resume state), [s1 - s0, T, hidden] fp32.
  qs_status (*get_x)(struct qs_qengine *e, const struct qs_qrun *run, float *x);
  qs_status (*set_x)(struct qs_qengine *e, const struct qs_qrun *run, const float *x);
  // Peak device memory in bytes since the engine started (-1 on the CPU).
  long long (*device_peak)(struct qs_qengine *e);
  void (*free)(struct qs_qengine *e);
};
struct qs_calib;
// cal may be NULL (RTN without data). Collective over run->data (this rank's stage).
qs_status qs_qengine_cpu_init(struct qs_qrun *run, const struct qs_calib *cal, struct qs_qengine **out);
qs_status qs_qengine_cuda_init(struct qs_qrun *run, const struct qs_calib *cal, struct qs_qengine **out);

// ---- module results, shared by the engines ---------------------------------------------------------
// A quantized module in GPTQ v1 packing (FORMATS §2), complete (all rows), on the host.
struct qs_qpacked {
  int64_t N, K, G;
  const int32_t *qweight;  // [K*bits/32, N]
  const int32_t *qzeros;   // [G, N*bits/32]
  const uint16_t *scales;  // [G, N] fp16
  const int32_t *g_idx;    // [K]
  const float *bias;       // [N] or NULL
};
// 1 when this rank needs the packed tensors of every module of its stage (data rank 0 writes the
// layer files; with --tp T and S = 1, ranks < T write TensorRT-LLM shards — with S > 1 they read
// every module back from the layer files at the end, qs_stages_join).
int qs_quantize_wants_packed(const struct qs_qrun *run);
// Called on every rank of a stage with the same module, after its rows were gathered: hands a
// packable module to the layer file / TensorRT-LLM writer(s) (p NULL when the shape cannot be
// packed: written as stored) and records its report line.
qs_status qs_quantize_emit(struct qs_qrun *run, const struct qs_qreport *rep, const struct qs_qpacked *p);
// An option that cannot work with this model or layout, refused before any work: rank 0 prints
// "qshard quantize: OPT VALUE: <message>"; every rank returns QS_ERR_ARG.
qs_status qs_quantize_refuse(struct qs_comm *world, const char *opt, int value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// Report line of a module: name from (layer, module), sizes.
void qs_qreport_init(struct qs_qreport *rep, const struct qs_qrun *run, const char *module, int n, int k);
// Modules of each linear group, in true-sequential order (q/k/v, o, gate/up, down).
extern const char *const qs_group_modules[QS_GROUP_COUNT][3];
int qs_group_size(enum qs_group g);

// The group hook of qs_layer_forward: Hessian over all ranks' samples, then each module of the
// group quantized (rows split over ranks, gathered) and handed to the checkpoint writer.
qs_status qs_quantize_group(void *ctx, enum qs_group g, struct qs_layer *L, const float *X, int rows, int K);
// Without calibration data (RTN only): every module of a layer quantized from its weights alone.
qs_status qs_quantize_layer_weights_only(struct qs_qrun *run, struct qs_layer *L);

// gptq_ckpt.c — rank 0: packed tensors of one module into the writer, or its original tensors
// when its shape cannot be packed.
qs_status qs_gptq_ckpt_add_module(struct qs_qrun *run, const char *name, const struct qs_qpacked *p);
// CPU packing of a module's codes [N, K], scales/zeros [N, G] (solver layout); *wrapped = zeros of 0.
qs_status qs_gptq_pack_module(const struct qs_qrun *run, int64_t N, int64_t K, const uint8_t *codes,
                              const uint16_t *scales, const uint8_t *zeros, int32_t **qweight, int32_t **qzeros,
                              uint16_t **scales_out, long long *wrapped);
// Every tensor of the input checkpoint that was not replaced, copied as stored (model dtype).
qs_status qs_gptq_ckpt_add_rest(struct qs_qrun *run);
// Records an input tensor as replaced (add_rest skips it); --resume restores the completed layers'.
qs_status qs_gptq_ckpt_mark_replaced(struct qs_qrun *run, const char *name);
// config.json (+ quantization_config), quantize_config.json, tokenizer and other files.
qs_status qs_gptq_ckpt_write_configs(struct qs_qrun *run, const char *dir);
json_t *qs_qreport_json(const struct qs_qrun *run, double seconds, json_t *eval); // eval: stolen, may be NULL

#endif
