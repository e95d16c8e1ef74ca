// fuzz_vocab.c — libFuzzer harness of the tokenizer readers (io/vocab.c). Byte 0 picks the reader:
//   0: tok512.bin alone (qs_vocab_load_llama2c)   1: tokenizer.model alone (qs_vocab_load_spm)
//   2: tokenizer.json alone (qs_vocab_load_bpe)
//   3 / 4 / 5: a model directory read by qs_vocab_load, its tokenizer (part 0) being tok512.bin /
//      tokenizer.model / tokenizer.json, then the files beside it: part 1 tokenizer_config.json,
//      part 2 config.json, part 3 added_tokens.json, part 4 chat_template.json (parts: fuzz_common.h).
// A vocabulary that loads is handed to the GGUF writer's KV setters, as quantize does.
// Run: build-fuzz/fuzz/fuzz_vocab CORPUS_DIR (tests/fuzz/run.sh seeds and runs it).
#include "fuzz_common.h"

#include "io/gguf.h"
#include "io/vocab.h"

static const char *const k_main[3] = {"tok512.bin", "tokenizer.model", "tokenizer.json"};
static const char *const k_beside[4] = {"tokenizer_config.json", "config.json", "added_tokens.json",
                                        "chat_template.json"};

static void use(const struct qs_vocab *v) {
  struct qs_gguf_writer *w = NULL;
  if (v->n_tokens <= 0 || !v->tokens || !v->types) abort();
  for (int32_t i = 0; i < v->n_tokens; i++) {
    if (!v->tokens[i] || v->types[i] < QS_TOKEN_NORMAL || v->types[i] > QS_TOKEN_BYTE) abort();
    (void)strlen(v->tokens[i]);
  }
  for (int32_t i = 0; i < v->n_merges; i++) (void)strlen(v->merges[i]);
  if (qs_gguf_writer_init(&w) != QS_OK) abort();
  (void)qs_vocab_add_gguf_keys(v, w);
  qs_gguf_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct qs_vocab v;
  if (size < 1) return 0;
  int mode = data[0] % 6;
  qs_fuzz_dir();
  qs_fuzz_clear();
  if (mode < 3) {
    char *path = qs_fuzz_path(k_main[mode]);
    qs_status st;
    qs_fuzz_write(path, data + 1, size - 1);
    if (mode == 0) st = qs_vocab_load_llama2c(&v, path, 0);
    else if (mode == 1) st = qs_vocab_load_spm(&v, path, 0);
    else st = qs_vocab_load_bpe(&v, path, 0);
    if (st == QS_OK) {
      use(&v);
      qs_vocab_free(&v);
    }
    free(path);
    return 0;
  }
  struct qs_fuzz_part parts[QS_FUZZ_MAX_PARTS];
  int n = qs_fuzz_split(data + 1, size - 1, parts);
  for (int i = 0; i < n && i < 5; i++) {
    char *path = qs_fuzz_path(i == 0 ? k_main[mode - 3] : k_beside[i - 1]);
    qs_fuzz_write(path, parts[i].data, parts[i].size);
    free(path);
  }
  if (qs_vocab_load(&v, qs_fuzz_dir()) == QS_OK) {
    use(&v);
    qs_vocab_free(&v);
  }
  return 0;
}
