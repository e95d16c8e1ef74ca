// embedding.h — token embedding lookup on the GPU (a row gather; its reference is a row copy).
#ifndef QS_KERNEL_EMBEDDING_H
#define QS_KERNEL_EMBEDDING_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// out[t, :] = table[ids[t], :] for t < n — ids: [n] int32, table: [vocab, hidden], out: [n, hidden],
// all on the device; table and out of dtype `dt` (F32, BF16 or F16), copied bit for bit. An id
// outside [0, vocab) cannot be reported from the device: its row is filled with NaN (never read out
// of bounds), so callers validate ids on the host. Asynchronous on `stream`.
qs_status qs_embedding_cuda(const int32_t *ids, const void *table, void *out, int n, int vocab, int hidden,
                            qs_dtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
