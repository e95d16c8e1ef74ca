// config.h — model hyper-parameters from a Hugging Face config.json (llama, mistral, qwen2).
#ifndef QS_CONFIG_H
#define QS_CONFIG_H

#include "base/dtype.h"
#include "base/qs_common.h"

enum qs_arch { QS_ARCH_LLAMA = 0, QS_ARCH_MISTRAL, QS_ARCH_QWEN2 };
enum qs_rope_type { QS_ROPE_DEFAULT = 0, QS_ROPE_LINEAR, QS_ROPE_LLAMA3 };

struct qs_config {
  enum qs_arch arch;
  char model_type[32];        // as written in config.json
  char architecture[64];      // architectures[0], e.g. "LlamaForCausalLM"
  int hidden;                 // hidden_size
  int intermediate;           // intermediate_size
  int n_layers;               // num_hidden_layers
  int n_heads;                // num_attention_heads
  int n_kv_heads;             // num_key_value_heads (defaults to n_heads)
  int head_dim;               // head_dim (defaults to hidden / n_heads)
  int vocab;                  // vocab_size
  int max_pos;                // max_position_embeddings
  float rms_eps;              // rms_norm_eps
  double rope_theta;          // rope_theta, or rope_parameters.rope_theta (transformers 5)
  enum qs_rope_type rope_type;  // rope_scaling / rope_parameters .rope_type (or .type)
  double rope_factor;           // linear and llama3
  double rope_low_freq_factor;  // llama3
  double rope_high_freq_factor; // llama3
  int rope_orig_max_pos;        // llama3 original_max_position_embeddings
  int tie_embeddings;         // tie_word_embeddings (default false)
  int attn_bias;              // q/k/v biases: attention_bias, always true for qwen2, false for
                              // mistral; llama's attention_bias also gives o_proj a bias
  int mlp_bias;               // mlp_bias (llama); not supported when true
  int sliding_window;         // mistral, qwen2 with use_sliding_window: window in tokens, 0 = none;
                              // the forward refuses sequences longer than the window
  int bos_id, eos_id;         // -1 when absent
  qs_dtype dtype;             // torch_dtype or dtype (F32 when absent)
  char quant_method[24];      // quantization_config.quant_method ("gptq", "awq", ...), "" if none
  int quant_bits;             // quantization_config.bits (0 when absent)
  int quant_gptq_v2;          // checkpoint_format (or format) "gptq_v2": zeros stored without v1's -1
};

// Parses `json` (text of a config.json; `src` names it in messages). Unknown model_type,
// missing sizes, sizes that do not fit (hidden != n_heads*head_dim is allowed, n_heads % n_kv_heads
// != 0 is not) are QS_ERR_UNSUPPORTED / QS_ERR_FORMAT with a message naming src.
qs_status qs_config_parse(struct qs_config *c, const char *json, const char *src);
qs_status qs_config_load(struct qs_config *c, const char *path);
// Parameter count of the model (embeddings, lm_head if untied, layers, norms).
long long qs_config_param_count(const struct qs_config *c);
// 1 when o_proj has a bias (llama with attention_bias; qwen2's o_proj has none).
int qs_config_o_bias(const struct qs_config *c);
// Parameters of one decoder layer.
long long qs_config_layer_params(const struct qs_config *c);

#endif
