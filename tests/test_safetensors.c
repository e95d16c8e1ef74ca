// test_safetensors.c — safetensors reader/writer and checkpoints (src/io/safetensors*.c).
// Run: ctest -R safetensors   (or ./test_safetensors [--data] / ./test_safetensors --write DIR)
//   (no args)     writer -> reader round trips, sharding, and one crafted file per reader rejection
//   --data        reads the real checkpoints of $QS_DATA_DIR (skips when it is unset)
//   --write DIR   writes DIR/single and DIR/sharded with known values, for tests/py/st_client.py
// Round trips compare bytes exactly: the writer copies bytes, it must not change any.
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qs_test.h"
#include "io/safetensors.h"

static char g_tmp[256];

static char *tmp_path(const char *name) {
  char *p = qs_path_join(g_tmp, name);
  if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
  return p;
}

// ---- the known tensor set (same formulas as tests/py/st_client.py) --------------------------------

struct known {
  const char *name;
  qs_dtype dtype;
  int ndim;
  int64_t shape[2];
};

static const struct known k_known[] = {
    {"f32", QS_DTYPE_F32, 2, {3, 4}},   {"f16", QS_DTYPE_F16, 2, {2, 3}},
    {"bf16", QS_DTYPE_BF16, 2, {4, 2}}, {"i32", QS_DTYPE_I32, 1, {5}},
    {"i64", QS_DTYPE_I64, 2, {2, 2}},   {"i8", QS_DTYPE_I8, 1, {6}},
    {"u8", QS_DTYPE_U8, 1, {7}},        {"fp8", QS_DTYPE_F8_E4M3, 1, {5}},
    {"scalar", QS_DTYPE_F32, 0, {0}},   {"empty", QS_DTYPE_BF16, 2, {0, 4}},
};
enum { N_KNOWN = sizeof(k_known) / sizeof(k_known[0]) };

static size_t known_numel(const struct known *k) {
  size_t n = 1;
  for (int i = 0; i < k->ndim; i++) n *= (size_t)k->shape[i];
  return n;
}

// Element i of tensor k: small values exact in every float type (multiples of 1/8 below 16).
static void known_fill(const struct known *k, void *dst) {
  size_t n = known_numel(k);
  for (size_t i = 0; i < n; i++) {
    double x = (double)i;
    switch (k->dtype) {
    case QS_DTYPE_F32: ((float *)dst)[i] = k->ndim == 0 ? 3.5f : (float)((x - 5) * 0.25); break;
    case QS_DTYPE_F16: ((uint16_t *)dst)[i] = qs_f32_to_f16((float)((x - 2) * 0.5)); break;
    case QS_DTYPE_BF16: ((uint16_t *)dst)[i] = qs_f32_to_bf16((float)((x - 3) * 0.125)); break;
    case QS_DTYPE_I32: ((int32_t *)dst)[i] = (int32_t)i * 100000 - 7; break;
    case QS_DTYPE_I64: ((int64_t *)dst)[i] = ((int64_t)i + 1) * ((int64_t)1 << 40) - 3; break;
    case QS_DTYPE_I8: ((int8_t *)dst)[i] = (int8_t)((int)i * 40 - 100); break;
    case QS_DTYPE_U8: ((uint8_t *)dst)[i] = (uint8_t)(i * 37); break;
    case QS_DTYPE_F8_E4M3: ((uint8_t *)dst)[i] = qs_f32_to_fp8e4m3((float)(x - 2)); break;
    default: break;
    }
  }
}

static void *known_data(const struct known *k) {
  void *p = calloc(known_numel(k) + 1, 8);
  if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
  known_fill(k, p);
  return p;
}

// Sharded set: 12 F32 [16, 16] tensors (1 KiB each) + one BF16 [8, 8], limit 2500 bytes/shard.
#define SHARD_LIMIT 2500
static void sharded_fill(int layer, float *w) {
  for (int i = 0; i < 256; i++) w[i] = (float)(layer * 1000 + i);
}

static qs_status write_known_sets(const char *dir) {
  qs_status status = QS_OK;
  struct qs_st_writer *w = NULL;
  char *d1 = qs_path_join(dir, "single"), *d2 = qs_path_join(dir, "sharded");
  if (!d1 || !d2) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(qs_st_writer_init(&w, d1, 0));
  for (int i = 0; i < N_KNOWN; i++) {
    void *data = known_data(&k_known[i]);
    qs_status st = qs_st_writer_add(w, k_known[i].name, k_known[i].dtype, k_known[i].ndim, k_known[i].shape, data, 1);
    free(data);
    QS_TRY(st);
  }
  QS_TRY(qs_st_writer_finish(w));
  qs_st_writer_free(w);
  QS_TRY(qs_st_writer_init(&w, d2, SHARD_LIMIT));
  float buf[256];
  for (int l = 0; l < 12; l++) {
    char name[64];
    snprintf(name, sizeof(name), "model.layers.%d.weight", l);
    sharded_fill(l, buf);
    QS_TRY(qs_st_writer_add(w, name, QS_DTYPE_F32, 2, (int64_t[]){16, 16}, buf, 1));
  }
  uint16_t bf[64];
  for (int i = 0; i < 64; i++) bf[i] = qs_f32_to_bf16((float)i * 0.5f);
  QS_TRY(qs_st_writer_add(w, "lm_head.weight", QS_DTYPE_BF16, 2, (int64_t[]){8, 8}, bf, 1));
  QS_TRY(qs_st_writer_finish(w));
fail:
  qs_st_writer_free(w);
  free(d1);
  free(d2);
  return status;
}

// ---- round trips ---------------------------------------------------------------------------------

static void check_known_file(const struct qs_st_file *f) {
  CHECK_EQ_INT(f->n_tensors, N_KNOWN);
  CHECK_EQ_INT(f->header_len % 8, 0);
  CHECK(qs_st_meta(f, "format") && !strcmp(qs_st_meta(f, "format"), "pt"));
  for (int i = 0; i < N_KNOWN; i++) {
    const struct known *k = &k_known[i];
    const struct qs_st_tensor *t = qs_st_find(f, k->name);
    CHECK(t != NULL);
    if (!t) continue;
    CHECK_EQ_INT(t->dtype, k->dtype);
    CHECK_EQ_INT(t->ndim, k->ndim);
    for (int d = 0; d < k->ndim; d++) CHECK_EQ_INT(t->shape[d], k->shape[d]);
    size_t bytes = known_numel(k) * qs_dtype_size(k->dtype);
    CHECK_EQ_INT(t->end - t->begin, bytes);
    CHECK_EQ_INT(t->begin % qs_dtype_size(k->dtype), 0);           // natural alignment in the buffer
    CHECK_EQ_INT((uintptr_t)t->data % qs_dtype_size(k->dtype), 0); // and in memory (page-aligned map)
    void *want = known_data(k);
    CHECK(memcmp(t->data, want, bytes) == 0);
    free(want);
  }
  // File order (= header order, jansson keeps it): descending dtype rank, then name; contiguous.
  for (size_t i = 1; i < f->n_tensors; i++) {
    const struct qs_st_tensor *a = &f->tensors[i - 1], *b = &f->tensors[i];
    int ra = qs_dtype_st_rank(a->dtype), rb = qs_dtype_st_rank(b->dtype);
    CHECK(ra > rb || (ra == rb && strcmp(a->name, b->name) < 0));
    CHECK_EQ_INT(b->begin, a->end);
  }
}

static void test_round_trip(void) {
  char *dir = tmp_path("known"), *single = tmp_path("known/single/model.safetensors");
  char *sdir = tmp_path("known/single");
  CHECK_EQ_INT(write_known_sets(dir), QS_OK);
  struct qs_st_file f;
  CHECK_EQ_INT(qs_st_open(&f, single), QS_OK);
  check_known_file(&f);
  qs_st_close(&f);
  // Through the checkpoint API: directory form, float conversion of every float type.
  struct qs_ckpt c;
  CHECK_EQ_INT(qs_ckpt_open(&c, sdir), QS_OK);
  CHECK_EQ_INT(c.n_files, 1);
  float v[16];
  CHECK_EQ_INT(qs_ckpt_read_f32(&c, "f16", 2, (int64_t[]){2, 3}, v), QS_OK);
  CHECK_CLOSE(v[5], 1.5, 0, 0); // (5 - 2) * 0.5 is exact in f16: zero tolerance
  CHECK_EQ_INT(qs_ckpt_read_f32(&c, "bf16", 2, (int64_t[]){4, 2}, v), QS_OK);
  CHECK_CLOSE(v[7], 0.5, 0, 0);
  CHECK_EQ_INT(qs_ckpt_read_f32(&c, "fp8", 1, (int64_t[]){5}, v), QS_OK);
  CHECK_CLOSE(v[4], 2.0, 0, 0);
  CHECK_EQ_INT(qs_ckpt_read_f32(&c, "scalar", 0, NULL, v), QS_OK);
  CHECK_CLOSE(v[0], 3.5, 0, 0);
  CHECK_EQ_INT(qs_ckpt_read_f32(&c, "i64", 2, (int64_t[]){2, 2}, v), QS_OK);
  CHECK_CLOSE(v[0], (double)((int64_t)1 << 40) - 3, 0, 1e-7); // f32 rounding of a 41-bit integer
  qs_ckpt_close(&c);
  free(dir); free(single); free(sdir);
}

static void check_sharded_index(const char *dir, size_t n_shards) {
  char *ipath = qs_path_join(dir, "model.safetensors.index.json");
  json_error_t err;
  json_t *root = json_load_file(ipath, 0, &err);
  CHECK(root != NULL);
  json_t *wm = json_object_get(root, "weight_map");
  CHECK_EQ_INT(json_object_size(wm), 13);
  CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(root, "metadata"), "total_size")), 12 * 1024 + 128);
  // Greedy: 1 KiB tensors fit twice under 2500 bytes -> layers 2s and 2s+1 share shard s + 1.
  char want[64];
  snprintf(want, sizeof(want), "model-00003-of-%05zu.safetensors", n_shards);
  CHECK(!strcmp(json_string_value(json_object_get(wm, "model.layers.4.weight")), want));
  CHECK(!strcmp(json_string_value(json_object_get(wm, "model.layers.5.weight")), want));
  json_decref(root);
  free(ipath);
}

static void test_sharding(void) {
  char *dir = tmp_path("known/sharded");
  // 12 x 1024 B in pairs = 6 shards; lm_head (128 B) still fits next to layers 10 and 11
  // (2048 + 128 <= 2500), so 6 shards in all.
  size_t n_shards = 6;
  struct qs_ckpt c;
  CHECK_EQ_INT(qs_ckpt_open(&c, dir), QS_OK);
  CHECK_EQ_INT(c.n_files, n_shards);
  CHECK_EQ_INT(c.n_tensors, 13);
  float w[256], want[256];
  for (int l = 0; l < 12; l++) {
    char name[64];
    snprintf(name, sizeof(name), "model.layers.%d.weight", l);
    CHECK_EQ_INT(qs_ckpt_read_f32(&c, name, 2, (int64_t[]){16, 16}, w), QS_OK);
    sharded_fill(l, want);
    CHECK(memcmp(w, want, sizeof(w)) == 0);
  }
  const struct qs_st_tensor *t = NULL;
  CHECK_EQ_INT(qs_ckpt_get(&c, "lm_head.weight", 1u << QS_DTYPE_BF16, 2, (int64_t[]){8, 8}, &t), QS_OK);
  CHECK(t && strstr(t->file, "model-00006-of-00006.safetensors"));
  for (size_t i = 0; i < c.n_files; i++) CHECK_EQ_INT(c.files[i].header_len % 8, 0);
  qs_ckpt_close(&c);
  check_sharded_index(dir, n_shards);
  free(dir);
}

// A single file written into a directory that held shards replaces the stale index.
static void test_rewrite_layout(void) {
  char *dir = tmp_path("rewrite");
  struct qs_st_writer *w = NULL;
  float x[300] = {0};
  CHECK_EQ_INT(qs_st_writer_init(&w, dir, 1000), QS_OK);
  CHECK_EQ_INT(qs_st_writer_add(w, "a", QS_DTYPE_F32, 1, (int64_t[]){200}, x, 0), QS_OK);
  CHECK_EQ_INT(qs_st_writer_add(w, "b", QS_DTYPE_F32, 1, (int64_t[]){200}, x, 0), QS_OK);
  CHECK_EQ_INT(qs_st_writer_finish(w), QS_OK);
  qs_st_writer_free(w);
  struct qs_ckpt c;
  CHECK_EQ_INT(qs_ckpt_open(&c, dir), QS_OK);
  CHECK_EQ_INT(c.n_files, 2);
  qs_ckpt_close(&c);
  CHECK_EQ_INT(qs_st_writer_init(&w, dir, 0), QS_OK);
  CHECK_EQ_INT(qs_st_writer_add(w, "c", QS_DTYPE_F32, 1, (int64_t[]){300}, x, 0), QS_OK);
  CHECK_EQ_INT(qs_st_writer_finish(w), QS_OK);
  qs_st_writer_free(w);
  CHECK_EQ_INT(qs_ckpt_open(&c, dir), QS_OK);
  CHECK_EQ_INT(c.n_files, 1);
  CHECK(qs_ckpt_find(&c, "c") != NULL && qs_ckpt_find(&c, "a") == NULL);
  qs_ckpt_close(&c);
  free(dir);
}

static void test_writer_rejects(void) {
  struct qs_st_writer *w = NULL;
  char *dir = tmp_path("rejects");
  float x[4] = {0};
  CHECK_EQ_INT(qs_st_writer_init(&w, dir, 0), QS_OK);
  CHECK_EQ_INT(qs_st_writer_add(w, "x", QS_DTYPE_F32, 1, (int64_t[]){4}, x, 1), QS_OK);
  CHECK_EQ_INT(qs_st_writer_add(w, "x", QS_DTYPE_F32, 1, (int64_t[]){4}, x, 1), QS_ERR_ARG);
  CHECK_EQ_INT(qs_st_writer_add(w, "y", QS_DTYPE_F32, 2, (int64_t[]){-1, 4}, x, 1), QS_ERR_ARG);
  CHECK_EQ_INT(qs_st_writer_add(w, "z", QS_DTYPE_F32, 1, (int64_t[]){4}, NULL, 1), QS_ERR_ARG);
  CHECK_EQ_INT(qs_st_writer_add(w, "__metadata__", QS_DTYPE_F32, 1, (int64_t[]){4}, x, 1), QS_ERR_ARG);
  CHECK_EQ_INT(qs_st_writer_add(w, "big", QS_DTYPE_I64, 2, (int64_t[]){INT64_MAX, 4}, x, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_st_writer_add(w, "bad\xff", QS_DTYPE_F32, 1, (int64_t[]){4}, x, 1), QS_ERR_ARG);
  CHECK_EQ_INT(qs_st_writer_add(w, "nine", QS_DTYPE_F32, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, x, 1), QS_ERR_ARG);
  qs_st_writer_free(w);
  free(dir);
}

// ---- crafted bad files ---------------------------------------------------------------------------

// Writes [u64 hlen][header][buffer_len zero bytes]; hlen = strlen(header) unless given (>= 0).
static char *craft(const char *name, long long hlen, const char *header, size_t buffer_len) {
  char *path = tmp_path(name);
  size_t n = strlen(header);
  unsigned char *bytes = calloc(8 + n + buffer_len, 1);
  uint64_t h = hlen >= 0 ? (uint64_t)hlen : n;
  for (int i = 0; i < 8; i++) bytes[i] = (unsigned char)(h >> (8 * i));
  memcpy(bytes + 8, header, n);
  if (qs_file_write_all(path, bytes, 8 + n + buffer_len) != QS_OK) exit(1);
  free(bytes);
  return path;
}

static qs_status open_crafted(const char *name, long long hlen, const char *header, size_t buffer_len) {
  char *path = craft(name, hlen, header, buffer_len);
  struct qs_st_file f;
  qs_status st = qs_st_open(&f, path);
  if (st == QS_OK) qs_st_close(&f);
  free(path);
  return st;
}

#define T(dt, shape, b, e) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_reader_rejects(void) {
  char *p = tmp_path("short.safetensors");
  CHECK_EQ_INT(qs_file_write_all(p, "\x10\0\0\0\0", 5), QS_OK);
  struct qs_st_file f;
  CHECK_EQ_INT(qs_st_open(&f, p), QS_ERR_FORMAT); // shorter than 8 bytes
  free(p);
  CHECK_EQ_INT(open_crafted("long.st", 1000, "{}", 0), QS_ERR_FORMAT);            // header past EOF
  CHECK_EQ_INT(open_crafted("huge.st", 100000001, "{}", 0), QS_ERR_FORMAT);       // over 100 MB limit
  CHECK_EQ_INT(open_crafted("notobj.st", -1, "[1, 2]", 0), QS_ERR_FORMAT);         // not '{'
  CHECK_EQ_INT(open_crafted("badjson.st", -1, "{\"a\": ", 0), QS_ERR_FORMAT);      // bad JSON
  CHECK_EQ_INT(open_crafted("dup.st", -1, "{\"a\":" T("U8", "[1]", 0, 1) ",\"a\":" T("U8", "[1]", 1, 2) "}", 2), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("f64.st", -1, "{\"a\":" T("F64", "[1]", 0, 8) "}", 8), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(open_crafted("xyz.st", -1, "{\"a\":" T("XYZ", "[1]", 0, 8) "}", 8), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(open_crafted("nodtype.st", -1, "{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("shapestr.st", -1, "{\"a\":{\"dtype\":\"U8\",\"shape\":\"1\",\"data_offsets\":[0,1]}}", 1), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("offs3.st", -1, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("entry.st", -1, "{\"a\": 5}", 0), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("negdim.st", -1, "{\"a\":" T("U8", "[-1]", 0, 0) "}", 0), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("size.st", -1, "{\"a\":" T("F32", "[2, 2]", 0, 12) "}", 12), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("endlt.st", -1, "{\"a\":" T("U8", "[0]", 8, 4) "}", 8), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("ovflow.st", -1, "{\"a\":" T("I64", "[4611686018427387904, 4]", 0, 8) "}", 8), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("overlap.st", -1, "{\"a\":" T("F32", "[2]", 0, 8) ",\"b\":" T("F32", "[2]", 4, 12) "}", 12), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("gap.st", -1, "{\"a\":" T("F32", "[2]", 0, 8) ",\"b\":" T("F32", "[2]", 12, 20) "}", 20), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("first.st", -1, "{\"a\":" T("F32", "[2]", 4, 12) "}", 12), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("range.st", -1, "{\"a\":" T("F32", "[2]", 0, 8) "}", 4), QS_ERR_FORMAT);   // past EOF
  CHECK_EQ_INT(open_crafted("trail.st", -1, "{\"a\":" T("F32", "[2]", 0, 8) "}", 12), QS_ERR_FORMAT);  // extra bytes
  CHECK_EQ_INT(open_crafted("meta.st", -1, "{\"__metadata__\":{\"n\":1}}", 0), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("metaobj.st", -1, "{\"__metadata__\":[]}", 0), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_crafted("emptyfile.st", -1, "{}", 3), QS_ERR_FORMAT);
}

// Legal corner cases: no tensors, 0-dim, zero-size tensors sharing an offset, an unpadded header
// (data not aligned in memory: read_f32 must still convert correctly).
static void test_reader_accepts(void) {
  CHECK_EQ_INT(open_crafted("none.st", -1, "{}", 0), QS_OK);
  CHECK_EQ_INT(open_crafted("spaces.st", -1, "{\"__metadata__\":{\"format\":\"pt\"}}     ", 0), QS_OK);
  const char *h = "{\"z\":" T("F32", "[0, 5]", 4, 4) ",\"s\":" T("F32", "[]", 0, 4) ",\"y\":" T("U8", "[0]", 4, 4)
                  ",\"w\":" T("F32", "[2]", 4, 12) "}";
  CHECK(strlen(h) % 4 != 0); // w starts at byte 8 + strlen(h) + 4 of the file: not 4-aligned
  char *path = craft("corner.safetensors", -1, h, 12);
  struct qs_ckpt c;
  CHECK_EQ_INT(qs_ckpt_open(&c, path), QS_OK);
  CHECK_EQ_INT(c.n_tensors, 4);
  float v[2] = {1, 1};
  CHECK_EQ_INT(qs_ckpt_read_f32(&c, "w", 1, (int64_t[]){2}, v), QS_OK);
  CHECK(v[0] == 0.0f && v[1] == 0.0f);
  CHECK_EQ_INT(qs_ckpt_read_f32(&c, "z", 2, (int64_t[]){0, 5}, v), QS_OK);
  const struct qs_st_tensor *t = qs_ckpt_find(&c, "s");
  CHECK(t && t->ndim == 0 && qs_st_numel(t) == 1);
  qs_ckpt_close(&c);
  free(path);
}

// ---- checkpoint errors ---------------------------------------------------------------------------

static void write_text(const char *rel, const char *text) {
  char *p = tmp_path(rel);
  if (qs_file_write_all(p, text, strlen(text)) != QS_OK) exit(1);
  free(p);
}

static qs_status open_ckpt_dir(const char *rel) {
  char *p = tmp_path(rel);
  struct qs_ckpt c;
  qs_status st = qs_ckpt_open(&c, p);
  if (st == QS_OK) qs_ckpt_close(&c);
  free(p);
  return st;
}

static void test_ckpt_rejects(void) {
  char *d = tmp_path("ck");
  CHECK_EQ_INT(qs_dir_make(d), QS_OK);
  free(d);
  CHECK_EQ_INT(open_ckpt_dir("ck"), QS_ERR_IO); // neither model.safetensors nor an index
  CHECK_EQ_INT(open_ckpt_dir("ck/nonexistent"), QS_ERR_IO);
  free(craft("ck/s1.safetensors", -1, "{\"a\":" T("U8", "[2]", 0, 2) ",\"x\":" T("U8", "[1]", 2, 3) "}", 3));
  free(craft("ck/s2.safetensors", -1, "{\"b\":" T("U8", "[2]", 0, 2) ",\"x\":" T("U8", "[1]", 2, 3) "}", 3));
  // Missing shard.
  write_text("ck/model.safetensors.index.json", "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s3.safetensors\"}}");
  CHECK_EQ_INT(open_ckpt_dir("ck"), QS_ERR_IO);
  // Tensor mapped to a shard that lacks it.
  write_text("ck/model.safetensors.index.json", "{\"weight_map\": {\"a\": \"s2.safetensors\", \"b\": \"s2.safetensors\"}}");
  CHECK_EQ_INT(open_ckpt_dir("ck"), QS_ERR_FORMAT);
  // Tensor x present in both shards.
  write_text("ck/model.safetensors.index.json", "{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\"}}");
  CHECK_EQ_INT(open_ckpt_dir("ck"), QS_ERR_FORMAT);
  // A shard tensor that weight_map does not name (x) is still readable (with a warning).
  write_text("ck/model.safetensors.index.json", "{\"weight_map\": {\"a\": \"s1.safetensors\"}}");
  char *ck = tmp_path("ck");
  struct qs_ckpt c;
  CHECK_EQ_INT(qs_ckpt_open(&c, ck), QS_OK);
  CHECK(c.n_files == 1 && qs_ckpt_find(&c, "x") != NULL);
  if (c.path) qs_ckpt_close(&c);
  free(ck);
  write_text("ck/model.safetensors.index.json", "{\"weight_map\": {\"a\": \"../s1.safetensors\"}}");
  CHECK_EQ_INT(open_ckpt_dir("ck"), QS_ERR_FORMAT);
  write_text("ck/model.safetensors.index.json", "{\"weight_map\": {\"a\": \"s1.safetensors\", \"a\": \"s1.safetensors\"}}");
  CHECK_EQ_INT(open_ckpt_dir("ck"), QS_ERR_FORMAT); // duplicate key in the index
  write_text("ck/model.safetensors.index.json", "{\"weight_map\": [");
  CHECK_EQ_INT(open_ckpt_dir("ck"), QS_ERR_FORMAT);
}

static void test_ckpt_get(void) {
  char *p = craft("get.safetensors", -1, "{\"w\":" T("BF16", "[2, 3]", 0, 12) "}", 12);
  struct qs_ckpt c;
  const struct qs_st_tensor *t = NULL;
  CHECK_EQ_INT(qs_ckpt_open(&c, p), QS_OK);
  CHECK_EQ_INT(qs_ckpt_get(&c, "w", 1u << QS_DTYPE_BF16, 2, (int64_t[]){2, 3}, &t), QS_OK);
  CHECK(t != NULL);
  CHECK_EQ_INT(qs_ckpt_get(&c, "missing", 0, 0, NULL, &t), QS_ERR_FORMAT);
  CHECK(t == NULL);
  CHECK_EQ_INT(qs_ckpt_get(&c, "w", 0, 2, (int64_t[]){2, 4}, &t), QS_ERR_FORMAT);
  CHECK_EQ_INT(qs_ckpt_get(&c, "w", 0, 1, (int64_t[]){6}, &t), QS_ERR_FORMAT);
  CHECK_EQ_INT(qs_ckpt_get(&c, "w", (1u << QS_DTYPE_F32) | (1u << QS_DTYPE_F16), 0, NULL, &t), QS_ERR_UNSUPPORTED);
  float v[6];
  CHECK_EQ_INT(qs_ckpt_read_f32(&c, "nope", 0, NULL, v), QS_ERR_FORMAT);
  qs_ckpt_close(&c);
  free(p);
}

// ---- real checkpoints ----------------------------------------------------------------------------

static void test_data(const char *data) {
  char *s = qs_path_join(data, "stories260K/model.safetensors"), *g = qs_path_join(data, "gutenberg28M");
  struct qs_ckpt c;
  const struct qs_st_tensor *t = NULL;
  CHECK_EQ_INT(qs_ckpt_open(&c, s), QS_OK);
  CHECK_EQ_INT(c.n_tensors, 47); // embed + 5 layers x 9 + final norm (tied lm_head)
  CHECK_EQ_INT(qs_ckpt_get(&c, "model.embed_tokens.weight", 1u << QS_DTYPE_F32, 2, (int64_t[]){512, 64}, &t), QS_OK);
  CHECK_EQ_INT(qs_ckpt_get(&c, "model.layers.0.mlp.up_proj.weight", 0, 2, (int64_t[]){172, 64}, &t), QS_OK);
  CHECK_EQ_INT(qs_ckpt_get(&c, "model.layers.0.mlp.up_proj.weight", 0, 2, (int64_t[]){172, 65}, &t), QS_ERR_FORMAT);
  float norm[64];
  CHECK_EQ_INT(qs_ckpt_read_f32(&c, "model.norm.weight", 1, (int64_t[]){64}, norm), QS_OK);
  CHECK_CLOSE(norm[0], 2.458309, 1e-6, 0); // value printed by safetensors.numpy (%.7g): 1e-6 covers the print rounding
  CHECK(qs_st_meta(&c.files[0], "format") && !strcmp(qs_st_meta(&c.files[0], "format"), "pt"));
  qs_ckpt_close(&c);
  CHECK_EQ_INT(qs_ckpt_open(&c, g), QS_OK);
  CHECK_EQ_INT(c.n_files, 4);
  CHECK_EQ_INT(c.n_tensors, 74); // embed + 8 layers x 9 + final norm
  CHECK_EQ_INT(qs_ckpt_get(&c, "model.embed_tokens.weight", 1u << QS_DTYPE_BF16, 2, (int64_t[]){8192, 512}, &t), QS_OK);
  CHECK(t && strstr(t->file, "model-00001-of-00004.safetensors"));
  CHECK_EQ_INT(qs_ckpt_get(&c, "model.layers.7.mlp.down_proj.weight", 1u << QS_DTYPE_BF16, 2, (int64_t[]){512, 1536}, &t), QS_OK);
  CHECK_EQ_INT(qs_ckpt_get(&c, "model.layers.3.self_attn.k_proj.weight", 0, 2, (int64_t[]){128, 512}, &t), QS_OK);
  uint64_t total = 0;
  for (size_t i = 0; i < c.n_tensors; i++) total += c.by_name[i]->end - c.by_name[i]->begin;
  CHECK_EQ_INT(total, 56640512); // "total_size" of its index
  qs_ckpt_close(&c);
  free(s);
  free(g);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--write")) return write_known_sets(argv[2]) == QS_OK ? 0 : 1;
  if (argc == 2 && !strcmp(argv[1], "--data")) {
    const char *data = qs_test_data_dir();
    if (!data || !qs_path_is_dir(data)) QS_TEST_SKIP("QS_DATA_DIR not set or missing: no real checkpoints to read");
    test_data(data);
    return qs_test_finish("test_safetensors --data");
  }
  const char *base = getenv("TMPDIR");
  snprintf(g_tmp, sizeof(g_tmp), "%s/qs_st_XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(g_tmp)) { perror("mkdtemp"); return 1; }
  test_round_trip();
  test_sharding();
  test_rewrite_layout();
  test_writer_rejects();
  test_reader_rejects();
  test_reader_accepts();
  test_ckpt_rejects();
  test_ckpt_get();
  int rc = qs_test_finish("test_safetensors");
  if (rc == 0) qs_dir_remove_tree(g_tmp); // kept on failure for inspection
  return rc;
}
