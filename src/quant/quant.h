// quant.h — the numeric core of weight quantization: the min/max integer grid (shared by RTN and
// GPTQ), RTN, GPTQ (Hessian, damped inverse-Cholesky factor, lazy-block column solve), and the GPTQ
// v1 checkpoint packing (FORMATS.md §2). No model code: callers hand in weights and Hessians.
//
// Conventions
// - A linear's weight W is [N, K] row-major: N output features (rows), K input features (columns);
//   the Hessian H is [K, K] over the inputs. Rows are independent once H's factor is known.
// - Group g of a row covers columns [g*gs, min((g+1)*gs, K)) in quantization order (gs = group
//   size; -1 means one group over the whole row; a ragged last group is allowed):
//   G = qs_quant_n_groups(K, gs) = ceil(K/gs) (1 for gs = -1).
// - Per-row parameters are laid out [rows, G] (row-major per output row) so the results of a block
//   of rows are contiguous (one all-gather); the checkpoint's [G, N] layout is made by qs_gptq_pack.
// - Scales are rounded to fp16 BEFORE the codes are computed, and the solve's error feedback uses
//   that rounded scale: the stored checkpoint (fp16 scales) dequantizes exactly, bit for bit, to
//   the Q that GPTQ optimized and that --eval uses (dequant in fp32: scale * (q - zero)).
// - Rounding is round-half-to-even (rintf), as torch.round.
#ifndef QS_QUANT_H
#define QS_QUANT_H

#include <math.h>
#include <stdint.h>

#include "base/qs_common.h"

// ---- options ----------------------------------------------------------------------------------
struct qs_quant_opts {
  int bits;          // 2, 3, 4 or 8
  int group_size;    // > 0, or -1 = one group per row
  int sym;           // 1: zero = 2^(bits-1), grid symmetric about 0; 0: min/max asymmetric
  int act_order;     // GPTQ: quantize columns by decreasing diag(H) (desc_act)
  int static_groups; // GPTQ + act_order: groups fixed on original contiguous columns beforehand
  float damp;        // GPTQ: damping fraction of mean(diag H) (damp_percent), 0 <= damp < 1
  int block_size;    // GPTQ lazy-update block (columns); <= 0 means 128
  int min_zero;      // asym: smallest zero point allowed. 1 for GPTQ v1 checkpoints, which store
                     // zero - 1 in `bits` bits: a zero of 0 would wrap and load as 2^bits (lossy);
                     // with min_zero 1 the checkpoint dequantizes exactly to the solver's Q.
};

// bits 4, group 128, sym, no act-order, damp 0.01, block 128 (the recommended GPTQ config).
struct qs_quant_opts qs_quant_opts_default(void);
// QS_ERR_ARG naming `what` (e.g. the module) if an option is out of range for K columns.
qs_status qs_quant_opts_check(const struct qs_quant_opts *o, int64_t K, const char *what);
int64_t qs_quant_n_groups(int64_t K, int group_size);

// ---- the grid (AutoGPTQ Quantizer.find_params with perchannel=True, mse=False) ----------------------
// maxq = 2^bits - 1; xmin = min(0, min x), xmax = max(0, max x); sym: xmax = max(|xmin|, xmax),
// xmin = -xmax if xmin < 0; all-zero -> [-1, 1]; scale = fp16((xmax - xmin)/maxq) (a zero fp16 scale
// becomes the smallest fp16 subnormal 2^-24, an overflow the largest finite 65504);
// zero = sym ? (maxq+1)/2 : clamp(round(-xmin/scale), min_zero, maxq).
struct qs_quant_grid {
  float scale;         // exactly representable in fp16
  float zero;          // an integer in [0, maxq]
  uint16_t scale_f16;  // the same scale as fp16 bits (what the checkpoint stores)
};
struct qs_quant_grid qs_quant_grid_find(const float *x, int64_t n, int bits, int sym, int min_zero);

// q = clamp(round(x/scale) + zero, 0, maxq): the integer code, as a float.
static inline float qs_quant_code(float x, struct qs_quant_grid g, float maxq) {
  float q = rintf(x / g.scale) + g.zero;
  return q < 0.0f ? 0.0f : (q > maxq ? maxq : q);
}
// The value a code stands for: scale * (q - zero) (q - zero is an exact small integer).
static inline float qs_quant_dequant(float q, struct qs_quant_grid g) { return g.scale * (q - g.zero); }

// ---- RTN: the grid per group on the original weights, no error feedback -----------------------------
// One row x [K]: codes [K], scales [G] (fp16 bits), zeros [G], q_out [K] dequantized (may be x).
void qs_rtn_quantize_row_ref(const float *x, int64_t K, const struct qs_quant_opts *o, uint8_t *codes,
                             uint16_t *scales, uint8_t *zeros, float *q_out);
// W [nrows, K] is replaced by its dequantized values; codes [nrows, K], scales/zeros [nrows, G].
qs_status qs_rtn_quantize_rows(float *W, int64_t nrows, int64_t K, const struct qs_quant_opts *o,
                               uint8_t *codes, uint16_t *scales, uint8_t *zeros);
// g_idx[k] = k / gs (0 for gs = -1): RTN, GPTQ without act-order and GPTQ with static groups.
void qs_quant_g_idx_plain(int64_t K, int group_size, int32_t *g_idx);

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
  struct qs_quant_opts opts; // block_size resolved
  float *U;                  // [K, K] upper factor of the damped, permuted H^-1 (row-major)
  int32_t *perm;             // [K] quantization order: position p quantizes column perm[p]
  uint8_t *dead;             // [K] 1 where diag(H) == 0: H[k,k] := 1 and W[:, k] := 0
  int64_t n_dead;
  float damp_used;           // damping fraction that factorized (>= opts.damp)
  int damp_raises;           // how many times it was raised x10 (0 = as asked)
  int update_ref;            // 0 after init; 1 = lazy updates by qs_gptq_update_block_ref (the spec,
                             // plain C, for tests and reference runs) instead of cblas_sgemm
};
// Damping schedule of the factorization, shared by the CPU and GPU paths: first opts.damp, then x10
// (from 1e-3 when damp is 0) after each failed Cholesky, at most QS_GPTQ_DAMP_RAISES times; then
// QS_ERR_NUMERIC naming the module.
#define QS_GPTQ_DAMP_RAISES 3
static inline float qs_gptq_damp_next(float frac) { return (frac > 0.0f ? frac : 1e-3f) * 10.0f; }

// H: [K, K] row-major symmetric (not modified). `name` (module) is used in messages. Damping as above.
qs_status qs_gptq_prep_init(struct qs_gptq_prep *prep, const float *H, int64_t K,
                            const struct qs_quant_opts *opts, const char *name);
void qs_gptq_prep_free(struct qs_gptq_prep *prep);
int64_t qs_gptq_n_groups(const struct qs_gptq_prep *prep);
// g_idx [K] per FORMATS §2.4: k/gs, or with act-order non-static (position of k in perm)/gs.
void qs_gptq_g_idx(const struct qs_gptq_prep *prep, int32_t *g_idx);

// Quantizes rows [row0, row0 + nrows) of a weight; W points at row row0 ([nrows, K]) and is replaced
// by the dequantized Q (original column order). codes [nrows, K] original column order; scales
// (fp16 bits) and zeros [nrows, G] with g in quantization order (g_idx maps columns to them);
// row_loss [nrows] (or NULL): sum_k (w - q)^2 / d^2 / 2 as the reference's Losses.
// A row's result is bit-identical whatever block of rows it is quantized in: rows are processed in
// tiles of QS_GPTQ_ROW_TILE rows aligned to the global row index (row0 matters), zero-padded, so
// every BLAS call has the same shape and the row the same position (assumes the same BLAS build and
// thread count on every rank).
#define QS_GPTQ_ROW_TILE 64
qs_status qs_gptq_quantize_rows(const struct qs_gptq_prep *prep, float *W, int64_t nrows, int64_t row0,
                                uint8_t *codes, uint16_t *scales, uint8_t *zeros, float *row_loss);
// prep_init + quantize_rows over all N rows + g_idx (g_idx [K], may be NULL) + free.
// damp_used (may be NULL) receives the damping fraction used.
qs_status qs_gptq_quantize(float *W, int64_t N, int64_t K, const float *H, const struct qs_quant_opts *o,
                           const char *name, uint8_t *codes, uint16_t *scales, uint8_t *zeros,
                           int32_t *g_idx, float *damp_used);

// W[:, i2:K] -= Err · U[i1:i2, i2:K] for `rows` rows: W [rows, ldw], Err [rows, lde] (i2-i1 used),
// U [K, K]. The GPTQ lazy-batch update of the columns after a block (cblas_sgemm) and its plain C
// definition (products summed over the block in order, then subtracted, as the reference's matmul).
void qs_gptq_update_block(float *W, int64_t ldw, const float *Err, int64_t lde, const float *U,
                          int64_t K, int64_t rows, int64_t i1, int64_t i2);
void qs_gptq_update_block_ref(float *W, int64_t ldw, const float *Err, int64_t lde, const float *U,
                              int64_t K, int64_t rows, int64_t i1, int64_t i2);

// ---- GPTQ v1 checkpoint packing (FORMATS.md §2.1-2.3) -----------------------------------------------
// Codes are a little-endian bit stream of `bits`-wide fields in int32 words: field i at stream bits
// [bits*i, bits*i + bits) (for 3 bits, 32 fields fill 3 words and fields 10 and 21 straddle words).
// qweight [K*bits/32, N]: the stream runs along K for each column n. qzeros [G, N*bits/32]: along N
// for each group, holding the v1 stored zero (zero - 1) & (2^bits - 1): a zero of 0 wraps to
// 2^bits - 1, which v1 readers (stored + 1) see as 2^bits: asymmetric v1 is lossy there.

// 1 when N and K can be packed: K*bits % 32 == 0 and N*bits % 32 == 0 (K % 32, N % 32 for 3 bits),
// bits in {2,3,4,8}, group_size -1 or > 0. Consumer limits (vLLM K % group_size) are the caller's.
int qs_gptq_can_pack(int64_t N, int64_t K, int bits, int group_size);
// codes [N, K] original column order; scales (fp16 bits) and zeros (true zeros) [N, G] as the
// solver writes them. Out: qweight [K*bits/32, N], qzeros [G, N*bits/32], scales_out [G, N] fp16.
// n_wrapped (may be NULL) = number of zeros equal to 0 (stored wrapped, see above).
qs_status qs_gptq_pack(const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros, int bits,
                       int64_t N, int64_t K, int64_t G, int32_t *qweight, int32_t *qzeros,
                       uint16_t *scales_out, int64_t *n_wrapped);
// qweight -> codes [N, K].
qs_status qs_gptq_unpack_codes(const int32_t *qweight, int bits, int64_t N, int64_t K, uint8_t *codes);
// qzeros -> v1 effective zeros stored + 1 (1 .. 2^bits) as [N, G].
qs_status qs_gptq_unpack_zeros(const int32_t *qzeros, int bits, int64_t N, int64_t G, int32_t *zeros);
// Loading a v1 checkpoint: W[n, k] = scale[g, n] * (q[k, n] - (stored_zero[g, n] + 1)), g = g_idx[k],
// in fp32 (scales fp16 [G, N]). QS_ERR_FORMAT if a g_idx entry is outside [0, G).
qs_status qs_gptq_unpack_dequant(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales,
                                 const int32_t *g_idx, int bits, int64_t N, int64_t K, int64_t G,
                                 float *W);

#endif
