// test_config.c — config.json parsing (src/io/config.c) and RoPE frequencies: the two real configs of
// the shared data, inline configs of the other architectures and rope scalings, and the errors.
// Run: ctest -R test_config (labels unit, data).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/config.h"
#include "model/ops.h"
#include "qs_test.h"

// float32 unit roundoff
#define U32 (1.0 / 16777216.0)

static void test_real_configs(void) {
  const char *data = qs_test_data_dir();
  if (!data) {
    printf("note: shared data not found (QS_DATA_DIR unset or absent), real configs not checked\n");
    return;
  }
  char path[4096];
  struct qs_config c;
  snprintf(path, sizeof(path), "%s/stories260K/config.json", data);
  CHECK_EQ_INT(qs_config_load(&c, path), QS_OK);
  CHECK_EQ_INT(c.arch, QS_ARCH_LLAMA);
  CHECK_EQ_INT(c.hidden, 64);
  CHECK_EQ_INT(c.intermediate, 172);
  CHECK_EQ_INT(c.n_layers, 5);
  CHECK_EQ_INT(c.n_heads, 8);
  CHECK_EQ_INT(c.n_kv_heads, 4);
  CHECK_EQ_INT(c.head_dim, 8);
  CHECK_EQ_INT(c.vocab, 512);
  CHECK_EQ_INT(c.max_pos, 512);
  CHECK_EQ_INT(c.tie_embeddings, 1);
  CHECK_EQ_INT(c.dtype, QS_DTYPE_F32);
  CHECK_EQ_INT(c.bos_id, 1);
  CHECK_EQ_INT(c.eos_id, 2);
  CHECK(c.rms_eps == 1e-5f && c.rope_theta == 10000.0 && c.rope_type == QS_ROPE_DEFAULT);
  // 512*64 tied embeddings + 5 * (4*64*64 attention with 4 KV heads of 8: 64*64 + 2*64*32 + 64*64,
  // 3*64*172 MLP, 2*64 norms) + 64 final norm = "260K"
  CHECK_EQ_INT(qs_config_layer_params(&c), 64 * 64 * 2 + 2 * 64 * 32 + 3 * 64 * 172 + 2 * 64);
  CHECK_EQ_INT(qs_config_param_count(&c), 260032);

  snprintf(path, sizeof(path), "%s/gutenberg28M/config.json", data);
  CHECK_EQ_INT(qs_config_load(&c, path), QS_OK);
  CHECK_EQ_INT(c.hidden, 512);
  CHECK_EQ_INT(c.n_kv_heads, 2);
  CHECK_EQ_INT(c.head_dim, 64);
  CHECK_EQ_INT(c.vocab, 8192);
  CHECK_EQ_INT(c.dtype, QS_DTYPE_BF16);  // transformers 5 writes "dtype", not "torch_dtype"
  CHECK(c.rope_theta == 10000.0 && c.rope_type == QS_ROPE_DEFAULT);
  CHECK_EQ_INT(qs_config_param_count(&c), 28320256);  // README: 28.3 M parameters
}

static const char *k_mistral =
    "{\"architectures\": [\"MistralForCausalLM\"], \"model_type\": \"mistral\", \"hidden_size\": 4096,"
    " \"intermediate_size\": 14336, \"num_hidden_layers\": 32, \"num_attention_heads\": 32,"
    " \"num_key_value_heads\": 8, \"vocab_size\": 32000, \"max_position_embeddings\": 32768,"
    " \"rms_norm_eps\": 1e-05, \"rope_theta\": 1000000.0, \"sliding_window\": null, \"head_dim\": null,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"hidden_act\": \"silu\"}";

static void test_mistral(void) {
  struct qs_config c;
  CHECK_EQ_INT(qs_config_parse(&c, k_mistral, "mistral.json"), QS_OK);
  CHECK_EQ_INT(c.arch, QS_ARCH_MISTRAL);
  CHECK_EQ_INT(c.head_dim, 128);  // null head_dim -> hidden / heads
  CHECK_EQ_INT(c.sliding_window, 0);
  CHECK_EQ_INT(c.attn_bias, 0);
  CHECK_EQ_INT(c.bos_id, -1);
  CHECK(c.rope_theta == 1e6);
  CHECK_EQ_INT(qs_config_param_count(&c), 7241732096LL);  // Mistral-7B-v0.3 as counted by torch
}

static const char *k_qwen2 =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"hidden_size\": 896,"
    " \"intermediate_size\": 4864, \"num_hidden_layers\": 24, \"num_attention_heads\": 14,"
    " \"num_key_value_heads\": 2, \"vocab_size\": 151936, \"max_position_embeddings\": 32768,"
    " \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"sliding_window\": 32768,"
    " \"use_sliding_window\": false, \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\","
    " \"bos_token_id\": 151643, \"eos_token_id\": [151645, 151643]}";

static void test_qwen2(void) {
  struct qs_config c;
  CHECK_EQ_INT(qs_config_parse(&c, k_qwen2, "qwen2.json"), QS_OK);
  CHECK_EQ_INT(c.arch, QS_ARCH_QWEN2);
  CHECK_EQ_INT(c.attn_bias, 1);  // no attention_bias field: Qwen2 always has q/k/v biases
  CHECK_EQ_INT(c.head_dim, 64);
  CHECK_EQ_INT(c.sliding_window, 0);  // use_sliding_window false
  CHECK_EQ_INT(c.eos_id, 151645);     // first of the list
  CHECK(fabsf(c.rms_eps - 1e-6f) == 0.0f);
  CHECK_EQ_INT(qs_config_param_count(&c), 494032768LL);  // Qwen2-0.5B: 0.49 B (tied, with biases)
}

static const char *k_llama31 =
    "{\"model_type\": \"llama\", \"hidden_size\": 4096, \"intermediate_size\": 14336,"
    " \"num_hidden_layers\": 32, \"num_attention_heads\": 32, \"num_key_value_heads\": 8,"
    " \"vocab_size\": 128256, \"max_position_embeddings\": 131072, \"rope_theta\": 500000.0,"
    " \"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
    " \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}, \"torch_dtype\": \"bfloat16\"}";

// Llama 3 scaling by its definition (Meta's apply_scaling, in double): wavelengths shorter than
// orig/high keep their frequency, longer than orig/low are divided by `factor`, and in between the
// frequency is interpolated with smooth = (orig/wavelen - low) / (high - low).
static double llama3_by_hand(double theta, int d, int i, double factor, double low, double high, double orig) {
  double f = pow(theta, -2.0 * i / d), wavelen = 2 * M_PI / f;
  if (wavelen < orig / high) return f;
  if (wavelen > orig / low) return f / factor;
  double smooth = (orig / wavelen - low) / (high - low);
  return (1 - smooth) * f / factor + smooth * f;
}

static void test_llama3_rope(void) {
  struct qs_config c;
  float inv[64];
  CHECK_EQ_INT(qs_config_parse(&c, k_llama31, "llama31.json"), QS_OK);
  CHECK_EQ_INT(c.rope_type, QS_ROPE_LLAMA3);
  CHECK_EQ_INT(c.rope_orig_max_pos, 8192);
  CHECK(c.rope_factor == 8.0 && c.rope_low_freq_factor == 1.0 && c.rope_high_freq_factor == 4.0);
  qs_rope_inv_freq(&c, inv);
  int n_mid = 0;
  for (int i = 0; i < 64; i++) {
    double want = llama3_by_hand(5e5, 128, i, 8, 1, 4, 8192);
    double wl = 2 * M_PI / pow(5e5, -2.0 * i / 128);
    n_mid += wl >= 2048 && wl <= 8192;
    // The float path rounds ~8 times (pow, reciprocal, products, the smoothing terms); the
    // smoothing weight orig/wavelen - low loses up to 2 bits to cancellation and its error is
    // scaled by up to factor = 8 relative to the smallest result f/8: 8 * 4 * 8 u = 256 u.
    CHECK_CLOSE(inv[i], want, 0.0, 256 * U32);
  }
  CHECK(n_mid > 0);  // the interpolated band is exercised
  CHECK(inv[0] == 1.0f);
}

static void test_linear_rope(void) {
  struct qs_config c;
  float inv[4];
  const char *j = "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128,"
                  " \"num_hidden_layers\": 1, \"num_attention_heads\": 8, \"vocab_size\": 10,"
                  " \"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0}}";
  CHECK_EQ_INT(qs_config_parse(&c, j, "linear.json"), QS_OK);
  CHECK_EQ_INT(c.rope_type, QS_ROPE_LINEAR);
  CHECK_EQ_INT(c.n_kv_heads, 8);  // defaults to num_attention_heads
  CHECK_EQ_INT(c.max_pos, 2048);  // LlamaConfig default
  CHECK(c.rope_theta == 10000.0);
  qs_rope_inv_freq(&c, inv);
  // theta^(-2i/8) / 4: pow rounded once, reciprocal once, ÷4 exact -> within 2 u
  for (int i = 0; i < 4; i++) CHECK_CLOSE(inv[i], pow(10000.0, -2.0 * i / 8) / 4, 0.0, 2 * U32);
}

static void test_errors(void) {
  struct qs_config c;
  const char *base = "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 1,"
                     " \"num_attention_heads\": 8, \"vocab_size\": 10";
  char buf[1024];
  snprintf(buf, sizeof(buf), "{\"model_type\": \"gpt2\", %s}", base);
  CHECK_EQ_INT(qs_config_parse(&c, buf, "gpt2.json"), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(qs_config_parse(&c, "{\"model_type\": \"llama\", \"hidden_size\": 64}", "short.json"),
               QS_ERR_FORMAT);
  CHECK_EQ_INT(qs_config_parse(&c, "{\"model_type\": \"llama\",", "broken.json"), QS_ERR_FORMAT);
  snprintf(buf, sizeof(buf), "{\"model_type\": \"llama\", %s, \"rope_scaling\": {\"rope_type\": \"yarn\", "
           "\"factor\": 4.0}}", base);
  CHECK_EQ_INT(qs_config_parse(&c, buf, "yarn.json"), QS_ERR_UNSUPPORTED);
  snprintf(buf, sizeof(buf), "{\"model_type\": \"llama\", %s, \"mlp_bias\": true}", base);
  CHECK_EQ_INT(qs_config_parse(&c, buf, "mlpbias.json"), QS_ERR_UNSUPPORTED);
  snprintf(buf, sizeof(buf), "{\"model_type\": \"llama\", %s, \"num_key_value_heads\": 3}", base);
  CHECK_EQ_INT(qs_config_parse(&c, buf, "gqa.json"), QS_ERR_FORMAT);
  snprintf(buf, sizeof(buf), "{\"model_type\": \"llama\", %s, \"hidden_act\": \"gelu\"}", base);
  CHECK_EQ_INT(qs_config_parse(&c, buf, "gelu.json"), QS_ERR_UNSUPPORTED);
  snprintf(buf, sizeof(buf), "{\"model_type\": \"llama\", %s, \"torch_dtype\": \"float64\"}", base);
  CHECK_EQ_INT(qs_config_parse(&c, buf, "f64.json"), QS_ERR_UNSUPPORTED);
  const char *str_size = "{\"model_type\": \"llama\", \"hidden_size\": \"64\", \"intermediate_size\": 128,"
                         " \"num_hidden_layers\": 1, \"num_attention_heads\": 8, \"vocab_size\": 10}";
  CHECK_EQ_INT(qs_config_parse(&c, str_size, "type.json"), QS_ERR_FORMAT);  // a size given as a string
  CHECK_EQ_INT(qs_config_load(&c, "/nonexistent/config.json"), QS_ERR_IO);
  // Biases: llama's attention_bias covers o_proj too; Mistral has none whatever the file says.
  snprintf(buf, sizeof(buf), "{\"model_type\": \"llama\", %s, \"attention_bias\": true}", base);
  CHECK_EQ_INT(qs_config_parse(&c, buf, "bias.json"), QS_OK);
  CHECK(c.attn_bias == 1 && qs_config_o_bias(&c) == 1);
  CHECK_EQ_INT(qs_config_layer_params(&c), 4 * 64 * 64 + 3 * 64 + 64 + 3 * 64 * 128 + 2 * 64);
  snprintf(buf, sizeof(buf), "{\"model_type\": \"mistral\", %s, \"attention_bias\": true}", base);
  CHECK_EQ_INT(qs_config_parse(&c, buf, "mbias.json"), QS_OK);
  CHECK(c.attn_bias == 0 && qs_config_o_bias(&c) == 0);
  // transformers 5: rope_parameters wins over a (stale) top-level rope_theta
  snprintf(buf, sizeof(buf), "{\"model_type\": \"llama\", %s, \"rope_theta\": 10000.0, \"rope_parameters\":"
           " {\"rope_theta\": 20000.0, \"rope_type\": \"linear\", \"factor\": 2.0}}", base);
  CHECK_EQ_INT(qs_config_parse(&c, buf, "tf5.json"), QS_OK);
  CHECK(c.rope_theta == 20000.0 && c.rope_type == QS_ROPE_LINEAR && c.rope_factor == 2.0);
  snprintf(buf, sizeof(buf), "{\"model_type\": \"llama\", %s, \"quantization_config\": {\"quant_method\":"
           " \"gptq\", \"bits\": 3, \"format\": \"gptq_v2\"}}", base);
  CHECK_EQ_INT(qs_config_parse(&c, buf, "gptq.json"), QS_OK);
  CHECK(!strcmp(c.quant_method, "gptq") && c.quant_bits == 3 && c.quant_gptq_v2 == 1);
}

int main(void) {
  test_real_configs();
  test_mistral();
  test_qwen2();
  test_llama3_rope();
  test_linear_rope();
  test_errors();
  return qs_test_finish("test_config");
}
