// test_kernels_fwd2_cuda.c — the linear layer (cuBLAS), fp32 attention, the per-row NLL and the
// per-token model-vs-reference statistics on the GPU against their C references qs_matmul_ref,
// qs_attention_ref, qs_nll_ref and qs_tok_cmp_ref (label gpu; built only with QS_WITH_CUDA).
// Run: ctest --test-dir build -L gpu --output-on-failure; exits 77 (skipped) without a CUDA device.
// `test_kernels_fwd2_cuda --bench` times fp32 attention at the llama-3-8b shape (and the NLL over a
// 128256-token vocabulary) instead.
//
// Every input is first rounded to the kernel's dtype on the host, so the reference sees exactly
// the GPU's inputs. Outputs are poisoned before each launch (NaN: unwritten elements fail).
// Checks are elementwise, |gpu - ref| <= lim, and print the first bad pairs and the worst ratio.
// u = unit roundoff of the output dtype (2^-8 bf16, 2^-11 f16, 0 f32): rounding the kernel's fp32
// result g gives |round(g) - ref| <= u |ref| + (1 + u) |g - ref|, so each bound is u |ref| +
// (1 + u) * (bound on the fp32 difference |g - ref|) + atol, where atol covers results in the
// dtype's subnormal range (f16: half its subnormal spacing, 2^-25; bf16/f32: FLT_MIN).
// - linear: see test_linear_case. - attention: see test_attention_limit. - nll: see test_nll_case.
// - tok_cmp: see test_tok_cmp_row.
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "attention.h"
#include "attention_f32.h"
#include "base/dtype.h"
#include "linear.h"
#include "nll.h"
#include "model/ops.h"
#include "qs_test.h"
#include "qs_test_cuda.h"
#include "tok_cmp.h"

static uint64_t g_rng = 0xA4093822299F31D0ull;
static cublasHandle_t g_blas;

#include "qs_test_fwd.h"

// ---- linear ----------------------------------------------------------------------------------------
// Bound: the 16-bit products are exact in fp32 and f32 products round once; cuBLAS may sum the K
// products in any order, with fp32 roundings that on tensor cores may truncate (2^-23 relative per
// addition instead of 2^-24). Every partial sum is at most S = |bias| + sum_k |x_k w_k|, so the
// fp32 GEMM result g is within (K - 1) 2^-23 S of the exact x·w; the bias add in fp32 adds 2^-24 S
// and the reference (double sum, one rounding to float) 2^-24 S: (K + 4) 2^-23 S covers these and
// the second-order terms (K 2^-23 < 2^-8 here).
// With a bias, a 16-bit g is rounded before the add too (linear.h): a second u |g| term, with
// |g| <= |ref - bias| + (K + 4) 2^-23 S, and a second atol.
static void test_linear_case(qs_dtype dt, int M, int N, int K, int with_bias) {
  const size_t es = qs_dtype_size(dt), nx = (size_t)M * K, nw = (size_t)N * K, ny = (size_t)M * N;
  float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc((size_t)N * 4), *ref = malloc(ny * 4);
  float *got = malloc(ny * 4);
  void *xh = malloc(nx * es), *wh = malloc(nw * es), *bh = malloc((size_t)N * es), *yh = malloc(ny * es);
  void *xd = NULL, *wd = NULL, *bd = NULL, *yd = NULL;
  struct test_stat st = {.bad = 0};
  TEST_ALLOC(x, w, b, ref, got, xh, wh, bh, yh);
  test_fill(x, xh, nx, -1.0, 1.0, dt);
  test_fill(w, wh, nw, -1.0, 1.0, dt);
  test_fill(b, bh, (size_t)N, -1.0, 1.0, dt);
  qs_matmul_ref(x, w, with_bias ? b : NULL, ref, M, N, K);
  TEST_CUDA(test_dev(&xd, xh, nx * es, 0));
  TEST_CUDA(test_dev(&wd, wh, nw * es, 0));
  TEST_CUDA(test_dev(&bd, bh, (size_t)N * es, 0));
  TEST_CUDA(test_dev(&yd, NULL, ny * es, 0xFF)); // poison: NaN in f32, bf16 and f16
  CHECK_EQ_INT(qs_linear_cuda(xd, wd, with_bias ? bd : NULL, yd, M, N, K, dt, g_blas, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(yh, yd, ny * es, cudaMemcpyDeviceToHost));
  qs_convert_to_f32(yh, dt, got, ny);
  snprintf(st.name, sizeof st.name, "linear %s M %d N %d K %d%s", qs_dtype_name(dt), M, N, K,
           with_bias ? " +bias" : "");
  const double u = test_unit_roundoff(dt);
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      double S = with_bias ? fabs((double)b[n]) : 0.0;
      for (int k = 0; k < K; k++) S += fabs((double)x[(size_t)m * K + k] * w[(size_t)n * K + k]);
      const size_t e = (size_t)m * N + n;
      const double f32 = (K + 4) * 0x1p-23 * S, g = with_bias ? fabs((double)ref[e] - b[n]) + f32 : 0.0;
      test_stat_add(&st, e, got[e], ref[e],
                    (with_bias ? 2 : 1) * test_atol(dt) + u * fabs((double)ref[e]) + (1 + u) * (f32 + u * g));
    }
  test_stat_end(&st);
done:
  cudaFree(xd), cudaFree(wd), cudaFree(bd), cudaFree(yd);
  free(x), free(w), free(b), free(ref), free(got), free(xh), free(wh), free(bh), free(yh);
}

static void test_linear_all(void) {
  static const int shapes[][3] = {
      {1, 1, 1}, {7, 13, 33}, {64, 128, 256}, {129, 257, 1023}, // odd M / N / K
      {8, 64, 16384},                                           // thin and deep: split-K territory
      {3, 4096, 4096},                                          // a decode-sized llama projection
  };
  static const qs_dtype dts[] = {QS_DTYPE_F32, QS_DTYPE_BF16, QS_DTYPE_F16};
  for (int d = 0; d < 3; d++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int bias = 0; bias < 2; bias++) test_linear_case(dts[d], shapes[s][0], shapes[s][1], shapes[s][2], bias);
}

// ---- attention (fp32) -----------------------------------------------------------------------------
// Bound on |gpu - ref| for one output element (ref r, of a query row whose scaled scores are at
// most A in magnitude, W = sum_j P_j |v_j| = the reference attention applied to |v|):
// - scores: both sides sum D fp32 products in index order (the GPU with fused multiply-adds), each
//   within D 2^-24 sum_d |q_d k_d| of the exact value, then scale: (D + 1) 2^-23 A together. The
//   exponent arguments differ by a few more roundings (max subtraction: < 2^-20 A with margin),
//   CUDA's expf by <= 2 ulp and glibc's by <= 1: each unnormalized weight p_j is off by a relative
//   eps_s = (D + 8) 2^-22 A + 2^-20.
// - the online rescaling: <= ceil(T / 32) factors alpha = expf(m_old - m_new) per weight, each off
//   by <= 2 ulp + the argument's rounding (2^-24 * 2A) + the product's rounding: < 2^-21 (1 + A).
// - normalized weights move by <= 2.5 times the relative weight error (2 eps / (1 - eps)), which
//   moves the output by <= 2.5 (eps_s + ceil(T / 32) 2^-21 (1 + A)) W.
// - fp32 sums over <= T keys (numerator and denominator, both sides): <= (2 T + 8) 2^-23 W.
// - atol: sums of products in fp32's subnormal range, (T + 1) FLT_MIN.
static double test_attention_limit(double W, double A, int D, int T) {
  const double eps_s = (D + 8) * 0x1p-22 * A + 0x1p-20, chain = ((T + 31) / 32) * 0x1p-21 * (1 + A);
  return (T + 1) * (double)FLT_MIN + W * (2.5 * (eps_s + chain) + (2.0 * T + 8) * 0x1p-23);
}

// q ~ U(-amp, amp) (amp sets how peaked the softmax is), k, v ~ U(-1, 1). Through qs_attention_cuda
// (the F32 dispatch); a second run must give the same bits, and a run in place (out = q) too.
static void test_attention_case(int B, int T, int H, int Hkv, int D, double amp) {
  const size_t nq = (size_t)B * T * H * D, nkv = (size_t)B * T * Hkv * D;
  float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *vabs = malloc(nkv * 4);
  float *ref = malloc(nq * 4), *w = malloc(nq * 4), *got = malloc(nq * 4), *got2 = malloc(nq * 4);
  float *amax = malloc((size_t)B * T * H * 4), *scratch = malloc((size_t)T * 4);
  void *qd = NULL, *kd = NULL, *vd = NULL, *od = NULL;
  struct test_stat st = {.bad = 0};
  TEST_ALLOC(q, k, v, vabs, ref, w, got, got2, amax, scratch);
  test_fill(q, NULL, nq, -amp, amp, QS_DTYPE_F32);
  test_fill(k, NULL, nkv, -1.0, 1.0, QS_DTYPE_F32);
  test_fill(v, NULL, nkv, -1.0, 1.0, QS_DTYPE_F32);
  test_attention_ref(q, k, v, vabs, ref, w, scratch, B, T, H, Hkv, D);
  test_attention_amax(q, k, amax, B, T, H, Hkv, D);
  TEST_CUDA(test_dev(&qd, q, nq * 4, 0));
  TEST_CUDA(test_dev(&kd, k, nkv * 4, 0));
  TEST_CUDA(test_dev(&vd, v, nkv * 4, 0));
  TEST_CUDA(test_dev(&od, NULL, nq * 4, 0xFF)); // poison: 0xFFFFFFFF is NaN
  CHECK_EQ_INT(qs_attention_cuda(qd, kd, vd, od, B, T, H, Hkv, D, QS_DTYPE_F32, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(got, od, nq * 4, cudaMemcpyDeviceToHost));
  TEST_CUDA(cudaMemset(od, 0xFF, nq * 4)); // a race would move the bits of a second run
  CHECK_EQ_INT(qs_attention_f32_cuda(qd, kd, vd, od, B, T, H, Hkv, D, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(got2, od, nq * 4, cudaMemcpyDeviceToHost));
  CHECK(memcmp(got, got2, nq * 4) == 0);
  CHECK_EQ_INT(qs_attention_cuda(qd, kd, vd, qd, B, T, H, Hkv, D, QS_DTYPE_F32, 0), QS_OK); // out = q
  TEST_CUDA(cudaMemcpy(got2, qd, nq * 4, cudaMemcpyDeviceToHost));
  CHECK(memcmp(got, got2, nq * 4) == 0);
  snprintf(st.name, sizeof st.name, "attention F32 B %d T %d H %d/%d D %d amp %g", B, T, H, Hkv, D, amp);
  for (size_t e = 0; e < nq; e++) test_stat_add(&st, e, got[e], ref[e], test_attention_limit(w[e], amax[e / D], D, T));
  test_stat_end(&st);
done:
  cudaFree(qd), cudaFree(kd), cudaFree(vd), cudaFree(od);
  free(q), free(k), free(v), free(vabs), free(ref), free(w), free(got), free(got2), free(amax), free(scratch);
}

static void test_attention_all(void) {
  static const int Ts[] = {1, 7, 64, 300};
  static const int Ds[] = {48, 64, 128};
  for (int t = 0; t < 4; t++)
    for (int d = 0; d < 3; d++) {
      test_attention_case(2, Ts[t], 4, 4, Ds[d], 1.0); // MHA
      test_attention_case(2, Ts[t], 8, 2, Ds[d], 1.0); // GQA, 4 query heads per KV head
    }
  test_attention_case(1, 300, 4, 1, 64, 8.0);   // peaked softmax: max subtraction matters
  test_attention_case(1, 100, 2, 2, 256, 1.0);  // the largest head_dim (8 accumulators per lane)
  test_attention_case(1, 33, 2, 1, 2, 1.0);     // the smallest
  test_attention_case(2, 65, 6, 2, 200, 1.0);   // head_dim not a multiple of 32
  test_attention_case(1, 1100, 4, 1, 128, 1.0); // 35 key tiles
}

// ---- nll --------------------------------------------------------------------------------------------
// Bound: both sides find the same max (exact) and convert the same values exactly to double. Each
// exp term is off by <= 1 ulp (CUDA and glibc exp: 2^-52 relative), the positive sum by <=
// (vocab - 1) 2^-53 relative in any order, on each side: log(sum) differs by <= (2 vocab + 4)
// 2^-53, plus log's own ulp (2^-52 log(sum), log(sum) <= log(vocab)); the final add and subtract
// round by 2^-53 of their results on each side. lim = (2 vocab + 8) 2^-53 + 2^-50 (|max| +
// log(vocab) + |ref|). An fp32 sum (errors ~1e-7) would not pass.
static void test_nll_case(qs_dtype dt, int rows, int vocab, double amp) {
  const size_t es = qs_dtype_size(dt), n = (size_t)rows * vocab;
  float *x = malloc(n * 4);
  void *xh = malloc(n * es), *xd = NULL, *td = NULL, *nd = NULL;
  int32_t *t = malloc((size_t)rows * 4);
  double *got = malloc((size_t)rows * 8);
  struct test_stat st = {.bad = 0};
  TEST_ALLOC(x, xh, t, got);
  test_fill(x, xh, n, -amp, amp, dt);
  for (int r = 0; r < rows; r++) t[r] = (int32_t)test_uniform(0.0, (double)vocab);
  if (rows >= 3) t[0] = -1, t[rows - 1] = vocab; // out of range: NaN rows
  TEST_CUDA(test_dev(&xd, xh, n * es, 0));
  TEST_CUDA(test_dev(&td, t, (size_t)rows * 4, 0));
  TEST_CUDA(test_dev(&nd, NULL, (size_t)rows * 8, 0)); // poison 0: a plausible but wrong NLL
  CHECK_EQ_INT(qs_nll_cuda(xd, td, (double *)nd, rows, vocab, dt, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(got, nd, (size_t)rows * 8, cudaMemcpyDeviceToHost));
  snprintf(st.name, sizeof st.name, "nll %s rows %d vocab %d amp %g", qs_dtype_name(dt), rows, vocab, amp);
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * vocab;
    if (t[r] < 0 || t[r] >= vocab) {
      if (!isnan(got[r]) && st.bad++ < 5) fprintf(stderr, "  %s: row %d target %d: %g, not NaN\n", st.name, r, t[r], got[r]);
      st.n++;
      continue;
    }
    float mx = xr[0];
    for (int i = 1; i < vocab; i++) mx = xr[i] > mx ? xr[i] : mx;
    const double ref = qs_nll_ref(xr, vocab, t[r]);
    test_stat_add(&st, (size_t)r, got[r], ref,
                  (2.0 * vocab + 8) * 0x1p-53 + 0x1p-50 * (fabs((double)mx) + log((double)vocab) + fabs(ref)));
  }
  test_stat_end(&st);
done:
  cudaFree(xd), cudaFree(td), cudaFree(nd);
  free(x), free(xh), free(t), free(got);
}

static void test_nll_all(void) {
  static const qs_dtype dts[] = {QS_DTYPE_F32, QS_DTYPE_BF16, QS_DTYPE_F16};
  for (int d = 0; d < 3; d++) {
    test_nll_case(dts[d], 5, 1, 3.0); // one class: nll 0
    test_nll_case(dts[d], 3, 7, 3.0);
    test_nll_case(dts[d], 64, 1000, 8.0);
    test_nll_case(dts[d], 17, 32000, 20.0); // exp(x - max) spans e^-40 .. 1
    test_nll_case(dts[d], 4, 128256, 3.0);  // llama-3's vocabulary
  }
}

// ---- tok_cmp (eval --reference) -------------------------------------------------------------------
// Both sides read the same fp32 logits and find the same maxima and argmaxes (same_top: exact); only
// double roundings differ: exp and log within 1 ulp (2^-52 relative; CUDA and glibc), sums in
// another order. Per row, n = vocab:
// - lz = max + log(sum exp(x - max)) (the log partition function): the nll test's bound,
//   E_lz = (2n + 8) 2^-53 + 2^-50 (|max| + log n); nll = lz - x_t adds 2^-50 |nll|. nll_q and
//   nll_ref must moreover equal qs_nll_cuda's of the same rows bit for bit (tok_cmp.h), checked
//   exactly: eval --reference's perplexities are those of a plain eval.
// - dp = Q_t - P_t, Q_t = exp(-nll_q): |dQ_t| <= Q_t (E_nll_q + 2^-51) (nll's error, then exp's ulp on
//   each side), the same for P_t, and the subtraction 2^-52 |dp|.
// - kld = sum_i P_i d_i, d_i = lp_i - lq_i, lp_i = x_i - lzr: the two sides' lzr / lzq move it by at
//   most E_lz,r (1 + kld) + E_lz,q. On each side a term rounds lp and lq (2^-53 |lp|, 2^-53 |lq|),
//   the exp of the rounded lp (2^-52 + 2^-53 |lp| relative), d and the product (2^-53 each); the sum
//   of n signed terms adds (n - 1) 2^-53 sum |P_i d_i|. With A = sum P_i |d_i|, L = sum P_i |d_i| |lp_i|
//   and B = sum P_i (|lp_i| + |lq_i|), both sides: 2 * 2^-53 ((n + 3) A + L + B). Clamping at 0 only
//   narrows the gap.
// The bounds are first order: the factor 1.01 covers second-order terms (< 2^-40 relative here) and
// P_i, lz computed on the host; DBL_MIN keeps 0 / 0 out of the worst-ratio column.
static double test_tok_cmp_lz(const float *x, int n, double *mx) {
  double m = x[0], s = 0.0;
  for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
  for (int i = 0; i < n; i++) s += exp((double)x[i] - m);
  *mx = m;
  return m + log(s);
}

// Limits for row (ref, q) whose reference record is c: lim[QS_TOK_CMP_*] (TOP unused: exact).
static void test_tok_cmp_row(const float *ref, const float *q, int n, const struct qs_tok_cmp *c, double *lim) {
  double mr, mq;
  const double lzr = test_tok_cmp_lz(ref, n, &mr), lzq = test_tok_cmp_lz(q, n, &mq);
  const double er = (2.0 * n + 8) * 0x1p-53 + 0x1p-50 * (fabs(mr) + log((double)n));
  const double eq = (2.0 * n + 8) * 0x1p-53 + 0x1p-50 * (fabs(mq) + log((double)n));
  double A = 0.0, L = 0.0, B = 0.0;
  for (int i = 0; i < n; i++) {
    const double lp = (double)ref[i] - lzr, lq = (double)q[i] - lzq, P = exp(lp), d = fabs(lp - lq);
    A += P * d, L += P * d * fabs(lp), B += P * (fabs(lp) + fabs(lq));
  }
  const double enr = er + 0x1p-50 * fabs(c->nll_ref), enq = eq + 0x1p-50 * fabs(c->nll_q);
  lim[QS_TOK_CMP_NLL_REF] = 1.01 * enr + DBL_MIN;
  lim[QS_TOK_CMP_NLL_Q] = 1.01 * enq + DBL_MIN;
  lim[QS_TOK_CMP_DP] = 1.01 * (exp(-c->nll_q) * (enq + 0x1p-51) + exp(-c->nll_ref) * (enr + 0x1p-51) +
                                0x1p-52 * fabs(c->dp)) + DBL_MIN;
  lim[QS_TOK_CMP_KLD] = 1.01 * (er * (1.0 + c->kld) + eq + 0x1p-52 * ((n + 3.0) * A + L + B)) + DBL_MIN;
  lim[QS_TOK_CMP_TOP] = 0.0;
}

// Row r's logits: ref ~ U(-amp, amp), q = ref + U(-noise, noise); by r % 4 also
// 1: argmax ties (the max at several indices in different warps; q's set drops the first for odd r / 4),
// 2: extremes (a +80 spike at different places in ref and q; -3e38 at the same places in both),
// 3: q == ref (kld 0, dp 0, same_top 1 on both sides).
static void test_tok_cmp_fill(float *ref, float *q, int n, int r, double amp, double noise) {
  test_fill(ref, NULL, (size_t)n, -amp, amp, QS_DTYPE_F32);
  for (int i = 0; i < n; i++) q[i] = (float)(ref[i] + test_uniform(-noise, noise));
  if (r % 4 == 1 && n > 1) {
    const int at[4] = {n / 3, 3 % n, n - 1, (n / 2 + 37) % n};
    int first = n;
    for (int k = 0; k < 4; k++) ref[at[k]] = q[at[k]] = (float)amp + 1.0f, first = QS_MIN(first, at[k]);
    if ((r / 4) % 2) q[first] = (float)-amp; // q's first tie is a later one: same_top 0
  } else if (r % 4 == 2 && n > 2) {
    ref[(long long)r * 7919 % n] = 80.0f, q[((long long)r * 104729 + 1) % n] = 80.0f;
    for (int i = r % 5; i < n; i += 97) ref[i] = q[i] = -3e38f;
  } else if (r % 4 == 3) {
    memcpy(q, ref, (size_t)n * sizeof(float));
  }
}

static void test_tok_cmp_case(int rows, int vocab, double amp, double noise) {
  const size_t n = (size_t)rows * vocab, no = (size_t)rows * QS_TOK_CMP_N;
  float *ref = malloc(n * 4), *q = malloc(n * 4);
  int32_t *t = malloc((size_t)rows * 4);
  double *got = malloc(no * 8), *got2 = malloc(no * 8), *nll = malloc((size_t)rows * 2 * 8);
  void *rd = NULL, *qd = NULL, *td = NULL, *od = NULL, *nd = NULL;
  struct test_stat st[QS_TOK_CMP_N] = {{.bad = 0}};
  static const char *field[QS_TOK_CMP_N] = {"kld", "nll_q", "nll_ref", "dp", "top"};
  size_t top_bad = 0, nll_bits = 0;
  TEST_ALLOC(ref, q, t, got, got2, nll);
  for (int r = 0; r < rows; r++) {
    test_tok_cmp_fill(ref + (size_t)r * vocab, q + (size_t)r * vocab, vocab, r, amp, noise);
    t[r] = (int32_t)test_uniform(0.0, (double)vocab);
  }
  if (rows >= 5) t[4] = -1; // out of range: NaN nll and dp, kld and top still computed
  TEST_CUDA(test_dev(&rd, ref, n * 4, 0));
  TEST_CUDA(test_dev(&qd, q, n * 4, 0));
  TEST_CUDA(test_dev(&td, t, (size_t)rows * 4, 0));
  TEST_CUDA(test_dev(&od, NULL, no * 8, 0xFF)); // poison: NaN
  TEST_CUDA(test_dev(&nd, NULL, (size_t)rows * 2 * 8, 0xFF));
  CHECK_EQ_INT(qs_tok_cmp_cuda(rd, qd, td, (double *)od, rows, vocab, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(got, od, no * 8, cudaMemcpyDeviceToHost));
  TEST_CUDA(cudaMemset(od, 0xFF, no * 8)); // a race would move the bits of a second run
  CHECK_EQ_INT(qs_tok_cmp_cuda(rd, qd, td, (double *)od, rows, vocab, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(got2, od, no * 8, cudaMemcpyDeviceToHost));
  CHECK(memcmp(got, got2, no * 8) == 0);
  CHECK_EQ_INT(qs_nll_cuda(rd, td, (double *)nd, rows, vocab, QS_DTYPE_F32, 0), QS_OK);
  CHECK_EQ_INT(qs_nll_cuda(qd, td, (double *)nd + rows, rows, vocab, QS_DTYPE_F32, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(nll, nd, (size_t)rows * 2 * 8, cudaMemcpyDeviceToHost));
  for (int k = 0; k < QS_TOK_CMP_N; k++)
    snprintf(st[k].name, sizeof st[k].name, "tok_cmp %s rows %d vocab %d amp %g", field[k], rows, vocab, amp);
  for (int r = 0; r < rows; r++) {
    const float *xr = ref + (size_t)r * vocab, *xq = q + (size_t)r * vocab;
    const double *g = got + (size_t)r * QS_TOK_CMP_N;
    const int ok = t[r] >= 0 && t[r] < vocab;
    struct qs_tok_cmp c;
    double lim[QS_TOK_CMP_N];
    qs_tok_cmp_ref(xr, xq, vocab, ok ? t[r] : 0, &c);
    test_tok_cmp_row(xr, xq, vocab, &c, lim);
    if (g[QS_TOK_CMP_TOP] != (double)c.same_top && top_bad++ < 5)
      fprintf(stderr, "  %s: row %d same_top %g, reference %d\n", st[QS_TOK_CMP_TOP].name, r, g[QS_TOK_CMP_TOP],
              c.same_top);
    // the NLLs are qs_nll_cuda's, bits included (NaN rows: both NaN)
    if (memcmp(&g[QS_TOK_CMP_NLL_REF], &nll[r], 8) || memcmp(&g[QS_TOK_CMP_NLL_Q], &nll[rows + r], 8))
      if (!(isnan(nll[r]) && isnan(g[QS_TOK_CMP_NLL_REF]) && isnan(g[QS_TOK_CMP_NLL_Q])) && nll_bits++ < 5)
        fprintf(stderr, "  tok_cmp rows %d vocab %d row %d: nll %.17g %.17g, qs_nll_cuda %.17g %.17g\n", rows, vocab,
                r, g[QS_TOK_CMP_NLL_REF], g[QS_TOK_CMP_NLL_Q], nll[r], nll[rows + r]);
    test_stat_add(&st[QS_TOK_CMP_KLD], (size_t)r, g[QS_TOK_CMP_KLD], c.kld, lim[QS_TOK_CMP_KLD]);
    if (!ok) {
      for (int k = QS_TOK_CMP_NLL_Q; k <= QS_TOK_CMP_DP; k++)
        if (!isnan(g[k]) && st[k].bad++ < 5)
          fprintf(stderr, "  %s: row %d target %d: %g, not NaN\n", st[k].name, r, t[r], g[k]);
      continue;
    }
    test_stat_add(&st[QS_TOK_CMP_NLL_REF], (size_t)r, g[QS_TOK_CMP_NLL_REF], c.nll_ref, lim[QS_TOK_CMP_NLL_REF]);
    test_stat_add(&st[QS_TOK_CMP_NLL_Q], (size_t)r, g[QS_TOK_CMP_NLL_Q], c.nll_q, lim[QS_TOK_CMP_NLL_Q]);
    test_stat_add(&st[QS_TOK_CMP_DP], (size_t)r, g[QS_TOK_CMP_DP], c.dp, lim[QS_TOK_CMP_DP]);
  }
  for (int k = 0; k < QS_TOK_CMP_N; k++)
    if (k != QS_TOK_CMP_TOP) test_stat_end(&st[k]);
  printf("%-56s %zu of %d rows differ (exact)\n", st[QS_TOK_CMP_TOP].name, top_bad, rows);
  CHECK_EQ_INT(top_bad, 0);
  CHECK_EQ_INT(nll_bits, 0);
done:
  cudaFree(rd), cudaFree(qd), cudaFree(td), cudaFree(od), cudaFree(nd);
  free(ref), free(q), free(t), free(got), free(got2), free(nll);
}

static void test_tok_cmp_all(void) {
  test_tok_cmp_case(5, 1, 3.0, 0.1);       // one class: everything 0, same_top 1
  test_tok_cmp_case(9, 7, 3.0, 0.5);       // fewer classes than threads
  test_tok_cmp_case(40, 300, 8.0, 0.05);   // not a multiple of the block: two strides for some threads
  test_tok_cmp_case(33, 1000, 8.0, 1.0);   // far apart distributions
  test_tok_cmp_case(17, 32000, 20.0, 0.02); // llama-2's vocabulary, a 4-bit-like perturbation
  test_tok_cmp_case(4, 128256, 3.0, 0.02); // llama-3's
  test_tok_cmp_case(70001, 7, 3.0, 0.5);   // more rows than a grid's y / z could take
}

// ---- bad arguments are reported, not launched; the handle's math mode survives ------------------
static void test_errors(void) {
  void *d = NULL;
  cublasMath_t mode = CUBLAS_DEFAULT_MATH;
  if (cudaMalloc(&d, 4096) != cudaSuccess) { CHECK(0); return; }
  char *m = (char *)d + 4; // 4- but not 8-byte aligned
  CHECK_EQ_INT(qs_linear_cuda(d, d, NULL, d, 0, 4, 4, QS_DTYPE_F32, g_blas, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_linear_cuda(d, d, NULL, d, 4, 4, (int64_t)1 << 31, QS_DTYPE_F32, g_blas, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_linear_cuda(d, d, NULL, d, 4, 4, 4, QS_DTYPE_I32, g_blas, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(cublasSetMathMode(g_blas, CUBLAS_TF32_TENSOR_OP_MATH), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ_INT(qs_linear_cuda(d, d, NULL, (char *)d + 2048, 4, 4, 4, QS_DTYPE_F32, g_blas, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_linear_cuda(d, d, NULL, (char *)d + 2048, 4, 4, 4, QS_DTYPE_BF16, g_blas, 0), QS_OK);
  CHECK_EQ_INT(cublasGetMathMode(g_blas, &mode), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ_INT(mode, CUBLAS_TF32_TENSOR_OP_MATH); // restored after the call
  CHECK_EQ_INT(cublasSetMathMode(g_blas, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ_INT(qs_attention_f32_cuda(d, d, d, d, 1, 4, 4, 3, 64, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_attention_f32_cuda(d, d, d, d, 1, 0, 4, 2, 64, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_attention_f32_cuda((const float *)m, d, d, d, 1, 4, 4, 2, 64, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_attention_f32_cuda(d, d, d, d, 1, 4, 4, 2, 63, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(qs_attention_f32_cuda(d, d, d, d, 1, 4, 4, 2, 258, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(qs_attention_cuda(d, d, d, d, 1, 4, 4, 2, 258, QS_DTYPE_F32, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(qs_nll_cuda(d, (const int32_t *)d, (double *)d, 0, 4, QS_DTYPE_F32, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_nll_cuda(d, (const int32_t *)d, (double *)d, 1, 0, QS_DTYPE_F32, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_nll_cuda(d, (const int32_t *)d, (double *)d, 1, 4, QS_DTYPE_I8, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(qs_tok_cmp_cuda(d, d, (const int32_t *)d, (double *)d, 0, 4, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_tok_cmp_cuda(d, d, (const int32_t *)d, (double *)d, 1, 0, 0), QS_ERR_ARG);
  CHECK_EQ_INT(cudaDeviceSynchronize(), cudaSuccess);
  cudaFree(d);
}

// ---- benchmark ------------------------------------------------------------------------------------
static int test_cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

// Median time in ms of `reps` runs of one op (after 3 warm-ups), CUDA events; -1 on failure.
// op 0: fp32 attention (a = q, b = k, c = v, o = out), op 1: bf16 nll (a = logits, b = targets).
static float test_bench_time(int op, void *a, void *b, void *c, void *o, int B, int T, int H, int Hkv, int D, int reps) {
  float ms[64], med = -1.0f;
  cudaEvent_t e0 = NULL, e1 = NULL;
  TEST_CUDA(cudaEventCreate(&e0));
  TEST_CUDA(cudaEventCreate(&e1));
  for (int r = -3; r < reps; r++) {
    TEST_CUDA(cudaEventRecord(e0, 0));
    if (op == 0) CHECK_EQ_INT(qs_attention_cuda(a, b, c, o, B, T, H, Hkv, D, QS_DTYPE_F32, 0), QS_OK);
    else CHECK_EQ_INT(qs_nll_cuda(a, (const int32_t *)b, (double *)o, T, D, QS_DTYPE_BF16, 0), QS_OK);
    TEST_CUDA(cudaEventRecord(e1, 0));
    TEST_CUDA(cudaEventSynchronize(e1));
    if (r >= 0) TEST_CUDA(cudaEventElapsedTime(&ms[r], e0, e1));
  }
  qsort(ms, (size_t)reps, sizeof ms[0], test_cmp_float);
  med = ms[reps / 2];
done:
  if (e0) cudaEventDestroy(e0);
  if (e1) cudaEventDestroy(e1);
  return med;
}

// llama-3-8b: T 2048, 32 / 8 heads, head_dim 128; causal FLOPs = 4 B H T^2 D / 2. The forward pass
// budget is < 100 ms per layer call at B = 1 (checked); outputs must all be written and finite.
static void test_bench_attention(void) {
  const int T = 2048, H = 32, Hkv = 8, D = 128, Bmax = 4, reps = 10;
  const size_t nq = (size_t)Bmax * T * H * D, nkv = (size_t)Bmax * T * Hkv * D;
  float *f = malloc(nq * 4);
  void *qd = NULL, *kd = NULL, *vd = NULL, *od = NULL;
  TEST_ALLOC(f);
  test_fill(f, NULL, nq, -2.0, 2.0, QS_DTYPE_F32);
  TEST_CUDA(test_dev(&qd, f, nq * 4, 0));
  TEST_CUDA(test_dev(&kd, f + nkv, nkv * 4, 0)); // other parts of the same random stream
  TEST_CUDA(test_dev(&vd, f + 2 * nkv, nkv * 4, 0));
  TEST_CUDA(test_dev(&od, NULL, nq * 4, 0xFF));
  printf("attention f32 causal, T %d, heads %d/%d, head_dim %d (median of %d)\n", T, H, Hkv, D, reps);
  for (int B = 1; B <= Bmax; B *= 2) {
    const float ms = test_bench_time(0, qd, kd, vd, od, B, T, H, Hkv, D, reps);
    const double flops = 4.0 * B * H * (double)T * T * D / 2;
    printf("  B %d: %8.3f ms  %7.2f TFLOP/s (fp32 CUDA cores)\n", B, ms, flops / (ms * 1e-3) / 1e12);
    if (B == 1) CHECK(ms > 0.0f && ms < 100.0f);
  }
  TEST_CUDA(cudaMemcpy(f, od, nq * 4, cudaMemcpyDeviceToHost));
  size_t nonfinite = 0;
  for (size_t i = 0; i < nq; i++) nonfinite += !isfinite(f[i]);
  printf("  B %d output: %zu of %zu elements not finite\n", Bmax, nonfinite, nq);
  CHECK_EQ_INT(nonfinite, 0);
done:
  cudaFree(qd), cudaFree(kd), cudaFree(vd), cudaFree(od);
  free(f);
}

// NLL over rows x vocab bf16 logits: read twice (max, then sum), so bytes = 2 * rows * vocab * 2.
static void test_bench_nll(void) {
  const int rows = 2048, vocab = 128256, reps = 10;
  const size_t n = (size_t)rows * vocab;
  void *xd = NULL, *td = NULL, *nd = NULL;
  TEST_CUDA(test_dev(&xd, NULL, n * 2, 0x3F)); // 0x3F3F: bf16 0.746
  TEST_CUDA(test_dev(&td, NULL, (size_t)rows * 4, 0));
  TEST_CUDA(test_dev(&nd, NULL, (size_t)rows * 8, 0));
  const float ms = test_bench_time(1, xd, td, NULL, nd, 1, rows, 0, 0, vocab, reps);
  printf("nll bf16 rows %d vocab %d: %.3f ms, %.0f GB/s (logits read twice)\n", rows, vocab, ms,
         2.0 * n * 2 / (ms * 1e-3) / 1e9);
done:
  cudaFree(xd), cudaFree(td), cudaFree(nd);
}

int main(int argc, char **argv) {
  int count = 0;
  setvbuf(stdout, NULL, _IOLBF, 0); // results and stderr messages in order in logs
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0)
    QS_TEST_SKIP("no CUDA device (cudaGetDeviceCount: %s, %d devices)", cudaGetErrorString(e), count);
  struct cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    printf("device 0: %s, compute capability %d.%d, %d SMs\n", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount);
  if (cublasCreate(&g_blas) != CUBLAS_STATUS_SUCCESS) {
    fprintf(stderr, "FAIL: cannot create a cuBLAS handle\n");
    return 1;
  }
  if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
    test_bench_attention();
    test_bench_nll();
    cublasDestroy(g_blas);
    return qs_test_finish("test_kernels_fwd2_cuda --bench");
  }
  test_linear_all();
  test_attention_all();
  test_nll_all();
  test_tok_cmp_all();
  test_errors();
  cublasDestroy(g_blas);
  return qs_test_finish("test_kernels_fwd2_cuda");
}
