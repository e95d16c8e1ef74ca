// awq_clip.h — AWQ's clipped round-to-nearest on the GPU (the `awq` method's rows). The spec is
// qs_awq_clip_row_ref (src/quant/awq.h): per row and group, the shrink ratio r = 1 - i/20 (i <
// n_clip: QS_AWQ_N_CLIP, or 1 — r = 1 alone — without clipping) whose rounding error d_g B d_gᵀ is smallest, B
// the group's diagonal block of H; the grid code is quant/grid_int.h's, as in the reference. The
// one difference is the order of the fp32 sums in B·d (the reference's is OpenBLAS's): errors agree
// to about K·2^-24 relative, so where two ratios tie that closely the chosen one may differ; the
// codes of every other group are the reference's bits (the test checks both).
#ifndef QS_KERNEL_AWQ_CLIP_H
#define QS_KERNEL_AWQ_CLIP_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "base/qs_common.h"
#include "quant/grid.h"

#ifdef __cplusplus
extern "C" {
#endif

// Device buffers: H [K, K] fp32 (both triangles; only the groups' diagonal blocks are read), W
// [nrows, K] fp32 replaced by the chosen values, codes [nrows, K], scales / zeros [nrows, G], loss
// [nrows] = Σ_g err_g / 2 (GPTQ's convention; NULL: not written). n_clip 1: r = 1 only (q/k_proj).
// An INT grid; a group of more than QS_AWQ_CLIP_MAX_GS columns is refused. Asynchronous.
#define QS_AWQ_CLIP_MAX_GS 49152
qs_status qs_awq_clip_rows_cuda(const struct qs_grid *g, const float *H, int64_t K, int n_clip, float *W, int64_t nrows,
                                uint8_t *codes, float *scales, uint8_t *zeros, float *loss, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
