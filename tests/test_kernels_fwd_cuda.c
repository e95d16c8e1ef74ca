// test_kernels_fwd_cuda.c — the forward-pass CUDA kernels (embedding, rope, attention, swiglu,
// residual add, convert) against their C references (label gpu; built only with QS_WITH_CUDA).
// Run: ctest --test-dir build -L gpu --output-on-failure; exits 77 (skipped) without a CUDA device.
// `test_kernels_fwd_cuda --bench` times attention instead (TFLOP/s, B = 1..8, T = 2048, 32/8 heads).
//
// Every input is first rounded to the kernel's dtype on the host, so the reference (fp32) sees
// exactly the GPU's inputs. Outputs are poisoned before each launch (unwritten elements fail).
// Checks are elementwise, |gpu - ref| <= lim, and print the first bad pairs and the worst ratio.
// u = unit roundoff of the output dtype (2^-8 bf16, 2^-11 f16, 0 f32): rounding the kernel's fp32
// result g gives |round(g) - ref| <= u |ref| + (1 + u) |g - ref|, so each bound below is
// u |ref| + (1 + u) * (bound on the fp32 difference |g - ref|) + atol, where atol covers results in
// the dtype's subnormal range (f16: half its subnormal spacing, 2^-25; bf16/f32: FLT_MIN).
// - embedding, residual add, convert: exact (a copy; one IEEE fp32 add and one round-to-nearest-
//   even conversion on both sides).
// - rope: both sides compute the angle as the same fp32 product and apply identical fp32 roundings
//   (no FMA); only cos/sin differ: CUDA's sincosf <= 2 ulp, glibc <= 1 ulp, so each differs by
//   <= 3 * 2^-23 relatively. |g - ref| <= (|x0| + |x1|) (3 * 2^-23 + 6 * 2^-24) (the cos/sin
//   difference, plus 3 roundings on each side) < (|x0| + |x1|) 2^-20.
// - swiglu: expf differs by <= 3 ulp between CUDA and glibc, which moves 1 + exp(-g) by <= 3 * 2^-23
//   relatively; the add, division and product round on each side (6 * 2^-24): |g - ref| <=
//   |ref| (12 + 6) * 2^-24 < |ref| 2^-19.
// - attention: see test_attention_limit.
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "attention.h"
#include "io/config.h"
#include "base/dtype.h"
#include "embedding.h"
#include "model/ops.h"
#include "qs_test.h"
#include "qs_test_cuda.h"
#include "residual.h"
#include "rope.h"
#include "swiglu.h"

static uint64_t g_rng = 0x13198A2E03707344ull;

#include "qs_test_fwd.h"

// ---- embedding: exact row copy; ids outside [0, vocab) give NaN rows -------------------------------
static void test_embedding_case(qs_dtype dt, int n, int vocab, int hidden) {
  const size_t es = qs_dtype_size(dt), row = (size_t)hidden * es;
  float *tf = malloc((size_t)vocab * hidden * 4), *got = malloc((size_t)n * hidden * 4);
  unsigned char *th = malloc((size_t)vocab * row), *oh = malloc((size_t)n * row);
  int32_t *ids = malloc((size_t)n * 4);
  void *td = NULL, *od = NULL, *idd = NULL;
  size_t bad = 0;
  TEST_ALLOC(tf, got, th, oh, ids);
  test_fill(tf, th, (size_t)vocab * hidden, -3.0, 3.0, dt);
  for (int t = 0; t < n; t++) ids[t] = (int32_t)test_uniform(0.0, (double)vocab);
  if (n >= 3) ids[0] = -1, ids[n - 1] = vocab; // out of range: NaN rows
  TEST_CUDA(test_dev(&td, th, (size_t)vocab * row, 0));
  TEST_CUDA(test_dev(&idd, ids, (size_t)n * 4, 0));
  TEST_CUDA(test_dev(&od, NULL, (size_t)n * row, 0)); // poison 0: not NaN, not a random row
  CHECK_EQ_INT(qs_embedding_cuda(idd, td, od, n, vocab, hidden, dt, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(oh, od, (size_t)n * row, cudaMemcpyDeviceToHost));
  qs_convert_to_f32(oh, dt, got, (size_t)n * hidden);
  for (int t = 0; t < n; t++) {
    int ok = 1;
    if (ids[t] < 0 || ids[t] >= vocab) {
      for (int i = 0; i < hidden; i++) ok &= isnan(got[(size_t)t * hidden + i]);
    } else {
      ok = memcmp(oh + (size_t)t * row, th + (size_t)ids[t] * row, row) == 0;
    }
    if (!ok && bad++ < 5) fprintf(stderr, "  embedding %s: row %d (id %d) wrong\n", qs_dtype_name(dt), t, ids[t]);
  }
  printf("embedding %-4s n %4d vocab %5d hidden %5d: %zu of %d rows differ (exact copy)\n", qs_dtype_name(dt), n,
         vocab, hidden, bad, n);
  CHECK_EQ_INT(bad, 0);
done:
  cudaFree(td), cudaFree(od), cudaFree(idd);
  free(tf), free(got), free(th), free(oh), free(ids);
}

// ---- rope -----------------------------------------------------------------------------------------
static void test_rope_case(qs_dtype dt, int B, int T, int H, int D, int pos0, enum qs_rope_type type) {
  const size_t es = qs_dtype_size(dt), numel = (size_t)B * T * H * D, per_seq = (size_t)T * H * D;
  struct qs_config c;
  memset(&c, 0, sizeof c);
  c.head_dim = D, c.rope_theta = type == QS_ROPE_LLAMA3 ? 500000.0 : 10000.0, c.rope_type = type;
  c.rope_factor = 8.0, c.rope_low_freq_factor = 1.0, c.rope_high_freq_factor = 4.0, c.rope_orig_max_pos = 8192;
  float *x = malloc(numel * 4), *ref = malloc(numel * 4), *got = malloc(numel * 4), *inv = malloc((size_t)D / 2 * 4);
  void *xh = malloc(numel * es), *xd = NULL, *invd = NULL;
  struct test_stat st = {.bad = 0};
  TEST_ALLOC(x, ref, got, inv, xh);
  qs_rope_inv_freq(&c, inv);
  test_fill(x, xh, numel, -2.0, 2.0, dt);
  memcpy(ref, x, numel * 4);
  for (int b = 0; b < B; b++) qs_rope_ref(ref + b * per_seq, T, H, D, inv, pos0);
  TEST_CUDA(test_dev(&xd, xh, numel * es, 0));
  TEST_CUDA(test_dev(&invd, inv, (size_t)D / 2 * 4, 0));
  CHECK_EQ_INT(qs_rope_cuda(xd, B, T, H, D, invd, pos0, dt, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(xh, xd, numel * es, cudaMemcpyDeviceToHost));
  qs_convert_to_f32(xh, dt, got, numel);
  snprintf(st.name, sizeof st.name, "rope %s B %d T %d H %d D %d pos0 %d type %d", qs_dtype_name(dt), B, T, H, D,
           pos0, (int)type);
  const double u = test_unit_roundoff(dt);
  for (size_t e = 0; e < numel; e++) {
    const size_t i = e % D, pair = i < (size_t)D / 2 ? e + D / 2 : e - D / 2;
    const double m = fabs((double)x[e]) + fabs((double)x[pair]); // |x0| + |x1| of the rotated pair
    test_stat_add(&st, e, got[e], ref[e], test_atol(dt) + u * fabs((double)ref[e]) + (1 + u) * m * 0x1p-20);
  }
  test_stat_end(&st);
done:
  cudaFree(xd), cudaFree(invd);
  free(x), free(ref), free(got), free(inv), free(xh);
}

// ---- attention ------------------------------------------------------------------------------------
// Bound on |gpu - ref| for one output element (ref r, of a query row whose scaled scores are at
// most A in magnitude, W = sum_j P_j |v_j| = the reference attention applied to |v|):
// - scores: the GPU's tensor-core dot product (fp32 accumulate) and the reference's sequential fp32
//   sum each err by <= (D + 1) 2^-23 sum_d |q_d k_d|: together (D + 2) 2^-22 A after scaling; the
//   exponent arguments differ by a few more roundings (scale, log2 e, max subtraction: < 2^-20 A
//   with margin) and exp2f/expf by 3 ulp: each unnormalized weight p_j is off by a relative
//   eps_s = (D + 8) 2^-22 A + 2^-20; normalized weights by <= 2.5 eps_s (2 eps_s / (1 - eps_s)),
//   which moves the output by <= 2.5 eps_s W.
// - the weights are rounded to the input dtype (u) for the P V product: <= u W.
// - fp32 sums over <= T keys (numerator and denominator, both sides): <= (2 T + 8) 2^-23 W.
// - the output rounding: u |r|. atol: f16 weights below 2^-14 round with absolute error 2^-25 each,
//   T of them times |v| <= 1 over a sum l >= 1; plus the output's own subnormal rounding.
static double test_attention_limit(qs_dtype dt, double r, double W, double A, int D, int T) {
  const double u = test_unit_roundoff(dt), eps_s = (D + 8) * 0x1p-22 * A + 0x1p-20;
  const double atol = dt == QS_DTYPE_F16 ? (T + 1) * 0x1p-25 : (T + 1) * (double)FLT_MIN;
  return atol + u * fabs(r) + (1 + u) * W * (u + 2.5 * eps_s + (2.0 * T + 8) * 0x1p-23);
}

// q ~ U(-amp, amp) (amp sets how peaked the softmax is), k, v ~ U(-1, 1).
static void test_attention_case(qs_dtype dt, int B, int T, int H, int Hkv, int D, double amp) {
  const size_t es = qs_dtype_size(dt), nq = (size_t)B * T * H * D, nkv = (size_t)B * T * Hkv * D;
  float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *vabs = malloc(nkv * 4);
  float *ref = malloc(nq * 4), *w = malloc(nq * 4), *got = malloc(nq * 4), *amax = malloc((size_t)B * T * H * 4);
  float *scratch = malloc((size_t)T * 4);
  void *qh = malloc(nq * es), *kh = malloc(nkv * es), *vh = malloc(nkv * es), *oh = malloc(nq * es), *oh2 = malloc(nq * es);
  void *qd = NULL, *kd = NULL, *vd = NULL, *od = NULL;
  struct test_stat st = {.bad = 0};
  TEST_ALLOC(q, k, v, vabs, ref, w, got, amax, scratch, qh, kh, vh, oh, oh2);
  test_fill(q, qh, nq, -amp, amp, dt);
  test_fill(k, kh, nkv, -1.0, 1.0, dt);
  test_fill(v, vh, nkv, -1.0, 1.0, dt);
  test_attention_ref(q, k, v, vabs, ref, w, scratch, B, T, H, Hkv, D);
  test_attention_amax(q, k, amax, B, T, H, Hkv, D);
  TEST_CUDA(test_dev(&qd, qh, nq * es, 0));
  TEST_CUDA(test_dev(&kd, kh, nkv * es, 0));
  TEST_CUDA(test_dev(&vd, vh, nkv * es, 0));
  TEST_CUDA(test_dev(&od, NULL, nq * es, 0xFF)); // poison: 0xFFFF is NaN in bf16 and f16
  CHECK_EQ_INT(qs_attention_cuda(qd, kd, vd, od, B, T, H, Hkv, D, dt, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(oh, od, nq * es, cudaMemcpyDeviceToHost));
  // A second run into a re-poisoned buffer must give the same bits (a race would move them).
  TEST_CUDA(cudaMemset(od, 0xFF, nq * es));
  CHECK_EQ_INT(qs_attention_cuda(qd, kd, vd, od, B, T, H, Hkv, D, dt, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(oh2, od, nq * es, cudaMemcpyDeviceToHost));
  CHECK(memcmp(oh, oh2, nq * es) == 0);
  qs_convert_to_f32(oh, dt, got, nq);
  snprintf(st.name, sizeof st.name, "attention %s B %d T %d H %d/%d D %d amp %g", qs_dtype_name(dt), B, T, H, Hkv, D,
           amp);
  for (size_t e = 0; e < nq; e++)
    test_stat_add(&st, e, got[e], ref[e], test_attention_limit(dt, ref[e], w[e], amax[e / D], D, T));
  test_stat_end(&st);
done:
  cudaFree(qd), cudaFree(kd), cudaFree(vd), cudaFree(od);
  free(q), free(k), free(v), free(vabs), free(ref), free(w), free(got), free(amax), free(scratch);
  free(qh), free(kh), free(vh), free(oh), free(oh2);
}

// ---- swiglu ---------------------------------------------------------------------------------------
static void test_swiglu_case(qs_dtype dt, size_t n) {
  const size_t es = qs_dtype_size(dt);
  float *g = malloc(n * 4), *up = malloc(n * 4), *ref = malloc(n * 4), *got = malloc(n * 4);
  void *gh = malloc(n * es), *uh = malloc(n * es), *oh = malloc(n * es), *gd = NULL, *ud = NULL, *od = NULL;
  struct test_stat st = {.bad = 0};
  TEST_ALLOC(g, up, ref, got, gh, uh, oh);
  test_fill(g, NULL, n, -12.0, 12.0, dt);
  static const float edges[] = {0.0f, -0.0f, -100.0f, 100.0f, -88.0f, 30.0f, -30.0f}; // exp overflow, silu ~ g, ~ 0
  for (size_t i = 0; i < n && i < sizeof edges / sizeof edges[0]; i++) g[i] = edges[i];
  qs_convert_from_f32(g, dt, gh, n);
  qs_convert_to_f32(gh, dt, g, n);
  test_fill(up, uh, n, -3.0, 3.0, dt);
  qs_swiglu_ref(g, up, ref, n);
  TEST_CUDA(test_dev(&gd, gh, n * es, 0));
  TEST_CUDA(test_dev(&ud, uh, n * es, 0));
  TEST_CUDA(test_dev(&od, NULL, n * es, 0xFF));
  CHECK_EQ_INT(qs_swiglu_cuda(gd, ud, od, n, dt, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(oh, od, n * es, cudaMemcpyDeviceToHost));
  qs_convert_to_f32(oh, dt, got, n);
  snprintf(st.name, sizeof st.name, "swiglu %s n %zu", qs_dtype_name(dt), n);
  const double u = test_unit_roundoff(dt);
  for (size_t i = 0; i < n; i++)
    test_stat_add(&st, i, got[i], ref[i], test_atol(dt) + u * fabs((double)ref[i]) + (1 + u) * fabs((double)ref[i]) * 0x1p-19);
  test_stat_end(&st);
  // In place (out = gate): same values.
  TEST_CUDA(cudaMemcpy(od, gd, n * es, cudaMemcpyDeviceToDevice));
  CHECK_EQ_INT(qs_swiglu_cuda(od, ud, od, n, dt, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(gh, od, n * es, cudaMemcpyDeviceToHost));
  CHECK(memcmp(gh, oh, n * es) == 0);
done:
  cudaFree(gd), cudaFree(ud), cudaFree(od);
  free(g), free(up), free(ref), free(got), free(gh), free(uh), free(oh);
}

// ---- residual add and convert: bit-exact ------------------------------------------------------------
// Values over 2^-20 .. 2^20 in magnitude: f16 subnormals and overflow to inf are both exercised.
static void test_fill_wide(float *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = (float)(test_uniform(-1.0, 1.0) * exp2(test_uniform(-20.0, 20.0)));
}

static void test_residual_case(qs_dtype adt, qs_dtype bdt, size_t n, int convert) {
  const size_t ea = qs_dtype_size(adt), eb = qs_dtype_size(bdt);
  float *a = malloc(n * 4), *b = malloc(n * 4);
  unsigned char *ah = malloc(n * ea), *bh = malloc(n * eb), *ref = malloc(n * ea), *got = malloc(n * ea);
  void *ad = NULL, *bd = NULL;
  size_t bad = 0;
  TEST_ALLOC(a, b, ah, bh, ref, got);
  test_fill_wide(a, n);
  test_fill_wide(b, n);
  qs_convert_from_f32(a, adt, ah, n), qs_convert_to_f32(ah, adt, a, n);
  qs_convert_from_f32(b, bdt, bh, n), qs_convert_to_f32(bh, bdt, b, n);
  for (size_t i = 0; i < n; i++) a[i] = convert ? b[i] : a[i] + b[i]; // one IEEE fp32 add
  qs_convert_from_f32(a, adt, ref, n);
  TEST_CUDA(test_dev(&ad, convert ? NULL : ah, n * ea, 0xFF));
  TEST_CUDA(test_dev(&bd, bh, n * eb, 0));
  if (convert) CHECK_EQ_INT(qs_convert_cuda(bd, bdt, ad, adt, n, 0), QS_OK);
  else CHECK_EQ_INT(qs_residual_add_cuda(ad, adt, bd, bdt, n, 0), QS_OK);
  TEST_CUDA(cudaMemcpy(got, ad, n * ea, cudaMemcpyDeviceToHost));
  qs_convert_to_f32(got, adt, b, n); // b: the GPU's values, for the NaN test below
  for (size_t i = 0; i < n; i++)       // inf + -inf (f16 overflow) is NaN: any NaN bits match
    if (memcmp(got + i * ea, ref + i * ea, ea) && !(isnan(a[i]) && isnan(b[i])) && bad++ < 5)
      fprintf(stderr, "  %s %s <- %s: [%zu] differs (ref %.9g)\n", convert ? "convert" : "residual add",
              qs_dtype_name(adt), qs_dtype_name(bdt), i, a[i]);
  printf("%-12s %-4s <- %-4s n %zu: %zu differ (bit-exact)\n", convert ? "convert" : "residual add", qs_dtype_name(adt),
         qs_dtype_name(bdt), n, bad);
  CHECK_EQ_INT(bad, 0);
done:
  cudaFree(ad), cudaFree(bd);
  free(a), free(b), free(ah), free(bh), free(ref), free(got);
}

// ---- bad arguments are reported, not launched ----------------------------------------------------
static void test_errors(void) {
  void *d = NULL;
  if (cudaMalloc(&d, 4096) != cudaSuccess) { CHECK(0); return; }
  char *m = (char *)d + 2; // misaligned
  CHECK_EQ_INT(qs_attention_cuda(d, d, d, d, 1, 4, 4, 3, 64, QS_DTYPE_BF16, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_attention_cuda(d, d, d, d, 1, 4, 4, 2, 100, QS_DTYPE_BF16, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(qs_attention_cuda(d, d, d, d, 1, 4, 4, 2, 64, QS_DTYPE_I32, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(qs_attention_cuda(m, d, d, d, 1, 4, 4, 2, 64, QS_DTYPE_BF16, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_attention_cuda(d, d, d, d, 1, 0, 4, 2, 64, QS_DTYPE_BF16, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_rope_cuda(d, 1, 4, 2, 7, (const float *)d, 0, QS_DTYPE_BF16, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_rope_cuda(d, 1, 4, 2, 8, (const float *)d, -1, QS_DTYPE_BF16, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_rope_cuda(d, 1, 4, 2, 8, (const float *)d, 0, QS_DTYPE_I32, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(qs_swiglu_cuda(d, d, d, 0, QS_DTYPE_BF16, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_swiglu_cuda(d, d, d, 4, QS_DTYPE_I8, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(qs_residual_add_cuda(d, QS_DTYPE_F32, d, QS_DTYPE_I32, 4, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(qs_convert_cuda(d, QS_DTYPE_F32, d, QS_DTYPE_F32, 0, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_embedding_cuda((const int32_t *)d, d, d, 0, 4, 4, QS_DTYPE_BF16, 0), QS_ERR_ARG);
  CHECK_EQ_INT(qs_embedding_cuda((const int32_t *)d, d, d, 1, 4, 4, QS_DTYPE_I32, 0), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(cudaDeviceSynchronize(), cudaSuccess);
  cudaFree(d);
}

// ---- benchmark: attention TFLOP/s ----------------------------------------------------------------
static int test_cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

// Median time of `reps` launches (after 3 warm-ups) for batch B, with CUDA events.
static float test_bench_one(void *qd, void *kd, void *vd, void *od, int B, int T, int H, int Hkv, int D, int reps) {
  float ms[64], med = -1.0f;
  cudaEvent_t e0 = NULL, e1 = NULL;
  TEST_CUDA(cudaEventCreate(&e0));
  TEST_CUDA(cudaEventCreate(&e1));
  for (int r = -3; r < reps; r++) {
    TEST_CUDA(cudaEventRecord(e0, 0));
    CHECK_EQ_INT(qs_attention_cuda(qd, kd, vd, od, B, T, H, Hkv, D, QS_DTYPE_BF16, 0), QS_OK);
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

// Causal FLOPs = 4 B H T^2 D / 2 (QK^T and PV, half the square). Random bf16 inputs, never zeros.
static void test_bench_attention(int D) {
  const int T = 2048, H = 32, Hkv = 8, Bmax = 8, reps = 20;
  const size_t nq = (size_t)Bmax * T * H * D, nkv = (size_t)Bmax * T * Hkv * D;
  float *f = malloc(nq * 4);
  uint16_t *h = malloc(nq * 2);
  void *qd = NULL, *kd = NULL, *vd = NULL, *od = NULL;
  TEST_ALLOC(f, h);
  test_fill(f, h, nq, -2.0, 2.0, QS_DTYPE_BF16);
  TEST_CUDA(test_dev(&qd, h, nq * 2, 0));
  TEST_CUDA(test_dev(&kd, h + nkv, nkv * 2, 0)); // other parts of the same random stream
  TEST_CUDA(test_dev(&vd, h + 2 * nkv, nkv * 2, 0));
  TEST_CUDA(test_dev(&od, NULL, nq * 2, 0xFF));
  printf("attention bf16 causal, T %d, heads %d/%d, head_dim %d (median of %d)\n", T, H, Hkv, D, reps);
  for (int B = 1; B <= Bmax; B *= 2) {
    const float ms = test_bench_one(qd, kd, vd, od, B, T, H, Hkv, D, reps);
    const double flops = 4.0 * B * H * (double)T * T * D / 2;
    printf("  B %d: %8.3f ms  %7.1f TFLOP/s\n", B, ms, flops / (ms * 1e-3) / 1e12);
  }
  // The last (B = 8) output: every element written and finite.
  TEST_CUDA(cudaMemcpy(h, od, nq * 2, cudaMemcpyDeviceToHost));
  qs_convert_to_f32(h, QS_DTYPE_BF16, f, nq);
  size_t nonfinite = 0;
  for (size_t i = 0; i < nq; i++) nonfinite += !isfinite(f[i]);
  printf("  B %d output: %zu of %zu elements not finite\n", Bmax, nonfinite, nq);
  CHECK_EQ_INT(nonfinite, 0);
done:
  cudaFree(qd), cudaFree(kd), cudaFree(vd), cudaFree(od);
  free(f), free(h);
}

static void test_attention_all(void) {
  static const int Ts[] = {1, 7, 129, 513};
  static const int Ds[] = {8, 64, 128};
  static const qs_dtype dts[] = {QS_DTYPE_BF16, QS_DTYPE_F16};
  for (size_t a = 0; a < 2; a++)
    for (size_t d = 0; d < 3; d++)
      for (size_t t = 0; t < 4; t++) test_attention_case(dts[a], 2, Ts[t], 4, 2, Ds[d], 1.0);
  test_attention_case(QS_DTYPE_BF16, 1, 1100, 8, 2, 128, 1.0); // 18 key tiles, ragged last tile
  test_attention_case(QS_DTYPE_BF16, 1, 300, 4, 1, 64, 8.0);   // peaked softmax: max subtraction matters
  test_attention_case(QS_DTYPE_F16, 3, 200, 6, 6, 64, 4.0);    // no grouping (MHA), 3 sequences
  test_attention_case(QS_DTYPE_BF16, 2, 97, 6, 2, 48, 1.0);    // stories15M's head_dim 48
  test_attention_case(QS_DTYPE_BF16, 1, 65, 2, 1, 32, 1.0);
}

int main(int argc, char **argv) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0)
    QS_TEST_SKIP("no CUDA device (cudaGetDeviceCount: %s, %d devices)", cudaGetErrorString(e), count);
  struct cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    printf("device 0: %s, compute capability %d.%d, %d SMs\n", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount);
  if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
    test_bench_attention(128);
    test_bench_attention(64);
    return qs_test_finish("test_kernels_fwd_cuda --bench");
  }
  static const qs_dtype dts[] = {QS_DTYPE_F32, QS_DTYPE_BF16, QS_DTYPE_F16};
  for (int d = 0; d < 3; d++) {
    test_embedding_case(dts[d], 37, 1000, 64);  // 16-byte copies
    test_embedding_case(dts[d], 5, 33, 7);      // 2- or 4-byte copies (odd row size)
    test_embedding_case(dts[d], 1, 10, 4096);
    test_rope_case(dts[d], 2, 7, 3, 8, 0, QS_ROPE_DEFAULT);
    test_rope_case(dts[d], 1, 129, 4, 64, 5, QS_ROPE_LINEAR);
    test_rope_case(dts[d], 2, 33, 8, 128, 131000, QS_ROPE_LLAMA3); // large angles
    test_swiglu_case(dts[d], 1);
    test_swiglu_case(dts[d], 100003);
    for (int s = 0; s < 3; s++) {
      test_residual_case(dts[d], dts[s], 70001, 0);
      test_residual_case(dts[d], dts[s], 70001, 1);
    }
  }
  test_attention_all();
  test_errors();
  return qs_test_finish("test_kernels_fwd_cuda");
}
