// grid_int.h — the integer min/max grid (AutoGPTQ's Quantizer with perchannel=True, mse=False;
// FORMATS.md §2.3), as one definition compiled twice: by the C reference (quant/grid.c, the RTN and
// GPTQ solves on the CPU) and by nvcc for the kernels that quantize on the GPU (kernels/rtn.cu,
// kernels/gptq_solve.cu). Same source, same IEEE operations, so codes and scales agree bit for bit.
//
// Per group of values x:
//   xmin = min(0, min x), xmax = max(0, max x)     (the range always holds 0: a zero point exists)
//   sym: xmax = max(|xmin|, xmax), xmin = -xmax when xmin < 0
//   all-zero group: [-1, 1] (the reference's choice; any scale works)
//   scale = sd((xmax - xmin) / maxq), maxq = 2^bits - 1, sd = rounding to the grid's scale dtype
//           (fp16 for GPTQ v1 and TensorRT-LLM, bf16/fp32 for compressed-tensors of such models); a
//           zero scale becomes the dtype's smallest positive value, an fp16 overflow the largest
//           finite 65504 (codes then clamp at the ends)
//   zero  = sym ? (maxq + 1)/2 : clamp(round(-xmin / scale), min_zero, maxq)
//   code  = clamp(round(x / scale) + zero, 0, maxq)      value = scale * (code - zero)
// Rounding is round-half-to-even (rintf, as torch.round). The scale is rounded to fp16 BEFORE the
// zero and the codes are computed, so a checkpoint storing fp16 scales dequantizes to exactly the
// values the solver used (scale_dtype: F16, BF16 or F32 of qs_dtype). No expression here has the form a*b + c, so nvcc's FMA contraction
// cannot change a bit (and the C build uses -ffp-contract=off).
#ifndef QS_GRID_INT_H
#define QS_GRID_INT_H

#include <math.h>
#include <stdint.h>

#include "base/dtype.h"

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define QS_HD static __host__ __device__ __forceinline__
#else
#define QS_HD static inline
#endif

// Per-group parameters of a grid: the value of code q is scale * (q - zero).
struct qs_qparams {
  float scale; // exactly representable in the grid's scale dtype
  float zero;  // an integer in [0, maxq] for QS_GRID_INT
};

// Round to the nearest fp16 (ties to even), as bits.
QS_HD uint16_t qs_grid_f16_bits(float x) {
#ifdef __CUDA_ARCH__
  return __half_as_ushort(__float2half_rn(x));
#else
  return qs_f32_to_f16(x);
#endif
}

QS_HD float qs_grid_f16_value(uint16_t h) {
#ifdef __CUDA_ARCH__
  return __half2float(__ushort_as_half(h));
#else
  return qs_f16_to_f32(h);
#endif
}

QS_HD uint16_t qs_grid_bf16_bits(float x) {
#ifdef __CUDA_ARCH__
  return __bfloat16_as_ushort(__float2bfloat16_rn(x));
#else
  return qs_f32_to_bf16(x);
#endif
}

// A positive scale rounded to what a checkpoint stores in `dtype` (F16, BF16, else kept fp32), and
// kept usable: never 0 (the smallest positive value of the dtype), never infinite in fp16.
QS_HD float qs_grid_scale_round(float s, int dtype) {
  if (dtype == QS_DTYPE_F16) {
    uint16_t h = qs_grid_f16_bits(s);
    if ((h & 0x7FFF) == 0) h = 0x0001;      // 2^-24: a grid finer than fp16 can store
    if ((h & 0x7FFF) >= 0x7C00) h = 0x7BFF; // 65504
    return qs_grid_f16_value(h);
  }
  if (dtype == QS_DTYPE_BF16) {
    uint16_t h = qs_grid_bf16_bits(s);
    if ((h & 0x7FFF) == 0) h = 0x0001;      // 2^-133
    if ((h & 0x7FFF) >= 0x7F80) h = 0x7F7F; // the largest finite bf16
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
  }
  return s > 0.0f ? s : 1.40129846e-45f; // fp32: the smallest subnormal
}

// One step of the group's min/max scan; start from mn = mx = 0. The select forms keep the initial
// +0.0 when a -0.0 comes (every scan order and every warp reduction gives the same bits).
QS_HD void qs_grid_int_minmax(float v, float *mn, float *mx) {
  *mn = v < *mn ? v : *mn;
  *mx = v > *mx ? v : *mx;
}

// The parameters of a group whose scan gave [xmin, xmax].
QS_HD struct qs_qparams qs_grid_int_params(float xmin, float xmax, int bits, int sym, int min_zero, int scale_dtype) {
  float maxq = (float)((1 << bits) - 1);
  struct qs_qparams p;
  if (sym) {
    xmax = fabsf(xmin) > xmax ? fabsf(xmin) : xmax;
    if (xmin < 0.0f) xmin = -xmax;
  }
  if (xmin == 0.0f && xmax == 0.0f) {
    xmin = -1.0f;
    xmax = 1.0f;
  }
  p.scale = qs_grid_scale_round((xmax - xmin) / maxq, scale_dtype);
  if (sym) {
    p.zero = (maxq + 1.0f) / 2.0f;
  } else {
    // Clamped: the rounded scale can be a little smaller than the exact one.
    float z = rintf(-xmin / p.scale), zmin = (float)min_zero;
    p.zero = z < zmin ? zmin : (z > maxq ? maxq : z);
  }
  return p;
}

// The code of x (an integer in [0, maxq], as a float).
QS_HD float qs_grid_int_code(struct qs_qparams p, float x, float maxq) {
  float q = rintf(x / p.scale) + p.zero;
  return q < 0.0f ? 0.0f : (q > maxq ? maxq : q);
}

// The value code q stands for (q - zero is an exact small integer).
QS_HD float qs_grid_int_value(struct qs_qparams p, float q) { return p.scale * (q - p.zero); }

#endif
