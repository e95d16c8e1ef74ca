// test_gptq_cuda.c — the GPU building blocks of GPTQ (kernels/hessian, gptq_factor, gptq_solve,
// gptq_pack) against their CPU references in src/quant.h (label gpu; built only with QS_WITH_CUDA).
// Run: ctest --test-dir build -L gpu --output-on-failure. Exits 77 (skipped) without a CUDA device.
// `test_gptq_cuda --bench` times the phases on llama-3-8b / 70b shapes instead (`--bench hessian`:
// the Hessians alone, e.g. to compare QS_HESSIAN_TILE values).
//
// What is checked:
//  - Hessian S += XᵀX (fp32 syrk/gemm, bf16/f16 tensor cores, upper/full, ragged K, two chunks
//    accumulated) against qs_gptq_hessian_add_ref, elementwise with a derived bound (test_hessian);
//    finalize bit-exact against qs_gptq_hessian_finalize.
//  - The factor U = J L^-1 J (fp32 and fp64) against qs_gptq_inverse_factor, and the prepared factor
//    (act-order, dead columns, damping raises, failure) against qs_gptq_prep_init: permutation, dead
//    flags and damping identical, U within a condition-number tolerance (test_factor_*).
//  - The solve against qs_gptq_quantize_rows on random W and H from random correlated inputs, for
//    4-bit g128, 3-bit asym, act-order, static groups, ragged blocks/groups, per-row grids, gs 32:
//    >= 99.9 % identical codes whenever both sides use the same factor (CPU's or GPU's), the full
//    GPU path against the all-CPU one on objective and ||Q - W|| (test_solve_case says why), Q
//    bit-exactly the dequantized codes, dead columns 0, row blocks bit-identical.
//  - Packing bit-exact against qs_gptq_pack (2/3/4/8 bits, wrapped zeros, bad zeros, bad shapes).
#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include "base/dtype.h"
#include "gptq_factor.h"
#include "gptq_pack.h"
#include "gptq_solve.h"
#include "hessian.h"
#include "qs_test.h"
#include "quant/quant.h"

// tests/test_gptq_cuda_bench.c: `--bench [hessian]` (0 when every call succeeded).
int qs_gptq_cuda_bench(cublasHandle_t blas, cusolverDnHandle_t solver, int hess_only);

static cublasHandle_t g_blas;
static cusolverDnHandle_t g_solver;
static const double U32 = 0x1p-24; // fp32 unit roundoff

// ---- helpers --------------------------------------------------------------------------------------

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static double rnd_uniform(void) { // splitmix64 -> (0, 1)
  return qs_rand_open01(&g_rng);
}
static float rnd_gauss(void) {
  double u = rnd_uniform(), v = rnd_uniform();
  return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static void *dev_put(const void *h, size_t bytes) {
  void *d = NULL;
  if (cudaMalloc(&d, bytes ? bytes : 1) != cudaSuccess) return NULL;
  if (h && cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
    cudaFree(d);
    return NULL;
  }
  return d;
}
static int dev_get(void *h, const void *d, size_t bytes) {
  return cudaDeviceSynchronize() == cudaSuccess && cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost) == cudaSuccess;
}

// Calibration-like inputs [ntok, K]: unit features plus a shared rank-16 component (correlation),
// log-normal channel scales (outlier channels) and `ndead` all-zero columns (never-firing inputs).
static float *make_inputs(int ntok, int K, int ndead) {
  enum { R = 16 };
  float *X = malloc(sizeof(float) * (size_t)ntok * K), *B = malloc(sizeof(float) * R * K);
  float *s = malloc(sizeof(float) * K), z[R];
  for (int i = 0; i < R * K; i++) B[i] = 0.5f * rnd_gauss();
  for (int k = 0; k < K; k++) s[k] = expf(0.7f * rnd_gauss());
  for (int d = 0; d < ndead; d++) s[(d * 7919 + 13) % K] = 0.0f;
  for (int t = 0; t < ntok; t++) {
    for (int r = 0; r < R; r++) z[r] = rnd_gauss();
    for (int k = 0; k < K; k++) {
      float v = rnd_gauss();
      for (int r = 0; r < R; r++) v += z[r] * B[r * K + k];
      X[(size_t)t * K + k] = s[k] * v;
    }
  }
  free(B);
  free(s);
  return X;
}

// H = (2/nseq) XᵀX through the GPU fp32 path (the solve tests need some SPD H; both sides use this
// same H). Returns the host copy; *H_dev receives the device copy.
static float *make_hessian(const float *X, int ntok, int K, float **H_dev) {
  float *H = malloc(sizeof(float) * (size_t)K * K), *Xd = dev_put(X, sizeof(float) * (size_t)ntok * K);
  float *Hd = dev_put(NULL, sizeof(float) * (size_t)K * K);
  CHECK(Xd && Hd && cudaMemset(Hd, 0, sizeof(float) * (size_t)K * K) == cudaSuccess);
  CHECK_EQ_INT(qs_gptq_hessian_add_cuda(Hd, Xd, ntok, K, QS_DTYPE_F32, QS_HESSIAN_UPPER, g_blas, 0), QS_OK);
  CHECK_EQ_INT(qs_gptq_hessian_finalize_cuda(Hd, K, (ntok + 2047) / 2048, 0), QS_OK);
  CHECK(dev_get(H, Hd, sizeof(float) * (size_t)K * K));
  cudaFree(Xd);
  *H_dev = Hd;
  return H;
}

// ---- Hessian ------------------------------------------------------------------------------------------
//
// Bound: the reference sums S0 + Σ_r x_ri x_rj in row order in fp32, the GPU in another order; both
// see the same inputs (16-bit inputs are rounded on the host first and their products are exact in
// fp32: 8- or 11-bit significands). For n = rows + 1 terms any summation order errs by at most
// (n-1)·u·Σ|terms| (first order), so |gpu - ref| <= 2·rows·u·A_ij with A_ij = |S0_ij| + Σ_r |x_ri x_rj|;
// fp32 inputs add one rounding per product on each side: 2·(rows + 1)·u·A_ij. A is computed with
// the reference itself on |S0|, |X| (its own few-ulp error is covered by the factor 2 slack below).
static void test_hessian(qs_dtype dt, enum qs_hessian_fill fill, int rows, int K) {
  size_t nk = (size_t)K * K, nx = (size_t)rows * K, es = qs_dtype_size(dt);
  float *X = malloc(nx * 4), *Xa = malloc(nx * 4), *S = malloc(nk * 4), *A = malloc(nk * 4), *got = malloc(nk * 4);
  void *Xh = malloc(nx * es), *Xd = NULL;
  float *Sd = NULL;
  for (size_t i = 0; i < nx; i++) X[i] = rnd_gauss() * (i % 7 == 0 ? 8.0f : 1.0f);
  qs_convert_from_f32(X, dt, Xh, nx); // the exact inputs both sides use
  qs_convert_to_f32(Xh, dt, X, nx);
  for (int i = 0; i < K; i++)
    for (int j = i; j < K; j++) S[(size_t)i * K + j] = S[(size_t)j * K + i] = rnd_gauss(); // symmetric S0
  for (size_t i = 0; i < nx; i++) Xa[i] = fabsf(X[i]);
  for (size_t i = 0; i < nk; i++) A[i] = fabsf(S[i]);
  Sd = dev_put(S, nk * 4);
  Xd = dev_put(Xh, nx * es);
  CHECK(Sd && Xd);
  int half = rows / 2; // two calls: the add accumulates
  CHECK_EQ_INT(qs_gptq_hessian_add_cuda(Sd, Xd, half, K, dt, fill, g_blas, 0), QS_OK);
  CHECK_EQ_INT(qs_gptq_hessian_add_cuda(Sd, (char *)Xd + (size_t)half * K * es, rows - half, K, dt, fill, g_blas, 0),
               QS_OK);
  CHECK(dev_get(got, Sd, nk * 4));
  qs_gptq_hessian_add_ref(S, X, rows, K);
  qs_gptq_hessian_add_ref(A, Xa, rows, K);
  double slack = 2.0 * (rows + (dt == QS_DTYPE_F32)) * U32 * 2.0, worst = 0.0, maxrel = 0.0;
  size_t bad = 0;
  for (int i = 0; i < K; i++)
    for (int j = (fill == QS_HESSIAN_FULL ? 0 : i); j < K; j++) {
      size_t u = (size_t)QS_MIN(i, j) * K + QS_MAX(i, j); // the reference fills the upper triangle
      double err = fabs((double)got[(size_t)i * K + j] - S[u]), lim = slack * A[u] + FLT_MIN;
      if (!(err <= lim) && bad++ < 5)
        fprintf(stderr, "  hessian [%d,%d] gpu %.9g ref %.9g (|diff| %.3g > %.3g)\n", i, j, got[(size_t)i * K + j], S[u], err, lim);
      worst = fmax(worst, err / lim);
      maxrel = fmax(maxrel, err / fmax(fabs(S[u]), 1e-30));
    }
  printf("hessian %-4s %s rows %4d K %4d: %zu outside bound, worst err/bound %.4f, max rel err %.3g\n", qs_dtype_name(dt),
         fill == QS_HESSIAN_FULL ? "full " : "upper", rows, K, bad, worst, maxrel);
  CHECK_EQ_INT(bad, 0);
  // finalize: bit-exact with the CPU's on the same upper triangle
  CHECK_EQ_INT(qs_gptq_hessian_finalize_cuda(Sd, K, 3, 0), QS_OK);
  CHECK_EQ_INT(qs_gptq_hessian_finalize(got, K, 3), QS_OK);
  CHECK(dev_get(S, Sd, nk * 4));
  CHECK(memcmp(S, got, nk * 4) == 0);
  cudaFree(Sd);
  cudaFree(Xd);
  free(X), free(Xa), free(S), free(A), free(got), free(Xh);
}

// ---- factor ---------------------------------------------------------------------------------------------
//
// Metric: U's column j scales with A_jj^-1/2 (A = D^1/2 Ã D^1/2 gives U = Ũ D^-1/2), so errors are
// measured on Ũ = U D^1/2: ‖(U_gpu - U_ref) D^1/2‖_F / ‖U_ref D^1/2‖_F, which Cholesky's
// scaling-invariant error analysis bounds through cond(Ã) (Ã the unit-diagonal scaling of A).
//  - Against an fp64 truth (the same route in LAPACK double): the GPU must be as accurate as the
//    CPU's fp32 path, err_gpu <= 4·err_cpu + 4u (two independent rounding histories of similar size;
//    fp64 on the GPU only rounds U to fp32).
//  - Against the CPU's U (prep tests): err <= 2·K·u·sqrt(cond1(Ã)): backward error K·u on each side
//    magnified by the factor's condition, typically sqrt(cond(A)) (Chang & Paige) — the worst case
//    cond(A) would make the bound vacuous for these matrices (cond1 ~ 1e3..1e4); printed with it.
static double cond1_scaled(const float *A, int K) {
  float *L = malloc(sizeof(float) * (size_t)K * K), anorm = 0.0f, rcond = 0.0f;
  for (int i = 0; i < K; i++)
    for (int j = 0; j < K; j++)
      L[(size_t)i * K + j] = (float)(A[(size_t)i * K + j] / sqrt((double)A[(size_t)i * K + i] * A[(size_t)j * K + j]));
  for (int j = 0; j < K; j++) {
    float s = 0.0f;
    for (int i = 0; i < K; i++) s += fabsf(L[(size_t)i * K + j]);
    anorm = fmaxf(anorm, s);
  }
  int info = LAPACKE_spotrf(LAPACK_ROW_MAJOR, 'L', K, L, K);
  if (info == 0) info = LAPACKE_spocon(LAPACK_ROW_MAJOR, 'L', K, L, K, anorm, &rcond);
  free(L);
  return info == 0 && rcond > 0.0f ? 1.0 / rcond : INFINITY;
}

static double u_err(const float *U, const double *T, const float *A, int K) {
  double num = 0.0, den = 0.0;
  for (int i = 0; i < K; i++)
    for (int j = 0; j < K; j++) {
      double s = sqrt((double)A[(size_t)j * K + j]), d = ((double)U[(size_t)i * K + j] - T[(size_t)i * K + j]) * s;
      num += d * d, den += T[(size_t)i * K + j] * s * T[(size_t)i * K + j] * s;
    }
  return sqrt(num / den);
}

// U of A^-1 by the same J L^-1 J route in fp64 (LAPACK), the accuracy yardstick.
static double *factor_f64(const float *A, int K) {
  size_t n = (size_t)K * K;
  double *D = malloc(sizeof(double) * n);
  for (size_t i = 0; i < n; i++) D[i] = A[n - 1 - i];
  int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', K, D, K);
  if (info == 0) info = LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'U', 'N', K, D, K);
  CHECK_EQ_INT(info, 0);
  for (size_t i = 0; i < n / 2; i++) {
    double t = D[i];
    D[i] = D[n - 1 - i], D[n - 1 - i] = t;
  }
  for (int i = 0; i < K; i++)
    for (int j = 0; j < i; j++) D[(size_t)i * K + j] = 0.0;
  return D;
}

static void test_factor_plain(int K) {
  float *Hd = NULL, *X = make_inputs(2 * K, K, 0), *H = make_hessian(X, 2 * K, K, &Hd);
  size_t nk = (size_t)K * K;
  float *cpu = malloc(nk * 4), *got = malloc(nk * 4);
  for (int k = 0; k < K; k++) H[(size_t)k * K + k] *= 1.01f; // ~1 % damping, as the solver adds
  double *T = factor_f64(H, K), cond = cond1_scaled(H, K);
  memcpy(cpu, H, nk * 4);
  CHECK_EQ_INT(qs_gptq_inverse_factor(cpu, K), 0);
  double e_cpu = u_err(cpu, T, H, K);
  for (int f64 = 0; f64 <= 1; f64++) {
    int info = -1;
    size_t lower_nz = 0;
    CHECK(cudaMemcpy(Hd, H, nk * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK_EQ_INT(qs_gptq_inverse_factor_cuda(Hd, K, f64, &info, g_solver, 0), QS_OK);
    CHECK_EQ_INT(info, 0);
    CHECK(dev_get(got, Hd, nk * 4));
    for (int i = 0; i < K; i++)
      for (int j = 0; j < i; j++) lower_nz += got[(size_t)i * K + j] != 0.0f;
    double e_gpu = u_err(got, T, H, K);
    printf("factor %s K %4d: error vs fp64 truth gpu %.3g, cpu fp32 %.3g (limit %.3g), cond1(scaled) ~ %.3g\n",
           f64 ? "fp64" : "fp32", K, e_gpu, e_cpu, 4.0 * e_cpu + 4.0 * U32, cond);
    CHECK(e_gpu <= 4.0 * e_cpu + 4.0 * U32);
    CHECK_EQ_INT(lower_nz, 0);
  }
  cudaFree(Hd);
  free(X), free(H), free(cpu), free(got), free(T);
}

// The prepared factor: same permutation, dead flags and damping as qs_gptq_prep_init; U close.
static void test_factor_prep(int K, int ndead, int act, int f64) {
  float *Hd = NULL, *X = make_inputs(2 * K, K, ndead), *H = make_hessian(X, 2 * K, K, &Hd);
  struct qs_quant_opts o = qs_quant_opts_default();
  struct qs_gptq_prep cpu;
  struct qs_gptq_prep_cuda gpu;
  size_t nk = (size_t)K * K;
  float *U = malloc(nk * 4), *A = malloc(nk * 4);
  o.act_order = act;
  CHECK_EQ_INT(qs_gptq_prep_init(&cpu, H, K, &o, "test.cpu"), QS_OK);
  qs_status st = qs_gptq_prep_cuda_init(&gpu, Hd, K, &o, f64, "test.gpu", g_solver, 0);
  CHECK_EQ_INT(st, QS_OK);
  if (st != QS_OK) goto done;
  CHECK(dev_get(U, gpu.U, nk * 4));
  CHECK(memcmp(cpu.perm, gpu.perm_host, sizeof(int32_t) * K) == 0);
  CHECK(memcmp(cpu.dead, gpu.dead_host, (size_t)K) == 0);
  CHECK_EQ_INT(gpu.n_dead, ndead);
  CHECK(cpu.damp_used == gpu.damp_used && cpu.damp_raises == gpu.damp_raises);
  for (int i = 0; i < K; i++) // the matrix that was factorized: Hp + damp I, positions (as U)
    for (int j = 0; j < K; j++) {
      int pi = cpu.perm[i], pj = cpu.perm[j];
      A[(size_t)i * K + j] = i == j ? (cpu.dead[pi] ? 1.0f : H[(size_t)pi * K + pi]) : H[(size_t)pi * K + pj];
    }
  double mean = 0.0, *T = malloc(sizeof(double) * nk);
  for (int k = 0; k < K; k++) mean += A[(size_t)k * K + k];
  for (int k = 0; k < K; k++) A[(size_t)k * K + k] += cpu.damp_used * (float)(mean / K);
  for (size_t i = 0; i < nk; i++) T[i] = cpu.U[i];
  double cond = cond1_scaled(A, K), err = u_err(U, T, A, K), tol = 2.0 * K * U32 * sqrt(cond);
  printf("prep %s K %4d act %d dead %d: perm/dead/damp %s, U diff vs cpu %.3g (tolerance %.3g, cond1(scaled) ~ %.3g)\n",
         f64 ? "fp64" : "fp32", K, act, ndead,
         memcmp(cpu.perm, gpu.perm_host, sizeof(int32_t) * K) == 0 ? "identical" : "DIFFER", err, tol, cond);
  free(T);
  CHECK(err <= tol);
  qs_gptq_prep_cuda_free(&gpu);
done:
  qs_gptq_prep_free(&cpu);
  cudaFree(Hd);
  free(X), free(H), free(U), free(A);
}

// Indefinite H = XᵀX - 0.3·m·I (rank-deficient XᵀX, m its mean diagonal): damp 0.01 and 0.1 of the
// new mean fail, 1.0 succeeds, on both sides (two raises); H = -I fails every attempt.
static void test_factor_damping(void) {
  enum { K = 256 };
  float *X = make_inputs(K / 2, K, 0), *H = calloc((size_t)K * K, 4), *Hd = NULL;
  struct qs_quant_opts o = qs_quant_opts_default();
  struct qs_gptq_prep cpu;
  struct qs_gptq_prep_cuda gpu;
  qs_gptq_hessian_add(H, X, K / 2, K);
  CHECK_EQ_INT(qs_gptq_hessian_finalize(H, K, 1), QS_OK);
  double m = 0.0;
  for (int k = 0; k < K; k++) m += H[k * K + k] / K;
  for (int k = 0; k < K; k++) H[k * K + k] -= (float)(0.3 * m);
  Hd = dev_put(H, sizeof(float) * K * K);
  CHECK_EQ_INT(qs_gptq_prep_init(&cpu, H, K, &o, "test.cpu"), QS_OK);
  CHECK_EQ_INT(qs_gptq_prep_cuda_init(&gpu, Hd, K, &o, 0, "test.gpu", g_solver, 0), QS_OK);
  printf("damping raises: cpu %d (damp %g), gpu %d (damp %g)\n", cpu.damp_raises, (double)cpu.damp_used,
         gpu.damp_raises, (double)gpu.damp_used);
  CHECK_EQ_INT(cpu.damp_raises, 2);
  CHECK(gpu.damp_raises == cpu.damp_raises && gpu.damp_used == cpu.damp_used);
  qs_gptq_prep_free(&cpu);
  qs_gptq_prep_cuda_free(&gpu);
  memset(H, 0, sizeof(float) * K * K);
  for (int k = 0; k < K; k++) H[k * K + k] = -1.0f;
  CHECK(cudaMemcpy(Hd, H, sizeof(float) * K * K, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK_EQ_INT(qs_gptq_prep_cuda_init(&gpu, Hd, K, &o, 1, "test.negative", g_solver, 0), QS_ERR_NUMERIC);
  H[5 * K + 9] = NAN;
  CHECK(cudaMemcpy(Hd, H, sizeof(float) * K * K, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK_EQ_INT(qs_gptq_prep_cuda_init(&gpu, Hd, K, &o, 0, "test.nan", g_solver, 0), QS_ERR_NUMERIC);
  cudaFree(Hd);
  free(X), free(H);
}

// ---- solve ----------------------------------------------------------------------------------------------

struct qres {
  uint8_t *codes;   // [N, K]
  uint16_t *scales; // [N, G]
  uint8_t *zeros;   // [N, G]
  float *Q, *loss;  // [N, K], [N]
};
static struct qres qres_new(int N, int K, int G) {
  struct qres r = {malloc((size_t)N * K), malloc(sizeof(uint16_t) * N * G), malloc((size_t)N * G),
                   malloc(sizeof(float) * (size_t)N * K), malloc(sizeof(float) * N)};
  return r;
}
static void qres_free(struct qres *r) { free(r->codes), free(r->scales), free(r->zeros), free(r->Q), free(r->loss); }

// The CPU's prepared factor on the device: the solve then differs from the CPU only in the sgemm.
static void prep_upload(struct qs_gptq_prep_cuda *g, const struct qs_gptq_prep *c) {
  memset(g, 0, sizeof(*g));
  g->K = c->K, g->opts = c->opts, g->n_dead = c->n_dead, g->damp_used = c->damp_used;
  g->U = dev_put(c->U, sizeof(float) * (size_t)c->K * c->K);
  g->perm = dev_put(c->perm, sizeof(int32_t) * c->K);
  g->dead = dev_put(c->dead, (size_t)c->K);
  CHECK(g->U && g->perm && g->dead);
}

// GPU solve of rows [r0, r0 + n) of W [*, K] into rows r0.. of r (outputs poisoned first).
static qs_status gpu_solve(const struct qs_gptq_prep_cuda *p, const float *W, int K, int G, int r0, int n,
                           struct qres *r) {
  float *Wd = dev_put(W + (size_t)r0 * K, sizeof(float) * (size_t)n * K), *loss = dev_put(NULL, sizeof(float) * n);
  uint8_t *codes = dev_put(NULL, (size_t)n * K), *zeros = dev_put(NULL, (size_t)n * G);
  uint16_t *scales = dev_put(NULL, sizeof(uint16_t) * n * G);
  qs_status st = QS_ERR_CUDA;
  if (Wd && loss && codes && zeros && scales && cudaMemset(codes, 0xEE, (size_t)n * K) == cudaSuccess &&
      cudaMemset(scales, 0xFF, sizeof(uint16_t) * n * G) == cudaSuccess && cudaMemset(zeros, 0xEE, (size_t)n * G) == cudaSuccess &&
      cudaMemset(loss, 0xFF, sizeof(float) * n) == cudaSuccess)
    st = qs_gptq_quantize_cuda(p, Wd, n, codes, scales, zeros, loss, g_blas, 0);
  if (st == QS_OK &&
      !(dev_get(r->Q + (size_t)r0 * K, Wd, sizeof(float) * (size_t)n * K) && dev_get(r->codes + (size_t)r0 * K, codes, (size_t)n * K) &&
        dev_get(r->scales + (size_t)r0 * G, scales, sizeof(uint16_t) * n * G) &&
        dev_get(r->zeros + (size_t)r0 * G, zeros, (size_t)n * G) && dev_get(r->loss + r0, loss, sizeof(float) * n)))
    st = QS_ERR_CUDA;
  cudaFree(Wd), cudaFree(loss), cudaFree(codes), cudaFree(zeros), cudaFree(scales);
  return st;
}

static double q_rel_err(const float *Q, const float *W, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) num += ((double)Q[i] - W[i]) * ((double)Q[i] - W[i]), den += (double)W[i] * W[i];
  return sqrt(num / den);
}

// GPU result g against a CPU result c: at least `min_same` identical codes, total GPTQ loss and
// ||Q - W||/||W|| within `qtol` (relative) of the CPU's, Q exactly the dequantized codes (the
// checkpoint property), dead columns 0. The thresholds are the callers' (see test_solve_case).
static void solve_compare(const char *what, const struct qres *c, const struct qres *g, const float *W, int N, int K,
                          int G, const int32_t *g_idx, const uint8_t *dead, double min_same, double qtol) {
  size_t nk = (size_t)N * K, ncode = 0, nscale = 0, nzero = 0, nq = 0, ndead = 0;
  int maxd = 0;
  double lc = 0.0, lg = 0.0;
  for (size_t i = 0; i < nk; i++) {
    int d = abs((int)c->codes[i] - (int)g->codes[i]);
    ncode += d != 0, maxd = d > maxd ? d : maxd;
    int64_t n = (int64_t)(i / K), k = (int64_t)(i % K), gi = n * G + g_idx[k];
    float q = qs_f16_to_f32(g->scales[gi]) * ((float)g->codes[i] - (float)g->zeros[gi]);
    nq += !(q == g->Q[i]);
    ndead += dead[k] && g->Q[i] != 0.0f;
  }
  for (size_t i = 0; i < (size_t)N * G; i++) nscale += c->scales[i] != g->scales[i], nzero += c->zeros[i] != g->zeros[i];
  for (int n = 0; n < N; n++) lc += c->loss[n], lg += g->loss[n];
  double same = 1.0 - (double)ncode / (double)nk, ec = q_rel_err(c->Q, W, nk), eg = q_rel_err(g->Q, W, nk);
  printf("  %-22s codes identical %.4f %% (%zu differ, max |diff| %d), scales %zu / zeros %zu of %zu differ, "
         "loss gpu/cpu %.6f, ||Q-W||/||W|| gpu %.6g cpu %.6g\n", what, 100.0 * same, ncode, maxd, nscale, nzero,
         (size_t)N * G, lg / lc, eg, ec);
  CHECK(same >= min_same);
  CHECK(fabs(lg - lc) <= qtol * lc);
  CHECK(fabs(eg - ec) <= qtol * ec);
  CHECK_EQ_INT(nq, 0);
  CHECK_EQ_INT(ndead, 0);
}

static void check_pack(const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros, int bits, int N, int K, int G);

struct solve_case {
  int N, K, bits, gs, sym, act, stat, ndead;
};

// Three comparisons per case:
//  1. GPU solve on the CPU's factor vs qs_gptq_quantize_rows: >= 99.9 % identical codes (the issue's
//     criterion: only the lazy sgemm's summation order differs, so a weight at a rounding boundary
//     may land on the other code and the error feedback carries that along its row), loss and
//     ||Q-W|| within 1 %; row blocks bit-identical to the same rows inside the full solve.
//  2. The full GPU path (GPU factor + GPU solve) vs the CPU solve on that same GPU factor: the same
//     criterion — the solve is exact up to the sgemm whichever factor it is given.
//  3. The full GPU path vs the all-CPU result. The two factors differ by each side's own fp32
//     rounding (~3e-5 relative, as accurate as each other against an fp64 truth: test_factor_*); a
//     weight within that distance of a rounding boundary (~1e-4 of them) flips, and GPTQ's feedback
//     then re-rounds a run of later codes in its row (tens; seen with a 1e-5 perturbation of U on
//     the CPU alone), so ~1 % of codes may differ: >= 99 % identical. What matters is unchanged:
//     the GPTQ objective and ||Q-W|| within 0.1 % (observed <= 0.02 %).
static void test_solve_case(const struct solve_case *sc) {
  const int N = sc->N, K = sc->K;
  float *Hd = NULL, *X = make_inputs(2 * K, K, sc->ndead), *H = make_hessian(X, 2 * K, K, &Hd);
  float *W = malloc(sizeof(float) * (size_t)N * K);
  struct qs_quant_opts o = qs_quant_opts_default();
  o.bits = sc->bits, o.group_size = sc->gs, o.sym = sc->sym, o.act_order = sc->act, o.static_groups = sc->stat;
  o.min_zero = sc->sym ? 0 : 1;
  for (int n = 0; n < N; n++) {
    float s = 0.02f * expf(0.3f * rnd_gauss());
    for (int k = 0; k < K; k++) W[(size_t)n * K + k] = s * rnd_gauss();
  }
  struct qs_gptq_prep cpu;
  struct qs_gptq_prep_cuda same = {0}, full = {0};
  CHECK_EQ_INT(qs_gptq_prep_init(&cpu, H, K, &o, "test.cpu"), QS_OK);
  int G = (int)qs_gptq_n_groups(&cpu);
  int32_t *g_idx = malloc(sizeof(int32_t) * K);
  struct qres c = qres_new(N, K, G), a = qres_new(N, K, G), b = qres_new(N, K, G), s = qres_new(N, K, G);
  struct qres d = qres_new(N, K, G);
  qs_gptq_g_idx(&cpu, g_idx);
  memcpy(c.Q, W, sizeof(float) * (size_t)N * K);
  double t0 = qs_time_now();
  CHECK_EQ_INT(qs_gptq_quantize_rows(&cpu, c.Q, N, 0, c.codes, c.scales, c.zeros, c.loss), QS_OK);
  printf("solve N %d K %d bits %d gs %d %s act %d static %d dead %d (cpu %.2f s):\n", N, K, sc->bits, sc->gs,
         sc->sym ? "sym" : "asym", sc->act, sc->stat, sc->ndead, qs_time_now() - t0);
  prep_upload(&same, &cpu);
  CHECK_EQ_INT(gpu_solve(&same, W, K, G, 0, N, &a), QS_OK);
  solve_compare("cpu U: gpu vs cpu", &c, &a, W, N, K, G, g_idx, cpu.dead, 0.999, 0.01);
  // Row blocks: rows [r0, r0 + N/2) alone give the same bytes as inside the full solve.
  int r0 = 37, n = N / 2;
  CHECK_EQ_INT(gpu_solve(&same, W, K, G, r0, n, &s), QS_OK);
  int split_same = !memcmp(s.codes + (size_t)r0 * K, a.codes + (size_t)r0 * K, (size_t)n * K) &&
                   !memcmp(s.Q + (size_t)r0 * K, a.Q + (size_t)r0 * K, sizeof(float) * (size_t)n * K) &&
                   !memcmp(s.scales + (size_t)r0 * G, a.scales + (size_t)r0 * G, sizeof(uint16_t) * n * G);
  printf("  %-22s rows [%d, %d) alone: %s\n", "row split", r0, r0 + n, split_same ? "bit-identical" : "DIFFERENT");
  CHECK(split_same);
  qs_status st = qs_gptq_prep_cuda_init(&full, Hd, K, &o, 0, "test.gpu", g_solver, 0);
  CHECK_EQ_INT(st, QS_OK);
  if (st == QS_OK) {
    CHECK(memcmp(full.perm_host, cpu.perm, sizeof(int32_t) * K) == 0);
    CHECK_EQ_INT(gpu_solve(&full, W, K, G, 0, N, &b), QS_OK);
    CHECK(dev_get(cpu.U, full.U, sizeof(float) * (size_t)K * K)); // the CPU solve on the GPU's factor
    memcpy(d.Q, W, sizeof(float) * (size_t)N * K);
    CHECK_EQ_INT(qs_gptq_quantize_rows(&cpu, d.Q, N, 0, d.codes, d.scales, d.zeros, d.loss), QS_OK);
    solve_compare("gpu U: gpu vs cpu", &d, &b, W, N, K, G, g_idx, cpu.dead, 0.999, 0.01);
    solve_compare("gpu U vs all-cpu", &c, &b, W, N, K, G, g_idx, cpu.dead, 0.99, 0.001);
    if (qs_gptq_can_pack(N, K, sc->bits, sc->gs)) check_pack(b.codes, b.scales, b.zeros, sc->bits, N, K, G);
  }
  qs_gptq_prep_free(&cpu);
  qs_gptq_prep_cuda_free(&same);
  qs_gptq_prep_cuda_free(&full);
  qres_free(&c), qres_free(&a), qres_free(&b), qres_free(&s), qres_free(&d);
  cudaFree(Hd);
  free(X), free(H), free(W), free(g_idx);
}

// Bad inputs: a non-finite weight is reported with its position; block sizes other than 128 are
// not built.
static void test_solve_errors(void) {
  enum { N = 64, K = 256 };
  float *Hd = NULL, *X = make_inputs(2 * K, K, 0), *H = make_hessian(X, 2 * K, K, &Hd);
  float *W = calloc((size_t)N * K, sizeof(float));
  struct qs_quant_opts o = qs_quant_opts_default();
  struct qs_gptq_prep_cuda p;
  struct qres r = qres_new(N, K, 2);
  CHECK_EQ_INT(qs_gptq_prep_cuda_init(&p, Hd, K, &o, 0, "test.err", g_solver, 0), QS_OK);
  W[3 * K + 5] = INFINITY;
  CHECK_EQ_INT(gpu_solve(&p, W, K, 2, 0, N, &r), QS_ERR_NUMERIC);
  p.opts.block_size = 64;
  CHECK_EQ_INT(gpu_solve(&p, W, K, 2, 0, N, &r), QS_ERR_UNSUPPORTED);
  qs_gptq_prep_cuda_free(&p);
  qres_free(&r);
  cudaFree(Hd);
  free(X), free(H), free(W);
}

static void test_solve_all(void) {
  static const struct solve_case cases[] = {
      // N     K    bits gs   sym act st dead
      {4096, 4096, 4, 128, 1, 0, 0, 0}, // the recommended config on a square layer
      {2048, 2048, 3, 128, 0, 0, 0, 0}, // 3-bit asymmetric (min_zero 1)
      {1024, 4096, 4, 128, 1, 1, 0, 5}, // act-order, groups over positions, dead columns
      {512, 4096, 4, 128, 0, 1, 1, 2},  // act-order + static groups
      {512, 1000, 2, 96, 0, 1, 0, 1},   // ragged last block and group, groups straddling blocks
      {1024, 512, 8, -1, 1, 0, 0, 0},   // one grid per row
      {768, 2048, 4, 32, 1, 1, 0, 0},   // 4 groups per block, found from block-start weights
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) test_solve_case(&cases[i]);
  test_solve_errors();
}

// ---- pack -----------------------------------------------------------------------------------------------

// GPU pack of these (host) arrays against qs_gptq_pack: all three outputs and the wrap count exact.
static void check_pack(const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros, int bits, int N, int K, int G) {
  size_t nw = (size_t)K * bits / 32 * N, nz = (size_t)G * N * bits / 32, ns = (size_t)G * N;
  int32_t *qw = malloc(4 * nw), *qz = malloc(4 * nz), *qw_g = malloc(4 * nw), *qz_g = malloc(4 * nz);
  uint16_t *so = malloc(2 * ns), *so_g = malloc(2 * ns);
  int64_t wrapped = -1, wrapped_g = -2;
  uint8_t *cd = dev_put(codes, (size_t)N * K), *zd = dev_put(zeros, (size_t)N * G);
  uint16_t *sd = dev_put(scales, 2 * ns), *sod = dev_put(NULL, 2 * ns);
  int32_t *qwd = dev_put(NULL, 4 * nw), *qzd = dev_put(NULL, 4 * nz);
  CHECK(cd && zd && sd && sod && qwd && qzd);
  CHECK(cudaMemset(qwd, 0xA5, 4 * nw) == cudaSuccess && cudaMemset(qzd, 0xA5, 4 * nz) == cudaSuccess);
  CHECK_EQ_INT(qs_gptq_pack(codes, scales, zeros, bits, N, K, G, qw, qz, so, &wrapped), QS_OK);
  CHECK_EQ_INT(qs_gptq_pack_cuda(cd, sd, zd, bits, N, K, G, qwd, qzd, sod, &wrapped_g, 0), QS_OK);
  CHECK(dev_get(qw_g, qwd, 4 * nw) && dev_get(qz_g, qzd, 4 * nz) && dev_get(so_g, sod, 2 * ns));
  int same = !memcmp(qw, qw_g, 4 * nw) && !memcmp(qz, qz_g, 4 * nz) && !memcmp(so, so_g, 2 * ns);
  printf("  pack %d-bit N %d K %d G %d: qweight/qzeros/scales %s, wrapped zeros cpu %lld gpu %lld\n", bits, N, K, G,
         same ? "bit-identical" : "DIFFERENT", (long long)wrapped, (long long)wrapped_g);
  CHECK(same);
  CHECK_EQ_INT(wrapped, wrapped_g);
  cudaFree(cd), cudaFree(zd), cudaFree(sd), cudaFree(sod), cudaFree(qwd), cudaFree(qzd);
  free(qw), free(qz), free(qw_g), free(qz_g), free(so), free(so_g);
}

static void test_pack_all(void) {
  static const int bits[] = {2, 3, 4, 8};
  enum { N = 320, K = 1024, GS = 128, G = K / GS };
  uint8_t *codes = malloc((size_t)N * K), *zeros = malloc((size_t)N * G);
  uint16_t *scales = malloc(sizeof(uint16_t) * N * G);
  printf("pack (random codes, zeros incl. 0):\n");
  for (size_t b = 0; b < 4; b++) {
    uint32_t m = (1u << bits[b]) - 1u;
    for (size_t i = 0; i < (size_t)N * K; i++) codes[i] = (uint8_t)((uint32_t)(rnd_uniform() * 256.0) & m);
    for (size_t i = 0; i < (size_t)N * G; i++) {
      zeros[i] = (uint8_t)((uint32_t)(rnd_uniform() * 256.0) & m);
      scales[i] = (uint16_t)(rnd_uniform() * 65536.0);
    }
    check_pack(codes, scales, zeros, bits[b], N, K, G);
  }
  // errors: a zero that does not fit (4-bit 16), and shapes that do not fill words
  uint8_t *cd = dev_put(codes, (size_t)N * K), *zd = dev_put(NULL, (size_t)N * G);
  uint16_t *sd = dev_put(scales, sizeof(uint16_t) * N * G), *sod = dev_put(NULL, sizeof(uint16_t) * N * G);
  int32_t *qwd = dev_put(NULL, (size_t)K * N), *qzd = dev_put(NULL, (size_t)G * N);
  for (size_t i = 0; i < (size_t)N * G; i++) zeros[i] = 8;
  zeros[7 * G + 3] = 16;
  CHECK(zd && cudaMemcpy(zd, zeros, (size_t)N * G, cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK_EQ_INT(qs_gptq_pack_cuda(cd, sd, zd, 4, N, K, G, qwd, qzd, sod, NULL, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_gptq_pack_cuda(cd, sd, zd, 4, 36, K, G, qwd, qzd, sod, NULL, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(qs_gptq_pack_cuda(cd, sd, zd, 3, N, 48, G, qwd, qzd, sod, NULL, 0), QS_ERR_UNSUPPORTED);
  cudaFree(cd), cudaFree(zd), cudaFree(sd), cudaFree(sod), cudaFree(qwd), cudaFree(qzd);
  free(codes), free(zeros), free(scales);
}

int main(int argc, char **argv) {
  int count = 0;
  setvbuf(stdout, NULL, _IOLBF, 0); // results and stderr messages in order in logs
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0)
    QS_TEST_SKIP("no CUDA device (cudaGetDeviceCount: %s, %d devices)", cudaGetErrorString(e), count);
  struct cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    printf("device 0: %s, compute capability %d.%d, %d SMs\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  // The 16-bit Hessian switches from tiles to bands of QS_HESSIAN_BAND rows at K >= 4 bands
  // (default 2048): 256 here so that both paths run at test sizes (the bench keeps the default).
  if (!(argc > 1 && strcmp(argv[1], "--bench") == 0)) setenv("QS_HESSIAN_BAND", "256", 1);
  if (cublasCreate(&g_blas) != CUBLAS_STATUS_SUCCESS || cusolverDnCreate(&g_solver) != CUSOLVER_STATUS_SUCCESS) {
    fprintf(stderr, "FAIL: cannot create cuBLAS / cuSOLVER handles\n");
    return 1;
  }
  if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
    int rc = qs_gptq_cuda_bench(g_blas, g_solver, argc > 2 && strcmp(argv[2], "hessian") == 0);
    cublasDestroy(g_blas);
    cusolverDnDestroy(g_solver);
    return rc;
  }
  test_hessian(QS_DTYPE_F32, QS_HESSIAN_UPPER, 1000, 520);
  test_hessian(QS_DTYPE_F32, QS_HESSIAN_FULL, 777, 300);
  test_hessian(QS_DTYPE_BF16, QS_HESSIAN_UPPER, 1000, 520);  // 2x2 tiles + ragged columns
  test_hessian(QS_DTYPE_BF16, QS_HESSIAN_UPPER, 1000, 768);  // 3x3 tiles only
  test_hessian(QS_DTYPE_BF16, QS_HESSIAN_UPPER, 4096, 1024); // 4 bands
  test_hessian(QS_DTYPE_BF16, QS_HESSIAN_UPPER, 2000, 1100); // 5 bands, the last one ragged
  test_hessian(QS_DTYPE_BF16, QS_HESSIAN_FULL, 1000, 520);
  test_hessian(QS_DTYPE_F16, QS_HESSIAN_UPPER, 333, 200);    // K < tile: the ragged product alone
  test_factor_plain(300);
  test_factor_plain(2048);
  test_factor_prep(1000, 3, 1, 0);
  test_factor_prep(4096, 0, 1, 0);
  test_factor_prep(4096, 0, 1, 1);
  test_factor_damping();
  test_solve_all();
  test_pack_all();
  cublasDestroy(g_blas);
  cusolverDnDestroy(g_solver);
  return qs_test_finish("test_gptq_cuda");
}
