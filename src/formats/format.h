// format.h — the format seam: one writer (and reader) per on-disk checkpoint format, behind one
// interface. A run chooses its formats with --format a,b,...; once every layer is quantized, the run
// (run/output.c) feeds each writer the records of every module (quant/record.h) in layer order, then
// every tensor of the input checkpoint, then finishes it:
//
//   open(dir) → module(record) × every quantized linear → dense(tensor) × every input tensor → finish
//
// Packing into the format's words happens only inside its writer. module() may keep a record's
// module dense (a shape the format cannot pack): its input tensors then come through dense() like
// any other; a writer skips in dense() the tensors its modules replaced. finish() writes the config
// files; each file goes under a temporary name and is renamed when complete, and the whole output
// directory is renamed from OUT.partial to OUT by the run once every format is done.
//
// Reading: `qshard eval` (model/model.c) loads a quantized checkpoint through the reader of the
// format that config.json's quantization_config names (detect + load_linear): every format qshard
// writes as a model directory it also reads.
//
// Adding a format: formats/<name>.c defining its struct qs_format, plus its row in formats.c.
#ifndef QS_FORMAT_H
#define QS_FORMAT_H

#include <jansson.h>
#include <stdint.h>

#include "io/config.h"
#include "io/layout.h"
#include "io/safetensors.h"
#include "quant/method.h"
#include "quant/record.h"

// What a writer knows of the run (filled by the run).
struct qs_format_run {
  const char *model_dir;      // the input model: config.json, tokenizer and other files come from it
  const struct qs_config *cfg;
  const struct qs_ckpt *ckpt; // the input tensors
  const char *arg;            // what followed "NAME:" in --format (gguf:Q4_K_M), or NULL
  const char *method;         // method name, for the configs
  const char *calib;          // the calibration data file (NULL without), and its windows
  int calib_samples;
  const struct qs_qopts *opts; // grid and method options the records were made with
  int tp;                     // --tp T: tensor-parallel ranks (trtllm); 0 otherwise
  uint64_t max_shard_bytes;   // safetensors shard size of model directories (0: one file)
  int rank, ranks;            // this process among the run's MPI ranks
  int writer;                 // the rank that writes a single-writer format's output
};

// A writer's state begins with this (each format extends it: struct gptq_writer { struct qs_fwriter base; ... }).
struct qs_fwriter {
  const struct qs_format *fmt;
  const struct qs_format_run *fr;
};

struct qs_format {
  const char *name; // --format NAME
  const char *help;
  // How an engine loads the output, for the end-of-run summary: {OUT} is the format's directory,
  // {FILE} its first .gguf file.
  const char *load_hint;
  int model_dir;    // 1: writes a model directory (config.json + safetensors) that loaders and `qshard eval` read
  // Before any work, on every rank: 0 when this format can hold the run's output, else writes why into
  // msg (one sentence naming the option or shape) and returns 1. The caller prints it once.
  int (*refuse)(const struct qs_format_run *fr, char *msg, size_t cap);
  // The method a run writing this format (first) uses when --method is not given (NULL: gptq).
  const char *method;
  // Checks the format's argument (--format NAME:ARG; arg NULL when none): 0, or a message in msg.
  int (*parse_arg)(const char *arg, char *msg, size_t cap);
  // Narrows the grid the run quantizes on to what this format stores exactly (may be NULL).
  void (*constrain)(const struct qs_format_run *fr, struct qs_grid *g);
  // The grid of linear module `lin` (enum qs_lin) of decoder layer `layer`, for a format that
  // chooses it per module (llama.cpp's mixes: more bits for some attn_v / ffn_down); NULL: the run's
  // grid everywhere. Called with the run's grid in *g.
  void (*module_grid)(const struct qs_format_run *fr, int layer, int lin, struct qs_grid *g);
  // The scale dtypes it stores exactly (bits 1u << qs_dtype). The run rounds scales to the model's
  // dtype when every chosen format takes it, else to fp16 (qs_format_scale_dtype).
  unsigned scale_dtypes;
  // 1 when this rank writes (part of) the output: the writers below are called only there.
  int (*writes)(const struct qs_format_run *fr);
  qs_status (*open)(struct qs_fwriter **w, const struct qs_format_run *fr, const char *dir);
  // A complete record (host memory, valid during the call). *dense = 1: kept dense.
  qs_status (*module)(struct qs_fwriter *w, const struct qs_qrecord *r, int *dense);
  qs_status (*dense)(struct qs_fwriter *w, const struct qs_st_tensor *t);
  qs_status (*finish)(struct qs_fwriter *w);
  void (*free)(struct qs_fwriter *w);
  // Reading. detect: 1 when quantization_config qc is this format's. load_linear: the fp32 weight
  // W [N, K] of module `prefix` ("model.layers.3.mlp.down_proj") from its stored tensors.
  int (*detect)(const json_t *qc);
  qs_status (*load_linear)(const json_t *qc, const struct qs_ckpt *ck, const char *prefix, int64_t N, int64_t K,
                           float *W);
  // Reading a path that is not a Hugging Face model directory (TensorRT-LLM rank files, a GGUF file or
  // a directory holding one): is_dir says whether the path is one of this format's; open_dir
  // reassembles it in memory as a Hugging Face checkpoint — the config, the tensors under their HF
  // names, and the quantization_config (*qc, new reference) whose reader then loads the linears, or
  // *qc = NULL when every tensor is already dequantized to fp32 (GGUF).
  int (*is_dir)(const char *dir);
  qs_status (*open_dir)(const char *dir, struct qs_config *cfg, struct qs_ckpt *ck, json_t **qc);
};

const struct qs_format *qs_format_find(const char *name);
// "gptq|compressed-tensors|trtllm", for usage and messages.
const char *qs_format_names(void);
// The format whose open_dir reads directory dir, or NULL (a Hugging Face model directory).
const struct qs_format *qs_format_for_dir(const char *dir);
// The format whose reader takes quantization_config qc, or NULL (message in msg).
const struct qs_format *qs_format_detect(const json_t *qc, char *msg, size_t cap);

// The scale dtype of a run writing these formats for a model of dtype `model` (-1 when none fits).
int qs_format_scale_dtype(const struct qs_format *const *fmts, int n, qs_dtype model);

// What the model-directory writers (gptq, compressed-tensors) share: the directory, its safetensors
// writer (shards of fr->max_shard_bytes), and the input tensors their modules replaced, which
// qs_fdir_dense skips while it passes every other input tensor through as stored.
struct qs_fdir {
  struct qs_fwriter base;
  char *dir;
  struct qs_st_writer *st;
  char **replaced;
  int n_replaced, cap_replaced;
};
qs_status qs_fdir_init(struct qs_fdir *d, const struct qs_format *fmt, const struct qs_format_run *fr, const char *dir);
void qs_fdir_free(struct qs_fdir *d);
// "<prefix>.<suffix>" (an input tensor) is written in another form: dense() skips it.
qs_status qs_fdir_replaced(struct qs_fdir *d, const char *prefix, const char *suffix);
qs_status qs_fdir_dense(struct qs_fdir *d, const struct qs_st_tensor *t);
// A module a writer keeps dense. Its input tensors pass through unchanged — unless a method folded
// scales into it (record.h QS_QRECORD_X_SCALES / X_OUT_SCALES: the norm or linear feeding it, or
// the one it feeds, was divided by them), when the input's weight with those scales applied (and the
// folded bias), in the input's dtype, replaces them: full precision, and the same function.
qs_status qs_fdir_dense_record(struct qs_fdir *d, const struct qs_qrecord *r);

// Helpers the model-directory writers share: "<prefix>.<suffix>" into w (copied); config.json of the
// input with quantization_config replaced by qc (stolen), the input's other files copied through.
qs_status qs_format_add(struct qs_st_writer *w, const char *prefix, const char *suffix, qs_dtype dt, int ndim,
                        int64_t d0, int64_t d1, const void *data);
qs_status qs_format_write_config(const struct qs_format_run *fr, const char *dir, json_t *qc);
// Module path "model.layers.L.<module>" of a record: *lin (enum qs_lin) and *layer, or QS_ERR_INTERNAL.
qs_status qs_format_record_lin(const struct qs_format_run *fr, const struct qs_qrecord *r, int *lin);
// The damping as the user wrote it (a float widened to double prints as 0.009999999776...).
double qs_format_float_json(float f);

#endif
