// test_gptq_tiles_cuda.c — the property the cuda engine's rank-count independence rests on
// (src/run/engine_cuda.h): qs_gptq_quantize_tiled_cuda gives every row the same bits whether the
// rows are solved in one call or split at tile boundaries over several calls (as ranks split them).
// Compares codes, scales, zeros, dequantized weights and row losses byte for byte (zero tolerance:
// the claim is bit identity). Label gpu; exits 77 without a CUDA device.
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cusolverDn.h>

#include "gptq_factor.h"
#include "gptq_solve.h"
#include "quant/gptq.h"
#include "quant/grid.h"
#include "qs_test.h"
#include "qs_test_cuda.h"

enum { N = 3000, K = 384, RT = 1024, S = 2048 }; // 3 tiles, the last ragged; S calibration rows

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static float uniform(void) { return (float)((double)(qs_mix64(g_rng += QS_WEYL) >> 11) * 0x1p-53) * 2.0f - 1.0f; }

struct out {
  float *W;
  uint8_t *codes, *zeros;
  float *scales; // fp16 values
  float *loss;
};

// Rows [r0, r1) of W0 (host) solved as `ncalls` calls split at the given tile-aligned bounds.
static int solve_split(const struct qs_gptq_prep_cuda *prep, const float *W0, const int64_t *bounds, int nb,
                       int64_t G, struct out *h, cublasHandle_t blas, cudaStream_t st) {
  float *W = NULL, *loss = NULL;
  uint8_t *codes = NULL, *zeros = NULL;
  float *scales = NULL;
  int ok = 0;
  TEST_CUDA(cudaMalloc((void **)&W, sizeof(float) * N * K));
  TEST_CUDA(cudaMalloc((void **)&codes, (size_t)N * K));
  TEST_CUDA(cudaMalloc((void **)&zeros, (size_t)N * G));
  TEST_CUDA(cudaMalloc((void **)&scales, sizeof(float) * (size_t)N * G));
  TEST_CUDA(cudaMalloc((void **)&loss, sizeof(float) * N));
  TEST_CUDA(cudaMemcpy(W, W0, sizeof(float) * N * K, cudaMemcpyHostToDevice));
  for (int c = 0; c + 1 < nb; c++) {
    int64_t a = bounds[c], n = bounds[c + 1] - a;
    CHECK_EQ_INT(qs_gptq_quantize_tiled_cuda(prep, W + a * K, n, RT, codes + a * K, scales + a * G, zeros + a * G,
                                             loss + a, blas, st), QS_OK);
  }
  TEST_CUDA(cudaMemcpy(h->W, W, sizeof(float) * N * K, cudaMemcpyDeviceToHost));
  TEST_CUDA(cudaMemcpy(h->codes, codes, (size_t)N * K, cudaMemcpyDeviceToHost));
  TEST_CUDA(cudaMemcpy(h->zeros, zeros, (size_t)N * G, cudaMemcpyDeviceToHost));
  TEST_CUDA(cudaMemcpy(h->scales, scales, sizeof(float) * (size_t)N * G, cudaMemcpyDeviceToHost));
  TEST_CUDA(cudaMemcpy(h->loss, loss, sizeof(float) * N, cudaMemcpyDeviceToHost));
  ok = 1;
done:
  cudaFree(W), cudaFree(codes), cudaFree(zeros), cudaFree(scales), cudaFree(loss);
  return ok;
}

static void out_alloc(struct out *o, int64_t G) {
  o->W = malloc(sizeof(float) * N * K);
  o->codes = malloc((size_t)N * K);
  o->zeros = malloc((size_t)N * G);
  o->scales = malloc(sizeof(float) * (size_t)N * G);
  o->loss = malloc(sizeof(float) * N);
}
static void out_free(struct out *o) { free(o->W), free(o->codes), free(o->zeros), free(o->scales), free(o->loss); }

int main(void) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) QS_TEST_SKIP("no CUDA device");
  cublasHandle_t blas = NULL;
  cusolverDnHandle_t solver = NULL;
  cudaStream_t st = NULL;
  struct qs_gptq_prep_cuda prep = {0};
  struct qs_qopts o = qs_qopts_default();
  o.act_order = QS_ACT_ORDER_GROUP; // the old act_order = 1 (no static groups)
  int64_t G = qs_grid_n_groups(&o.grid, K);
  float *X = malloc(sizeof(float) * S * K), *H = calloc((size_t)K * K, sizeof(float)), *W0 = malloc(sizeof(float) * N * K);
  float *Hd = NULL;
  struct out ref, alt;
  out_alloc(&ref, G);
  out_alloc(&alt, G);
  for (int64_t i = 0; i < (int64_t)S * K; i++) X[i] = uniform() * (1.0f + (float)(i % K) / K);
  for (int64_t i = 0; i < (int64_t)N * K; i++) W0[i] = 0.02f * uniform();
  qs_gptq_hessian_add_ref(H, X, S, K);
  CHECK_EQ_INT(qs_gptq_hessian_finalize(H, K, S / 128), QS_OK);
  TEST_CUDA(cudaStreamCreate(&st));
  CHECK_EQ_INT((int)cublasCreate(&blas), 0);
  CHECK_EQ_INT((int)cublasSetStream(blas, st), 0);
  CHECK_EQ_INT((int)cusolverDnCreate(&solver), 0);
  CHECK_EQ_INT((int)cusolverDnSetStream(solver, st), 0);
  TEST_CUDA(cudaMalloc((void **)&Hd, sizeof(float) * K * K));
  TEST_CUDA(cudaMemcpy(Hd, H, sizeof(float) * K * K, cudaMemcpyHostToDevice));
  CHECK_EQ_INT(qs_gptq_prep_cuda_init(&prep, Hd, K, &o, 0, "tiles", solver, st), QS_OK);
  const int64_t one[] = {0, N}, two[] = {0, RT, N}, three[] = {0, RT, 2 * RT, N}, tail[] = {0, 2 * RT, N};
  CHECK(solve_split(&prep, W0, one, 2, G, &ref, blas, st));
  const int64_t *splits[] = {two, three, tail};
  const int nbs[] = {3, 4, 3};
  for (int s = 0; s < 3; s++) {
    CHECK(solve_split(&prep, W0, splits[s], nbs[s], G, &alt, blas, st));
    CHECK(!memcmp(ref.W, alt.W, sizeof(float) * N * K));
    CHECK(!memcmp(ref.codes, alt.codes, (size_t)N * K));
    CHECK(!memcmp(ref.zeros, alt.zeros, (size_t)N * G));
    CHECK(!memcmp(ref.scales, alt.scales, sizeof(float) * (size_t)N * G));
    CHECK(!memcmp(ref.loss, alt.loss, sizeof(float) * N));
    printf("split %d (%d calls): %s\n", s, nbs[s] - 1, qs_test_failures ? "DIFFERENT" : "bit-identical to one call");
  }
done:
  qs_gptq_prep_cuda_free(&prep);
  cudaFree(Hd);
  if (blas) cublasDestroy(blas);
  if (solver) cusolverDnDestroy(solver);
  if (st) cudaStreamDestroy(st);
  out_free(&ref), out_free(&alt);
  free(X), free(H), free(W0);
  return qs_test_failures ? 1 : 0;
}
