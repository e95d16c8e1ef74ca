// dtype.h — element types of checkpoints and exact conversions to and from float32.
// Names follow safetensors' dtype strings (FORMATS.md §1.1). Conversions to narrower types round
// to nearest, ties to even (as torch's .to() does); NaN stays NaN.
#ifndef QS_DTYPE_H
#define QS_DTYPE_H

#include <stddef.h>
#include <stdint.h>

// C linkage also when included from CUDA (.cu, compiled as C++).
#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  QS_DTYPE_F32 = 0,
  QS_DTYPE_F16,
  QS_DTYPE_BF16,
  QS_DTYPE_I32,
  QS_DTYPE_I64,
  QS_DTYPE_I8,
  QS_DTYPE_U8,
  QS_DTYPE_F8_E4M3, // torch.float8_e4m3fn: no infinities, 0x7F/0xFF are NaN, max 448
  QS_DTYPE_COUNT
} qs_dtype;

size_t qs_dtype_size(qs_dtype t);         // bytes per element
const char *qs_dtype_name(qs_dtype t);    // "F32", "BF16", ...
int qs_dtype_from_name(const char *name, qs_dtype *out); // 0 on success, -1 if unknown
int qs_dtype_is_float(qs_dtype t);
// Position in safetensors' Rust `enum Dtype` (alignment order used by the reference writer).
int qs_dtype_st_rank(qs_dtype t);

float qs_bf16_to_f32(uint16_t h);
uint16_t qs_f32_to_bf16(float f);
float qs_f16_to_f32(uint16_t h);
uint16_t qs_f32_to_f16(float f);
float qs_fp8e4m3_to_f32(uint8_t v);
uint8_t qs_f32_to_fp8e4m3(float f); // saturates to ±448 (as torch's cast of finite values does not:
                                    // callers scale into range first)

// n elements of type `t` at src -> float32 dst. Integer types convert by value.
void qs_convert_to_f32(const void *src, qs_dtype t, float *dst, size_t n);
// float32 -> type `t` (float types only).
void qs_convert_from_f32(const float *src, qs_dtype t, void *dst, size_t n);

#ifdef __cplusplus
}
#endif
#endif
