// calib.c — calibration windows from an HDF5 token file (see calib.h).
#include "io/calib.h"

#include <stdlib.h>
#include <string.h>

#include "io/tokens.h"

int64_t qs_calib_offset(uint64_t seed, int64_t i, int64_t range) {
  return (int64_t)(qs_mix64(seed + (uint64_t)(i + 1) * QS_WEYL) % (uint64_t)range);
}

static qs_status calib_from_rows(const struct qs_tokens *t, int samples, int seqlen, const char *path,
                                 struct qs_calib *out) {
  qs_status status = QS_OK;
  if (t->rows > INT32_MAX || t->cols > INT32_MAX) // struct qs_calib counts them in int
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: /input_ids is [%lld, %lld]: more rows or tokens per row than calibration takes",
            path, (long long)t->rows, (long long)t->cols);
  if (seqlen > 0 && seqlen != t->cols)
    QS_FAIL(QS_ERR_ARG, "%s: /input_ids is 2-D with %lld tokens per row; --seqlen %d does not match",
            path, (long long)t->cols, seqlen);
  int n = samples > 0 ? samples : (int)t->rows;
  if (n > t->rows)
    QS_FAIL(QS_ERR_ARG, "%s: --samples %d but the file has %lld rows", path, n, (long long)t->rows);
  out->n = n;
  out->seqlen = (int)t->cols;
  QS_ALLOC(out->ids, (size_t)n * (size_t)t->cols);
  memcpy(out->ids, t->ids, (size_t)n * (size_t)t->cols * sizeof(int32_t));
fail:
  return status;
}

static qs_status calib_from_stream(const struct qs_tokens *t, int samples, int seqlen, uint64_t seed,
                                   const char *path, struct qs_calib *out) {
  qs_status status = QS_OK;
  int64_t len = t->cols;
  if (samples <= 0 || seqlen <= 0)
    QS_FAIL(QS_ERR_ARG, "%s: a 1-D token stream needs --samples N and --seqlen L", path);
  if (len < seqlen)
    QS_FAIL(QS_ERR_ARG, "%s: stream of %lld tokens is shorter than --seqlen %d", path, (long long)len, seqlen);
  out->n = samples;
  out->seqlen = seqlen;
  QS_ALLOC(out->ids, (size_t)samples * (size_t)seqlen);
  QS_ALLOC(out->offsets, samples);
  for (int i = 0; i < samples; i++) {
    int64_t o = qs_calib_offset(seed, i, len - seqlen + 1);
    out->offsets[i] = o;
    memcpy(out->ids + (size_t)i * seqlen, t->ids + o, (size_t)seqlen * sizeof(int32_t));
  }
fail:
  return status;
}

qs_status qs_calib_load(const char *path, int samples, int seqlen, uint64_t seed, int vocab,
                        struct qs_calib *out) {
  qs_status status = QS_OK;
  struct qs_tokens t = {0};
  memset(out, 0, sizeof(*out));
  QS_TRY(qs_tokens_read(path, NULL, &t));
  QS_TRY(qs_tokens_check(&t, vocab, path));
  if (t.ndim == 2) QS_TRY(calib_from_rows(&t, samples, seqlen, path, out));
  else QS_TRY(calib_from_stream(&t, samples, seqlen, seed, path, out));
fail:
  qs_tokens_free(&t);
  if (status != QS_OK) qs_calib_free(out);
  return status;
}

void qs_calib_free(struct qs_calib *c) {
  free(c->ids);
  free(c->offsets);
  memset(c, 0, sizeof(*c));
}
