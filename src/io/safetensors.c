// safetensors.c — safetensors reader (mmap, zero-copy, validated as the reference tensor.rs does)
// and sharded checkpoints (model.safetensors.index.json). Contract: safetensors.h; layout and
// validation rules: shared/FORMATS.md §1. The writer is in safetensors_write.c.
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; the zero-copy reader assumes a little-endian host"
#endif

// Dtype strings of safetensors' `enum Dtype` that are well formed but that qshard does not handle
// (FORMATS.md §1.1): a file using them is QS_ERR_UNSUPPORTED, not malformed.
static const char *const k_other_st_dtypes[] = {"BOOL",        "F4",          "F6_E2M3", "F6_E3M2",
                                                "F8_E5M2",     "F8_E8M0",     "F8_E4M3FNUZ",
                                                "F8_E5M2FNUZ", "I16",         "U16",     "U32",
                                                "C64",         "F64",         "U64"};

int64_t qs_st_numel(const struct qs_st_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

// ---- header parsing ------------------------------------------------------------------------------

static qs_status parse_dtype(const char *path, const char *name, const char *s, qs_dtype *out) {
  qs_status status = QS_OK;
  if (qs_dtype_from_name(s, out) == 0) return QS_OK;
  for (size_t i = 0; i < sizeof(k_other_st_dtypes) / sizeof(k_other_st_dtypes[0]); i++)
    if (!strcmp(s, k_other_st_dtypes[i]))
      QS_FAIL(QS_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s, which qshard does not support "
              "(supported: F32 F16 BF16 I32 I64 I8 U8 F8_E4M3)", path, name, s);
  QS_FAIL(QS_ERR_UNSUPPORTED, "%s: tensor %s has unknown dtype '%s' (not a safetensors dtype)",
          path, name, s);
fail:
  return status;
}

// A JSON integer >= 0 (data_offsets and dims); jansson's json_int_t is long long.
static int json_get_u64(const json_t *v, uint64_t *out) {
  if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
  *out = (uint64_t)json_integer_value(v);
  return 0;
}

static qs_status parse_shape(const char *path, struct qs_st_tensor *t, const json_t *shape) {
  qs_status status = QS_OK;
  if (!json_is_array(shape)) QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s: \"shape\" is not an array", path, t->name);
  size_t nd = json_array_size(shape);
  if (nd > QS_ST_MAX_DIMS)
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: tensor %s has %zu dimensions (at most %d supported)", path,
            t->name, nd, QS_ST_MAX_DIMS);
  t->ndim = (int)nd;
  for (size_t i = 0; i < nd; i++) {
    const json_t *d = json_array_get(shape, i);
    if (!json_is_integer(d)) QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s: shape[%zu] is not an integer", path, t->name, i);
    if (json_integer_value(d) < 0)
      QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s: shape[%zu] = %lld is negative", path, t->name, i,
              (long long)json_integer_value(d));
    t->shape[i] = (int64_t)json_integer_value(d);
  }
fail:
  return status;
}

// END - BEGIN must equal prod(shape) * element size, computed without overflow.
static qs_status check_size(const char *path, const struct qs_st_tensor *t) {
  qs_status status = QS_OK;
  uint64_t bytes = qs_dtype_size(t->dtype);
  for (int i = 0; i < t->ndim; i++)
    if (__builtin_mul_overflow(bytes, (uint64_t)t->shape[i], &bytes))
      QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s: byte size of its shape overflows 64 bits", path, t->name);
  if (t->end < t->begin)
    QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] end before begin", path, t->name,
            (unsigned long long)t->begin, (unsigned long long)t->end);
  if (t->end - t->begin != bytes)
    QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] hold %llu bytes but %s with "
            "%d dims needs %llu", path, t->name, (unsigned long long)t->begin,
            (unsigned long long)t->end, (unsigned long long)(t->end - t->begin),
            qs_dtype_name(t->dtype), t->ndim, (unsigned long long)bytes);
fail:
  return status;
}

// One header entry {"dtype": "..", "shape": [..], "data_offsets": [b, e]} (other keys ignored,
// as serde does in the reference reader).
static qs_status parse_tensor(const char *path, const char *name, const json_t *v, struct qs_st_tensor *t) {
  qs_status status = QS_OK;
  t->name = strdup(name);
  if (!t->name) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (!json_is_object(v)) QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s: entry is not a JSON object", path, name);
  const json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
  const json_t *offs = json_object_get(v, "data_offsets");
  if (!dt || !shape || !offs)
    QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s: missing \"%s\"", path, name,
            !dt ? "dtype" : !shape ? "shape" : "data_offsets");
  if (!json_is_string(dt)) QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s: \"dtype\" is not a string", path, name);
  QS_TRY(parse_dtype(path, name, json_string_value(dt), &t->dtype));
  QS_TRY(parse_shape(path, t, shape));
  if (!json_is_array(offs) || json_array_size(offs) != 2 ||
      json_get_u64(json_array_get(offs, 0), &t->begin) || json_get_u64(json_array_get(offs, 1), &t->end))
    QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s: \"data_offsets\" is not [begin, end] of non-negative integers", path, name);
  QS_TRY(check_size(path, t));
fail:
  return status;
}

static qs_status parse_metadata(struct qs_st_file *f, const json_t *meta) {
  qs_status status = QS_OK;
  if (!json_is_object(meta)) QS_FAIL(QS_ERR_FORMAT, "%s: __metadata__ is not a JSON object", f->path);
  size_t n = json_object_size(meta);
  QS_ALLOC(f->meta_keys, n);
  QS_ALLOC(f->meta_values, n);
  const char *key;
  const json_t *val;
  json_object_foreach((json_t *)meta, key, val) {
    if (!json_is_string(val))
      QS_FAIL(QS_ERR_FORMAT, "%s: __metadata__ value of \"%s\" is not a string", f->path, key);
    f->meta_keys[f->n_meta] = strdup(key);
    f->meta_values[f->n_meta] = strdup(json_string_value(val));
    f->n_meta++; // counted before the check below so close() frees both strings
    if (!f->meta_keys[f->n_meta - 1] || !f->meta_values[f->n_meta - 1]) QS_FAIL(QS_ERR_OOM, "out of memory");
  }
fail:
  return status;
}

// Header JSON -> tensors (header order) and metadata. jansson keeps object keys in file order and
// JSON_REJECT_DUPLICATES enforces the format's "no duplicate names" rule.
static qs_status parse_header(struct qs_st_file *f, const char *text, size_t len) {
  qs_status status = QS_OK;
  json_error_t err;
  json_t *root = NULL;
  if (len == 0 || text[0] != '{') QS_FAIL(QS_ERR_FORMAT, "%s: header does not start with '{'", f->path);
  root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
  if (!root) QS_FAIL(QS_ERR_FORMAT, "%s: header is not valid JSON (byte %d): %s", f->path, err.position, err.text);
  if (!json_is_object(root)) QS_FAIL(QS_ERR_FORMAT, "%s: header is not a JSON object", f->path);
  QS_ALLOC(f->tensors, json_object_size(root));
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) {
    if (!strcmp(key, "__metadata__")) {
      QS_TRY(parse_metadata(f, val));
      continue;
    }
    f->n_tensors++; // counted first so close() frees the name on failure
    QS_TRY(parse_tensor(f->path, key, val, &f->tensors[f->n_tensors - 1]));
  }
fail:
  json_decref(root);
  return status;
}

// ---- buffer coverage -----------------------------------------------------------------------------

static int cmp_by_offset(const void *a, const void *b) {
  const struct qs_st_tensor *x = *(const struct qs_st_tensor *const *)a, *y = *(const struct qs_st_tensor *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1; // zero-size tensors before the one they touch
  return strcmp(x->name, y->name);
}

// Sorted by begin, the tensors must tile [0, buffer size) exactly: first begin 0, every begin equal
// to the previous end, last end equal to the buffer size (tensor.rs Metadata::validate).
static qs_status check_coverage(const struct qs_st_file *f, uint64_t buffer_size) {
  qs_status status = QS_OK;
  const struct qs_st_tensor **order = NULL;
  QS_ALLOC(order, f->n_tensors);
  for (size_t i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
  qsort(order, f->n_tensors, sizeof(*order), cmp_by_offset);
  uint64_t pos = 0;
  for (size_t i = 0; i < f->n_tensors; i++) {
    const struct qs_st_tensor *t = order[i];
    if (t->begin == pos) { pos = t->end; continue; }
    if (i == 0) QS_FAIL(QS_ERR_FORMAT, "%s: first tensor %s begins at byte %llu of the data buffer, not 0",
                        f->path, t->name, (unsigned long long)t->begin);
    QS_FAIL(QS_ERR_FORMAT, "%s: tensors %s [%llu, %llu) and %s [%llu, %llu) %s", f->path,
            order[i - 1]->name, (unsigned long long)order[i - 1]->begin, (unsigned long long)pos,
            t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
            t->begin < pos ? "overlap" : "leave a gap between them");
  }
  if (pos != buffer_size)
    QS_FAIL(QS_ERR_FORMAT, "%s: tensors cover %llu bytes but the data buffer after the header has %llu",
            f->path, (unsigned long long)pos, (unsigned long long)buffer_size);
fail:
  free(order);
  return status;
}

// ---- open / close --------------------------------------------------------------------------------

static qs_status map_file(struct qs_st_file *f) {
  qs_status status = QS_OK;
  struct stat st;
  int fd = open(f->path, O_RDONLY);
  if (fd < 0) QS_FAIL(QS_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
  if (fstat(fd, &st) != 0) QS_FAIL(QS_ERR_IO, "%s: cannot stat: %s", f->path, strerror(errno));
  if (!S_ISREG(st.st_mode)) QS_FAIL(QS_ERR_IO, "%s: not a regular file", f->path);
  if (st.st_size < 8)
    QS_FAIL(QS_ERR_FORMAT, "%s: file has %lld bytes, shorter than the 8-byte header length", f->path,
            (long long)st.st_size);
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) QS_FAIL(QS_ERR_IO, "%s: mmap failed: %s", f->path, strerror(errno));
  f->map = m;
  f->map_size = (size_t)st.st_size;
fail:
  if (fd >= 0) close(fd);
  return status;
}

qs_status qs_st_open(struct qs_st_file *f, const char *path) {
  qs_status status = QS_OK;
  memset(f, 0, sizeof(*f));
  f->path = strdup(path);
  if (!f->path) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(map_file(f));
  const unsigned char *p = f->map;
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | p[i]; // u64 little-endian
  if (n > QS_ST_MAX_HEADER)
    QS_FAIL(QS_ERR_FORMAT, "%s: header length %llu exceeds the limit of %llu bytes", path,
            (unsigned long long)n, QS_ST_MAX_HEADER);
  if (8 + n > f->map_size)
    QS_FAIL(QS_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
            (unsigned long long)n, f->map_size);
  f->header_len = n;
  QS_TRY(parse_header(f, (const char *)p + 8, (size_t)n));
  QS_TRY(check_coverage(f, f->map_size - 8 - n));
  for (size_t i = 0; i < f->n_tensors; i++) {
    f->tensors[i].data = p + 8 + n + f->tensors[i].begin;
    f->tensors[i].file = f->path;
  }
  return QS_OK;
fail:
  qs_st_close(f);
  return status;
}

void qs_st_close(struct qs_st_file *f) {
  if (!f) return;
  if (f->map) munmap(f->map, f->map_size);
  for (size_t i = 0; i < f->n_tensors; i++) {
    free(f->tensors[i].name);
    if (f->heap) free((void *)f->tensors[i].data);
  }
  for (size_t i = 0; i < f->n_meta; i++) { free(f->meta_keys[i]); free(f->meta_values[i]); }
  free(f->tensors);
  free(f->meta_keys);
  free(f->meta_values);
  free(f->path);
  memset(f, 0, sizeof(*f));
}

// Linear scan: a file holds at most a few thousand tensors; lookups by name across a checkpoint go
// through qs_ckpt_find's sorted index.
const struct qs_st_tensor *qs_st_find(const struct qs_st_file *f, const char *name) {
  for (size_t i = 0; i < f->n_tensors; i++)
    if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
  return NULL;
}

const char *qs_st_meta(const struct qs_st_file *f, const char *key) {
  for (size_t i = 0; i < f->n_meta; i++)
    if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
  return NULL;
}

// ---- checkpoints ---------------------------------------------------------------------------------

#define QS_ST_INDEX_NAME "model.safetensors.index.json"
#define QS_ST_SINGLE_NAME "model.safetensors"

// Distinct shard file names of weight_map, in order of first appearance. The names point into
// `weight_map` (valid while it lives). Shard names must stay inside the checkpoint directory.
static qs_status index_collect_shards(const char *ipath, json_t *weight_map, const char ***names, size_t *n) {
  qs_status status = QS_OK;
  const char **out = NULL;
  size_t count = 0;
  QS_ALLOC(out, json_object_size(weight_map));
  const char *key;
  json_t *val;
  json_object_foreach(weight_map, key, val) {
    if (!json_is_string(val)) QS_FAIL(QS_ERR_FORMAT, "%s: weight_map entry of %s is not a string", ipath, key);
    const char *s = json_string_value(val);
    if (!*s || s[0] == '/' || strstr(s, ".."))
      QS_FAIL(QS_ERR_FORMAT, "%s: weight_map entry of %s names shard '%s' outside the checkpoint directory",
              ipath, key, s);
    size_t j = 0;
    while (j < count && strcmp(out[j], s)) j++;
    if (j == count) out[count++] = s;
  }
  *names = out;
  *n = count;
  out = NULL;
fail:
  free(out);
  return status;
}

// Every weight_map entry must be present in the shard it names.
static qs_status index_check_entries(const struct qs_ckpt *c, const char *ipath, json_t *weight_map,
                                     const char **shards) {
  qs_status status = QS_OK;
  const char *key;
  json_t *val;
  json_object_foreach(weight_map, key, val) {
    size_t j = 0;
    while (strcmp(shards[j], json_string_value(val))) j++;
    if (!qs_st_find(&c->files[j], key))
      QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s is mapped to shard %s, which does not contain it", ipath,
              key, shards[j]);
  }
fail:
  return status;
}

static qs_status ckpt_open_index(struct qs_ckpt *c, const char *dir, const char *ipath) {
  qs_status status = QS_OK;
  json_error_t err;
  const char **shards = NULL;
  size_t n = 0;
  char *spath = NULL;
  json_t *root = json_load_file(ipath, JSON_REJECT_DUPLICATES, &err);
  if (!root) QS_FAIL(QS_ERR_FORMAT, "%s: not valid JSON (line %d): %s", ipath, err.line, err.text);
  json_t *wm = json_object_get(root, "weight_map");
  if (!json_is_object(wm)) QS_FAIL(QS_ERR_FORMAT, "%s: no \"weight_map\" object", ipath);
  QS_TRY(index_collect_shards(ipath, wm, &shards, &n));
  if (n == 0) QS_FAIL(QS_ERR_FORMAT, "%s: weight_map is empty", ipath);
  QS_ALLOC(c->files, n);
  for (size_t i = 0; i < n; i++) {
    spath = qs_path_join(dir, shards[i]);
    if (!spath) QS_FAIL(QS_ERR_OOM, "out of memory");
    if (!qs_path_exists(spath)) QS_FAIL(QS_ERR_IO, "%s: shard %s does not exist", ipath, spath);
    QS_TRY(qs_st_open(&c->files[i], spath));
    c->n_files++;
    free(spath);
    spath = NULL;
  }
  QS_TRY(index_check_entries(c, ipath, wm, shards));
  // Tensors of the shards that weight_map does not name are kept (vLLM reads every tensor of the
  // listed files); say so, since transformers would not see them.
  size_t in_files = 0;
  for (size_t i = 0; i < c->n_files; i++) in_files += c->files[i].n_tensors;
  if (in_files > json_object_size(wm))
    qs_log(QS_LOG_WARN, "%s: %zu tensors of the shards are not in weight_map; reading them too", ipath,
           in_files - json_object_size(wm));
fail:
  free(spath);
  free(shards);
  json_decref(root);
  return status;
}

static qs_status ckpt_open_single(struct qs_ckpt *c, const char *path) {
  qs_status status = QS_OK;
  QS_ALLOC(c->files, 1);
  QS_TRY(qs_st_open(&c->files[0], path));
  c->n_files = 1;
fail:
  return status;
}

static int cmp_tensor_ptr_name(const void *a, const void *b) {
  return strcmp((*(const struct qs_st_tensor *const *)a)->name, (*(const struct qs_st_tensor *const *)b)->name);
}

// by_name over all tensors of all files; a name found in two files is an error.
static qs_status ckpt_build_index(struct qs_ckpt *c) {
  qs_status status = QS_OK;
  size_t n = 0;
  for (size_t i = 0; i < c->n_files; i++) n += c->files[i].n_tensors;
  QS_ALLOC(c->by_name, n);
  for (size_t i = 0; i < c->n_files; i++)
    for (size_t j = 0; j < c->files[i].n_tensors; j++) c->by_name[c->n_tensors++] = &c->files[i].tensors[j];
  qsort(c->by_name, n, sizeof(*c->by_name), cmp_tensor_ptr_name);
  for (size_t i = 1; i < n; i++)
    if (!strcmp(c->by_name[i - 1]->name, c->by_name[i]->name))
      QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s is in two files: %s and %s", c->path, c->by_name[i]->name,
              c->by_name[i - 1]->file, c->by_name[i]->file);
fail:
  return status;
}

qs_status qs_ckpt_open(struct qs_ckpt *c, const char *path) {
  qs_status status = QS_OK;
  char *ipath = NULL, *spath = NULL;
  memset(c, 0, sizeof(*c));
  c->path = strdup(path);
  if (!c->path) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (!qs_path_exists(path)) QS_FAIL(QS_ERR_IO, "%s: no such file or directory", path);
  if (qs_path_is_dir(path)) {
    ipath = qs_path_join(path, QS_ST_INDEX_NAME);
    spath = qs_path_join(path, QS_ST_SINGLE_NAME);
    if (!ipath || !spath) QS_FAIL(QS_ERR_OOM, "out of memory");
    if (qs_path_exists(ipath)) QS_TRY(ckpt_open_index(c, path, ipath));
    else if (qs_path_exists(spath)) QS_TRY(ckpt_open_single(c, spath));
    else QS_FAIL(QS_ERR_IO, "%s: directory has neither %s nor %s", path, QS_ST_SINGLE_NAME, QS_ST_INDEX_NAME);
  } else {
    QS_TRY(ckpt_open_single(c, path));
  }
  QS_TRY(ckpt_build_index(c));
fail:
  free(ipath);
  free(spath);
  if (status != QS_OK) qs_ckpt_close(c);
  return status;
}

void qs_ckpt_close(struct qs_ckpt *c) {
  if (!c) return;
  for (size_t i = 0; i < c->n_files; i++) qs_st_close(&c->files[i]);
  free(c->files);
  free(c->by_name);
  free(c->path);
  memset(c, 0, sizeof(*c));
}

const struct qs_st_tensor *qs_ckpt_find(const struct qs_ckpt *c, const char *name) {
  struct qs_st_tensor key = {.name = (char *)name};
  const struct qs_st_tensor *kp = &key;
  const struct qs_st_tensor **hit = bsearch(&kp, c->by_name, c->n_tensors, sizeof(*c->by_name), cmp_tensor_ptr_name);
  return hit ? *hit : NULL;
}

// "[172, 64]" into buf.
static const char *format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
  size_t k = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < ndim && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
  return buf;
}

static int shape_equal(const struct qs_st_tensor *t, int ndim, const int64_t *shape) {
  if (t->ndim != ndim) return 0;
  for (int i = 0; i < ndim; i++)
    if (t->shape[i] != shape[i]) return 0;
  return 1;
}

qs_status qs_ckpt_get(const struct qs_ckpt *c, const char *name, unsigned allowed, int ndim,
                      const int64_t *shape, const struct qs_st_tensor **out) {
  qs_status status = QS_OK;
  char got[160], want[160];
  const struct qs_st_tensor *t = qs_ckpt_find(c, name);
  *out = NULL;
  if (!t) QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s not found", c->path, name);
  if (allowed && !(allowed & (1u << t->dtype))) {
    char list[128] = "";
    for (int d = 0; d < QS_DTYPE_COUNT; d++)
      if (allowed & (1u << d)) snprintf(list + strlen(list), sizeof(list) - strlen(list), " %s", qs_dtype_name((qs_dtype)d));
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s, expected one of:%s", c->path, name,
            qs_dtype_name(t->dtype), list);
  }
  if (shape && !shape_equal(t, ndim, shape))
    QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s has shape %s, expected %s", c->path, name,
            format_shape(got, sizeof(got), t->ndim, t->shape), format_shape(want, sizeof(want), ndim, shape));
  *out = t;
fail:
  return status;
}

// Converts in chunks through an aligned bounce buffer when the mapped data is not aligned to its
// element size (files from writers that do not pad the header), so no misaligned loads happen.
qs_status qs_ckpt_read_f32(const struct qs_ckpt *c, const char *name, int ndim, const int64_t *shape,
                           float *dst) {
  qs_status status = QS_OK;
  const struct qs_st_tensor *t = NULL;
  QS_TRY(qs_ckpt_get(c, name, 0, ndim, shape, &t));
  qs_st_read_f32_range(t, 0, (size_t)qs_st_numel(t), dst);
fail:
  return status;
}

void qs_st_read_f32_range(const struct qs_st_tensor *t, size_t first, size_t n, float *dst) {
  const size_t es = qs_dtype_size(t->dtype);
  const char *src = (const char *)t->data + first * es;
  if ((uintptr_t)src % es == 0) {
    qs_convert_to_f32(src, t->dtype, dst, n);
    return;
  }
  uint64_t bounce[512]; // 4 KiB, 8-byte aligned
  size_t chunk = sizeof(bounce) / es;
  for (size_t i = 0; i < n; i += chunk) {
    size_t m = QS_MIN(chunk, n - i);
    memcpy(bounce, src + i * es, m * es);
    qs_convert_to_f32(bounce, t->dtype, dst + i, m);
  }
}

// ---- checkpoints held in memory --------------------------------------------------------------------

qs_status qs_ckpt_init_memory(struct qs_ckpt *c, const char *path) {
  qs_status status = QS_OK;
  memset(c, 0, sizeof(*c));
  QS_ALLOC(c->files, 1);
  c->n_files = 1;
  c->files[0].heap = 1;
  if (!(c->path = strdup(path)) || !(c->files[0].path = strdup(path))) QS_FAIL(QS_ERR_OOM, "out of memory");
  return QS_OK;
fail:
  qs_ckpt_close(c);
  return status;
}

qs_status qs_ckpt_add_owned(struct qs_ckpt *c, const char *name, qs_dtype dt, int ndim, const int64_t *shape,
                            void *data) {
  qs_status status = QS_OK;
  struct qs_st_file *f = &c->files[0];
  struct qs_st_tensor *t = realloc(f->tensors, (f->n_tensors + 1) * sizeof(*t));
  if (!t) QS_FAIL(QS_ERR_OOM, "out of memory");
  f->tensors = t;
  t = &f->tensors[f->n_tensors];
  memset(t, 0, sizeof(*t));
  if (ndim < 0 || ndim > QS_ST_MAX_DIMS) QS_FAIL(QS_ERR_INTERNAL, "%s: %d dimensions", name, ndim);
  if (!(t->name = strdup(name))) QS_FAIL(QS_ERR_OOM, "out of memory");
  t->dtype = dt;
  t->ndim = ndim;
  uint64_t bytes = qs_dtype_size(dt);
  for (int i = 0; i < ndim; i++) bytes *= (uint64_t)(t->shape[i] = shape[i]);
  t->begin = 0;
  t->end = bytes;
  t->data = data;
  t->file = f->path;
  f->n_tensors++;
  data = NULL;
fail:
  free(data);
  return status;
}

qs_status qs_ckpt_seal(struct qs_ckpt *c) { return ckpt_build_index(c); }
