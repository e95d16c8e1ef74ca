// vocab.h — a model directory's tokenizer as GGUF carries it (tokenizer.ggml.* keys; shared/FORMATS.md
// §5.5), built as llama.cpp's converters build it so that the GGUF matches theirs:
//   tokenizer.model  SentencePiece ModelProto (protobuf-c; optional at build time) — as
//                    conversion/base.py _set_vocab_sentencepiece: model "llama", pre "default",
//                    pieces with their scores and types (SentencePiece NORMAL and USER_DEFINED pieces
//                    are both written as 1 normal), padded to config.json vocab_size with "[PADi]"
//                    (score -10000, unused), added_tokens.json and tokenizer_config.json
//                    added_tokens_decoder applied (score -1000, control or user-defined);
//   tokenizer.json   byte-level BPE (Llama-3 style) — as _set_vocab_gpt2: model "gpt2", pre from the
//                    pre-tokenizer ("llama-bpe" for Llama-3's Split regex + ByteLevel, "gpt-2" for a
//                    plain ByteLevel; anything else is refused, as conversion refuses an unknown
//                    pre-tokenizer hash), vocab + added_tokens (special or special-looking: control;
//                    else user-defined), "[PADi]" holes (unused), merges, no scores;
//   tok512.bin       llama2.c tokenizer — as examples/convert-llama2c-to-ggml: model "llama", ids
//                    0/1/2 renamed <unk>/<s>/</s> (unknown, control, control), empty pieces control,
//                    "<0x..>" pieces byte, ' ' written as U+2581, ids unk 0 bos 1 eos 2 and
//                    sep = pad = 0xFFFFFFFF (LLAMA_TOKEN_NULL); config.json and tokenizer_config.json
//                    are not read.
// For the first two, special tokens follow gguf-py SpecialVocab: ids from tokenizer_config.json
// `<typ>_token` matched against tokenizer.json added_tokens, then config.json `<typ>_token_id`
// (SentencePiece: ids >= the vocabulary size are dropped); add_bos/add_eos/add_sep from
// tokenizer.json's post_processor and tokenizer_config.json `add_<typ>_token`; the chat template from
// tokenizer_config.json (or chat_template.jinja / chat_template.json beside it); add_space_prefix
// from tokenizer_config.json `add_prefix_space` (conversion/llama.py). Without config.json (a bare
// tokenizer.model) the ids come from the model's trainer_spec.
#ifndef QS_VOCAB_H
#define QS_VOCAB_H

#include <stdint.h>

#include "base/qs_common.h"

struct qs_gguf_writer;

// tokenizer.ggml.token_type values (llama.h enum llama_token_type).
enum qs_token_type {
  QS_TOKEN_NORMAL = 1,
  QS_TOKEN_UNKNOWN = 2,
  QS_TOKEN_CONTROL = 3,
  QS_TOKEN_USER_DEFINED = 4,
  QS_TOKEN_UNUSED = 5,
  QS_TOKEN_BYTE = 6,
};

// Special token kinds, in the order gguf-py SpecialVocab tries them; ids are written as
// tokenizer.ggml.<key>_token_id (cls has no GGUF key: gguf-py skips it).
enum qs_vocab_special {
  QS_SPECIAL_BOS = 0,
  QS_SPECIAL_EOS,
  QS_SPECIAL_UNK,
  QS_SPECIAL_SEP,
  QS_SPECIAL_PAD,
  QS_SPECIAL_CLS,
  QS_SPECIAL_MASK,
  QS_SPECIAL_EOT,
  QS_SPECIAL_EOM,
  QS_SPECIAL_COUNT
};

struct qs_vocab {
  char model[16];            // tokenizer.ggml.model: "llama" or "gpt2"
  char pre[32];              // tokenizer.ggml.pre: "default", "llama-bpe", "gpt-2"; "" = not written
  int32_t n_tokens;
  char **tokens;             // [n_tokens] UTF-8, NUL-terminated
  float *scores;             // [n_tokens]; NULL = not written (BPE)
  int32_t *types;            // [n_tokens] enum qs_token_type
  int32_t n_merges;
  char **merges;             // [n_merges] "left right" (BPE); NULL when none
  int64_t special[QS_SPECIAL_COUNT]; // token id, -1 = not written; 0xFFFFFFFF is written as is
  int add_bos, add_eos, add_sep, add_space_prefix; // -1 = not written, else 0 / 1
  char *chat_template;       // NULL = none
  int32_t n_templates;       // named chat templates (tokenizer.chat_template.<name>), rare
  char **template_names, **templates;
  char source[512];          // the file the tokens came from
  // From a SentencePiece model (informational; -1 otherwise): normalizer_spec.add_dummy_prefix and
  // trainer_spec.byte_fallback. llama.cpp's SPM tokenizer adds the dummy prefix unless
  // add_space_prefix says otherwise, and always falls back to bytes.
  int spm_add_dummy_prefix, spm_byte_fallback;
};

// The tokenizer of model directory `dir`: tokenizer.model, else tokenizer.json, else tok512.bin
// (the first that exists), with the special tokens of the files beside it. QS_ERR_IO when none
// exists; QS_ERR_UNSUPPORTED for a tokenizer.model without protobuf-c in this build, or a
// tokenizer.json that is not byte-level BPE with a known pre-tokenizer; QS_ERR_FORMAT for bad files.
qs_status qs_vocab_load(struct qs_vocab *v, const char *dir);
// One file alone (any name), as the directory loader reads it but without the files beside it;
// n_vocab > 0 sizes the vocabulary as config.json vocab_size does, 0 = the file's own size.
qs_status qs_vocab_load_spm(struct qs_vocab *v, const char *path, int64_t n_vocab);
qs_status qs_vocab_load_bpe(struct qs_vocab *v, const char *path, int64_t n_vocab);
qs_status qs_vocab_load_llama2c(struct qs_vocab *v, const char *path, int64_t n_vocab);
void qs_vocab_free(struct qs_vocab *v);

// A SentencePiece tokenizer.model as its encoder reads it (io/tokenizer.c), straight from the
// ModelProto: every piece with its score and SentencePiece type (NORMAL 1, UNKNOWN 2, CONTROL 3,
// USER_DEFINED 4, UNUSED 5, BYTE 6 — not merged as the GGUF types are), the model type and the
// normalizer spec (defaults of sentencepiece_model.proto where a field is absent).
struct qs_spm_model {
  int model_type;                   // trainer_spec.model_type: 1 unigram, 2 BPE, 3 word, 4 char
  int byte_fallback, treat_whitespace_as_suffix;
  int32_t n_pieces;
  char **pieces;                    // [n_pieces] UTF-8
  float *scores;                    // [n_pieces]
  int32_t *types;                   // [n_pieces] SentencePiece piece types
  char norm_name[64];               // normalizer_spec.name ("identity", "nmt_nfkc", ...)
  uint8_t *charsmap;                // normalizer_spec.precompiled_charsmap, NULL when empty (identity)
  size_t charsmap_size;
  int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
};
// QS_ERR_UNSUPPORTED without protobuf-c in this build; QS_ERR_FORMAT for a file that does not parse.
qs_status qs_vocab_spm_read(const char *path, struct qs_spm_model *m);
void qs_vocab_spm_free(struct qs_spm_model *m);

// GGUF key (without "tokenizer.ggml.") and name of a special kind: "bos_token_id", ...; NULL for cls.
const char *qs_vocab_special_key(enum qs_vocab_special s);

// Sets every tokenizer.* key the vocabulary has on w (tokenizer.ggml.model, .pre, .tokens, .scores,
// .token_type, .merges, the special ids, .add_bos_token / .add_eos_token / .add_sep_token /
// .add_space_prefix, tokenizer.chat_template[.<name>] / tokenizer.chat_templates), with the types
// llama.cpp checks (ids u32, flags bool, scores f32, types i32).
qs_status qs_vocab_add_gguf_keys(const struct qs_vocab *v, struct qs_gguf_writer *w);

#endif
