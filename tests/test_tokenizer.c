// test_tokenizer.c — the C tokenizer (io/tokenizer.h) as a tool for tests/py/tok_compare.py, which
// compares its ids with the sentencepiece and tokenizers packages (tests/tok.cmake), and its speed:
//   test_tokenizer info TOKENIZER                  {"kind", "n_vocab", "bos", "eos", "add_bos"} on stdout
//   test_tokenizer encode TOKENIZER TEXT OUT.i32   the ids of the whole file, int32 little-endian
//   test_tokenizer cases TOKENIZER IN.json OUT.json  a JSON array of strings -> a JSON array of id arrays
//   test_tokenizer bench TOKENIZER TEXT [REPEATS]  best-of-REPEATS encode time of the file (one core)
//   test_tokenizer h5show FILE.h5                 "ndim rows cols first-column" of /input_ids (first-column:
//                                                 the id every row starts with, or -1 when they differ)
//   test_tokenizer h5cmp A.h5 B.h5                exit 0 when both /input_ids have the same shape and ids
// TOKENIZER is a model directory or a tokenizer file (tokenizer.h qs_tokenizer_init).
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/tokenizer.h"
#include "io/tokens.h"

static int encode_file(const struct qs_tokenizer *t, const char *path, struct qs_ids *ids, size_t *bytes) {
  char *text = NULL;
  size_t n = 0;
  if (qs_file_read_all(path, &text, &n) != QS_OK) return 1;
  int rc = qs_tokenizer_encode(t, text, n, ids) != QS_OK;
  free(text);
  *bytes = n;
  return rc;
}

static int cases(const struct qs_tokenizer *t, const char *in, const char *out) {
  json_error_t err;
  json_t *list = json_load_file(in, 0, &err), *res = json_array();
  int rc = 1;
  if (!list || !res) { fprintf(stderr, "%s: %s\n", in, err.text); goto done; }
  for (size_t i = 0; i < json_array_size(list); i++) {
    const json_t *s = json_array_get(list, i);
    struct qs_ids ids = {0};
    json_t *a = json_array();
    if (!json_is_string(s) || !a) goto done;
    if (qs_tokenizer_encode(t, json_string_value(s), json_string_length(s), &ids) != QS_OK) { json_decref(a); goto done; }
    for (size_t j = 0; j < ids.n; j++) json_array_append_new(a, json_integer(ids.v[j]));
    json_array_append_new(res, a);
    qs_ids_free(&ids);
  }
  rc = json_dump_file(res, out, 0) != 0;
done:
  json_decref(list);
  json_decref(res);
  return rc;
}

static int h5_tools(int argc, char **argv) {
  struct qs_tokens a = {0}, b = {0};
  int rc = 1;
  if (!strcmp(argv[1], "h5show") && argc == 3) {
    if (qs_tokens_read(argv[2], NULL, &a) != QS_OK) return 1;
    int32_t first = a.ids && a.rows ? a.ids[0] : -1;
    for (int64_t r = 0; r < a.rows && a.ndim == 2; r++)
      if (a.ids[r * a.cols] != first) first = -1;
    printf("%d %lld %lld %d\n", a.ndim, (long long)a.rows, (long long)a.cols, first);
    rc = 0;
  } else if (qs_tokens_read(argv[2], NULL, &a) == QS_OK && qs_tokens_read(argv[3], NULL, &b) == QS_OK) {
    size_t n = (size_t)a.rows * (size_t)a.cols, i = 0;
    if (a.ndim != b.ndim || a.rows != b.rows || a.cols != b.cols) {
      fprintf(stderr, "h5cmp: shapes differ: %d-D [%lld, %lld] vs %d-D [%lld, %lld]\n", a.ndim, (long long)a.rows,
              (long long)a.cols, b.ndim, (long long)b.rows, (long long)b.cols);
    } else {
      while (i < n && a.ids[i] == b.ids[i]) i++;
      if (i < n) fprintf(stderr, "h5cmp: first difference at %zu: %d vs %d\n", i, a.ids[i], b.ids[i]);
      rc = i < n;
    }
  }
  qs_tokens_free(&a);
  qs_tokens_free(&b);
  return rc;
}

int main(int argc, char **argv) {
  struct qs_tokenizer t;
  struct qs_ids ids = {0};
  size_t bytes = 0;
  int rc = 1;
  if (argc < 3) {
    fprintf(stderr, "usage: test_tokenizer info|encode|cases|bench TOKENIZER [ARGS]\n");
    return 2;
  }
  if ((!strcmp(argv[1], "h5show") && argc == 3) || (!strcmp(argv[1], "h5cmp") && argc == 4)) return h5_tools(argc, argv);
  if (qs_tokenizer_init(&t, argv[2]) != QS_OK) return 1;
  if (!strcmp(argv[1], "info")) {
    printf("{\"kind\": \"%s\", \"n_vocab\": %d, \"bos\": %d, \"eos\": %d, \"add_bos\": %d}\n",
           qs_tokenizer_kind_name(t.kind), t.n_vocab, t.bos, t.eos, t.add_bos);
    rc = 0;
  } else if (!strcmp(argv[1], "encode") && argc == 5) {
    FILE *f = NULL;
    if (!(rc = encode_file(&t, argv[3], &ids, &bytes))) {
      rc = !(f = fopen(argv[4], "wb")) || fwrite(ids.v, sizeof(int32_t), ids.n, f) != ids.n;
      if (f && fclose(f)) rc = 1;
      if (rc) fprintf(stderr, "%s: write failed\n", argv[4]);
    }
  } else if (!strcmp(argv[1], "cases") && argc == 5) {
    rc = cases(&t, argv[3], argv[4]);
  } else if (!strcmp(argv[1], "bench") && argc >= 4) {
    int repeats = argc > 4 ? atoi(argv[4]) : 3;
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
      double t0 = qs_time_now();
      ids.n = 0;
      if ((rc = encode_file(&t, argv[3], &ids, &bytes))) break;
      double dt = qs_time_now() - t0;
      if (dt < best) best = dt;
    }
    if (!rc)
      printf("bench %s: %zu bytes -> %zu tokens in %.3f s (best of %d, file read included), %.2f MB/s\n",
             qs_tokenizer_kind_name(t.kind), bytes, ids.n, best, repeats, bytes / best / 1e6);
  } else {
    fprintf(stderr, "test_tokenizer: unknown mode or wrong arguments\n");
    rc = 2;
  }
  qs_ids_free(&ids);
  qs_tokenizer_free(&t);
  return rc;
}
