// fuzz_config.c — libFuzzer harness of config.json parsing (io/config.c qs_config_parse): the whole
// input is the file's text. A config that parses must satisfy what the model code relies on.
// Run: build-fuzz/fuzz/fuzz_config CORPUS_DIR (tests/fuzz/run.sh seeds and runs it).
#include "fuzz_common.h"

#include "io/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct qs_config c;
  char *text = qs_fuzz_strndup(data, size);
  if (qs_config_parse(&c, text, "fuzz/config.json") == QS_OK) {
    // The contract of config.h: positive sizes, heads a multiple of kv heads, even head_dim.
    if (c.hidden <= 0 || c.intermediate <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
        c.vocab <= 0 || c.max_pos <= 0 || c.head_dim <= 0 || c.head_dim % 2 || c.n_heads % c.n_kv_heads ||
        !(c.rope_theta > 0))
      abort();
    if (!memchr(c.model_type, 0, sizeof(c.model_type)) || !memchr(c.architecture, 0, sizeof(c.architecture)) ||
        !memchr(c.quant_method, 0, sizeof(c.quant_method)))
      abort();
    (void)qs_config_param_count(&c);
    (void)qs_config_o_bias(&c);
  }
  free(text);
  return 0;
}
