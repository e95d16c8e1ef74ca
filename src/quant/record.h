// record.h — the neutral result of quantizing one linear module: what every method produces and
// every format writer and the resume state consume. It holds codes (one per weight, unpacked), the
// per-group parameters, the group map and the grid that produced them; packing into a format's
// words happens only inside that format's writer (formats/).
//
// Shapes (W is the module's weight [N, K]: N output features, K input features):
//   codes  [N, K]  uint8, original column order: code of W[n, k], an integer in [0, 2^bits)
//   scales [N, G]  float, exactly representable in the grid's scale dtype
//   zeros  [N, G]  uint8 zero points (QS_GRID_INT: in [0, 2^bits); 2^(bits-1) when sym)
//   g_idx  [K]     int32: the group of column k (k / group_size for contiguous groups; with
//                  GPTQ's permuted act-order groups, scales/zeros column g is the g-th group quantized)
//   bias   [N]     float or NULL: the module's bias as stored (formats write it beside the codes)
//   extra          float tensors a method adds (e.g. AWQ/SmoothQuant input scales), by name
// The value of weight (n, k) is qs_grid_value(grid, {scales[n, g], zeros[n, g]}, codes[n, k]) with
// g = g_idx[k]: qs_qrecord_dequant, the reference every format reader must reproduce.
// A llama.cpp block grid (QS_GRID_GGML, grid.h) is the exception: its scales are part of its blocks
// by definition, so codes [N, qs_grid_row_codes(K)] holds each row's blocks, G = 0, g_idx all 0.
//
// In the resume state a record is a set of tensors of a safetensors file (qs_qrecord_save/load):
//   <name>.codes  U8  [N, ceil(C*bits/8)]  each row a little-endian bit stream of `bits`-wide codes
//                                          (C = qs_grid_row_codes(K): K, or a block grid's row bytes)
//   <name>.scales F32 [N, G]   <name>.zeros U8 [N, G]   <name>.g_idx I32 [K]   <name>.bias F32 [N]
//   <name>.grid   I32 [7]      kind, bits, sym, group_size, min_zero, scale_dtype, ggml_type
//   <name>.x.<extra name>      F32, the extra tensors
#ifndef QS_RECORD_H
#define QS_RECORD_H

#include <stdint.h>

#include "io/safetensors.h"
#include "quant/grid.h"

#define QS_QRECORD_MAX_EXTRA 4
// Extra tensors of the AWQ-style methods (method.h QS_METHOD_SCALES): the input scales [K] folded
// into the module's columns (W ∘ s); the output scales [N] its rows were divided by, when it feeds
// the next group (v -> o, up -> down); and on a group's first module the preceding norm's folded
// weight [K], which the writers store in place of the input checkpoint's (run/output.c). A writer
// that keeps such a module dense writes the input's weight with both applied
// (formats/format.h qs_fdir_dense_record).
#define QS_QRECORD_X_SCALES "input_scales"
#define QS_QRECORD_X_OUT_SCALES "output_scales"
#define QS_QRECORD_X_NORM "folded_norm"

struct qs_qextra {
  char name[32];
  int ndim;
  int64_t shape[2];
  float *data;
};

struct qs_qrecord {
  char name[128]; // HF module path, e.g. model.layers.3.mlp.down_proj
  int layer;      // decoder layer
  int64_t N, K, G;
  struct qs_grid grid;
  uint8_t *codes;
  float *scales;
  uint8_t *zeros;
  int32_t *g_idx;
  float *bias;
  int n_extra;
  struct qs_qextra extra[QS_QRECORD_MAX_EXTRA];
  // Arrays lent by someone else (an engine's pinned staging): qs_qrecord_free then calls
  // release(release_ctx, r) instead of freeing codes, scales and zeros. NULL: the record owns them.
  void (*release)(void *ctx, struct qs_qrecord *r);
  void *release_ctx;
};

// Allocates codes, scales, zeros, g_idx (bias when with_bias) for an N x K module on grid g.
qs_status qs_qrecord_init(struct qs_qrecord *r, const char *name, int layer, int64_t N, int64_t K,
                          const struct qs_grid *g, int with_bias);
void qs_qrecord_free(struct qs_qrecord *r);
// A new 1-D extra tensor `name` [n] (a copy of v, or zeros when v is NULL) into *data; QS_ERR_INTERNAL
// when the record has no room left.
qs_status qs_qrecord_add_extra(struct qs_qrecord *r, const char *name, const float *v, int64_t n, float **data);
// The data of the 1-D extra tensor `name` of n values, or NULL.
const float *qs_qrecord_find_extra(const struct qs_qrecord *r, const char *name, int64_t n);
// 1 when every g_idx[k] == k / group_size: groups are contiguous in the original column order (no
// permutation in the record; what vLLM, compressed-tensors and TensorRT-LLM can read).
int qs_qrecord_contiguous(const struct qs_qrecord *r);
// W [N, K] fp32 = the values the record stands for. QS_ERR_FORMAT if a g_idx entry is out of range.
qs_status qs_qrecord_dequant(const struct qs_qrecord *r, float *W);

// The resume state's encoding (above): tensors of r into w (copied), and back from a file.
qs_status qs_qrecord_save(struct qs_st_writer *w, const struct qs_qrecord *r);
// Reads record `name` of layer `layer` from f (every tensor checked against the others' shapes).
qs_status qs_qrecord_load(const struct qs_st_file *f, const char *name, int layer, struct qs_qrecord *r);

// Row bit streams (the state's codes): n codes of `bits` bits into ceil(n*bits/8) bytes, code i at
// stream bits [bits*i, bits*i + bits), stream bit s = bit s%8 of byte s/8; and back.
void qs_qrecord_codes_compact(const uint8_t *codes, int64_t n, int bits, uint8_t *out);
void qs_qrecord_codes_expand(const uint8_t *in, int64_t n, int bits, uint8_t *codes);

#endif
