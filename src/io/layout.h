// layout.h — the linear modules of a decoder layer: the one table of their names, shapes and
// true-sequential groups per architecture (llama, mistral and qwen2 share the Llama layout). The
// pipeline walks its groups in order, the forward passes and the weight streams index modules by
// enum qs_lin, and the format writers name tensors from it.
#ifndef QS_LAYOUT_H
#define QS_LAYOUT_H

#include "io/config.h"

// The linears of a decoder layer, in the order the forward applies them.
enum qs_lin { QS_LIN_Q = 0, QS_LIN_K, QS_LIN_V, QS_LIN_O, QS_LIN_GATE, QS_LIN_UP, QS_LIN_DOWN, QS_LIN_COUNT };

// Linear groups, in the order they are applied: the modules of one group read the same input and
// share one Hessian (GPTQ's true-sequential order: q/k/v, then o, then gate/up, then down).
enum qs_group { QS_GROUP_QKV = 0, QS_GROUP_O, QS_GROUP_GATE_UP, QS_GROUP_DOWN, QS_GROUP_COUNT };

struct qs_layout_group {
  int first, count;  // modules [first, first + count) of enum qs_lin
  const char *input; // what they read, for messages: "input_layernorm output", ...
  // The op whose output is the group's input, into which per-input-channel scales fold (AWQ): a
  // norm (prev_norm: its weight under model.layers.L, prev_lin -1), or a linear whose output rows
  // are the group's input channels one to one (prev_lin; o after v only when v's rows and o's
  // columns match: no grouped-query attention), or neither (-1, NULL: no scales for this group).
  int prev_lin;
  const char *prev_norm;
};

struct qs_layout {
  const char *name;                                  // "llama"
  const char *lin_name[QS_LIN_COUNT];                // HF module path under model.layers.L
  enum qs_group lin_group[QS_LIN_COUNT];
  struct qs_layout_group group[QS_GROUP_COUNT];
};

const struct qs_layout *qs_layout_of(const struct qs_config *c);
// [n_out, n_in] of linear `lin` and whether the config gives it a bias.
void qs_layout_shape(const struct qs_config *c, enum qs_lin lin, int *n_out, int *n_in, int *bias);
// The linear whose output rows feed group g channel for channel, or -1 (a norm, or shapes that
// do not match: v -> o under grouped-query attention).
int qs_layout_prev_lin(const struct qs_layout *lay, const struct qs_config *c, enum qs_group g);
// The linear named `module` ("self_attn.q_proj"), or -1.
int qs_layout_find(const struct qs_layout *lay, const char *module);
// "model.layers.L.<module>" into buf.
void qs_layout_module_path(const struct qs_layout *lay, int layer, enum qs_lin lin, char *buf, size_t cap);

#endif
