// test_tokens.c — HDF5 token streams (src/io/tokens.c): round trips, type conversion, error cases.
// Run: ctest -L unit -R tokens. Also a tool for tests/test_eval.sh that crafts inputs:
//   test_tokens --write-bad PATH VOCAB   1-D stream of 2048 valid ids with id VOCAB at position 1000
//   test_tokens --write-float PATH       a float32 /input_ids
//   test_tokens --reshape IN OUT COLS    1-D stream of IN -> 2-D [n / COLS, COLS] in OUT
#include <fcntl.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qs_test.h"
#include "io/tokens.h"

// ---- stderr capture: the error messages are part of the contract (they name file and position) ----
static char g_err[8192];
static int g_saved_fd = -1;
static char g_err_path[256];

static void capture_begin(void) {
  fflush(stderr);
  snprintf(g_err_path, sizeof(g_err_path), "/tmp/test_tokens_err.%ld", (long)getpid());
  int fd = open(g_err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) { perror(g_err_path); exit(1); }
  g_saved_fd = dup(2);
  dup2(fd, 2);
  close(fd);
}

static const char *capture_end(void) {
  fflush(stderr);
  dup2(g_saved_fd, 2);
  close(g_saved_fd);
  FILE *f = fopen(g_err_path, "r");
  size_t n = f ? fread(g_err, 1, sizeof(g_err) - 1, f) : 0;
  g_err[n] = '\0';
  if (f) fclose(f);
  unlink(g_err_path);
  fprintf(stderr, "  (captured) %s", g_err);
  return g_err;
}

// ---- raw HDF5 writers for inputs qs_tokens_write cannot make ----------------------------------
static void h5_write_raw(const char *path, const char *dset, hid_t file_type, hid_t mem_type, int ndim,
                         const hsize_t *dims, const void *data) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t s = H5Screate_simple(ndim, dims, NULL);
  hid_t d = H5Dcreate2(f, dset, file_type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0 || s < 0 || d < 0 || H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    fprintf(stderr, "cannot write test file %s\n", path);
    exit(1);
  }
  H5Dclose(d);
  H5Sclose(s);
  H5Fclose(f);
}

static void test_round_trip(const char *dir) {
  char path[512];
  snprintf(path, sizeof(path), "%s/rt1.h5", dir);
  int32_t ids[12];
  for (int i = 0; i < 12; i++) ids[i] = i * 1000003 - 5; // negative and large values survive
  struct qs_tokens t;
  CHECK(qs_tokens_write(path, NULL, ids, 1, 12, 1) == QS_OK);
  CHECK(qs_tokens_read(path, NULL, &t) == QS_OK);
  CHECK_EQ_INT(t.ndim, 1);
  CHECK_EQ_INT(t.rows, 1);
  CHECK_EQ_INT(t.cols, 12);
  CHECK(t.ids && memcmp(t.ids, ids, sizeof(ids)) == 0);
  qs_tokens_free(&t);
  // 2-D, in a nested dataset path (parent groups created), and no temporary left behind.
  snprintf(path, sizeof(path), "%s/rt2.h5", dir);
  CHECK(qs_tokens_write(path, "/calib/input_ids", ids, 3, 4, 2) == QS_OK);
  CHECK(qs_tokens_read(path, "/calib/input_ids", &t) == QS_OK);
  CHECK_EQ_INT(t.ndim, 2);
  CHECK_EQ_INT(t.rows, 3);
  CHECK_EQ_INT(t.cols, 4);
  CHECK(t.ids && memcmp(t.ids, ids, sizeof(ids)) == 0);
  qs_tokens_free(&t);
  char tmp[600];
  snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
  CHECK(access(tmp, F_OK) != 0);
  // Bad shapes are refused before anything is created.
  CHECK(qs_tokens_write(path, NULL, ids, 2, 6, 1) == QS_ERR_ARG);
  CHECK(qs_tokens_write(path, NULL, ids, 2, 6, 3) == QS_ERR_ARG);
}

// Other integer types are converted; a value outside int32 is an error, not a silent clip.
static void test_conversion(const char *dir) {
  char path[512];
  struct qs_tokens t;
  snprintf(path, sizeof(path), "%s/u16.h5", dir);
  uint16_t u16[5] = {0, 1, 511, 40000, 65535};
  hsize_t d5[1] = {5};
  h5_write_raw(path, "/input_ids", H5T_STD_U16BE, H5T_NATIVE_UINT16, 1, d5, u16);
  CHECK(qs_tokens_read(path, NULL, &t) == QS_OK);
  CHECK(t.ids && t.ids[3] == 40000 && t.ids[4] == 65535 && t.ids[2] == 511);
  qs_tokens_free(&t);

  snprintf(path, sizeof(path), "%s/i64.h5", dir);
  int64_t i64[4] = {7, -3, INT32_MAX, INT32_MIN};
  hsize_t d4[1] = {4};
  h5_write_raw(path, "/input_ids", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, d4, i64);
  CHECK(qs_tokens_read(path, NULL, &t) == QS_OK);
  CHECK(t.ids && t.ids[0] == 7 && t.ids[1] == -3 && t.ids[2] == INT32_MAX && t.ids[3] == INT32_MIN);
  qs_tokens_free(&t);

  i64[2] = (int64_t)INT32_MAX + 1;
  h5_write_raw(path, "/input_ids", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, d4, i64);
  capture_begin();
  qs_status st = qs_tokens_read(path, NULL, &t);
  const char *msg = capture_end();
  CHECK(st == QS_ERR_FORMAT);
  CHECK(strstr(msg, path) && strstr(msg, "2147483648"));
  CHECK(t.ids == NULL);
}

// Reads `path`:`dset` expecting status `want` and a message that names the file and contains `what`.
static void expect_read_error(const char *path, const char *dset, qs_status want, const char *what) {
  struct qs_tokens t;
  capture_begin();
  qs_status st = qs_tokens_read(path, dset, &t);
  const char *msg = capture_end();
  CHECK_EQ_INT(st, want);
  CHECK(strstr(msg, path) != NULL);
  CHECK(strstr(msg, what) != NULL);
  CHECK(t.ids == NULL && t.rows == 0 && t.cols == 0);
}

static void test_errors(const char *dir) {
  char path[512], good[512];
  snprintf(path, sizeof(path), "%s/missing.h5", dir);
  expect_read_error(path, NULL, QS_ERR_IO, "No such file");

  snprintf(good, sizeof(good), "%s/good.h5", dir);
  int32_t ids[4] = {1, 2, 3, 4};
  CHECK(qs_tokens_write(good, NULL, ids, 1, 4, 1) == QS_OK);
  expect_read_error(good, "/nope", QS_ERR_FORMAT, "/nope");
  expect_read_error(good, "/a/b/c", QS_ERR_FORMAT, "/a/b/c");

  snprintf(path, sizeof(path), "%s/float.h5", dir);
  float fl[4] = {1, 2, 3, 4};
  hsize_t d4[1] = {4};
  h5_write_raw(path, "/input_ids", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, d4, fl);
  expect_read_error(path, NULL, QS_ERR_FORMAT, "integers");

  snprintf(path, sizeof(path), "%s/rank3.h5", dir);
  int32_t cube[8] = {0};
  hsize_t d3[3] = {2, 2, 2};
  h5_write_raw(path, "/input_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 3, d3, cube);
  expect_read_error(path, NULL, QS_ERR_UNSUPPORTED, "rank 3");

  snprintf(path, sizeof(path), "%s/not_hdf5.h5", dir);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f) { fputs("this is not an HDF5 file\n", f); fclose(f); }
  expect_read_error(path, NULL, QS_ERR_FORMAT, "not a readable HDF5 file");
}

static void test_check(void) {
  int32_t ids[6] = {0, 5, 511, 3, 2, 1};
  struct qs_tokens t = {.ids = ids, .rows = 1, .cols = 6, .ndim = 1};
  CHECK(qs_tokens_check(&t, 512, "s.h5") == QS_OK);
  ids[4] = 512; // == vocab: out of range
  capture_begin();
  qs_status st = qs_tokens_check(&t, 512, "s.h5");
  const char *msg = capture_end();
  CHECK(st == QS_ERR_FORMAT);
  CHECK(strstr(msg, "s.h5") && strstr(msg, "id 512") && strstr(msg, "position 4"));
  ids[4] = 2;
  ids[1] = -7;
  t.rows = 2, t.cols = 3, t.ndim = 2;
  capture_begin();
  st = qs_tokens_check(&t, 512, "m.h5");
  msg = capture_end();
  CHECK(st == QS_ERR_FORMAT);
  CHECK(strstr(msg, "m.h5") && strstr(msg, "id -7") && strstr(msg, "position 1") && strstr(msg, "row 0"));
}

// ---- tool modes for test_eval.sh -------------------------------------------------------------
static int tool_main(int argc, char **argv) {
  if (!strcmp(argv[1], "--write-bad") && argc == 4) {
    int vocab = atoi(argv[3]);
    int32_t ids[2048];
    for (int i = 0; i < 2048; i++) ids[i] = i % (vocab > 1 ? vocab - 1 : 1);
    ids[1000] = vocab;
    return qs_tokens_write(argv[2], NULL, ids, 1, 2048, 1) == QS_OK ? 0 : 1;
  }
  if (!strcmp(argv[1], "--write-float") && argc == 3) {
    float fl[2048] = {0};
    hsize_t d[1] = {2048};
    h5_write_raw(argv[2], "/input_ids", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, d, fl);
    return 0;
  }
  if (!strcmp(argv[1], "--reshape") && argc == 5) {
    struct qs_tokens t;
    long cols = atol(argv[4]);
    if (cols <= 0 || qs_tokens_read(argv[2], NULL, &t) != QS_OK || t.ndim != 1) return 1;
    int rc = qs_tokens_write(argv[3], NULL, t.ids, t.cols / cols, cols, 2) == QS_OK ? 0 : 1;
    qs_tokens_free(&t);
    return rc;
  }
  fprintf(stderr, "usage: test_tokens [--write-bad PATH VOCAB | --write-float PATH | --reshape IN OUT COLS]\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc > 1) return tool_main(argc, argv);
  char dir[] = "/tmp/test_tokens.XXXXXX";
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
  test_round_trip(dir);
  test_conversion(dir);
  test_errors(dir);
  test_check();
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
  return qs_test_finish("test_tokens");
}
