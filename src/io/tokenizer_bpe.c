// tokenizer_bpe.c — Hugging Face byte-level BPE encoding (contract: tokenizer.h), as the tokenizers crate
// does it: added_vocabulary.rs (tokens with normalized false matched leftmost-longest first, then those
// with normalized true in the gaps), pre_tokenizers split.rs / byte_level.rs (regex matches and the
// gaps between them as pieces, "Isolated"; GPT-2's bytes_to_unicode), models/bpe (ignore_merges: a
// piece that is a token stays whole; else its characters merged by rank, ties leftmost, as
// word.rs merge_all; characters outside the vocabulary become unk_token, fused when fuse_unk, or are
// dropped without one). The regex runs in PCRE2 with UTF and UCP (\p{L}, \s as Unicode classes).
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "io/tokenizer.h"
#include "io/tokenizer_impl.h"
#include "io/vocab.h"
#ifdef QS_USE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

// tokenizers' ByteLevel pre-tokenizer with use_regex (GPT-2).
static const char k_gpt2_regex[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct added {
  char *content;
  size_t len;
  int32_t id;
};

struct qs_tokenizer_bpe {
  char source[512];
  char **keys;                   // model.vocab strings, owned
  size_t n_keys;
  struct qs_tokenizer_map vocab; // model.vocab
  uint64_t *mkeys;               // merges: (left id << 32 | right id) + 1, 0 = empty slot
  int32_t *mrank, *mid;
  size_t mcap;
  int ignore_merges, fuse_unk;
  int32_t unk;                   // unk_token's id, -1 = none
  int32_t byte_id[256];          // the token of each byte's character, -1 = none
  char byte_chr[256][3];         // GPT-2 bytes_to_unicode, UTF-8
  uint8_t byte_len[256];
  struct added *added[2];        // [0] normalized false, [1] normalized true
  size_t n_added[2];
#ifdef QS_USE_PCRE2
  pcre2_code *re;
#endif
};

void qs_tokenizer_bpe_free(struct qs_tokenizer_bpe *e) {
  if (!e) return;
  for (size_t i = 0; i < e->n_keys; i++) free(e->keys[i]);
  free(e->keys);
  qs_tokenizer_map_free(&e->vocab);
  free(e->mkeys);
  free(e->mrank);
  free(e->mid);
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; i < e->n_added[k]; i++) free(e->added[k][i].content);
    free(e->added[k]);
  }
#ifdef QS_USE_PCRE2
  pcre2_code_free(e->re);
#endif
  free(e);
}

// ---- merges: (left, right) -> (rank, merged id) --------------------------------------------------------

static size_t merge_slot(const struct qs_tokenizer_bpe *e, uint64_t key) {
  size_t i = (size_t)qs_mix64(key) & (e->mcap - 1);
  while (e->mkeys[i] && e->mkeys[i] != key) i = (i + 1) & (e->mcap - 1);
  return i;
}

static int merge_get(const struct qs_tokenizer_bpe *e, int32_t a, int32_t b, int32_t *rank, int32_t *id) {
  size_t i = merge_slot(e, ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1);
  if (!e->mkeys[i]) return 0;
  *rank = e->mrank[i], *id = e->mid[i];
  return 1;
}

static int32_t vocab_id(const struct qs_tokenizer_bpe *e, const char *s) {
  return qs_tokenizer_map_get(&e->vocab, s, strlen(s));
}

// BPE::from merges: "a b" strings or [a, b] pairs; rank = position, the last of duplicates wins.
static qs_status load_merges(struct qs_tokenizer_bpe *e, const json_t *merges) {
  qs_status status = QS_OK;
  char *buf = NULL;
  size_t n = json_array_size(merges);
  e->mcap = 16;
  while (e->mcap < 2 * n + 2) e->mcap *= 2;
  QS_ALLOC(e->mkeys, e->mcap);
  QS_ALLOC(e->mrank, e->mcap);
  QS_ALLOC(e->mid, e->mcap);
  for (size_t r = 0; r < n; r++) {
    const json_t *m = json_array_get(merges, r);
    const char *a, *b, *sp;
    size_t na, nb;
    if (json_is_string(m) && (sp = strchr(json_string_value(m), ' ')) && !strchr(sp + 1, ' ')) {
      a = json_string_value(m), na = (size_t)(sp - a), b = sp + 1, nb = strlen(b);
    } else if (json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
      a = json_string_value(json_array_get(m, 0)), na = strlen(a);
      b = json_string_value(json_array_get(m, 1)), nb = strlen(b);
    } else {
      QS_FAIL(QS_ERR_FORMAT, "%s: model.merges[%zu] is neither \"a b\" nor [a, b]", e->source, r);
    }
    free(buf);
    QS_ALLOC(buf, na + nb + 1);
    memcpy(buf, a, na), memcpy(buf + na, b, nb);
    int32_t ia = qs_tokenizer_map_get(&e->vocab, a, na), ib = qs_tokenizer_map_get(&e->vocab, b, nb);
    int32_t im = qs_tokenizer_map_get(&e->vocab, buf, na + nb);
    if (ia < 0 || ib < 0 || im < 0)
      QS_FAIL(QS_ERR_FORMAT, "%s: merge %zu (%.*s + %.*s): a part or the result is not in model.vocab", e->source, r,
              (int)na, a, (int)nb, b);
    size_t i = merge_slot(e, ((uint64_t)(uint32_t)ia << 32 | (uint32_t)ib) + 1);
    e->mkeys[i] = ((uint64_t)(uint32_t)ia << 32 | (uint32_t)ib) + 1, e->mrank[i] = (int32_t)r, e->mid[i] = im;
  }
fail:
  free(buf);
  return status;
}

// ---- set up ---------------------------------------------------------------------------------------------

// GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the others to U+0100 + n in order.
static void byte_map(struct qs_tokenizer_bpe *e) {
  int n = 0;
  for (int b = 0; b < 256; b++) {
    int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    unsigned cp = keep ? (unsigned)b : 256u + (unsigned)n++;
    if (cp < 0x80) e->byte_chr[b][0] = (char)cp, e->byte_len[b] = 1;
    else e->byte_chr[b][0] = (char)(0xC0 | cp >> 6), e->byte_chr[b][1] = (char)(0x80 | (cp & 0x3F)), e->byte_len[b] = 2;
  }
}

static int flag_true(const json_t *o, const char *key) { return json_is_true(json_object_get(o, key)); }

// The model's own options that change ids: only the plain byte-level BPE is encoded.
static qs_status check_model(struct qs_tokenizer_bpe *e, const json_t *tok, const json_t *model) {
  qs_status status = QS_OK;
  const json_t *norm = json_object_get(tok, "normalizer"), *drop = json_object_get(model, "dropout");
  const char *pre = json_string_value(json_object_get(model, "continuing_subword_prefix"));
  const char *suf = json_string_value(json_object_get(model, "end_of_word_suffix"));
  if (norm && !json_is_null(norm))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: normalizer '%s': qshard encodes byte-level BPE without a normalizer (GPT-2, "
            "Llama-3); its ids would differ", e->source, json_string_value(json_object_get(norm, "type")));
  if (drop && !json_is_null(drop) && json_number_value(drop) != 0)
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: model.dropout %g: BPE dropout samples its merges", e->source, json_number_value(drop));
  if ((pre && pre[0]) || (suf && suf[0]))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: continuing_subword_prefix / end_of_word_suffix are not byte-level BPE", e->source);
  e->ignore_merges = flag_true(model, "ignore_merges");
  e->fuse_unk = flag_true(model, "fuse_unk");
fail:
  return status;
}

static qs_status load_vocab(struct qs_tokenizer_bpe *e, const json_t *model) {
  qs_status status = QS_OK;
  const json_t *vocab = json_object_get(model, "vocab"), *val;
  const char *key, *unk = json_string_value(json_object_get(model, "unk_token"));
  QS_ALLOC(e->keys, json_object_size(vocab));
  QS_TRY(qs_tokenizer_map_init(&e->vocab, json_object_size(vocab)));
  json_object_foreach((json_t *)vocab, key, val) {
    if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) > INT32_MAX)
      QS_FAIL(QS_ERR_FORMAT, "%s: model.vocab['%s'] is not a token id", e->source, key);
    if (!(e->keys[e->n_keys] = strdup(key))) QS_FAIL(QS_ERR_OOM, "out of memory");
    QS_TRY(qs_tokenizer_map_put(&e->vocab, e->keys[e->n_keys], strlen(key), (int32_t)json_integer_value(val), 1));
    e->n_keys++;
  }
  e->unk = unk ? vocab_id(e, unk) : -1;
  byte_map(e);
  for (int b = 0; b < 256; b++) e->byte_id[b] = qs_tokenizer_map_get(&e->vocab, e->byte_chr[b], e->byte_len[b]);
fail:
  return status;
}

static qs_status load_added(struct qs_tokenizer_bpe *e, const json_t *tok) {
  qs_status status = QS_OK;
  const json_t *list = json_object_get(tok, "added_tokens");
  for (int k = 0; k < 2; k++) QS_ALLOC(e->added[k], json_array_size(list));
  for (size_t i = 0; i < json_array_size(list); i++) {
    const json_t *a = json_array_get(list, i), *id = json_object_get(a, "id");
    const char *c = json_string_value(json_object_get(a, "content"));
    if (!c || !c[0] || !json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX)
      QS_FAIL(QS_ERR_FORMAT, "%s: added_tokens[%zu] has no content or id", e->source, i);
    if (flag_true(a, "lstrip") || flag_true(a, "rstrip") || flag_true(a, "single_word"))
      QS_FAIL(QS_ERR_UNSUPPORTED, "%s: added token '%s' has lstrip, rstrip or single_word: qshard matches added tokens "
              "exactly as written (as GPT-2's and Llama-3's are)", e->source, c);
    int k = flag_true(a, "normalized");
    struct added *t = &e->added[k][e->n_added[k]];
    if (!(t->content = strdup(c))) QS_FAIL(QS_ERR_OOM, "out of memory");
    t->len = strlen(c), t->id = (int32_t)json_integer_value(id);
    e->n_added[k]++;
  }
fail:
  return status;
}

static qs_status compile_regex(struct qs_tokenizer_bpe *e, const json_t *tok, const struct qs_vocab *v) {
  qs_status status = QS_OK;
  const char *pattern = k_gpt2_regex;
  if (!strcmp(v->pre, "llama-bpe")) // vocab.c checked the Split + ByteLevel sequence and this pattern
    pattern = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(json_object_get(tok, "pre_tokenizer"), "pretokenizers"), 0),
                        "pattern"), "Regex"));
  else if (strcmp(v->pre, "gpt-2"))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: pre-tokenizer '%s' is not encoded by qshard", e->source, v->pre);
#ifdef QS_USE_PCRE2
  int err;
  PCRE2_SIZE off;
  e->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
  if (!e->re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    QS_FAIL(QS_ERR_FORMAT, "%s: pre-tokenizer regex does not compile in PCRE2 at offset %zu: %s", e->source,
            (size_t)off, (const char *)msg);
  }
  err = pcre2_jit_compile(e->re, PCRE2_JIT_COMPLETE); // the interpreter gives the same matches, slower
  if (err < 0 && err != PCRE2_ERROR_JIT_BADOPTION) qs_log(QS_LOG_DEBUG, "%s: PCRE2 JIT unavailable (%d)", e->source, err);
#else
  (void)pattern;
  QS_FAIL(QS_ERR_UNSUPPORTED, "%s: encoding byte-level BPE needs PCRE2 (the pre-tokenizer regex), which this build "
          "of qshard lacks (install libpcre2-dev, then reconfigure)", e->source);
#endif
fail:
  return status;
}

qs_status qs_tokenizer_bpe_init(struct qs_tokenizer_bpe **out, const char *path, const struct qs_vocab *v) {
  qs_status status = QS_OK;
  struct qs_tokenizer_bpe *e = NULL;
  json_error_t jerr;
  json_t *tok = NULL;
  QS_ALLOC(e, 1);
  snprintf(e->source, sizeof(e->source), "%s", path);
  if (!(tok = json_load_file(path, 0, &jerr)))
    QS_FAIL(QS_ERR_FORMAT, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
  const json_t *model = json_object_get(tok, "model");
  QS_TRY(check_model(e, tok, model));
  QS_TRY(load_vocab(e, model));
  QS_TRY(load_merges(e, json_object_get(model, "merges")));
  QS_TRY(load_added(e, tok));
  QS_TRY(compile_regex(e, tok, v));
  *out = e;
  e = NULL;
fail:
  json_decref(tok);
  qs_tokenizer_bpe_free(e);
  return status;
}

// ---- encoding -----------------------------------------------------------------------------------------------

struct word_sym {
  int32_t id, prev, next, len; // len 0: merged away
};

struct scratch {
  struct word_sym *sym;
  size_t cap;
  struct qs_tokenizer_heap heap;
  struct qs_tokenizer_buf mapped;
#ifdef QS_USE_PCRE2
  pcre2_match_data *md;
#endif
};

static qs_status merge_pair(const struct qs_tokenizer_bpe *e, struct scratch *w, int32_t a) {
  int32_t rank, id, b = a >= 0 ? w->sym[a].next : -1;
  if (a < 0 || b < 0 || !merge_get(e, w->sym[a].id, w->sym[b].id, &rank, &id)) return QS_OK;
  return qs_tokenizer_heap_push(&w->heap, (struct qs_tokenizer_pair){.key = UINT32_MAX - (uint32_t)rank, .left = a, .id = id});
}

// One pre-tokenized piece (raw bytes) through the model.
static qs_status encode_word(const struct qs_tokenizer_bpe *e, struct scratch *w, const char *s, size_t n,
                             struct qs_ids *out) {
  qs_status status = QS_OK;
  struct qs_tokenizer_pair p;
  int32_t count = 0, rank, id;
  w->mapped.n = 0;
  for (size_t i = 0; i < n; i++) QS_TRY(qs_tokenizer_buf_add(&w->mapped, e->byte_chr[(unsigned char)s[i]], e->byte_len[(unsigned char)s[i]]));
  if (e->ignore_merges && (id = qs_tokenizer_map_get(&e->vocab, w->mapped.p, w->mapped.n)) >= 0) return qs_ids_push(out, id);
  if (n > w->cap) {
    free(w->sym);
    w->cap = 2 * n;
    QS_ALLOC(w->sym, w->cap);
  }
  for (size_t i = 0; i < n; i++) {
    id = e->byte_id[(unsigned char)s[i]];
    if (id < 0 && e->unk < 0) continue; // no unk_token: the character is dropped, as tokenizers does
    if (id < 0 && e->fuse_unk && count > 0 && w->sym[count - 1].id == e->unk) continue;
    w->sym[count] = (struct word_sym){.id = id < 0 ? e->unk : id, .prev = count - 1, .next = count + 1, .len = 1};
    count++;
  }
  if (count == 0) return QS_OK;
  w->sym[count - 1].next = -1;
  w->heap.n = 0;
  for (int32_t i = 0; i + 1 < count; i++) QS_TRY(merge_pair(e, w, i));
  while (qs_tokenizer_heap_pop(&w->heap, &p)) {
    struct word_sym *a = &w->sym[p.left];
    if (a->len == 0 || a->next < 0) continue;
    struct word_sym *b = &w->sym[a->next];
    if (!merge_get(e, a->id, b->id, &rank, &id) || id != p.id) continue; // an expired entry
    a->id = id, a->len += b->len, b->len = 0;
    a->next = b->next;
    if (a->next >= 0) w->sym[a->next].prev = p.left;
    QS_TRY(merge_pair(e, w, a->prev));
    QS_TRY(merge_pair(e, w, p.left));
  }
  for (int32_t i = 0; i >= 0; i = w->sym[i].next) QS_TRY(qs_ids_push(out, w->sym[i].id));
fail:
  return status;
}

// Offset of the first malformed UTF-8 sequence in s (for the message; n when none).
static size_t utf8_bad(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    size_t k = u[i] < 0x80 ? 1 : (u[i] & 0xE0) == 0xC0 && u[i] >= 0xC2 ? 2 : (u[i] & 0xF0) == 0xE0 ? 3
             : (u[i] & 0xF8) == 0xF0 && u[i] <= 0xF4 ? 4 : 0;
    if (k == 0 || k > n - i) return i;
    for (size_t j = 1; j < k; j++)
      if ((u[i + j] & 0xC0) != 0x80) return i;
    i += k;
  }
  return n;
}

// The pre-tokenizer: regex matches and the gaps between them, each a piece.
static qs_status encode_plain(const struct qs_tokenizer_bpe *e, struct scratch *w, const char *s, size_t n,
                              size_t base, struct qs_ids *out) {
  qs_status status = QS_OK;
#ifdef QS_USE_PCRE2
  size_t at = 0, last = 0;
  uint32_t opts = 0;
  while (at < n) {
    int rc = pcre2_match(e->re, (PCRE2_SPTR)s, n, at, opts, w->md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      QS_FAIL(rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21 ? QS_ERR_FORMAT : QS_ERR_INTERNAL,
              "%s: text at byte %zu: %s (byte-level BPE takes UTF-8 text)", e->source, base + utf8_bad(s, n),
              (const char *)msg);
    }
    opts = PCRE2_NO_UTF_CHECK; // checked by the first match
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(w->md);
    size_t ms = ov[0], me = ov[1];
    if (me == ms) { // an empty match is no piece
      at = me + 1;
      while (at < n && ((unsigned char)s[at] & 0xC0) == 0x80) at++;
      continue;
    }
    if (ms > last) QS_TRY(encode_word(e, w, s + last, ms - last, out));
    QS_TRY(encode_word(e, w, s + ms, me - ms, out));
    at = last = me;
  }
  if (last < n) QS_TRY(encode_word(e, w, s + last, n - last, out));
#else
  (void)e, (void)w, (void)s, (void)n, (void)base, (void)out;
  QS_FAIL(QS_ERR_UNSUPPORTED, "built without PCRE2");
#endif
fail:
  return status;
}

// The leftmost, then longest, added token of set k at or after s[from]: its start, or n when none.
static size_t find_added(const struct qs_tokenizer_bpe *e, int k, const char *s, size_t n, size_t from, size_t *len,
                         int32_t *id) {
  for (size_t i = from; i < n; i++) {
    size_t best = 0;
    for (size_t j = 0; j < e->n_added[k]; j++) {
      const struct added *a = &e->added[k][j];
      if (a->content[0] == s[i] && a->len > best && a->len <= n - i && !memcmp(s + i, a->content, a->len))
        best = a->len, *id = a->id;
    }
    if (best) {
      *len = best;
      return i;
    }
  }
  return n;
}

// Added tokens of set k split the text; the gaps go to set k + 1, then to the pre-tokenizer.
static qs_status encode_level(const struct qs_tokenizer_bpe *e, struct scratch *w, int k, const char *s, size_t n,
                              size_t base, struct qs_ids *out) {
  qs_status status = QS_OK;
  size_t at = 0, len = 0;
  int32_t id = -1;
  while (at < n) {
    size_t m = e->n_added[k] ? find_added(e, k, s, n, at, &len, &id) : n;
    if (m > at) {
      if (k == 0) QS_TRY(encode_level(e, w, 1, s + at, m - at, base + at, out));
      else QS_TRY(encode_plain(e, w, s + at, m - at, base + at, out));
    }
    if (m == n) break;
    QS_TRY(qs_ids_push(out, id));
    at = m + len;
  }
fail:
  return status;
}

qs_status qs_tokenizer_bpe_encode(const struct qs_tokenizer_bpe *e, const char *text, size_t len, struct qs_ids *out) {
  qs_status status = QS_OK;
  struct scratch w = {0};
#ifdef QS_USE_PCRE2
  if (!(w.md = pcre2_match_data_create_from_pattern(e->re, NULL))) QS_FAIL(QS_ERR_OOM, "out of memory");
#endif
  QS_TRY(encode_level(e, &w, 0, text, len, 0, out));
fail:
#ifdef QS_USE_PCRE2
  pcre2_match_data_free(w.md);
#endif
  free(w.sym);
  free(w.mapped.p);
  qs_tokenizer_heap_free(&w.heap);
  return status;
}
