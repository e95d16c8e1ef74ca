// ggml_types.h — llama.cpp's tensor types (ggml.h `enum ggml_type`) as GGUF files number them, with
// each one's block: elements per block and bytes per block (ggml.c type_traits; FORMATS.md §5.1,
// §5.6). The GGUF container (io/gguf.c) uses them to size and check tensors; the grids that write
// them are in quant/grid_ggml.h.
#ifndef QS_GGML_TYPES_H
#define QS_GGML_TYPES_H

#include <stdint.h>

enum qs_ggml_type {
  QS_GGML_F32 = 0,
  QS_GGML_F16 = 1,
  QS_GGML_Q4_0 = 2,
  QS_GGML_Q4_1 = 3,
  QS_GGML_Q5_0 = 6,
  QS_GGML_Q5_1 = 7,
  QS_GGML_Q8_0 = 8,
  QS_GGML_Q8_1 = 9,
  QS_GGML_Q2_K = 10,
  QS_GGML_Q3_K = 11,
  QS_GGML_Q4_K = 12,
  QS_GGML_Q5_K = 13,
  QS_GGML_Q6_K = 14,
  QS_GGML_Q8_K = 15,
  QS_GGML_IQ2_XXS = 16,
  QS_GGML_IQ2_XS = 17,
  QS_GGML_IQ3_XXS = 18,
  QS_GGML_IQ1_S = 19,
  QS_GGML_IQ4_NL = 20,
  QS_GGML_IQ3_S = 21,
  QS_GGML_IQ2_S = 22,
  QS_GGML_IQ4_XS = 23,
  QS_GGML_I8 = 24,
  QS_GGML_I16 = 25,
  QS_GGML_I32 = 26,
  QS_GGML_I64 = 27,
  QS_GGML_F64 = 28,
  QS_GGML_IQ1_M = 29,
  QS_GGML_BF16 = 30,
  QS_GGML_TQ1_0 = 34,
  QS_GGML_TQ2_0 = 35,
  QS_GGML_MXFP4 = 39,
  QS_GGML_TYPE_MAX = 40 // ids at or above this are refused (40.. are too new for most readers)
};

#define QS_QK_K 256 // k-quant super-block

// Name ("Q4_K"), elements per block, bytes per block; NULL / 0 for an unknown or removed id.
const char *qs_ggml_type_name(int type);
int qs_ggml_blck_size(int type);
int qs_ggml_type_size(int type);
// "Q4_K" / "q4_k" → its id; -1 when unknown.
int qs_ggml_type_from_name(const char *name);
// Bytes of one row of n elements (n % blck == 0), or -1 for an unknown type or a partial block.
int64_t qs_ggml_row_size(int type, int64_t n);

#endif
