// tokenizer.h — text to token ids, the ids the tokenizer packages give (no special tokens added):
//   tokenizer.model  SentencePiece BPE and unigram, as sentencepiece's SentencePieceProcessor
//                    encode(text): the normalizer spec (the compiled rules of nmt_nfkc / nfkc / a rule
//                    TSV through its precompiled charsmap, or identity; the dummy-prefix space,
//                    extra-whitespace removal, ' ' escaped as U+2581), user-defined pieces matched
//                    first, BPE by score (ties: leftmost) over the whole normalized text or unigram
//                    Viterbi over the piece scores, then unknown pieces as <0xXX> bytes (byte fallback)
//                    or merged runs of unk;
//   tokenizer.json   Hugging Face byte-level BPE (GPT-2 and Llama-3 pre-tokenizers, as vocab.h accepts
//                    them), as tokenizers' encode(text, add_special_tokens=False): added tokens matched
//                    first (leftmost-longest; special and unnormalized ones, then the others), the
//                    pre-tokenizer regex split (PCRE2, UTF + UCP), GPT-2's byte-to-unicode map, merges by
//                    rank (ties: leftmost), model.ignore_merges; a normalizer, BPE dropout, subword
//                    prefixes/suffixes or added-token lstrip/rstrip/single_word are refused;
//   tok512.bin       llama2.c, as its encode(text, bos 0, eos 0): the dummy-prefix " " when the text is
//                    not empty, each UTF-8 sequence looked up (else its bytes, ids byte + 3), then the
//                    pair of best score merged first (ties: leftmost) until none is in the vocabulary.
// Every merge loop is a priority queue over adjacent pairs (O(n log n) in the text length).
// Which ids begin and separate documents (bos, eos) are the vocabulary's (vocab.h: tokenizer_config.json,
// the post_processor, config.json, or the trainer_spec of a bare tokenizer.model).
#ifndef QS_TOKENIZER_H
#define QS_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/qs_common.h"

enum qs_tokenizer_kind {
  QS_TOKENIZER_SPM_BPE = 1,
  QS_TOKENIZER_SPM_UNIGRAM,
  QS_TOKENIZER_BYTE_BPE,
  QS_TOKENIZER_LLAMA2C,
};

// A growable array of token ids.
struct qs_ids {
  int32_t *v;
  size_t n, cap;
};
qs_status qs_ids_push(struct qs_ids *a, int32_t id);
qs_status qs_ids_append(struct qs_ids *a, const int32_t *ids, size_t n);
void qs_ids_free(struct qs_ids *a);

struct qs_tokenizer_impl;

struct qs_tokenizer {
  int kind;            // enum qs_tokenizer_kind
  int32_t n_vocab;     // every id encode gives is in [0, n_vocab)
  int32_t bos, eos;    // -1: none
  int add_bos;         // 1: the model's inputs begin with bos (vocab add_bos; when unstated, 1 if there is a bos)
  char source[512];    // the tokenizer file
  struct qs_tokenizer_impl *impl;
};

// `path` is a model directory (its tokenizer.model, else tokenizer.json, else tok512.bin, with the
// files beside it, as qs_vocab_load) or one tokenizer file (*.json: byte-level BPE, *.model:
// SentencePiece, anything else: llama2.c). QS_ERR_UNSUPPORTED for a tokenizer whose encoding qshard
// does not reproduce exactly (the message says what), QS_ERR_FORMAT for bad files.
qs_status qs_tokenizer_init(struct qs_tokenizer *t, const char *path);
void qs_tokenizer_free(struct qs_tokenizer *t);
// Appends the ids of text[0, len) to *out. SentencePiece and llama2.c take any bytes (invalid UTF-8
// as they do); byte-level BPE refuses invalid UTF-8 (QS_ERR_FORMAT naming the byte offset).
qs_status qs_tokenizer_encode(const struct qs_tokenizer *t, const char *text, size_t len, struct qs_ids *out);
const char *qs_tokenizer_kind_name(int kind);

#endif
