// grid.h — grids: how the weights of one group map to codes and back. A method (GPTQ, RTN, ...)
// asks its grid for a group's parameters and for the code of each value; a record (record.h) says
// which grid produced its codes; a format (formats/format.h) stores the records whose grid it can
// hold exactly. Each kind is one C definition shared with the GPU (grid_int.h for QS_GRID_INT:
// compiled by the C reference and by the kernels), plus a case in the dispatchers below.
//
// Groups: group g of a row covers columns [g*gs, min((g+1)*gs, K)) in quantization order (gs =
// group_size; -1 = one group per row; a ragged last group is allowed): G = qs_grid_n_groups(K).
//
// QS_GRID_GGML is llama.cpp's block grids (quant/grid_ggml.h): a row's result is its blocks as ggml
// defines them (scales packed with the codes by the grid's own definition), so a record of this
// grid holds qs_grid_row_codes(K) bytes per row and no separate scales (G = 0).
#ifndef QS_GRID_H
#define QS_GRID_H

#include <stdint.h>

#include "base/qs_common.h"
#include "quant/grid_int.h"

#ifdef __cplusplus
extern "C" {
#endif

enum qs_grid_kind {
  QS_GRID_INT = 0, // min/max integer grid, 2/3/4/8 bits, symmetric or with a zero point (grid_int.h)
  QS_GRID_GGML,     // a llama.cpp block type (ggml_type), byte for byte its reference quantizer
  QS_GRID_COUNT
};

struct qs_grid {
  enum qs_grid_kind kind;
  int bits;       // code width: codes are integers in [0, 2^bits)
  int sym;        // 1: zero fixed at 2^(bits-1), the range symmetric about 0
  int group_size; // > 0 columns per group, or -1: one group per row
  int min_zero;   // asymmetric INT: smallest zero point. 1 where a format stores zero - 1 in `bits`
                  // bits (GPTQ v1, TensorRT-LLM's GPTQ import): a zero of 0 would wrap there.
  int scale_dtype; // qs_dtype the scales are rounded to before any code is computed: what the output
                   // formats store exactly (F16 for GPTQ v1; compressed-tensors stores the model's dtype)
  int ggml_type;   // QS_GRID_GGML: the block type (io/ggml_types.h); group_size is its block, bits 8
};

// bits 4, sym, group 128, min_zero 0, fp16 scales.
struct qs_grid qs_grid_default(void);
// QS_ERR_ARG naming `what` unless the grid is valid for rows of K columns.
qs_status qs_grid_check(const struct qs_grid *g, int64_t K, const char *what);
int64_t qs_grid_n_groups(const struct qs_grid *g, int64_t K);
// Bytes of codes per row of K weights in a record: K (one code per weight) for QS_GRID_INT, the
// row's blocks for QS_GRID_GGML.
int64_t qs_grid_row_codes(const struct qs_grid *g, int64_t K);
// The grid of llama.cpp type `ggml_type` (for rows that are whole blocks of it).
struct qs_grid qs_grid_ggml(int ggml_type);
// "int4 sym g128" / "int3 asym per-row": for logs and reports.
void qs_grid_name(const struct qs_grid *g, char *buf, size_t cap);

// The parameters of one group x[0..n) (the C reference of every kind).
struct qs_qparams qs_grid_find(const struct qs_grid *g, const float *x, int64_t n);

// The code of x, as a float holding an integer (what the solvers feed back), and its value.
static inline float qs_grid_code(const struct qs_grid *g, struct qs_qparams p, float x) {
  switch (g->kind) {
  default: return qs_grid_int_code(p, x, (float)((1 << g->bits) - 1));
  }
}
static inline float qs_grid_value(const struct qs_grid *g, struct qs_qparams p, float q) {
  switch (g->kind) {
  default: return qs_grid_int_value(p, q);
  }
}

// One row x [K] quantized on its own grids (RTN, the definition the GPU's RTN kernel matches):
// codes [qs_grid_row_codes(K)], params [G] (scales, zeros), q_out [K] the values (may be x).
// imp: NULL, or [K] importance weights (an imatrix row) that the grids with a weighted search use
// (QS_GRID_GGML: llama.cpp's quant_weights path); the INT grid ignores them.
void qs_grid_quantize_row_ref(const struct qs_grid *g, const float *x, const float *imp, int64_t K, uint8_t *codes,
                              float *scales, uint8_t *zeros, float *q_out);

// g_idx[k] = k / gs (0 for one group per row): contiguous groups in the original column order.
void qs_grid_g_idx_contiguous(const struct qs_grid *g, int64_t K, int32_t *g_idx);

#ifdef __cplusplus
}
#endif
#endif
