// rtn.h — round-to-nearest on the GPU: each group's grid from the weights themselves, every weight
// rounded to it. The spec is qs_grid_quantize_row_ref (src/quant/grid.h); the kernel runs the same
// grid code (quant/grid_int.h), so codes, scales and values are identical bit for bit.
#ifndef QS_KERNEL_RTN_H
#define QS_KERNEL_RTN_H

#include <cuda_runtime_api.h>

#include "base/qs_common.h"
#include "quant/grid.h"

#ifdef __cplusplus
extern "C" {
#endif

// Device buffers: W [nrows, K] fp32, replaced by the values of its codes; codes [nrows, K];
// scales (fp32, fp16 values) and zeros [nrows, G]. row0 only names rows in messages. Synchronizes
// `stream` to report a non-finite weight (QS_ERR_NUMERIC naming [row, column]).
qs_status qs_rtn_quantize_cuda(const struct qs_grid *grid, float *W, int64_t nrows, int64_t K, int64_t row0,
                               uint8_t *codes, float *scales, uint8_t *zeros, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
