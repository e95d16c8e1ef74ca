// test_kernels_cuda.c — CUDA kernels against their C references (label gpu; built only with
// QS_WITH_CUDA). Run: ctest --test-dir build -L gpu --output-on-failure. Exits 77 (skipped)
// when no CUDA device is visible.
//
// RMSNorm: qs_rmsnorm_cuda vs qs_rmsnorm_ref for F32, BF16 and F16, odd and even widths, rows
// with large, tiny and zero scale. The reference sees exactly the dtype's values of x and w
// (converted to float32) and returns float32; the GPU result is converted to float32 and checked
// elementwise: |gpu - ref| <= atol + |ref| * rtol, with
//   rtol = u(dtype) + (1 + u(dtype)) * (n + 8) * 2^-24   (round(g) vs ref: u|g| + |g - ref|)
//   - u(dtype): the kernel rounds its fp32 result once to the dtype (round to nearest:
//     u = 2^-8 bf16, 2^-11 f16, 0 for f32 where that rounding is part of the fp32 term);
//   - n * 2^-24: the kernel sums n squares in fp32 (strided partial sums + tree) where the reference
//     sums in double; for positive terms the relative error of a float sum is <= (n - 1) u32, and
//     the rsqrt halves it — n * 2^-24 is a safe bound;
//   - 8 * 2^-24: rsqrtf (<= 2 ulp) against the reference's rounding of var, eps add, sqrtf and the
//     division (0.5 ulp each), and the two fp32 products of both sides (same order: (x*inv)*w).
//   atol = 2^-25 for f16 (half the spacing of its subnormals, where relative error is not bounded),
//   FLT_MIN for bf16/f32 (same exponent range as fp32: only an exact zero can need it).
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "model/ops.h"
#include "qs_test.h"
#include "qs_test_cuda.h"
#include "rmsnorm.h"

static uint64_t g_rng = 0x243F6A8885A308D3ull;

static double test_uniform(double lo, double hi) { // splitmix64 -> [lo, hi)
  return lo + (hi - lo) * (double)(qs_mix64(g_rng += QS_WEYL) >> 11) * 0x1p-53;
}

// Row r of x has scale 10^(r % 5 - 2) (0.01 .. 100), and the last row is zero when rows > 2:
// normalization must remove the scale, and a zero row must give zeros (inv = rsqrt(eps)).
static void test_make_inputs(float *x, float *w, int rows, int n) {
  for (int r = 0; r < rows; r++) {
    double scale = (rows > 2 && r == rows - 1) ? 0.0 : pow(10.0, r % 5 - 2);
    for (int i = 0; i < n; i++) x[(size_t)r * n + i] = (float)(scale * test_uniform(-2.0, 2.0));
  }
  for (int i = 0; i < n; i++) w[i] = (float)test_uniform(-1.5, 1.5);
}

static void test_rmsnorm_case(qs_dtype dt, int rows, int n) {
  const float eps = 1e-5f;
  size_t es = qs_dtype_size(dt), numel = (size_t)rows * n;
  float *x = malloc(numel * 4), *w = malloc((size_t)n * 4), *ref = malloc(numel * 4), *got = malloc(numel * 4);
  void *xh = malloc(numel * es), *wh = malloc((size_t)n * es), *oh = malloc(numel * es);
  void *xd = NULL, *wd = NULL, *od = NULL;
  CHECK(x && w && ref && got && xh && wh && oh);
  if (!(x && w && ref && got && xh && wh && oh)) goto done;
  test_make_inputs(x, w, rows, n);
  // Round the inputs to the dtype; the reference works on exactly those values.
  qs_convert_from_f32(x, dt, xh, numel);
  qs_convert_from_f32(w, dt, wh, (size_t)n);
  qs_convert_to_f32(xh, dt, x, numel);
  qs_convert_to_f32(wh, dt, w, (size_t)n);
  qs_rmsnorm_ref(x, w, ref, rows, n, eps);

  TEST_CUDA(cudaMalloc(&xd, numel * es));
  TEST_CUDA(cudaMalloc(&wd, (size_t)n * es));
  TEST_CUDA(cudaMalloc(&od, numel * es));
  TEST_CUDA(cudaMemcpy(xd, xh, numel * es, cudaMemcpyHostToDevice));
  TEST_CUDA(cudaMemcpy(wd, wh, (size_t)n * es, cudaMemcpyHostToDevice));
  CHECK_EQ_INT(qs_rmsnorm_cuda(xd, wd, od, rows, n, eps, dt, 0), QS_OK);
  TEST_CUDA(cudaDeviceSynchronize());
  TEST_CUDA(cudaMemcpy(oh, od, numel * es, cudaMemcpyDeviceToHost));
  qs_convert_to_f32(oh, dt, got, numel);

  double u = dt == QS_DTYPE_BF16 ? 0x1p-8 : dt == QS_DTYPE_F16 ? 0x1p-11 : 0.0;
  double rtol = u + (1.0 + u) * (n + 8) * 0x1p-24, atol = dt == QS_DTYPE_F16 ? 0x1p-25 : FLT_MIN;
  size_t bad = 0;
  double worst = 0; // max |gpu - ref| / (atol + |ref| rtol): <= 1 passes
  for (size_t i = 0; i < numel; i++) {
    double lim = atol + fabs((double)ref[i]) * rtol, err = fabs((double)got[i] - (double)ref[i]);
    if (!(err <= lim)) {
      if (bad < 5)
        fprintf(stderr, "  %s rows %d n %d: [%zu, %zu] gpu %.9g ref %.9g (|diff| %.3g > %.3g)\n",
                qs_dtype_name(dt), rows, n, i / n, i % n, got[i], ref[i], err, lim);
      bad++;
    }
    if (err / lim > worst) worst = err / lim;
  }
  printf("rmsnorm %-4s rows %3d n %5d: %zu of %zu outside tolerance (rtol %.3g), worst err/limit %.3f\n",
         qs_dtype_name(dt), rows, n, bad, numel, rtol, worst);
  CHECK_EQ_INT(bad, 0);
done:
  cudaFree(xd);
  cudaFree(wd);
  cudaFree(od);
  free(x); free(w); free(ref); free(got); free(xh); free(wh); free(oh);
}

// Bad arguments are reported, not launched.
static void test_rmsnorm_errors(void) {
  void *d = NULL;
  if (cudaMalloc(&d, 256) != cudaSuccess) { CHECK(0); return; }
  CHECK_EQ_INT(qs_rmsnorm_cuda(d, d, d, 0, 16, 1e-5f, QS_DTYPE_F32, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_rmsnorm_cuda(d, d, d, 1, 0, 1e-5f, QS_DTYPE_F32, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_rmsnorm_cuda(d, d, d, 1, 16, 1e-5f, QS_DTYPE_I32, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(cudaDeviceSynchronize(), cudaSuccess);
  cudaFree(d);
}

int main(void) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0)
    QS_TEST_SKIP("no CUDA device (cudaGetDeviceCount: %s, %d devices)", cudaGetErrorString(e), count);
  struct cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    printf("device 0: %s, compute capability %d.%d, %d SMs\n", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount);
  static const qs_dtype dts[] = {QS_DTYPE_F32, QS_DTYPE_BF16, QS_DTYPE_F16};
  // n: below one warp, odd sizes (stories260K's 172), a power of two, not a multiple of 256.
  static const int ns[] = {1, 31, 64, 172, 4096, 5000, 14336};
  for (size_t d = 0; d < sizeof(dts) / sizeof(dts[0]); d++)
    for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) test_rmsnorm_case(dts[d], 7, ns[k]);
  test_rmsnorm_case(QS_DTYPE_BF16, 1024, 64); // many rows: one block each
  test_rmsnorm_errors();
  return qs_test_finish("test_kernels_cuda");
}
