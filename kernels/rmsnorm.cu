// rmsnorm.cu — RMSNorm, one thread block per row. Test: tests/test_kernels_cuda.c (label gpu).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "qs_cuda.h"
#include "rmsnorm.h"

template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

// Block of THREADS threads: each thread sums a strided slice of the row in fp32, warps reduce
// with shuffles, then warp sums are combined in shared memory.
template <typename T, int THREADS>
__global__ void qs_rmsnorm_kernel(const T *__restrict__ x, const T *__restrict__ w, T *__restrict__ out,
                                  int n, float eps) {
  __shared__ float warp_sums[THREADS / 32];
  __shared__ float inv_rms;
  const T *row = x + (size_t)blockIdx.x * n;
  T *orow = out + (size_t)blockIdx.x * n;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += THREADS) {
    float v = to_f32(row[i]);
    ss += v * v;
  }
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.0f;
    for (int i = 0; i < THREADS / 32; i++) t += warp_sums[i];
    inv_rms = rsqrtf(t / (float)n + eps);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += THREADS)
    orow[i] = from_f32<T>(to_f32(row[i]) * inv_rms * to_f32(w[i]));
}

template <typename T>
static qs_status qs_rmsnorm_launch(const void *x, const void *w, void *out, int rows, int n, float eps,
                                   cudaStream_t stream) {
  qs_status status = QS_OK;
  constexpr int threads = 256;
  if (rows <= 0 || n <= 0) QS_FAIL(QS_ERR_ARG, "rmsnorm: rows %d, n %d must be positive", rows, n);
  qs_rmsnorm_kernel<T, threads><<<rows, threads, 0, stream>>>((const T *)x, (const T *)w, (T *)out, n, eps);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

extern "C" qs_status qs_rmsnorm_cuda(const void *x, const void *w, void *out, int rows, int n, float eps,
                                     qs_dtype dt, cudaStream_t stream) {
  switch (dt) {
  case QS_DTYPE_F32: return qs_rmsnorm_launch<float>(x, w, out, rows, n, eps, stream);
  case QS_DTYPE_BF16: return qs_rmsnorm_launch<__nv_bfloat16>(x, w, out, rows, n, eps, stream);
  case QS_DTYPE_F16: return qs_rmsnorm_launch<__half>(x, w, out, rows, n, eps, stream);
  default:
    return qs_report(QS_ERR_UNSUPPORTED, __FILE__, __LINE__, __func__, "rmsnorm: dtype %s not supported",
                     qs_dtype_name(dt));
  }
}
