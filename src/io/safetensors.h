// safetensors.h — reader (mmap, zero-copy) and writer of the safetensors format, and sharded
// checkpoints (model.safetensors.index.json). Layout and validation rules: shared/FORMATS.md §1.
//
// File:  [u64 LE header length N][N bytes JSON header, '{'..., may be space-padded][byte buffer]
// Header: {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ...,
//          "__metadata__": {"k": "v"}}; offsets relative to the byte buffer, end exclusive.
// The reader rejects (QS_ERR_FORMAT, message naming the file and tensor): N > 100,000,000 or past
// the end of the file, a header that is not a JSON object, unknown dtype, a size that is not
// prod(shape) * dtype size, offsets that leave a gap, overlap, or do not cover the buffer exactly,
// duplicate names, non-string metadata values.
#ifndef QS_SAFETENSORS_H
#define QS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/qs_common.h"

#define QS_ST_MAX_DIMS 8
#define QS_ST_MAX_HEADER 100000000ull

struct qs_st_tensor {
  char *name;
  qs_dtype dtype;
  int ndim;
  int64_t shape[QS_ST_MAX_DIMS];
  uint64_t begin, end;    // byte range inside the data buffer
  const void *data;       // points into the mapping (read-only)
  const char *file;       // path of the file that holds it (owned by the file)
};

struct qs_st_file {
  char *path;
  void *map;              // whole file, PROT_READ, MAP_SHARED
  size_t map_size;
  uint64_t header_len;
  size_t n_tensors;
  struct qs_st_tensor *tensors; // in header order
  size_t n_meta;
  char **meta_keys, **meta_values; // __metadata__ (string -> string)
  int heap;               // a file held in memory (qs_ckpt_init_memory): each tensor's data is owned
};

qs_status qs_st_open(struct qs_st_file *f, const char *path);
void qs_st_close(struct qs_st_file *f);
const struct qs_st_tensor *qs_st_find(const struct qs_st_file *f, const char *name);
const char *qs_st_meta(const struct qs_st_file *f, const char *key); // NULL if absent
int64_t qs_st_numel(const struct qs_st_tensor *t);

// A checkpoint: a directory holding model.safetensors, or model.safetensors.index.json + shards
// (every shard named in weight_map is opened and every mapped tensor must exist in its shard);
// or one .safetensors file.
struct qs_ckpt {
  char *path;
  size_t n_files;
  struct qs_st_file *files;
  size_t n_tensors;
  const struct qs_st_tensor **by_name; // sorted by name, for bsearch
};

qs_status qs_ckpt_open(struct qs_ckpt *c, const char *path);
// A checkpoint held in memory, built by a reader that reassembles another layout (formats/): init,
// add tensors (the checkpoint takes ownership of malloc'ed data), then seal (the name index; a name
// added twice is an error). qs_ckpt_close frees it like any other.
qs_status qs_ckpt_init_memory(struct qs_ckpt *c, const char *path);
qs_status qs_ckpt_add_owned(struct qs_ckpt *c, const char *name, qs_dtype dt, int ndim, const int64_t *shape,
                            void *data);
qs_status qs_ckpt_seal(struct qs_ckpt *c);
void qs_ckpt_close(struct qs_ckpt *c);
const struct qs_st_tensor *qs_ckpt_find(const struct qs_ckpt *c, const char *name); // NULL if absent
// Like find, but a missing tensor, a dtype outside `allowed` (bit mask of 1u << qs_dtype, 0 = any)
// or a shape different from `shape` (ndim entries; NULL = any) is an error naming the checkpoint.
qs_status qs_ckpt_get(const struct qs_ckpt *c, const char *name, unsigned allowed, int ndim,
                      const int64_t *shape, const struct qs_st_tensor **out);
// Reads a tensor converted to float32 into dst (numel floats).
qs_status qs_ckpt_read_f32(const struct qs_ckpt *c, const char *name, int ndim, const int64_t *shape,
                           float *dst);
// Elements [first, first + n) of tensor t (in row-major order) converted to float32 into dst, read in
// place from its mapping (through a small aligned bounce buffer where the data is misaligned).
void qs_st_read_f32_range(const struct qs_st_tensor *t, size_t first, size_t n, float *dst);

// Writer: tensors are added (copied or borrowed), then finish() writes them into `dir` as
// model.safetensors, or as model-XXXXX-of-YYYYY.safetensors + model.safetensors.index.json when
// the total exceeds max_shard_bytes (greedy in insertion order, a larger tensor goes alone). A
// shard is written as soon as the next one starts (provisional name model-XXXXX.safetensors.part,
// renamed by finish()), so the writer holds at most one shard of data.
// Inside a file tensors are ordered as the reference writer does (descending dtype, then name)
// and the header is space-padded to a multiple of 8, so every tensor is naturally aligned.
// Metadata {"format": "pt"}. Every file is written under a temporary name and renamed.
struct qs_st_writer;
qs_status qs_st_writer_init(struct qs_st_writer **w, const char *dir, uint64_t max_shard_bytes);
// copy = 1: data is copied now; copy = 0: data must stay valid until its shard is written (at the
// latest, finish()).
qs_status qs_st_writer_add(struct qs_st_writer *w, const char *name, qs_dtype dtype, int ndim,
                           const int64_t *shape, const void *data, int copy);
qs_status qs_st_writer_finish(struct qs_st_writer *w);
void qs_st_writer_free(struct qs_st_writer *w);

#endif
