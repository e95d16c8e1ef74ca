// test_ggml_gptq.c — the element view of llama.cpp's block grids (quant/ggml_elems.c) and GPTQ into
// them (quant/gptq.c), against the block references (quant/ggml_quants.c, ggml_kquants.c):
//   1. for every type with an element view, on rows quantized by the reference (with and without
//      importance): each element's value is bit for bit the type's dequantization of its stored code;
//      putting the stored codes back into a block whose codes were scrambled gives the bytes back; for
//      the k-quants re-coding the row's own inputs on the block's parameters gives its code (the
//      reference's own final rounding), and for the 32-blocks the chosen code is the nearest on the
//      stored grid;
//   2. GPTQ into a block grid with a diagonal Hessian (no error feedback: U is diagonal) writes the
//      reference's bytes exactly (k-quants, with and without importance); with a correlated Hessian it
//      changes codes and lowers the Hessian-weighted output error below the reference's.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qs_test.h"
#include "io/ggml_types.h"
#include "quant/gptq.h"
#include "quant/grid_ggml.h"
#include "quant/imatrix.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float gauss(void) { // Box-Muller on a xorshift stream
  float u[2];
  for (int i = 0; i < 2; i++) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    u[i] = ((float)(rng >> 40) + 0.5f) / 16777216.0f;
  }
  return sqrtf(-2.0f * logf(u[0])) * cosf(6.2831853f * u[1]);
}

static const int k_types[] = {QS_GGML_Q2_K, QS_GGML_Q3_K, QS_GGML_Q4_K, QS_GGML_Q5_K, QS_GGML_Q6_K, QS_GGML_Q8_0,
                              QS_GGML_Q4_0, QS_GGML_Q4_1, QS_GGML_Q5_0, QS_GGML_Q5_1, QS_GGML_F16, QS_GGML_BF16,
                              QS_GGML_F32};
static int is_k(int t) { return t >= QS_GGML_Q2_K && t <= QS_GGML_Q6_K; }

static void elem_checks(int type, const float *x, const float *imp, int64_t n) {
  const int bl = qs_ggml_blck_size(type);
  const size_t bsz = (size_t)qs_ggml_type_size(type);
  const int64_t C = qs_ggml_row_size(type, n);
  uint8_t *ref = malloc((size_t)C), *back = malloc((size_t)C);
  float *y = malloc((size_t)n * sizeof(float));
  CHECK_EQ_INT(qs_ggml_quantize_row_ref(type, x, imp, n, ref), QS_OK);
  CHECK_EQ_INT(qs_ggml_dequant_row_ref(type, ref, n, y), QS_OK);
  memcpy(back, ref, (size_t)C);
  int bad_value = 0, bad_code = 0, bad_near = 0;
  int32_t *codes = malloc((size_t)n * sizeof(int32_t));
  for (int64_t e = 0; e < n; e++) {
    const uint8_t *blk = ref + (size_t)(e / bl) * bsz;
    int j = (int)(e % bl);
    // the stored code: the one whose value is the dequantized value (for k-quants re-coding x finds it)
    int32_t q = qs_ggml_elem_code(type, blk, j, y[e]);
    codes[e] = q;
    float v = qs_ggml_elem_value(type, blk, j, q);
    if (memcmp(&v, &y[e], sizeof v)) bad_value++;
    if (is_k(type) && qs_ggml_elem_code(type, blk, j, x[e]) != q) bad_code++;
    if (!is_k(type) && type != QS_GGML_F32 && type != QS_GGML_F16 && type != QS_GGML_BF16) {
      int32_t c = qs_ggml_elem_code(type, blk, j, x[e]);
      float vc = qs_ggml_elem_value(type, blk, j, c);
      for (int32_t o = -1; o <= 1; o += 2) { // no neighbouring code on the grid is nearer to x
        float vo = qs_ggml_elem_value(type, blk, j, c + o);
        int in_range = qs_ggml_elem_code(type, blk, j, vo) == c + o;
        if (in_range && fabsf(vo - x[e]) < fabsf(vc - x[e])) bad_near++;
      }
    }
    // scramble the code bits of this element's block, later put back
  }
  for (int64_t e = 0; e < n; e++) qs_ggml_elem_put(type, back + (size_t)(e / bl) * bsz, (int)(e % bl), (codes[e] + 1) & 0xF);
  for (int64_t e = 0; e < n; e++) qs_ggml_elem_put(type, back + (size_t)(e / bl) * bsz, (int)(e % bl), codes[e]);
  CHECK(memcmp(back, ref, (size_t)C) == 0);
  CHECK_EQ_INT(bad_value, 0);
  CHECK_EQ_INT(bad_code, 0);
  CHECK_EQ_INT(bad_near, 0);
  if (bad_value || bad_code || bad_near || memcmp(back, ref, (size_t)C))
    fprintf(stderr, "  type %s imp %s\n", qs_ggml_type_name(type), imp ? "yes" : "no");
  free(codes);
  free(ref);
  free(back);
  free(y);
}

// GPTQ on grid `type` of W [N, K] with Hessian H: the codes (blocks) and the Hessian-weighted error
// tr((W-Q) H (W-Q)^T).
static double gptq_err(int type, const float *W0, int64_t N, int64_t K, const float *H, const float *imp,
                       uint8_t *blocks) {
  struct qs_qopts o = qs_qopts_default();
  struct qs_imatrix m = {0};
  o.grid = qs_grid_ggml(type);
  o.damp = 0.0f;
  if (imp) { // through the table path, keyed by the module name
    float *sum2 = malloc((size_t)K * sizeof(float));
    for (int64_t k = 0; k < K; k++) sum2[k] = imp[k] * 2.0f; // count 2: imp = sum2 / 2 exactly
    qs_imatrix_add(&m, "m", sum2, K, 2.0f);
    free(sum2);
    o.importance = QS_IMP_TABLE;
    o.imatrix = &m;
  }
  float *W = malloc((size_t)(N * K) * sizeof(float));
  memcpy(W, W0, (size_t)(N * K) * sizeof(float));
  struct qs_qrows out = {.codes = blocks, .scales = NULL, .zeros = NULL, .loss = NULL};
  float *sc = malloc(4), *lossv = malloc((size_t)N * sizeof(float));
  uint8_t *z = malloc(4);
  out.scales = sc, out.zeros = z, out.loss = lossv;
  CHECK_EQ_INT(qs_gptq_quantize(W, N, K, H, &o, "m", &out, NULL, NULL), QS_OK);
  double err = 0;
  for (int64_t n = 0; n < N; n++)
    for (int64_t a = 0; a < K; a++)
      for (int64_t b = 0; b < K; b++)
        err += (double)(W0[n * K + a] - W[n * K + a]) * H[a * K + b] * (W0[n * K + b] - W[n * K + b]);
  free(W);
  free(sc);
  free(z);
  free(lossv);
  qs_imatrix_free(&m);
  return err;
}

static double ref_err(int type, const float *W0, int64_t N, int64_t K, const float *H, const float *imp, uint8_t *blocks) {
  const int64_t C = qs_ggml_row_size(type, K);
  float *Q = malloc((size_t)(N * K) * sizeof(float));
  for (int64_t n = 0; n < N; n++) {
    qs_ggml_quantize_row_ref(type, W0 + n * K, imp, K, blocks + n * C);
    qs_ggml_dequant_row_ref(type, blocks + n * C, K, Q + n * K);
  }
  double err = 0;
  for (int64_t n = 0; n < N; n++)
    for (int64_t a = 0; a < K; a++)
      for (int64_t b = 0; b < K; b++)
        err += (double)(W0[n * K + a] - Q[n * K + a]) * H[a * K + b] * (W0[n * K + b] - Q[n * K + b]);
  free(Q);
  return err;
}

int main(void) {
  const int64_t n = 1024;
  float *x = malloc(n * sizeof(float)), *imp = malloc(n * sizeof(float));
  for (int rep = 0; rep < 4; rep++) {
    for (int64_t i = 0; i < n; i++) {
      x[i] = gauss() * (rep == 3 ? 1e-3f : 1.0f) + (rep == 2 ? 0.3f : 0.0f);
      imp[i] = fabsf(gauss()) + (i % 7 == 0 ? 0.0f : 0.1f);
    }
    if (rep == 1) x[17] = 40.0f; // an outlier
    for (size_t t = 0; t < sizeof(k_types) / sizeof(k_types[0]); t++) {
      CHECK(qs_ggml_elem_supported(k_types[t]));
      elem_checks(k_types[t], x, NULL, n);
      elem_checks(k_types[t], x, imp, n);
    }
  }
  CHECK(!qs_ggml_elem_supported(QS_GGML_IQ4_NL));

  // 2. GPTQ into k-quant blocks: 4 rows x 512 columns
  const int64_t N = 4, K = 512;
  float *W = malloc((size_t)(N * K) * sizeof(float)), *H = calloc((size_t)(K * K), sizeof(float));
  float *X = malloc((size_t)(64 * K) * sizeof(float));
  uint8_t *b1 = malloc((size_t)(N * K * 2)), *b2 = malloc((size_t)(N * K * 2));
  for (int64_t i = 0; i < N * K; i++) W[i] = gauss() * 0.02f;
  for (int64_t k = 0; k < K; k++) H[k * K + k] = 1.0f + (float)(k % 5);
  const int kq[] = {QS_GGML_Q2_K, QS_GGML_Q3_K, QS_GGML_Q4_K, QS_GGML_Q5_K, QS_GGML_Q6_K};
  for (int i = 0; i < 5; i++)
    for (int wi = 0; wi < 2; wi++) {
      const float *ip = wi ? imp : NULL;
      gptq_err(kq[i], W, N, K, H, ip, b1);
      ref_err(kq[i], W, N, K, H, ip, b2);
      CHECK(memcmp(b1, b2, (size_t)(N * qs_ggml_row_size(kq[i], K))) == 0);
    }
  // correlated inputs: H = X^T X / 64 of inputs sharing a common factor
  for (int64_t s = 0; s < 64; s++) {
    float c = gauss();
    for (int64_t k = 0; k < K; k++) X[s * K + k] = 0.7f * c + 0.3f * gauss();
  }
  memset(H, 0, (size_t)(K * K) * sizeof(float));
  for (int64_t s = 0; s < 64; s++)
    for (int64_t a = 0; a < K; a++)
      for (int64_t b = 0; b < K; b++) H[a * K + b] += X[s * K + a] * X[s * K + b] / 64.0f;
  for (int64_t k = 0; k < K; k++) H[k * K + k] += 0.01f;
  for (int i = 0; i < 5; i++) {
    double eg = gptq_err(kq[i], W, N, K, H, NULL, b1), er = ref_err(kq[i], W, N, K, H, NULL, b2);
    printf("%s: Hessian-weighted error GPTQ %.4g vs reference %.4g\n", qs_ggml_type_name(kq[i]), eg, er);
    CHECK(eg < er);
  }
  free(x); free(imp); free(W); free(H); free(X); free(b1); free(b2);
  return qs_test_finish("test_ggml_gptq");
}
