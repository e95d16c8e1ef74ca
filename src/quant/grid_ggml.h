// grid_ggml.h — llama.cpp's block grids (ggml types: Q8_0, Q4_0, the k-quants Q2_K..Q6_K, ...), as
// the C reference of each: quantizing a row of float32 gives, byte for byte, the blocks that
// llama.cpp's ggml_quantize_chunk writes for that row (FORMATS.md §5.6–5.7), with or without an
// importance vector (llama-quantize --imatrix: the quant_weights path of the same functions).
//
// Why blocks and not codes + scales: a k-quant's parameters are defined in packed form — the
// 6-bit sub-block scales and mins of a 256-block are quantized against the block's fp16 d/dmin and
// the codes recomputed from the decoded values — so the block bytes are the grid's exact result.
// Records of this grid (record.h, kind QS_GRID_GGML) carry each row's blocks; only GGUF stores them.
//
// A row of n values (n % blck == 0; blocks never cross rows) takes qs_ggml_row_size(type, n) bytes
// (io/ggml_types.h: the type ids and block sizes).
// Arithmetic is float32 in the order of the reference, built without FMA contraction
// (-ffp-contract=off), rounding as documented per type in the .c files.
#ifndef QS_GRID_GGML_H
#define QS_GRID_GGML_H

#include <stddef.h>
#include <stdint.h>

#include "base/qs_common.h"
#include "io/ggml_types.h"

// quantize: one row x[0..n) → out (qs_ggml_row_size bytes); imp NULL or [n] importance weights.
// dequant: blocks → y[0..n).
typedef void (*qs_ggml_quantize_fn)(const float *x, const float *imp, int64_t n, void *out);
typedef void (*qs_ggml_dequant_fn)(const void *in, int64_t n, float *y);

// 1 when qshard has the reference of this type (it can write it); the type's block sizes are in
// io/ggml_types.h.
int qs_ggml_can_quantize(int type);

// The reference (llama.cpp's ggml_quantize_chunk for one row): QS_ERR_ARG when the type is not one
// qshard writes or n is not a multiple of its block.
qs_status qs_ggml_quantize_row_ref(int type, const float *x, const float *imp, int64_t n, void *out);
qs_status qs_ggml_dequant_row_ref(int type, const void *in, int64_t n, float *y);

// The element view of a block grid, for solvers that choose each code themselves (GPTQ into
// llama.cpp's grids): with a block's parameters fixed (its bytes as its reference wrote them),
// element j (0 <= j < blck) of value x takes code qs_ggml_elem_code — for the k-quants the
// reference's own final rounding on the decoded scales, so re-coding a block's inputs gives its bytes
// back; for the 32-blocks the nearest code on the stored grid; F16/BF16/F32: the value's bits —
// whose value is qs_ggml_elem_value (bit for bit the type's dequantization), stored by
// qs_ggml_elem_put. Types without it (IQ4_NL, MXFP4): qs_ggml_elem_supported is 0.
int qs_ggml_elem_supported(int type);
int32_t qs_ggml_elem_code(int type, const void *block, int j, float x);
float qs_ggml_elem_value(int type, const void *block, int j, int32_t code);
void qs_ggml_elem_put(int type, void *block, int j, int32_t code);

#endif
