// gptq.h — GPTQ (Frantar et al. 2022) numerics on the CPU, following the IST-DASLab reference
// `fasterquant` and AutoGPTQ's act-order / static-groups variant: Hessian accumulation, the damped
// inverse-Cholesky factor, and the lazy-block column solve on any grid (grid.h). No model code:
// callers hand in weights and Hessians. The method row built on it is qs_method_gptq (gptq.c).
//
// Conventions
// - A linear's weight W is [N, K] row-major: N output features (rows), K input features (columns);
//   the Hessian H is [K, K] over the inputs. Rows are independent once H's factor is known.
// - Groups: grid.h. Per-row parameters are laid out [rows, G] (row-major per output row) so the
//   results of a block of rows are contiguous (one all-gather).
// - The grid rounds each scale to what the checkpoint stores (fp16) before the codes are computed,
//   and the solve's error feedback uses that value, so a record dequantizes exactly, bit for bit,
//   to the Q that GPTQ optimized and that --eval uses.
#ifndef QS_GPTQ_H
#define QS_GPTQ_H

#include <math.h>
#include <stdint.h>

#include "base/qs_common.h"
#include "quant/damp.h"
#include "quant/method.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- GPTQ: Hessian ----------------------------------------------------------------------------------
// S += X^T X, X: [rows, K] fp32 row-major, S: [K, K] row-major, only the UPPER triangle (j >= i) is
// updated (cblas_ssyrk). Each call's sum order is OpenBLAS's; a caller wanting results independent
// of the rank count must add the same blocks in the same order and reduce partials in a fixed order.
void qs_gptq_hessian_add(float *S, const float *X, int64_t rows, int K);
// Plain C definition of the same (fp32, rows summed in index order), for tests.
void qs_gptq_hessian_add_ref(float *S, const float *X, int64_t rows, int K);
// H = (2/nsamples) * S, upper triangle mirrored to the lower. nsamples counts what the reference's
// add_batch counts: calibration sequences (inp.shape[0]), not tokens. The reference keeps
// H_n = n/(n+b) H + (2/(n+b)) X^T X, which telescopes to exactly (2/n_total) sum X^T X; only the
// fp32 rounding differs. (GPTQ itself is invariant to a positive scale of H: the damping is
// relative, U scales by c^-1/2 and err/d by c^1/2, so only the reported loss depends on it.)
qs_status qs_gptq_hessian_finalize(float *S, int K, int64_t nsamples);

// ---- GPTQ: factor --------------------------------------------------------------------------------
// A: [K, K] row-major SPD (both triangles) in; out: U upper triangular (lower part zeroed) with
// A^-1 = U^T U. Computed as U = J L^-1 J with L L^T = J A J (J reverses indices): one Cholesky and
// one triangular inverse. Returns LAPACK's info: 0 ok, > 0 not positive definite, < 0 bad argument.
int qs_gptq_inverse_factor(float *A, int K);
// The reference's route: Cholesky -> inverse (potri) -> Cholesky (upper). Same contract.
int qs_gptq_inverse_factor_ref(float *A, int K);

// ---- GPTQ: prepared factor for one Hessian, shared by every row block ---------------------------------
// Deterministic in (H, opts): every rank that prepares the same H gets the same bytes.
struct qs_gptq_prep {
  int64_t K;
  struct qs_qopts opts;      // block_size resolved
  float *U;                  // [K, K] upper factor of the damped, permuted H^-1 (row-major)
  int32_t *perm;             // [K] quantization order: position p quantizes column perm[p]
  uint8_t *dead;             // [K] 1 where diag(H) == 0: H[k,k] := 1 and W[:, k] := 0
  int64_t n_dead;
  float damp_used;           // damping fraction that factorized (>= opts.damp)
  int damp_raises;           // how many times it was raised x10 (0 = as asked)
  int update_ref;            // 0 after init; 1 = lazy updates by qs_gptq_update_block_ref (the spec,
                             // plain C, for tests and reference runs) instead of cblas_sgemm
  float *imp;                // [K] importance for the block parameters of a llama.cpp grid (--imatrix),
                             // or NULL
};

// H: [K, K] row-major symmetric (not modified). `name` (module) is used in messages. Damping as above.
qs_status qs_gptq_prep_init(struct qs_gptq_prep *prep, const float *H, int64_t K,
                            const struct qs_qopts *opts, const char *name);
// As qs_gptq_prep_init, except when H + damp I is still not positive definite after the last
// damping raise (damp.h): then QS_OK with *factored = 0, nothing printed, and only K, opts,
// damp_used (the last damping tried) and damp_raises set (no factor: the caller must not quantize
// with it; the method row falls back to RTN, gptq.c). *factored = 1 otherwise. A non-finite H and
// every other failure are errors as in qs_gptq_prep_init.
qs_status qs_gptq_prep_try_init(struct qs_gptq_prep *prep, const float *H, int64_t K,
                                const struct qs_qopts *opts, const char *name, int *factored);
void qs_gptq_prep_free(struct qs_gptq_prep *prep);
int64_t qs_gptq_n_groups(const struct qs_gptq_prep *prep);
// g_idx [K] per FORMATS §2.4: k/gs, or with act-order non-static (position of k in perm)/gs.
void qs_gptq_g_idx(const struct qs_gptq_prep *prep, int32_t *g_idx);

// Quantizes rows [row0, row0 + nrows) of a weight; W points at row row0 ([nrows, K]) and is replaced
// by the dequantized Q (original column order). out (method.h): codes [nrows, K] original column
// order; scales and zeros [nrows, G] with g in quantization order (g_idx maps columns to them);
// loss [nrows] (or NULL): sum_k (w - q)^2 / d^2 / 2 as the reference's Losses.
// A row's result is bit-identical whatever block of rows it is quantized in: rows are processed in
// tiles of QS_GPTQ_ROW_TILE rows aligned to the global row index (row0 matters), zero-padded, so
// every BLAS call has the same shape and the row the same position (assumes the same BLAS build and
// thread count on every rank).
#define QS_GPTQ_ROW_TILE 64
qs_status qs_gptq_quantize_rows(const struct qs_gptq_prep *prep, float *W, int64_t nrows, int64_t row0,
                                const struct qs_qrows *out);
// prep_init + quantize_rows over all N rows + g_idx (g_idx [K], may be NULL) + free.
// damp_used (may be NULL) receives the damping fraction used.
qs_status qs_gptq_quantize(float *W, int64_t N, int64_t K, const float *H, const struct qs_qopts *o,
                           const char *name, const struct qs_qrows *out, int32_t *g_idx, float *damp_used);

// W[:, i2:K] -= Err · U[i1:i2, i2:K] for `rows` rows: W [rows, ldw], Err [rows, lde] (i2-i1 used),
// U [K, K]. The GPTQ lazy-batch update of the columns after a block (cblas_sgemm) and its plain C
// definition (products summed over the block in order, then subtracted, as the reference's matmul).
void qs_gptq_update_block(float *W, int64_t ldw, const float *Err, int64_t lde, const float *U,
                          int64_t K, int64_t rows, int64_t i1, int64_t i2);
void qs_gptq_update_block_ref(float *W, int64_t ldw, const float *Err, int64_t lde, const float *U,
                              int64_t K, int64_t rows, int64_t i1, int64_t i2);

#ifdef __cplusplus
}
#endif
#endif
