// model.c — loading a Llama-family checkpoint as float32 (contract in model.h): config.json, the
// embeddings, final norm and lm_head at open, decoder layers on demand.
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

#include "model/ops.h"
#include "formats/format.h"
#include "quant/awq.h"

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

qs_status qs_model_load_linear(const struct qs_model *m, const char *prefix, int n_out, int n_in, int bias,
                               struct qs_linear *out) {
  qs_status status = QS_OK;
  char name[512];
  int64_t shape[2] = {n_out, n_in};
  memset(out, 0, sizeof(*out));
  out->n_out = n_out;
  out->n_in = n_in;
  snprintf(name, sizeof(name), "%s.weight", prefix);
  if (m->format && !qs_ckpt_find(&m->ckpt, name)) { // stored quantized: dequantized by its format's reader
    QS_ALLOC(out->w, (size_t)n_out * (size_t)n_in);
    QS_TRY(m->format->load_linear(m->quant_config, &m->ckpt, prefix, n_out, n_in, out->w));
  } else {
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

float *qs_layer_norm(struct qs_layer *L, const char *name) {
  if (!strcmp(name, "input_layernorm")) return L->attn_norm;
  if (!strcmp(name, "post_attention_layernorm")) return L->mlp_norm;
  return NULL;
}

qs_status qs_layer_fold(struct qs_layer *L, const struct qs_config *c, enum qs_group g, const float *s,
                        qs_dtype norm_dtype, float *norm_out) {
  qs_status status = QS_OK;
  const struct qs_layout *lay = qs_layout_of(c);
  const struct qs_layout_group *grp = &lay->group[g];
  const int prev = qs_layout_prev_lin(lay, c, g);
  const int64_t K = L->lin[grp->first].n_in;
  float *norm = grp->prev_norm ? qs_layer_norm(L, grp->prev_norm) : NULL;
  if (prev < 0 && !norm) QS_FAIL(QS_ERR_INTERNAL, "fold: %s has no op to fold scales into", grp->input);
  for (int i = grp->first; i < grp->first + grp->count; i++)
    qs_awq_fold_ref(L->lin[i].w, L->lin[i].n_out, K, s, QS_AWQ_FOLD_COLS_MUL);
  if (prev >= 0) {
    struct qs_linear *p = &L->lin[prev];
    qs_awq_fold_ref(p->w, K, p->n_in, s, QS_AWQ_FOLD_ROWS_DIV);
    if (p->b) qs_awq_fold_ref(p->b, K, 1, s, QS_AWQ_FOLD_ROWS_DIV);
  } else {
    for (int64_t k = 0; k < K; k++) {
      float v = norm[k] / s[k];
      uint8_t buf[8];
      qs_convert_from_f32(&v, norm_dtype, buf, 1); // what the checkpoint will hold, used from here on
      qs_convert_to_f32(buf, norm_dtype, &norm[k], 1);
      if (norm_out) norm_out[k] = norm[k];
    }
  }
fail:
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
  const struct qs_layout *lay = qs_layout_of(c);
  char p[256], name[320];
  memset(out, 0, sizeof(*out));
  if (l < 0 || l >= c->n_layers) QS_FAIL(QS_ERR_ARG, "%s: layer %d out of range [0, %d)", m->dir, l, c->n_layers);
  snprintf(p, sizeof(p), "model.layers.%d", l);
  snprintf(name, sizeof(name), "%s.input_layernorm.weight", p);
  QS_TRY(read_vector(m, name, c->hidden, &out->attn_norm));
  snprintf(name, sizeof(name), "%s.post_attention_layernorm.weight", p);
  QS_TRY(read_vector(m, name, c->hidden, &out->mlp_norm));
  for (int i = 0; i < QS_LIN_COUNT; i++) {
    int n_out, n_in, bias;
    qs_layout_shape(c, (enum qs_lin)i, &n_out, &n_in, &bias);
    qs_layout_module_path(lay, l, (enum qs_lin)i, name, sizeof(name));
    QS_TRY(qs_model_load_linear(m, name, n_out, n_in, bias, &out->lin[i]));
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
  const unsigned floats = 1u << QS_DTYPE_F32 | 1u << QS_DTYPE_F16 | 1u << QS_DTYPE_BF16;
  int64_t emb_shape[2] = {c->vocab, c->hidden};
  QS_TRY(qs_ckpt_get(&m->ckpt, "model.embed_tokens.weight", floats, 2, emb_shape, &m->embed));
  QS_TRY(read_vector(m, "model.norm.weight", c->hidden, &m->norm));
  // Tied: lm_head is the embedding matrix (a stored lm_head.weight copy, if any, is ignored as
  // transformers ignores it).
  if (c->tie_embeddings) m->lm_head = m->embed;
  else QS_TRY(qs_ckpt_get(&m->ckpt, "lm_head.weight", floats, 2, emb_shape, &m->lm_head));
  QS_ALLOC(m->rope_inv_freq, c->head_dim / 2);
  qs_rope_inv_freq(c, m->rope_inv_freq);
fail:
  return status;
}

// A quantized checkpoint: its quantization_config and the format that reads it.
static qs_status open_quant_config(struct qs_model *m, const char *cfg_path) {
  qs_status status = QS_OK;
  json_error_t err;
  char msg[256];
  json_t *root = json_load_file(cfg_path, 0, &err);
  if (!root) QS_FAIL(QS_ERR_FORMAT, "%s: invalid JSON at line %d: %s", cfg_path, err.line, err.text);
  m->quant_config = json_incref(json_object_get(root, "quantization_config"));
  if (!(m->format = qs_format_detect(m->quant_config, msg, sizeof(msg)))) QS_FAIL(QS_ERR_UNSUPPORTED, "%s: %s", cfg_path, msg);
fail:
  json_decref(root);
  return status;
}

qs_status qs_model_open(struct qs_model *m, const char *dir) {
  qs_status status = QS_OK;
  char *cfg_path = NULL;
  memset(m, 0, sizeof(*m));
  m->dir = strdup(dir);
  cfg_path = qs_path_join(dir, "config.json");
  if (!m->dir || !cfg_path) QS_FAIL(QS_ERR_OOM, "out of memory");
  struct qs_ckpt ck;  // adopted only once open succeeded (a failed open cleans up after itself)
  const struct qs_format *df = qs_format_for_dir(dir);
  if (df) { // another layout (TensorRT-LLM rank files, a GGUF file), reassembled in memory by its format
    char msg[256];
    QS_TRY(df->open_dir(dir, &m->cfg, &ck, &m->quant_config));
    m->ckpt = ck;
    if (m->quant_config && !(m->format = qs_format_detect(m->quant_config, msg, sizeof(msg))))
      QS_FAIL(QS_ERR_INTERNAL, "%s: %s", dir, msg);
  } else {
    if (!qs_path_is_dir(dir)) QS_FAIL(QS_ERR_IO, "%s: no such model directory", dir);
    QS_TRY(qs_config_load(&m->cfg, cfg_path));
    if (m->cfg.quant_method[0]) QS_TRY(open_quant_config(m, cfg_path));
    QS_TRY(qs_ckpt_open(&ck, dir));
    m->ckpt = ck;
  }
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
  free(m->norm);
  free(m->rope_inv_freq);
  static const struct qs_ckpt closed;  // all zero until qs_model_open adopted an open checkpoint
  if (memcmp(&m->ckpt, &closed, sizeof(closed))) qs_ckpt_close(&m->ckpt);
  free(m->dir);
  json_decref(m->quant_config);
  memset(m, 0, sizeof(*m));
}
