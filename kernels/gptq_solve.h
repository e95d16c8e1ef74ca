// gptq_solve.h — the GPTQ column solve on the GPU: one fused kernel per block of 128 columns (the
// eager in-block updates) and one cuBLAS sgemm for the lazy update of the columns after it. The
// spec is qs_gptq_quantize_rows (src/quant/gptq.h): same grids (quant/grid_int.h, compiled for both),
// min_zero), same group semantics (ragged last group, act-order groups over positions, static
// groups on the original columns, one group per row), same per-element arithmetic in the same order
// inside a block; only the sgemm's summation order (cuBLAS vs OpenBLAS) and the factor, when it
// comes from qs_gptq_prep_cuda_init, differ — so a few codes may flip (see tests/test_gptq_cuda.c).
#ifndef QS_KERNEL_GPTQ_SOLVE_H
#define QS_KERNEL_GPTQ_SOLVE_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "gptq_factor.h"
#include "base/qs_common.h"

#ifdef __cplusplus
extern "C" {
#endif

// Quantizes nrows rows with a prepared factor (block_size must be 128). All buffers on the device:
//   W        [nrows, K] fp32, original column order; replaced by the dequantized Q
//   codes    [nrows, K] uint8, original column order
//   scales   [nrows, G] fp32 (fp16 values), zeros [nrows, G] uint8: g in quantization order, as the CPU
//            path (g_idx from qs_gptq_g_idx on a CPU prep with the same perm maps columns to g)
//   row_loss [nrows] fp32 or NULL: sum over columns of (w - q)^2 / U[p,p]^2 / 2 (fp64 sums)
// Works in stream order on `stream` (the handle is bound to it) with stream-ordered scratch of
// about nrows * K * 5 bytes, and synchronizes at the end to report a non-finite weight
// (QS_ERR_NUMERIC naming [row, column]). The handle's math mode must not allow TF32 (QS_ERR_ARG).
qs_status qs_gptq_quantize_cuda(const struct qs_gptq_prep_cuda *prep, float *W, int64_t nrows, uint8_t *codes,
                                float *scales, uint8_t *zeros, float *row_loss, cublasHandle_t blas,
                                cudaStream_t stream);

// Same, with the lazy-update sgemm issued per tile of row_tile rows (the last tile may be shorter;
// row_tile <= 0: one sgemm over all rows). The fused kernels treat rows independently, so a row's
// result then depends only on its position inside its tile: a caller that hands in whole tiles
// aligned to a fixed global grid gets the same bits for any split of the tiles over calls or ranks
// (the cuda engine, src/run/engine_cuda.h), with the parallelism of all rows in every kernel.
qs_status qs_gptq_quantize_tiled_cuda(const struct qs_gptq_prep_cuda *prep, float *W, int64_t nrows, int64_t row_tile,
                                      uint8_t *codes, float *scales, uint8_t *zeros, float *row_loss,
                                      cublasHandle_t blas, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
