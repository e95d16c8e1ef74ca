// ggml_rows.c — qshard's ggml references (quant/grid_ggml.h) as a command, for tests/py/ggml_oracle.py,
// which runs llama.cpp's own quantizer on the same input and compares the bytes. Files are raw
// little-endian arrays, rows back to back:
//   ggml_rows types                                   one line per type qshard writes:
//                                                     "<id> <name> <block elems> <block bytes>"
//   ggml_rows quantize TYPE N IN.f32 OUT [IMP.f32]    IN: float32 rows of N; IMP: N float32 (one weight
//                                                     per column, as an imatrix row); OUT: the blocks
//   ggml_rows dequant TYPE N IN OUT.f32               blocks of rows of N -> float32
// TYPE is a name (q4_0, Q4_K, ...) or a ggml type id. Exit 0 on success, 1 on an error (printed).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/qs_common.h"
#include "quant/grid_ggml.h"

static int parse_type(const char *s) {
  char *end;
  long id = strtol(s, &end, 10);
  if (*s && !*end) return (int)id;
  return qs_ggml_type_from_name(s);
}

static qs_status read_exact(const char *path, size_t unit, char **data, size_t *count) {
  qs_status status = QS_OK;
  size_t size = 0;
  QS_TRY(qs_file_read_all(path, data, &size));
  if (size % unit) QS_FAIL(QS_ERR_FORMAT, "%s: %zu bytes is not a whole number of %zu-byte rows", path, size, unit);
  *count = size / unit;
fail:
  return status;
}

// One call per row, as qshard's writer quantizes: the imatrix row is the same for every row.
static qs_status run_quantize(int type, int64_t n, const char *in, const char *out, const char *imp_path) {
  qs_status status = QS_OK;
  char *x = NULL, *imp = NULL, *y = NULL;
  size_t rows = 0, imp_rows = 0;
  const int64_t row_bytes = qs_ggml_row_size(type, n);
  if (row_bytes <= 0) QS_FAIL(QS_ERR_ARG, "type %d: no whole blocks in a row of %lld", type, (long long)n);
  QS_TRY(read_exact(in, (size_t)n * sizeof(float), &x, &rows));
  if (imp_path) {
    QS_TRY(read_exact(imp_path, (size_t)n * sizeof(float), &imp, &imp_rows));
    if (imp_rows != 1) QS_FAIL(QS_ERR_ARG, "%s: %zu rows of importance, want 1", imp_path, imp_rows);
  }
  QS_ALLOC(y, rows * (size_t)row_bytes);
  for (size_t r = 0; r < rows; r++)
    QS_TRY(qs_ggml_quantize_row_ref(type, (const float *)x + r * (size_t)n, (const float *)imp, n,
                                    y + r * (size_t)row_bytes));
  QS_TRY(qs_file_write_all(out, y, rows * (size_t)row_bytes));
fail:
  free(x);
  free(imp);
  free(y);
  return status;
}

static qs_status run_dequant(int type, int64_t n, const char *in, const char *out) {
  qs_status status = QS_OK;
  char *q = NULL;
  float *y = NULL;
  size_t rows = 0;
  const int64_t row_bytes = qs_ggml_row_size(type, n);
  if (row_bytes <= 0) QS_FAIL(QS_ERR_ARG, "type %d: no whole blocks in a row of %lld", type, (long long)n);
  QS_TRY(read_exact(in, (size_t)row_bytes, &q, &rows));
  QS_ALLOC(y, rows * (size_t)n);
  for (size_t r = 0; r < rows; r++)
    QS_TRY(qs_ggml_dequant_row_ref(type, q + r * (size_t)row_bytes, n, y + r * (size_t)n));
  QS_TRY(qs_file_write_all(out, y, rows * (size_t)n * sizeof(float)));
fail:
  free(q);
  free(y);
  return status;
}

int main(int argc, char **argv) {
  const char *usage = "usage: ggml_rows types | quantize TYPE N IN.f32 OUT [IMP.f32] | dequant TYPE N IN OUT.f32\n";
  if (argc == 2 && !strcmp(argv[1], "types")) {
    for (int t = 0; t < QS_GGML_TYPE_MAX; t++)
      if (qs_ggml_can_quantize(t))
        printf("%d %s %d %d\n", t, qs_ggml_type_name(t), qs_ggml_blck_size(t), qs_ggml_type_size(t));
    return 0;
  }
  const int quantize = argc >= 6 && argc <= 7 && !strcmp(argv[1], "quantize");
  const int dequant = argc == 6 && !strcmp(argv[1], "dequant");
  if (!quantize && !dequant) {
    fputs(usage, stderr);
    return 2;
  }
  const int type = parse_type(argv[2]);
  const int64_t n = strtoll(argv[3], NULL, 10);
  qs_status st = quantize ? run_quantize(type, n, argv[4], argv[5], argc == 7 ? argv[6] : NULL)
                          : run_dequant(type, n, argv[4], argv[5]);
  return st == QS_OK ? 0 : 1;
}
