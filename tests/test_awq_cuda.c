// test_awq_cuda.c — AWQ's GPU kernels against their C references (src/quant/awq.h): the channel
// statistic (kernels/awq_xabs.h) and the fold (awq_fold.h) bit for bit; the scale search's errors
// (awq_scale_error.h) within the bound of their GEMM's rounding; the clipped rounding
// (awq_clip.h): codes, scales and zeros bit for bit except where two shrink ratios tie within the
// rounding of their error sums (checked to be such ties). Label gpu; exits 77 without a device.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>

#include "awq_clip.h"
#include "awq_fold.h"
#include "awq_scale_error.h"
#include "awq_xabs.h"
#include "base/dtype.h"
#include "quant/awq.h"
#include "quant/grid.h"
#include "qs_test.h"
#include "qs_test_cuda.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float uniform(void) { return (float)((double)(qs_mix64(g_rng += QS_WEYL) >> 11) * 0x1p-53) * 2.0f - 1.0f; }

// X [T, K] with a few loud channels (what AWQ is about), and H = 2/T·XᵀX (double, then fp32).
static void make_acts(float *X, int T, int K) {
  for (int t = 0; t < T; t++)
    for (int k = 0; k < K; k++) X[(size_t)t * K + k] = uniform() * (k % 37 == 3 ? 20.0f : 1.0f);
}
static void make_hessian(const float *X, int T, int K, float *H) {
  for (int i = 0; i < K; i++)
    for (int j = 0; j <= i; j++) {
      double s = 0;
      for (int t = 0; t < T; t++) s += (double)X[(size_t)t * K + i] * X[(size_t)t * K + j];
      H[(size_t)i * K + j] = H[(size_t)j * K + i] = (float)(2.0 * s / T);
    }
}

static void test_xabs(void) {
  enum { T = 37, K = 1000 };
  float *X = malloc(sizeof(float) * T * K), *ref = calloc(K, sizeof(float)), *got = malloc(sizeof(float) * K);
  uint16_t *xb = malloc(sizeof(uint16_t) * T * K);
  void *dX = NULL;
  float *dS = NULL;
  make_acts(X, T, K);
  qs_convert_from_f32(X, QS_DTYPE_BF16, xb, (size_t)T * K);
  qs_convert_to_f32(xb, QS_DTYPE_BF16, X, (size_t)T * K); // the values bf16 holds
  for (int k = 0; k < K; k++) ref[k] = (float)k * 0.25f;  // a running sum to add to
  memcpy(got, ref, sizeof(float) * K);
  qs_awq_xabs_add_ref(X, T, K, ref);
  qs_awq_xabs_add_ref(X, T, K, ref); // two samples
  TEST_CUDA(cudaMalloc(&dX, sizeof(float) * T * K));
  TEST_CUDA(cudaMalloc((void **)&dS, sizeof(float) * K));
  TEST_CUDA(cudaMemcpy(dS, got, sizeof(float) * K, cudaMemcpyHostToDevice));
  TEST_CUDA(cudaMemcpy(dX, xb, sizeof(uint16_t) * T * K, cudaMemcpyHostToDevice));
  CHECK_EQ_INT(qs_awq_xabs_add_cuda(dX, QS_DTYPE_BF16, T, K, dS, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(dX, X, sizeof(float) * T * K, cudaMemcpyHostToDevice));
  CHECK_EQ_INT(qs_awq_xabs_add_cuda(dX, QS_DTYPE_F32, T, K, dS, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(got, dS, sizeof(float) * K, cudaMemcpyDeviceToHost));
  CHECK(memcmp(got, ref, sizeof(float) * K) == 0);
done:
  cudaFree(dX), cudaFree(dS);
  free(X), free(ref), free(got), free(xb);
}

static void test_fold(void) {
  enum { R = 300, K = 777 };
  float *W = malloc(sizeof(float) * R * K), *got = malloc(sizeof(float) * R * K), *s = malloc(sizeof(float) * K);
  float *dW = NULL, *ds = NULL;
  for (int mode = 0; mode < 3; mode++) { // awq.h QS_AWQ_FOLD_*
    const int ns = mode == QS_AWQ_FOLD_ROWS_DIV ? R : K;
    for (int i = 0; i < R * K; i++) W[i] = uniform();
    for (int i = 0; i < ns; i++) s[i] = 0.05f + fabsf(uniform()) * 7.0f;
    TEST_CUDA(cudaMalloc((void **)&dW, sizeof(float) * R * K));
    TEST_CUDA(cudaMalloc((void **)&ds, sizeof(float) * K));
    TEST_CUDA(cudaMemcpy(dW, W, sizeof(float) * R * K, cudaMemcpyHostToDevice));
    TEST_CUDA(cudaMemcpy(ds, s, sizeof(float) * ns, cudaMemcpyHostToDevice));
    CHECK_EQ_INT(qs_awq_fold_cuda(dW, R, K, ds, mode, 0), QS_OK);
    qs_awq_fold_ref(W, R, K, s, mode);
    TEST_CUDA(cudaMemcpy(got, dW, sizeof(float) * R * K, cudaMemcpyDeviceToHost));
    CHECK(memcmp(got, W, sizeof(float) * R * K) == 0);
    cudaFree(dW), cudaFree(ds);
    dW = ds = NULL;
  }
done:
  cudaFree(dW), cudaFree(ds);
  free(W), free(got), free(s);
}

// The scale search's errors: the differences d are the reference's bits (same grid code); the
// GEMM D·H is fp32 in the reference and TF32 or fp32 here. Each product of TF32-rounded operands
// is within 2·2^-11 of the exact one, and either side's fp32 accumulation over K terms within
// K·2^-24 of Σ|terms|, so |err - err_ref| <= (2^-10·tf32 + 2K·2^-24) · Σ_i |d_i| Σ_j |H_ij| |d_j|
// (the absolute-value form computed here in double), plus the double dot products' ~K·2^-53.
static void test_scaled_error(const struct qs_grid *g, int tf32) {
  enum { T = 256, K = 512, R = 45, NA = QS_AWQ_N_ALPHA };
  float *X = malloc(sizeof(float) * T * K), *H = malloc(sizeof(float) * K * K), *W = malloc(sizeof(float) * R * K);
  float *S = malloc(sizeof(float) * NA * K), *xabs = calloc(K, sizeof(float)), *ws = malloc(sizeof(float) * K);
  float *sc = malloc(sizeof(float) * K), *dH = NULL, *dW = NULL, *dS = NULL;
  uint8_t *codes = malloc(K), *zeros = malloc(K);
  double *ref = malloc(sizeof(double) * NA * R), *got = malloc(sizeof(double) * NA * R), *derr = NULL;
  cublasHandle_t blas = NULL;
  make_acts(X, T, K);
  make_hessian(X, T, K, H);
  qs_awq_xabs_add_ref(X, T, K, xabs);
  for (int k = 0; k < K; k++) xabs[k] /= T;
  for (int a = 0; a < NA; a++) qs_awq_scales_ref((float)a / NA, xabs, K, S + (size_t)a * K);
  for (int i = 0; i < R * K; i++) W[i] = uniform() * 0.05f;
  CHECK_EQ_INT(qs_awq_scaled_error_ref(g, H, K, W, R, S, NA, ref), QS_OK);
  TEST_CUDA(cudaMalloc((void **)&dH, sizeof(float) * K * K));
  TEST_CUDA(cudaMalloc((void **)&dW, sizeof(float) * R * K));
  TEST_CUDA(cudaMalloc((void **)&dS, sizeof(float) * NA * K));
  TEST_CUDA(cudaMalloc((void **)&derr, sizeof(double) * NA * R));
  TEST_CUDA(cudaMemcpy(dH, H, sizeof(float) * K * K, cudaMemcpyHostToDevice));
  TEST_CUDA(cudaMemcpy(dW, W, sizeof(float) * R * K, cudaMemcpyHostToDevice));
  TEST_CUDA(cudaMemcpy(dS, S, sizeof(float) * NA * K, cudaMemcpyHostToDevice));
  CHECK(cublasCreate(&blas) == CUBLAS_STATUS_SUCCESS);
  CHECK_EQ_INT(qs_awq_scaled_error_cuda(g, dH, K, dW, R, dS, NA, derr, tf32, blas, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(got, derr, sizeof(double) * NA * R, cudaMemcpyDeviceToHost));
  int worst_ok = 1;
  double worst = 0;
  for (int i = 0; i < NA * R; i++) {
    const float *w = W + (size_t)(i % R) * K, *s = S + (size_t)(i / R) * K;
    float d[K];
    for (int k = 0; k < K; k++) ws[k] = w[k] * s[k];
    qs_grid_quantize_row_ref(g, ws, NULL, K, codes, sc, zeros, ws);
    for (int k = 0; k < K; k++) d[k] = w[k] - ws[k] / s[k];
    double bound = 0;
    for (int a = 0; a < K; a++) {
      double row = 0;
      for (int b = 0; b < K; b++) row += fabs((double)H[(size_t)a * K + b] * d[b]);
      bound += fabs((double)d[a]) * row;
    }
    double tol = (tf32 ? 0x1p-10 : 0.0) * bound + 2.0 * K * 0x1p-24 * bound + 1e-300;
    double dev = fabs(got[i] - ref[i]);
    if (dev > tol) worst_ok = 0;
    if (dev / tol > worst) worst = dev / tol;
  }
  CHECK(worst_ok);
  printf("scaled error (bits %d, %s, group %d, %s): worst deviation %.3f of the bound\n", g->bits,
         g->sym ? "sym" : "asym", g->group_size, tf32 ? "tf32" : "fp32", worst);
done:
  if (blas) cublasDestroy(blas);
  cudaFree(dH), cudaFree(dW), cudaFree(dS), cudaFree(derr);
  free(X), free(H), free(W), free(S), free(xabs), free(ws), free(sc), free(codes), free(zeros), free(ref), free(got);
}

// d B dᵀ of one group's values q against the original x, in double (the arbiter of ties).
static double group_err(const float *H, int K, int c0, int n, const float *x, const float *q) {
  double e = 0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      e += ((double)x[i] - q[i]) * H[(size_t)(c0 + i) * K + c0 + j] * ((double)x[j] - q[j]);
  return e;
}

static void test_clip(const struct qs_grid *g, int clip) {
  enum { T = 256, K = 640, R = 70 }; // group 128: 5 groups; group 96: a ragged last group
  const int gs = g->group_size > 0 ? g->group_size : K, G = (K + gs - 1) / gs;
  float *X = malloc(sizeof(float) * T * K), *H = malloc(sizeof(float) * K * K), *W = malloc(sizeof(float) * R * K);
  float *Wr = malloc(sizeof(float) * R * K), *Wg = malloc(sizeof(float) * R * K);
  float *Hb = malloc(sizeof(float) * (size_t)G * gs * gs), *sr = malloc(sizeof(float) * R * G);
  float *sg = malloc(sizeof(float) * R * G), *lg = malloc(sizeof(float) * R);
  uint8_t *cr = malloc((size_t)R * K), *cg = malloc((size_t)R * K), *zr = malloc((size_t)R * G), *zg = malloc((size_t)R * G);
  float *dH = NULL, *dW = NULL, *dsc = NULL, *dl = NULL;
  uint8_t *dc = NULL, *dz = NULL;
  double *lr = malloc(sizeof(double) * R);
  make_acts(X, T, K);
  make_hessian(X, T, K, H);
  for (int i = 0; i < R * K; i++) W[i] = uniform() * (i % 53 == 0 ? 0.3f : 0.05f); // outliers worth clipping
  memcpy(Wr, W, sizeof(float) * R * K);
  qs_awq_diag_blocks(g, H, K, Hb);
  for (int r = 0; r < R; r++)
    lr[r] = qs_awq_clip_row_ref(g, Hb, clip, Wr + (size_t)r * K, K, cr + (size_t)r * K, sr + (size_t)r * G, zr + (size_t)r * G);
  TEST_CUDA(cudaMalloc((void **)&dH, sizeof(float) * K * K));
  TEST_CUDA(cudaMalloc((void **)&dW, sizeof(float) * R * K));
  TEST_CUDA(cudaMalloc((void **)&dsc, sizeof(float) * R * G));
  TEST_CUDA(cudaMalloc((void **)&dl, sizeof(float) * R));
  TEST_CUDA(cudaMalloc((void **)&dc, (size_t)R * K));
  TEST_CUDA(cudaMalloc((void **)&dz, (size_t)R * G));
  TEST_CUDA(cudaMemcpy(dH, H, sizeof(float) * K * K, cudaMemcpyHostToDevice));
  TEST_CUDA(cudaMemcpy(dW, W, sizeof(float) * R * K, cudaMemcpyHostToDevice));
  CHECK_EQ_INT(qs_awq_clip_rows_cuda(g, dH, K, clip ? QS_AWQ_N_CLIP : 1, dW, R, dc, dsc, dz, dl, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(Wg, dW, sizeof(float) * R * K, cudaMemcpyDeviceToHost));
  TEST_CUDA(cudaMemcpy(cg, dc, (size_t)R * K, cudaMemcpyDeviceToHost));
  TEST_CUDA(cudaMemcpy(sg, dsc, sizeof(float) * R * G, cudaMemcpyDeviceToHost));
  TEST_CUDA(cudaMemcpy(zg, dz, (size_t)R * G, cudaMemcpyDeviceToHost));
  TEST_CUDA(cudaMemcpy(lg, dl, sizeof(float) * R, cudaMemcpyDeviceToHost));
  int differ = 0, ties_ok = 1;
  for (int r = 0; r < R; r++) {
    for (int gi = 0; gi < G; gi++) {
      const int c0 = gi * gs, n = K - c0 < gs ? K - c0 : gs;
      const size_t o = (size_t)r * K + c0, og = (size_t)r * G + gi;
      int same = sr[og] == sg[og] && zr[og] == zg[og] && !memcmp(cr + o, cg + o, (size_t)n) &&
                 !memcmp(Wr + o, Wg + o, sizeof(float) * n);
      if (same) continue;
      // another shrink ratio: only acceptable where the two tie within the sums' rounding
      // (fp32 B·d in two orders: ~2n·2^-24 of Σ|terms|, bounded here by 2n·2^-24·|d|ᵀ|B||d|)
      differ++;
      double er = group_err(H, K, c0, n, W + o, Wr + o), eg = group_err(H, K, c0, n, W + o, Wg + o), ab = 0;
      for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
          ab += fabs(((double)W[o + i] - Wr[o + i]) * H[(size_t)(c0 + i) * K + c0 + j] * ((double)W[o + j] - Wr[o + j]));
      if (fabs(er - eg) > 4.0 * n * 0x1p-24 * ab) ties_ok = 0;
    }
    // loss: Σ_g err_g / 2 with err_g in two summation orders (bound as above, whole row) and fp32 output
    CHECK_CLOSE(lg[r], lr[r] / 2.0, 1e-30, 4.0 * K * 0x1p-24 + 0x1p-23);
  }
  CHECK(ties_ok);
  CHECK(differ <= R * G / 100); // ties are rare
  printf("clip (bits %d, %s, group %d, clip %d): %d of %d groups differ (ties)\n", g->bits, g->sym ? "sym" : "asym",
         g->group_size, clip, differ, R * G);
done:
  cudaFree(dH), cudaFree(dW), cudaFree(dsc), cudaFree(dl), cudaFree(dc), cudaFree(dz);
  free(X), free(H), free(W), free(Wr), free(Wg), free(Hb), free(sr), free(sg), free(lg), free(cr), free(cg), free(zr),
      free(zg), free(lr);
}

int main(void) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) QS_TEST_SKIP("no CUDA device");
  struct qs_grid a4 = qs_grid_default(), s3 = qs_grid_default(), a4r = qs_grid_default();
  a4.sym = 0; // AWQ's default: asymmetric 4-bit g128, fp16 scales
  s3.bits = 3, s3.group_size = 32;
  a4r.sym = 0, a4r.group_size = 96;
  test_xabs();
  test_fold();
  test_scaled_error(&a4, 1);
  test_scaled_error(&a4, 0);
  test_scaled_error(&s3, 1);
  test_clip(&a4, 1);
  test_clip(&a4, 0);
  test_clip(&s3, 1);
  test_clip(&a4r, 1);
  return qs_test_finish("test_awq_cuda");
}
