// model.h — a Llama-family model in float32 on the CPU: weights, the decoder layer forward pass
// (the unit of work of calibration), embeddings and logits.
#ifndef QS_MODEL_H
#define QS_MODEL_H

#include <stdint.h>

#include <jansson.h>

#include "io/config.h"
#include "io/layout.h"
#include "io/safetensors.h"

struct qs_format;

struct qs_linear {
  int n_out, n_in;
  float *w;   // [n_out, n_in] (HF nn.Linear layout)
  float *b;   // [n_out] or NULL
};

struct qs_layer {
  float *attn_norm;                   // [hidden] input_layernorm
  float *mlp_norm;                    // [hidden] post_attention_layernorm
  union {                             // the linears by name, or by enum qs_lin (io/layout.h)
    struct {
      struct qs_linear q, k, v, o;    // q [H*D, hidden], k/v [Hkv*D, hidden], o [hidden, H*D]
      struct qs_linear gate, up, down; // gate/up [inter, hidden], down [hidden, inter]
    };
    struct qs_linear lin[QS_LIN_COUNT];
  };
};

struct qs_model {
  struct qs_config cfg;
  struct qs_ckpt ckpt;                // open (mmap) for the model's lifetime
  char *dir;
  // [vocab, hidden] embed_tokens and lm_head (== embed when tied) as the checkpoint stores them (F32,
  // BF16 or F16), read in place from its mapping row by row or block by block (qs_model_embed,
  // qs_model_logits): no fp32 copy per rank — a node's ranks share the pages.
  const struct qs_st_tensor *embed, *lm_head;
  float *norm;                        // [hidden] model.norm
  float *rope_inv_freq;               // [head_dim / 2]
  struct qs_layer *layers;            // [n_layers], NULL until qs_model_load_layers()
  json_t *quant_config;               // config.json's quantization_config (NULL: not quantized)
  const struct qs_format *format;     // its reader (formats/format.h), NULL when not quantized
};

// Reads config.json, opens the checkpoint, loads embeddings, final norm and lm_head as float32
// (from F32/F16/BF16). Missing tensors and wrong shapes are errors naming the tensor.
qs_status qs_model_open(struct qs_model *m, const char *dir);
void qs_model_close(struct qs_model *m);
// Float32 copy of layer l ("model.layers.{l}.*"). A linear stored quantized (any format qshard
// writes: formats/format.h) is dequantized here by qs_model_load_linear.
qs_status qs_model_load_layer(const struct qs_model *m, int l, struct qs_layer *out);
qs_status qs_model_load_layers(struct qs_model *m);
void qs_layer_free(struct qs_layer *L);
// The layer's norm weight [hidden] by its HF name under model.layers.L ("input_layernorm",
// "post_attention_layernorm"), or NULL.
float *qs_layer_norm(struct qs_layer *L, const char *name);
// Per-input-channel scales s [K] of group g folded into the layer without changing its function
// (AWQ, quant/awq.h): the columns of g's modules multiplied by s, the op producing their input
// divided by s — the rows (and bias) of the layout's prev_lin, or its prev_norm weight, which is then
// rounded to norm_dtype (how the checkpoint stores it) and copied to norm_out [K]. QS_ERR_INTERNAL
// for a group with no such op (qs_layout_prev_lin).
qs_status qs_layer_fold(struct qs_layer *L, const struct qs_config *c, enum qs_group g, const float *s,
                        qs_dtype norm_dtype, float *norm_out);
// Loads "<prefix>.weight" (and "<prefix>.bias" when `bias`) as float32 [n_out, n_in]; a module
// stored quantized (no "<prefix>.weight") through the reader of the checkpoint's format.
qs_status qs_model_load_linear(const struct qs_model *m, const char *prefix, int n_out, int n_in,
                               int bias, struct qs_linear *out);

// Scratch buffers for B sequences of T tokens (sized once, reused per layer).
struct qs_fwd {
  int B, T;
  float *xn;        // [B*T, hidden] normed input
  float *q;         // [B*T, H*D]
  float *k, *v;     // [B*T, Hkv*D]
  float *att;       // [B*T, H*D] attention output (input of o_proj)
  float *gate, *up; // [B*T, inter]
  float *tmp;       // [B*T, hidden]
  float *scores;    // [T]
};
qs_status qs_fwd_init(struct qs_fwd *f, const struct qs_config *c, int B, int T);
void qs_fwd_free(struct qs_fwd *f);

// One decoder layer on B independent sequences: x: [B, T, hidden] residual stream, in/out;
// positions 0..T-1 in every sequence. Each sequence's result depends only on its own tokens (the
// matrix products run per sequence), so splitting sequences across ranks changes no bit.
qs_status qs_layer_forward(const struct qs_config *c, const float *rope_inv_freq, struct qs_layer *L,
                           float *x, int B, int T, struct qs_fwd *ws);
// The same forward in steps, for a caller that changes the weights between them (quantization):
// step g < QS_GROUP_COUNT computes the input of linear group g (io/layout.h) from x and the groups
// before it as they are now — *X [B*T, *K] in ws; step QS_GROUP_COUNT applies down_proj and the
// residual, leaving x = the layer's output. Steps run in order 0..QS_GROUP_COUNT; together they are
// exactly qs_layer_forward.
qs_status qs_layer_step(const struct qs_config *c, const float *rope_inv_freq, struct qs_layer *L, float *x, int B,
                        int T, struct qs_fwd *ws, int step, const float **X, int *K);

// x: [n, hidden] = embed[ids]. Ids must already be checked against the vocabulary.
void qs_model_embed(const struct qs_model *m, const int32_t *ids, int n, float *x);
// logits: [T, vocab] = lm_head(norm(x)), x: [T, hidden] (x is left unchanged; xn: [T, hidden] scratch).
// An fp32 lm_head is multiplied in place; a 16-bit one in blocks of rows converted to fp32 (same
// products: the conversion is exact).
qs_status qs_model_logits(const struct qs_model *m, const float *x, float *logits, int T, float *xn);
// Runs all layers (already loaded) on one sequence: x: [T, hidden] in/out.
qs_status qs_model_forward_layers(struct qs_model *m, float *x, int T, struct qs_fwd *ws);

#endif
