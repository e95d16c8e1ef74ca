// tokens.h — token id streams in HDF5: dataset "/input_ids", int32, 1-D (a stream) or 2-D
// [n, seqlen] (ready-made windows). Any integer type on disk is read as int32 (HDF5 converts;
// values out of int32 range are an error).
#ifndef QS_TOKENS_H
#define QS_TOKENS_H

#include <stdint.h>

#include "base/qs_common.h"

struct qs_tokens {
  int32_t *ids;     // rows * cols ids, row-major
  int64_t rows;     // 1 for a 1-D stream
  int64_t cols;     // stream length, or seqlen
  int ndim;         // 1 or 2 as stored
};

// A missing file, a missing dataset, a non-integer dataset or rank > 2 is an error naming the
// file and dataset. dataset NULL means "/input_ids".
qs_status qs_tokens_read(const char *path, const char *dataset, struct qs_tokens *t);
// Every id in [0, vocab): else an error naming the file, the position and the value.
qs_status qs_tokens_check(const struct qs_tokens *t, int vocab, const char *path);
void qs_tokens_free(struct qs_tokens *t);
// Writes an int32 dataset (ndim 1: rows must be 1): built in memory, then written under a temporary
// name, fsync'ed and renamed (a failed write leaves no file and the previous one as it was).
qs_status qs_tokens_write(const char *path, const char *dataset, const int32_t *ids, int64_t rows,
                          int64_t cols, int ndim);

#endif
