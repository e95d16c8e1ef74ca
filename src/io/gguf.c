// gguf.c — GGUF v3 writer and reader (contract and layout: gguf.h; shared/FORMATS.md §5.1). The
// validation rules follow ggml/src/gguf.cpp gguf_init_from_file_impl, so a file this reader accepts
// is one llama.cpp accepts, and every file the writer makes passes this reader.
#ifdef __linux__
#define _GNU_SOURCE // fallocate(2): reserves blocks, or says EOPNOTSUPP (glibc's posix_fallocate would
                    // instead emulate it by writing one byte per block: hours for hundreds of GB)
#endif
#include "io/gguf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/ggml_types.h"

// GGUF is little-endian and numbers are copied as they lie in memory.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "io/gguf.c assumes a little-endian host"
#endif

#define QS_GGUF_MAX_KEY 65535u // docs/gguf.md: keys are at most 2^16 - 1 bytes

static const struct {
  const char *name;
  size_t size;
} k_gguf_types[QS_GGUF_TYPE_COUNT] = {
    [QS_GGUF_U8] = {"u8", 1},    [QS_GGUF_I8] = {"i8", 1},     [QS_GGUF_U16] = {"u16", 2},
    [QS_GGUF_I16] = {"i16", 2},  [QS_GGUF_U32] = {"u32", 4},   [QS_GGUF_I32] = {"i32", 4},
    [QS_GGUF_F32] = {"f32", 4},  [QS_GGUF_BOOL] = {"bool", 1}, [QS_GGUF_STRING] = {"str", 0},
    [QS_GGUF_ARRAY] = {"arr", 0}, [QS_GGUF_U64] = {"u64", 8},  [QS_GGUF_I64] = {"i64", 8},
    [QS_GGUF_F64] = {"f64", 8},
};

const char *qs_gguf_type_name(int type) {
  return type >= 0 && type < QS_GGUF_TYPE_COUNT ? k_gguf_types[type].name : NULL;
}
size_t qs_gguf_type_size(int type) { return qs_gguf_type_name(type) ? k_gguf_types[type].size : 0; }

static uint64_t pad_to(uint64_t x, uint64_t align) { return (x + align - 1) / align * align; }

// Byte size of a tensor (the caller checked ne >= 0 and the type); UINT64_MAX when ne[0] is not a
// multiple of the block size or the element count / byte size overflows (gguf.cpp's limits).
static uint64_t tensor_nbytes(int type, const int64_t ne[QS_GGUF_MAX_DIMS]) {
  int64_t blck = qs_ggml_blck_size(type), tsize = qs_ggml_type_size(type);
  if (blck <= 0 || ne[0] % blck) return UINT64_MAX;
  if (ne[0] && ne[1] && ne[2] && ne[3] &&
      (INT64_MAX / ne[1] <= ne[0] || INT64_MAX / ne[2] <= ne[0] * ne[1] ||
       INT64_MAX / ne[3] <= ne[0] * ne[1] * ne[2]))
    return UINT64_MAX;
  uint64_t blocks = (uint64_t)(ne[0] / blck) * (uint64_t)ne[1] * (uint64_t)ne[2] * (uint64_t)ne[3];
  if (blocks && (uint64_t)tsize > UINT64_MAX / blocks) return UINT64_MAX;
  return blocks * (uint64_t)tsize;
}

// ==== writer ======================================================================================

struct qs_gguf_wtensor {
  char name[QS_GGUF_MAX_NAME + 1];
  int type, n_dims;
  int64_t ne[QS_GGUF_MAX_DIMS];
  uint64_t nbytes;
  uint64_t offset;          // relative to the data section (set by open)
  _Atomic uint64_t written; // bytes claimed by write_part / write_tensor
  _Atomic int whole;        // write_tensor was called
};

struct qs_gguf_writer {
  unsigned char *kv; // serialized KVs, in call order
  size_t kv_len, kv_cap;
  char **keys;       // for the duplicate check
  size_t n_kv;
  uint32_t alignment;
  struct qs_gguf_wtensor *t;
  size_t n_t, cap_t;
  char *path;        // set by open
  struct qs_tmpfile file;
  uint64_t data_offset, file_size;
  int state;         // 0 adding, 1 open, 2 committed, 3 failed
};

static const char *writer_name(const struct qs_gguf_writer *w) { return w->path ? w->path : "gguf writer"; }

qs_status qs_gguf_writer_init(struct qs_gguf_writer **out) {
  qs_status status = QS_OK;
  struct qs_gguf_writer *w = NULL;
  QS_ALLOC(w, 1);
  w->alignment = QS_GGUF_DEFAULT_ALIGNMENT;
  w->file.fd = -1;
fail:
  *out = w;
  return status;
}

void qs_gguf_writer_free(struct qs_gguf_writer *w) {
  if (!w) return;
  if (w->state != 0) qs_tmpfile_abort(&w->file); // a no-op after commit
  for (size_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
  free(w->keys);
  free(w->kv);
  free(w->t);
  free(w->path);
  free(w);
}

static qs_status kv_put(struct qs_gguf_writer *w, const void *p, size_t n) {
  qs_status status = QS_OK;
  if (w->kv_len + n > w->kv_cap) {
    size_t cap = QS_MAX(w->kv_cap * 2, w->kv_len + n + 4096);
    unsigned char *k = realloc(w->kv, cap);
    if (!k) QS_FAIL(QS_ERR_OOM, "%s: out of memory for %zu bytes of metadata", writer_name(w), cap);
    w->kv = k;
    w->kv_cap = cap;
  }
  if (n) memcpy(w->kv + w->kv_len, p, n);
  w->kv_len += n;
fail:
  return status;
}
static qs_status kv_put_u32(struct qs_gguf_writer *w, uint32_t v) { return kv_put(w, &v, 4); }
static qs_status kv_put_u64(struct qs_gguf_writer *w, uint64_t v) { return kv_put(w, &v, 8); }
static qs_status kv_put_str(struct qs_gguf_writer *w, const char *s) {
  qs_status status = QS_OK;
  uint64_t n = strlen(s);
  QS_TRY(kv_put_u64(w, n));
  QS_TRY(kv_put(w, s, n));
fail:
  return status;
}

// Checks the key and the writer's state, records the key and writes it with the value type.
static qs_status kv_begin(struct qs_gguf_writer *w, const char *key, int type) {
  qs_status status = QS_OK;
  if (w->state != 0) QS_FAIL(QS_ERR_ARG, "%s: key '%s' set after open", writer_name(w), key ? key : "");
  size_t n = key ? strlen(key) : 0;
  if (n == 0 || n > QS_GGUF_MAX_KEY) QS_FAIL(QS_ERR_ARG, "gguf writer: key of %zu bytes (1..65535 allowed)", n);
  for (size_t i = 0; i < n; i++)
    if (key[i] <= ' ' || key[i] > '~') QS_FAIL(QS_ERR_ARG, "gguf writer: key '%s' is not printable ASCII", key);
  for (size_t i = 0; i < w->n_kv; i++)
    if (!strcmp(w->keys[i], key)) QS_FAIL(QS_ERR_ARG, "gguf writer: duplicate key '%s'", key);
  if (!strcmp(key, QS_GGUF_KEY_ALIGNMENT) && type != QS_GGUF_U32)
    QS_FAIL(QS_ERR_ARG, "gguf writer: %s must be u32, not %s", key, qs_gguf_type_name(type));
  char **keys = realloc(w->keys, (w->n_kv + 1) * sizeof(*keys));
  if (!keys) QS_FAIL(QS_ERR_OOM, "gguf writer: out of memory");
  w->keys = keys;
  if (!(w->keys[w->n_kv] = strdup(key))) QS_FAIL(QS_ERR_OOM, "gguf writer: out of memory");
  w->n_kv++;
  QS_TRY(kv_put_str(w, key));
  QS_TRY(kv_put_u32(w, (uint32_t)type));
fail:
  return status;
}

static qs_status set_scalar(struct qs_gguf_writer *w, const char *key, int type, const void *v) {
  qs_status status = QS_OK;
  QS_TRY(kv_begin(w, key, type));
  QS_TRY(kv_put(w, v, k_gguf_types[type].size));
fail:
  return status;
}

#define QS_GGUF_SETTER(suffix, ctype, TYPE)                                                     \
  qs_status qs_gguf_writer_set_##suffix(struct qs_gguf_writer *w, const char *key, ctype v) {  \
    return set_scalar(w, key, TYPE, &v);                                                       \
  }
QS_GGUF_SETTER(u8, uint8_t, QS_GGUF_U8)
QS_GGUF_SETTER(i8, int8_t, QS_GGUF_I8)
QS_GGUF_SETTER(u16, uint16_t, QS_GGUF_U16)
QS_GGUF_SETTER(i16, int16_t, QS_GGUF_I16)
QS_GGUF_SETTER(i32, int32_t, QS_GGUF_I32)
QS_GGUF_SETTER(u64, uint64_t, QS_GGUF_U64)
QS_GGUF_SETTER(i64, int64_t, QS_GGUF_I64)
QS_GGUF_SETTER(f32, float, QS_GGUF_F32)
QS_GGUF_SETTER(f64, double, QS_GGUF_F64)
#undef QS_GGUF_SETTER
qs_status qs_gguf_writer_set_bool(struct qs_gguf_writer *w, const char *key, int v) {
  uint8_t b = v != 0;
  return set_scalar(w, key, QS_GGUF_BOOL, &b);
}

qs_status qs_gguf_writer_set_u32(struct qs_gguf_writer *w, const char *key, uint32_t v) {
  qs_status status = QS_OK;
  if (key && !strcmp(key, QS_GGUF_KEY_ALIGNMENT) && (v == 0 || (v & (v - 1))))
    QS_FAIL(QS_ERR_ARG, "gguf writer: %s = %" PRIu32 " is not a power of two", key, v);
  QS_TRY(set_scalar(w, key, QS_GGUF_U32, &v));
  if (!strcmp(key, QS_GGUF_KEY_ALIGNMENT)) w->alignment = v;
fail:
  return status;
}

qs_status qs_gguf_writer_set_string(struct qs_gguf_writer *w, const char *key, const char *v) {
  qs_status status = QS_OK;
  if (!v) QS_FAIL(QS_ERR_ARG, "gguf writer: key '%s': NULL string", key ? key : "");
  QS_TRY(kv_begin(w, key, QS_GGUF_STRING));
  QS_TRY(kv_put_str(w, v));
fail:
  return status;
}

qs_status qs_gguf_writer_set_array(struct qs_gguf_writer *w, const char *key, enum qs_gguf_type elem,
                                   const void *data, uint64_t n) {
  qs_status status = QS_OK;
  size_t es = qs_gguf_type_size(elem);
  if (!es)
    QS_FAIL(QS_ERR_ARG, "gguf writer: key '%s': array element type %d is not a number type", key ? key : "", (int)elem);
  if (n && !data) QS_FAIL(QS_ERR_ARG, "gguf writer: key '%s': NULL data for %" PRIu64 " elements", key ? key : "", n);
  if (n > SIZE_MAX / es) QS_FAIL(QS_ERR_ARG, "gguf writer: key '%s': %" PRIu64 " elements", key ? key : "", n);
  QS_TRY(kv_begin(w, key, QS_GGUF_ARRAY));
  QS_TRY(kv_put_u32(w, (uint32_t)elem));
  QS_TRY(kv_put_u64(w, n));
  if (elem == QS_GGUF_BOOL) {
    for (uint64_t i = 0; i < n; i++) {
      uint8_t b = ((const uint8_t *)data)[i] != 0;
      QS_TRY(kv_put(w, &b, 1));
    }
  } else {
    QS_TRY(kv_put(w, data, (size_t)n * es));
  }
fail:
  return status;
}

qs_status qs_gguf_writer_set_array_string(struct qs_gguf_writer *w, const char *key, const char *const *v,
                                          uint64_t n) {
  qs_status status = QS_OK;
  for (uint64_t i = 0; i < n; i++)
    if (!v[i]) QS_FAIL(QS_ERR_ARG, "gguf writer: key '%s': string %" PRIu64 " is NULL", key ? key : "", i);
  QS_TRY(kv_begin(w, key, QS_GGUF_ARRAY));
  QS_TRY(kv_put_u32(w, QS_GGUF_STRING));
  QS_TRY(kv_put_u64(w, n));
  for (uint64_t i = 0; i < n; i++) QS_TRY(kv_put_str(w, v[i]));
fail:
  return status;
}

qs_status qs_gguf_writer_add_tensor(struct qs_gguf_writer *w, const char *name, int ggml_type, int n_dims,
                                    const int64_t *ne, size_t *index) {
  qs_status status = QS_OK;
  const char *nm = name ? name : "";
  size_t len = strlen(nm);
  if (w->state != 0) QS_FAIL(QS_ERR_ARG, "%s: tensor '%s' added after open", writer_name(w), nm);
  if (len == 0 || len > QS_GGUF_MAX_NAME)
    QS_FAIL(QS_ERR_ARG, "gguf writer: tensor name '%s' has %zu bytes (1..63 allowed)", nm, len);
  if (n_dims < 1 || n_dims > QS_GGUF_MAX_DIMS)
    QS_FAIL(QS_ERR_ARG, "gguf writer: tensor '%s': n_dims %d (1..4 allowed)", nm, n_dims);
  if (!qs_ggml_type_name(ggml_type)) QS_FAIL(QS_ERR_ARG, "gguf writer: tensor '%s': unknown ggml type %d", nm, ggml_type);
  for (size_t i = 0; i < w->n_t; i++)
    if (!strcmp(w->t[i].name, nm)) QS_FAIL(QS_ERR_ARG, "gguf writer: duplicate tensor name '%s'", nm);
  int64_t full[QS_GGUF_MAX_DIMS] = {1, 1, 1, 1};
  for (int i = 0; i < n_dims; i++) {
    if (ne[i] < 0) QS_FAIL(QS_ERR_ARG, "gguf writer: tensor '%s': ne[%d] = %" PRId64 " < 0", nm, i, ne[i]);
    full[i] = ne[i];
  }
  if (full[0] % qs_ggml_blck_size(ggml_type))
    QS_FAIL(QS_ERR_ARG, "gguf writer: tensor '%s' of type %s: ne[0] = %" PRId64 " is not a multiple of the block size %d",
            nm, qs_ggml_type_name(ggml_type), full[0], qs_ggml_blck_size(ggml_type));
  uint64_t nbytes = tensor_nbytes(ggml_type, full);
  if (nbytes == UINT64_MAX) QS_FAIL(QS_ERR_ARG, "gguf writer: tensor '%s': size overflows", nm);
  if (w->n_t == w->cap_t) {
    size_t cap = w->cap_t ? 2 * w->cap_t : 64;
    struct qs_gguf_wtensor *t = realloc(w->t, cap * sizeof(*t));
    if (!t) QS_FAIL(QS_ERR_OOM, "gguf writer: out of memory for %zu tensors", cap);
    w->t = t;
    w->cap_t = cap;
  }
  struct qs_gguf_wtensor *t = &w->t[w->n_t];
  memset(t, 0, sizeof(*t));
  memcpy(t->name, nm, len + 1);
  t->type = ggml_type;
  t->n_dims = n_dims;
  memcpy(t->ne, full, sizeof(full));
  t->nbytes = nbytes;
  atomic_init(&t->written, 0);
  atomic_init(&t->whole, 0);
  if (index) *index = w->n_t;
  w->n_t++;
fail:
  return status;
}

size_t qs_gguf_writer_n_tensors(const struct qs_gguf_writer *w) { return w->n_t; }
uint64_t qs_gguf_writer_tensor_bytes(const struct qs_gguf_writer *w, size_t i) { return i < w->n_t ? w->t[i].nbytes : 0; }
uint64_t qs_gguf_writer_tensor_offset(const struct qs_gguf_writer *w, size_t i) {
  return i < w->n_t ? w->data_offset + w->t[i].offset : 0;
}

// Header + KVs + tensor infos + zero padding to the alignment, into a malloc'ed buffer; sets the
// tensors' offsets, w->data_offset and w->file_size.
static qs_status build_header(struct qs_gguf_writer *w, unsigned char **out, size_t *out_len) {
  qs_status status = QS_OK;
  size_t len = 24 + w->kv_len;
  for (size_t i = 0; i < w->n_t; i++) len += 8 + strlen(w->t[i].name) + 4 + 8 * (size_t)w->t[i].n_dims + 4 + 8;
  w->data_offset = pad_to(len, w->alignment);
  unsigned char *buf = NULL, *p;
  QS_ALLOC(buf, w->data_offset);
  p = buf;
#define PUT(src, n) (memcpy(p, (src), (n)), p += (n))
  uint32_t version = QS_GGUF_VERSION;
  uint64_t n_t = w->n_t, n_kv = w->n_kv, off = 0;
  PUT(QS_GGUF_MAGIC, 4);
  PUT(&version, 4);
  PUT(&n_t, 8);
  PUT(&n_kv, 8);
  if (w->kv_len) PUT(w->kv, w->kv_len); // no keys: kv is NULL
  for (size_t i = 0; i < w->n_t; i++) {
    struct qs_gguf_wtensor *t = &w->t[i];
    uint64_t nlen = strlen(t->name);
    uint32_t nd = (uint32_t)t->n_dims, type = (uint32_t)t->type;
    PUT(&nlen, 8);
    PUT(t->name, nlen);
    PUT(&nd, 4);
    PUT(t->ne, 8 * nd);
    PUT(&type, 4);
    t->offset = off;
    PUT(&off, 8);
    if (t->nbytes > UINT64_MAX - w->alignment - off) QS_FAIL(QS_ERR_ARG, "%s: data section overflows", w->path);
    off += pad_to(t->nbytes, w->alignment);
  }
#undef PUT
  if (off > UINT64_MAX - w->data_offset) QS_FAIL(QS_ERR_ARG, "%s: file size overflows", w->path);
  w->file_size = w->data_offset + off;
  *out = buf;
  *out_len = w->data_offset; // calloc'ed: the padding is zeros
  buf = NULL;
fail:
  free(buf);
  return status;
}

qs_status qs_gguf_writer_open(struct qs_gguf_writer *w, const char *path) {
  qs_status status = QS_OK;
  unsigned char *hdr = NULL;
  size_t hdr_len = 0;
  if (w->state != 0) QS_FAIL(QS_ERR_ARG, "%s: writer opened twice", writer_name(w));
  if (!(w->path = strdup(path))) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(build_header(w, &hdr, &hdr_len));
  w->state = 3; // from here on free() removes the temporary file
  QS_TRY(qs_tmpfile_open(&w->file, w->path));
  QS_TRY(qs_write_full(w->file.fd, hdr, hdr_len, w->file.tmp));
  // The final length now: the data section reads as zeros until written (so does the padding), and
  // a full disk shows up here rather than hours later (where the file system can reserve blocks).
  if (ftruncate(w->file.fd, (off_t)w->file_size) != 0)
    QS_FAIL(QS_ERR_IO, "%s: cannot size the file to %" PRIu64 " bytes: %s", w->file.tmp, w->file_size, strerror(errno));
#ifdef __linux__
  if (w->file_size > hdr_len && fallocate(w->file.fd, 0, (off_t)hdr_len, (off_t)(w->file_size - hdr_len)) != 0 &&
      errno != EOPNOTSUPP && errno != ENOSYS)
    QS_FAIL(QS_ERR_IO, "%s: cannot reserve %" PRIu64 " bytes: %s", w->file.tmp, w->file_size, strerror(errno));
#endif
  w->state = 1;
fail:
  free(hdr);
  return status;
}

qs_status qs_gguf_writer_write_part(struct qs_gguf_writer *w, size_t index, uint64_t begin, const void *data,
                                    uint64_t size) {
  qs_status status = QS_OK;
  if (w->state != 1) QS_FAIL(QS_ERR_ARG, "%s: tensor data written before open or after commit", writer_name(w));
  if (index >= w->n_t) QS_FAIL(QS_ERR_ARG, "%s: tensor index %zu of %zu", w->path, index, w->n_t);
  struct qs_gguf_wtensor *t = &w->t[index];
  if (begin > t->nbytes || size > t->nbytes - begin)
    QS_FAIL(QS_ERR_ARG, "%s: tensor '%s': bytes [%" PRIu64 ", +%" PRIu64 ") outside its %" PRIu64, w->path, t->name,
            begin, size, t->nbytes);
  uint64_t before = atomic_fetch_add(&t->written, size);
  if (before + size > t->nbytes)
    QS_FAIL(QS_ERR_ARG, "%s: tensor '%s': %" PRIu64 " bytes written in all, more than its %" PRIu64 " (written twice?)",
            w->path, t->name, before + size, t->nbytes);
  const char *p = data;
  uint64_t off = w->data_offset + t->offset + begin;
  while (size > 0) {
    ssize_t n = pwrite(w->file.fd, p, size > (1u << 30) ? (1u << 30) : (size_t)size, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      QS_FAIL(QS_ERR_IO, "%s: writing tensor '%s' at offset %" PRIu64 " failed: %s", w->file.tmp, t->name, off,
              n < 0 ? strerror(errno) : "no progress");
    p += n;
    off += (uint64_t)n;
    size -= (uint64_t)n;
  }
fail:
  return status;
}

qs_status qs_gguf_writer_write_tensor(struct qs_gguf_writer *w, size_t index, const void *data, uint64_t size) {
  qs_status status = QS_OK;
  if (w->state == 1 && index < w->n_t) { // else write_part reports the state or the index
    struct qs_gguf_wtensor *t = &w->t[index];
    if (size != t->nbytes)
      QS_FAIL(QS_ERR_ARG, "%s: tensor '%s': %" PRIu64 " bytes given, its size is %" PRIu64, w->path, t->name, size,
              t->nbytes);
    if (atomic_exchange(&t->whole, 1)) QS_FAIL(QS_ERR_ARG, "%s: tensor '%s' written twice", w->path, t->name);
  }
  QS_TRY(qs_gguf_writer_write_part(w, index, 0, data, size));
fail:
  return status;
}

qs_status qs_gguf_writer_commit(struct qs_gguf_writer *w) {
  qs_status status = QS_OK;
  if (w->state != 1) QS_FAIL(QS_ERR_ARG, "%s: commit before open or twice", writer_name(w));
  size_t bad = 0;
  for (size_t i = 0; i < w->n_t; i++) {
    uint64_t got = atomic_load(&w->t[i].written);
    if (got == w->t[i].nbytes) continue;
    if (bad++ < 5)
      qs_log(QS_LOG_ERROR, "%s: tensor %zu '%s': %" PRIu64 " of %" PRIu64 " bytes written", w->path, i, w->t[i].name,
             got, w->t[i].nbytes);
  }
  if (bad) QS_FAIL(QS_ERR_ARG, "%s: %zu of %zu tensors not written exactly once; the file is not committed", w->path,
                   bad, w->n_t);
  w->state = 3;
  QS_TRY(qs_tmpfile_commit(&w->file));
  w->state = 2;
fail:
  return status;
}

// ==== reader ======================================================================================

// Sequential parse of the header with buffered reads; every read is checked against the file size.
struct rd {
  FILE *fp;
  const char *path;
  uint64_t pos, size;
};

static qs_status rd_bytes(struct rd *r, void *dst, uint64_t n, const char *what) {
  qs_status status = QS_OK;
  if (n > r->size - r->pos)
    QS_FAIL(QS_ERR_FORMAT, "%s: truncated: %s needs %" PRIu64 " bytes at offset %" PRIu64 ", the file has %" PRIu64,
            r->path, what, n, r->pos, r->size);
  if (n && fread(dst, 1, (size_t)n, r->fp) != n)
    QS_FAIL(QS_ERR_IO, "%s: read failed at offset %" PRIu64 ": %s", r->path, r->pos,
            ferror(r->fp) ? strerror(errno) : "end of file");
  r->pos += n;
fail:
  return status;
}
static qs_status rd_u32(struct rd *r, uint32_t *v, const char *what) { return rd_bytes(r, v, 4, what); }
static qs_status rd_u64(struct rd *r, uint64_t *v, const char *what) { return rd_bytes(r, v, 8, what); }

// A GGUF string into a malloc'ed NUL-terminated copy.
static qs_status rd_str(struct rd *r, char **s, uint64_t *len, const char *what) {
  qs_status status = QS_OK;
  uint64_t n;
  *s = NULL;
  QS_TRY(rd_u64(r, &n, what));
  if (n > r->size - r->pos)
    QS_FAIL(QS_ERR_FORMAT,
            "%s: %s: string of %" PRIu64 " bytes at offset %" PRIu64 " runs past the end of the file (%" PRIu64
            " bytes)",
            r->path, what, n, r->pos, r->size);
  QS_ALLOC(*s, n + 1);
  QS_TRY(rd_bytes(r, *s, n, what));
  if (len) *len = n;
fail:
  return status;
}

static void kv_free(struct qs_gguf_kv *kv) {
  if (kv->elem == QS_GGUF_STRING && kv->data)
    for (uint64_t i = 0; i < kv->n; i++) free(((char **)kv->data)[i]);
  free(kv->data);
  free(kv->lens);
  free(kv->key);
}

// One KV (gguf.cpp: key non-empty, value type known, array elements neither arrays nor unknown).
static qs_status read_kv(struct rd *r, size_t i, struct qs_gguf_kv *kv) {
  qs_status status = QS_OK;
  char what[96];
  uint32_t type;
  snprintf(what, sizeof(what), "key %zu", i);
  QS_TRY(rd_str(r, &kv->key, NULL, what));
  if (!kv->key[0]) QS_FAIL(QS_ERR_FORMAT, "%s: key %zu is empty", r->path, i);
  snprintf(what, sizeof(what), "the value of key '%.60s'", kv->key);
  QS_TRY(rd_u32(r, &type, what));
  kv->type = kv->elem = (int)type;
  kv->n = 1;
  if (type == QS_GGUF_ARRAY) {
    QS_TRY(rd_u32(r, &type, what));
    kv->elem = (int)type;
    QS_TRY(rd_u64(r, &kv->n, what));
    if (type == QS_GGUF_ARRAY)
      QS_FAIL(QS_ERR_FORMAT, "%s: key '%s' is an array of arrays (nested arrays are not allowed)", r->path, kv->key);
  }
  if (type >= QS_GGUF_TYPE_COUNT || type == QS_GGUF_ARRAY)
    QS_FAIL(QS_ERR_FORMAT, "%s: key '%s' has invalid GGUF type %" PRIu32, r->path, kv->key, type);
  // Bytes the elements need at the least: a count the file cannot hold is refused before allocating.
  uint64_t least = type == QS_GGUF_STRING ? 8 : k_gguf_types[type].size;
  if (kv->n > (r->size - r->pos) / least)
    QS_FAIL(QS_ERR_FORMAT, "%s: key '%s': %" PRIu64 " elements of %s run past the end of the file (%" PRIu64 " bytes)",
            r->path, kv->key, kv->n, k_gguf_types[type].name, r->size);
  if (type == QS_GGUF_STRING) {
    QS_ALLOC(kv->lens, kv->n);
    char **s = NULL;
    QS_ALLOC(s, kv->n);
    kv->data = s;
    for (uint64_t j = 0; j < kv->n; j++) QS_TRY(rd_str(r, &s[j], &kv->lens[j], what));
  } else {
    QS_ALLOC(kv->data, kv->n * least);
    QS_TRY(rd_bytes(r, kv->data, kv->n * least, what));
    if (type == QS_GGUF_BOOL)
      for (uint64_t j = 0; j < kv->n; j++) ((uint8_t *)kv->data)[j] = ((uint8_t *)kv->data)[j] != 0;
  }
fail:
  return status;
}

// One tensor info (gguf.cpp: name < 64 bytes, n_dims <= 4, ne >= 0 without overflow, a known type
// with a block size, ne[0] a multiple of it).
static qs_status read_tensor_info(struct rd *r, size_t i, struct qs_gguf_tensor *t) {
  qs_status status = QS_OK;
  char what[96], *name = NULL;
  uint64_t len;
  uint32_t nd, type;
  snprintf(what, sizeof(what), "tensor info %zu", i);
  QS_TRY(rd_str(r, &name, &len, what));
  if (len > QS_GGUF_MAX_NAME)
    QS_FAIL(QS_ERR_FORMAT, "%s: tensor %zu name is too long: %" PRIu64 " bytes >= 64", r->path, i, len);
  memcpy(t->name, name, len + 1);
  snprintf(what, sizeof(what), "tensor '%s'", t->name);
  QS_TRY(rd_u32(r, &nd, what));
  if (nd > QS_GGUF_MAX_DIMS)
    QS_FAIL(QS_ERR_FORMAT, "%s: tensor '%s' has %" PRIu32 " dimensions (at most 4)", r->path, t->name, nd);
  t->n_dims = (int)nd;
  for (int j = 0; j < QS_GGUF_MAX_DIMS; j++) {
    t->ne[j] = 1;
    if (j < (int)nd) QS_TRY(rd_bytes(r, &t->ne[j], 8, what));
    if (t->ne[j] < 0) QS_FAIL(QS_ERR_FORMAT, "%s: tensor '%s': ne[%d] = %" PRId64 " < 0", r->path, t->name, j, t->ne[j]);
  }
  QS_TRY(rd_u32(r, &type, what));
  t->type = (int)type;
  if (!qs_ggml_type_name(t->type))
    QS_FAIL(QS_ERR_FORMAT, "%s: tensor '%s' has ggml type %" PRIu32 ", unknown (ids %d and above are too new for "
            "qshard, 4-5 and 31-33 were removed)", r->path, t->name, type, QS_GGML_TYPE_MAX);
  if (t->ne[0] % qs_ggml_blck_size(t->type))
    QS_FAIL(QS_ERR_FORMAT,
            "%s: tensor '%s' of type %s has %" PRId64 " elements per row, not a multiple of the block size %d", r->path,
            t->name, qs_ggml_type_name(t->type), t->ne[0], qs_ggml_blck_size(t->type));
  t->nbytes = tensor_nbytes(t->type, t->ne);
  if (t->nbytes == UINT64_MAX)
    QS_FAIL(QS_ERR_FORMAT,
            "%s: tensor '%s' [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "]: element count or size overflows",
            r->path, t->name, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
  QS_TRY(rd_u64(r, &t->offset, what));
fail:
  free(name);
  return status;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

// First duplicate among n names: its first two places *i < *j; 0 when all differ, -1 on OOM.
static int find_duplicate(const char *const *names, size_t n, size_t *i, size_t *j) {
  const char **sorted = malloc((n ? n : 1) * sizeof(*sorted));
  const char *dup = NULL;
  if (!sorted) return -1;
  memcpy(sorted, names, n * sizeof(*sorted));
  qsort(sorted, n, sizeof(*sorted), cmp_str);
  for (size_t k = 1; k < n && !dup; k++)
    if (!strcmp(sorted[k - 1], sorted[k])) dup = sorted[k];
  free(sorted);
  if (!dup) return 0;
  for (*i = 0; strcmp(names[*i], dup); (*i)++) {}
  for (*j = *i + 1; strcmp(names[*j], dup); (*j)++) {}
  return 1;
}

static qs_status check_unique(const char *path, const char *const *names, size_t n, const char *what) {
  qs_status status = QS_OK;
  size_t i = 0, j = 0;
  int d = find_duplicate(names, n, &i, &j);
  if (d < 0) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (d) QS_FAIL(QS_ERR_FORMAT, "%s: duplicate %s '%s' (%zu and %zu)", path, what, names[i], i, j);
fail:
  return status;
}

static qs_status read_header(struct qs_gguf_file *f, struct rd *r) {
  qs_status status = QS_OK;
  char magic[4];
  uint64_t n_t, n_kv;
  const char **names = NULL;
  QS_TRY(rd_bytes(r, magic, 4, "the magic"));
  if (memcmp(magic, QS_GGUF_MAGIC, 4))
    QS_FAIL(QS_ERR_FORMAT, "%s: invalid magic '%c%c%c%c', expected 'GGUF'", f->path,
            isprint((unsigned char)magic[0]) ? magic[0] : '?', isprint((unsigned char)magic[1]) ? magic[1] : '?',
            isprint((unsigned char)magic[2]) ? magic[2] : '?', isprint((unsigned char)magic[3]) ? magic[3] : '?');
  QS_TRY(rd_u32(r, &f->version, "the version"));
  if (f->version == 0) QS_FAIL(QS_ERR_FORMAT, "%s: bad GGUF version 0", f->path);
  if ((f->version & 0xFFFF) == 0)
    QS_FAIL(QS_ERR_FORMAT, "%s: GGUF version %" PRIu32 " is a byte-swapped one: a big-endian file?", f->path, f->version);
  if (f->version == 1) QS_FAIL(QS_ERR_FORMAT, "%s: GGUFv1 is no longer supported (version 2 or 3 expected)", f->path);
  if (f->version > QS_GGUF_VERSION)
    QS_FAIL(QS_ERR_FORMAT, "%s: GGUF version %" PRIu32 " is newer than %d", f->path, f->version, QS_GGUF_VERSION);
  QS_TRY(rd_u64(r, &n_t, "the tensor count"));
  QS_TRY(rd_u64(r, &n_kv, "the KV count"));
  // Counts the file cannot hold are refused before allocating: a KV takes at least 13 bytes (key
  // length, type, a 1-byte value), a tensor info 24 (name length, n_dims, type, offset).
  uint64_t left = r->size - r->pos;
  if (n_kv > left / 13 || n_t > left / 24 || n_kv * 13 > left - n_t * 24)
    QS_FAIL(QS_ERR_FORMAT, "%s: %" PRIu64 " KVs and %" PRIu64 " tensors cannot fit in a file of %" PRIu64 " bytes",
            f->path, n_kv, n_t, r->size);
  QS_ALLOC(f->kv, n_kv);
  for (f->n_kv = 0; f->n_kv < n_kv;) {
    struct qs_gguf_kv *kv = &f->kv[f->n_kv++];
    QS_TRY(read_kv(r, f->n_kv - 1, kv));
  }
  QS_ALLOC(names, QS_MAX(n_kv, n_t));
  for (size_t i = 0; i < n_kv; i++) names[i] = f->kv[i].key;
  QS_TRY(check_unique(f->path, names, n_kv, "key"));
  f->alignment = QS_GGUF_DEFAULT_ALIGNMENT;
  const struct qs_gguf_kv *al = qs_gguf_find_kv(f, QS_GGUF_KEY_ALIGNMENT);
  if (al && al->type != QS_GGUF_U32)
    QS_FAIL(QS_ERR_FORMAT, "%s: key '%s' must be of type u32 but is %s", f->path, QS_GGUF_KEY_ALIGNMENT,
            qs_gguf_type_name(al->type));
  if (al) f->alignment = *(const uint32_t *)al->data;
  if (f->alignment == 0 || (f->alignment & (f->alignment - 1)))
    QS_FAIL(QS_ERR_FORMAT, "%s: alignment %" PRIu64 " is not a power of 2", f->path, f->alignment);
  QS_ALLOC(f->tensors, n_t);
  for (f->n_tensors = 0; f->n_tensors < n_t; f->n_tensors++)
    QS_TRY(read_tensor_info(r, f->n_tensors, &f->tensors[f->n_tensors]));
  for (size_t i = 0; i < n_t; i++) names[i] = f->tensors[i].name;
  QS_TRY(check_unique(f->path, names, n_t, "tensor name"));
fail:
  free(names);
  return status;
}

// The data section and each tensor's place in it: offsets exactly sequential in info order
// (gguf.cpp), and the bytes within the file (llama-model-loader).
static qs_status check_data(struct qs_gguf_file *f, uint64_t end_of_infos) {
  qs_status status = QS_OK;
  f->data_offset = f->n_tensors ? pad_to(end_of_infos, f->alignment) : end_of_infos; // as gguf.cpp
  if (f->n_tensors && f->data_offset > f->file_size)
    QS_FAIL(QS_ERR_FORMAT, "%s: the data section starts at %" PRIu64 ", past the end of the file (%" PRIu64 " bytes)",
            f->path, f->data_offset, f->file_size);
  uint64_t expect = 0;
  for (size_t i = 0; i < f->n_tensors; i++) {
    const struct qs_gguf_tensor *t = &f->tensors[i];
    if (t->offset != expect)
      QS_FAIL(QS_ERR_FORMAT, "%s: tensor '%s' has offset %" PRIu64 ", expected %" PRIu64, f->path, t->name, t->offset,
              expect);
    if (t->nbytes > f->file_size - f->data_offset || t->offset > f->file_size - f->data_offset - t->nbytes)
      QS_FAIL(QS_ERR_FORMAT,
              "%s: tensor '%s' data [%" PRIu64 ", %" PRIu64 ") is not within the file (%" PRIu64 " bytes): truncated?",
              f->path, t->name, f->data_offset + t->offset, f->data_offset + t->offset + t->nbytes, f->file_size);
    if (t->nbytes > UINT64_MAX - f->alignment - expect)
      QS_FAIL(QS_ERR_FORMAT, "%s: data section size overflows", f->path);
    expect += pad_to(t->nbytes, f->alignment);
  }
fail:
  return status;
}

qs_status qs_gguf_open(struct qs_gguf_file *f, const char *path) {
  qs_status status = QS_OK;
  struct stat st;
  struct rd r = {.path = path};
  memset(f, 0, sizeof(*f));
  f->fd = -1;
  if (!(f->path = strdup(path))) QS_FAIL(QS_ERR_OOM, "out of memory");
  f->fd = open(path, O_RDONLY);
  if (f->fd < 0) QS_FAIL(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  if (fstat(f->fd, &st) != 0) QS_FAIL(QS_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) QS_FAIL(QS_ERR_IO, "%s: not a regular file", path);
  f->file_size = r.size = (uint64_t)st.st_size;
  if (!(r.fp = fopen(path, "rb"))) QS_FAIL(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  QS_TRY(read_header(f, &r));
  QS_TRY(check_data(f, r.pos));
fail:
  if (r.fp) fclose(r.fp);
  if (status != QS_OK) qs_gguf_close(f);
  return status;
}

void qs_gguf_close(struct qs_gguf_file *f) {
  for (size_t i = 0; i < f->n_kv; i++) kv_free(&f->kv[i]);
  free(f->kv);
  free(f->tensors);
  if (f->map) munmap(f->map, f->map_size);
  if (f->fd >= 0) close(f->fd);
  free(f->path);
  memset(f, 0, sizeof(*f));
  f->fd = -1;
}

const struct qs_gguf_kv *qs_gguf_find_kv(const struct qs_gguf_file *f, const char *key) {
  for (size_t i = 0; i < f->n_kv; i++)
    if (!strcmp(f->kv[i].key, key)) return &f->kv[i];
  return NULL;
}

// "u32", or "arr[str]" for an array.
static const char *kv_type_str(int type, int elem, char *buf, size_t cap) {
  if (type != QS_GGUF_ARRAY) return qs_gguf_type_name(type);
  snprintf(buf, cap, "arr[%s]", qs_gguf_type_name(elem));
  return buf;
}

// The KV of `key` if it is of (type, elem); else an error naming both types.
static qs_status get_kv(const struct qs_gguf_file *f, const char *key, int type, int elem,
                        const struct qs_gguf_kv **out) {
  qs_status status = QS_OK;
  char a[32], b[32];
  const struct qs_gguf_kv *kv = qs_gguf_find_kv(f, key);
  *out = NULL;
  if (!kv) QS_FAIL(QS_ERR_FORMAT, "%s: key '%s' not found", f->path, key);
  if (kv->type != type || kv->elem != elem)
    QS_FAIL(QS_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", f->path, key,
            kv_type_str(kv->type, kv->elem, a, sizeof(a)), kv_type_str(type, elem, b, sizeof(b)));
  *out = kv;
fail:
  return status;
}

#define QS_GGUF_GETTER(suffix, ctype, TYPE)                                                     \
  qs_status qs_gguf_get_##suffix(const struct qs_gguf_file *f, const char *key, ctype *v) {    \
    const struct qs_gguf_kv *kv;                                                               \
    qs_status st = get_kv(f, key, TYPE, TYPE, &kv);                                            \
    if (st == QS_OK) memcpy(v, kv->data, sizeof(*v));                                          \
    return st;                                                                                 \
  }
QS_GGUF_GETTER(u8, uint8_t, QS_GGUF_U8)
QS_GGUF_GETTER(i8, int8_t, QS_GGUF_I8)
QS_GGUF_GETTER(u16, uint16_t, QS_GGUF_U16)
QS_GGUF_GETTER(i16, int16_t, QS_GGUF_I16)
QS_GGUF_GETTER(u32, uint32_t, QS_GGUF_U32)
QS_GGUF_GETTER(i32, int32_t, QS_GGUF_I32)
QS_GGUF_GETTER(u64, uint64_t, QS_GGUF_U64)
QS_GGUF_GETTER(i64, int64_t, QS_GGUF_I64)
QS_GGUF_GETTER(f32, float, QS_GGUF_F32)
QS_GGUF_GETTER(f64, double, QS_GGUF_F64)
#undef QS_GGUF_GETTER

qs_status qs_gguf_get_bool(const struct qs_gguf_file *f, const char *key, int *v) {
  const struct qs_gguf_kv *kv;
  qs_status st = get_kv(f, key, QS_GGUF_BOOL, QS_GGUF_BOOL, &kv);
  if (st == QS_OK) *v = *(const uint8_t *)kv->data;
  return st;
}

qs_status qs_gguf_get_string(const struct qs_gguf_file *f, const char *key, const char **v) {
  const struct qs_gguf_kv *kv;
  qs_status st = get_kv(f, key, QS_GGUF_STRING, QS_GGUF_STRING, &kv);
  if (st == QS_OK) *v = ((char *const *)kv->data)[0];
  return st;
}

qs_status qs_gguf_get_array(const struct qs_gguf_file *f, const char *key, enum qs_gguf_type elem,
                            const void **data, uint64_t *n) {
  const struct qs_gguf_kv *kv;
  qs_status st = get_kv(f, key, QS_GGUF_ARRAY, (int)elem, &kv);
  if (st == QS_OK) {
    *data = kv->data;
    *n = kv->n;
  }
  return st;
}

qs_status qs_gguf_get_array_string(const struct qs_gguf_file *f, const char *key, const char *const **v,
                                   uint64_t *n) {
  const struct qs_gguf_kv *kv;
  qs_status st = get_kv(f, key, QS_GGUF_ARRAY, QS_GGUF_STRING, &kv);
  if (st == QS_OK) {
    *v = (const char *const *)kv->data;
    *n = kv->n;
  }
  return st;
}

const struct qs_gguf_tensor *qs_gguf_find_tensor(const struct qs_gguf_file *f, const char *name) {
  for (size_t i = 0; i < f->n_tensors; i++)
    if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
  return NULL;
}

qs_status qs_gguf_read_tensor(const struct qs_gguf_file *f, const struct qs_gguf_tensor *t, void *dst,
                              uint64_t cap) {
  qs_status status = QS_OK;
  if (cap < t->nbytes)
    QS_FAIL(QS_ERR_ARG, "%s: tensor '%s' has %" PRIu64 " bytes, the buffer %" PRIu64, f->path, t->name, t->nbytes, cap);
  char *p = dst;
  uint64_t off = f->data_offset + t->offset, left = t->nbytes;
  while (left > 0) {
    ssize_t n = pread(f->fd, p, left > (1u << 30) ? (1u << 30) : (size_t)left, (off_t)off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      QS_FAIL(QS_ERR_IO, "%s: reading tensor '%s' at offset %" PRIu64 " failed: %s", f->path, t->name, off,
              n < 0 ? strerror(errno) : "end of file");
    p += n;
    off += (uint64_t)n;
    left -= (uint64_t)n;
  }
fail:
  return status;
}

qs_status qs_gguf_map_tensor(struct qs_gguf_file *f, const struct qs_gguf_tensor *t, const void **data) {
  qs_status status = QS_OK;
  if (!f->map) {
    void *m = mmap(NULL, (size_t)f->file_size, PROT_READ, MAP_SHARED, f->fd, 0);
    if (m == MAP_FAILED)
      QS_FAIL(QS_ERR_IO, "%s: mmap of %" PRIu64 " bytes failed: %s", f->path, f->file_size, strerror(errno));
    f->map = m;
    f->map_size = (size_t)f->file_size;
  }
  *data = (const char *)f->map + f->data_offset + t->offset;
fail:
  return status;
}
