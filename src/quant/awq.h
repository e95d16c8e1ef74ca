// awq.h — AWQ (Lin et al., MLSys 2024, "Activation-aware Weight Quantization"): the numeric parts,
// as plain C references. The method rows `awq` and `awq+gptq` (quant/awq.c) and the run pipeline's
// per-layer scale search (run/pipeline.c) use them.
//
// The idea: a few input channels carry large activations; multiplying those columns of W by s > 1
// before rounding (and dividing the op that produces the input by s, so the function is unchanged)
// shrinks their relative rounding error. Per linear group (modules reading one input: q/k/v, o,
// gate/up, down) and per calibration set:
//   xabs[k]  = mean over tokens of |x_k|                       (the group's input)
//   s_α[k]   = max(xabs[k]^α, 1e-4), then s_α /= sqrt(max s_α · min s_α)     α = i/20, i = 0..19
//   err(α)   = Σ over the group's rows w:  d H dᵀ,  d = w - Q(w ∘ s_α) / s_α
// where Q is round-to-nearest on the run's grid and H = 2/n·XᵀX is the group's Hessian, so d H dᵀ is
// (2/n times) the squared output error ||X dᵀ||² of that row on the calibration tokens — the loss
// AutoAWQ and llm-compressor compute by running the quantized linears, obtained here from H without
// a second pass over the tokens (cheaper when tokens > K, and identical for any rank count since H
// is). The α with the smallest err wins (the first of equal ones; α = 0 is plain RTN, so AWQ never
// does worse than RTN by this measure). AutoAWQ's "duo" variant divides by a weight statistic; this
// is the paper's form.
//
// Then, per row and per group of columns, the clipping search (AutoAWQ auto_clip): the group's range
// shrunk to r·max|w|, r = 1 - i/20, i = 0..9, weights clamped to ±r·max|w| before the min/max grid is
// taken, keeping the r with the smallest d_g H_gg d_gᵀ (H_gg: the group's diagonal block of H; d_g =
// the original weights minus the values of the clamped ones). As AutoAWQ, q_proj and k_proj are not
// clipped (their outputs meet in a softmax, where the output error of one module is a poor measure).
#ifndef QS_AWQ_H
#define QS_AWQ_H

#include <stdint.h>

#include "base/qs_common.h"
#include "quant/grid.h"

#define QS_AWQ_N_ALPHA 20 // α = i / 20, i < 20 (AutoAWQ's n_grid)
#define QS_AWQ_N_CLIP 10  // shrink r = 1 - i / 20, i < 10 (AutoAWQ's max_shrink 0.5 of n_grid 20)
#define QS_AWQ_TILE 32    // rows per tile of the scale search: a tile's error is one computation,
                          // whichever rank does it (exactness under MPI)

// s [K] = the scales of α for the channel means xabs [K] (above).
void qs_awq_scales_ref(float alpha, const float *xabs, int64_t K, float *s);

// err[a·nrows + r] = d H dᵀ for each scale set a < n (S + a·K) and row r of W [nrows, K], d = w -
// Q(w ∘ s) / s on grid g (no clipping); H [K, K] both triangles. One BLAS product per call (the n·nrows
// differences against H): callers give fixed tiles (QS_AWQ_TILE rows from a multiple of it, every
// candidate at once) so that a row's error does not depend on how rows are split among ranks.
qs_status qs_awq_scaled_error_ref(const struct qs_grid *g, const float *H, int64_t K, const float *W, int64_t nrows,
                                  const float *S, int n, double *err);

// Clipped RTN of one row w [K] (the `awq` method's rows): per group, the shrink ratio of the smallest
// d_g H_gg d_gᵀ (Hb: the G diagonal blocks of H, block g at Hb + g·gs·gs, gs×gs row-major; NULL or
// clip = 0: r = 1, plain RTN); codes [K], scales/zeros [G]; w becomes the values. Returns the row's
// output error Σ_g d_g H_gg d_gᵀ (0 without Hb). INT grids only.
double qs_awq_clip_row_ref(const struct qs_grid *g, const float *Hb, int clip, float *w, int64_t K, uint8_t *codes,
                           float *scales, uint8_t *zeros);

// The statistic of the scale search: sum[k] += Σ_t |X[t, k]| for X [T, K], tokens added in order
// (one float running sum per channel; the GPU kernel kernels/awq_xabs.cu gives the same bits).
void qs_awq_xabs_add_ref(const float *X, int64_t T, int64_t K, float *sum);

// The fold of scales s into a matrix W [rows, K], one IEEE operation per element (kernels/awq_fold.cu
// gives the same bits; its modes are these numbers):
enum {
  QS_AWQ_FOLD_COLS_MUL = 0, // W[r, k] *= s[k]: the scaled modules' columns
  QS_AWQ_FOLD_ROWS_DIV = 1, // W[r, k] /= s[r]: the rows (or bias) of the linear producing their input
  QS_AWQ_FOLD_COLS_DIV = 2, // W[r, k] /= s[k]: with ROWS_DIV first, the input's Hessian H_rk / s_r / s_k
};
void qs_awq_fold_ref(float *W, int64_t rows, int64_t K, const float *s, int mode);

// The H diagonal blocks qs_awq_clip_row_ref reads: Hb [G·gs·gs] from H [K, K] (a ragged last group's
// block is gs_last × gs_last at the same offset).
void qs_awq_diag_blocks(const struct qs_grid *g, const float *H, int64_t K, float *Hb);

#endif
