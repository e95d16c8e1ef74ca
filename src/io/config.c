// config.c — struct qs_config from a Hugging Face config.json (llama, mistral, qwen2), with the
// defaults of the transformers config classes for fields a file leaves out.
#include "io/config.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  enum qs_arch arch;
  int max_pos;  // default max_position_embeddings of the transformers config class
} k_archs[] = {
    {"llama", QS_ARCH_LLAMA, 2048},
    {"mistral", QS_ARCH_MISTRAL, 4096 * 32},
    {"qwen2", QS_ARCH_QWEN2, 32768},
};
enum { N_ARCHS = sizeof(k_archs) / sizeof(k_archs[0]) };

// Integer field `key` of `o`: absent (or null) -> *out = def, or an error when def < 0 (required).
static qs_status get_int(const json_t *o, const char *key, int def, int *out, const char *src) {
  qs_status status = QS_OK;
  const json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) {
    if (def < 0) QS_FAIL(QS_ERR_FORMAT, "%s: required field '%s' is missing", src, key);
    *out = def;
    return QS_OK;
  }
  if (!json_is_integer(v)) QS_FAIL(QS_ERR_FORMAT, "%s: field '%s' must be an integer", src, key);
  json_int_t x = json_integer_value(v);
  if (x < 0 || x > 0x7fffffff) QS_FAIL(QS_ERR_FORMAT, "%s: field '%s' = %lld is out of range", src, key, (long long)x);
  *out = (int)x;
fail:
  return status;
}

// Numeric field (integer or real); absent or null -> def.
static qs_status get_num(const json_t *o, const char *key, double def, double *out, const char *src) {
  qs_status status = QS_OK;
  const json_t *v = json_object_get(o, key);
  *out = def;
  if (!v || json_is_null(v)) return QS_OK;
  if (!json_is_number(v)) QS_FAIL(QS_ERR_FORMAT, "%s: field '%s' must be a number", src, key);
  *out = json_number_value(v);
fail:
  return status;
}

// Boolean field; absent or null -> def.
static qs_status get_bool(const json_t *o, const char *key, int def, int *out, const char *src) {
  qs_status status = QS_OK;
  const json_t *v = json_object_get(o, key);
  *out = def;
  if (!v || json_is_null(v)) return QS_OK;
  if (!json_is_boolean(v)) QS_FAIL(QS_ERR_FORMAT, "%s: field '%s' must be true or false", src, key);
  *out = json_is_true(v);
fail:
  return status;
}

// Token id: an integer, a list (its first entry, e.g. Llama 3.1's eos list), or absent/null (-1).
static qs_status get_token(const json_t *o, const char *key, int *out, const char *src) {
  qs_status status = QS_OK;
  const json_t *v = json_object_get(o, key);
  *out = -1;
  if (json_is_array(v)) v = json_array_get(v, 0);
  if (!v || json_is_null(v)) return QS_OK;
  if (!json_is_integer(v)) QS_FAIL(QS_ERR_FORMAT, "%s: field '%s' must be an integer or a list of them", src, key);
  *out = (int)json_integer_value(v);
fail:
  return status;
}

static qs_status parse_arch(struct qs_config *c, const json_t *root, const char *src) {
  qs_status status = QS_OK;
  const char *mt = json_string_value(json_object_get(root, "model_type"));
  if (!mt) QS_FAIL(QS_ERR_FORMAT, "%s: required field 'model_type' is missing", src);
  int found = -1;
  for (int i = 0; i < N_ARCHS; i++)
    if (!strcmp(mt, k_archs[i].name)) found = i;
  if (found < 0)
    QS_FAIL(QS_ERR_UNSUPPORTED, "unknown architecture '%s' in %s: supported llama, mistral, qwen2", mt, src);
  c->arch = k_archs[found].arch;
  snprintf(c->model_type, sizeof(c->model_type), "%s", mt);
  const char *a = json_string_value(json_array_get(json_object_get(root, "architectures"), 0));
  snprintf(c->architecture, sizeof(c->architecture), "%s", a ? a : "");
  const char *act = json_string_value(json_object_get(root, "hidden_act"));
  if (act && strcmp(act, "silu"))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (only silu)", src, act);
fail:
  return status;
}

static qs_status parse_sizes(struct qs_config *c, const json_t *root, const char *src) {
  qs_status status = QS_OK;
  int def_max_pos = k_archs[c->arch].max_pos;
  QS_TRY(get_int(root, "hidden_size", -1, &c->hidden, src));
  QS_TRY(get_int(root, "intermediate_size", -1, &c->intermediate, src));
  QS_TRY(get_int(root, "num_hidden_layers", -1, &c->n_layers, src));
  QS_TRY(get_int(root, "num_attention_heads", -1, &c->n_heads, src));
  QS_TRY(get_int(root, "vocab_size", -1, &c->vocab, src));
  QS_TRY(get_int(root, "num_key_value_heads", c->n_heads, &c->n_kv_heads, src));
  QS_TRY(get_int(root, "max_position_embeddings", def_max_pos, &c->max_pos, src));
  if (c->hidden <= 0 || c->intermediate <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->vocab <= 0 ||
      c->n_kv_heads <= 0 || c->max_pos <= 0)
    QS_FAIL(QS_ERR_FORMAT, "%s: sizes must be positive (hidden %d, intermediate %d, layers %d, heads %d, "
            "kv heads %d, vocab %d, max positions %d)", src, c->hidden, c->intermediate, c->n_layers,
            c->n_heads, c->n_kv_heads, c->vocab, c->max_pos);
  if (c->hidden % c->n_heads && !json_integer_value(json_object_get(root, "head_dim")))
    QS_FAIL(QS_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d and no head_dim",
            src, c->hidden, c->n_heads);
  QS_TRY(get_int(root, "head_dim", c->hidden / c->n_heads, &c->head_dim, src));
  if (c->head_dim <= 0 || c->head_dim % 2)
    QS_FAIL(QS_ERR_FORMAT, "%s: head_dim %d must be positive and even (RoPE rotates pairs)", src, c->head_dim);
  if (c->n_heads % c->n_kv_heads)
    QS_FAIL(QS_ERR_FORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", src,
            c->n_heads, c->n_kv_heads);
fail:
  return status;
}

// rope_scaling (transformers 4) or rope_parameters (transformers 5, which also holds rope_theta).
static qs_status parse_rope(struct qs_config *c, const json_t *root, const char *src) {
  qs_status status = QS_OK;
  const json_t *rp = json_object_get(root, "rope_parameters");
  const json_t *rs = json_object_get(root, "rope_scaling");
  const json_t *scal = json_is_object(rp) ? rp : json_is_object(rs) ? rs : NULL;
  // transformers 5 reads rope_parameters (and may keep a top-level copy); transformers 4 rope_theta.
  double theta_top = 10000.0;
  QS_TRY(get_num(root, "rope_theta", 10000.0, &theta_top, src));
  c->rope_theta = theta_top;
  if (json_is_object(rp)) QS_TRY(get_num(rp, "rope_theta", theta_top, &c->rope_theta, src));
  if (!(c->rope_theta > 0)) QS_FAIL(QS_ERR_FORMAT, "%s: rope_theta %g must be positive", src, c->rope_theta);
  c->rope_type = QS_ROPE_DEFAULT;
  c->rope_factor = 1.0;
  if (!scal) return QS_OK;
  const char *type = json_string_value(json_object_get(scal, "rope_type"));
  if (!type) type = json_string_value(json_object_get(scal, "type"));
  if (!type || !strcmp(type, "default")) return QS_OK;
  if (!strcmp(type, "linear")) c->rope_type = QS_ROPE_LINEAR;
  else if (!strcmp(type, "llama3")) c->rope_type = QS_ROPE_LLAMA3;
  else QS_FAIL(QS_ERR_UNSUPPORTED, "%s: rope scaling type '%s' is not supported (default, linear, llama3)", src, type);
  QS_TRY(get_num(scal, "factor", NAN, &c->rope_factor, src));
  if (!(c->rope_factor > 0)) QS_FAIL(QS_ERR_FORMAT, "%s: rope %s scaling needs a positive 'factor'", src, type);
  if (c->rope_type != QS_ROPE_LLAMA3) return QS_OK;
  QS_TRY(get_num(scal, "low_freq_factor", NAN, &c->rope_low_freq_factor, src));
  QS_TRY(get_num(scal, "high_freq_factor", NAN, &c->rope_high_freq_factor, src));
  QS_TRY(get_int(scal, "original_max_position_embeddings", -1, &c->rope_orig_max_pos, src));
  if (!(c->rope_low_freq_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
      c->rope_orig_max_pos <= 0)
    QS_FAIL(QS_ERR_FORMAT, "%s: llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor and "
            "original_max_position_embeddings > 0", src);
fail:
  return status;
}

static qs_status parse_dtype(struct qs_config *c, const json_t *root, const char *src) {
  qs_status status = QS_OK;
  const char *dt = json_string_value(json_object_get(root, "torch_dtype"));
  if (!dt) dt = json_string_value(json_object_get(root, "dtype"));
  c->dtype = QS_DTYPE_F32;
  if (!dt || !strcmp(dt, "float32")) return QS_OK;
  if (!strcmp(dt, "bfloat16")) c->dtype = QS_DTYPE_BF16;
  else if (!strcmp(dt, "float16")) c->dtype = QS_DTYPE_F16;
  else QS_FAIL(QS_ERR_UNSUPPORTED, "%s: dtype '%s' is not supported (float32, bfloat16, float16)", src, dt);
fail:
  return status;
}

static qs_status parse_misc(struct qs_config *c, const json_t *root, const char *src) {
  qs_status status = QS_OK;
  double eps;
  QS_TRY(get_num(root, "rms_norm_eps", 1e-6, &eps, src));
  c->rms_eps = (float)eps;
  QS_TRY(get_bool(root, "tie_word_embeddings", 0, &c->tie_embeddings, src));
  QS_TRY(get_bool(root, "attention_bias", 0, &c->attn_bias, src));
  // Qwen2Attention: q/k/v bias=True, o_proj none; MistralAttention: no biases whatever the file
  // says; LlamaAttention: attention_bias applies to q, k, v and o_proj.
  if (c->arch == QS_ARCH_QWEN2) c->attn_bias = 1;
  if (c->arch == QS_ARCH_MISTRAL) c->attn_bias = 0;
  QS_TRY(get_bool(root, "mlp_bias", 0, &c->mlp_bias, src));
  if (c->mlp_bias) QS_FAIL(QS_ERR_UNSUPPORTED, "%s: mlp_bias = true is not supported", src);
  QS_TRY(get_token(root, "bos_token_id", &c->bos_id, src));
  QS_TRY(get_token(root, "eos_token_id", &c->eos_id, src));
  QS_TRY(parse_dtype(c, root, src));
  // Sliding-window attention only differs from full causal attention past the window.
  int sliding = c->arch == QS_ARCH_MISTRAL;
  if (c->arch == QS_ARCH_QWEN2) QS_TRY(get_bool(root, "use_sliding_window", 0, &sliding, src));
  c->sliding_window = 0;
  if (sliding) QS_TRY(get_int(root, "sliding_window", 0, &c->sliding_window, src));
fail:
  return status;
}

// quantization_config of an already-quantized checkpoint (loaded by qs_model_load_linear).
static qs_status parse_quant(struct qs_config *c, const json_t *root, const char *src) {
  qs_status status = QS_OK;
  const json_t *q = json_object_get(root, "quantization_config");
  if (!q || json_is_null(q)) return QS_OK;
  if (!json_is_object(q)) QS_FAIL(QS_ERR_FORMAT, "%s: quantization_config must be an object", src);
  const char *method = json_string_value(json_object_get(q, "quant_method"));
  snprintf(c->quant_method, sizeof(c->quant_method), "%s", method ? method : "unknown");
  QS_TRY(get_int(q, "bits", 0, &c->quant_bits, src));
  const char *fmt = json_string_value(json_object_get(q, "checkpoint_format"));
  if (!fmt) fmt = json_string_value(json_object_get(q, "format"));
  c->quant_gptq_v2 = fmt && !strcmp(fmt, "gptq_v2");
fail:
  return status;
}

// An upper bound of qs_config_param_count (every term it adds, at its largest), in double: below
// 2^62, that count and every product of sizes it forms are exact in long long.
static int sizes_fit(const struct qs_config *c) {
  double h = c->hidden, qd = (double)c->n_heads * c->head_dim, kvd = (double)c->n_kv_heads * c->head_dim;
  double layer = 2 * h * qd + 2 * h * kvd + 2 * qd + 2 * kvd + 3 * h * c->intermediate + 3 * h;
  return 2.0 * c->vocab * h + (double)c->n_layers * layer + h < 0x1p62;
}

qs_status qs_config_parse(struct qs_config *c, const char *json, const char *src) {
  qs_status status = QS_OK;
  json_error_t err;
  memset(c, 0, sizeof(*c));
  json_t *root = json_loads(json, 0, &err);
  if (!root) QS_FAIL(QS_ERR_FORMAT, "%s: invalid JSON at line %d: %s", src, err.line, err.text);
  if (!json_is_object(root)) QS_FAIL(QS_ERR_FORMAT, "%s: not a JSON object", src);
  QS_TRY(parse_arch(c, root, src));
  QS_TRY(parse_sizes(c, root, src));
  if (!sizes_fit(c))
    QS_FAIL(QS_ERR_FORMAT, "%s: sizes (hidden %d, intermediate %d, layers %d, heads %d x %d, vocab %d) make more "
            "than 2^62 parameters", src, c->hidden, c->intermediate, c->n_layers, c->n_heads, c->head_dim, c->vocab);
  // The largest real vocabularies have ~262 k entries; far beyond that is a broken or hostile file
  // (the GGUF writer would pad the tokenizer to it: minutes and gigabytes of names).
  if (c->vocab > (1 << 24))
    QS_FAIL(QS_ERR_FORMAT, "%s: vocab_size %d is implausible (more than 2^24 = 16777216 tokens)", src, c->vocab);
  QS_TRY(parse_rope(c, root, src));
  QS_TRY(parse_misc(c, root, src));
  QS_TRY(parse_quant(c, root, src));
fail:
  json_decref(root);
  return status;
}

qs_status qs_config_load(struct qs_config *c, const char *path) {
  qs_status status = QS_OK;
  char *text = NULL;
  QS_TRY(qs_file_read_all(path, &text, NULL));
  QS_TRY(qs_config_parse(c, text, path));
fail:
  free(text);
  return status;
}

int qs_config_o_bias(const struct qs_config *c) { return c->attn_bias && c->arch == QS_ARCH_LLAMA; }

long long qs_config_layer_params(const struct qs_config *c) {
  long long h = c->hidden, qd = (long long)c->n_heads * c->head_dim, kvd = (long long)c->n_kv_heads * c->head_dim;
  long long attn = h * qd + 2 * h * kvd + qd * h + (c->attn_bias ? qd + 2 * kvd : 0) + (qs_config_o_bias(c) ? h : 0);
  long long mlp = 3 * h * c->intermediate;
  return attn + mlp + 2 * h;  // + input_layernorm, post_attention_layernorm
}

long long qs_config_param_count(const struct qs_config *c) {
  long long emb = (long long)c->vocab * c->hidden;
  return emb * (c->tie_embeddings ? 1 : 2) + c->n_layers * qs_config_layer_params(c) + c->hidden;
}
