// fuzz_tokenizer.c — libFuzzer harness of the tokenizer encoders (io/tokenizer.h): what they read of
// a tokenizer file beyond the vocabulary — SentencePiece's normalizer spec and precompiled charsmap,
// the pieces' types and scores, tokenizer.json's pre-tokenizer regex (compiled by PCRE2), merges,
// added tokens — and the encoding itself. Input layout as fuzz_vocab (byte 0: the reader):
//   0 / 1 / 2: tok512.bin / tokenizer.model / tokenizer.json alone;
//   3 / 4 / 5: a model directory with that tokenizer (part 0), tokenizer_config.json (part 1),
//      config.json (part 2), added_tokens.json (part 3) (parts: fuzz_common.h).
// A tokenizer that loads encodes a fixed text (ASCII, digits, runs of spaces, newlines, accents,
// CJK, an emoji, a lone continuation byte, its special tokens' usual spellings); every id must be in
// [0, n_vocab) — an id outside would index past the embedding table.
// Run: build-fuzz/fuzz/fuzz_tokenizer CORPUS_DIR (tests/fuzz/run.sh seeds and runs it).
#include "fuzz_common.h"

#include "io/tokenizer.h"

static const char *const k_main[3] = {"tok512.bin", "tokenizer.model", "tokenizer.json"};
static const char *const k_beside[3] = {"tokenizer_config.json", "config.json", "added_tokens.json"};

static const char k_text[] = "Hello world!  It's 2026-12-07, 3.14159 and\n\n  indented \t tabs;"
                             " caf\xc3\xa9 na\xc3\xafve \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 <s> </s> <|begin_of_text|>"
                             " <unk>\r\n end";

static void encode(const struct qs_tokenizer *t) {
  struct qs_ids ids = {0};
  // every prefix length of a few: the merge queues and the normalizer see texts cut anywhere
  const size_t lens[] = {0, 1, 7, 40, sizeof(k_text) - 1};
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    ids.n = 0;
    if (qs_tokenizer_encode(t, k_text, lens[i], &ids) != QS_OK) continue; // refused (e.g. invalid UTF-8)
    for (size_t j = 0; j < ids.n; j++)
      if (ids.v[j] < 0 || ids.v[j] >= t->n_vocab) abort();
  }
  // the invalid byte alone (SentencePiece and llama2.c take it, byte-level BPE refuses it)
  ids.n = 0;
  if (qs_tokenizer_encode(t, "\x80", 1, &ids) == QS_OK)
    for (size_t j = 0; j < ids.n; j++)
      if (ids.v[j] < 0 || ids.v[j] >= t->n_vocab) abort();
  qs_ids_free(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct qs_tokenizer t;
  if (size < 1) return 0;
  int mode = data[0] % 6;
  qs_fuzz_dir();
  qs_fuzz_clear();
  if (mode < 3) {
    char *path = qs_fuzz_path(k_main[mode]);
    qs_fuzz_write(path, data + 1, size - 1);
    if (qs_tokenizer_init(&t, path) == QS_OK) {
      encode(&t);
      qs_tokenizer_free(&t);
    }
    free(path);
    return 0;
  }
  struct qs_fuzz_part parts[QS_FUZZ_MAX_PARTS];
  int n = qs_fuzz_split(data + 1, size - 1, parts);
  for (int i = 0; i < n && i < 4; i++) {
    char *path = qs_fuzz_path(i == 0 ? k_main[mode - 3] : k_beside[i - 1]);
    qs_fuzz_write(path, parts[i].data, parts[i].size);
    free(path);
  }
  if (qs_tokenizer_init(&t, qs_fuzz_dir()) == QS_OK) {
    encode(&t);
    qs_tokenizer_free(&t);
  }
  return 0;
}
