// test_gguf_io.c — the GGUF container (src/io/gguf.c) and GGUF vocabularies (src/io/vocab.c).
// Run: ctest -R gguf   (or ./test_gguf_io [--data] / ./test_gguf_io --write FILE)
//   (no args)     writer -> reader round trip of every value type, alignment and offsets, identical
//                 files whatever order / threads write the tensors, the writer's and the reader's
//                 refusals (each with its message), a crafted Llama-3-style tokenizer.json directory
//   --data        the shared data ($QS_DATA_DIR; skips when unset): ggml-vocab-llama-spm.gguf against
//                 the vocabulary read from llama2-tokenizer.model (tokens, scores, types), and its
//                 tokenizer.* keys against those written for a Llama-2 HF directory made around that
//                 tokenizer.model; stories260K's tok512.bin; gutenberg28M's tokenizer.model
//   --write FILE  the known file, for tests/py/gguf_reader.py (same values there)
// Values and bytes are compared exactly: the container copies bytes and must not change any.
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qs_test.h"
#include "io/ggml_types.h"
#include "io/gguf.h"
#include "io/vocab.h"

static char g_tmp[256];

static char *tmp_path(const char *name) {
  char *p = qs_path_join(g_tmp, name);
  if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
  return p;
}

// ---- stderr capture: the refusals are checked by their messages -----------------------------------

static char g_err[8192];
static int g_saved_fd = -1;

static void capture_begin(void) {
  char *p = tmp_path("stderr.txt");
  fflush(stderr);
  g_saved_fd = dup(2);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (g_saved_fd < 0 || fd < 0 || dup2(fd, 2) < 0) { perror("capture"); exit(1); }
  close(fd);
  free(p);
}

static void capture_end(void) {
  char *p = tmp_path("stderr.txt");
  fflush(stderr);
  dup2(g_saved_fd, 2);
  close(g_saved_fd);
  FILE *f = fopen(p, "rb");
  size_t n = f ? fread(g_err, 1, sizeof(g_err) - 1, f) : 0;
  g_err[n] = '\0';
  if (f) fclose(f);
  free(p);
}

// The last call's message contains `needle` (printed either way, so the log shows every message).
#define CHECK_MSG(needle)                                                                 \
  do {                                                                                    \
    const char *nl_ = strchr(g_err, '\n');                                                \
    printf("  message: %.*s\n", nl_ ? (int)(nl_ - g_err) : (int)strlen(g_err), g_err);    \
    CHECK(strstr(g_err, needle) != NULL);                                                 \
  } while (0)

// ---- the known file (values also in tests/py/gguf_reader.py) ------------------------------------

struct known_tensor {
  const char *name;
  int type, n_dims;
  int64_t ne[4];
};
static const struct known_tensor k_tensors[] = {
    {"t.f32", QS_GGML_F32, 2, {3, 2, 1, 1}},      {"t.q8_0", QS_GGML_Q8_0, 2, {64, 2, 1, 1}},
    {"t.q4_k", QS_GGML_Q4_K, 4, {256, 1, 1, 2}},  {"t.i8", QS_GGML_I8, 1, {5, 1, 1, 1}},
    {"t.f16", QS_GGML_F16, 2, {1, 3, 1, 1}},      {"t.empty", QS_GGML_F32, 2, {0, 4, 1, 1}},
};
enum { N_TENSORS = sizeof(k_tensors) / sizeof(k_tensors[0]) };

// Byte j of tensor i: F32 holds (j - 2) * 0.5 per element, every other type the byte pattern.
static void known_fill(int i, unsigned char *dst, uint64_t n) {
  if (k_tensors[i].type == QS_GGML_F32) {
    for (uint64_t e = 0; e < n / 4; e++) {
      float x = ((float)e - 2.0f) * 0.5f;
      memcpy(dst + 4 * e, &x, 4);
    }
    return;
  }
  for (uint64_t j = 0; j < n; j++) dst[j] = (unsigned char)(i * 31 + j * 7 + 1);
}

static const uint8_t k_arr_u8[] = {1, 2, 255};
static const int8_t k_arr_i8[] = {-1, 127};
static const uint16_t k_arr_u16[] = {65535};
static const int16_t k_arr_i16[] = {-2};
static const uint32_t k_arr_u32[] = {0, 4294967295u};
static const int32_t k_arr_i32[] = {-7, 0, 7};
static const uint64_t k_arr_u64[] = {9223372036854775808ull};
static const int64_t k_arr_i64[] = {-1};
static const float k_arr_f32[] = {0.5f, -0.25f};
static const double k_arr_f64[] = {1e-300};
static const uint8_t k_arr_bool[] = {1, 0, 1};
static const char *const k_arr_str[] = {"a", "", "\xc3\xbc\xe2\x96\x81"};

// The KVs in file order; general.alignment 64 exercises a non-default alignment.
static qs_status known_kvs(struct qs_gguf_writer *w) {
  qs_status status = QS_OK;
  QS_TRY(qs_gguf_writer_set_string(w, "general.architecture", "llama"));
  QS_TRY(qs_gguf_writer_set_u32(w, "general.alignment", 64));
  QS_TRY(qs_gguf_writer_set_u8(w, "test.u8", 200));
  QS_TRY(qs_gguf_writer_set_i8(w, "test.i8", -100));
  QS_TRY(qs_gguf_writer_set_u16(w, "test.u16", 60000));
  QS_TRY(qs_gguf_writer_set_i16(w, "test.i16", -30000));
  QS_TRY(qs_gguf_writer_set_u32(w, "test.u32", 4000000000u));
  QS_TRY(qs_gguf_writer_set_i32(w, "test.i32", -2000000000));
  QS_TRY(qs_gguf_writer_set_u64(w, "test.u64", 10000000000000000000ull));
  QS_TRY(qs_gguf_writer_set_i64(w, "test.i64", -9000000000000000000ll));
  QS_TRY(qs_gguf_writer_set_f32(w, "test.f32", 0.15625f));
  QS_TRY(qs_gguf_writer_set_f64(w, "test.f64", -2.5e300));
  QS_TRY(qs_gguf_writer_set_bool(w, "test.bool", 1));
  QS_TRY(qs_gguf_writer_set_bool(w, "test.bool_false", 0));
  QS_TRY(qs_gguf_writer_set_string(w, "test.str", "h\xc3\xa9llo \xe2\x96\x81 world"));
  QS_TRY(qs_gguf_writer_set_string(w, "test.empty", ""));
  QS_TRY(qs_gguf_writer_set_array(w, "test.arr.u8", QS_GGUF_U8, k_arr_u8, 3));
  QS_TRY(qs_gguf_writer_set_array(w, "test.arr.i8", QS_GGUF_I8, k_arr_i8, 2));
  QS_TRY(qs_gguf_writer_set_array(w, "test.arr.u16", QS_GGUF_U16, k_arr_u16, 1));
  QS_TRY(qs_gguf_writer_set_array(w, "test.arr.i16", QS_GGUF_I16, k_arr_i16, 1));
  QS_TRY(qs_gguf_writer_set_array(w, "test.arr.u32", QS_GGUF_U32, k_arr_u32, 2));
  QS_TRY(qs_gguf_writer_set_array(w, "test.arr.i32", QS_GGUF_I32, k_arr_i32, 3));
  QS_TRY(qs_gguf_writer_set_array(w, "test.arr.u64", QS_GGUF_U64, k_arr_u64, 1));
  QS_TRY(qs_gguf_writer_set_array(w, "test.arr.i64", QS_GGUF_I64, k_arr_i64, 1));
  QS_TRY(qs_gguf_writer_set_array(w, "test.arr.f32", QS_GGUF_F32, k_arr_f32, 2));
  QS_TRY(qs_gguf_writer_set_array(w, "test.arr.f64", QS_GGUF_F64, k_arr_f64, 1));
  QS_TRY(qs_gguf_writer_set_array(w, "test.arr.bool", QS_GGUF_BOOL, k_arr_bool, 3));
  QS_TRY(qs_gguf_writer_set_array(w, "test.arr.empty", QS_GGUF_I32, NULL, 0));
  QS_TRY(qs_gguf_writer_set_array_string(w, "test.arr.str", k_arr_str, 3));
fail:
  return status;
}

// How the tensor data reaches the writer: in order, reversed, or in two parts per tensor from
// several threads in a shuffled order.
enum write_mode { WRITE_IN_ORDER, WRITE_REVERSED, WRITE_THREADS };

struct part_job {
  struct qs_gguf_writer *w;
  int first, step; // this thread's share of the (tensor, half) jobs
  qs_status status;
};

static void *part_thread(void *arg) {
  struct part_job *j = arg;
  // 2 * N_TENSORS jobs visited in a fixed permutation: (k * 7) mod 12 covers 0..11.
  for (int k = j->first; k < 2 * N_TENSORS; k += j->step) {
    int job = (k * 7) % (2 * N_TENSORS), i = job / 2, half = job % 2;
    uint64_t n = qs_gguf_writer_tensor_bytes(j->w, (size_t)i), cut = n / 2 / 4 * 4;
    unsigned char *buf = malloc(n ? n : 1);
    known_fill(i, buf, n);
    uint64_t b = half ? cut : 0, e = half ? n : cut;
    qs_status st = qs_gguf_writer_write_part(j->w, (size_t)i, b, buf + b, e - b);
    if (st != QS_OK) j->status = st;
    free(buf);
  }
  return NULL;
}

static qs_status write_known(const char *path, enum write_mode mode) {
  qs_status status = QS_OK;
  struct qs_gguf_writer *w = NULL;
  unsigned char *buf = NULL;
  QS_TRY(qs_gguf_writer_init(&w));
  QS_TRY(known_kvs(w));
  for (int i = 0; i < N_TENSORS; i++) {
    size_t idx;
    QS_TRY(
        qs_gguf_writer_add_tensor(w, k_tensors[i].name, k_tensors[i].type, k_tensors[i].n_dims, k_tensors[i].ne, &idx));
    if (idx != (size_t)i) QS_FAIL(QS_ERR_INTERNAL, "index %zu for tensor %d", idx, i);
  }
  QS_TRY(qs_gguf_writer_open(w, path));
  if (mode == WRITE_THREADS) {
    pthread_t th[3];
    struct part_job jobs[3];
    for (int t = 0; t < 3; t++) {
      jobs[t] = (struct part_job){w, t, 3, QS_OK};
      pthread_create(&th[t], NULL, part_thread, &jobs[t]);
    }
    for (int t = 0; t < 3; t++) {
      pthread_join(th[t], NULL);
      if (jobs[t].status != QS_OK) status = jobs[t].status;
    }
    QS_TRY(status);
  } else {
    for (int k = 0; k < N_TENSORS; k++) {
      int i = mode == WRITE_REVERSED ? N_TENSORS - 1 - k : k;
      uint64_t n = qs_gguf_writer_tensor_bytes(w, (size_t)i);
      free(buf);
      QS_ALLOC(buf, n);
      known_fill(i, buf, n);
      QS_TRY(qs_gguf_writer_write_tensor(w, (size_t)i, buf, n));
    }
  }
  QS_TRY(qs_gguf_writer_commit(w));
fail:
  free(buf);
  qs_gguf_writer_free(w);
  return status;
}

// ---- round trip ----------------------------------------------------------------------------------

static void check_known_kvs(const struct qs_gguf_file *f) {
  uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
  uint64_t u64, n; int64_t i64; float f32; double f64; int b; const char *s; const void *d;
  const char *const *strs;
  CHECK_EQ_INT(f->n_kv, 29);
  CHECK(qs_gguf_get_string(f, "general.architecture", &s) == QS_OK && !strcmp(s, "llama"));
  CHECK(qs_gguf_get_u32(f, "general.alignment", &u32) == QS_OK && u32 == 64);
  CHECK(qs_gguf_get_u8(f, "test.u8", &u8) == QS_OK && u8 == 200);
  CHECK(qs_gguf_get_i8(f, "test.i8", &i8) == QS_OK && i8 == -100);
  CHECK(qs_gguf_get_u16(f, "test.u16", &u16) == QS_OK && u16 == 60000);
  CHECK(qs_gguf_get_i16(f, "test.i16", &i16) == QS_OK && i16 == -30000);
  CHECK(qs_gguf_get_u32(f, "test.u32", &u32) == QS_OK && u32 == 4000000000u);
  CHECK(qs_gguf_get_i32(f, "test.i32", &i32) == QS_OK && i32 == -2000000000);
  CHECK(qs_gguf_get_u64(f, "test.u64", &u64) == QS_OK && u64 == 10000000000000000000ull);
  CHECK(qs_gguf_get_i64(f, "test.i64", &i64) == QS_OK && i64 == -9000000000000000000ll);
  CHECK(qs_gguf_get_f32(f, "test.f32", &f32) == QS_OK && f32 == 0.15625f);
  CHECK(qs_gguf_get_f64(f, "test.f64", &f64) == QS_OK && f64 == -2.5e300);
  CHECK(qs_gguf_get_bool(f, "test.bool", &b) == QS_OK && b == 1);
  CHECK(qs_gguf_get_bool(f, "test.bool_false", &b) == QS_OK && b == 0);
  CHECK(qs_gguf_get_string(f, "test.str", &s) == QS_OK && !strcmp(s, "h\xc3\xa9llo \xe2\x96\x81 world"));
  CHECK(qs_gguf_get_string(f, "test.empty", &s) == QS_OK && !strcmp(s, ""));
#define ARR(key, T, ref, cnt)                                                                            \
  CHECK(qs_gguf_get_array(f, key, T, &d, &n) == QS_OK && n == (cnt) && !memcmp(d, ref, sizeof(ref)));
  ARR("test.arr.u8", QS_GGUF_U8, k_arr_u8, 3)
  ARR("test.arr.i8", QS_GGUF_I8, k_arr_i8, 2)
  ARR("test.arr.u16", QS_GGUF_U16, k_arr_u16, 1)
  ARR("test.arr.i16", QS_GGUF_I16, k_arr_i16, 1)
  ARR("test.arr.u32", QS_GGUF_U32, k_arr_u32, 2)
  ARR("test.arr.i32", QS_GGUF_I32, k_arr_i32, 3)
  ARR("test.arr.u64", QS_GGUF_U64, k_arr_u64, 1)
  ARR("test.arr.i64", QS_GGUF_I64, k_arr_i64, 1)
  ARR("test.arr.f32", QS_GGUF_F32, k_arr_f32, 2)
  ARR("test.arr.f64", QS_GGUF_F64, k_arr_f64, 1)
  ARR("test.arr.bool", QS_GGUF_BOOL, k_arr_bool, 3)
#undef ARR
  CHECK(qs_gguf_get_array(f, "test.arr.empty", QS_GGUF_I32, &d, &n) == QS_OK && n == 0);
  CHECK(qs_gguf_get_array_string(f, "test.arr.str", &strs, &n) == QS_OK && n == 3 && !strcmp(strs[0], "a") &&
        !strcmp(strs[1], "") && !strcmp(strs[2], k_arr_str[2]));
  const struct qs_gguf_kv *kv = qs_gguf_find_kv(f, "test.arr.str");
  CHECK(kv && kv->type == QS_GGUF_ARRAY && kv->elem == QS_GGUF_STRING && kv->lens[2] == 5);
  kv = qs_gguf_find_kv(f, "test.bool");
  CHECK(kv && kv->type == QS_GGUF_BOOL && kv->n == 1);
  CHECK(qs_gguf_find_kv(f, "test.nope") == NULL);
  // Wrong types and missing keys: errors naming the key and both types.
  capture_begin();
  qs_status st = qs_gguf_get_i32(f, "test.u32", &i32);
  capture_end();
  CHECK_EQ_INT(st, QS_ERR_FORMAT);
  CHECK_MSG("key 'test.u32' has type u32, expected i32");
  capture_begin();
  st = qs_gguf_get_array(f, "test.arr.f32", QS_GGUF_F64, &d, &n);
  capture_end();
  CHECK_EQ_INT(st, QS_ERR_FORMAT);
  CHECK_MSG("key 'test.arr.f32' has type arr[f32], expected arr[f64]");
  capture_begin();
  st = qs_gguf_get_string(f, "test.arr.str", &s);
  capture_end();
  CHECK_EQ_INT(st, QS_ERR_FORMAT);
  CHECK_MSG("has type arr[str], expected str");
  capture_begin();
  st = qs_gguf_get_u32(f, "test.nope", &u32);
  capture_end();
  CHECK_EQ_INT(st, QS_ERR_FORMAT);
  CHECK_MSG("key 'test.nope' not found");
}

static void check_known_tensors(struct qs_gguf_file *f, const unsigned char *bytes, size_t size) {
  CHECK_EQ_INT(f->n_tensors, N_TENSORS);
  CHECK_EQ_INT(f->alignment, 64);
  CHECK_EQ_INT(f->data_offset % 64, 0);
  uint64_t expect = 0;
  for (int i = 0; i < N_TENSORS && i < (int)f->n_tensors; i++) {
    const struct qs_gguf_tensor *t = &f->tensors[i];
    CHECK(!strcmp(t->name, k_tensors[i].name));
    CHECK(qs_gguf_find_tensor(f, k_tensors[i].name) == t);
    CHECK_EQ_INT(t->type, k_tensors[i].type);
    CHECK_EQ_INT(t->n_dims, k_tensors[i].n_dims);
    for (int d = 0; d < 4; d++) CHECK_EQ_INT(t->ne[d], k_tensors[i].ne[d]);
    int64_t nel = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    CHECK_EQ_INT(t->nbytes, nel / qs_ggml_blck_size(t->type) * qs_ggml_type_size(t->type));
    CHECK_EQ_INT(t->offset, expect);
    CHECK_EQ_INT(t->offset % 64, 0);
    unsigned char *ref = malloc(t->nbytes + 1), *got = malloc(t->nbytes + 1);
    const void *map = NULL;
    known_fill(i, ref, t->nbytes);
    CHECK_EQ_INT(qs_gguf_read_tensor(f, t, got, t->nbytes), QS_OK);
    CHECK(!memcmp(ref, got, t->nbytes));
    CHECK_EQ_INT(qs_gguf_map_tensor(f, t, &map), QS_OK);
    CHECK(map && !memcmp(ref, map, t->nbytes));
    // the padding after the tensor (to the next one, or to the end of the file) is zeros
    uint64_t end = f->data_offset + t->offset + t->nbytes, next = f->data_offset + t->offset + (t->nbytes + 63) / 64 * 64;
    for (uint64_t j = end; j < next && j < size; j++) CHECK(bytes[j] == 0);
    expect += (t->nbytes + 63) / 64 * 64;
    free(ref);
    free(got);
  }
  CHECK_EQ_INT(f->file_size, f->data_offset + expect);
  CHECK_EQ_INT(size, f->file_size);
  CHECK(qs_gguf_find_tensor(f, "t.nope") == NULL);
  capture_begin();
  unsigned char small[4];
  qs_status st = qs_gguf_read_tensor(f, &f->tensors[0], small, sizeof(small));
  capture_end();
  CHECK_EQ_INT(st, QS_ERR_ARG);
  CHECK_MSG("tensor 't.f32' has 24 bytes");
}

static void test_round_trip(void) {
  printf("round trip, alignment, write orders\n");
  const char *names[3] = {"known_order.gguf", "known_reversed.gguf", "known_threads.gguf"};
  char *files[3];
  size_t sizes[3] = {0};
  char *data[3] = {NULL};
  for (int m = 0; m < 3; m++) {
    files[m] = tmp_path(names[m]);
    CHECK_EQ_INT(write_known(files[m], (enum write_mode)m), QS_OK);
    CHECK_EQ_INT(qs_file_read_all(files[m], &data[m], &sizes[m]), QS_OK);
  }
  // Whatever the order or the threads, the same bytes.
  CHECK(sizes[0] == sizes[1] && sizes[0] == sizes[2]);
  CHECK(data[0] && data[1] && data[2] && !memcmp(data[0], data[1], sizes[0]) && !memcmp(data[0], data[2], sizes[0]));
  struct qs_gguf_file f;
  CHECK_EQ_INT(qs_gguf_open(&f, files[2]), QS_OK);
  CHECK_EQ_INT(f.version, 3);
  check_known_kvs(&f);
  check_known_tensors(&f, (const unsigned char *)data[2], sizes[2]);
  // header padding: zeros between the last tensor info and the data section
  qs_gguf_close(&f);
  for (int m = 0; m < 3; m++) { free(files[m]); free(data[m]); }
}

// Default alignment 32, and a file without tensors (the vocabulary files are such).
static void test_alignment(void) {
  printf("default alignment, no tensors\n");
  char *p = tmp_path("align32.gguf");
  struct qs_gguf_writer *w = NULL;
  size_t idx;
  unsigned char buf[68] = {0};
  CHECK_EQ_INT(qs_gguf_writer_init(&w), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_add_tensor(w, "a", QS_GGML_F32, 1, (int64_t[]){3}, &idx), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_add_tensor(w, "b", QS_GGML_Q4_0, 2, (int64_t[]){32, 1}, &idx), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_add_tensor(w, "c", QS_GGML_F32, 1, (int64_t[]){1}, &idx), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_n_tensors(w), 3);
  CHECK_EQ_INT(qs_gguf_writer_open(w, p), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_tensor_offset(w, 1) - qs_gguf_writer_tensor_offset(w, 0), 32); // 12 bytes padded to 32
  CHECK_EQ_INT(qs_gguf_writer_tensor_offset(w, 2) - qs_gguf_writer_tensor_offset(w, 1), 32); // 18 bytes padded to 32
  CHECK_EQ_INT(qs_gguf_writer_tensor_offset(w, 0) % 32, 0);
  for (size_t i = 0; i < 3; i++)
    CHECK_EQ_INT(qs_gguf_writer_write_tensor(w, i, buf, qs_gguf_writer_tensor_bytes(w, i)), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_commit(w), QS_OK);
  qs_gguf_writer_free(w);
  struct qs_gguf_file f;
  CHECK_EQ_INT(qs_gguf_open(&f, p), QS_OK);
  CHECK_EQ_INT(f.alignment, 32);
  CHECK_EQ_INT(f.file_size, f.data_offset + 96);
  qs_gguf_close(&f);
  free(p);
  p = tmp_path("notensors.gguf");
  CHECK_EQ_INT(qs_gguf_writer_init(&w), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_set_string(w, "general.name", "x"), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_open(w, p), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_commit(w), QS_OK);
  qs_gguf_writer_free(w);
  CHECK_EQ_INT(qs_gguf_open(&f, p), QS_OK);
  CHECK_EQ_INT(f.n_tensors, 0);
  CHECK_EQ_INT(f.file_size % 32, 0);
  qs_gguf_close(&f);
  free(p);
}

// ---- writer refusals -----------------------------------------------------------------------------

#define EXPECT_FAIL(call, code, needle)                                                   \
  do {                                                                                    \
    capture_begin();                                                                      \
    qs_status st_ = (call);                                                               \
    capture_end();                                                                        \
    CHECK_EQ_INT(st_, code);                                                              \
    CHECK_MSG(needle);                                                                    \
  } while (0)

static void test_writer_refusals(void) {
  printf("writer refusals\n");
  struct qs_gguf_writer *w = NULL;
  char *p = tmp_path("refused.gguf"), tmp[512];
  unsigned char buf[64] = {0};
  CHECK_EQ_INT(qs_gguf_writer_init(&w), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_set_u32(w, "a.b", 1), QS_OK);
  EXPECT_FAIL(qs_gguf_writer_set_string(w, "a.b", "x"), QS_ERR_ARG, "duplicate key 'a.b'");
  EXPECT_FAIL(qs_gguf_writer_set_u8(w, "", 1), QS_ERR_ARG, "key of 0 bytes");
  EXPECT_FAIL(qs_gguf_writer_set_u8(w, "a b", 1), QS_ERR_ARG, "key 'a b' is not printable ASCII");
  EXPECT_FAIL(qs_gguf_writer_set_u32(w, "general.alignment", 24), QS_ERR_ARG, "is not a power of two");
  EXPECT_FAIL(qs_gguf_writer_set_i32(w, "general.alignment", 32), QS_ERR_ARG, "general.alignment must be u32, not i32");
  EXPECT_FAIL(qs_gguf_writer_set_array(w, "a.arr", QS_GGUF_STRING, buf, 1), QS_ERR_ARG, "not a number type");
  CHECK_EQ_INT(qs_gguf_writer_add_tensor(w, "t", QS_GGML_F32, 2, (int64_t[]){4, 2}, NULL), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_add_tensor(w, "u", QS_GGML_F32, 1, (int64_t[]){2}, NULL), QS_OK);
  EXPECT_FAIL(qs_gguf_writer_add_tensor(w, "t", QS_GGML_F32, 1, (int64_t[]){4}, NULL), QS_ERR_ARG,
              "duplicate tensor name 't'");
  EXPECT_FAIL(qs_gguf_writer_add_tensor(w, "q", QS_GGML_Q4_0, 2, (int64_t[]){30, 2}, NULL), QS_ERR_ARG,
              "ne[0] = 30 is not a multiple of the block size 32");
  EXPECT_FAIL(qs_gguf_writer_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123",
                                        QS_GGML_F32, 1, (int64_t[]){1}, NULL),
              QS_ERR_ARG, "has 64 bytes (1..63 allowed)");
  EXPECT_FAIL(qs_gguf_writer_add_tensor(w, "d", QS_GGML_F32, 5, (int64_t[]){1, 1, 1, 1, 1}, NULL), QS_ERR_ARG,
              "n_dims 5");
  EXPECT_FAIL(qs_gguf_writer_add_tensor(w, "r", 4, 1, (int64_t[]){32}, NULL), QS_ERR_ARG, "unknown ggml type 4");
  EXPECT_FAIL(qs_gguf_writer_add_tensor(w, "n", QS_GGML_F32, 1, (int64_t[]){-1}, NULL), QS_ERR_ARG, "ne[0] = -1 < 0");
  EXPECT_FAIL(qs_gguf_writer_write_tensor(w, 0, buf, 32), QS_ERR_ARG, "before open");
  CHECK_EQ_INT(qs_gguf_writer_open(w, p), QS_OK);
  snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", p, (long)getpid());
  CHECK(qs_path_exists(tmp) && !qs_path_exists(p));
  EXPECT_FAIL(qs_gguf_writer_set_u8(w, "late", 1), QS_ERR_ARG, "key 'late' set after open");
  EXPECT_FAIL(qs_gguf_writer_add_tensor(w, "late", QS_GGML_F32, 1, (int64_t[]){1}, NULL), QS_ERR_ARG, "added after open");
  EXPECT_FAIL(qs_gguf_writer_write_tensor(w, 0, buf, 16), QS_ERR_ARG, "16 bytes given, its size is 32");
  EXPECT_FAIL(qs_gguf_writer_write_tensor(w, 7, buf, 16), QS_ERR_ARG, "tensor index 7 of 2");
  EXPECT_FAIL(qs_gguf_writer_write_part(w, 0, 24, buf, 16), QS_ERR_ARG, "outside its 32");
  CHECK_EQ_INT(qs_gguf_writer_write_tensor(w, 0, buf, 32), QS_OK);
  EXPECT_FAIL(qs_gguf_writer_write_tensor(w, 0, buf, 32), QS_ERR_ARG, "tensor 't' written twice");
  EXPECT_FAIL(qs_gguf_writer_write_part(w, 0, 0, buf, 8), QS_ERR_ARG, "more than its 32 (written twice?)");
  // "u" never written, "t" over-counted: not committed, no file at the final path
  EXPECT_FAIL(qs_gguf_writer_commit(w), QS_ERR_ARG, "2 of 2 tensors not written exactly once");
  CHECK(!qs_path_exists(p));
  qs_gguf_writer_free(w); // removes the temporary file
  CHECK(!qs_path_exists(tmp));
  free(p);
}

// ---- reader refusals on crafted files --------------------------------------------------------------

struct cb {
  unsigned char b[4096];
  size_t n;
};
static void cb_put(struct cb *c, const void *p, size_t n) { memcpy(c->b + c->n, p, n); c->n += n; }
static void cb_u32(struct cb *c, uint32_t v) { cb_put(c, &v, 4); }
static void cb_u64(struct cb *c, uint64_t v) { cb_put(c, &v, 8); }
static void cb_str(struct cb *c, const char *s) { cb_u64(c, strlen(s)); cb_put(c, s, strlen(s)); }
static void cb_head(struct cb *c, uint32_t version, uint64_t n_t, uint64_t n_kv) {
  c->n = 0;
  cb_put(c, "GGUF", 4);
  cb_u32(c, version);
  cb_u64(c, n_t);
  cb_u64(c, n_kv);
}
static void cb_info(struct cb *c, const char *name, uint32_t nd, const int64_t *ne, uint32_t type, uint64_t off) {
  cb_str(c, name);
  cb_u32(c, nd);
  cb_put(c, ne, 8 * nd);
  cb_u32(c, type);
  cb_u64(c, off);
}
static void cb_pad(struct cb *c, size_t align, size_t extra) {
  while (c->n % align) c->b[c->n++] = 0;
  memset(c->b + c->n, 0, extra);
  c->n += extra;
}

// Writes the crafted bytes to `name` and opens it: must fail with QS_ERR_FORMAT, the message
// naming the file and containing `needle`.
static void reject(const char *name, const struct cb *c, const char *needle) {
  char *p = tmp_path(name);
  struct qs_gguf_file f;
  if (qs_file_write_all(p, c->b, c->n) != QS_OK) exit(1);
  printf("%s:\n", name);
  capture_begin();
  qs_status st = qs_gguf_open(&f, p);
  capture_end();
  CHECK_EQ_INT(st, QS_ERR_FORMAT);
  CHECK_MSG(needle);
  CHECK(strstr(g_err, name) != NULL);
  if (st == QS_OK) qs_gguf_close(&f);
  free(p);
}

static qs_status open_crafted(const char *name, const struct cb *c) {
  char *p = tmp_path(name);
  struct qs_gguf_file f;
  if (qs_file_write_all(p, c->b, c->n) != QS_OK) exit(1);
  qs_status st = qs_gguf_open(&f, p);
  if (st == QS_OK) qs_gguf_close(&f);
  free(p);
  return st;
}

static void test_reader_refusals(void) {
  printf("reader refusals\n");
  struct cb c;
  const int64_t ne1[1] = {1}, ne4[1] = {4};
  cb_head(&c, 3, 0, 0);
  memcpy(c.b, "GGUX", 4);
  reject("magic.gguf", &c, "invalid magic 'GGUX', expected 'GGUF'");
  cb_head(&c, 1, 0, 0);
  reject("v1.gguf", &c, "GGUFv1 is no longer supported");
  cb_head(&c, 0, 0, 0);
  reject("v0.gguf", &c, "bad GGUF version 0");
  cb_head(&c, 4, 0, 0);
  reject("v4.gguf", &c, "GGUF version 4 is newer than 3");
  cb_head(&c, 0x03000000, 0, 0);
  reject("swapped.gguf", &c, "byte-swapped");
  cb_head(&c, 3, 0, 2);
  cb_str(&c, "a"); cb_u32(&c, QS_GGUF_U8); c.b[c.n++] = 1;
  cb_str(&c, "a"); cb_u32(&c, QS_GGUF_U8); c.b[c.n++] = 2;
  reject("dupkey.gguf", &c, "duplicate key 'a' (0 and 1)");
  cb_head(&c, 3, 0, 1);
  cb_str(&c, ""); cb_u32(&c, QS_GGUF_U8); c.b[c.n++] = 1;
  reject("emptykey.gguf", &c, "key 0 is empty");
  cb_head(&c, 3, 0, 1);
  cb_str(&c, "nest"); cb_u32(&c, QS_GGUF_ARRAY); cb_u32(&c, QS_GGUF_ARRAY); cb_u64(&c, 1);
  cb_u32(&c, QS_GGUF_U8); cb_u64(&c, 1); c.b[c.n++] = 1;
  reject("nested.gguf", &c, "key 'nest' is an array of arrays");
  cb_head(&c, 3, 0, 1);
  cb_str(&c, "t"); cb_u32(&c, 13); cb_u32(&c, 0);
  reject("badtype.gguf", &c, "key 't' has invalid GGUF type 13");
  cb_head(&c, 3, 0, 1);
  cb_str(&c, "general.alignment"); cb_u32(&c, QS_GGUF_U32); cb_u32(&c, 24);
  reject("align24.gguf", &c, "alignment 24 is not a power of 2");
  cb_head(&c, 3, 0, 1);
  cb_str(&c, "general.alignment"); cb_u32(&c, QS_GGUF_I32); cb_u32(&c, 32);
  reject("aligni32.gguf", &c, "key 'general.alignment' must be of type u32 but is i32");
  cb_head(&c, 3, 0, 1);
  cb_str(&c, "s"); cb_u32(&c, QS_GGUF_STRING); cb_u64(&c, 1000); cb_put(&c, "abc", 3);
  reject("truncstr.gguf", &c, "string of 1000 bytes at offset");
  cb_head(&c, 3, 0, 1);
  cb_str(&c, "arr"); cb_u32(&c, QS_GGUF_ARRAY); cb_u32(&c, QS_GGUF_U64); cb_u64(&c, 1ull << 40);
  reject("truncarr.gguf", &c, "key 'arr': 1099511627776 elements of u64 run past the end of the file");
  cb_head(&c, 3, 1, 0);
  cb_info(&c, "x", 4, (int64_t[]){1, 1, 1, 1}, QS_GGML_F32, 0);
  c.n -= 28; // cut after ne[1]
  reject("truncinfo.gguf", &c, "truncated: tensor 'x' needs 8 bytes at offset 53");
  cb_head(&c, 3, 1000, 0);
  reject("counts.gguf", &c, "0 KVs and 1000 tensors cannot fit in a file of 24 bytes");
  cb_head(&c, 3, 1, 0);
  cb_info(&c, "0123456789012345678901234567890123456789012345678901234567890123", 1, ne1, QS_GGML_F32, 0);
  reject("longname.gguf", &c, "tensor 0 name is too long: 64 bytes >= 64");
  cb_head(&c, 3, 2, 0);
  cb_info(&c, "x", 1, ne1, QS_GGML_F32, 0);
  cb_info(&c, "x", 1, ne1, QS_GGML_F32, 32);
  cb_pad(&c, 32, 64);
  reject("dupname.gguf", &c, "duplicate tensor name 'x' (0 and 1)");
  cb_head(&c, 3, 1, 0);
  cb_info(&c, "x", 5, (int64_t[]){1, 1, 1, 1, 1}, QS_GGML_F32, 0);
  reject("ndims.gguf", &c, "tensor 'x' has 5 dimensions");
  cb_head(&c, 3, 1, 0);
  cb_info(&c, "x", 2, (int64_t[]){4, -1}, QS_GGML_F32, 0);
  reject("negne.gguf", &c, "tensor 'x': ne[1] = -1 < 0");
  cb_head(&c, 3, 1, 0);
  cb_info(&c, "x", 1, (int64_t[]){32}, 4, 0);
  reject("gtype.gguf", &c, "tensor 'x' has ggml type 4, unknown");
  cb_head(&c, 3, 1, 0);
  cb_info(&c, "x", 2, (int64_t[]){30, 2}, QS_GGML_Q4_0, 0);
  reject("blck.gguf", &c, "tensor 'x' of type Q4_0 has 30 elements per row, not a multiple of the block size 32");
  cb_head(&c, 3, 1, 0);
  cb_info(&c, "x", 2, (int64_t[]){1ll << 62, 4}, QS_GGML_F32, 0);
  reject("overflow.gguf", &c, "element count or size overflows");
  cb_head(&c, 3, 2, 0);
  cb_info(&c, "a", 1, ne1, QS_GGML_F32, 0);
  cb_info(&c, "b", 1, ne1, QS_GGML_F32, 4); // llama.cpp wants 32: 4 bytes padded to the alignment
  cb_pad(&c, 32, 64);
  reject("offset.gguf", &c, "tensor 'b' has offset 4, expected 32");
  cb_head(&c, 3, 1, 0);
  cb_info(&c, "a", 1, ne4, QS_GGML_F32, 0);
  cb_pad(&c, 32, 8); // 16 bytes needed
  reject("truncdata.gguf", &c, "tensor 'a' data");
  cb_head(&c, 3, 1, 0);
  cb_info(&c, "a", 1, ne4, QS_GGML_F32, 0);
  reject("nodata.gguf", &c, "the data section starts at");
  // Accepted: version 2 (same layout), a last tensor without its trailing padding, no tensors at all.
  cb_head(&c, 2, 1, 1);
  cb_str(&c, "k"); cb_u32(&c, QS_GGUF_BOOL); c.b[c.n++] = 7; // any non-zero byte is true
  cb_info(&c, "a", 1, ne4, QS_GGML_F32, 0);
  cb_pad(&c, 32, 16);
  CHECK_EQ_INT(open_crafted("v2.gguf", &c), QS_OK);
  cb_head(&c, 3, 0, 0);
  CHECK_EQ_INT(open_crafted("empty.gguf", &c), QS_OK);
  char *p = tmp_path("missing.gguf");
  struct qs_gguf_file f;
  capture_begin();
  qs_status st = qs_gguf_open(&f, p);
  capture_end();
  CHECK_EQ_INT(st, QS_ERR_IO);
  CHECK_MSG("missing.gguf: cannot open");
  free(p);
}

// ---- a Llama-3-style byte-level BPE directory ------------------------------------------------------

static void write_text(const char *dir, const char *name, const char *text) {
  char *p = qs_path_join(dir, name);
  if (!p || qs_file_write_all(p, text, strlen(text)) != QS_OK) exit(1);
  free(p);
}

#define LLAMA3_PRE                                                                                     \
  "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "  \
  "{\"Regex\": \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "    \
  "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": "  \
  "\"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "           \
  "\"trim_offsets\": true, \"use_regex\": false}]}"

static void test_bpe_dir(void) {
  printf("byte-level BPE directory\n");
  char *dir = tmp_path("llama3"), *gguf = tmp_path("llama3.gguf");
  CHECK_EQ_INT(qs_dir_make(dir), QS_OK);
  write_text(dir, "tokenizer.json",
             "{\"version\": \"1.0\", \"added_tokens\": ["
             "{\"id\": 5, \"content\": \"<|begin_of_text|>\", \"special\": true, \"normalized\": false},"
             "{\"id\": 6, \"content\": \"<|end_of_text|>\", \"special\": true, \"normalized\": false},"
             "{\"id\": 7, \"content\": \"my\xe2\x96\x81tok\", \"special\": false, \"normalized\": true},"
             "{\"id\": 9, \"content\": \"<|reserved|>\", \"special\": false, \"normalized\": false}],"
             "\"normalizer\": null, " LLAMA3_PRE
             ","
             "\"post_processor\": {\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"},"
             " {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<|begin_of_text|>\", "
             "\"type_id\": 0}},"
             " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [{\"SpecialToken\": {\"id\": "
             "\"<|begin_of_text|>\", \"type_id\": 0}},"
             " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"<|begin_of_text|>\", "
             "\"type_id\": 1}},"
             " {\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}]}]},"
             "\"decoder\": {\"type\": \"ByteLevel\"},"
             "\"model\": {\"type\": \"BPE\", \"byte_fallback\": false, \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, "
             "\"\xc4\xa0\": 3, \"\xc4\xa0"
             "a\": 4},"
             " \"merges\": [[\"a\", \"b\"], [\"\xc4\xa0\", \"a\"], [\"a b\", \"c\"]]}}");
  write_text(dir, "tokenizer_config.json",
             "{\"bos_token\": \"<|begin_of_text|>\", \"eos_token\": \"<|end_of_text|>\", \"chat_template\": \"{{ "
             "messages }}\"}");
  write_text(dir, "config.json",
             "{\"vocab_size\": 11, \"bos_token_id\": 5, \"eos_token_id\": [6, 9], \"pad_token_id\": 3}");
  struct qs_vocab v;
  CHECK_EQ_INT(qs_vocab_load(&v, dir), QS_OK);
  CHECK(!strcmp(v.model, "gpt2") && !strcmp(v.pre, "llama-bpe"));
  CHECK_EQ_INT(v.n_tokens, 11);
  CHECK(v.scores == NULL);
  const char *tok[11] = {"a",
                         "b",
                         "ab",
                         "\xc4\xa0",
                         "\xc4\xa0"
                         "a",
                         "<|begin_of_text|>",
                         "<|end_of_text|>",
                         "my tok",
                         "[PAD8]",
                         "<|reserved|>",
                         "[PAD10]"};
  const int types[11] = {1, 1, 1, 1, 1, 3, 3, 4, 5, 3, 5};
  for (int i = 0; i < 11 && i < v.n_tokens; i++) {
    CHECK(!strcmp(v.tokens[i], tok[i]));
    CHECK_EQ_INT(v.types[i], types[i]);
  }
  CHECK_EQ_INT(v.n_merges, 3);
  if (v.n_merges == 3)
    CHECK(!strcmp(v.merges[0], "a b") && !strcmp(v.merges[1], "\xc4\xa0 a") &&
          !strcmp(v.merges[2],
                  "a\xc4\xa0"
                  "b c"));
  CHECK_EQ_INT(v.special[QS_SPECIAL_BOS], 5); // tokenizer_config.json, matched in added_tokens
  CHECK_EQ_INT(v.special[QS_SPECIAL_EOS], 6);
  CHECK_EQ_INT(v.special[QS_SPECIAL_PAD], 3); // config.json
  CHECK_EQ_INT(v.add_bos, 1);                 // TemplateProcessing: <|begin_of_text|> $A
  CHECK_EQ_INT(v.add_eos, -1);
  CHECK_EQ_INT(v.add_sep, 0);                 // pair A <bos> B: not a separator
  CHECK(v.chat_template && !strcmp(v.chat_template, "{{ messages }}"));
  // into a GGUF and back
  struct qs_gguf_writer *w = NULL;
  CHECK_EQ_INT(qs_gguf_writer_init(&w), QS_OK);
  CHECK_EQ_INT(qs_vocab_add_gguf_keys(&v, w), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_open(w, gguf), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_commit(w), QS_OK);
  qs_gguf_writer_free(w);
  struct qs_gguf_file f;
  const char *const *strs;
  const void *d;
  uint64_t n;
  uint32_t u;
  int b;
  const char *s;
  CHECK_EQ_INT(qs_gguf_open(&f, gguf), QS_OK);
  CHECK(qs_gguf_get_string(&f, "tokenizer.ggml.model", &s) == QS_OK && !strcmp(s, "gpt2"));
  CHECK(qs_gguf_get_string(&f, "tokenizer.ggml.pre", &s) == QS_OK && !strcmp(s, "llama-bpe"));
  CHECK(qs_gguf_get_array_string(&f, "tokenizer.ggml.tokens", &strs, &n) == QS_OK && n == 11 &&
        !strcmp(strs[7], "my tok"));
  CHECK(qs_gguf_get_array(&f, "tokenizer.ggml.token_type", QS_GGUF_I32, &d, &n) == QS_OK && n == 11 &&
        ((const int32_t *)d)[9] == 3);
  CHECK(qs_gguf_get_array_string(&f, "tokenizer.ggml.merges", &strs, &n) == QS_OK && n == 3);
  CHECK(qs_gguf_find_kv(&f, "tokenizer.ggml.scores") == NULL);
  CHECK(qs_gguf_get_u32(&f, "tokenizer.ggml.bos_token_id", &u) == QS_OK && u == 5);
  CHECK(qs_gguf_get_u32(&f, "tokenizer.ggml.padding_token_id", &u) == QS_OK && u == 3);
  CHECK(qs_gguf_get_bool(&f, "tokenizer.ggml.add_bos_token", &b) == QS_OK && b == 1);
  CHECK(qs_gguf_find_kv(&f, "tokenizer.ggml.add_eos_token") == NULL);
  CHECK(qs_gguf_get_string(&f, "tokenizer.chat_template", &s) == QS_OK && !strcmp(s, "{{ messages }}"));
  qs_gguf_close(&f);
  qs_vocab_free(&v);
  // An unknown pre-tokenizer is refused, as convert_hf_to_gguf refuses an unknown hash.
  write_text(
      dir, "tokenizer.json",
      "{\"added_tokens\": [], \"pre_tokenizer\": {\"type\": \"Metaspace\"}, \"decoder\": {\"type\": \"ByteLevel\"},"
      "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
  capture_begin();
  qs_status st = qs_vocab_load(&v, dir);
  capture_end();
  CHECK_EQ_INT(st, QS_ERR_UNSUPPORTED);
  CHECK_MSG("BPE pre-tokenizer not recognized");
  free(dir);
  free(gguf);
}

// ---- shared data -----------------------------------------------------------------------------------

static int spm_available(const char *model) {
  struct qs_vocab v;
  capture_begin();
  qs_status st = qs_vocab_load_spm(&v, model, 0);
  capture_end();
  if (st == QS_OK) { qs_vocab_free(&v); return 1; }
  CHECK_EQ_INT(st, QS_ERR_UNSUPPORTED); // a build without protobuf-c: a clear message, nothing else
  CHECK_MSG("needs protobuf-c");
  return 0;
}

// llama.cpp's reference vocabulary file against the same vocabulary read from tokenizer.model.
static void test_llama_spm(const char *data) {
  char *gguf = qs_path_join(data, "tokenizers/ggml-vocab-llama-spm.gguf");
  char *model = qs_path_join(data, "tokenizers/llama2-tokenizer.model");
  struct qs_gguf_file f;
  const char *const *toks;
  const void *scores, *types;
  uint64_t n, ns, nt;
  uint32_t u;
  const char *s;
  printf("ggml-vocab-llama-spm.gguf\n");
  CHECK_EQ_INT(qs_gguf_open(&f, gguf), QS_OK);
  CHECK_EQ_INT(f.version, 3);
  CHECK_EQ_INT(f.n_tensors, 0);
  CHECK_EQ_INT(f.n_kv, 22);
  CHECK(qs_gguf_get_string(&f, "general.architecture", &s) == QS_OK && !strcmp(s, "llama"));
  CHECK(qs_gguf_get_u32(&f, "llama.vocab_size", &u) == QS_OK && u == 32000);
  CHECK(qs_gguf_get_array_string(&f, "tokenizer.ggml.tokens", &toks, &n) == QS_OK && n == 32000);
  CHECK(qs_gguf_get_array(&f, "tokenizer.ggml.scores", QS_GGUF_F32, &scores, &ns) == QS_OK && ns == 32000);
  CHECK(qs_gguf_get_array(&f, "tokenizer.ggml.token_type", QS_GGUF_I32, &types, &nt) == QS_OK && nt == 32000);
  if (!spm_available(model)) {
    printf("  (no protobuf-c in this build: tokenizer.model comparison skipped)\n");
  } else {
    struct qs_vocab v;
    CHECK_EQ_INT(qs_vocab_load_spm(&v, model, 0), QS_OK);
    CHECK_EQ_INT(v.n_tokens, 32000);
    CHECK(!strcmp(v.model, "llama") && !strcmp(v.pre, "default"));
    CHECK(qs_gguf_get_string(&f, "tokenizer.ggml.pre", &s) == QS_OK && !strcmp(s, v.pre));
    int bad = 0;
    for (uint64_t i = 0; i < n && i < (uint64_t)v.n_tokens && i < ns && i < nt; i++) {
      float sc = ((const float *)scores)[i];
      int ty = ((const int32_t *)types)[i];
      if (!strcmp(toks[i], v.tokens[i]) && !memcmp(&sc, &v.scores[i], 4) && ty == v.types[i]) continue;
      if (bad++ < 5)
        printf("  token %" PRIu64 ": gguf '%s' %.9g %d, tokenizer.model '%s' %.9g %d\n", i, toks[i], sc, ty, v.tokens[i],
               v.scores[i], v.types[i]);
    }
    printf("  %d of 32000 tokens differ\n", bad);
    CHECK_EQ_INT(bad, 0);
    CHECK(qs_gguf_get_u32(&f, "tokenizer.ggml.bos_token_id", &u) == QS_OK && u == v.special[QS_SPECIAL_BOS]);
    CHECK(qs_gguf_get_u32(&f, "tokenizer.ggml.eos_token_id", &u) == QS_OK && u == v.special[QS_SPECIAL_EOS]);
    CHECK(qs_gguf_get_u32(&f, "tokenizer.ggml.unknown_token_id", &u) == QS_OK && u == v.special[QS_SPECIAL_UNK]);
    CHECK_EQ_INT(v.special[QS_SPECIAL_PAD], -1);
    CHECK_EQ_INT(v.spm_add_dummy_prefix, 1);
    CHECK_EQ_INT(v.spm_byte_fallback, 1);
    qs_vocab_free(&v);
  }
  qs_gguf_close(&f);
  free(gguf);
  free(model);
}

// Every tokenizer.* KV of `ref` is in `got` with the same type and value, and `got` has no other.
static int same_tokenizer_kvs(const struct qs_gguf_file *ref, const struct qs_gguf_file *got) {
  int bad = 0, n_ref = 0, n_got = 0;
  for (size_t i = 0; i < got->n_kv; i++) n_got += !strncmp(got->kv[i].key, "tokenizer.", 10);
  for (size_t i = 0; i < ref->n_kv; i++) {
    const struct qs_gguf_kv *r = &ref->kv[i], *g = qs_gguf_find_kv(got, r->key);
    if (strncmp(r->key, "tokenizer.", 10)) continue;
    n_ref++;
    int same = g && g->type == r->type && g->elem == r->elem && g->n == r->n;
    for (uint64_t j = 0; same && j < r->n; j++)
      same = r->elem == QS_GGUF_STRING ? !strcmp(((char **)r->data)[j], ((char **)g->data)[j])
                                       : !memcmp((const char *)r->data + j * qs_gguf_type_size(r->elem),
                                                 (const char *)g->data + j * qs_gguf_type_size(r->elem),
                                                 qs_gguf_type_size(r->elem));
    if (!same) printf("  %s differs%s\n", r->key, g ? "" : " (missing)"), bad++;
  }
  // One key more is expected: today's gguf-py SpecialVocab reads the pair template of tokenizer.json
  // (<s> A <s> B: no separator) and writes add_sep_token = false; the reference file predates that
  // (llama.cpp's loader defaults add_sep to false for SentencePiece, so the two load the same).
  for (size_t i = 0; i < got->n_kv; i++) {
    const struct qs_gguf_kv *g = &got->kv[i];
    if (strncmp(g->key, "tokenizer.", 10) || qs_gguf_find_kv(ref, g->key)) continue;
    if (!strcmp(g->key, "tokenizer.ggml.add_sep_token") && g->type == QS_GGUF_BOOL && !*(uint8_t *)g->data) continue;
    printf("  %s: not in the reference\n", g->key);
    bad++;
  }
  CHECK(n_ref <= n_got);
  return bad;
}

// A Llama-2 Hugging Face directory as published (tokenizer.model beside tokenizer.json, whose
// added_tokens name <unk> <s> </s>, tokenizer_config.json and config.json): the tokenizer keys
// written must be exactly those of llama.cpp's ggml-vocab-llama-spm.gguf.
static void test_llama_hf_dir(const char *data) {
  printf("Llama-2 HF directory -> tokenizer keys of ggml-vocab-llama-spm.gguf\n");
  char *ref_path = qs_path_join(data, "tokenizers/ggml-vocab-llama-spm.gguf");
  char *model = qs_path_join(data, "tokenizers/llama2-tokenizer.model");
  char *dir = tmp_path("llama2hf"), *copy = NULL, *out = tmp_path("llama2hf.gguf");
  if (!spm_available(model)) goto done;
  CHECK_EQ_INT(qs_dir_make(dir), QS_OK);
  copy = qs_path_join(dir, "tokenizer.model");
  CHECK_EQ_INT(qs_file_copy(model, copy), QS_OK);
  write_text(dir, "tokenizer.json",
             "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true},"
             " {\"id\": 1, \"content\": \"<s>\", \"special\": true}, {\"id\": 2, \"content\": \"</s>\", \"special\": true}],"
             " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}},"
             " {\"Sequence\": {\"id\": \"A\"}}], \"pair\": [{\"SpecialToken\": {\"id\": \"<s>\"}}, {\"Sequence\": {\"id\": \"A\"}},"
             " {\"SpecialToken\": {\"id\": \"<s>\"}}, {\"Sequence\": {\"id\": \"B\"}}]},"
             " \"model\": {\"type\": \"BPE\", \"byte_fallback\": true}}");
  write_text(dir, "tokenizer_config.json",
             "{\"add_bos_token\": true, \"add_eos_token\": false, \"bos_token\": {\"__type\": \"AddedToken\", \"content\": "
             "\"<s>\"}, \"eos_token\": {\"__type\": \"AddedToken\", \"content\": \"</s>\"}, \"unk_token\": {\"__type\": "
             "\"AddedToken\", \"content\": \"<unk>\"}, \"pad_token\": null, \"tokenizer_class\": \"LlamaTokenizer\"}");
  write_text(dir, "config.json", "{\"vocab_size\": 32000, \"bos_token_id\": 1, \"eos_token_id\": 2}");
  struct qs_vocab v;
  CHECK_EQ_INT(qs_vocab_load(&v, dir), QS_OK);
  struct qs_gguf_writer *w = NULL;
  CHECK_EQ_INT(qs_gguf_writer_init(&w), QS_OK);
  CHECK_EQ_INT(qs_vocab_add_gguf_keys(&v, w), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_open(w, out), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_commit(w), QS_OK);
  qs_gguf_writer_free(w);
  qs_vocab_free(&v);
  struct qs_gguf_file ref, got;
  CHECK_EQ_INT(qs_gguf_open(&ref, ref_path), QS_OK);
  CHECK_EQ_INT(qs_gguf_open(&got, out), QS_OK);
  int bad = same_tokenizer_kvs(&ref, &got);
  printf("  %d tokenizer keys differ\n", bad);
  CHECK_EQ_INT(bad, 0);
  qs_gguf_close(&ref);
  qs_gguf_close(&got);
done:
  free(ref_path);
  free(model);
  free(dir);
  free(copy);
  free(out);
}

static void test_stories_tok512(const char *data) {
  printf("stories260K tok512.bin\n");
  char *dir = qs_path_join(data, "stories260K");
  struct qs_vocab v;
  CHECK_EQ_INT(qs_vocab_load(&v, dir), QS_OK);
  CHECK(strstr(v.source, "tok512.bin") != NULL);
  CHECK_EQ_INT(v.n_tokens, 512);
  CHECK(!strcmp(v.model, "llama") && v.pre[0] == '\0');
  if (v.n_tokens == 512) {
    CHECK(!strcmp(v.tokens[0], "<unk>") && v.types[0] == QS_TOKEN_UNKNOWN);
    CHECK(!strcmp(v.tokens[1], "<s>") && v.types[1] == QS_TOKEN_CONTROL);
    CHECK(!strcmp(v.tokens[2], "</s>") && v.types[2] == QS_TOKEN_CONTROL);
    int bytes = 0, spaces = 0, escaped = 0;
    for (int i = 0; i < 512; i++) {
      bytes += v.types[i] == QS_TOKEN_BYTE;
      spaces += strchr(v.tokens[i], ' ') != NULL;
      escaped += strstr(v.tokens[i], "\xe2\x96\x81") != NULL;
    }
    CHECK_EQ_INT(bytes, 256); // byte fallback at ids 3..258
    CHECK(!strcmp(v.tokens[3], "<0x00>") && !strcmp(v.tokens[258], "<0xFF>") && v.types[258] == QS_TOKEN_BYTE);
    CHECK_EQ_INT(v.types[259], QS_TOKEN_NORMAL);
    CHECK_EQ_INT(spaces, 0);
    CHECK(escaped > 0);
    printf("  512 tokens, 256 byte tokens, %d with U+2581\n", escaped);
  }
  CHECK_EQ_INT(v.special[QS_SPECIAL_UNK], 0);
  CHECK_EQ_INT(v.special[QS_SPECIAL_BOS], 1);
  CHECK_EQ_INT(v.special[QS_SPECIAL_EOS], 2);
  CHECK_EQ_INT(v.special[QS_SPECIAL_SEP], 0xFFFFFFFFll);
  CHECK_EQ_INT(v.special[QS_SPECIAL_PAD], 0xFFFFFFFFll);
  qs_vocab_free(&v);
  free(dir);
}

static void test_gutenberg(const char *data) {
  printf("gutenberg28M tokenizer.model\n");
  char *dir = qs_path_join(data, "gutenberg28M"), *model = qs_path_join(dir, "tokenizer.model");
  char *gguf = tmp_path("gutenberg_vocab.gguf");
  struct qs_vocab v;
  if (!spm_available(model)) {
    printf("  (no protobuf-c in this build: skipped)\n");
    goto done;
  }
  CHECK_EQ_INT(qs_vocab_load(&v, dir), QS_OK);
  CHECK(strstr(v.source, "tokenizer.model") != NULL);
  CHECK_EQ_INT(v.n_tokens, 8192);
  CHECK(!strcmp(v.model, "llama") && !strcmp(v.pre, "default"));
  CHECK_EQ_INT(v.special[QS_SPECIAL_BOS], 1); // config.json
  CHECK_EQ_INT(v.special[QS_SPECIAL_EOS], 2);
  CHECK_EQ_INT(v.special[QS_SPECIAL_UNK], -1); // config.json has none: not written (llama.cpp: 0)
  CHECK_EQ_INT(v.special[QS_SPECIAL_PAD], -1); // pad_token_id null
  CHECK_EQ_INT(v.spm_byte_fallback, 1);
  int count[7] = {0};
  for (int i = 0; i < v.n_tokens; i++)
    if (v.types[i] >= 1 && v.types[i] <= 6) count[v.types[i]]++;
  printf("  8192 tokens: %d normal, %d unknown, %d control, %d byte; add_dummy_prefix %d\n", count[1], count[2], count[3],
         count[6], v.spm_add_dummy_prefix);
  CHECK_EQ_INT(count[QS_TOKEN_UNKNOWN], 1);
  CHECK_EQ_INT(count[QS_TOKEN_BYTE], 256);
  struct qs_gguf_writer *w = NULL;
  CHECK_EQ_INT(qs_gguf_writer_init(&w), QS_OK);
  CHECK_EQ_INT(qs_vocab_add_gguf_keys(&v, w), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_open(w, gguf), QS_OK);
  CHECK_EQ_INT(qs_gguf_writer_commit(w), QS_OK);
  qs_gguf_writer_free(w);
  struct qs_gguf_file f;
  const char *const *toks;
  const void *sc;
  uint64_t n;
  CHECK_EQ_INT(qs_gguf_open(&f, gguf), QS_OK);
  CHECK(qs_gguf_get_array_string(&f, "tokenizer.ggml.tokens", &toks, &n) == QS_OK && n == 8192);
  CHECK(qs_gguf_get_array(&f, "tokenizer.ggml.scores", QS_GGUF_F32, &sc, &n) == QS_OK && n == 8192 &&
        !memcmp(sc, v.scores, 8192 * 4));
  for (uint64_t i = 0; i < 8192 && n == 8192; i++) if (strcmp(toks[i], v.tokens[i])) { CHECK(0); break; }
  qs_gguf_close(&f);
  qs_vocab_free(&v);
done:
  free(gguf);
  free(model);
  free(dir);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--write")) return write_known(argv[2], WRITE_REVERSED) == QS_OK ? 0 : 1;
  int data_mode = argc == 2 && !strcmp(argv[1], "--data");
  const char *data = qs_test_data_dir();
  if (data_mode && !data) QS_TEST_SKIP("QS_DATA_DIR not set or missing");
  snprintf(g_tmp, sizeof(g_tmp), "%s/qs_gguf_io.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(g_tmp)) { perror("mkdtemp"); return 1; }
  if (data_mode) {
    test_llama_spm(data);
    test_llama_hf_dir(data);
    test_stories_tok512(data);
    test_gutenberg(data);
  } else {
    test_round_trip();
    test_alignment();
    test_writer_refusals();
    test_reader_refusals();
    test_bpe_dir();
  }
  qs_dir_remove_tree(g_tmp);
  return qs_test_finish(data_mode ? "test_gguf_io --data" : "test_gguf_io");
}
