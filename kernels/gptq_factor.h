// gptq_factor.h — the GPTQ inverse-Hessian factor on the GPU (cuSOLVER): U upper with
// (H + damp·mean(diag H)·I)^-1 = UᵀU, computed as U = J L^-1 J (J reverses indices, L L^T = J H J),
// with act-order permutation, dead columns and automatic damping raises exactly as
// qs_gptq_prep_init (src/quant/gptq.h), which is the spec. A prepared factor feeds qs_gptq_quantize_cuda
// (gptq_solve.h).
#ifndef QS_KERNEL_GPTQ_FACTOR_H
#define QS_KERNEL_GPTQ_FACTOR_H

#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include "base/qs_common.h"
#include "quant/damp.h"
#include "quant/method.h"

#ifdef __cplusplus
extern "C" {
#endif

// A: [K, K] row-major SPD (both triangles) on the device, replaced by U (upper, lower part zeroed),
// A^-1 = UᵀU: reverse, cusolverDnXpotrf, cusolverDnXtrtri, reverse — qs_gptq_inverse_factor's
// route. f64: the factorization and inverse run in fp64 on a converted copy (U rounded to fp32 at
// the end). *info: 0 ok, > 0 the leading minor that is not positive definite (A is then garbage).
// Synchronizes `stream` (reads cuSOLVER's devInfo).
qs_status qs_gptq_inverse_factor_cuda(float *A, int64_t K, int f64, int *info, cusolverDnHandle_t solver,
                                      cudaStream_t stream);

// The device counterpart of struct qs_gptq_prep: deterministic in (H, opts, f64). Fields are
// public so that a caller may also fill one from a CPU prep (upload U, perm, dead).
struct qs_gptq_prep_cuda {
  int64_t K;
  struct qs_qopts opts;      // block_size resolved (the GPU solve supports 128 only)
  int f64;                   // factorized in fp64
  float *U;                  // device [K, K] upper factor of the damped, permuted H^-1 (row-major)
  int32_t *perm;             // device [K] quantization order: position p quantizes column perm[p]
  uint8_t *dead;             // device [K] 1 where diag(H) == 0 (H[k,k] := 1, W[:, k] := 0)
  int32_t *perm_host;        // host copies of perm and dead
  uint8_t *dead_host;
  int64_t n_dead;
  float damp_used;           // damping fraction that factorized (>= opts.damp)
  int damp_raises;           // times it was raised x10
};

// H: [K, K] fp32 row-major symmetric (both triangles, e.g. after qs_gptq_hessian_finalize_cuda) on
// the device, not modified. Host side, as qs_gptq_prep_init: diag(H) is read back, dead columns and
// the act-order permutation (decreasing diag, ties by column) and mean(diag) (double sum in index
// order) are computed on the host; the device gathers J·H[perm][:, perm]·J + damp·I, factorizes
// (fp32, or fp64 when f64), and raises the damping x10 up to 3 times when potrf's devInfo > 0, then
// QS_ERR_NUMERIC naming `name`. Non-finite H entries are QS_ERR_NUMERIC. Synchronous.
qs_status qs_gptq_prep_cuda_init(struct qs_gptq_prep_cuda *prep, const float *H, int64_t K,
                                 const struct qs_qopts *opts, int f64, const char *name,
                                 cusolverDnHandle_t solver, cudaStream_t stream);
void qs_gptq_prep_cuda_free(struct qs_gptq_prep_cuda *prep);

#ifdef __cplusplus
}
#endif
#endif
