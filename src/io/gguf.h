// gguf.h — the GGUF v3 container of llama.cpp: a writer for files of up to hundreds of GB written
// by one rank (tensor data arriving in any order, from any thread), and a validating reader.
// Layout and rules: shared/FORMATS.md §5.1; reference: ggml/src/gguf.cpp (gguf_init_from_file_impl,
// gguf_write_out) and gguf-py. Tensor types and block sizes: io/ggml_types.h.
//
// File (all little-endian):
//   u32 magic "GGUF" | u32 version (3) | u64 n_tensors | u64 n_kv
//   n_kv x KV:          string key | u32 value_type | value
//                       string = u64 length + bytes (no NUL); bool = 1 byte; array = u32 elem_type,
//                       u64 count, elements (strings each with their own length); no nested arrays
//   n_tensors x info:   string name (<= 63 bytes) | u32 n_dims (1..4) | u64 ne[n_dims] (ne[0] innermost)
//                       | u32 ggml_type | u64 offset (relative to the data section)
//   zero padding to `alignment` (general.alignment, u32 power of two; default 32)
//   data section:       tensor i at offset_i = sum_{j<i} PAD(nbytes_j, alignment), each padded with zeros
// nbytes = ne[0] / blck * type_size * ne[1] * ne[2] * ne[3] (quant blocks never cross rows).
//
// The reader refuses (QS_ERR_FORMAT, message naming the file and the item), as gguf.cpp does: a bad
// magic; version 0, 1 ("GGUFv1 is no longer supported") or > 3, or a byte-swapped version; empty or
// duplicate keys; an unknown value type or an array of arrays; strings or arrays running past the
// end of the file; general.alignment not u32 or not a power of two; tensor names of 64+ bytes or
// duplicated; n_dims > 4; ne < 0 or an element count past INT64_MAX; an unknown ggml type or one
// without a block size; ne[0] not a multiple of the block size; an offset other than the sequential
// one; and (as llama-model-loader does) tensor data past the end of the file.
#ifndef QS_GGUF_H
#define QS_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/qs_common.h"

#define QS_GGUF_MAGIC "GGUF"
#define QS_GGUF_VERSION 3
#define QS_GGUF_DEFAULT_ALIGNMENT 32
#define QS_GGUF_MAX_NAME 63 // bytes of a tensor name (GGML_MAX_NAME 64 with the NUL)
#define QS_GGUF_MAX_DIMS 4
#define QS_GGUF_KEY_ALIGNMENT "general.alignment"

// Value types (gguf.h enum gguf_type).
enum qs_gguf_type {
  QS_GGUF_U8 = 0,
  QS_GGUF_I8 = 1,
  QS_GGUF_U16 = 2,
  QS_GGUF_I16 = 3,
  QS_GGUF_U32 = 4,
  QS_GGUF_I32 = 5,
  QS_GGUF_F32 = 6,
  QS_GGUF_BOOL = 7,
  QS_GGUF_STRING = 8,
  QS_GGUF_ARRAY = 9,
  QS_GGUF_U64 = 10,
  QS_GGUF_I64 = 11,
  QS_GGUF_F64 = 12,
  QS_GGUF_TYPE_COUNT
};

// "u8", "i32", "f32", "bool", "str", "arr", ... as gguf.cpp names them; NULL for an unknown id.
const char *qs_gguf_type_name(int type);
// Bytes of one number of the type (bool: 1); 0 for string, array and unknown ids.
size_t qs_gguf_type_size(int type);

// ---- writer ---------------------------------------------------------------------------------------
// Call order: init; set KVs and add tensor infos (both in file order, interleaved as you like);
// open (writes header + KVs + infos + padding to "<path>.tmp.<pid>" and pre-sizes the file to its
// final length, so padding between tensors reads as zeros); write each tensor's bytes by index, in
// any order and from any number of threads (pwrite at its offset; distinct tensors, or disjoint
// parts of one, may be written concurrently); commit (checks that every tensor got exactly its
// bytes, fsyncs, renames to <path>). free() without commit removes the temporary file.
// KVs: keys are printable ASCII, at most 65535 bytes, never repeated (refused, not overwritten);
// general.alignment must be set as u32, a power of two. Tensors: unique names of 1..63 bytes,
// n_dims 1..4, ne[] innermost-first with ne[i] >= 0, ggml_type known to io/ggml_types.h, ne[0] a
// multiple of its block size. Errors name the path (once known), the key or tensor, and what failed.
struct qs_gguf_writer;

qs_status qs_gguf_writer_init(struct qs_gguf_writer **w);
void qs_gguf_writer_free(struct qs_gguf_writer *w);

qs_status qs_gguf_writer_set_u8(struct qs_gguf_writer *w, const char *key, uint8_t v);
qs_status qs_gguf_writer_set_i8(struct qs_gguf_writer *w, const char *key, int8_t v);
qs_status qs_gguf_writer_set_u16(struct qs_gguf_writer *w, const char *key, uint16_t v);
qs_status qs_gguf_writer_set_i16(struct qs_gguf_writer *w, const char *key, int16_t v);
qs_status qs_gguf_writer_set_u32(struct qs_gguf_writer *w, const char *key, uint32_t v);
qs_status qs_gguf_writer_set_i32(struct qs_gguf_writer *w, const char *key, int32_t v);
qs_status qs_gguf_writer_set_u64(struct qs_gguf_writer *w, const char *key, uint64_t v);
qs_status qs_gguf_writer_set_i64(struct qs_gguf_writer *w, const char *key, int64_t v);
qs_status qs_gguf_writer_set_f32(struct qs_gguf_writer *w, const char *key, float v);
qs_status qs_gguf_writer_set_f64(struct qs_gguf_writer *w, const char *key, double v);
qs_status qs_gguf_writer_set_bool(struct qs_gguf_writer *w, const char *key, int v); // written as 0/1
qs_status qs_gguf_writer_set_string(struct qs_gguf_writer *w, const char *key, const char *v);
// An array of n numbers of type `elem` (not STRING/ARRAY) read from `data` (host layout; BOOL: one
// byte each, written as 0/1).
qs_status qs_gguf_writer_set_array(struct qs_gguf_writer *w, const char *key, enum qs_gguf_type elem,
                                   const void *data, uint64_t n);
// An array of n NUL-terminated strings.
qs_status qs_gguf_writer_set_array_string(struct qs_gguf_writer *w, const char *key, const char *const *v,
                                          uint64_t n);

// Appends a tensor info (file order = call order); *index (may be NULL) receives its index.
qs_status qs_gguf_writer_add_tensor(struct qs_gguf_writer *w, const char *name, int ggml_type, int n_dims,
                                    const int64_t *ne, size_t *index);
size_t qs_gguf_writer_n_tensors(const struct qs_gguf_writer *w);
uint64_t qs_gguf_writer_tensor_bytes(const struct qs_gguf_writer *w, size_t index);

qs_status qs_gguf_writer_open(struct qs_gguf_writer *w, const char *path);
// Absolute file offset of tensor `index` (valid after open).
uint64_t qs_gguf_writer_tensor_offset(const struct qs_gguf_writer *w, size_t index);
// The whole tensor: `size` must equal its byte size.
qs_status qs_gguf_writer_write_tensor(struct qs_gguf_writer *w, size_t index, const void *data, uint64_t size);
// Bytes [begin, begin + size) of the tensor. Parts must not overlap: the writer counts bytes, a
// count past the tensor's size is an error at once, a short count at commit.
qs_status qs_gguf_writer_write_part(struct qs_gguf_writer *w, size_t index, uint64_t begin, const void *data,
                                    uint64_t size);
qs_status qs_gguf_writer_commit(struct qs_gguf_writer *w);

// ---- reader ---------------------------------------------------------------------------------------
struct qs_gguf_kv {
  char *key;
  int type;       // enum qs_gguf_type of the value: a number type, STRING or ARRAY
  int elem;       // arrays: element type; scalars: == type
  uint64_t n;     // elements (1 for a scalar)
  void *data;     // numbers: n values in host layout (bool: one byte 0/1); strings: char *[n], each
                  // NUL-terminated (a GGUF string may itself hold NULs: see lens)
  uint64_t *lens; // strings: byte length of each
};

struct qs_gguf_tensor {
  char name[QS_GGUF_MAX_NAME + 1];
  int type;                      // ggml type (io/ggml_types.h)
  int n_dims;                    // as stored (0..4)
  int64_t ne[QS_GGUF_MAX_DIMS];  // innermost first; 1 beyond n_dims
  uint64_t offset;               // relative to the data section
  uint64_t nbytes;
};

struct qs_gguf_file {
  char *path;
  int fd;
  uint32_t version;
  uint64_t file_size;
  uint64_t alignment;
  uint64_t data_offset;          // absolute offset of the data section (without tensors: the end of
                                 // the header, unpadded, as gguf.cpp has it)
  size_t n_kv;
  struct qs_gguf_kv *kv;         // file order
  size_t n_tensors;
  struct qs_gguf_tensor *tensors; // file order
  void *map;                     // whole file, PROT_READ, made by the first qs_gguf_map_tensor
  size_t map_size;
};

qs_status qs_gguf_open(struct qs_gguf_file *f, const char *path);
void qs_gguf_close(struct qs_gguf_file *f);

// NULL when absent.
const struct qs_gguf_kv *qs_gguf_find_kv(const struct qs_gguf_file *f, const char *key);
// Typed getters: a missing key or a value of another type (an array, a u32 for an i32, ...) is
// QS_ERR_FORMAT with a message naming the file, the key and both types.
qs_status qs_gguf_get_u8(const struct qs_gguf_file *f, const char *key, uint8_t *v);
qs_status qs_gguf_get_i8(const struct qs_gguf_file *f, const char *key, int8_t *v);
qs_status qs_gguf_get_u16(const struct qs_gguf_file *f, const char *key, uint16_t *v);
qs_status qs_gguf_get_i16(const struct qs_gguf_file *f, const char *key, int16_t *v);
qs_status qs_gguf_get_u32(const struct qs_gguf_file *f, const char *key, uint32_t *v);
qs_status qs_gguf_get_i32(const struct qs_gguf_file *f, const char *key, int32_t *v);
qs_status qs_gguf_get_u64(const struct qs_gguf_file *f, const char *key, uint64_t *v);
qs_status qs_gguf_get_i64(const struct qs_gguf_file *f, const char *key, int64_t *v);
qs_status qs_gguf_get_f32(const struct qs_gguf_file *f, const char *key, float *v);
qs_status qs_gguf_get_f64(const struct qs_gguf_file *f, const char *key, double *v);
qs_status qs_gguf_get_bool(const struct qs_gguf_file *f, const char *key, int *v);
qs_status qs_gguf_get_string(const struct qs_gguf_file *f, const char *key, const char **v); // owned by f
// Arrays: the element type must be `elem`; *data points at n values (host layout) owned by f.
qs_status qs_gguf_get_array(const struct qs_gguf_file *f, const char *key, enum qs_gguf_type elem,
                            const void **data, uint64_t *n);
qs_status qs_gguf_get_array_string(const struct qs_gguf_file *f, const char *key, const char *const **v,
                                   uint64_t *n);

// NULL when absent; index lookup is f->tensors[i].
const struct qs_gguf_tensor *qs_gguf_find_tensor(const struct qs_gguf_file *f, const char *name);
// Copies the tensor's nbytes into dst (cap bytes available) with pread; thread-safe.
qs_status qs_gguf_read_tensor(const struct qs_gguf_file *f, const struct qs_gguf_tensor *t, void *dst,
                              uint64_t cap);
// Points *data at the tensor's bytes in a read-only mapping of the file (mapped on first use; not
// thread-safe on that first call).
qs_status qs_gguf_map_tensor(struct qs_gguf_file *f, const struct qs_gguf_tensor *t, const void **data);

#endif
