// tok_cmp.h — per predicted token, a model's next-token distribution against its reference's on the
// GPU (`qshard eval --reference --device cuda`); the spec is qs_tok_cmp_ref (src/model/ops.h),
// applied to each row.
#ifndef QS_KERNEL_TOK_CMP_H
#define QS_KERNEL_TOK_CMP_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// A row's record: QS_TOK_CMP_N doubles in this order (eval.h's per-token record of eval --reference;
// src/model/eval_cuda.c asserts that the two agree).
enum {
  QS_TOK_CMP_KLD,     // KL(ref || q) = sum_i P_i (log P_i - log Q_i), clamped at 0
  QS_TOK_CMP_NLL_Q,   // -log Q(target)
  QS_TOK_CMP_NLL_REF, // -log P(target)
  QS_TOK_CMP_DP,      // Q(target) - P(target)
  QS_TOK_CMP_TOP,     // 1.0 when argmax P == argmax Q (first index on ties), else 0.0
  QS_TOK_CMP_N
};

// For r < rows: out[r, :] = qs_tok_cmp_ref(ref[r, :], q[r, :], vocab, targets[r]) as the record
// above — ref, q: [rows, vocab] fp32 logits, targets: [rows] int32, out: [rows, QS_TOK_CMP_N]
// double, all on the device. As the reference: the row maxima exact, every exp / log / sum in
// double, kld clamped at 0, argmax ties to the first index. Sums run in a fixed order (the same bits for the same
// inputs); nll_q and nll_ref are bit-identical to qs_nll_cuda (kernels/nll.h) of the same rows,
// which makes eval --reference's perplexities those of a plain eval. A target outside [0, vocab)
// gives NaN for nll_q, nll_ref and dp of its row. Asynchronous on `stream`.
qs_status qs_tok_cmp_cuda(const float *ref, const float *q, const int32_t *targets, double *out, int rows, int vocab,
                          cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
