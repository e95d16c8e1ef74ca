// tokenizer_spm.c — SentencePiece encoding (contract: tokenizer.h), step for step as google/sentencepiece
// does it: normalizer.cc Normalize/NormalizePrefix (precompiled charsmap through its Darts-clone
// double array, user-defined pieces, U+FFFD for malformed UTF-8, whitespace rules), bpe_model.cc Encode
// (symbol-pair agenda by score, unused pieces resegmented), unigram_model.cc EncodeOptimized (Viterbi
// over piece scores, float sums as there, unk at min score - 10, user-defined length * max_score - 0.1),
// sentencepiece_processor.cc PopulateSentencePieceText (control ids as is, unknown pieces as byte pieces
// with byte fallback, else runs of unknown merged into one unk).
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "io/tokenizer.h"
#include "io/tokenizer_impl.h"
#include "io/vocab.h"

enum { SPM_NORMAL = 1, SPM_UNKNOWN = 2, SPM_CONTROL = 3, SPM_USER_DEFINED = 4, SPM_UNUSED = 5, SPM_BYTE = 6 };
enum { SPM_UNIGRAM = 1, SPM_BPE = 2 };
#define SPM_TRIE_RESULTS 32  // Normalizer::kMaxTrieResultsSize: the longest of the first 32 rule matches
#define SPM_UNK_PENALTY 10.0f // unigram_model.cc kUnkPenalty
static const char k_ws[] = "\xe2\x96\x81"; // U+2581, SentencePiece's escaped space

struct qs_tokenizer_spm {
  struct qs_spm_model m;
  struct qs_tokenizer_map pieces;    // NORMAL, USER_DEFINED, UNUSED -> id (ModelInterface::pieces_)
  struct qs_tokenizer_map reserved;  // the other types -> id (reserved_id_map_)
  int32_t unk, byte_ids[256];
  int32_t n_user;                    // user-defined pieces, matched before anything else
  int32_t *user;
  uint32_t *trie;                    // charsmap double array (little-endian units), NULL = identity
  size_t trie_units;
  char *norm;                        // charsmap replacements, NUL-terminated, one NUL past the end
  size_t norm_size;
  float min_score, max_score;        // over NORMAL pieces (unigram)
  size_t max_piece;                  // longest piece in bytes (unigram)
  int has_unused;
  int split_ws;                      // BPE runs start at a U+2581 after another character (spm_bpe)
};

void qs_tokenizer_spm_free(struct qs_tokenizer_spm *e) {
  if (!e) return;
  qs_vocab_spm_free(&e->m);
  qs_tokenizer_map_free(&e->pieces);
  qs_tokenizer_map_free(&e->reserved);
  free(e->user);
  free(e->trie);
  free(e->norm);
  free(e);
}

// ModelInterface::PieceToId: reserved pieces first, then the others, else unk.
static int32_t piece_to_id(const struct qs_tokenizer_spm *e, const char *s, size_t n) {
  int32_t id = qs_tokenizer_map_get(&e->reserved, s, n);
  if (id < 0) id = qs_tokenizer_map_get(&e->pieces, s, n);
  return id < 0 ? e->unk : id;
}

// Normalizer::Init / DecodePrecompiledCharsMap: u32 trie size, the trie, the replacement strings.
static qs_status charsmap_init(struct qs_tokenizer_spm *e, const char *path) {
  qs_status status = QS_OK;
  const uint8_t *c = e->m.charsmap;
  size_t size = e->m.charsmap_size;
  if (!c) return QS_OK;
  uint32_t trie = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
  if (size <= 4 || trie >= size - 4 || trie % 4 || trie < 4)
    QS_FAIL(QS_ERR_FORMAT, "%s: normalizer '%s': malformed precompiled_charsmap (%zu bytes, trie %u)", path,
            e->m.norm_name, size, trie);
  e->trie_units = trie / 4;
  QS_ALLOC(e->trie, e->trie_units);
  for (size_t i = 0; i < e->trie_units; i++) {
    const uint8_t *u = c + 4 + 4 * i;
    e->trie[i] = (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
  }
  e->norm_size = size - 4 - trie;
  QS_ALLOC(e->norm, e->norm_size + 1);
  memcpy(e->norm, c + 4 + trie, e->norm_size);
fail:
  return status;
}

static qs_status spm_tables(struct qs_tokenizer_spm *e, const char *path) {
  qs_status status = QS_OK;
  const struct qs_spm_model *m = &e->m;
  e->unk = -1;
  e->min_score = FLT_MAX, e->max_score = FLT_MIN; // as unigram_model.cc (FLT_MIN: the least positive float)
  QS_TRY(qs_tokenizer_map_init(&e->pieces, (size_t)m->n_pieces));
  QS_TRY(qs_tokenizer_map_init(&e->reserved, 64));
  QS_ALLOC(e->user, m->n_pieces);
  for (int32_t i = 0; i < m->n_pieces; i++) {
    int t = m->types[i];
    size_t n = strlen(m->pieces[i]);
    if (n == 0) QS_FAIL(QS_ERR_FORMAT, "%s: piece %d is empty", path, i);
    int normal = t == SPM_NORMAL || t == SPM_USER_DEFINED || t == SPM_UNUSED;
    QS_TRY(qs_tokenizer_map_put(normal ? &e->pieces : &e->reserved, m->pieces[i], n, i, 0));
    if (t == SPM_USER_DEFINED) e->user[e->n_user++] = i;
    if (t == SPM_UNKNOWN && e->unk < 0) e->unk = i;
    if (t == SPM_UNUSED) e->has_unused = 1;
    if (t == SPM_NORMAL) e->min_score = QS_MIN(e->min_score, m->scores[i]), e->max_score = QS_MAX(e->max_score, m->scores[i]);
    e->max_piece = QS_MAX(e->max_piece, n);
  }
  if (e->unk < 0) QS_FAIL(QS_ERR_FORMAT, "%s: no unknown piece (sentencepiece refuses such a model)", path);
  e->split_ws = m->escape_whitespaces && !m->treat_whitespace_as_suffix && !e->has_unused;
  for (int32_t i = 0; i < m->n_pieces && e->split_ws; i++) {
    int t = m->types[i];
    if (t != SPM_NORMAL && t != SPM_USER_DEFINED && t != SPM_UNUSED) continue;
    for (const char *p = strstr(m->pieces[i], k_ws); p && e->split_ws; p = strstr(p + 3, k_ws))
      if (p > m->pieces[i] && (p - m->pieces[i] < 3 || memcmp(p - 3, k_ws, 3))) e->split_ws = 0;
  }
  for (int b = 0; b < 256; b++) {
    char name[8];
    snprintf(name, sizeof(name), "<0x%02X>", b);
    e->byte_ids[b] = piece_to_id(e, name, 6);
    if (m->byte_fallback && e->byte_ids[b] == e->unk)
      QS_FAIL(QS_ERR_FORMAT, "%s: byte_fallback is set but there is no piece %s", path, name);
  }
fail:
  return status;
}

qs_status qs_tokenizer_spm_init(struct qs_tokenizer_spm **out, const char *path, int *kind) {
  qs_status status = QS_OK;
  struct qs_tokenizer_spm *e = NULL;
  QS_ALLOC(e, 1);
  QS_TRY(qs_vocab_spm_read(path, &e->m));
  if (e->m.model_type != SPM_BPE && e->m.model_type != SPM_UNIGRAM)
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: SentencePiece model type %d (%s): qshard encodes BPE and unigram models", path,
            e->m.model_type, e->m.model_type == 3 ? "word" : e->m.model_type == 4 ? "char" : "unknown");
  QS_TRY(charsmap_init(e, path));
  QS_TRY(spm_tables(e, path));
  *kind = e->m.model_type == SPM_BPE ? QS_TOKENIZER_SPM_BPE : QS_TOKENIZER_SPM_UNIGRAM;
  *out = e;
  e = NULL;
fail:
  qs_tokenizer_spm_free(e);
  return status;
}

// ---- normalizer ----------------------------------------------------------------------------------------

// PrefixMatcher: the longest user-defined piece at s (0 = none).
static size_t user_match(const struct qs_tokenizer_spm *e, const char *s, size_t n) {
  size_t best = 0;
  for (int32_t i = 0; i < e->n_user; i++) {
    const char *p = e->m.pieces[e->user[i]];
    size_t k = strlen(p);
    if (k > best && k <= n && !memcmp(s, p, k)) best = k;
  }
  return best;
}

// Darts-clone DoubleArray::commonPrefixSearch over the charsmap: the longest of the first
// SPM_TRIE_RESULTS prefixes of s with a rule; returns its length (0 = none), *value its replacement.
static size_t charsmap_match(const struct qs_tokenizer_spm *e, const unsigned char *s, size_t n, uint32_t *value) {
#define UNIT_LEAF(u) (((u) >> 8) & 1)
#define UNIT_VALUE(u) ((u) & 0x7FFFFFFFu)
#define UNIT_LABEL(u) ((u) & 0x800000FFu)
#define UNIT_OFFSET(u) (((u) >> 10) << (((u) & (1u << 9)) >> 6))
  size_t best = 0, found = 0, pos = UNIT_OFFSET(e->trie[0]);
  for (size_t i = 0; i < n; i++) {
    pos ^= s[i];
    if (pos >= e->trie_units) break;
    uint32_t u = e->trie[pos];
    if (UNIT_LABEL(u) != s[i]) break;
    pos ^= UNIT_OFFSET(u);
    if (pos >= e->trie_units) break;
    if (UNIT_LEAF(u) && found++ < SPM_TRIE_RESULTS) {
      best = i + 1;
      *value = UNIT_VALUE(e->trie[pos]);
    }
  }
  return best;
#undef UNIT_LEAF
#undef UNIT_VALUE
#undef UNIT_LABEL
#undef UNIT_OFFSET
}

// util.cc DecodeUTF8 + IsValidDecodeUTF8: the length of a valid sequence at s, 0 when malformed.
static size_t utf8_valid(const unsigned char *s, size_t n) {
  uint32_t cp;
  if (s[0] < 0x80) return 1;
  if (n >= 2 && (s[0] & 0xE0) == 0xC0) {
    cp = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    return (s[1] & 0xC0) == 0x80 && cp >= 0x80 ? 2 : 0;
  }
  if (n >= 3 && (s[0] & 0xF0) == 0xE0) {
    cp = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    return (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000) ? 3 : 0;
  }
  if (n >= 4 && (s[0] & 0xF8) == 0xF0) {
    cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    return (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 && cp >= 0x10000 && cp <= 0x10FFFF
               ? 4 : 0;
  }
  return 0;
}

// NormalizePrefix: the normalized form (*out, *out_n) of the first unit of s; returns the bytes consumed.
static size_t norm_prefix(const struct qs_tokenizer_spm *e, const char *s, size_t n, const char **out, size_t *out_n) {
  size_t k = user_match(e, s, n);
  uint32_t value = 0;
  if (k) {
    *out = s, *out_n = k;
    return k;
  }
  if (e->trie && (k = charsmap_match(e, (const unsigned char *)s, n, &value)) > 0 && value < e->norm_size) {
    *out = e->norm + value, *out_n = strlen(e->norm + value);
    return k;
  }
  k = utf8_valid((const unsigned char *)s, n);
  if (k == 0) { // malformed: U+FFFD for one byte
    *out = "\xef\xbf\xbd", *out_n = 3;
    return 1;
  }
  *out = s, *out_n = k;
  return k;
}

static qs_status add_ws(const struct qs_tokenizer_spm *e, struct qs_tokenizer_buf *b) {
  return e->m.escape_whitespaces ? qs_tokenizer_buf_add(b, k_ws, 3) : qs_tokenizer_buf_add(b, " ", 1);
}

// Normalizer::Normalize.
static qs_status normalize(const struct qs_tokenizer_spm *e, const char *s, size_t n, struct qs_tokenizer_buf *b) {
  qs_status status = QS_OK;
  const struct qs_spm_model *m = &e->m;
  const char *p;
  size_t pn, k;
  b->n = 0;
  if (m->remove_extra_whitespaces)
    while (n > 0 && (k = norm_prefix(e, s, n, &p, &pn)) && pn == 1 && p[0] == ' ') s += k, n -= k;
  if (n == 0) return QS_OK;
  if (!m->treat_whitespace_as_suffix && m->add_dummy_prefix) QS_TRY(add_ws(e, b));
  int prev_space = m->remove_extra_whitespaces;
  while (n > 0) {
    k = norm_prefix(e, s, n, &p, &pn);
    while (prev_space && pn > 0 && p[0] == ' ') p++, pn--;
    if (pn > 0) {
      for (size_t i = 0; i < pn; i++) {
        if (m->escape_whitespaces && p[i] == ' ') QS_TRY(qs_tokenizer_buf_add(b, k_ws, 3));
        else QS_TRY(qs_tokenizer_buf_add(b, p + i, 1));
      }
      prev_space = p[pn - 1] == ' ';
    }
    s += k, n -= k;
    if (!m->remove_extra_whitespaces) prev_space = 0;
  }
  if (m->remove_extra_whitespaces) {
    const char *sp = m->escape_whitespaces ? k_ws : " ";
    size_t sn = strlen(sp);
    while (b->n >= sn && !memcmp(b->p + b->n - sn, sp, sn)) b->n -= sn;
  }
  if (m->treat_whitespace_as_suffix && m->add_dummy_prefix) QS_TRY(add_ws(e, b));
fail:
  return status;
}

// ---- ids of the pieces (PopulateSentencePieceText) -------------------------------------------------------

static qs_status emit(const struct qs_tokenizer_spm *e, const char *w, size_t n, int32_t id, int *prev_unk,
                      struct qs_ids *out) {
  qs_status status = QS_OK;
  int t = e->m.types[id], unk = t == SPM_UNKNOWN;
  if (t == SPM_CONTROL) QS_TRY(qs_ids_push(out, id));
  else if (unk && e->m.byte_fallback)
    for (size_t i = 0; i < n; i++) QS_TRY(qs_ids_push(out, e->byte_ids[(unsigned char)w[i]]));
  else if (!(unk && *prev_unk)) QS_TRY(qs_ids_push(out, id));
  *prev_unk = unk;
fail:
  return status;
}

// ---- BPE (bpe_model.cc) -----------------------------------------------------------------------------------

struct bpe_sym {
  int32_t prev, next, start, len; // len 0: merged into its left neighbour
  int freeze;                     // a user-defined piece: never merged
};

struct bpe_run {
  const struct qs_tokenizer_spm *e;
  const char *s;                  // the run being merged
  struct bpe_sym *sym;
  struct qs_tokenizer_heap heap;
  struct qs_tokenizer_map rev;    // an unused merged piece -> its left part's length (resegmentation)
};

static qs_status bpe_pair(struct bpe_run *r, int32_t a, int32_t b) {
  qs_status status = QS_OK;
  if (a < 0 || b < 0 || r->sym[a].freeze || r->sym[b].freeze) return QS_OK;
  const char *p = r->s + r->sym[a].start;
  size_t n = (size_t)r->sym[a].len + (size_t)r->sym[b].len;
  int32_t id = qs_tokenizer_map_get(&r->e->pieces, p, n);
  if (id < 0) return QS_OK;
  QS_TRY(qs_tokenizer_heap_push(&r->heap, (struct qs_tokenizer_pair){.key = qs_tokenizer_score_key(r->e->m.scores[id]),
                                                                     .left = a, .right = b, .check = (int32_t)n}));
  if (r->e->m.types[id] == SPM_UNUSED) QS_TRY(qs_tokenizer_map_put(&r->rev, p, n, r->sym[a].len, 1));
fail:
  return status;
}

// bpe_model.cc resegment: an unused piece is split back into the two pieces that formed it.
static qs_status bpe_resegment(struct bpe_run *r, const char *w, size_t n, int *prev_unk, struct qs_ids *out) {
  int32_t id = piece_to_id(r->e, w, n), left;
  if (r->e->m.types[id] != SPM_UNUSED || (left = qs_tokenizer_map_get(&r->rev, w, n)) < 0)
    return emit(r->e, w, n, id, prev_unk, out);
  qs_status status = QS_OK;
  QS_TRY(bpe_resegment(r, w, (size_t)left, prev_unk, out));
  QS_TRY(bpe_resegment(r, w + left, n - (size_t)left, prev_unk, out));
fail:
  return status;
}

// One run of bpe_model.cc Encode over s[0, n): characters (or frozen user-defined pieces) merged by score.
static qs_status bpe_segment(struct bpe_run *r, const char *s, size_t n, int *prev_unk, struct qs_ids *out) {
  qs_status status = QS_OK;
  const struct qs_tokenizer_spm *e = r->e;
  struct qs_tokenizer_pair p;
  int32_t count = 0;
  r->s = s;
  r->heap.n = 0;
  for (size_t i = 0; i < n; count++) {
    size_t k = user_match(e, s + i, n - i);
    r->sym[count] = (struct bpe_sym){.prev = count - 1, .next = count + 1, .start = (int32_t)i, .freeze = k > 0};
    if (!k) k = QS_MIN(n - i, qs_tokenizer_one_char_len(s + i));
    r->sym[count].len = (int32_t)k;
    i += k;
  }
  r->sym[count - 1].next = -1;
  for (int32_t i = 1; i < count; i++) QS_TRY(bpe_pair(r, i - 1, i));
  while (qs_tokenizer_heap_pop(&r->heap, &p)) {
    struct bpe_sym *a = &r->sym[p.left], *b = &r->sym[p.right];
    if (a->len == 0 || b->len == 0 || a->len + b->len != p.check) continue; // no longer there
    a->len += b->len;
    a->next = b->next;
    if (b->next >= 0) r->sym[b->next].prev = p.left;
    b->len = 0;
    QS_TRY(bpe_pair(r, a->prev, p.left));
    QS_TRY(bpe_pair(r, p.left, a->next));
  }
  for (int32_t i = 0; i >= 0; i = r->sym[i].next)
    QS_TRY(bpe_resegment(r, s + r->sym[i].start, (size_t)r->sym[i].len, prev_unk, out));
fail:
  return status;
}

// Where no piece can span a boundary, the runs between boundaries are merged independently with the
// same result, in cache-sized queues: a U+2581 that follows another character starts a run when no
// piece has U+2581 after a different character (the usual "▁word" vocabularies; Llama-2's "▁▁" runs
// too) and no piece is unused (their resegmentation reads the merges of the whole text).
static qs_status spm_bpe(const struct qs_tokenizer_spm *e, const char *s, size_t n, struct qs_ids *out) {
  qs_status status = QS_OK;
  struct bpe_run r = {.e = e};
  int prev_unk = 0;
  QS_ALLOC(r.sym, n);
  QS_TRY(qs_tokenizer_map_init(&r.rev, 16));
  if (!e->split_ws) {
    QS_TRY(bpe_segment(&r, s, n, &prev_unk, out));
    goto fail;
  }
  for (size_t a = 0; a < n;) {
    size_t b = a + 1; // the next U+2581 after a character other than U+2581 (a valid UTF-8 text: see normalize)
    while (b < n && !(n - b >= 3 && !memcmp(s + b, k_ws, 3) && (b < 3 || memcmp(s + b - 3, k_ws, 3)))) b++;
    QS_TRY(bpe_segment(&r, s + a, b - a, &prev_unk, out));
    a = b;
  }
fail:
  free(r.sym);
  qs_tokenizer_heap_free(&r.heap);
  qs_tokenizer_map_free(&r.rev);
  return status;
}

// ---- unigram (unigram_model.cc EncodeOptimized) --------------------------------------------------------------

struct uni_node {
  int32_t id, starts_at; // starts_at -1: no path ends here yet
  double score;          // the best path's score ending here (see spm_unigram on the width)
};

static qs_status spm_unigram(const struct qs_tokenizer_spm *e, const char *s, size_t n, struct qs_ids *out) {
  qs_status status = QS_OK;
  struct uni_node *best = NULL;
  int32_t *path = NULL, np = 0;
  int prev_unk = 0;
  const float unk_score = e->min_score - SPM_UNK_PENALTY;
  if (n > INT32_MAX) QS_FAIL(QS_ERR_ARG, "a text of %zu bytes: encode it in pieces", n);
  QS_ALLOC(best, n + 1);
  QS_ALLOC(path, n + 1);
  for (size_t i = 0; i <= n; i++) best[i] = (struct uni_node){.id = -1, .starts_at = -1, .score = 0};
  for (size_t at = 0; at < n;) {
    const double till = best[at].score;
    const size_t mblen = QS_MIN(qs_tokenizer_one_char_len(s + at), n - at);
    int single = 0;
    uint64_t h = QS_TOKENIZER_HASH0;
    for (size_t end = at; end < n && end - at < e->max_piece;) {
      h = qs_tokenizer_hash_step(h, (unsigned char)s[end++]);
      int32_t id = qs_tokenizer_map_get_h(&e->pieces, s + at, end - at, h);
      if (id < 0 || e->m.types[id] == SPM_UNUSED) continue;
      struct uni_node *t = &best[end];
      const size_t length = end - at;
      // EncodeOptimized's `auto score = user-defined ? length * max_score_ - 0.1 : GetScore(id)` is a double
      // (the user-defined bonus always selects the piece). Path sums are kept in double: that is what gives
      // the sentencepiece 0.2.3 wheel's ids on 200 KB texts (tests/py/tok_compare.py); sums rounded to
      // float, as the repository's source reads, drift from them after ~40 k pieces (near-ties decided
      // differently), so the wheel evidently keeps them wider.
      const double score = e->m.types[id] == SPM_USER_DEFINED ? (float)length * e->max_score - 0.1
                                                              : (double)e->m.scores[id];
      const double cand = score + till;
      if (t->starts_at == -1 || cand > t->score) *t = (struct uni_node){id, (int32_t)at, cand};
      if (length == mblen) single = 1;
    }
    if (!single) {
      struct uni_node *t = &best[at + mblen];
      const double cand = unk_score + till;
      if (t->starts_at == -1 || cand > t->score) *t = (struct uni_node){e->unk, (int32_t)at, cand};
    }
    at += mblen;
  }
  for (int32_t end = (int32_t)n; end > 0; end = best[end].starts_at) path[np++] = end;
  for (int32_t i = np - 1; i >= 0; i--) {
    const struct uni_node *node = &best[path[i]];
    QS_TRY(emit(e, s + node->starts_at, (size_t)(path[i] - node->starts_at), node->id, &prev_unk, out));
  }
fail:
  free(best);
  free(path);
  return status;
}

qs_status qs_tokenizer_spm_encode(const struct qs_tokenizer_spm *e, const char *text, size_t len, struct qs_ids *out) {
  qs_status status = QS_OK;
  struct qs_tokenizer_buf b = {0};
  QS_TRY(normalize(e, text, len, &b));
  if (b.n > INT32_MAX / 2) QS_FAIL(QS_ERR_ARG, "a text of %zu bytes: encode it in pieces", len);
  if (b.n == 0) goto fail;
  if (e->m.model_type == SPM_BPE) QS_TRY(spm_bpe(e, b.p, b.n, out));
  else QS_TRY(spm_unigram(e, b.p, b.n, out));
fail:
  free(b.p);
  return status;
}
