// tokenizer.c — text to token ids (contract: tokenizer.h): the tokenizer chosen from a model directory
// or file, the llama2.c encoder, and the hash map, merge queue and buffers the encoders share
// (tokenizer_impl.h). SentencePiece is tokenizer_spm.c, byte-level BPE tokenizer_bpe.c.
#include "io/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "io/tokenizer_impl.h"
#include "io/vocab.h"

// ---- ids, buffers -----------------------------------------------------------------------------------

static qs_status grow(void **p, size_t *cap, size_t need, size_t elem) {
  qs_status status = QS_OK;
  if (need <= *cap) return QS_OK;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) QS_FAIL(QS_ERR_OOM, "out of memory growing an array to %zu x %zu bytes", c, elem);
  *p = q;
  *cap = c;
fail:
  return status;
}

qs_status qs_ids_push(struct qs_ids *a, int32_t id) {
  qs_status status = QS_OK;
  if (a->n == a->cap) QS_TRY(grow((void **)&a->v, &a->cap, a->n + 1, sizeof(int32_t)));
  a->v[a->n++] = id;
fail:
  return status;
}

qs_status qs_ids_append(struct qs_ids *a, const int32_t *ids, size_t n) {
  qs_status status = QS_OK;
  QS_TRY(grow((void **)&a->v, &a->cap, a->n + n, sizeof(int32_t)));
  if (n) memcpy(a->v + a->n, ids, n * sizeof(int32_t));
  a->n += n;
fail:
  return status;
}

void qs_ids_free(struct qs_ids *a) {
  free(a->v);
  memset(a, 0, sizeof(*a));
}

qs_status qs_tokenizer_buf_add(struct qs_tokenizer_buf *b, const char *s, size_t n) {
  qs_status status = QS_OK;
  QS_TRY(grow((void **)&b->p, &b->cap, b->n + n + 1, 1));
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
fail:
  return status;
}

// ---- hash map -----------------------------------------------------------------------------------------

uint64_t qs_tokenizer_hash(const char *s, size_t n) {
  uint64_t h = QS_TOKENIZER_HASH0;
  for (size_t i = 0; i < n; i++) h = qs_tokenizer_hash_step(h, (unsigned char)s[i]);
  return h;
}

static qs_status map_alloc(struct qs_tokenizer_map *m, size_t cap) {
  qs_status status = QS_OK;
  memset(m, 0, sizeof(*m));
  m->cap = cap;
  QS_ALLOC(m->keys, cap);
  QS_ALLOC(m->lens, cap);
  QS_ALLOC(m->hashes, cap);
  QS_ALLOC(m->vals, cap);
fail:
  return status;
}

qs_status qs_tokenizer_map_init(struct qs_tokenizer_map *m, size_t expected) {
  size_t cap = 16;
  while (cap < 2 * expected + 2) cap *= 2;
  return map_alloc(m, cap);
}

void qs_tokenizer_map_free(struct qs_tokenizer_map *m) {
  free(m->keys);
  free(m->lens);
  free(m->hashes);
  free(m->vals);
  memset(m, 0, sizeof(*m));
}

static size_t map_slot(const struct qs_tokenizer_map *m, const char *key, size_t n, uint64_t h) {
  size_t i = (size_t)h & (m->cap - 1);
  while (m->keys[i] && !(m->hashes[i] == h && m->lens[i] == n && !memcmp(m->keys[i], key, n))) i = (i + 1) & (m->cap - 1);
  return i;
}

int32_t qs_tokenizer_map_get_h(const struct qs_tokenizer_map *m, const char *key, size_t n, uint64_t h) {
  size_t i = map_slot(m, key, n, h);
  return m->keys[i] ? m->vals[i] : -1;
}

qs_status qs_tokenizer_map_put(struct qs_tokenizer_map *m, const char *key, size_t n, int32_t val, int replace) {
  qs_status status = QS_OK;
  struct qs_tokenizer_map big = {0};
  if (n > UINT32_MAX) QS_FAIL(QS_ERR_ARG, "token of %zu bytes", n);
  if (2 * (m->n + 1) > m->cap) { // rehash into twice the capacity
    QS_TRY(map_alloc(&big, 2 * m->cap));
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->keys[i]) continue;
      size_t j = map_slot(&big, m->keys[i], m->lens[i], m->hashes[i]);
      big.keys[j] = m->keys[i], big.lens[j] = m->lens[i], big.hashes[j] = m->hashes[i], big.vals[j] = m->vals[i];
    }
    big.n = m->n;
    qs_tokenizer_map_free(m);
    *m = big;
    big = (struct qs_tokenizer_map){0};
  }
  uint64_t h = qs_tokenizer_hash(key, n);
  size_t i = map_slot(m, key, n, h);
  if (m->keys[i]) {
    if (replace) m->vals[i] = val;
  } else {
    m->keys[i] = key, m->lens[i] = (uint32_t)n, m->hashes[i] = h, m->vals[i] = val;
    m->n++;
  }
fail:
  qs_tokenizer_map_free(&big);
  return status;
}

// ---- merge queue (binary heap) -------------------------------------------------------------------------

static int pair_before(const struct qs_tokenizer_pair *a, const struct qs_tokenizer_pair *b) {
  return a->key > b->key || (a->key == b->key && a->left < b->left);
}

qs_status qs_tokenizer_heap_push(struct qs_tokenizer_heap *h, struct qs_tokenizer_pair p) {
  qs_status status = QS_OK;
  if (h->n == h->cap) QS_TRY(grow((void **)&h->a, &h->cap, h->n + 1, sizeof(*h->a)));
  size_t i = h->n++;
  while (i > 0 && pair_before(&p, &h->a[(i - 1) / 2])) {
    h->a[i] = h->a[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h->a[i] = p;
fail:
  return status;
}

int qs_tokenizer_heap_pop(struct qs_tokenizer_heap *h, struct qs_tokenizer_pair *out) {
  if (h->n == 0) return 0;
  *out = h->a[0];
  struct qs_tokenizer_pair last = h->a[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && pair_before(&h->a[c + 1], &h->a[c])) c++;
    if (!pair_before(&h->a[c], &last)) break;
    h->a[i] = h->a[c];
    i = c;
  }
  if (h->n) h->a[i] = last;
  return 1;
}

void qs_tokenizer_heap_free(struct qs_tokenizer_heap *h) {
  free(h->a);
  memset(h, 0, sizeof(*h));
}

// ---- llama2.c --------------------------------------------------------------------------------------------

// The tokenizer as llama2.c's encode() sees it: the file's strings (vocab.h wrote ' ' as U+2581; it is
// turned back) with their scores. Ids 0-2 (renamed <unk> <s> </s> by the vocabulary, "<unk>", "\n<s>\n",
// "\n</s>\n" in the file) are left out of the lookup: no codepoint or merge of text pieces forms them.
struct llama2c {
  int32_t n;
  char **raw;
  size_t *len;
  float *scores;
  struct qs_tokenizer_map map;
  int32_t space;          // the dummy prefix " "
  size_t max_len;
};

static void llama2c_free(struct llama2c *l) {
  if (!l) return;
  for (int32_t i = 0; l->raw && i < l->n; i++) free(l->raw[i]);
  free(l->raw);
  free(l->len);
  free(l->scores);
  qs_tokenizer_map_free(&l->map);
  free(l);
}

static qs_status llama2c_init(struct llama2c **out, const struct qs_vocab *v) {
  qs_status status = QS_OK;
  struct llama2c *l = NULL;
  QS_ALLOC(l, 1);
  l->n = v->n_tokens;
  // a byte with no token of its own is encoded as id byte + 3 (llama2.c's <0x00>..<0xFF>)
  if (l->n < 259)
    QS_FAIL(QS_ERR_FORMAT, "%s: %d tokens, but llama2.c's byte tokens <0x00>..<0xFF> are ids 3..258", v->source, l->n);
  QS_ALLOC(l->raw, l->n);
  QS_ALLOC(l->len, l->n);
  QS_ALLOC(l->scores, l->n);
  QS_TRY(qs_tokenizer_map_init(&l->map, (size_t)l->n));
  for (int32_t i = 0; i < l->n; i++) {
    const char *t = v->tokens[i];
    size_t k = 0;
    QS_ALLOC(l->raw[i], strlen(t) + 1);
    for (const char *p = t; *p;) {
      if (!strncmp(p, "\xe2\x96\x81", 3)) l->raw[i][k++] = ' ', p += 3;
      else l->raw[i][k++] = *p++;
    }
    l->len[i] = k;
    l->scores[i] = v->scores[i];
    l->max_len = QS_MAX(l->max_len, k);
    if (i > 2 && k > 0) QS_TRY(qs_tokenizer_map_put(&l->map, l->raw[i], k, i, 0)); // bsearch finds one of equals
  }
  l->space = qs_tokenizer_map_get(&l->map, " ", 1);
  if (l->space < 0) QS_FAIL(QS_ERR_FORMAT, "%s: no \" \" token (llama2.c's dummy prefix)", v->source);
  *out = l;
  l = NULL;
fail:
  llama2c_free(l);
  return status;
}

struct l2c_sym {
  int32_t id, prev, next, span; // span: text bytes covered (the dummy prefix counts 1); 0 = merged away
};

// The pair (a, b) when their strings together are a token scored above llama2.c's -1e10 floor.
static qs_status l2c_pair(const struct llama2c *l, const struct l2c_sym *s, int32_t a, int32_t b, char *buf,
                          struct qs_tokenizer_heap *h) {
  if (a < 0 || b < 0) return QS_OK;
  size_t na = l->len[s[a].id], nb = l->len[s[b].id];
  memcpy(buf, l->raw[s[a].id], na);
  memcpy(buf + na, l->raw[s[b].id], nb);
  int32_t id = qs_tokenizer_map_get(&l->map, buf, na + nb);
  if (id < 0 || !(l->scores[id] > -1e10f)) return QS_OK;
  return qs_tokenizer_heap_push(h, (struct qs_tokenizer_pair){.key = qs_tokenizer_score_key(l->scores[id]), .left = a,
                                                              .right = b, .check = s[a].span + s[b].span, .id = id});
}

static qs_status l2c_push(struct l2c_sym **s, size_t *n, size_t *cap, int32_t id, int32_t span) {
  qs_status status = QS_OK;
  QS_TRY(grow((void **)s, cap, *n + 1, sizeof(**s)));
  (*s)[*n] = (struct l2c_sym){.id = id, .prev = (int32_t)*n - 1, .next = (int32_t)*n + 1, .span = span};
  (*n)++;
fail:
  return status;
}

static qs_status llama2c_encode(const struct llama2c *l, const char *text, size_t len, struct qs_ids *out) {
  qs_status status = QS_OK;
  struct l2c_sym *s = NULL;
  struct qs_tokenizer_heap h = {0};
  struct qs_tokenizer_pair p;
  size_t n = 0, cap = 0, k = 0;
  char *buf = NULL, cp[5];
  if (len == 0) return QS_OK;
  if (len > INT32_MAX / 4) QS_FAIL(QS_ERR_ARG, "a text of %zu bytes: encode it in pieces", len);
  QS_ALLOC(buf, 2 * l->max_len + 8);
  QS_TRY(l2c_push(&s, &n, &cap, l->space, 1));
  for (size_t i = 0; i < len; i++) { // llama2.c: a leading byte and up to 3 continuation bytes
    if (((unsigned char)text[i] & 0xC0) != 0x80) k = 0;
    cp[k++] = text[i];
    if (i + 1 < len && ((unsigned char)text[i + 1] & 0xC0) == 0x80 && k < 4) continue;
    int32_t id = qs_tokenizer_map_get(&l->map, cp, k);
    if (id >= 0) QS_TRY(l2c_push(&s, &n, &cap, id, (int32_t)k));
    else
      for (size_t j = 0; j < k; j++) QS_TRY(l2c_push(&s, &n, &cap, (unsigned char)cp[j] + 3, 1));
    k = 0;
  }
  s[n - 1].next = -1;
  for (size_t i = 1; i < n; i++) QS_TRY(l2c_pair(l, s, (int32_t)i - 1, (int32_t)i, buf, &h));
  while (qs_tokenizer_heap_pop(&h, &p)) {
    struct l2c_sym *a = &s[p.left], *b = &s[p.right];
    if (a->span == 0 || b->span == 0 || a->span + b->span != p.check) continue; // stale
    a->id = p.id;
    a->span += b->span;
    a->next = b->next;
    if (b->next >= 0) s[b->next].prev = p.left;
    b->span = 0;
    QS_TRY(l2c_pair(l, s, a->prev, p.left, buf, &h));
    QS_TRY(l2c_pair(l, s, p.left, a->next, buf, &h));
  }
  for (int32_t i = 0; i >= 0; i = s[i].next) QS_TRY(qs_ids_push(out, s[i].id));
fail:
  free(s);
  free(buf);
  qs_tokenizer_heap_free(&h);
  return status;
}

// ---- the tokenizer ---------------------------------------------------------------------------------------

struct qs_tokenizer_impl {
  struct qs_vocab vocab;
  struct qs_tokenizer_spm *spm;
  struct qs_tokenizer_bpe *bpe;
  struct llama2c *l2c;
};

const char *qs_tokenizer_kind_name(int kind) {
  switch (kind) {
  case QS_TOKENIZER_SPM_BPE: return "SentencePiece BPE";
  case QS_TOKENIZER_SPM_UNIGRAM: return "SentencePiece unigram";
  case QS_TOKENIZER_BYTE_BPE: return "byte-level BPE";
  case QS_TOKENIZER_LLAMA2C: return "llama2.c";
  default: return "?";
  }
}

void qs_tokenizer_free(struct qs_tokenizer *t) {
  if (t->impl) {
    qs_vocab_free(&t->impl->vocab);
    qs_tokenizer_spm_free(t->impl->spm);
    qs_tokenizer_bpe_free(t->impl->bpe);
    llama2c_free(t->impl->l2c);
    free(t->impl);
  }
  memset(t, 0, sizeof(*t));
}

qs_status qs_tokenizer_init(struct qs_tokenizer *t, const char *path) {
  qs_status status = QS_OK;
  struct qs_tokenizer_impl *im = NULL;
  memset(t, 0, sizeof(*t));
  QS_ALLOC(im, 1);
  t->impl = im;
  if (qs_path_is_dir(path)) QS_TRY(qs_vocab_load(&im->vocab, path));
  else if (qs_str_has_suffix(path, ".json")) QS_TRY(qs_vocab_load_bpe(&im->vocab, path, 0));
  else if (qs_str_has_suffix(path, ".model")) QS_TRY(qs_vocab_load_spm(&im->vocab, path, 0));
  else QS_TRY(qs_vocab_load_llama2c(&im->vocab, path, 0));
  const struct qs_vocab *v = &im->vocab;
  snprintf(t->source, sizeof(t->source), "%s", v->source);
  if (qs_str_has_suffix(v->source, ".json")) {
    t->kind = QS_TOKENIZER_BYTE_BPE;
    QS_TRY(qs_tokenizer_bpe_init(&im->bpe, v->source, v));
  } else if (!strcmp(v->model, "llama") && v->spm_add_dummy_prefix >= 0) { // read from a SentencePiece model
    QS_TRY(qs_tokenizer_spm_init(&im->spm, v->source, &t->kind));
  } else {
    t->kind = QS_TOKENIZER_LLAMA2C;
    QS_TRY(llama2c_init(&im->l2c, v));
  }
  t->n_vocab = v->n_tokens;
  int64_t bos = v->special[QS_SPECIAL_BOS], eos = v->special[QS_SPECIAL_EOS];
  t->bos = bos >= 0 && bos < v->n_tokens ? (int32_t)bos : -1;
  t->eos = eos >= 0 && eos < v->n_tokens ? (int32_t)eos : -1;
  t->add_bos = t->bos >= 0 && v->add_bos != 0;
fail:
  if (status != QS_OK) qs_tokenizer_free(t);
  return status;
}

qs_status qs_tokenizer_encode(const struct qs_tokenizer *t, const char *text, size_t len, struct qs_ids *out) {
  qs_status status = QS_OK;
  size_t n0 = out->n;
  if (t->impl->spm) QS_TRY(qs_tokenizer_spm_encode(t->impl->spm, text, len, out));
  else if (t->impl->bpe) QS_TRY(qs_tokenizer_bpe_encode(t->impl->bpe, text, len, out));
  else QS_TRY(llama2c_encode(t->impl->l2c, text, len, out));
  for (size_t i = n0; i < out->n; i++) // an id past the vocabulary would be a bug here, or a bad file
    if (out->v[i] < 0 || out->v[i] >= t->n_vocab)
      QS_FAIL(QS_ERR_FORMAT, "%s: encoding gave id %d outside the vocabulary [0, %d)", t->source, out->v[i], t->n_vocab);
fail:
  return status;
}
