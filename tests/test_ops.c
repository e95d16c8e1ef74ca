// test_ops.c — the forward-pass references of src/model/ops.c against their direct formulas (evaluated in
// double here), and the OpenBLAS qs_matmul against qs_matmul_ref. Run: ctest -R test_ops (label unit).
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/config.h"
#include "model/ops.h"
#include "qs_test.h"

#define U32 (1.0 / 16777216.0)  // float32 unit roundoff, 2^-24

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {  // uniform in [-1, 1), deterministic
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return (float)((g_rng >> 40) / 8388608.0 - 1.0);
}
static void fill(float *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = frand();
}

static void test_rmsnorm(void) {
  float x[8] = {1, 2, 3, 4, -0.5f, 0.25f, 8, -2}, w[4] = {1, 1, 2, 0.5f}, out[8];
  const float eps = 1e-5f;
  qs_rmsnorm_ref(x, w, out, 2, 4, eps);
  for (int r = 0; r < 2; r++) {
    double ss = 0;
    for (int i = 0; i < 4; i++) ss += (double)x[r * 4 + i] * x[r * 4 + i];
    double inv = 1.0 / sqrt(ss / 4 + eps);
    // float path: mean, +eps, sqrt, reciprocal, two products: 6 roundings of u each
    for (int i = 0; i < 4; i++) CHECK_CLOSE(out[r * 4 + i], w[i] * x[r * 4 + i] * inv, 0.0, 6 * U32);
  }
  float y[8];
  memcpy(y, x, sizeof(x));
  qs_rmsnorm_ref(y, w, y, 2, 4, eps);  // in place gives the same bits
  CHECK(memcmp(y, out, sizeof(y)) == 0);
}

static void test_rope(void) {
  struct qs_config c = {.head_dim = 8, .rope_theta = 10000.0, .rope_type = QS_ROPE_DEFAULT};
  float inv[4];
  qs_rope_inv_freq(&c, inv);
  // pow rounded to float, then the reciprocal: 2 roundings
  for (int i = 0; i < 4; i++) CHECK_CLOSE(inv[i], pow(10000.0, -i / 4.0), 0.0, 2 * U32);
  enum { T = 6, H = 3, D = 8 };
  float x[T * H * D], y[T * H * D];
  fill(x, T * H * D);
  memcpy(y, x, sizeof(x));
  const int pos0 = 40;
  qs_rope_ref(y, T, H, D, inv, pos0);
  for (int t = 0; t < T; t++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < D / 2; i++) {
        const float *a = x + (t * H + h) * D;
        const float *b = y + (t * H + h) * D;
        double ang = (double)(pos0 + t) * inv[i], cs = cos(ang), sn = sin(ang);
        // The float angle pos*inv_freq is rounded once (abs error <= |angle| u) and cosf/sinf add
        // ~1 u each; two products and a sum add 3 u of |x| <= 1: (|angle| + 5) u.
        double tol = (fabs(ang) + 5) * U32;
        CHECK_CLOSE(b[i], a[i] * cs - a[i + D / 2] * sn, tol, 0.0);
        CHECK_CLOSE(b[i + D / 2], a[i + D / 2] * cs + a[i] * sn, tol, 0.0);
      }
  memcpy(y, x, sizeof(x));
  qs_rope_ref(y, T, H, D, inv, 0);
  CHECK(memcmp(y, x, H * D * sizeof(float)) == 0);  // position 0: cos 1, sin 0, exact identity
}

// Attention by its formula in double: softmax(q k^T / sqrt(D) + causal mask) v, GQA head mapping.
static void attention_direct(const float *q, const float *k, const float *v, double *out, int T, int H,
                             int Hkv, int D) {
  for (int t = 0; t < T; t++)
    for (int h = 0; h < H; h++) {
      int kh = h / (H / Hkv);
      double s[64], mx = -1e300, sum = 0;
      for (int j = 0; j <= t; j++) {
        s[j] = 0;
        for (int d = 0; d < D; d++) s[j] += (double)q[(t * H + h) * D + d] * k[(j * Hkv + kh) * D + d];
        s[j] /= sqrt((double)D);
        mx = fmax(mx, s[j]);
      }
      for (int j = 0; j <= t; j++) sum += (s[j] = exp(s[j] - mx));
      for (int d = 0; d < D; d++) {
        double acc = 0;
        for (int j = 0; j <= t; j++) acc += s[j] / sum * v[(j * Hkv + kh) * D + d];
        out[(t * H + h) * D + d] = acc;
      }
    }
}

static void test_attention(void) {
  enum { T = 9, H = 4, Hkv = 2, D = 8 };
  float q[T * H * D], k[T * Hkv * D], v[T * Hkv * D], out[T * H * D], out2[T * H * D], scratch[T];
  double want[T * H * D];
  fill(q, sizeof(q) / 4);
  fill(k, sizeof(k) / 4);
  fill(v, sizeof(v) / 4);
  qs_attention_ref(q, k, v, out, T, H, Hkv, D, scratch);
  attention_direct(q, k, v, want, T, H, Hkv, D);
  // |q|,|k|,|v| <= 1: a score sums D products (error <= D u * D = 64 u before the 1/sqrt(D) scale);
  // a softmax weight then has relative error <= 2 * 64 u + exp/sum/reciprocal (T + 3) u, and the
  // output (a convex combination of |v| <= 1) adds T u: about (128 + 2T + 3) u < 160 u absolute.
  for (int i = 0; i < T * H * D; i++) CHECK_CLOSE(out[i], want[i], 160 * U32, 0.0);
  // T = 1: the only weight is exactly 1, so the output is v of the head's KV group, bit for bit.
  qs_attention_ref(q, k, v, out2, 1, H, Hkv, D, scratch);
  for (int h = 0; h < H; h++) CHECK(memcmp(out2 + h * D, v + (h / 2) * D, D * sizeof(float)) == 0);
  // Causal: changing keys and values at positions >= 5 leaves rows 0..4 unchanged, bit for bit.
  for (int i = 5 * Hkv * D; i < T * Hkv * D; i++) k[i] += 3.0f, v[i] -= 2.0f;
  qs_attention_ref(q, k, v, out2, T, H, Hkv, D, scratch);
  CHECK(memcmp(out, out2, 5 * H * D * sizeof(float)) == 0);
  CHECK(memcmp(out + 5 * H * D, out2 + 5 * H * D, 4 * H * D * sizeof(float)) != 0);
}

// The vectorized backend gives the reference's bits (same summation orders), for head sizes that
// are and are not multiples of its 8-wide blocks, MHA and GQA, short and long windows.
static void test_attention_backend(void) {
  const int shapes[][4] = {{1, 4, 2, 8}, {9, 4, 2, 8}, {37, 8, 2, 12}, {20, 3, 3, 128}, {70, 4, 1, 5}};
  for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
    const int T = shapes[i][0], H = shapes[i][1], Hkv = shapes[i][2], D = shapes[i][3];
    float *q = malloc(sizeof(float) * T * H * D), *k = malloc(sizeof(float) * T * Hkv * D);
    float *v = malloc(sizeof(float) * T * Hkv * D), *o1 = malloc(sizeof(float) * T * H * D);
    float *o2 = malloc(sizeof(float) * T * H * D), *scratch = malloc(sizeof(float) * T);
    fill(q, (size_t)T * H * D);
    fill(k, (size_t)T * Hkv * D);
    fill(v, (size_t)T * Hkv * D);
    qs_attention_ref(q, k, v, o1, T, H, Hkv, D, scratch);
    CHECK_EQ_INT(qs_attention(q, k, v, o2, T, H, Hkv, D, scratch), QS_OK);
    CHECK(memcmp(o1, o2, sizeof(float) * T * H * D) == 0);
    free(q), free(k), free(v), free(o1), free(o2), free(scratch);
  }
}

static void test_swiglu(void) {
  float g[5] = {-20, -1, 0, 0.5f, 30}, u[5] = {1, 2, -3, 4, 0.5f}, out[5];
  qs_swiglu_ref(g, u, out, 5);
  // exp, sum, division, product: 4 roundings
  for (int i = 0; i < 5; i++) CHECK_CLOSE(out[i], g[i] / (1 + exp(-(double)g[i])) * u[i], 1e-30, 4 * U32);
  qs_swiglu_ref(g, u, g, 5);  // out may alias gate
  CHECK(memcmp(g, out, sizeof(out)) == 0);
}

static void test_matmul(void) {
  enum { M = 7, N = 33, K = 300 };
  float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K), b[N];
  float y[M * N], yref[M * N];
  fill(x, M * K);
  fill(w, N * K);
  fill(b, N);
  for (int pass = 0; pass < 2; pass++) {
    const float *bias = pass ? b : NULL;
    qs_matmul(x, w, bias, y, M, N, K);
    qs_matmul_ref(x, w, bias, yref, M, N, K);
    for (int m = 0; m < M; m++)
      for (int n = 0; n < N; n++) {
        // Float accumulation of K products in any order (BLAS blocks and vectorizes it) is within
        // gamma_{K+1} * sum|x w| (+ |bias|) of the exact sum (Higham, Accuracy and Stability §3.1),
        // gamma_n = n u / (1 - n u); the double reference is exact to far below that.
        double mag = bias ? fabs(b[n]) : 0;
        for (int kk = 0; kk < K; kk++) mag += fabs((double)x[m * K + kk] * w[n * K + kk]);
        double gamma = (K + 1) * U32 / (1 - (K + 1) * U32);
        CHECK_CLOSE(y[m * N + n], yref[m * N + n], gamma * mag, 0.0);
      }
  }
  // The reference itself against a hand-computed product.
  float xs[2] = {1, 2}, ws[2] = {3, -4}, bs[1] = {0.5f}, ys[1];
  qs_matmul_ref(xs, ws, bs, ys, 1, 1, 2);
  CHECK(ys[0] == -4.5f);
  qs_matmul(xs, ws, bs, ys, 1, 1, 2);
  CHECK(ys[0] == -4.5f);
  free(x);
  free(w);
}

static void test_nll(void) {
  float l[4] = {0, 0, 0, 0};
  CHECK_CLOSE(qs_nll_ref(l, 4, 2), log(4.0), 1e-15, 0.0);
  float big[3] = {1000, 1000, -1000};  // overflows without max subtraction
  CHECK_CLOSE(qs_nll_ref(big, 3, 0), log(2.0), 1e-12, 0.0);
  CHECK(qs_nll_ref(big, 3, 2) > 1999);
}

// KL(P || Q) and friends against the closed forms: two-way softmaxes p = (1/2, 1/2) and q = (1/(1+e),
// e/(1+e)) (logits 0,0 and 0,1): KL = sum p log(p/q) = log(1/2) - (1/2)(log q0 + log q1) with
// log q0 = -log(1+e), log q1 = 1 - log(1+e). Tolerances: double sums of 2 terms, a few ulps of the
// values (~1e-16 relative); 1e-14 absolute leaves margin. Identical inputs: exactly 0, same top.
static void test_tok_cmp(void) {
  const float ref[2] = {0.f, 0.f}, q[2] = {0.f, 1.f}, big[3] = {1000.f, 999.f, -1000.f};
  struct qs_tok_cmp c;
  qs_tok_cmp_ref(ref, q, 2, 1, &c);
  const double l1e = log(1.0 + exp(1.0));
  CHECK_CLOSE(c.kld, log(0.5) - 0.5 * (-l1e + 1.0 - l1e), 1e-14, 0.0);
  CHECK_CLOSE(c.nll_ref, log(2.0), 1e-15, 0.0);
  CHECK_CLOSE(c.nll_q, l1e - 1.0, 1e-14, 0.0);
  CHECK_CLOSE(c.dp, exp(1.0) / (1.0 + exp(1.0)) - 0.5, 1e-14, 0.0);
  CHECK(c.same_top == 0); // argmax: index 0 for ref (first on ties), 1 for q
  qs_tok_cmp_ref(big, big, 3, 1, &c); // no overflow: the max is subtracted
  CHECK(c.kld == 0.0 && c.dp == 0.0 && c.same_top == 1 && c.nll_q == c.nll_ref);
  CHECK_CLOSE(c.nll_q, 1.0 + log(1.0 + exp(-1.0)), 1e-12, 0.0);
}

int main(void) {
  test_tok_cmp();
  test_rmsnorm();
  test_rope();
  test_attention();
  test_attention_backend();
  test_swiglu();
  test_matmul();
  test_nll();
  return qs_test_finish("test_ops");
}
