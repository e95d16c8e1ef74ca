// nll.h — per-row negative log-likelihood of the target token on the GPU; the spec is qs_nll_ref
// (src/model/ops.h), applied to each row.
#ifndef QS_KERNEL_NLL_H
#define QS_KERNEL_NLL_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// nll[r] = logsumexp(logits[r, :]) - logits[r, targets[r]] for r < rows — logits: [rows, vocab] of
// `dt` (F32, BF16 or F16), targets: [rows] int32, nll: [rows] double, all on the device. As
// qs_nll_ref: the row max (exact), then sum of exp(logit - max) and the log in double. A target
// outside [0, vocab) gives NaN for its row (callers validate targets on the host). Asynchronous
// on `stream`.
qs_status qs_nll_cuda(const void *logits, const int32_t *targets, double *nll, int rows, int vocab, qs_dtype dt,
                      cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
