// layout.c — the decoder-layer table of layout.h.
#include "io/layout.h"

#include <stdio.h>
#include <string.h>

static const struct qs_layout k_llama = {
    .name = "llama",
    .lin_name = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                 "mlp.up_proj", "mlp.down_proj"},
    .lin_group = {QS_GROUP_QKV, QS_GROUP_QKV, QS_GROUP_QKV, QS_GROUP_O, QS_GROUP_GATE_UP, QS_GROUP_GATE_UP,
                  QS_GROUP_DOWN},
    .group = {[QS_GROUP_QKV] = {QS_LIN_Q, 3, "input_layernorm output", -1, "input_layernorm"},
              [QS_GROUP_O] = {QS_LIN_O, 1, "attention output", QS_LIN_V, NULL},
              [QS_GROUP_GATE_UP] = {QS_LIN_GATE, 2, "post_attention_layernorm output", -1, "post_attention_layernorm"},
              [QS_GROUP_DOWN] = {QS_LIN_DOWN, 1, "silu(gate) * up", QS_LIN_UP, NULL}},
};

const struct qs_layout *qs_layout_of(const struct qs_config *c) {
  (void)c; // llama, mistral and qwen2 name and group their linears alike
  return &k_llama;
}

void qs_layout_shape(const struct qs_config *c, enum qs_lin lin, int *n_out, int *n_in, int *bias) {
  const int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
  switch (lin) {
  case QS_LIN_Q: *n_out = qd, *n_in = c->hidden, *bias = c->attn_bias; break;
  case QS_LIN_K:
  case QS_LIN_V: *n_out = kvd, *n_in = c->hidden, *bias = c->attn_bias; break;
  case QS_LIN_O: *n_out = c->hidden, *n_in = qd, *bias = qs_config_o_bias(c); break;
  case QS_LIN_GATE:
  case QS_LIN_UP: *n_out = c->intermediate, *n_in = c->hidden, *bias = 0; break;
  default: *n_out = c->hidden, *n_in = c->intermediate, *bias = 0; break;
  }
}

int qs_layout_prev_lin(const struct qs_layout *lay, const struct qs_config *c, enum qs_group g) {
  const struct qs_layout_group *grp = &lay->group[g];
  int n_out, n_in, b, k_out, k_in;
  if (grp->prev_lin < 0) return -1;
  qs_layout_shape(c, (enum qs_lin)grp->prev_lin, &n_out, &n_in, &b);
  qs_layout_shape(c, (enum qs_lin)grp->first, &k_out, &k_in, &b);
  // v -> o: attention mixes positions but not channels, so v's output channel j reaches o's column j
  // only when every head reads its own v head (n_kv_heads == n_heads)
  if (n_out != k_in || (g == QS_GROUP_O && c->n_kv_heads != c->n_heads)) return -1;
  return grp->prev_lin;
}

int qs_layout_find(const struct qs_layout *lay, const char *module) {
  for (int i = 0; i < QS_LIN_COUNT; i++)
    if (!strcmp(lay->lin_name[i], module)) return i;
  return -1;
}

void qs_layout_module_path(const struct qs_layout *lay, int layer, enum qs_lin lin, char *buf, size_t cap) {
  snprintf(buf, cap, "model.layers.%d.%s", layer, lay->lin_name[lin]);
}
