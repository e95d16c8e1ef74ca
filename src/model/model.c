// model.c — loading a Llama-family checkpoint as float32 (contract in model.h): config.json, the
// embeddings, final norm and lm_head at open, decoder layers on demand.
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

#include "model/ops.h"
#include "quant/quant.h"

// Reads tensor `name` of shape `shape` (ndim entries) converted to float32 into a new buffer.
static qs_status read_tensor(const struct qs_model *m, const char *name, int ndim, const int64_t *shape,
                             float **out) {
  qs_status status = QS_OK;
  const unsigned floats = 1u << QS_DTYPE_F32 | 1u << QS_DTYPE_F16 | 1u << QS_DTYPE_BF16;
  const struct qs_st_tensor *t = NULL;
  size_t n = 1;
  float *buf = NULL;
  QS_TRY(qs_ckpt_get(&m->ckpt, name, floats, ndim, shape, &t));  // names the tensor when wrong
  for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
  QS_ALLOC(buf, n);
  QS_TRY(qs_ckpt_read_f32(&m->ckpt, name, ndim, shape, buf));
  *out = buf;
  return QS_OK;
fail:
  free(buf);
  return status;
}

static qs_status read_vector(const struct qs_model *m, const char *name, int n, float **out) {
  int64_t shape[1] = {n};
  return read_tensor(m, name, 1, shape, out);
}

// Copy of an integer/fp16 tensor of the given dtype and shape (the mapping may be misaligned).
static qs_status copy_tensor(const struct qs_model *m, const char *name, qs_dtype dt, int ndim,
                             const int64_t *shape, void **out) {
  qs_status status = QS_OK;
  const struct qs_st_tensor *t = NULL;
  void *buf = NULL;
  QS_TRY(qs_ckpt_get(&m->ckpt, name, 1u << dt, ndim, shape, &t));
  buf = malloc(t->end - t->begin ? t->end - t->begin : 1);
  if (!buf) QS_FAIL(QS_ERR_OOM, "out of memory reading %s", name);
  memcpy(buf, t->data, t->end - t->begin);
  *out = buf;
fail:
  return status;
}

// A GPTQ v1 linear (FORMATS.md §2): qweight [K*bits/32, N], qzeros [G, N*bits/32], scales fp16
// [G, N], g_idx [K] -> out->w [N, K] float32 = scale * (q - (stored zero + 1)).
static qs_status load_gptq_weight(const struct qs_model *m, const char *prefix, struct qs_linear *out) {
  qs_status status = QS_OK;
  const int64_t N = out->n_out, K = out->n_in;
  const struct qs_st_tensor *qw_t = NULL, *sc_t = NULL;
  void *qw = NULL, *qz = NULL, *sc = NULL, *gi = NULL;
  char name[512];
  if (strcmp(m->cfg.quant_method, "gptq") || m->cfg.quant_gptq_v2)
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: %s is stored quantized (qweight) with quant_method '%s'%s; only GPTQ "
            "v1 checkpoints can be loaded", m->dir, prefix, m->cfg.quant_method, m->cfg.quant_gptq_v2 ? " (gptq_v2)" : "");
  snprintf(name, sizeof(name), "%s.qweight", prefix);
  QS_TRY(qs_ckpt_get(&m->ckpt, name, 1u << QS_DTYPE_I32, 0, NULL, &qw_t));
  const int64_t bits = qw_t->ndim == 2 && K > 0 ? qw_t->shape[0] * 32 / K : 0;
  if (bits != m->cfg.quant_bits || qw_t->shape[0] * 32 != bits * K || (N * bits) % 32)
    QS_FAIL(QS_ERR_FORMAT, "%s: %s does not hold %d-bit codes of a [%lld, %lld] weight", m->dir, name,
            m->cfg.quant_bits, (long long)N, (long long)K);
  QS_TRY(copy_tensor(m, name, QS_DTYPE_I32, 2, (int64_t[]){K * bits / 32, N}, &qw));
  snprintf(name, sizeof(name), "%s.scales", prefix);
  QS_TRY(qs_ckpt_get(&m->ckpt, name, 1u << QS_DTYPE_F16, 0, NULL, &sc_t));
  const int64_t G = sc_t->ndim == 2 ? sc_t->shape[0] : 0;
  QS_TRY(copy_tensor(m, name, QS_DTYPE_F16, 2, (int64_t[]){G, N}, &sc));
  snprintf(name, sizeof(name), "%s.qzeros", prefix);
  QS_TRY(copy_tensor(m, name, QS_DTYPE_I32, 2, (int64_t[]){G, N * bits / 32}, &qz));
  snprintf(name, sizeof(name), "%s.g_idx", prefix);
  QS_TRY(copy_tensor(m, name, QS_DTYPE_I32, 1, (int64_t[]){K}, &gi));
  QS_ALLOC(out->w, (size_t)N * K);
  QS_TRY(qs_gptq_unpack_dequant(qw, qz, sc, gi, (int)bits, N, K, G, out->w));
fail:
  free(qw), free(qz), free(sc), free(gi);
  return status;
}

qs_status qs_model_load_linear(const struct qs_model *m, const char *prefix, int n_out, int n_in, int bias,
                               struct qs_linear *out) {
  qs_status status = QS_OK;
  char name[512];
  int64_t shape[2] = {n_out, n_in};
  memset(out, 0, sizeof(*out));
  out->n_out = n_out;
  out->n_in = n_in;
  snprintf(name, sizeof(name), "%s.qweight", prefix);
  if (qs_ckpt_find(&m->ckpt, name)) {
    QS_TRY(load_gptq_weight(m, prefix, out));
  } else {
    snprintf(name, sizeof(name), "%s.weight", prefix);
    QS_TRY(read_tensor(m, name, 2, shape, &out->w));
  }
  if (bias) {
    snprintf(name, sizeof(name), "%s.bias", prefix);
    QS_TRY(read_vector(m, name, n_out, &out->b));
  }
  return QS_OK;
fail:
  free(out->w);
  free(out->b);
  memset(out, 0, sizeof(*out));
  return status;
}

void qs_layer_free(struct qs_layer *L) {
  if (!L) return;
  struct qs_linear *lin[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
  for (size_t i = 0; i < sizeof(lin) / sizeof(lin[0]); i++) {
    free(lin[i]->w);
    free(lin[i]->b);
  }
  free(L->attn_norm);
  free(L->mlp_norm);
  memset(L, 0, sizeof(*L));
}

qs_status qs_model_load_layer(const struct qs_model *m, int l, struct qs_layer *out) {
  qs_status status = QS_OK;
  const struct qs_config *c = &m->cfg;
  const int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
  char p[256], name[320];
  memset(out, 0, sizeof(*out));
  if (l < 0 || l >= c->n_layers) QS_FAIL(QS_ERR_ARG, "%s: layer %d out of range [0, %d)", m->dir, l, c->n_layers);
  snprintf(p, sizeof(p), "model.layers.%d", l);
  snprintf(name, sizeof(name), "%s.input_layernorm.weight", p);
  QS_TRY(read_vector(m, name, c->hidden, &out->attn_norm));
  snprintf(name, sizeof(name), "%s.post_attention_layernorm.weight", p);
  QS_TRY(read_vector(m, name, c->hidden, &out->mlp_norm));
  const struct { const char *suffix; struct qs_linear *lin; int n_out, n_in, bias; } lins[] = {
      {"self_attn.q_proj", &out->q, qd, c->hidden, c->attn_bias},
      {"self_attn.k_proj", &out->k, kvd, c->hidden, c->attn_bias},
      {"self_attn.v_proj", &out->v, kvd, c->hidden, c->attn_bias},
      {"self_attn.o_proj", &out->o, c->hidden, qd, qs_config_o_bias(c)},
      {"mlp.gate_proj", &out->gate, c->intermediate, c->hidden, 0},
      {"mlp.up_proj", &out->up, c->intermediate, c->hidden, 0},
      {"mlp.down_proj", &out->down, c->hidden, c->intermediate, 0},
  };
  for (size_t i = 0; i < sizeof(lins) / sizeof(lins[0]); i++) {
    snprintf(name, sizeof(name), "%s.%s", p, lins[i].suffix);
    QS_TRY(qs_model_load_linear(m, name, lins[i].n_out, lins[i].n_in, lins[i].bias, lins[i].lin));
  }
  return QS_OK;
fail:
  qs_layer_free(out);
  return status;
}

qs_status qs_model_load_layers(struct qs_model *m) {
  qs_status status = QS_OK;
  if (m->layers) return QS_OK;
  QS_ALLOC(m->layers, m->cfg.n_layers);
  for (int l = 0; l < m->cfg.n_layers; l++) QS_TRY(qs_model_load_layer(m, l, &m->layers[l]));
  return QS_OK;
fail:
  if (m->layers)
    for (int l = 0; l < m->cfg.n_layers; l++) qs_layer_free(&m->layers[l]);
  free(m->layers);
  m->layers = NULL;
  return status;
}

static qs_status load_globals(struct qs_model *m) {
  qs_status status = QS_OK;
  const struct qs_config *c = &m->cfg;
  int64_t emb_shape[2] = {c->vocab, c->hidden};
  QS_TRY(read_tensor(m, "model.embed_tokens.weight", 2, emb_shape, &m->embed));
  QS_TRY(read_vector(m, "model.norm.weight", c->hidden, &m->norm));
  // Tied: lm_head is the embedding matrix (a stored lm_head.weight copy, if any, is ignored as
  // transformers ignores it).
  if (c->tie_embeddings) m->lm_head = m->embed;
  else QS_TRY(read_tensor(m, "lm_head.weight", 2, emb_shape, &m->lm_head));
  QS_ALLOC(m->rope_inv_freq, c->head_dim / 2);
  qs_rope_inv_freq(c, m->rope_inv_freq);
fail:
  return status;
}

qs_status qs_model_open(struct qs_model *m, const char *dir) {
  qs_status status = QS_OK;
  char *cfg_path = NULL;
  memset(m, 0, sizeof(*m));
  m->dir = strdup(dir);
  cfg_path = qs_path_join(dir, "config.json");
  if (!m->dir || !cfg_path) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (!qs_path_is_dir(dir)) QS_FAIL(QS_ERR_IO, "%s: no such model directory", dir);
  QS_TRY(qs_config_load(&m->cfg, cfg_path));
  struct qs_ckpt ck;  // adopted only once open succeeded (a failed open cleans up after itself)
  QS_TRY(qs_ckpt_open(&ck, dir));
  m->ckpt = ck;
  QS_TRY(load_globals(m));
  free(cfg_path);
  return QS_OK;
fail:
  free(cfg_path);
  qs_model_close(m);
  return status;
}

void qs_model_close(struct qs_model *m) {
  if (!m) return;
  if (m->layers)
    for (int l = 0; l < m->cfg.n_layers; l++) qs_layer_free(&m->layers[l]);
  free(m->layers);
  if (m->lm_head != m->embed) free(m->lm_head);
  free(m->embed);
  free(m->norm);
  free(m->rope_inv_freq);
  static const struct qs_ckpt closed;  // all zero until qs_model_open adopted an open checkpoint
  if (memcmp(&m->ckpt, &closed, sizeof(closed))) qs_ckpt_close(&m->ckpt);
  free(m->dir);
  memset(m, 0, sizeof(*m));
}
