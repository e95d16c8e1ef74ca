// vocab.c — tokenizers of model directories as llama.cpp's converters write them into GGUF (contract:
// vocab.h). What each converter does was read from llama.cpp conversion/base.py
// (_create_vocab_sentencepiece, get_vocab_base, does_token_look_special), conversion/llama.py
// (set_vocab), gguf-py vocab.py (SpecialVocab) and gguf_writer.py, and
// examples/convert-llama2c-to-ggml; the comments name the step each function follows.
#include "io/vocab.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#ifdef QS_USE_PROTOBUF_C
#include "io/sentencepiece.pb-c.h"
#endif

#define QS_SPM_PAD_SCORE -10000.0f // score of "[PADi]" fillers of a SentencePiece vocabulary
#define QS_ADDED_SCORE -1000.0f    // score of added tokens

static const char *const k_special_names[QS_SPECIAL_COUNT] = {"bos", "eos",  "unk", "sep", "pad",
                                                              "cls", "mask", "eot", "eom"};
// gguf-py add_<typ>_token_id keys; cls has no handler there (skipped with a warning).
static const char *const k_special_keys[QS_SPECIAL_COUNT] = {
    "bos_token_id", "eos_token_id", "unknown_token_id", "seperator_token_id", "padding_token_id",
    NULL, "mask_token_id", "eot_token_id", "eom_token_id"};

const char *qs_vocab_special_key(enum qs_vocab_special s) {
  return (unsigned)s < QS_SPECIAL_COUNT ? k_special_keys[s] : NULL;
}

static void vocab_init(struct qs_vocab *v) {
  memset(v, 0, sizeof(*v));
  for (int i = 0; i < QS_SPECIAL_COUNT; i++) v->special[i] = -1;
  v->add_bos = v->add_eos = v->add_sep = v->add_space_prefix = -1;
  v->spm_add_dummy_prefix = v->spm_byte_fallback = -1;
}

static void free_strings(char **s, int32_t n) {
  if (!s) return;
  for (int32_t i = 0; i < n; i++) free(s[i]);
  free(s);
}

void qs_vocab_free(struct qs_vocab *v) {
  free_strings(v->tokens, v->n_tokens);
  free_strings(v->merges, v->n_merges);
  free_strings(v->template_names, v->n_templates);
  free_strings(v->templates, v->n_templates);
  free(v->scores);
  free(v->types);
  free(v->chat_template);
  vocab_init(v);
}

// n tokens "[PADi]" of type unused (score `pad_score`; scores only when with_scores).
static qs_status vocab_alloc(struct qs_vocab *v, int64_t n, int with_scores, float pad_score) {
  qs_status status = QS_OK;
  if (n <= 0 || n > INT32_MAX) QS_FAIL(QS_ERR_FORMAT, "%s: vocabulary of %" PRId64 " tokens", v->source, n);
  QS_ALLOC(v->tokens, n);
  QS_ALLOC(v->types, n);
  if (with_scores) QS_ALLOC(v->scores, n);
  v->n_tokens = (int32_t)n;
  for (int64_t i = 0; i < n; i++) {
    char buf[32];
    snprintf(buf, sizeof(buf), "[PAD%" PRId64 "]", i);
    if (!(v->tokens[i] = strdup(buf))) QS_FAIL(QS_ERR_OOM, "out of memory");
    v->types[i] = QS_TOKEN_UNUSED;
    if (with_scores) v->scores[i] = pad_score;
  }
fail:
  return status;
}

static qs_status set_token(struct qs_vocab *v, int64_t id, const char *text) {
  qs_status status = QS_OK;
  char *s = strdup(text);
  if (!s) QS_FAIL(QS_ERR_OOM, "out of memory");
  free(v->tokens[id]);
  v->tokens[id] = s;
fail:
  return status;
}

// conversion/base.py does_token_look_special: added tokens marked non-special that ought to be control.
static int looks_special(const char *t) {
  size_t n = strlen(t);
#define QS_ENDS(s) (n >= strlen(s) && !strcmp(t + n - strlen(s), s))
#define QS_STARTS(s) (!strncmp(t, s, strlen(s)))
  return !strcmp(t, "<pad>") || !strcmp(t, "<mask>") || !strcmp(t, "<2mass>") || !strcmp(t, "[@BOS@]") ||
         (QS_STARTS("<|") && QS_ENDS("|>")) || (QS_STARTS("<\xef\xbd\x9c") && QS_ENDS("\xef\xbd\x9c>")) ||
         (QS_STARTS("<unused") && QS_ENDS(">"));
#undef QS_ENDS
#undef QS_STARTS
}

// text with every occurrence of `from` replaced by `to`, malloc'ed (NULL on OOM).
static char *replace_all(const char *text, const char *from, const char *to) {
  size_t nf = strlen(from), nt = strlen(to), count = 0;
  for (const char *p = strstr(text, from); p; p = strstr(p + nf, from)) count++;
  char *out = malloc(strlen(text) + count * (nt > nf ? nt - nf : 0) + 1), *o = out;
  if (!out) return NULL;
  for (const char *p = text;;) {
    const char *q = strstr(p, from);
    size_t k = q ? (size_t)(q - p) : strlen(p);
    memcpy(o, p, k);
    o += k;
    if (!q) break;
    memcpy(o, to, nt);
    o += nt;
    p = q + nf;
  }
  *o = '\0';
  return out;
}

// An added token as the converters store it: control when special (or special-looking), else
// user-defined with SentencePiece's U+2581 turned back into spaces ("pre-normalized").
static qs_status set_added(struct qs_vocab *v, int64_t id, const char *content, int special) {
  qs_status status = QS_OK;
  char *text = NULL;
  if (special || looks_special(content)) {
    v->types[id] = QS_TOKEN_CONTROL;
    QS_TRY(set_token(v, id, content));
  } else {
    v->types[id] = QS_TOKEN_USER_DEFINED;
    if (!(text = replace_all(content, "\xe2\x96\x81", " "))) QS_FAIL(QS_ERR_OOM, "out of memory");
    QS_TRY(set_token(v, id, text));
  }
  if (v->scores) v->scores[id] = QS_ADDED_SCORE;
fail:
  free(text);
  return status;
}

// ---- the files beside the tokenizer -----------------------------------------------------------

// The JSON files of a model directory that shape the vocabulary (NULL when absent).
struct vocab_files {
  const char *dir;
  json_t *tokenizer;        // tokenizer.json
  json_t *config;           // tokenizer_config.json
  json_t *model_config;     // config.json
};

static qs_status load_json_opt(const char *dir, const char *name, json_t **out) {
  qs_status status = QS_OK;
  json_error_t err;
  char *path = dir ? qs_path_join(dir, name) : strdup(name);
  *out = NULL;
  if (!path) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (!qs_path_exists(path)) goto fail;
  *out = json_load_file(path, 0, &err); // duplicate keys: the last wins, as in Python's json
  if (!*out) QS_FAIL(QS_ERR_FORMAT, "%s: invalid JSON at line %d: %s", path, err.line, err.text);
fail:
  free(path);
  return status;
}

static void vocab_files_free(struct vocab_files *f) {
  json_decref(f->tokenizer);
  json_decref(f->config);
  json_decref(f->model_config);
  memset(f, 0, sizeof(*f));
}

// Python truthiness of a JSON value (None, "", {}, [], 0 and false are false).
static int truthy(const json_t *j) {
  if (!j || json_is_null(j) || json_is_false(j)) return 0;
  if (json_is_string(j)) return json_string_length(j) > 0;
  if (json_is_object(j)) return json_object_size(j) > 0;
  if (json_is_array(j)) return json_array_size(j) > 0;
  if (json_is_number(j)) return json_number_value(j) != 0;
  return 1;
}
// Python `s == j` for a str s.
static int str_eq(const char *s, const json_t *j) { return s && json_is_string(j) && !strcmp(s, json_string_value(j)); }
// x.get('SpecialToken', {}).get('id') of a template item, or NULL.
static const char *template_special(const json_t *item) {
  const json_t *id = json_object_get(json_object_get(item, "SpecialToken"), "id");
  return json_is_string(id) && json_string_length(id) ? json_string_value(id) : NULL;
}
static const char *template_sequence(const json_t *item) {
  return json_string_value(json_object_get(json_object_get(item, "Sequence"), "id"));
}
static int str_same(const char *a, const char *b) { return a && b && !strcmp(a, b); }

struct special_state {
  int n_types;                   // SpecialVocab.special_token_types: bos..mask, then eot / eom
  enum qs_vocab_special types[QS_SPECIAL_COUNT];
  int64_t n_vocab;               // ids >= n_vocab are dropped; 0 = no limit
};

// SpecialVocab._set_special_token: the first id given for a kind wins.
static qs_status set_special(struct qs_vocab *v, const struct special_state *s, enum qs_vocab_special k,
                             const json_t *id, const char *src) {
  qs_status status = QS_OK;
  if (!json_is_integer(id)) goto fail;
  json_int_t t = json_integer_value(id);
  if (t < 0)
    QS_FAIL(QS_ERR_FORMAT, "%s: invalid value for special token type %s: %" JSON_INTEGER_FORMAT, src,
            k_special_names[k], t);
  if (s->n_vocab && t >= s->n_vocab) {
    qs_log(QS_LOG_WARN,
           "%s: special token type %s, id %" JSON_INTEGER_FORMAT " out of range, must be under %" PRId64 " - skipping",
           src, k_special_names[k], t, s->n_vocab);
    goto fail;
  }
  if (v->special[k] < 0) v->special[k] = t;
fail:
  return status;
}


// SpecialVocab's view of the special tokens while it reads tokenizer.json's post_processor:
// special_bos / _eos / _cls / _sep (borrowed JSON values: strings, AddedToken objects or NULL).
struct special_locals {
  json_t *bos, *eos, *cls, *sep;
};

static int has_type(const struct special_state *s, enum qs_vocab_special k) {
  for (int i = 0; i < s->n_types; i++)
    if (s->types[i] == k) return 1;
  return 0;
}

// SpecialVocab, TemplateProcessing: a leading special token is add_bos; a trailing one is add_eos
// and, when it differs from tokenizer_config's eos_token, becomes the eos (the old eos moving to
// eot, else eom); A [sep] [eos] B in the pair template is add_sep.
static void post_template(struct qs_vocab *v, struct special_state *s, json_t *tc, const json_t *proc,
                          struct special_locals *l) {
  const json_t *single = json_object_get(proc, "single"), *pair = json_object_get(proc, "pair");
  size_t ns = json_array_size(single), np = json_array_size(pair);
  const char *first = NULL, *last = NULL;
  if (ns > 1) {
    if ((first = template_special(json_array_get(single, 0)))) {
      if (!truthy(tc)) l->bos = json_object_get(json_object_get(json_array_get(single, 0), "SpecialToken"), "id");
      v->add_bos = str_eq(first, l->bos) || str_eq(first, l->cls);
    }
    if ((last = template_special(json_array_get(single, ns - 1)))) {
      json_t *last_j = json_object_get(json_object_get(json_array_get(single, ns - 1), "SpecialToken"), "id");
      if (!truthy(tc)) {
        l->eos = last_j;
      } else if (!str_eq(last, l->eos)) {
        enum qs_vocab_special moved = !has_type(s, QS_SPECIAL_EOT) ? QS_SPECIAL_EOT
                                      : !has_type(s, QS_SPECIAL_EOM) ? QS_SPECIAL_EOM : QS_SPECIAL_COUNT;
        if (moved != QS_SPECIAL_COUNT) {
          s->types[s->n_types++] = moved;
          json_object_set(tc, moved == QS_SPECIAL_EOT ? "eot_token" : "eom_token", l->eos ? l->eos : json_null());
        } else {
          qs_log(QS_LOG_WARN, "%s: overriding EOS token with %s without EOT/EOM fallback", v->source, last);
        }
        json_object_set(tc, "eos_token", last_j);
        l->eos = last_j;
      }
      v->add_eos = str_eq(last, l->eos);
    }
  }
  if (!np) return;
  // The pair template less the single one's leading / trailing special token: A [sep] [eos] B.
  size_t lo = first && str_same(template_special(json_array_get(pair, 0)), first) ? 1 : 0;
  size_t hi = last && str_same(template_special(json_array_get(pair, np - 1)), last) ? np - 1 : np;
  if (hi <= lo || !str_same(template_sequence(json_array_get(pair, lo)), "A") ||
      !str_same(template_sequence(json_array_get(pair, hi - 1)), "B") || hi - lo < 3)
    return;
  int add_sep = 0;
  const char *e = template_special(json_array_get(pair, lo + 1));
  if (e && (str_eq(e, l->sep) || str_eq(e, l->eos)) && !last) add_sep = 1;
  if (hi - lo - 2 == 2 && (e = template_special(json_array_get(pair, lo + 2))) &&
      (str_eq(e, l->sep) || str_eq(e, l->eos)))
    add_sep = 1;
  v->add_sep = add_sep;
  if (add_sep && !truthy(l->sep) && truthy(tc)) json_object_set(tc, "sep_token", l->eos ? l->eos : json_null());
}

// SpecialVocab, tokenizer.json's post_processor (RobertaProcessing, TemplateProcessing, or a
// Sequence of processors).
static void post_processor(struct qs_vocab *v, struct special_state *s, json_t *tc, const json_t *tok) {
  struct special_locals l = {json_object_get(tc, "bos_token"), json_object_get(tc, "eos_token"),
                             json_object_get(tc, "cls_token"), json_object_get(tc, "sep_token")};
  if (!truthy(l.bos) && truthy(l.cls) && truthy(tc)) json_object_set(tc, "bos_token", l.bos = l.cls);
  if (!truthy(l.eos) && truthy(l.sep) && truthy(tc)) json_object_set(tc, "eos_token", l.eos = l.sep);
  const json_t *pp = json_object_get(tok, "post_processor");
  if (!truthy(pp)) return;
  const json_t *list = json_object_get(pp, "processors");
  size_t n = list ? json_array_size(list) : 1;
  for (size_t i = 0; i < n; i++) {
    const json_t *proc = list ? json_array_get(list, i) : pp;
    const char *type = json_string_value(json_object_get(proc, "type"));
    if (str_same(type, "RobertaProcessing")) {
      v->add_bos = v->add_eos = v->add_sep = 1;
      if (!truthy(l.cls) && truthy(tc)) { // processor.get('cls', [special_bos])[0]
        const json_t *c = json_object_get(proc, "cls");
        l.cls = c ? json_array_get(c, 0) : l.bos;
        json_object_set(tc, "cls_token", l.cls ? l.cls : json_null());
      }
      if (!truthy(l.sep) && truthy(tc)) {
        const json_t *c = json_object_get(proc, "sep");
        l.sep = c ? json_array_get(c, 0) : l.eos;
        json_object_set(tc, "sep_token", l.sep ? l.sep : json_null());
      }
    } else if (str_same(type, "TemplateProcessing")) {
      post_template(v, s, tc, proc, &l);
    }
  }
}

// SpecialVocab, tokenizer_config.json: the chat template (the key, else chat_template.jinja, else
// chat_template.json beside it); a list of {name, template} is stored as gguf-py does.
static qs_status chat_template(struct qs_vocab *v, const struct vocab_files *f, const json_t *tc) {
  qs_status status = QS_OK;
  json_t *alt_json = NULL, *alt_str = NULL;
  char *jinja = NULL, *path = NULL;
  const json_t *t = json_object_get(tc, "chat_template");
  if (!t && f->dir) {
    if (!(path = qs_path_join(f->dir, "chat_template.jinja"))) QS_FAIL(QS_ERR_OOM, "out of memory");
    if (qs_path_exists(path)) {
      QS_TRY(qs_file_read_all(path, &jinja, NULL));
      t = alt_str = json_string(jinja);
    } else {
      QS_TRY(load_json_opt(f->dir, "chat_template.json", &alt_json));
      t = json_object_get(alt_json, "chat_template");
    }
  }
  if (json_is_string(t) && json_string_length(t)) { // gguf-py skips an empty string
    if (!(v->chat_template = strdup(json_string_value(t)))) QS_FAIL(QS_ERR_OOM, "out of memory");
  } else if (json_is_array(t)) {
    size_t n = json_array_size(t);
    QS_ALLOC(v->template_names, n);
    QS_ALLOC(v->templates, n);
    for (size_t i = 0; i < n; i++) {
      const char *name = json_string_value(json_object_get(json_array_get(t, i), "name"));
      const char *text = json_string_value(json_object_get(json_array_get(t, i), "template"));
      if (!name || !name[0] || !text) continue;
      char *clean = strdup(name);
      if (!clean) QS_FAIL(QS_ERR_OOM, "out of memory");
      for (char *c = clean; *c; c++) // gguf-py keeps ASCII letters and digits, '_' for the rest
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) *c = '_';
      if (!strcmp(clean, "default")) {
        free(clean);
        free(v->chat_template);
        if (!(v->chat_template = strdup(text))) QS_FAIL(QS_ERR_OOM, "out of memory");
        continue;
      }
      v->template_names[v->n_templates] = clean;
      if (!(v->templates[v->n_templates++] = strdup(text))) QS_FAIL(QS_ERR_OOM, "out of memory");
    }
  }
fail:
  json_decref(alt_json);
  json_decref(alt_str);
  free(jinja);
  free(path);
  return status;
}

// gguf-py SpecialVocab(dir, load_merges, n_vocab): special ids, add_* flags, chat template, merges.
static qs_status special_vocab(struct qs_vocab *v, const struct vocab_files *f, int load_merges, int64_t n_vocab) {
  qs_status status = QS_OK;
  struct special_state s = {.n_types = QS_SPECIAL_MASK + 1, .n_vocab = n_vocab};
  json_t *tc = f->config ? json_deep_copy(f->config) : NULL; // SpecialVocab edits its copy
  for (int i = 0; i <= QS_SPECIAL_MASK; i++) s.types[i] = (enum qs_vocab_special)i;
  if (f->config && !tc) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (load_merges) {
    const json_t *m = json_object_get(json_object_get(f->tokenizer, "model"), "merges");
    size_t n = json_array_size(m);
    if (n) QS_ALLOC(v->merges, n);
    for (size_t i = 0; i < n; i++) {
      const json_t *e = json_array_get(m, i);
      char *text = NULL;
      if (json_is_string(e)) {
        text = strdup(json_string_value(e));
      } else if (json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                 json_is_string(json_array_get(e, 1))) {
        // transformers >= 4.45 pairs: joined by a space, spaces inside encoded as U+0120 (' ' + 256)
        char *a = replace_all(json_string_value(json_array_get(e, 0)), " ", "\xc4\xa0");
        char *b = replace_all(json_string_value(json_array_get(e, 1)), " ", "\xc4\xa0");
        if (a && b && (text = malloc(strlen(a) + strlen(b) + 2))) sprintf(text, "%s %s", a, b);
        free(a);
        free(b);
      } else {
        QS_FAIL(QS_ERR_FORMAT, "%s: merge %zu: unknown tokenizer merges format", v->source, i);
      }
      if (!text) QS_FAIL(QS_ERR_OOM, "out of memory");
      v->merges[v->n_merges++] = text;
    }
  }
  if (f->tokenizer) post_processor(v, &s, tc, f->tokenizer);
  if (truthy(tc)) {
    QS_TRY(chat_template(v, f, tc));
    const json_t *added = json_object_get(f->tokenizer, "added_tokens");
    for (int i = 0; i < s.n_types; i++) {
      enum qs_vocab_special k = s.types[i];
      char key[32];
      snprintf(key, sizeof(key), "add_%s_token", k_special_names[k]);
      const json_t *add = json_object_get(tc, key);
      if (json_is_boolean(add) && k == QS_SPECIAL_BOS) v->add_bos = json_is_true(add);
      if (json_is_boolean(add) && k == QS_SPECIAL_EOS) v->add_eos = json_is_true(add);
      if (json_is_boolean(add) && k == QS_SPECIAL_SEP) v->add_sep = json_is_true(add);
      snprintf(key, sizeof(key), "%s_token", k_special_names[k]);
      const json_t *entry = json_object_get(tc, key);
      const char *content =
          json_is_object(entry) ? json_string_value(json_object_get(entry, "content")) : json_string_value(entry);
      if (!content) continue;
      for (size_t j = 0; j < json_array_size(added); j++)
        if (str_eq(content, json_object_get(json_array_get(added, j), "content"))) {
          QS_TRY(set_special(v, &s, k, json_object_get(json_array_get(added, j), "id"), "tokenizer_config.json"));
          break;
        }
    }
  }
  for (int i = 0; f->model_config && i < s.n_types; i++) {
    char key[32];
    snprintf(key, sizeof(key), "%s_token_id", k_special_names[s.types[i]]);
    const json_t *id = json_object_get(f->model_config, key);
    if (!id) id = json_object_get(json_object_get(f->model_config, "text_config"), key);
    QS_TRY(set_special(v, &s, s.types[i], id, "config.json"));
  }
fail:
  json_decref(tc);
  return status;
}

// ---- SentencePiece tokenizer.model -------------------------------------------------------------

// _create_vocab_sentencepiece, the pieces: text, score and type of each id below vocab_size.
// trainer_ids: the model's own bos, eos, unk, pad ids (trainer_spec; -1 = none).
static qs_status spm_pieces(struct qs_vocab *v, const char *path, int64_t n_vocab, int32_t trainer_ids[4]) {
  qs_status status = QS_OK;
#ifdef QS_USE_PROTOBUF_C
  char *data = NULL;
  size_t size = 0;
  Sentencepiece__ModelProto *m = NULL;
  QS_TRY(qs_file_read_all(path, &data, &size));
  m = sentencepiece__model_proto__unpack(NULL, size, (const uint8_t *)data);
  if (!m) QS_FAIL(QS_ERR_FORMAT, "%s: not a SentencePiece model (protobuf ModelProto does not parse)", path);
  if (m->n_pieces == 0) QS_FAIL(QS_ERR_FORMAT, "%s: SentencePiece model without pieces", path);
  QS_TRY(vocab_alloc(v, n_vocab > 0 ? n_vocab : (int64_t)m->n_pieces, 1, QS_SPM_PAD_SCORE));
  if ((int64_t)m->n_pieces > v->n_tokens)
    qs_log(QS_LOG_WARN, "%s: ignore tokens from %d: id is out of range, max=%d", path, v->n_tokens, v->n_tokens - 1);
  for (int32_t i = 0; i < v->n_tokens && (size_t)i < m->n_pieces; i++) {
    const Sentencepiece__ModelProto__SentencePiece *p = m->pieces[i];
    QS_TRY(set_token(v, i, p->piece ? p->piece : ""));
    v->scores[i] = p->score;
    switch (p->type) { // IsUnknown, IsControl, IsUnused, IsByte; NORMAL and USER_DEFINED are normal
    case SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__UNKNOWN: v->types[i] = QS_TOKEN_UNKNOWN; break;
    case SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__CONTROL: v->types[i] = QS_TOKEN_CONTROL; break;
    case SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__UNUSED: v->types[i] = QS_TOKEN_UNUSED; break;
    case SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__BYTE: v->types[i] = QS_TOKEN_BYTE; break;
    default: v->types[i] = QS_TOKEN_NORMAL; break;
    }
  }
  const Sentencepiece__TrainerSpec *ts = m->trainer_spec;
  const Sentencepiece__NormalizerSpec *ns = m->normalizer_spec;
  v->spm_add_dummy_prefix = ns ? ns->add_dummy_prefix : 1;
  v->spm_byte_fallback = ts ? ts->byte_fallback : 0;
  trainer_ids[0] = ts ? ts->bos_id : 1;
  trainer_ids[1] = ts ? ts->eos_id : 2;
  trainer_ids[2] = ts ? ts->unk_id : 0;
  trainer_ids[3] = ts ? ts->pad_id : -1;
fail:
  if (m) sentencepiece__model_proto__free_unpacked(m, NULL);
  free(data);
#else
  (void)v, (void)n_vocab, (void)trainer_ids;
  QS_FAIL(QS_ERR_UNSUPPORTED, "%s: reading a SentencePiece tokenizer.model needs protobuf-c, which this build of qshard "
          "lacks (install libprotobuf-c-dev and protobuf-c-compiler, then reconfigure)", path);
fail:
#endif
  return status;
}

void qs_vocab_spm_free(struct qs_spm_model *m) {
  free_strings(m->pieces, m->n_pieces);
  free(m->scores);
  free(m->types);
  free(m->charsmap);
  memset(m, 0, sizeof(*m));
}

qs_status qs_vocab_spm_read(const char *path, struct qs_spm_model *out) {
  qs_status status = QS_OK;
  memset(out, 0, sizeof(*out));
#ifdef QS_USE_PROTOBUF_C
  char *data = NULL;
  size_t size = 0;
  Sentencepiece__ModelProto *m = NULL;
  QS_TRY(qs_file_read_all(path, &data, &size));
  m = sentencepiece__model_proto__unpack(NULL, size, (const uint8_t *)data);
  if (!m) QS_FAIL(QS_ERR_FORMAT, "%s: not a SentencePiece model (protobuf ModelProto does not parse)", path);
  if (m->n_pieces == 0 || m->n_pieces > INT32_MAX)
    QS_FAIL(QS_ERR_FORMAT, "%s: SentencePiece model with %zu pieces", path, m->n_pieces);
  QS_ALLOC(out->pieces, m->n_pieces);
  QS_ALLOC(out->scores, m->n_pieces);
  QS_ALLOC(out->types, m->n_pieces);
  out->n_pieces = (int32_t)m->n_pieces;
  for (size_t i = 0; i < m->n_pieces; i++) {
    const Sentencepiece__ModelProto__SentencePiece *p = m->pieces[i];
    if (!(out->pieces[i] = strdup(p->piece ? p->piece : ""))) QS_FAIL(QS_ERR_OOM, "out of memory");
    out->scores[i] = p->score;
    out->types[i] = (int32_t)p->type;
  }
  const Sentencepiece__TrainerSpec *ts = m->trainer_spec;
  const Sentencepiece__NormalizerSpec *ns = m->normalizer_spec;
  out->model_type = ts ? (int)ts->model_type : 1;
  out->byte_fallback = ts ? ts->byte_fallback : 0;
  out->treat_whitespace_as_suffix = ts ? ts->treat_whitespace_as_suffix : 0;
  out->add_dummy_prefix = ns ? ns->add_dummy_prefix : 1;
  out->remove_extra_whitespaces = ns ? ns->remove_extra_whitespaces : 1;
  out->escape_whitespaces = ns ? ns->escape_whitespaces : 1;
  snprintf(out->norm_name, sizeof(out->norm_name), "%s", ns && ns->name ? ns->name : "");
  if (ns && ns->has_precompiled_charsmap && ns->precompiled_charsmap.len > 0) {
    QS_ALLOC(out->charsmap, ns->precompiled_charsmap.len);
    memcpy(out->charsmap, ns->precompiled_charsmap.data, ns->precompiled_charsmap.len);
    out->charsmap_size = ns->precompiled_charsmap.len;
  }
fail:
  if (m) sentencepiece__model_proto__free_unpacked(m, NULL);
  free(data);
  if (status != QS_OK) qs_vocab_spm_free(out);
#else
  QS_FAIL(QS_ERR_UNSUPPORTED, "%s: reading a SentencePiece tokenizer.model needs protobuf-c, which this build of qshard "
          "lacks (install libprotobuf-c-dev and protobuf-c-compiler, then reconfigure)", path);
fail:
#endif
  return status;
}

// _create_vocab_sentencepiece, the added tokens: added_tokens.json, then tokenizer_config.json's
// added_tokens_decoder.
static qs_status spm_added(struct qs_vocab *v, const struct vocab_files *f) {
  qs_status status = QS_OK;
  json_t *added = NULL;
  const char *key;
  json_t *val;
  QS_TRY(load_json_opt(f->dir, "added_tokens.json", &added));
  json_object_foreach(added, key, val) {
    json_int_t id = json_integer_value(val);
    if (!json_is_integer(val) || id < 0)
      QS_FAIL(QS_ERR_FORMAT, "%s/added_tokens.json: '%s' has no token id", f->dir, key);
    if (id >= v->n_tokens) {
      qs_log(QS_LOG_WARN, "%s/added_tokens.json: ignore token %" JSON_INTEGER_FORMAT ": id is out of range", f->dir,
             id);
      continue;
    }
    QS_TRY(set_token(v, id, key));
    v->scores[id] = QS_ADDED_SCORE;
    v->types[id] = QS_TOKEN_USER_DEFINED;
  }
  json_object_foreach(json_object_get(f->config, "added_tokens_decoder"), key, val) {
    char *end = NULL;
    long long id = strtoll(key, &end, 10);
    const char *content = json_string_value(json_object_get(val, "content"));
    if (!end || *end || id < 0 || !content)
      QS_FAIL(QS_ERR_FORMAT, "%s/tokenizer_config.json: added_tokens_decoder entry '%s' is malformed", f->dir, key);
    if (id >= v->n_tokens) {
      qs_log(QS_LOG_WARN, "%s/tokenizer_config.json: ignore token %lld: id is out of range", f->dir, id);
      continue;
    }
    QS_TRY(set_added(v, id, content, truthy(json_object_get(val, "special"))));
  }
fail:
  json_decref(added);
  return status;
}

// ---- byte-level BPE tokenizer.json -------------------------------------------------------------

// Llama-3's pre-tokenizer split (tokenizer.json, Split pattern.Regex), the one llama.cpp calls
// "llama-bpe".
static const char k_llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// tokenizer.ggml.pre. conversion hashes the token ids the HF tokenizer gives a test text; without
// that tokenizer, the pre-tokenizer's definition names the two families qshard supports.
static qs_status bpe_pre(struct qs_vocab *v, const json_t *tok) {
  qs_status status = QS_OK;
  const json_t *pre = json_object_get(tok, "pre_tokenizer");
  const char *type = json_string_value(json_object_get(pre, "type"));
  const json_t *list = json_object_get(pre, "pretokenizers");
  if (str_same(type, "ByteLevel") && json_is_true(json_object_get(pre, "use_regex")) &&
      !json_is_true(json_object_get(pre, "add_prefix_space"))) {
    strcpy(v->pre, "gpt-2");
  } else if (str_same(type, "Sequence") && json_array_size(list) == 2) {
    const json_t *split = json_array_get(list, 0), *bl = json_array_get(list, 1);
    if (str_same(json_string_value(json_object_get(split, "type")), "Split") &&
        str_same(json_string_value(json_object_get(json_object_get(split, "pattern"), "Regex")), k_llama3_regex) &&
        str_same(json_string_value(json_object_get(split, "behavior")), "Isolated") &&
        !json_is_true(json_object_get(split, "invert")) &&
        str_same(json_string_value(json_object_get(bl, "type")), "ByteLevel") &&
        !json_is_true(json_object_get(bl, "use_regex")) && !json_is_true(json_object_get(bl, "add_prefix_space")))
      strcpy(v->pre, "llama-bpe");
  }
  if (!v->pre[0])
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: BPE pre-tokenizer not recognized (qshard knows Llama-3's \"llama-bpe\" and GPT-2's "
            "\"gpt-2\"); llama.cpp's convert_hf_to_gguf.py refuses such a tokenizer too", v->source);
fail:
  return status;
}

// get_vocab_base: tokens by id from model.vocab and added_tokens; ids without a token are "[PADi]".
static qs_status bpe_tokens(struct qs_vocab *v, const json_t *tok, int64_t n_vocab) {
  qs_status status = QS_OK;
  const json_t *model = json_object_get(tok, "model"), *vocab = json_object_get(model, "vocab");
  const json_t *added = json_object_get(tok, "added_tokens"), *val;
  const char *key;
  if (!str_same(json_string_value(json_object_get(model, "type")), "BPE") || !json_is_object(vocab))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: model.type is not BPE with a vocab: not a byte-level BPE tokenizer", v->source);
  if (json_is_true(json_object_get(model, "byte_fallback")) ||
      !str_same(json_string_value(json_object_get(json_object_get(tok, "decoder"), "type")), "ByteLevel"))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: a SentencePiece-style BPE (byte fallback, no ByteLevel decoder): qshard reads "
            "these from tokenizer.model", v->source);
  QS_TRY(bpe_pre(v, tok));
  // HF's get_vocab(): the model's vocab plus the added tokens not in it (by text).
  int64_t n_distinct = (int64_t)json_object_size(vocab), max_id = -1;
  for (size_t i = 0; i < json_array_size(added); i++)
  {
    const char *c = json_string_value(json_object_get(json_array_get(added, i), "content"));
    if (c && !json_object_get(vocab, c)) n_distinct++;
  }
  json_object_foreach((json_t *)vocab, key, val) max_id = QS_MAX(max_id, (int64_t)json_integer_value(val));
  for (size_t i = 0; i < json_array_size(added); i++)
    max_id = QS_MAX(max_id, (int64_t)json_integer_value(json_object_get(json_array_get(added, i), "id")));
  int64_t n = n_vocab > 0 ? n_vocab : n_distinct;
  if (max_id >= n)
    QS_FAIL(QS_ERR_FORMAT, "%s: token id %" PRId64 " is not below the vocabulary size %" PRId64, v->source, max_id, n);
  QS_TRY(vocab_alloc(v, n, 0, 0));
  json_object_foreach((json_t *)vocab, key, val) {
    if (!json_is_integer(val) || json_integer_value(val) < 0)
      QS_FAIL(QS_ERR_FORMAT, "%s: vocab entry '%s' has no id", v->source, key);
    QS_TRY(set_token(v, json_integer_value(val), key));
    v->types[json_integer_value(val)] = QS_TOKEN_NORMAL;
  }
  for (size_t i = 0; i < json_array_size(added); i++) {
    const json_t *a = json_array_get(added, i), *id = json_object_get(a, "id");
    const char *content = json_string_value(json_object_get(a, "content"));
    if (!json_is_integer(id) || json_integer_value(id) < 0 || !content)
      QS_FAIL(QS_ERR_FORMAT, "%s: added_tokens[%zu] has no id or content", v->source, i);
    QS_TRY(set_added(v, json_integer_value(id), content, json_is_true(json_object_get(a, "special"))));
  }
  strcpy(v->model, "gpt2");
fail:
  return status;
}

// ---- llama2.c tok512.bin -------------------------------------------------------------------------

// convert-llama2c-to-ggml load_vocab: i32 max_token_length, then per token f32 score, i32 length,
// bytes. n_vocab tokens are read (0: up to the end of the file).
static qs_status llama2c_tokens(struct qs_vocab *v, const char *path, int64_t n_vocab) {
  qs_status status = QS_OK;
  char *data = NULL, *text = NULL;
  size_t size = 0, pos = 4;
  int64_t n = n_vocab;
  QS_TRY(qs_file_read_all(path, &data, &size));
  if (size < 4) QS_FAIL(QS_ERR_FORMAT, "%s: not a llama2.c tokenizer (%zu bytes)", path, size);
  for (int pass = 0; pass < 2; pass++) { // pass 0 counts the tokens (n_vocab 0) and checks the records
    int64_t i = 0;
    for (pos = 4; n_vocab > 0 ? i < n_vocab : pos < size; i++) {
      int32_t len;
      float score;
      if (size - pos < 8) QS_FAIL(QS_ERR_FORMAT, "%s: truncated at token %" PRId64 " (offset %zu)", path, i, pos);
      memcpy(&score, data + pos, 4);
      memcpy(&len, data + pos + 4, 4);
      pos += 8;
      if (len < 0 || (size_t)len > size - pos)
        QS_FAIL(QS_ERR_FORMAT, "%s: token %" PRId64 " has a bad length %d", path, i, len);
      if (memchr(data + pos, 0, (size_t)len))
        QS_FAIL(QS_ERR_FORMAT, "%s: token %" PRId64 " contains a NUL byte", path, i);
      if (pass == 1) {
        unsigned char byte;
        int type = QS_TOKEN_NORMAL;
        QS_ALLOC(text, (size_t)len + 1);
        memcpy(text, data + pos, (size_t)len);
        const char *name = i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : text;
        if (i == 0) type = QS_TOKEN_UNKNOWN;
        else if (i <= 2 || len == 0) type = QS_TOKEN_CONTROL;
        else if (sscanf(text, "<0x%02hhX>", &byte) == 1) type = QS_TOKEN_BYTE; // exactly llama.cpp's test
        char *escaped = replace_all(name, " ", "\xe2\x96\x81");
        if (!escaped) QS_FAIL(QS_ERR_OOM, "out of memory");
        free(v->tokens[i]);
        v->tokens[i] = escaped;
        v->scores[i] = score;
        v->types[i] = type;
        free(text);
        text = NULL;
      }
      pos += (size_t)len;
    }
    if (pass == 0) {
      n = i;
      QS_TRY(vocab_alloc(v, n, 1, 0));
    }
  }
  if (pos != size) qs_log(QS_LOG_WARN, "%s: %zu bytes after token %" PRId64 " ignored", path, size - pos, n - 1);
  strcpy(v->model, "llama");
  v->special[QS_SPECIAL_UNK] = 0;
  v->special[QS_SPECIAL_BOS] = 1;
  v->special[QS_SPECIAL_EOS] = 2;
  v->special[QS_SPECIAL_SEP] = 0xFFFFFFFFll; // LLAMA_TOKEN_NULL (-1) as u32
  v->special[QS_SPECIAL_PAD] = 0xFFFFFFFFll;
fail:
  free(text);
  free(data);
  return status;
}

// ---- public loaders ---------------------------------------------------------------------------------

// config.json vocab_size, 0 when absent.
static int64_t config_vocab_size(const struct vocab_files *f) {
  const json_t *n = json_object_get(f->model_config, "vocab_size");
  return json_is_integer(n) && json_integer_value(n) > 0 ? (int64_t)json_integer_value(n) : 0;
}

// conversion/llama.py set_vocab: tokenizer_config.json add_prefix_space.
static void add_prefix_space(struct qs_vocab *v, const struct vocab_files *f) {
  const json_t *a = json_object_get(f->config, "add_prefix_space");
  if (json_is_boolean(a)) v->add_space_prefix = json_is_true(a);
}

// _set_vocab_sentencepiece; without config.json (which conversion needs) the ids SpecialVocab did
// not find come from the model's trainer_spec.
static qs_status load_spm(struct qs_vocab *v, const char *path, const struct vocab_files *f, int64_t n_vocab) {
  qs_status status = QS_OK;
  int32_t ids[4] = {-1, -1, -1, -1};
  static const enum qs_vocab_special kinds[4] = {QS_SPECIAL_BOS, QS_SPECIAL_EOS, QS_SPECIAL_UNK, QS_SPECIAL_PAD};
  QS_TRY(spm_pieces(v, path, n_vocab, ids));
  strcpy(v->model, "llama");
  strcpy(v->pre, "default");
  if (f->dir) QS_TRY(spm_added(v, f));
  QS_TRY(special_vocab(v, f, 0, v->n_tokens));
  for (int k = 0; k < 4 && !f->model_config; k++)
    if (v->special[kinds[k]] < 0 && ids[k] >= 0 && ids[k] < v->n_tokens) v->special[kinds[k]] = ids[k];
  add_prefix_space(v, f);
fail:
  return status;
}

static qs_status load_bpe(struct qs_vocab *v, const struct vocab_files *f) {
  qs_status status = QS_OK;
  QS_TRY(bpe_tokens(v, f->tokenizer, config_vocab_size(f)));
  QS_TRY(special_vocab(v, f, 1, 0));
  add_prefix_space(v, f);
fail:
  return status;
}

qs_status qs_vocab_load(struct qs_vocab *v, const char *dir) {
  qs_status status = QS_OK;
  struct vocab_files f = {.dir = dir};
  static const char *const names[3] = {"tokenizer.model", "tokenizer.json", "tok512.bin"};
  char *path = NULL;
  int which = -1;
  vocab_init(v);
  for (int i = 0; i < 3 && which < 0; i++) {
    free(path);
    if (!(path = qs_path_join(dir, names[i]))) QS_FAIL(QS_ERR_OOM, "out of memory");
    if (qs_path_exists(path)) which = i;
  }
  if (which < 0) QS_FAIL(QS_ERR_IO, "%s: no tokenizer.model, tokenizer.json or tok512.bin", dir);
  snprintf(v->source, sizeof(v->source), "%s", path);
  QS_TRY(load_json_opt(dir, "config.json", &f.model_config));
  if (which == 2) {
    QS_TRY(llama2c_tokens(v, path, config_vocab_size(&f)));
  } else {
    QS_TRY(load_json_opt(dir, "tokenizer.json", &f.tokenizer));
    QS_TRY(load_json_opt(dir, "tokenizer_config.json", &f.config));
    if (which == 0) QS_TRY(load_spm(v, path, &f, config_vocab_size(&f)));
    else QS_TRY(load_bpe(v, &f));
  }
fail:
  if (status != QS_OK) qs_vocab_free(v);
  vocab_files_free(&f);
  free(path);
  return status;
}

qs_status qs_vocab_load_spm(struct qs_vocab *v, const char *path, int64_t n_vocab) {
  qs_status status = QS_OK;
  struct vocab_files f = {0};
  vocab_init(v);
  snprintf(v->source, sizeof(v->source), "%s", path);
  QS_TRY(load_spm(v, path, &f, n_vocab));
fail:
  if (status != QS_OK) qs_vocab_free(v);
  return status;
}

qs_status qs_vocab_load_bpe(struct qs_vocab *v, const char *path, int64_t n_vocab) {
  qs_status status = QS_OK;
  struct vocab_files f = {0};
  vocab_init(v);
  snprintf(v->source, sizeof(v->source), "%s", path);
  QS_TRY(load_json_opt(NULL, path, &f.tokenizer));
  if (!f.tokenizer) QS_FAIL(QS_ERR_IO, "%s: not found", path);
  QS_TRY(bpe_tokens(v, f.tokenizer, n_vocab));
  QS_TRY(special_vocab(v, &f, 1, 0));
fail:
  if (status != QS_OK) qs_vocab_free(v);
  vocab_files_free(&f);
  return status;
}

qs_status qs_vocab_load_llama2c(struct qs_vocab *v, const char *path, int64_t n_vocab) {
  qs_status status = QS_OK;
  vocab_init(v);
  snprintf(v->source, sizeof(v->source), "%s", path);
  QS_TRY(llama2c_tokens(v, path, n_vocab));
fail:
  if (status != QS_OK) qs_vocab_free(v);
  return status;
}

// ---- GGUF keys ----------------------------------------------------------------------------------

qs_status qs_vocab_add_gguf_keys(const struct qs_vocab *v, struct qs_gguf_writer *w) {
  qs_status status = QS_OK;
  char key[96];
  QS_TRY(qs_gguf_writer_set_string(w, "tokenizer.ggml.model", v->model));
  if (v->pre[0]) QS_TRY(qs_gguf_writer_set_string(w, "tokenizer.ggml.pre", v->pre));
  QS_TRY(qs_gguf_writer_set_array_string(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
                                         (uint64_t)v->n_tokens));
  if (v->scores)
    QS_TRY(qs_gguf_writer_set_array(w, "tokenizer.ggml.scores", QS_GGUF_F32, v->scores, (uint64_t)v->n_tokens));
  QS_TRY(qs_gguf_writer_set_array(w, "tokenizer.ggml.token_type", QS_GGUF_I32, v->types, (uint64_t)v->n_tokens));
  if (v->n_merges)
    QS_TRY(qs_gguf_writer_set_array_string(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
                                           (uint64_t)v->n_merges));
  for (int i = 0; i < QS_SPECIAL_COUNT; i++) {
    if (v->special[i] < 0 || !k_special_keys[i]) continue;
    if (v->special[i] > UINT32_MAX)
      QS_FAIL(QS_ERR_ARG, "%s: %s token id %" PRId64 " does not fit u32", v->source, k_special_names[i], v->special[i]);
    snprintf(key, sizeof(key), "tokenizer.ggml.%s", k_special_keys[i]);
    QS_TRY(qs_gguf_writer_set_u32(w, key, (uint32_t)v->special[i]));
  }
  if (v->add_bos >= 0) QS_TRY(qs_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos));
  if (v->add_eos >= 0) QS_TRY(qs_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos));
  if (v->add_sep >= 0) QS_TRY(qs_gguf_writer_set_bool(w, "tokenizer.ggml.add_sep_token", v->add_sep));
  if (v->add_space_prefix >= 0)
    QS_TRY(qs_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix));
  for (int32_t i = 0; i < v->n_templates; i++) {
    snprintf(key, sizeof(key), "tokenizer.chat_template.%.60s", v->template_names[i]);
    QS_TRY(qs_gguf_writer_set_string(w, key, v->templates[i]));
  }
  if (v->n_templates)
    QS_TRY(qs_gguf_writer_set_array_string(w, "tokenizer.chat_templates", (const char *const *)v->template_names,
                                           (uint64_t)v->n_templates));
  if (v->chat_template) QS_TRY(qs_gguf_writer_set_string(w, "tokenizer.chat_template", v->chat_template));
fail:
  return status;
}
