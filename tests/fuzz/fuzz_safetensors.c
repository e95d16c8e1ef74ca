// fuzz_safetensors.c — libFuzzer harness of the safetensors reader (io/safetensors.c): the 8-byte
// length + JSON header of one file, the data buffer's coverage, and sharded checkpoints.
//   byte 0 even: the rest is one file, opened as a checkpoint (qs_ckpt_open of the file).
//   byte 0 odd:  parts (fuzz_common.h): model.safetensors.index.json, then the shards, written as
//                model-00001-of-0000K.safetensors ... (K = parts - 1), opened as a directory.
// Every tensor of an opened checkpoint is read as fp32 (its bytes must lie inside the mapping).
// Run: build-fuzz/fuzz/fuzz_safetensors CORPUS_DIR (tests/fuzz/run.sh seeds and runs it).
#include "fuzz_common.h"

#include "io/safetensors.h"

static void read_all(const struct qs_ckpt *c) {
  for (size_t i = 0; i < c->n_tensors; i++) {
    const struct qs_st_tensor *t = c->by_name[i];
    int64_t n = qs_st_numel(t);
    float *dst = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!dst) abort();
    if (qs_ckpt_read_f32(c, t->name, t->ndim, t->shape, dst) != QS_OK) abort(); // the shape is its own
    free(dst);
    (void)qs_ckpt_find(c, t->name);
  }
  for (size_t i = 0; i < c->n_files; i++) (void)qs_st_meta(&c->files[i], "format");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct qs_ckpt c;
  if (size < 1) return 0;
  int sharded = data[0] & 1;
  qs_fuzz_dir();
  qs_fuzz_clear();
  if (!sharded) {
    char *path = qs_fuzz_path("one.safetensors");
    qs_fuzz_write(path, data + 1, size - 1);
    if (qs_ckpt_open(&c, path) == QS_OK) {
      read_all(&c);
      qs_ckpt_close(&c);
    }
    free(path);
    return 0;
  }
  struct qs_fuzz_part parts[QS_FUZZ_MAX_PARTS];
  int n = qs_fuzz_split(data + 1, size - 1, parts);
  for (int i = 0; i < n; i++) {
    char name[64];
    if (i == 0) snprintf(name, sizeof(name), "model.safetensors.index.json");
    else snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", i, n - 1);
    char *path = qs_fuzz_path(name);
    qs_fuzz_write(path, parts[i].data, parts[i].size);
    free(path);
  }
  if (qs_ckpt_open(&c, qs_fuzz_dir()) == QS_OK) {
    read_all(&c);
    qs_ckpt_close(&c);
  }
  return 0;
}
