// embedding.cu — token embedding gather, one thread block per token row; rows move in the widest
// unit (16, 4 or 2 bytes) that the row size and both pointers' alignment allow.
// Test: tests/test_kernels_fwd_cuda.c (label gpu).
#include <stdint.h>

#include "embedding.h"
#include "qs_cuda.h"

// U: the copy unit. units: row size in units. nan_unit: U filled with the dtype's quiet NaN.
template <typename U>
__global__ void qs_embedding_kernel(const int32_t *__restrict__ ids, const U *__restrict__ table,
                                    U *__restrict__ out, int vocab, int units, U nan_unit) {
  const int32_t id = ids[blockIdx.x];
  U *orow = out + (size_t)blockIdx.x * units;
  if (id < 0 || id >= vocab) {
    for (int i = threadIdx.x; i < units; i += blockDim.x) orow[i] = nan_unit;
    return;
  }
  const U *row = table + (size_t)id * units;
  for (int i = threadIdx.x; i < units; i += blockDim.x) orow[i] = row[i];
}

// Quiet NaN of `dt` repeated over 32 bits (f16/bf16 patterns twice).
static uint32_t qs_embedding_nan_word(qs_dtype dt) {
  switch (dt) {
  case QS_DTYPE_BF16: return 0x7FC07FC0u;
  case QS_DTYPE_F16: return 0x7E007E00u;
  default: return 0x7FC00000u;
  }
}

template <typename U>
static qs_status qs_embedding_launch(const int32_t *ids, const void *table, void *out, int n, int vocab,
                                     size_t row_bytes, uint32_t nan_word, cudaStream_t stream) {
  qs_status status = QS_OK;
  const int units = (int)(row_bytes / sizeof(U));
  const int threads = units >= 256 ? 256 : ((units + 31) / 32) * 32;
  U nan_unit;
  unsigned char *p = (unsigned char *)&nan_unit;
  for (size_t b = 0; b < sizeof(U); b++) p[b] = (unsigned char)(nan_word >> (8 * (b % 4)));
  qs_embedding_kernel<U><<<n, threads, 0, stream>>>(ids, (const U *)table, (U *)out, vocab, units, nan_unit);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

extern "C" qs_status qs_embedding_cuda(const int32_t *ids, const void *table, void *out, int n, int vocab,
                                       int hidden, qs_dtype dt, cudaStream_t stream) {
  qs_status status = QS_OK;
  if (dt != QS_DTYPE_F32 && dt != QS_DTYPE_BF16 && dt != QS_DTYPE_F16)
    QS_FAIL(QS_ERR_UNSUPPORTED, "embedding: dtype %s not supported", qs_dtype_name(dt));
  if (n <= 0 || vocab <= 0 || hidden <= 0)
    QS_FAIL(QS_ERR_ARG, "embedding: n %d, vocab %d, hidden %d must be positive", n, vocab, hidden);
  {
    const size_t es = qs_dtype_size(dt), row_bytes = (size_t)hidden * es;
    if ((uintptr_t)table % es || (uintptr_t)out % es)
      QS_FAIL(QS_ERR_ARG, "embedding: table %p / out %p not aligned to %s elements", table, out, qs_dtype_name(dt));
    const uintptr_t align = (uintptr_t)table | (uintptr_t)out | (uintptr_t)row_bytes;
    const uint32_t nan_word = qs_embedding_nan_word(dt);
    if (align % 16 == 0) return qs_embedding_launch<uint4>(ids, table, out, n, vocab, row_bytes, nan_word, stream);
    if (align % 4 == 0) return qs_embedding_launch<uint32_t>(ids, table, out, n, vocab, row_bytes, nan_word, stream);
    return qs_embedding_launch<uint16_t>(ids, table, out, n, vocab, row_bytes, nan_word, stream);
  }
fail:
  return status;
}
