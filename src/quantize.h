// quantize.h — internals of `qshard quantize` shared by quantize.c (CLI, layer loop),
// quantize_layer.c (the per-group GPTQ/RTN step) and gptq_ckpt.c (the GPTQ checkpoint).
#ifndef QS_QUANTIZE_H
#define QS_QUANTIZE_H

#include <jansson.h>

#include "model.h"
#include "quant.h"
#include "safetensors.h"

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
};

// One quantized linear, as reported (stdout table and quant_report.json).
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

struct qs_qrun {
  struct qs_comm *world;
  const struct qs_qargs *a;
  struct qs_model *m;
  int layer;
  long long s0, s1, n_samples; // this rank's calibration samples [s0, s1) of n_samples
  int T;                       // calibration sequence length
  const float *X;              // current group input [(s1-s0)*T, K] (for the Hessian leaves)
  int K;
  struct qs_st_writer *writer; // rank 0 only
  char **replaced;             // tensor names of the input replaced by packed ones (rank 0)
  int n_replaced, cap_replaced;
  struct qs_qreport *reports;
  int n_reports, cap_reports;
};

// The group hook of qs_layer_forward: Hessian over all ranks' samples, then each module of the
// group quantized (rows split over ranks, gathered) and handed to the checkpoint writer.
qs_status qs_quantize_group(void *ctx, enum qs_group g, struct qs_layer *L, const float *X, int rows, int K);
// Without calibration data (RTN only): every module of a layer quantized from its weights alone.
qs_status qs_quantize_layer_weights_only(struct qs_qrun *run, struct qs_layer *L);

// gptq_ckpt.c — rank 0: packed tensors of one module into the writer, or its original tensors
// when its shape cannot be packed.
qs_status qs_gptq_ckpt_add_module(struct qs_qrun *run, const char *name, const struct qs_linear *lin,
                                  const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros,
                                  const int32_t *g_idx, int packable, long long *wrapped);
// Every tensor of the input checkpoint that was not replaced, copied as stored (model dtype).
qs_status qs_gptq_ckpt_add_rest(struct qs_qrun *run);
// config.json (+ quantization_config), quantize_config.json, tokenizer and other files.
qs_status qs_gptq_ckpt_write_configs(struct qs_qrun *run, const char *dir);
json_t *qs_qreport_json(const struct qs_qrun *run, double seconds, json_t *eval); // eval: stolen, may be NULL

#endif
