// safetensors_write.c — safetensors writer and sharded checkpoint output (contract: safetensors.h;
// layout: shared/FORMATS.md §1.2-1.4). Files are byte-compatible with huggingface/safetensors:
// inside a file tensors are sorted by descending dtype rank (tensor.rs enum order), then by name,
// and the JSON header is space-padded to a multiple of 8, so that every tensor starts at an offset
// that is a multiple of its element size (the buffer has no holes, so ordering is the only way).
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QS_ST_INDEX_NAME "model.safetensors.index.json"
#define QS_ST_SINGLE_NAME "model.safetensors"

struct qs_st_wtensor {
  char *name;
  qs_dtype dtype;
  int ndim;
  int64_t shape[QS_ST_MAX_DIMS];
  uint64_t bytes;
  const void *data; // borrowed, or == owned
  void *owned;      // copy made by add(copy = 1); freed once its shard is written
  size_t shard;     // assigned by add(): greedy in insertion order
  uint64_t begin;   // offset inside its shard's buffer, assigned when the shard is written
};

// Shards are assigned as tensors come (greedy in insertion order: a new shard starts when the tensor
// would push a non-empty shard past max_shard_bytes, so a tensor larger than the limit ends up alone),
// and a shard is written as soon as the next one starts — under a provisional name, renamed to
// model-XXXXX-of-YYYYY.safetensors by finish() once the count is known. So a writer holds at most
// one shard of copied data, whatever the checkpoint's size.
struct qs_st_writer {
  char *dir;
  uint64_t max_shard_bytes; // 0 = no limit
  size_t n, cap;
  struct qs_st_wtensor *t; // insertion order
  size_t shard;            // the shard being filled
  uint64_t used;           // its bytes so far
  size_t in_shard;         // its tensors so far
};

qs_status qs_st_writer_init(struct qs_st_writer **w, const char *dir, uint64_t max_shard_bytes) {
  qs_status status = QS_OK;
  struct qs_st_writer *x = NULL;
  QS_ALLOC(x, 1);
  x->dir = strdup(dir);
  if (!x->dir) QS_FAIL(QS_ERR_OOM, "out of memory");
  x->max_shard_bytes = max_shard_bytes;
  *w = x;
  return QS_OK;
fail:
  qs_st_writer_free(x);
  *w = NULL;
  return status;
}

void qs_st_writer_free(struct qs_st_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n; i++) { free(w->t[i].name); free(w->t[i].owned); }
  free(w->t);
  free(w->dir);
  free(w);
}

// ---- add -----------------------------------------------------------------------------------------

static qs_status flush_shard(struct qs_st_writer *w);

// Byte size of the tensor, or an error for a bad dtype / shape (same rules as the reader).
static qs_status tensor_bytes(const struct qs_st_writer *w, const char *name, qs_dtype dtype, int ndim,
                              const int64_t *shape, uint64_t *out) {
  qs_status status = QS_OK;
  if ((unsigned)dtype >= QS_DTYPE_COUNT) QS_FAIL(QS_ERR_ARG, "%s: tensor %s: bad dtype %d", w->dir, name, (int)dtype);
  if (ndim < 0 || ndim > QS_ST_MAX_DIMS || (ndim > 0 && !shape))
    QS_FAIL(QS_ERR_ARG, "%s: tensor %s: bad number of dimensions %d", w->dir, name, ndim);
  uint64_t bytes = qs_dtype_size(dtype);
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) QS_FAIL(QS_ERR_ARG, "%s: tensor %s: dimension %d is negative (%lld)", w->dir, name, i, (long long)shape[i]);
    if (__builtin_mul_overflow(bytes, (uint64_t)shape[i], &bytes))
      QS_FAIL(QS_ERR_ARG, "%s: tensor %s: byte size overflows 64 bits", w->dir, name);
  }
  *out = bytes;
fail:
  return status;
}

// Linear duplicate check: writers hold at most a few thousand tensors (405B GPTQ: ~4,500), i.e.
// ~10 M strcmp over a whole run, negligible next to writing the data.
static int writer_has(const struct qs_st_writer *w, const char *name) {
  for (size_t i = 0; i < w->n; i++)
    if (!strcmp(w->t[i].name, name)) return 1;
  return 0;
}

static qs_status writer_grow(struct qs_st_writer *w) {
  qs_status status = QS_OK;
  if (w->n < w->cap) return QS_OK;
  size_t cap = w->cap ? 2 * w->cap : 64;
  struct qs_st_wtensor *t = realloc(w->t, cap * sizeof(*t));
  if (!t) QS_FAIL(QS_ERR_OOM, "out of memory growing the tensor list to %zu", cap);
  w->t = t;
  w->cap = cap;
fail:
  return status;
}

qs_status qs_st_writer_add(struct qs_st_writer *w, const char *name, qs_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, int copy) {
  qs_status status = QS_OK;
  uint64_t bytes = 0;
  struct qs_st_wtensor t = {0};
  if (!name || !*name || !strcmp(name, "__metadata__"))
    QS_FAIL(QS_ERR_ARG, "%s: invalid tensor name '%s'", w->dir, name ? name : "(null)");
  if (writer_has(w, name)) QS_FAIL(QS_ERR_ARG, "%s: tensor %s added twice", w->dir, name);
  json_t *probe = json_string(name); // NULL unless valid UTF-8, which the JSON header requires
  if (!probe) QS_FAIL(QS_ERR_ARG, "%s: tensor name '%s' is not valid UTF-8", w->dir, name);
  json_decref(probe);
  QS_TRY(tensor_bytes(w, name, dtype, ndim, shape, &bytes));
  if (bytes > 0 && !data) QS_FAIL(QS_ERR_ARG, "%s: tensor %s: %llu bytes but no data", w->dir, name, (unsigned long long)bytes);
  QS_TRY(writer_grow(w));
  if (w->max_shard_bytes && w->in_shard > 0 && w->used + bytes > w->max_shard_bytes) {
    QS_TRY(flush_shard(w)); // the shard is complete: out to disk, its copies freed
    w->shard++;
    w->used = 0;
    w->in_shard = 0;
  }
  t.name = strdup(name);
  if (!t.name) QS_FAIL(QS_ERR_OOM, "out of memory");
  t.dtype = dtype;
  t.ndim = ndim;
  for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
  t.bytes = bytes;
  t.data = data;
  if (copy && bytes > 0) {
    t.owned = malloc(bytes);
    if (!t.owned) QS_FAIL(QS_ERR_OOM, "%s: tensor %s: out of memory copying %llu bytes", w->dir, name, (unsigned long long)bytes);
    memcpy(t.owned, data, bytes);
    t.data = t.owned;
  }
  t.shard = w->shard;
  w->used += bytes;
  w->in_shard++;
  w->t[w->n++] = t;
  return QS_OK;
fail:
  free(t.name);
  free(t.owned);
  return status;
}

// ---- layout --------------------------------------------------------------------------------------

// Reference writer order (tensor.rs prepare()): descending dtype rank, then name.
static int cmp_file_order(const void *a, const void *b) {
  const struct qs_st_wtensor *x = *(const struct qs_st_wtensor *const *)a, *y = *(const struct qs_st_wtensor *const *)b;
  int rx = qs_dtype_st_rank(x->dtype), ry = qs_dtype_st_rank(y->dtype);
  if (rx != ry) return rx > ry ? -1 : 1;
  return strcmp(x->name, y->name);
}

// Tensors of `shard` in file order, with their offsets assigned.
static qs_status shard_order(struct qs_st_writer *w, size_t shard, struct qs_st_wtensor ***out, size_t *n) {
  qs_status status = QS_OK;
  struct qs_st_wtensor **o = NULL;
  size_t k = 0;
  QS_ALLOC(o, w->n);
  for (size_t i = 0; i < w->n; i++)
    if (w->t[i].shard == shard) o[k++] = &w->t[i];
  qsort(o, k, sizeof(*o), cmp_file_order);
  uint64_t pos = 0;
  for (size_t i = 0; i < k; i++) { o[i]->begin = pos; pos += o[i]->bytes; }
  *out = o;
  *n = k;
fail:
  return status;
}

// ---- header --------------------------------------------------------------------------------------

static json_t *tensor_entry(const struct qs_st_wtensor *t) {
  json_t *shape = json_array();
  for (int i = 0; shape && i < t->ndim; i++)
    if (json_array_append_new(shape, json_integer((json_int_t)t->shape[i]))) { json_decref(shape); return NULL; }
  return json_pack("{s:s, s:o, s:[I, I]}", "dtype", qs_dtype_name(t->dtype), "shape", shape,
                   "data_offsets", (json_int_t)t->begin, (json_int_t)(t->begin + t->bytes));
}

// Compact JSON header ({"__metadata__": {"format": "pt"}} first, then tensors in file order),
// right-padded with spaces so that 8 + header length is a multiple of 8.
static qs_status build_header(const char *path, struct qs_st_wtensor **o, size_t n, char **out, size_t *len) {
  qs_status status = QS_OK;
  char *text = NULL;
  json_t *root = json_pack("{s:{s:s}}", "__metadata__", "format", "pt");
  if (!root) QS_FAIL(QS_ERR_OOM, "%s: out of memory building the header", path);
  for (size_t i = 0; i < n; i++) {
    json_t *e = tensor_entry(o[i]);
    if (!e || json_object_set_new(root, o[i]->name, e)) QS_FAIL(QS_ERR_OOM, "%s: out of memory building the header", path);
  }
  text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (!text) QS_FAIL(QS_ERR_OOM, "%s: out of memory serializing the header", path);
  size_t raw = strlen(text), padded = (raw + 7) / 8 * 8;
  char *p = realloc(text, padded + 1);
  if (!p) QS_FAIL(QS_ERR_OOM, "out of memory");
  text = p;
  memset(text + raw, ' ', padded - raw);
  text[padded] = '\0';
  *out = text;
  *len = padded;
  text = NULL;
fail:
  free(text);
  json_decref(root);
  return status;
}

// ---- files ---------------------------------------------------------------------------------------

// Streams [u64 N][header][tensor bytes...] into path.tmp.<pid>, fsyncs and renames: the data is
// never assembled in memory, and a reader never sees a partial file.
static qs_status write_shard_file(const char *path, const char *header, size_t hlen,
                                  struct qs_st_wtensor **o, size_t n) {
  qs_status status = QS_OK;
  struct qs_tmpfile f = {.fd = -1};
  unsigned char lenbuf[8];
  QS_TRY(qs_tmpfile_open(&f, path));
  for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i)); // u64 LE
  QS_TRY(qs_write_full(f.fd, lenbuf, 8, f.tmp));
  QS_TRY(qs_write_full(f.fd, header, hlen, f.tmp));
  for (size_t i = 0; i < n; i++) QS_TRY(qs_write_full(f.fd, o[i]->data, o[i]->bytes, f.tmp));
  QS_TRY(qs_tmpfile_commit(&f));
fail:
  qs_tmpfile_abort(&f);
  return status;
}

// n_shards 0: the provisional name of a shard written before the count is known.
static char *shard_name(size_t shard, size_t n_shards) {
  char buf[64];
  if (n_shards == 0) snprintf(buf, sizeof(buf), "model-%05zu.safetensors.part", shard + 1);
  else if (n_shards == 1) snprintf(buf, sizeof(buf), QS_ST_SINGLE_NAME);
  else snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", shard + 1, n_shards);
  return strdup(buf);
}

// Writes shard `shard` as file shard_name(shard, n_shards) and frees the copies it held.
static qs_status write_shard(struct qs_st_writer *w, size_t shard, size_t n_shards) {
  qs_status status = QS_OK;
  struct qs_st_wtensor **o = NULL;
  size_t n = 0, hlen = 0;
  char *header = NULL, *name = shard_name(shard, n_shards), *path = NULL;
  if (!name || !(path = qs_path_join(w->dir, name))) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(shard_order(w, shard, &o, &n));
  QS_TRY(build_header(path, o, n, &header, &hlen));
  if (hlen > QS_ST_MAX_HEADER) QS_FAIL(QS_ERR_UNSUPPORTED, "%s: header of %zu bytes exceeds the format's limit", path, hlen);
  QS_TRY(write_shard_file(path, header, hlen, o, n));
  for (size_t i = 0; i < n; i++) {
    free(o[i]->owned);
    o[i]->owned = NULL;
    o[i]->data = NULL;
  }
fail:
  free(o);
  free(header);
  free(name);
  free(path);
  return status;
}

static qs_status flush_shard(struct qs_st_writer *w) {
  qs_status status = QS_OK;
  QS_TRY(qs_dir_make(w->dir));
  QS_TRY(write_shard(w, w->shard, 0));
fail:
  return status;
}

// A flushed shard's provisional file to its final name.
static qs_status rename_shard(struct qs_st_writer *w, size_t shard, size_t n_shards) {
  qs_status status = QS_OK;
  char *a = shard_name(shard, 0), *b = shard_name(shard, n_shards), *pa = NULL, *pb = NULL;
  if (!a || !b || !(pa = qs_path_join(w->dir, a)) || !(pb = qs_path_join(w->dir, b))) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (rename(pa, pb) != 0) QS_FAIL(QS_ERR_IO, "rename %s -> %s failed: %s", pa, pb, strerror(errno));
fail:
  free(a);
  free(b);
  free(pa);
  free(pb);
  return status;
}

// {"metadata": {"total_size": N}, "weight_map": {name: shard file}} with sorted keys (HF layout).
static qs_status write_index(struct qs_st_writer *w, size_t n_shards) {
  qs_status status = QS_OK;
  char *text = NULL, *path = NULL, *name = NULL;
  uint64_t total = 0;
  json_t *map = json_object(), *root = NULL;
  if (!map) QS_FAIL(QS_ERR_OOM, "out of memory");
  for (size_t i = 0; i < w->n; i++) {
    total += w->t[i].bytes;
    name = shard_name(w->t[i].shard, n_shards);
    if (!name || json_object_set_new(map, w->t[i].name, json_string(name))) QS_FAIL(QS_ERR_OOM, "out of memory");
    free(name);
    name = NULL;
  }
  root = json_pack("{s:{s:I}, s:O}", "metadata", "total_size", (json_int_t)total, "weight_map", map);
  path = qs_path_join(w->dir, QS_ST_INDEX_NAME);
  if (!root || !path) QS_FAIL(QS_ERR_OOM, "out of memory");
  text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
  if (!text) QS_FAIL(QS_ERR_OOM, "out of memory serializing %s", path);
  size_t len = strlen(text);
  text[len] = '\n'; // json_dumps output has no final newline; replace the NUL (length passed below)
  QS_TRY(qs_file_write_all(path, text, len + 1));
fail:
  free(name);
  free(text);
  free(path);
  json_decref(map);
  json_decref(root);
  return status;
}

// Removes the output of the other layout (a stale index next to a new single file would win over
// it in qs_ckpt_open; stale single file next to new shards would be loaded twice by tools that
// glob *.safetensors). Only the fixed output names are touched.
static qs_status remove_stale(const struct qs_st_writer *w, size_t n_shards) {
  qs_status status = QS_OK;
  char *path = qs_path_join(w->dir, n_shards == 1 ? QS_ST_INDEX_NAME : QS_ST_SINGLE_NAME);
  if (!path) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (unlink(path) != 0 && errno != ENOENT) QS_FAIL(QS_ERR_IO, "%s: cannot remove stale file: %s", path, strerror(errno));
fail:
  free(path);
  return status;
}

// Shards first, the index last: a directory with an index always has every shard it names.
qs_status qs_st_writer_finish(struct qs_st_writer *w) {
  qs_status status = QS_OK;
  QS_TRY(qs_dir_make(w->dir));
  size_t n_shards = w->shard + 1; // an empty checkpoint is one file with no tensors
  QS_TRY(write_shard(w, w->shard, n_shards));
  for (size_t s = 0; s < w->shard; s++) QS_TRY(rename_shard(w, s, n_shards));
  if (n_shards > 1) QS_TRY(write_index(w, n_shards));
  QS_TRY(remove_stale(w, n_shards));
fail:
  return status;
}
