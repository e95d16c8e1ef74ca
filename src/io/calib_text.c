// calib_text.c — calibration windows and evaluation streams from text (contract: calib_text.h).
#include "io/calib_text.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "io/tokenizer_impl.h"

// The token stream as it is read: ids, and where each document starts and ends (EOS not included).
struct reader {
  const struct qs_calib_text_opts *o;
  const struct qs_tokenizer *tok;
  struct qs_ids ids;
  struct qs_ids doc_start, doc_len;  // per document (docs mode), as int32 pairs (< 2^31 ids per document)
  int64_t limit;                     // stop once ids.n reaches it (0: no limit)
  int64_t docs;
  int sep_after;                     // EOS after every document (random, docs) or only between (stream)
  int want_docs;                     // docs mode: stop once `samples` documents are long enough
  int64_t eligible;
};

static int reader_done(const struct reader *r) {
  if (r->limit > 0 && (int64_t)r->ids.n >= r->limit) return 1;
  return r->want_docs && r->eligible >= r->o->samples;
}

static qs_status doc_begin(struct reader *r) {
  qs_status status = QS_OK;
  if (!r->sep_after && r->docs > 0 && !r->o->lines && r->tok->eos >= 0) QS_TRY(qs_ids_push(&r->ids, r->tok->eos));
  if (r->ids.n > INT32_MAX) QS_FAIL(QS_ERR_UNSUPPORTED, "more than 2^31 calibration tokens read");
  QS_TRY(qs_ids_push(&r->doc_start, (int32_t)r->ids.n));
fail:
  return status;
}

static qs_status doc_end(struct reader *r) {
  qs_status status = QS_OK;
  int64_t len = (int64_t)r->ids.n - r->doc_start.v[r->doc_start.n - 1];
  QS_TRY(qs_ids_push(&r->doc_len, (int32_t)len));
  if (r->sep_after && !r->o->lines && r->tok->eos >= 0) QS_TRY(qs_ids_push(&r->ids, r->tok->eos));
  r->docs++;
  if (len >= r->o->seqlen - (r->tok->add_bos ? 1 : 0)) r->eligible++;
fail:
  return status;
}

static qs_status encode(struct reader *r, const char *s, size_t n) {
  return qs_tokenizer_encode(r->tok, s, n, &r->ids);
}

// A --text file: one document, encoded in pieces cut at line ends (or line by line with `lines`).
static qs_status read_text(struct reader *r, const char *path) {
  qs_status status = QS_OK;
  FILE *f = fopen(path, "rb");
  char *line = NULL;
  size_t cap = 0;
  struct qs_tokenizer_buf piece = {0};
  ssize_t n;
  if (!f) QS_FAIL(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  QS_TRY(doc_begin(r));
  while (!reader_done(r) && (n = getline(&line, &cap, f)) >= 0) {
    if (r->o->lines) {
      size_t k = (size_t)n; // without its line end, "\n" or "\r\n" (Python's universal newlines)
      if (k > 0 && line[k - 1] == '\n') k--;
      if (k > 0 && line[k - 1] == '\r') k--;
      QS_TRY(encode(r, line, k));
      continue;
    }
    QS_TRY(qs_tokenizer_buf_add(&piece, line, (size_t)n));
    if (piece.n >= QS_CALIB_TEXT_PIECE) {
      QS_TRY(encode(r, piece.p, piece.n));
      piece.n = 0;
    }
  }
  if (ferror(f)) QS_FAIL(QS_ERR_IO, "%s: read failed: %s", path, strerror(errno));
  if (piece.n && !reader_done(r)) QS_TRY(encode(r, piece.p, piece.n));
  QS_TRY(doc_end(r));
fail:
  if (f) fclose(f);
  free(line);
  free(piece.p);
  return status;
}

static int blank(const char *s) {
  for (; *s; s++)
    if (!strchr(" \t\n\r\f\v", *s)) return 0;
  return 1;
}

// A --jsonl file: one document per line, its `field`.
static qs_status read_jsonl(struct reader *r, const char *path, const char *field) {
  qs_status status = QS_OK;
  FILE *f = fopen(path, "rb");
  char *line = NULL;
  size_t cap = 0;
  json_t *j = NULL;
  json_error_t err;
  ssize_t n;
  if (!f) QS_FAIL(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  for (long lineno = 1; !reader_done(r) && (n = getline(&line, &cap, f)) >= 0; lineno++) {
    if (blank(line)) continue;
    json_decref(j);
    if (!(j = json_loadb(line, (size_t)n, 0, &err)))
      QS_FAIL(QS_ERR_FORMAT, "%s:%ld: not a JSON object: %s", path, lineno, err.text);
    const json_t *t = json_object_get(j, field);
    if (!json_is_string(t))
      QS_FAIL(QS_ERR_FORMAT, "%s:%ld: no string field \"%s\" (--field names it)", path, lineno, field);
    if (blank(json_string_value(t))) continue;
    QS_TRY(doc_begin(r));
    QS_TRY(encode(r, json_string_value(t), json_string_length(t)));
    QS_TRY(doc_end(r));
  }
  if (ferror(f)) QS_FAIL(QS_ERR_IO, "%s: read failed: %s", path, strerror(errno));
fail:
  if (f) fclose(f);
  free(line);
  json_decref(j);
  return status;
}

static qs_status read_all(struct reader *r, struct qs_calib_text_info *info) {
  qs_status status = QS_OK;
  const struct qs_calib_text_opts *o = r->o;
  for (int i = 0; i < o->n_text && !reader_done(r); i++) QS_TRY(read_text(r, o->text[i]));
  if (o->jsonl && !reader_done(r)) QS_TRY(read_jsonl(r, o->jsonl, o->field ? o->field : "text"));
  if (!o->n_text && !o->jsonl) QS_FAIL(QS_ERR_ARG, "no text given (--text FILE or --jsonl FILE)");
  info->stream_tokens = (int64_t)r->ids.n;
  info->docs = r->docs;
fail:
  return status;
}

static void reader_free(struct reader *r) {
  qs_ids_free(&r->ids);
  qs_ids_free(&r->doc_start);
  qs_ids_free(&r->doc_len);
}

static void info_init(struct qs_calib_text_info *info, const struct qs_tokenizer *t) {
  memset(info, 0, sizeof(*info));
  info->bos = t->add_bos ? t->bos : -1;
  info->eos = t->eos;
  info->kind = t->kind;
  snprintf(info->tokenizer, sizeof(info->tokenizer), "%s", t->source);
}

// Window i: BOS (when added) then body ids of src from its offset.
static void put_window(int32_t *row, int32_t bos, const int32_t *src, int body) {
  if (bos >= 0) *row++ = bos;
  memcpy(row, src, (size_t)body * sizeof(int32_t));
}

qs_status qs_calib_text_windows(const struct qs_calib_text_opts *o, struct qs_calib *out, struct qs_calib_text_info *info) {
  qs_status status = QS_OK;
  struct qs_tokenizer tok = {0};
  struct reader r = {.o = o, .tok = &tok, .sep_after = 1};
  memset(out, 0, sizeof(*out));
  if (o->samples < 1 || o->seqlen < 2) QS_FAIL(QS_ERR_ARG, "--samples %d --seqlen %d: need >= 1 and >= 2", o->samples, o->seqlen);
  QS_TRY(qs_tokenizer_init(&tok, o->tokenizer));
  info_init(info, &tok);
  const int body = o->seqlen - (tok.add_bos ? 1 : 0);
  r.want_docs = o->mode == QS_CALIB_TEXT_DOCS;
  r.limit = r.want_docs ? 0 : o->max_tokens > 0 ? o->max_tokens : 8ll * o->samples * o->seqlen;
  QS_TRY(read_all(&r, info));
  out->n = o->samples, out->seqlen = o->seqlen;
  QS_ALLOC(out->ids, (size_t)o->samples * (size_t)o->seqlen);
  if (!r.want_docs) {
    if ((int64_t)r.ids.n < body)
      QS_FAIL(QS_ERR_ARG, "the text gives only %zu tokens; a window of --seqlen %d needs %d", r.ids.n, o->seqlen, body);
    for (int i = 0; i < o->samples; i++) {
      int64_t off = qs_calib_offset(o->seed, i, (int64_t)r.ids.n - body + 1);
      put_window(out->ids + (size_t)i * o->seqlen, info->bos, r.ids.v + off, body);
    }
    info->docs_used = r.docs;
  } else {
    int got = 0;
    for (size_t d = 0; d < r.doc_len.n && got < o->samples; d++) {
      if (r.doc_len.v[d] < body) continue;
      int64_t off = qs_calib_offset(o->seed, got, (int64_t)r.doc_len.v[d] - body + 1);
      put_window(out->ids + (size_t)got * o->seqlen, info->bos, r.ids.v + r.doc_start.v[d] + off, body);
      got++;
    }
    if (got < o->samples)
      QS_FAIL(QS_ERR_ARG, "--mode docs: only %d of %lld documents have the %d tokens a window needs (--samples %d)",
              got, (long long)r.docs, body, o->samples);
    info->docs_used = got;
  }
fail:
  reader_free(&r);
  qs_tokenizer_free(&tok);
  if (status != QS_OK) qs_calib_free(out);
  return status;
}

qs_status qs_calib_text_stream(const struct qs_calib_text_opts *o, struct qs_ids *out, struct qs_calib_text_info *info) {
  qs_status status = QS_OK;
  struct qs_tokenizer tok = {0};
  struct reader r = {.o = o, .tok = &tok, .sep_after = 0};
  QS_TRY(qs_tokenizer_init(&tok, o->tokenizer));
  info_init(info, &tok);
  if (info->bos >= 0) QS_TRY(qs_ids_push(&r.ids, info->bos));
  QS_TRY(read_all(&r, info));
  *out = r.ids;
  r.ids = (struct qs_ids){0};
fail:
  reader_free(&r);
  qs_tokenizer_free(&tok);
  return status;
}

qs_status qs_calib_text_share(struct qs_comm *c, const struct qs_calib_text_opts *o, int vocab, struct qs_calib *out) {
  qs_status status = QS_OK;
  struct qs_calib_text_info info;
  int64_t head[3] = {0, 0, 0}; // ok, n, seqlen
  memset(out, 0, sizeof(*out));
  if (qs_comm_rank(c) == 0) {
    qs_status st = qs_calib_text_windows(o, out, &info);
    for (size_t i = 0; st == QS_OK && i < (size_t)out->n * (size_t)out->seqlen; i++)
      if (out->ids[i] < 0 || out->ids[i] >= vocab) {
        st = qs_report(QS_ERR_FORMAT, __FILE__, __LINE__, __func__, "%s: token id %d is outside the model's "
                       "vocabulary [0, %d)", info.tokenizer, out->ids[i], vocab);
      }
    head[0] = st == QS_OK, head[1] = out->n, head[2] = out->seqlen;
    if (st == QS_OK)
      qs_log0("calibration text: %lld tokens from %lld documents (%s tokenizer %s), %d windows of %d, BOS %d",
              (long long)info.stream_tokens, (long long)info.docs, qs_tokenizer_kind_name(info.kind), info.tokenizer,
              out->n, out->seqlen, info.bos);
  }
  QS_TRY(qs_comm_bcast(c, head, sizeof(head), 0));
  if (!head[0]) {
    status = QS_ERR_ARG; // rank 0 reported why
    goto fail;
  }
  if (qs_comm_rank(c) != 0) {
    out->n = (int)head[1], out->seqlen = (int)head[2];
    QS_ALLOC(out->ids, (size_t)out->n * (size_t)out->seqlen);
  }
  QS_TRY(qs_comm_bcast(c, out->ids, (size_t)out->n * (size_t)out->seqlen * sizeof(int32_t), 0));
fail:
  if (status != QS_OK) qs_calib_free(out);
  return status;
}
