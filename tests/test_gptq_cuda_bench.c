// test_gptq_cuda_bench.c — `test_gptq_cuda --bench`: seconds per GPTQ phase on the GPU for the linear
// layers of one llama-3-8b and one llama-3-70b decoder layer, and their sum per layer.
//
// Per distinct input (one Hessian and one factor each: q/k/v share theirs, gate/up theirs):
//   Hessian  S += XᵀX of 128 x 2048 tokens, bf16 inputs, fp32 accumulate, upper tiles, fed as 8
//            chunks of 32768 rows (as calibration batches arrive); TFLOP/s counts the products the
//            tiles execute (about half of 2·tokens·K²) and is compared with ~800 TFLOP/s (bf16 dense)
//   factor   qs_gptq_prep_cuda_init (diag read-back, gather, potrf, trtri, reverse), fp32 and fp64
// Per module group: solve (4-bit g128 sym, qs_gptq_quantize_cuda: Wp copy, 8-9 kernels + one sgemm
// per 128 columns). (The pack phase, the GPU GPTQ v1 pack kernel, is gone: packing into a format's
// words now happens only in the format writer, on the host — src/formats/gptq_pack.c — so there is
// no GPU pack to time.) Each timed call is preceded by a warm-up call and
// its median over REPS runs is printed; device events bracket the calls (the entries synchronize
// at their ends anyway). Inputs are random (never zeros): a host pool of random values tiled over
// the device buffers (an odd pool length, so rows of X and W do not repeat).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include "base/dtype.h"
#include "base/qs_common.h"
#include "gptq_factor.h"
#include "gptq_solve.h"
#include "hessian.h"
#include "quant/method.h"

enum { BENCH_REPS = 3, BENCH_TOKENS = 128 * 2048, BENCH_CHUNK = 32768, BENCH_POOL = 4194301 };
static const double BENCH_PEAK_BF16 = 800e12;

#define BENCH_CUDA(call)                                                                  \
  do {                                                                                    \
    cudaError_t e_ = (call);                                                              \
    if (e_ != cudaSuccess) {                                                              \
      fprintf(stderr, "bench: %s:%d %s -> %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      return -1.0;                                                                        \
    }                                                                                     \
  } while (0)

static uint64_t bench_rng = 0x0DDB1A5E5BADDEEDull;
static double bench_uniform(void) { // splitmix64 -> (0, 1)
  return qs_rand_open01(&bench_rng);
}
static float bench_gauss(void) { // Box-Muller on two independent uniforms
  double u = bench_uniform(), v = bench_uniform();
  return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

// Fills `bytes` of device memory by tiling a pool of random elements of size es.
static double bench_fill(void *d, size_t bytes, const void *pool, size_t pool_bytes) {
  for (size_t off = 0; off < bytes; off += pool_bytes)
    BENCH_CUDA(cudaMemcpy((char *)d + off, pool, bytes - off < pool_bytes ? bytes - off : pool_bytes,
                          cudaMemcpyHostToDevice));
  return 0.0;
}

struct bench_ctx {
  cublasHandle_t blas;
  cusolverDnHandle_t solver;
  float *pool_f32;     // [BENCH_POOL] N(0, 0.02)
  uint16_t *pool_bf16; // [BENCH_POOL] N(0, 1) in bf16
  cudaEvent_t ev0, ev1;
  int failures;
};

static int bench_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double bench_median(double *t, int n) {
  qsort(t, (size_t)n, sizeof(double), bench_cmp);
  return t[n / 2];
}

// Hessian of BENCH_TOKENS tokens (8 chunks) into S; returns seconds (-1 on error).
static double bench_hessian_once(struct bench_ctx *c, float *S, const void *X, int K, enum qs_hessian_fill fill) {
  float ms = 0.0f;
  BENCH_CUDA(cudaMemset(S, 0, sizeof(float) * (size_t)K * K));
  BENCH_CUDA(cudaEventRecord(c->ev0, 0));
  for (int r = 0; r < BENCH_TOKENS; r += BENCH_CHUNK)
    if (qs_gptq_hessian_add_cuda(S, X, BENCH_CHUNK, K, QS_DTYPE_BF16, fill, c->blas, 0) != QS_OK) return -1.0;
  BENCH_CUDA(cudaEventRecord(c->ev1, 0));
  BENCH_CUDA(cudaEventSynchronize(c->ev1));
  BENCH_CUDA(cudaEventElapsedTime(&ms, c->ev0, c->ev1));
  return ms * 1e-3;
}

static double bench_prep_once(struct bench_ctx *c, const float *H, int K, int f64) {
  struct qs_qopts o = qs_qopts_default();
  struct qs_gptq_prep_cuda p;
  double t0 = qs_time_now();
  if (qs_gptq_prep_cuda_init(&p, H, K, &o, f64, "bench", c->solver, 0) != QS_OK) return -1.0;
  double t = qs_time_now() - t0;
  qs_gptq_prep_cuda_free(&p);
  return t;
}

// The factor's two cuSOLVER calls alone (fp32, on H + 1 % of its mean diagonal — H's diagonal is
// tokens·E[x²] here — as the prep factorizes): out[0] potrf, out[1] trtri, in seconds.
static int bench_factor_split(struct bench_ctx *c, const float *H, int K, double out[2]) {
  float *A = NULL, *diag = malloc(sizeof(float) * K), ms = 0.0f;
  void *dw = NULL, *hw = NULL;
  int *info_d = NULL, info = 0, ok = diag != NULL;
  size_t d1 = 0, h1 = 0, d2 = 0, h2 = 0;
  cusolverDnParams_t prm = NULL;
  ok = ok && cudaMalloc((void **)&A, sizeof(float) * (size_t)K * K) == cudaSuccess &&
       cudaMalloc((void **)&info_d, sizeof(int)) == cudaSuccess &&
       cudaMemcpy(A, H, sizeof(float) * (size_t)K * K, cudaMemcpyDeviceToDevice) == cudaSuccess &&
       cudaMemcpy2D(diag, sizeof(float), A, sizeof(float) * (size_t)(K + 1), sizeof(float), (size_t)K,
                    cudaMemcpyDeviceToHost) == cudaSuccess;
  double mean = 0.0;
  for (int k = 0; ok && k < K; k++) mean += diag[k] / (double)K;
  for (int k = 0; ok && k < K; k++) diag[k] += (float)(0.01 * mean);
  ok = ok && cudaMemcpy2D(A, sizeof(float) * (size_t)(K + 1), diag, sizeof(float), sizeof(float), (size_t)K,
                          cudaMemcpyHostToDevice) == cudaSuccess;
  ok = ok && cusolverDnCreateParams(&prm) == CUSOLVER_STATUS_SUCCESS &&
       cusolverDnXpotrf_bufferSize(c->solver, prm, CUBLAS_FILL_MODE_UPPER, K, CUDA_R_32F, A, K, CUDA_R_32F, &d1, &h1) == 0 &&
       cusolverDnXtrtri_bufferSize(c->solver, CUBLAS_FILL_MODE_UPPER, CUBLAS_DIAG_NON_UNIT, K, CUDA_R_32F, A, K, &d2, &h2) == 0;
  size_t ds = d1 > d2 ? d1 : d2, hs = h1 > h2 ? h1 : h2;
  ok = ok && cudaMalloc(&dw, ds + 1) == cudaSuccess && (hw = malloc(hs + 1)) != NULL &&
       cusolverDnSetStream(c->solver, 0) == CUSOLVER_STATUS_SUCCESS;
  ok = ok && cudaEventRecord(c->ev0, 0) == cudaSuccess &&
       cusolverDnXpotrf(c->solver, prm, CUBLAS_FILL_MODE_UPPER, K, CUDA_R_32F, A, K, CUDA_R_32F, dw, ds, hw, hs, info_d) == 0 &&
       cudaEventRecord(c->ev1, 0) == cudaSuccess && cudaEventSynchronize(c->ev1) == cudaSuccess &&
       cudaEventElapsedTime(&ms, c->ev0, c->ev1) == cudaSuccess &&
       cudaMemcpy(&info, info_d, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess && info == 0;
  out[0] = ms * 1e-3;
  ok = ok && cudaEventRecord(c->ev0, 0) == cudaSuccess &&
       cusolverDnXtrtri(c->solver, CUBLAS_FILL_MODE_UPPER, CUBLAS_DIAG_NON_UNIT, K, CUDA_R_32F, A, K, dw, ds, hw, hs, info_d) == 0 &&
       cudaEventRecord(c->ev1, 0) == cudaSuccess && cudaEventSynchronize(c->ev1) == cudaSuccess &&
       cudaEventElapsedTime(&ms, c->ev0, c->ev1) == cudaSuccess &&
       cudaMemcpy(&info, info_d, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess && info == 0;
  out[1] = ms * 1e-3;
  if (!ok) fprintf(stderr, "bench: factor split K %d failed (info %d)\n", K, info);
  if (prm) cusolverDnDestroyParams(prm);
  cudaFree(A), cudaFree(dw), cudaFree(info_d), free(hw), free(diag);
  return ok;
}

// Times of one input width K: Hessian (upper tiles), factor fp32, factor fp64, Hessian as one full
// GEMM (for comparison), potrf and trtri alone; leaves a finalized H in *H_out. hess_only: the Hessians alone.
static int bench_input(struct bench_ctx *c, int K, int hess_only, double out[6], float **H_out) {
  void *X = NULL;
  float *S = NULL;
  double t[BENCH_REPS];
  size_t xb = (size_t)BENCH_CHUNK * K * 2;
  int ok = cudaMalloc(&X, xb) == cudaSuccess && cudaMalloc((void **)&S, sizeof(float) * (size_t)K * K) == cudaSuccess &&
           bench_fill(X, xb, c->pool_bf16, sizeof(uint16_t) * BENCH_POOL) == 0.0;
  for (int full = 1; full >= 0; full--) { // full first: S ends with the upper-tile result
    enum qs_hessian_fill fill = full ? QS_HESSIAN_FULL : QS_HESSIAN_UPPER;
    ok = ok && bench_hessian_once(c, S, X, K, fill) >= 0.0; // warm-up
    for (int r = 0; ok && r < BENCH_REPS; r++) ok = (t[r] = bench_hessian_once(c, S, X, K, fill)) >= 0.0;
    if (ok) out[full ? 3 : 0] = bench_median(t, BENCH_REPS);
  }
  ok = ok && qs_gptq_hessian_finalize_cuda(S, K, 128, 0) == QS_OK;
  for (int f64 = 0; ok && !hess_only && f64 <= 1; f64++) {
    ok = bench_prep_once(c, S, K, f64) >= 0.0;
    for (int r = 0; ok && r < BENCH_REPS; r++) ok = (t[r] = bench_prep_once(c, S, K, f64)) >= 0.0;
    if (ok) out[1 + f64] = bench_median(t, BENCH_REPS);
  }
  if (ok && !hess_only) ok = bench_factor_split(c, S, K, out + 4);
  cudaFree(X);
  if (!ok) cudaFree(S), c->failures++;
  *H_out = ok ? S : NULL;
  return ok;
}

// The solve's lazy-update sgemms alone (same shapes, operands and order): seconds.
static double bench_sgemms(struct bench_ctx *c, const float *U, float *Wp, float *Err, int N, int K) {
  const float minus1 = -1.0f, one = 1.0f;
  float ms = 0.0f;
  int ldp = (K + 127) / 128 * 128;
  BENCH_CUDA(cudaEventRecord(c->ev0, 0));
  for (int i1 = 0; i1 + 128 < K; i1 += 128)
    if (cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_T, K - i1 - 128, N, 128, &minus1, U + (size_t)i1 * K + i1 + 128, K,
                    Err, N, &one, Wp + i1 + 128, ldp) != CUBLAS_STATUS_SUCCESS)
      return -1.0;
  BENCH_CUDA(cudaEventRecord(c->ev1, 0));
  BENCH_CUDA(cudaEventSynchronize(c->ev1));
  BENCH_CUDA(cudaEventElapsedTime(&ms, c->ev0, c->ev1));
  return ms * 1e-3;
}

// Solve of an [N, K] weight with the factor of H: out[0] its seconds (median), out[1] those of the
// solve's sgemms alone. (No pack phase any more: see the top of the file.)
static int bench_module(struct bench_ctx *c, const float *H, int N, int K, double out[2]) {
  struct qs_qopts o = qs_qopts_default();
  struct qs_gptq_prep_cuda p;
  size_t nk = (size_t)N * K, G = (size_t)(K / 128);
  float *W0 = NULL, *W = NULL, *scales = NULL; // scales: fp32 holding fp16 values
  uint8_t *codes = NULL, *zeros = NULL;
  double ts[BENCH_REPS + 1];
  int ok = qs_gptq_prep_cuda_init(&p, H, K, &o, 0, "bench", c->solver, 0) == QS_OK;
  ok = ok && cudaMalloc((void **)&W0, 4 * nk) == cudaSuccess && cudaMalloc((void **)&W, 4 * nk) == cudaSuccess &&
       cudaMalloc((void **)&codes, nk) == cudaSuccess && cudaMalloc((void **)&zeros, N * G) == cudaSuccess &&
       cudaMalloc((void **)&scales, sizeof(float) * N * G) == cudaSuccess;
  ok = ok && bench_fill(W0, 4 * nk, c->pool_f32, sizeof(float) * BENCH_POOL) == 0.0;
  for (int r = 0; ok && r <= BENCH_REPS; r++) { // r = 0: warm-up
    ok = cudaMemcpy(W, W0, 4 * nk, cudaMemcpyDeviceToDevice) == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess;
    double t0 = qs_time_now();
    ok = ok && qs_gptq_quantize_cuda(&p, W, N, codes, scales, zeros, NULL, c->blas, 0) == QS_OK;
    ts[r] = qs_time_now() - t0;
  }
  if (ok) out[0] = bench_median(ts + 1, BENCH_REPS);
  // sgemms alone: W0 as Wp (N x K >= N x ldp floats only when K % 128 == 0, true for these shapes)
  float *Err = NULL;
  ok = ok && K % 128 == 0 && cudaMalloc((void **)&Err, sizeof(float) * 128 * (size_t)N) == cudaSuccess &&
       cudaMemset(Err, 0x3C, sizeof(float) * 128 * (size_t)N) == cudaSuccess;
  for (int r = 0; ok && r <= BENCH_REPS; r++) ok = (ts[r] = bench_sgemms(c, p.U, W0, Err, N, K)) >= 0.0;
  if (ok) out[1] = bench_median(ts + 1, BENCH_REPS);
  cudaFree(Err);
  if (!ok) c->failures++;
  qs_gptq_prep_cuda_free(&p);
  cudaFree(W0), cudaFree(W), cudaFree(codes), cudaFree(zeros), cudaFree(scales);
  return ok;
}

struct bench_model {
  const char *name;
  int hidden, inter, kv; // kv = n_kv_heads * head_dim
};

static double bench_hess_flops(int K) { // products the UPPER 16-bit path executes (kernels/hessian.cu)
  int64_t T = qs_param_read("QS_HESSIAN_TILE", 256), B = qs_param_read("QS_HESSIAN_BAND", 2048), nt = K / T, Kt = nt * T;
  double f = 0.0;
  if (K >= 4 * B) {
    for (int64_t b0 = 0; b0 < K; b0 += B) f += (double)(K - b0) * (double)(K - b0 < B ? K - b0 : B);
  } else {
    f = (double)(nt * (nt + 1) / 2) * T * T + (double)(K - Kt) * K;
  }
  return 2.0 * BENCH_TOKENS * f;
}

static void bench_model_run(struct bench_ctx *c, const struct bench_model *m, int hess_only) {
  // inputs: 0 = hidden (q/k/v, o, gate/up read K = hidden), 1 = intermediate (down)
  const int Ks[2] = {m->hidden, m->inter};
  const struct { const char *name; int N, in; } mods[4] = {
      {"qkv", m->hidden + 2 * m->kv, 0}, {"o", m->hidden, 0}, {"gate+up", 2 * m->inter, 0}, {"down", m->hidden, 1}};
  double in_t[2][6] = {{0}}, mod_t[4][2] = {{0}}, sum[4] = {0};
  float *H[2] = {NULL, NULL};
  printf("\n%s (hidden %d, intermediate %d, tokens %d):\n", m->name, m->hidden, m->inter, BENCH_TOKENS);
  for (int i = 0; i < 2; i++) {
    if (!bench_input(c, Ks[i], hess_only, in_t[i], &H[i])) continue;
    double fl = bench_hess_flops(Ks[i]), full = 2.0 * BENCH_TOKENS * (double)Ks[i] * Ks[i];
    printf("  K %5d  hessian %8.4f s (upper: %5.1f TFLOP/s executed = %4.1f %% of %.0f; one full GEMM %.4f s "
           "= %5.1f TFLOP/s)\n           factor fp32 %7.4f s  fp64 %7.4f s\n", Ks[i], in_t[i][0], fl / in_t[i][0] * 1e-12,
           100.0 * fl / in_t[i][0] / BENCH_PEAK_BF16, BENCH_PEAK_BF16 * 1e-12, in_t[i][3], full / in_t[i][3] * 1e-12,
           in_t[i][1], in_t[i][2]);
    if (!hess_only)
      printf("           factor fp32 = potrf %.4f s (%.1f TFLOP/s) + trtri %.4f s (%.1f TFLOP/s) + the rest\n", in_t[i][4],
             (double)Ks[i] * Ks[i] * Ks[i] / 3.0 / in_t[i][4] * 1e-12, in_t[i][5],
             (double)Ks[i] * Ks[i] * Ks[i] / 3.0 / in_t[i][5] * 1e-12);
  }
  if (hess_only) {
    cudaFree(H[0]), cudaFree(H[1]);
    return;
  }
  for (int j = 0; j < 4; j++) {
    int K = Ks[mods[j].in];
    if (!H[mods[j].in] || !bench_module(c, H[mods[j].in], mods[j].N, K, mod_t[j])) continue;
    printf("  %-8s N %5d K %5d  solve %8.4f s, of which sgemms %.4f s (%4.1f TFLOP/s fp32)\n", mods[j].name,
           mods[j].N, K, mod_t[j][0], mod_t[j][1], (double)mods[j].N * K * (double)(K - 128) / mod_t[j][1] * 1e-12);
  }
  // per layer: 3 Hessians + factors of K = hidden (qkv, o, gate/up inputs), 1 of K = intermediate
  for (int i = 0; i < 2; i++)
    for (int p = 0; p < 3; p++) sum[p] += (i == 0 ? 3.0 : 1.0) * in_t[i][p];
  for (int j = 0; j < 4; j++) sum[3] += mod_t[j][0];
  printf("  per layer: hessian %.3f s, factor fp32 %.3f s (fp64 %.3f s), solve %.3f s; total %.3f s (fp32 factor; "
         "no GPU pack phase: the format writer packs on the host)\n", sum[0], sum[1], sum[2], sum[3],
         sum[0] + sum[1] + sum[3]);
  cudaFree(H[0]), cudaFree(H[1]);
}

int qs_gptq_cuda_bench(cublasHandle_t blas, cusolverDnHandle_t solver, int hess_only) {
  static const struct bench_model models[2] = {{"llama-3-8b", 4096, 14336, 1024}, {"llama-3-70b", 8192, 28672, 1024}};
  struct bench_ctx c = {.blas = blas, .solver = solver, .pool_f32 = malloc(sizeof(float) * BENCH_POOL),
                        .pool_bf16 = malloc(sizeof(uint16_t) * BENCH_POOL)};
  if (!c.pool_f32 || !c.pool_bf16 || cudaEventCreate(&c.ev0) != cudaSuccess || cudaEventCreate(&c.ev1) != cudaSuccess) {
    fprintf(stderr, "bench: set-up failed\n");
    return 1;
  }
  // Keep freed stream-ordered memory in the pool (as a long-running pipeline would): the solve's
  // scratch then costs no re-mapping per call.
  cudaMemPool_t mp;
  uint64_t keep = UINT64_MAX;
  if (cudaDeviceGetDefaultMemPool(&mp, 0) == cudaSuccess) cudaMemPoolSetAttribute(mp, cudaMemPoolAttrReleaseThreshold, &keep);
  for (int i = 0; i < BENCH_POOL; i++) {
    c.pool_f32[i] = 0.02f * bench_gauss();
    c.pool_bf16[i] = qs_f32_to_bf16(bench_gauss());
  }
  for (int m = 0; m < 2; m++) bench_model_run(&c, &models[m], hess_only);
  printf("\nbench: %d failed phases\n", c.failures);
  free(c.pool_f32), free(c.pool_bf16);
  return c.failures ? 1 : 0;
}
