// grid_ggml.c — the table of ggml types qshard writes and the row entry points (grid_ggml.h).
// A type's reference lives in quant/ggml_quants.c (32-blocks, F16/BF16) or quant/ggml_kquants.c
// (256-blocks); adding one is its two functions (ggml_blocks.h) plus a row here.
#include "quant/grid_ggml.h"

#include <string.h>

#include "quant/ggml_blocks.h"

// F32 "quantizes" to itself (ftype F32: every weight kept in float32).
static void quantize_f32(const float *x, const float *imp, int64_t n, void *out) {
  (void)imp;
  memcpy(out, x, (size_t)n * sizeof(float));
}
static void dequant_f32(const void *in, int64_t n, float *y) { memcpy(y, in, (size_t)n * sizeof(float)); }

// The references of each type qshard writes (NULL: not written).
static const struct {
  qs_ggml_quantize_fn quantize;
  qs_ggml_dequant_fn dequant;
} k_refs[QS_GGML_TYPE_MAX] = {
#define ROW(id, t) [id] = {qs_ggml_quantize_##t##_ref, qs_ggml_dequant_##t##_ref}
    [QS_GGML_F32] = {quantize_f32, dequant_f32},
    // rows are added with their references
    ROW(QS_GGML_F16, f16),
    ROW(QS_GGML_BF16, bf16),
    ROW(QS_GGML_Q4_0, q4_0),
    ROW(QS_GGML_Q4_1, q4_1),
    ROW(QS_GGML_Q5_0, q5_0),
    ROW(QS_GGML_Q5_1, q5_1),
    ROW(QS_GGML_Q8_0, q8_0),
    ROW(QS_GGML_IQ4_NL, iq4_nl),
    ROW(QS_GGML_MXFP4, mxfp4),
    ROW(QS_GGML_Q2_K, q2_K),
    ROW(QS_GGML_Q3_K, q3_K),
    ROW(QS_GGML_Q4_K, q4_K),
    ROW(QS_GGML_Q5_K, q5_K),
    ROW(QS_GGML_Q6_K, q6_K),
#undef ROW
};

int qs_ggml_can_quantize(int type) { return type >= 0 && type < QS_GGML_TYPE_MAX && k_refs[type].quantize; }

static qs_status ggml_check(int type, int64_t n) {
  qs_status status = QS_OK;
  if (!qs_ggml_can_quantize(type)) QS_FAIL(QS_ERR_ARG, "ggml type %d (%s) is not one qshard writes", type, qs_ggml_type_name(type) ? qs_ggml_type_name(type) : "unknown");
  if (n <= 0 || n % qs_ggml_blck_size(type))
    QS_FAIL(QS_ERR_ARG, "%s: a row of %lld values is not whole %d-blocks", qs_ggml_type_name(type), (long long)n, qs_ggml_blck_size(type));
fail:
  return status;
}

qs_status qs_ggml_quantize_row_ref(int type, const float *x, const float *imp, int64_t n, void *out) {
  qs_status status = ggml_check(type, n);
  if (status == QS_OK) k_refs[type].quantize(x, imp, n, out);
  return status;
}

qs_status qs_ggml_dequant_row_ref(int type, const void *in, int64_t n, float *y) {
  qs_status status = ggml_check(type, n);
  if (status == QS_OK) k_refs[type].dequant(in, n, y);
  return status;
}
