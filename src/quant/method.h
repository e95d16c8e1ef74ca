// method.h — the method table: one row per quantization method (GPTQ, RTN, ...). The run pipeline
// (run/pipeline.h) drives every method the same way, per linear group of a decoder layer (the
// modules that read one input, e.g. q/k/v):
//   state = prep(H)                  once per group: H = the group's Hessian 2/n·XᵀX [K, K] (both
//                                    triangles; NULL without calibration data)
//   rows(state, W[r0:r1], out)       per module, for this rank's block of output rows: codes and
//                                    per-group parameters into `out`, W replaced by its quantized values
//   group_map(state, g_idx)          the module's g_idx (record.h)
// Rows are independent once prep is done, so ranks split them; a row's result must not depend on
// which block it was handed in (row0 is its global index), which keeps checkpoints identical for any
// rank count. Each method is its own file(s) (quant/<method>.c, and quant/<method>_cuda.c for the
// GPU entries) plus one row of k_methods in quant/method.c.
#ifndef QS_METHOD_H
#define QS_METHOD_H

#include <stdint.h>

#include "base/qs_common.h"
#include "quant/grid.h"

#ifdef __cplusplus
extern "C" {
#endif

// Activation order (GPTQ's desc_act): columns quantized by decreasing diag(H).
enum qs_act_order {
  QS_ACT_ORDER_NONE = 0,
  QS_ACT_ORDER_STATIC, // groups fixed on the original contiguous columns first: the stored layout is
                       // that of no act-order (g_idx = k/gs), which every engine reads (FORMATS §2.4)
  QS_ACT_ORDER_GROUP,  // groups over the permuted positions: non-monotone g_idx, which current vLLM
                       // ignores and compressed-tensors rejects; GPTQ v1 output only
};

// Importance weights for the grids with a weighted search (llama.cpp's k-quants: quant_weights).
enum qs_importance {
  QS_IMP_NONE = 0,
  QS_IMP_CALIB, // from the calibration inputs: the group's Hessian diagonal (imatrix.h sum2/count)
  QS_IMP_TABLE, // from an imatrix file (opts->imatrix), by module path
};

struct qs_imatrix;

// What a method is asked to do: the grid, and its own options (each method lists those it accepts).
struct qs_qopts {
  struct qs_grid grid;
  int importance;                   // enum qs_importance
  const struct qs_imatrix *imatrix; // QS_IMP_TABLE
  float imp_count;                  // QS_IMP_CALIB: calibration tokens (imatrix counts)
  int act_order;  // enum qs_act_order
  float damp;     // GPTQ damping fraction of mean(diag H), 0 <= damp < 1 (raised x10 on failure)
  int block_size; // GPTQ lazy-update block in columns (<= 0: 128)
  int factor_f64; // GPTQ on the GPU: the inverse-Hessian factor in fp64
};
// int4 sym g128, no act-order, damp 0.01, block 128.
struct qs_qopts qs_qopts_default(void);
// 1 when a and b ask the same of a method (a prep made for one serves the other).
int qs_qopts_same(const struct qs_qopts *a, const struct qs_qopts *b);
// QS_ERR_ARG naming `what` when an option is out of range for rows of K columns.
qs_status qs_qopts_check(const struct qs_qopts *o, int64_t K, const char *what);

// Output of rows(): pointers at the first row of the block (host or device, as the entry's side).
struct qs_qrows {
  uint8_t *codes; // [nrows, K]
  float *scales;  // [nrows, G]
  uint8_t *zeros; // [nrows, G]
  float *loss;    // [nrows]: the method's own loss (GPTQ: sum (w-q)²/d²/2 per row), or NULL
};

// What prep reports for the module lines (damping actually used).
struct qs_qprep_info {
  float damp;       // damping fraction that factorized (GPTQ), 0 otherwise
  int damp_raises;  // times it was raised x10
  int rtn_fallback; // 1: no damping factorized H (GPTQ, quant/gptq.c): the rows are RTN's
};

enum {
  QS_METHOD_CALIB = 1u << 0,   // needs calibration data
  QS_METHOD_HESSIAN = 1u << 1, // prep reads H
  QS_METHOD_SCALES = 1u << 2,  // per-input-channel scales searched and folded into the preceding op
                               // for each group before the layer is quantized (AWQ: run/pipeline.c)
  QS_METHOD_FP_INPUTS = 1u << 3, // with SCALES: every group's inputs (its Hessian) and the next layer's
                                 // input come from the full-precision layer, as AutoAWQ and
                                 // llm-compressor's AWQ compute them, not from the quantized groups
                                 // before it (GPTQ's sequential order)
};
enum { // options a method accepts (the command line refuses the others)
  QS_MOPT_ACT_ORDER = 1u << 0,
  QS_MOPT_DAMP = 1u << 1,
  QS_MOPT_BLOCK = 1u << 2,
};

struct qs_cuda_ctx;
// The GPU entries of a method (quant/<method>_cuda.c); device pointers, work in stream order on
// c's stream. rows() solves a row block whose lazy-update GEMMs run per tile of row_tile rows
// (row_tile <= 0: one tile): a row's bits then depend only on its position in its tile.
struct qs_method_cuda {
  qs_status (*prep)(struct qs_cuda_ctx *c, const struct qs_qopts *o, const float *H, int64_t K, const char *name,
                    void **state, struct qs_qprep_info *info);
  qs_status (*rows)(struct qs_cuda_ctx *c, const void *state, float *W, int64_t nrows, int64_t row_tile,
                    const struct qs_qrows *out);
  void (*group_map)(const void *state, int32_t *g_idx); // host g_idx [K]
  void (*free)(void *state);
};

struct qs_method {
  const char *name; // --method NAME
  const char *help;
  unsigned needs;   // QS_METHOD_*
  unsigned accepts; // QS_MOPT_*
  int asym;         // 1: an asymmetric grid (zero points) unless --sym is given (AWQ's default)
  // CPU entries. prep: H [K, K] host (NULL without calibration); state is freed by free().
  qs_status (*prep)(const struct qs_qopts *o, const float *H, int64_t K, const char *name, void **state,
                    struct qs_qprep_info *info);
  qs_status (*rows)(const void *state, float *W, int64_t nrows, int64_t row0, const struct qs_qrows *out);
  void (*group_map)(const void *state, int32_t *g_idx);
  void (*free)(void *state);
  const struct qs_method_cuda *cuda; // NULL in builds without CUDA
};

// The row named `name`, or NULL.
const struct qs_method *qs_method_find(const char *name);
// "gptq|rtn" (for usage and messages).
const char *qs_method_names(void);

// A method's GPU entries, qs_method_<m>_cuda, defined in quant/<m>_cuda.c when built with CUDA: its
// row says .cuda = QS_METHOD_CUDA(m) after QS_METHOD_CUDA_DECL(m);
#ifdef QS_USE_CUDA
#define QS_METHOD_CUDA_DECL(m) extern const struct qs_method_cuda qs_method_##m##_cuda
#define QS_METHOD_CUDA(m) (&qs_method_##m##_cuda)
#else
#define QS_METHOD_CUDA_DECL(m) struct qs_method_cuda
#define QS_METHOD_CUDA(m) NULL
#endif

#ifdef __cplusplus
}
#endif
#endif
