// tokenizer_impl.h — what the encoders of tokenizer.c (llama2.c), tokenizer_spm.c (SentencePiece) and
// tokenizer_bpe.c (byte-level BPE) share: a string -> id hash map, the pair priority queue, a byte
// buffer. Internal to io/ (the public contract is tokenizer.h).
#ifndef QS_TOKENIZER_IMPL_H
#define QS_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "base/qs_common.h"

struct qs_ids; // tokenizer.h

// ---- byte string -> int32 (open addressing, FNV-1a; keys are borrowed, not copied) -----------------
#define QS_TOKENIZER_HASH0 0xcbf29ce484222325ull
static inline uint64_t qs_tokenizer_hash_step(uint64_t h, unsigned char c) { return (h ^ c) * 0x100000001b3ull; }
uint64_t qs_tokenizer_hash(const char *s, size_t n);

struct qs_tokenizer_map {
  size_t cap, n;        // cap a power of two, at most half full
  const char **keys;
  uint32_t *lens;
  uint64_t *hashes;
  int32_t *vals;
};
qs_status qs_tokenizer_map_init(struct qs_tokenizer_map *m, size_t expected);
// replace 1: a key present gets the new value; 0: the first value stays.
qs_status qs_tokenizer_map_put(struct qs_tokenizer_map *m, const char *key, size_t n, int32_t val, int replace);
int32_t qs_tokenizer_map_get_h(const struct qs_tokenizer_map *m, const char *key, size_t n, uint64_t h); // -1: absent
static inline int32_t qs_tokenizer_map_get(const struct qs_tokenizer_map *m, const char *key, size_t n) {
  return qs_tokenizer_map_get_h(m, key, n, qs_tokenizer_hash(key, n));
}
void qs_tokenizer_map_free(struct qs_tokenizer_map *m);

// ---- the merge queue: pairs of adjacent symbols, best first ----------------------------------------
// key: larger first (qs_tokenizer_score_key of a score, or UINT32_MAX - rank); equal keys: smaller
// left first — the tie rule of sentencepiece, tokenizers and llama2.c alike.
struct qs_tokenizer_pair {
  uint32_t key;
  int32_t left, right;
  int32_t check;        // what makes a queued pair stale (the encoder's own rule)
  int32_t id;           // the merged token
};
struct qs_tokenizer_heap {
  struct qs_tokenizer_pair *a;
  size_t n, cap;
};
qs_status qs_tokenizer_heap_push(struct qs_tokenizer_heap *h, struct qs_tokenizer_pair p);
int qs_tokenizer_heap_pop(struct qs_tokenizer_heap *h, struct qs_tokenizer_pair *out); // 0: empty
void qs_tokenizer_heap_free(struct qs_tokenizer_heap *h);
// Order-preserving map of a float score to uint32 (-0 as +0; NaN scores are not expected).
static inline uint32_t qs_tokenizer_score_key(float s) {
  union { float f; uint32_t u; } b = {.f = s == 0.0f ? 0.0f : s};
  return (b.u & 0x80000000u) ? ~b.u : (b.u | 0x80000000u);
}

// ---- a growable byte buffer --------------------------------------------------------------------------
struct qs_tokenizer_buf {
  char *p;
  size_t n, cap;
};
qs_status qs_tokenizer_buf_add(struct qs_tokenizer_buf *b, const char *s, size_t n);

// UTF-8 sequence length from its first byte, as sentencepiece's OneCharLen (1 for stray bytes).
static inline size_t qs_tokenizer_one_char_len(const char *s) {
  return (size_t)"\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[(unsigned char)*s >> 4];
}

// ---- the encoders ------------------------------------------------------------------------------------
struct qs_tokenizer_spm;
struct qs_tokenizer_bpe;
struct qs_vocab;
// SentencePiece (tokenizer_spm.c): *kind is set to QS_TOKENIZER_SPM_BPE or _UNIGRAM.
qs_status qs_tokenizer_spm_init(struct qs_tokenizer_spm **e, const char *path, int *kind);
void qs_tokenizer_spm_free(struct qs_tokenizer_spm *e);
qs_status qs_tokenizer_spm_encode(const struct qs_tokenizer_spm *e, const char *text, size_t len, struct qs_ids *out);
// Byte-level BPE (tokenizer_bpe.c) from tokenizer.json at `path`; v is its vocabulary (vocab.h: the
// pre-tokenizer family it recognized).
qs_status qs_tokenizer_bpe_init(struct qs_tokenizer_bpe **e, const char *path, const struct qs_vocab *v);
void qs_tokenizer_bpe_free(struct qs_tokenizer_bpe *e);
qs_status qs_tokenizer_bpe_encode(const struct qs_tokenizer_bpe *e, const char *text, size_t len, struct qs_ids *out);

#endif
