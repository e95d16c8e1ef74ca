// test_ggml_quants.c — the references of llama.cpp's 32-blocks and F16/BF16 (src/quant/ggml_quants.c):
// small blocks pinned to bytes derived by hand from the formats (FORMATS.md §5.6–5.7), the importance
// paths on blocks already on their grid, quantize∘dequantize idempotence, a per-element dequantization
// error bound per type, and nearest_int's ties. Byte identity with llama.cpp itself is
// tests/py/ggml_oracle.py. Run: ctest --test-dir build -R test_ggml_quants
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/dtype.h"
#include "base/qs_common.h"
#include "qs_test.h"
#include "quant/ggml_blocks.h"
#include "quant/grid_ggml.h"
#include "quant/grid_ggml.h"

#define NB 4 // blocks per row in the random tests

static void check_bytes(const char *what, const void *got, const uint8_t *want, size_t n) {
  const uint8_t *g = got;
  for (size_t i = 0; i < n; i++)
    if (g[i] != want[i]) {
      fprintf(stderr, "FAIL %s: byte %zu is 0x%02x, want 0x%02x\n", what, i, g[i], want[i]);
      qs_test_failures++;
      break;
    }
  qs_test_checks++;
}

// Quantizes x (one row of n) with and without imp (all ones) and checks both against want.
static void check_type(int type, const float *x, int64_t n, const uint8_t *want, int with_imp) {
  uint8_t got[256];
  float ones[64];
  for (int j = 0; j < 64; j++) ones[j] = 1.0f;
  const size_t size = (size_t)qs_ggml_row_size(type, n);
  CHECK_EQ_INT(qs_ggml_quantize_row_ref(type, x, NULL, n, got), QS_OK);
  check_bytes(qs_ggml_type_name(type), got, want, size);
  if (!with_imp) return;
  CHECK_EQ_INT(qs_ggml_quantize_row_ref(type, x, ones, n, got), QS_OK);
  check_bytes(qs_ggml_type_name(type), got, want, size);
}

static void test_nearest_int(void) {
  // 1.5·2^23 + f rounds to an integer in the float's own rounding: to nearest, ties to even.
  const float f[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.4999998f, 7.5f, 4194303.0f, -4194303.0f};
  const int want[] = {0, 2, 2, 0, -2, -2, 3, 8, 4194303, -4194303};
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
    CHECK_EQ_INT(qs_ggml_nearest_int(f[i]), want[i]);
    CHECK_EQ_INT(qs_ggml_nearest_int(f[i]), (int)rintf(f[i]));
  }
  CHECK_EQ_INT((int)roundf(2.5f), 3); // Q8_0's roundf: ties away from zero, unlike nearest_int
}

// F16: 1 = 0x3C00; -2 = 0xC000; 65504 (max) = 0x7BFF; 65520 is the midpoint to 2^16 and rounds to
// inf 0x7C00; 2^-24 is the least subnormal 0x0001 and 2^-26 rounds to 0; 0.1 = 1.6·2^-4: exponent
// 15-4 = 11, mantissa 0.6·1024 = 614.4 -> 614: 0x2E66; 1+2^-11 is a tie -> even 0x3C00, 1+3·2^-11 ->
// 0x3C02; NaN -> 0x7E00; -0 -> 0x8000.
static void test_f16(void) {
  const float x[] = {1.0f, -2.0f, 65504.0f, 65520.0f, 0x1p-24f, 0x1p-26f, 0.1f, 1.0f + 0x1p-11f, 1.0f + 0x3p-11f,
                     NAN, -0.0f};
  const uint16_t want[] = {0x3C00, 0xC000, 0x7BFF, 0x7C00, 0x0001, 0x0000, 0x2E66, 0x3C00, 0x3C02, 0x7E00, 0x8000};
  const int64_t n = sizeof x / sizeof *x;
  check_type(QS_GGML_F16, x, n, (const uint8_t *)want, 1);
  // dequant: a signaling NaN comes back quiet (bit 22 set), as ggml's float multiply makes it.
  const uint16_t h[] = {0x3C00, 0x0001, 0x7C00, 0x7C01, 0xFE00};
  float y[5];
  uint32_t u[5];
  qs_ggml_dequant_row_ref(QS_GGML_F16, h, 5, y);
  memcpy(u, y, sizeof u);
  CHECK_EQ_INT(u[0], 0x3F800000);
  CHECK_EQ_INT(u[1], 0x33800000); // 2^-24
  CHECK_EQ_INT(u[2], 0x7F800000);
  CHECK_EQ_INT(u[3], 0x7FC02000);
  CHECK_EQ_INT(u[4], 0xFFC00000);
}

// BF16: the top 16 bits rounded to nearest even: 1 = 0x3F80; 1+2^-8 (0x3F808000) is a tie -> 0x3F80,
// 1+3·2^-8 (0x3F818000) -> 0x3F82; a signaling NaN 0x7F800001 keeps its top half, made quiet: 0x7FC0.
static void test_bf16(void) {
  uint32_t snan = 0x7F800001u;
  float x[4] = {1.0f, 1.0f + 0x1p-8f, 1.0f + 0x3p-8f, 0};
  memcpy(&x[3], &snan, 4);
  const uint16_t want[] = {0x3F80, 0x3F80, 0x3F82, 0x7FC0};
  check_type(QS_GGML_BF16, x, 4, (const uint8_t *)want, 1);
}

// Q4_0: max = -8 (first of largest |x|; the later +8 does not replace it) -> d = -8/-8 = 1 (0x3C00);
// q = min(15, trunc(x + 8.5)): -8 -> 0, 8 -> 16 -> 15 (clip), -0.5 -> 8 and 0.5 -> 9 (halves round
// up), 1.49 -> 9, 7 -> 15, 0 -> 8. Byte j = q[j] | q[j+16] << 4, q[16..31] = 8.
static void test_q4_0(void) {
  float x[32] = {-8, 8, -0.5f, 0.5f, 1.49f, 7};
  uint8_t want[18] = {0x00, 0x3C, 0x80, 0x8F, 0x88, 0x89, 0x89, 0x8F};
  for (int j = 8; j < 18; j++) want[j] = 0x88;
  check_type(QS_GGML_Q4_0, x, 32, want, 0);
  // Importance path on a block whose values are already d·(q-8) with d = 1: the weighted fit is exact.
  float g[32];
  for (int j = 0; j < 32; j++) g[j] = (float)(j % 16) - 8;
  uint8_t want_g[18] = {0x00, 0x3C};
  for (int j = 0; j < 16; j++) want_g[2 + j] = (uint8_t)(j | j << 4);
  check_type(QS_GGML_Q4_0, g, 32, want_g, 1);
}

// Q4_1: min = -1 (m = 0xBC00), max = 14 -> d = 15/15 = 1; q = min(15, trunc(x + 1 + 0.5)): -1 -> 0,
// 14 -> 15, 1.5 -> 3 (half up), 6.49 -> 7, 0 -> 1. The importance path on exact values d·q + m keeps
// the min/max grid (its error is already 0).
static void test_q4_1(void) {
  float x[32] = {-1, 14, 1.5f, 6.49f};
  for (int j = 4; j < 32; j++) x[j] = 0;
  uint8_t want[20] = {0x00, 0x3C, 0x00, 0xBC, 0x10, 0x1F, 0x13, 0x17};
  for (int j = 8; j < 20; j++) want[j] = 0x11;
  check_type(QS_GGML_Q4_1, x, 32, want, 0);
  float g[32];
  for (int j = 0; j < 32; j++) g[j] = (float)(j % 16) - 1;
  uint8_t want_g[20] = {0x00, 0x3C, 0x00, 0xBC};
  for (int j = 0; j < 16; j++) want_g[4 + j] = (uint8_t)(j | j << 4);
  check_type(QS_GGML_Q4_1, g, 32, want_g, 1);
}

// Q5_0: max = -16 -> d = 1; q = min(31, trunc(x + 16.5)): -16 -> 0, 16 -> 31 (clip), -0.5 -> 16,
// 0.5 -> 17, 15 -> 31, 0 -> 16. Low nibbles: 0, F, 0, 1, F, 0...; bit 4 of q[j] is bit j of qh:
// q[0] = 0 is the only one below 16 -> qh = 0xFFFFFFFE.
static void test_q5_0(void) {
  float x[32] = {-16, 16, -0.5f, 0.5f, 15};
  uint8_t want[22] = {0x00, 0x3C, 0xFE, 0xFF, 0xFF, 0xFF, 0x00, 0x0F, 0x00, 0x01, 0x0F};
  check_type(QS_GGML_Q5_0, x, 32, want, 0);
  float g[32]; // on the grid: q = j, value j - 16; q[0] = 0 is the signed absmax -16
  for (int j = 0; j < 32; j++) g[j] = (float)j - 16;
  uint8_t want_g[22] = {0x00, 0x3C, 0x00, 0x00, 0xFF, 0xFF};
  for (int j = 0; j < 16; j++) want_g[6 + j] = (uint8_t)(j | j << 4);
  check_type(QS_GGML_Q5_0, g, 32, want_g, 1);
}

// Q5_1: min = -1, max = 30 -> d = 31/31 = 1, m = 0xBC00; q = trunc(x + 1.5): -1 -> 0, 30 -> 31,
// 14.5 -> 16, 0 -> 1. qh: bit 4 of q[1] = 31 and q[2] = 16 -> 0x00000006.
static void test_q5_1(void) {
  float x[32] = {-1, 30, 14.5f};
  uint8_t want[24] = {0x00, 0x3C, 0x00, 0xBC, 0x06, 0x00, 0x00, 0x00, 0x10, 0x1F, 0x10};
  for (int j = 11; j < 24; j++) want[j] = 0x11;
  check_type(QS_GGML_Q5_1, x, 32, want, 0);
  float g[32];
  for (int j = 0; j < 32; j++) g[j] = (float)j - 1;
  uint8_t want_g[24] = {0x00, 0x3C, 0x00, 0xBC, 0x00, 0x00, 0xFF, 0xFF};
  for (int j = 0; j < 16; j++) want_g[8 + j] = (uint8_t)(j | j << 4);
  check_type(QS_GGML_Q5_1, g, 32, want_g, 1);
}

// Q8_0: absmax 127 -> d = 1; q = roundf(x): -127, 2.5 -> 3 and -2.5 -> -3 (ties away from zero),
// 0.5 -> 1, 1.5 -> 2, 126.5 -> 127. The importance vector is ignored (so identical with imp).
static void test_q8_0(void) {
  float x[32] = {-127, 2.5f, -2.5f, 0.5f, 1.5f, 126.5f};
  uint8_t want[34] = {0x00, 0x3C, 0x81, 0x03, 0xFD, 0x01, 0x02, 0x7F};
  check_type(QS_GGML_Q8_0, x, 32, want, 1);
}

// IQ4_NL on the grid itself, x[j] = k[j % 16] (-127 ... 113): the trial that maps max = -127 to
// -127 + itry for small itry keeps every code (the grid gaps are >= 11), fits d = Σwqx/Σwq² = 1
// exactly, and no later trial is strictly better; codes = j % 16. An all-zero block: d = 0 and every
// code the index of the grid value nearest 0, 1 (8): 0x88.
static void test_iq4_nl(void) {
  static const int8_t k[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  float x[64] = {0};
  for (int j = 0; j < 32; j++) x[j] = k[j % 16];
  uint8_t want[36] = {0x00, 0x3C};
  for (int j = 0; j < 16; j++) want[2 + j] = (uint8_t)(j | j << 4);
  for (int j = 0; j < 16; j++) want[20 + j] = 0x88;
  check_type(QS_GGML_IQ4_NL, x, 64, want, 1);
}

// MXFP4: absmax 6 -> e = floor(log2 6) - 2 + 127 = 127, half-scale 2^-1: values {0, .5, 1, 1.5, 2, 3,
// 4, 6} and negatives (index + 8). 6 -> 7, -6 -> 15; ties take the first index: 0.75 -> 1 (0.5),
// 5 -> 6 (4), -0.25 -> 0 (+0), 2.5 -> 4 (2). An all-zero block: e = 0, codes 0.
static void test_mxfp4(void) {
  float x[64] = {6, -6, 0.75f, 5, -0.25f, 2.5f};
  uint8_t want[34] = {0x7F, 0x07, 0x0F, 0x01, 0x06, 0x00, 0x04};
  check_type(QS_GGML_MXFP4, x, 64, want, 1);
  float y[64];
  qs_ggml_dequant_row_ref(QS_GGML_MXFP4, want, 64, y);
  CHECK(y[0] == 6 && y[1] == -6 && y[2] == 0.5f && y[3] == 4 && y[4] == 0 && y[5] == 2 && y[40] == 0);
}

// Deterministic test rows: gaussian-ish (sum of uniforms) with a per-block spread, an outlier, ties.
static void make_row(float *x, int64_t n, uint64_t seed) {
  for (int64_t j = 0; j < n; j++) {
    double s = 0;
    for (int k = 0; k < 4; k++) s += qs_rand_open01(&seed) - 0.5;
    x[j] = (float)(s * (1 + (j / 32) % 3) * 0.05);
  }
  x[n / 3] = 1.0f; // an outlier
  x[n / 2] = -x[n / 2 + 1];
}

// Worst |x - y| allowed per element of a block with absmax A and range R = max - min (derivations
// from each type's grid; hx = 2^-11 bounds fp16's relative rounding of the stored scale / min, and
// q_max·|d - fp16(d)| what that rounding moves the largest code). 1e-6·A covers float rounding of
// x/d + 0.5 and of the dequant products.
static double err_bound(int type, double A, double R, double min, const void *block) {
  const double hx = 0x1p-11, slack = 1e-6 * A;
  switch (type) {
  case QS_GGML_F16: return A * hx + 0x1p-25 + slack; // 11-bit significand, subnormal step 2^-24
  case QS_GGML_BF16: return A * 0x1p-8 + slack;      // 8-bit significand: half an ulp is 2^-8 relative
  // Q4_0: 16 levels, step d = A/8; half a step, but a full step where +A clips at code 15 (= 7d).
  case QS_GGML_Q4_0: return A / 8 * (1 + 8 * hx) + slack;
  case QS_GGML_Q5_0: return A / 16 * (1 + 16 * hx) + slack; // 32 levels, step A/16, likewise
  // Q4_1: 16 levels over [min, max], step R/15, half a step; plus the fp16 roundings of d and m.
  case QS_GGML_Q4_1: return R / 30 + 15 * R / 15 * hx + fabs(min) * hx + slack;
  case QS_GGML_Q5_1: return R / 62 + 31 * R / 31 * hx + fabs(min) * hx + slack; // 32 levels
  case QS_GGML_Q8_0: return A / 127 * (0.5 + 127 * hx) + slack; // 255 levels, step A/127, no clip
  // MXFP4: |values| {0..4, 6, 8, 12}·d, d = 2^(floor(log2 A) - 3): gaps <= 4d inside, and A < 16d
  // saturates at 12d: at most 4d.
  case QS_GGML_MXFP4: {
    const uint8_t e = *(const uint8_t *)block;
    return 4 * ldexp(1.0, e - 128) + slack;
  }
  default: return 0;
  }
}

// quantize -> dequant -> error bound per element, and dequant -> quantize gives the same bytes for the
// types whose plain path maps its own grid onto itself (the largest |x| or the min/max stay codes).
static void test_roundtrip(void) {
  static const int types[] = {QS_GGML_F16, QS_GGML_BF16, QS_GGML_Q4_0, QS_GGML_Q4_1, QS_GGML_Q5_0,
                              QS_GGML_Q5_1, QS_GGML_Q8_0, QS_GGML_MXFP4};
  const int64_t n = 32 * NB;
  float x[32 * NB], y[32 * NB], y2[32 * NB];
  uint8_t q[32 * NB * 4], q2[32 * NB * 4];
  for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
    const int type = types[t], bs = qs_ggml_type_size(type), blk = qs_ggml_blck_size(type);
    for (uint64_t seed = 1; seed <= 20; seed++) {
      make_row(x, n, seed * 7919);
      CHECK_EQ_INT(qs_ggml_quantize_row_ref(type, x, NULL, n, q), QS_OK);
      CHECK_EQ_INT(qs_ggml_dequant_row_ref(type, q, n, y), QS_OK);
      int bad = 0;
      for (int64_t b = 0; b < n / 32; b++) {
        double A = 0, mn = INFINITY, mx = -INFINITY;
        for (int j = 0; j < 32; j++) {
          A = fmax(A, fabs(x[b * 32 + j]));
          mn = fmin(mn, x[b * 32 + j]);
          mx = fmax(mx, x[b * 32 + j]);
        }
        for (int j = 0; j < 32; j++) {
          const int64_t i = b * 32 + j;
          const double bound = blk == 1 ? err_bound(type, fabs(x[i]), 0, 0, NULL)
                                        : err_bound(type, A, mx - mn, mn, q + b * bs);
          if (!(fabs((double)x[i] - y[i]) <= bound) && !bad++)
            fprintf(stderr, "FAIL %s seed %llu: x[%lld] = %.9g -> %.9g, |err| > %.3g\n", qs_ggml_type_name(type),
                    (unsigned long long)seed, (long long)i, x[i], y[i], bound);
        }
      }
      qs_test_checks++;
      qs_test_failures += bad != 0;
      CHECK_EQ_INT(qs_ggml_quantize_row_ref(type, y, NULL, n, q2), QS_OK);
      CHECK_EQ_INT(qs_ggml_dequant_row_ref(type, q2, n, y2), QS_OK);
      CHECK(memcmp(q, q2, (size_t)qs_ggml_row_size(type, n)) == 0);
    }
  }
}

// IQ4_NL: the search minimizes Σx²·(x - d·k[q])², and the trial mapping max to -127 (step A/127,
// largest half gap of the grid 12, 14 between 113 and 127) already bounds it: weighted RMS error
// <= 14·A/127, plus 127·|d - fp16(d)| for the stored scale.
static void test_iq4_nl_bound(void) {
  const int64_t n = 32 * NB;
  float x[32 * NB], y[32 * NB];
  struct qs_block_iq4_nl q[NB];
  int bad = 0;
  for (uint64_t seed = 1; seed <= 20; seed++) {
    make_row(x, n, seed * 104729);
    qs_ggml_quantize_row_ref(QS_GGML_IQ4_NL, x, NULL, n, q);
    qs_ggml_dequant_row_ref(QS_GGML_IQ4_NL, q, n, y);
    for (int b = 0; b < NB; b++) {
      double A = 0, num = 0, den = 0;
      for (int j = 0; j < 32; j++) {
        const double v = x[b * 32 + j], e = v - y[b * 32 + j];
        A = fmax(A, fabs(v));
        num += v * v * e * e;
        den += v * v;
      }
      const double d = fabs(qs_f16_to_f32(q[b].d)), bound = 14 * A / 127 + 127 * d * 0x1p-11 + 1e-6 * A;
      if (!(sqrt(num / den) <= bound) && !bad++)
        fprintf(stderr, "FAIL IQ4_NL seed %llu block %d: weighted rms %.3g > %.3g\n", (unsigned long long)seed, b,
                sqrt(num / den), bound);
    }
  }
  qs_test_checks++;
  qs_test_failures += bad != 0;
}

static void test_api(void) {
  float x[48] = {0};
  uint8_t out[64];
  static const int mine[] = {QS_GGML_F16, QS_GGML_BF16, QS_GGML_Q4_0, QS_GGML_Q4_1, QS_GGML_Q5_0,
                             QS_GGML_Q5_1, QS_GGML_Q8_0, QS_GGML_IQ4_NL, QS_GGML_MXFP4};
  for (size_t t = 0; t < sizeof mine / sizeof *mine; t++) CHECK(qs_ggml_can_quantize(mine[t]));
  CHECK(!qs_ggml_can_quantize(QS_GGML_Q8_1) && !qs_ggml_can_quantize(-1) && !qs_ggml_can_quantize(QS_GGML_TYPE_MAX));
  printf("expected error below (a partial block):\n");
  CHECK_EQ_INT(qs_ggml_quantize_row_ref(QS_GGML_Q4_0, x, NULL, 48, out), QS_ERR_ARG);
}

int main(void) {
  test_nearest_int();
  test_f16();
  test_bf16();
  test_q4_0();
  test_q4_1();
  test_q5_0();
  test_q5_1();
  test_q8_0();
  test_iq4_nl();
  test_mxfp4();
  test_roundtrip();
  test_iq4_nl_bound();
  test_api();
  return qs_test_finish("test_ggml_quants");
}
