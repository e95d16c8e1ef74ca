// qs_cuda_cvt.cuh — element conversions shared by the forward kernels (embedding, rope, attention,
// swiglu, residual): load any float element type as fp32, round fp32 back to nearest-even.
// Internal to kernels/*.cu (C++); names live in namespace qs_cvt so they never clash at link time.
#ifndef QS_CUDA_CVT_CUH
#define QS_CUDA_CVT_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace qs_cvt {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

} // namespace qs_cvt

#endif
