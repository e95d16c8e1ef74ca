// dtype.c — element type table and float conversions (bit-exact, no FPU mode dependence).
#include "base/dtype.h"

#include <math.h>
#include <string.h>

static const struct {
  const char *name;
  size_t size;
  int is_float;
  int st_rank; // safetensors tensor.rs enum order: BOOL,F4,F6_E2M3,F6_E3M2,U8,I8,F8_E5M2,F8_E4M3,...
} k_types[QS_DTYPE_COUNT] = {
    [QS_DTYPE_F32] = {"F32", 4, 1, 17},      [QS_DTYPE_F16] = {"F16", 2, 1, 13},
    [QS_DTYPE_BF16] = {"BF16", 2, 1, 14},    [QS_DTYPE_I32] = {"I32", 4, 0, 15},
    [QS_DTYPE_I64] = {"I64", 8, 0, 20},      [QS_DTYPE_I8] = {"I8", 1, 0, 5},
    [QS_DTYPE_U8] = {"U8", 1, 0, 4},         [QS_DTYPE_F8_E4M3] = {"F8_E4M3", 1, 1, 7},
};

size_t qs_dtype_size(qs_dtype t) { return (unsigned)t < QS_DTYPE_COUNT ? k_types[t].size : 0; }
const char *qs_dtype_name(qs_dtype t) { return (unsigned)t < QS_DTYPE_COUNT ? k_types[t].name : "?"; }
int qs_dtype_is_float(qs_dtype t) { return (unsigned)t < QS_DTYPE_COUNT && k_types[t].is_float; }
int qs_dtype_st_rank(qs_dtype t) { return (unsigned)t < QS_DTYPE_COUNT ? k_types[t].st_rank : -1; }

int qs_dtype_from_name(const char *name, qs_dtype *out) {
  for (int t = 0; t < QS_DTYPE_COUNT; t++)
    if (strcmp(name, k_types[t].name) == 0) { *out = (qs_dtype)t; return 0; }
  return -1;
}

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float qs_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t qs_f32_to_bf16(float f) {
  uint32_t u = f2u(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                          // round to nearest even
  return (uint16_t)(u >> 16);
}

float qs_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return u2f(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return u2f(sign);
    float v = ldexpf((float)man, -24); // subnormal: man * 2^-24, exact
    return (sign ? -v : v);
  }
  return u2f(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t qs_f32_to_f16(float f) {
  uint32_t u = f2u(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);         // NaN
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);        // rounds to >= 65520: inf
  if (a < 0x38800000u) {                                          // below 2^-14: subnormal or 0
    // value / 2^-24 rounded to nearest even; exact via float arithmetic (2^24 scaling is exact).
    float v = u2f(a) * 16777216.0f;
    float r = rintf(v); // default rounding mode: ties to even
    return (uint16_t)(sign | (uint16_t)r);
  }
  uint32_t mant = a + 0xfffu + ((a >> 13) & 1u); // round mantissa to 10 bits, ties to even
  return (uint16_t)(sign | ((mant - 0x38000000u) >> 13));
}

float qs_fp8e4m3_to_f32(uint8_t v) {
  uint32_t sign = v >> 7, exp = (v >> 3) & 0xfu, man = v & 0x7u;
  float r;
  if (exp == 0xf && man == 0x7) r = NAN;
  else if (exp == 0) r = ldexpf((float)man, -9); // subnormal: man/8 * 2^-6
  else r = ldexpf(1.0f + (float)man / 8.0f, (int)exp - 7);
  return sign ? -r : r;
}

uint8_t qs_f32_to_fp8e4m3(float f) {
  if (isnan(f)) return 0x7f;
  uint8_t sign = signbit(f) ? 0x80 : 0;
  float a = fabsf(f);
  if (a >= 448.0f) return sign | 0x7e; // saturate to max finite
  // Smallest normal is 2^-6; below it the grid is uniform with step 2^-9.
  if (a < ldexpf(1.0f, -6)) {
    float q = rintf(a * 512.0f); // ties to even
    return sign | (uint8_t)q;    // q == 8 becomes the smallest normal 0x08, as it should
  }
  int e;
  float m = frexpf(a, &e); // a = m * 2^e, m in [0.5, 1)
  float q = rintf(m * 16.0f); // 1 implicit + 3 mantissa bits: q in [8, 16]
  if (q == 16.0f) { q = 8.0f; e++; }
  int biased = e - 1 + 7;
  if (biased > 15 || (biased == 15 && q - 8.0f > 6.0f)) return sign | 0x7e;
  return sign | (uint8_t)(biased << 3) | (uint8_t)(q - 8.0f);
}

void qs_convert_to_f32(const void *src, qs_dtype t, float *dst, size_t n) {
  switch (t) {
  case QS_DTYPE_F32: memcpy(dst, src, n * 4); break;
  case QS_DTYPE_BF16: { const uint16_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = qs_bf16_to_f32(s[i]); } break;
  case QS_DTYPE_F16: { const uint16_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = qs_f16_to_f32(s[i]); } break;
  case QS_DTYPE_F8_E4M3: { const uint8_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = qs_fp8e4m3_to_f32(s[i]); } break;
  case QS_DTYPE_I32: { const int32_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
  case QS_DTYPE_I64: { const int64_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
  case QS_DTYPE_I8: { const int8_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
  case QS_DTYPE_U8: { const uint8_t *s = src; for (size_t i = 0; i < n; i++) dst[i] = (float)s[i]; } break;
  default: break;
  }
}

void qs_convert_from_f32(const float *src, qs_dtype t, void *dst, size_t n) {
  switch (t) {
  case QS_DTYPE_F32: memcpy(dst, src, n * 4); break;
  case QS_DTYPE_BF16: { uint16_t *d = dst; for (size_t i = 0; i < n; i++) d[i] = qs_f32_to_bf16(src[i]); } break;
  case QS_DTYPE_F16: { uint16_t *d = dst; for (size_t i = 0; i < n; i++) d[i] = qs_f32_to_f16(src[i]); } break;
  case QS_DTYPE_F8_E4M3: { uint8_t *d = dst; for (size_t i = 0; i < n; i++) d[i] = qs_f32_to_fp8e4m3(src[i]); } break;
  default: break;
  }
}
