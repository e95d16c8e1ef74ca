// imatrix.h — importance vectors per linear module, as llama.cpp's imatrix defines them: for each
// input column k of a module, the mean over the calibration tokens of x_k² (llama-imatrix's
// in_sum2 / counts). The k-quant searches weight each column's error by it (grid_ggml.h, imp).
// Entries are keyed by the Hugging Face module path ("model.layers.3.self_attn.q_proj"); files in
// llama.cpp's imatrix GGUF format are read and written by formats/gguf_imatrix.c.
#ifndef QS_IMATRIX_H
#define QS_IMATRIX_H

#include <stdint.h>

#include "base/qs_common.h"

struct qs_imatrix_entry {
  char *name;  // HF module path
  int64_t K;   // input columns
  float *sum2; // [K] sum of x² over the tokens
  float count; // tokens summed
  float *imp;  // [K] sum2 / count: the importance (what llama-quantize passes to ggml)
};

struct qs_imatrix {
  struct qs_imatrix_entry *e;
  int n, cap;
  char *dataset; // where the activations came from (imatrix.datasets), or NULL
  uint32_t chunk_count, chunk_size;
};

// From calibration (QS_IMP_CALIB): H = 2/n·XᵀX, so the sum of x_k² over n tokens is H[k,k]/2·n.
// The run computes the importance as sum2 / count from exactly these floats, as it would after
// writing them to an imatrix file and reading it back: both runs give the same bytes.
static inline float qs_imatrix_sum2_from_hessian(float h_kk, float count) { return h_kk * 0.5f * count; }

// Adds (a copy of) module `name`'s sums; QS_ERR_ARG when it is already there.
qs_status qs_imatrix_add(struct qs_imatrix *m, const char *name, const float *sum2, int64_t K, float count);
// The importance [K] of module `name`, or NULL when the matrix has none for it (then the module is
// quantized without, as llama-quantize does); QS_ERR_ARG into *status when its length is not K.
const float *qs_imatrix_find(const struct qs_imatrix *m, const char *name, int64_t K, qs_status *status);
void qs_imatrix_free(struct qs_imatrix *m);

#endif
