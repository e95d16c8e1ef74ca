// test_ggml_kquants.c — the k-quant references (src/quant/ggml_kquants.c: Q2_K..Q6_K) on inputs whose
// bytes follow from the spec (FORMATS.md §5.6–5.7) by hand, their layouts against a decoder written
// here from the spec, and an error bound per type. Byte identity with llama.cpp itself is
// tests/py/ggml_oracle.py. Run: ctest --test-dir build -R kquant
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/dtype.h"
#include "qs_test.h"
#include "quant/ggml_blocks.h"
#include "quant/grid_ggml.h"

#define QK QS_QK_K

struct ktype {
  const char *name;
  int type, bytes;
  qs_ggml_quantize_fn quantize;
  qs_ggml_dequant_fn dequant;
};
static const struct ktype k_types[] = {
    {"Q2_K", QS_GGML_Q2_K, 84, qs_ggml_quantize_q2_K_ref, qs_ggml_dequant_q2_K_ref},
    {"Q3_K", QS_GGML_Q3_K, 110, qs_ggml_quantize_q3_K_ref, qs_ggml_dequant_q3_K_ref},
    {"Q4_K", QS_GGML_Q4_K, 144, qs_ggml_quantize_q4_K_ref, qs_ggml_dequant_q4_K_ref},
    {"Q5_K", QS_GGML_Q5_K, 176, qs_ggml_quantize_q5_K_ref, qs_ggml_dequant_q5_K_ref},
    {"Q6_K", QS_GGML_Q6_K, 210, qs_ggml_quantize_q6_K_ref, qs_ggml_dequant_q6_K_ref},
};
#define N_TYPES ((int)(sizeof k_types / sizeof k_types[0]))

// splitmix64 → uniform (0,1) → Box–Muller: a fixed pseudo-random stream.
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double rng_uniform(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return ((double)((z ^ (z >> 31)) >> 11) + 0.5) / 9007199254740992.0;
}
static float rng_normal(void) {
  return (float)(sqrt(-2 * log(rng_uniform())) * cos(6.283185307179586 * rng_uniform()));
}

static int first_diff(const void *a, const void *b, int n) {
  for (int i = 0; i < n; i++)
    if (((const uint8_t *)a)[i] != ((const uint8_t *)b)[i]) return i;
  return -1;
}

#define CHECK_BYTES(got, want, n, what)                                                                   \
  do {                                                                                                    \
    int at_ = first_diff(got, want, n);                                                                   \
    if (at_ >= 0)                                                                                         \
      fprintf(stderr, "  %s: byte %d is 0x%02x, want 0x%02x\n", what, at_, ((const uint8_t *)(got))[at_], \
              ((const uint8_t *)(want))[at_]);                                                            \
    CHECK(at_ < 0);                                                                                       \
  } while (0)

static void check_exact(const float *y, const float *x, int n, const char *what) {
  int bad = 0;
  for (int i = 0; i < n; i++)
    if (y[i] != x[i] && bad++ < 3) fprintf(stderr, "  %s: [%d] dequant %g, want %g\n", what, i, y[i], x[i]);
  CHECK(bad == 0);
}

// ---- all-zero rows ---------------------------------------------------------------------------------
// Every fit returns scale 0 (and min -0.0); max scale 0 → d = dmin = 0, all scale codes 0 (Q6_K: the
// block is memset; Q3_K's importance path stores Ls = 0, a code that decodes to -32, times d = 0), and
// the zero-group codes are 0: every byte is 0 on both paths.
static void test_zeros(void) {
  static float x[2 * QK], ones[2 * QK];
  static uint8_t out[2 * 210], zero[2 * 210];
  for (int i = 0; i < 2 * QK; i++) ones[i] = 1;
  for (int t = 0; t < N_TYPES; t++)
    for (int p = 0; p < 2; p++) {
      memset(out, 0xAB, sizeof out);
      k_types[t].quantize(x, p ? ones : NULL, 2 * QK, out);
      CHECK_BYTES(out, zero, 2 * k_types[t].bytes, k_types[t].name);
    }
}

// ---- one outlier: x[0] = 1, the rest 0 ---------------------------------------------------------------
static void test_outlier(void) {
  static float x[QK], ones[QK], y[QK];
  x[0] = 1;
  for (int i = 0; i < QK; i++) ones[i] = 1;

  // Q6_K: sub-block 0 fits l(1) = -32 (iscale -32/max), scale Σx³l/Σx²l² = -1/32; the stretched grids
  // give l = -31 at best, (31)² = 961·1: not strictly better. Weights x² (no imp) and 1 (imp = ones)
  // make the same sums. max_scale -1/32 → iscale 4096, d = 2^-12 (0x0C00), scales[0] = -128 (0x80).
  // Requant: x/(2^-12·-128) = -32 → L 0; its 15 zeros → L 32, whose high bits (2) sit in qh[1..15]
  // bits 0..1; the 15 all-zero sub-blocks keep the fit's L = 0; every low nibble is 0.
  struct qs_block_q6_K want6 = {.d = 0x0C00};
  want6.scales[0] = -128;
  for (int l = 1; l < 16; l++) want6.qh[l] = 0x02;
  for (int p = 0; p < 2; p++) {
    struct qs_block_q6_K got;
    qs_ggml_quantize_q6_K_ref(x, p ? ones : NULL, QK, &got);
    CHECK_BYTES(&got, &want6, 210, p ? "Q6_K outlier, imp" : "Q6_K outlier");
    qs_ggml_dequant_q6_K_ref(&got, QK, y);
    check_exact(y, x, QK, "Q6_K outlier"); // 2^-12·-128·(0-32) = 1, the rest ±0
  }

  // Q3_K (no imp): make_q3_quants gives l(1) = -4, scale -4/16 = -1/4; no move (slx <= 0 everywhere).
  // iscale = -32/-0.25 = 128, d = 2^-7 (0x2000). Codes: sub-block 0 → -32+32 = 0, the zero ones → 32
  // (low nibble 0, high bits 2 in byte 8 + j%4 at 2·(j/4): 0xA8 for j = 4, 8, 12; 0xAA for the others).
  // Requant: 1/(2^-7·-32) = -4 → L 0; zeros → 4: the high bit of elements 1..15 (hmask[1..15] bit 0).
  struct qs_block_q3_K want3 = {.d = 0x2000};
  want3.scales[8] = 0xA8;
  want3.scales[9] = want3.scales[10] = want3.scales[11] = 0xAA;
  for (int l = 1; l < 16; l++) want3.hmask[l] = 0x01;
  struct qs_block_q3_K got3;
  qs_ggml_quantize_q3_K_ref(x, NULL, QK, &got3);
  CHECK_BYTES(&got3, &want3, 110, "Q3_K outlier");
  qs_ggml_dequant_q3_K_ref(&got3, QK, y);
  check_exact(y, x, QK, "Q3_K outlier");

  // Q2_K (no imp): sub-block 0 on [0, 1]: iscale 3, L(1) = 3, scale fl(1/3), and fl(1/3)·3 rounds to
  // 1: zero error, no candidate wins. max_scale fl(1/3) → code round(15) = 15, d = fp16(fl(1/3)/15)
  // = 0x25B0 (1.421875·2^-6); no min (dmin 0). Requant: 1/(15·d) = 3.0005 → 3 in qs[0] bits 0..1.
  struct qs_block_q2_K want2 = {.d = 0x25B0};
  want2.scales[0] = 0x0F;
  want2.qs[0] = 0x03;
  struct qs_block_q2_K got2;
  qs_ggml_quantize_q2_K_ref(x, NULL, QK, &got2);
  CHECK_BYTES(&got2, &want2, 84, "Q2_K outlier");

  // Q4_K (no imp): sub-block 0 on [0, 1]: iscale 15, L(1) = 15, scale fl(1/15), fl(1/15)·15 rounds to
  // 1: zero error. Code round(63/fl(1/15)·fl(1/15)) = 63; d = fp16(fl(1/15)/63) = 0x1456
  // (1.083984375·2^-10); mins all 0. Requant: 1/(63·d) = 14.995 → 15 in qs[0]'s low nibble.
  struct qs_block_q4_K want4 = {.d = 0x1456};
  want4.scales[0] = 63;
  want4.qs[0] = 0x0F;
  struct qs_block_q4_K got4;
  qs_ggml_quantize_q4_K_ref(x, NULL, QK, &got4);
  CHECK_BYTES(&got4, &want4, 144, "Q4_K outlier");
}

// ---- the spec's packing (FORMATS.md §5.6–5.7), written here in the spec's own loop form ------------
// L: one code per element; sc/m: the sub-block scale and min codes; d/dmin: fp16 bits.
static void spec_pack_2bit(const uint8_t *L, uint8_t *qs) {
  for (int h = 0; h < 2; h++)
    for (int l = 0; l < 32; l++)
      qs[32 * h + l] =
          (uint8_t)(L[128 * h + l] | L[128 * h + l + 32] << 2 | L[128 * h + l + 64] << 4 | L[128 * h + l + 96] << 6);
}

static void spec_pack_q2(const uint8_t *L, const int *sc, const int *m, uint16_t d, uint16_t dmin,
                         struct qs_block_q2_K *b) {
  for (int j = 0; j < 16; j++) b->scales[j] = (uint8_t)(sc[j] | m[j] << 4);
  spec_pack_2bit(L, b->qs);
  b->d = d;
  b->dmin = dmin;
}

// L: 0..7 (q + 4); c: 6-bit codes (scale + 32).
static void spec_pack_q3(const uint8_t *L, const int *c, uint16_t d, struct qs_block_q3_K *b) {
  uint8_t lo[QK];
  memset(b, 0, sizeof *b);
  for (int e = 0; e < QK; e++) {
    if (L[e] > 3) b->hmask[e % 32] |= (uint8_t)(1 << (e / 32));
    lo[e] = (uint8_t)(L[e] & 3);
  }
  spec_pack_2bit(lo, b->qs);
  for (int j = 0; j < 16; j++) {
    if (j < 8) b->scales[j] = (uint8_t)(c[j] & 15);
    else b->scales[j - 8] |= (uint8_t)((c[j] & 15) << 4);
    b->scales[8 + j % 4] |= (uint8_t)((c[j] >> 4) << (2 * (j / 4)));
  }
  b->d = d;
}

static void spec_pack_k4_scales(const int *sc, const int *m, uint8_t *q) {
  memset(q, 0, 12);
  for (int j = 0; j < 8; j++) {
    if (j < 4) {
      q[j] = (uint8_t)sc[j];
      q[j + 4] = (uint8_t)m[j];
    } else {
      q[j + 4] = (uint8_t)((sc[j] & 15) | (m[j] & 15) << 4);
      q[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
      q[j] |= (uint8_t)((m[j] >> 4) << 6);
    }
  }
}

static void spec_pack_q4(const uint8_t *L, const int *sc, const int *m, uint16_t d, uint16_t dmin,
                         struct qs_block_q4_K *b) {
  b->d = d;
  b->dmin = dmin;
  spec_pack_k4_scales(sc, m, b->scales);
  for (int c = 0; c < 4; c++)
    for (int l = 0; l < 32; l++) b->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
}

static void spec_pack_q5(const uint8_t *L, const int *sc, const int *m, uint16_t d, uint16_t dmin,
                         struct qs_block_q5_K *b) {
  b->d = d;
  b->dmin = dmin;
  spec_pack_k4_scales(sc, m, b->scales);
  memset(b->qh, 0, sizeof b->qh);
  for (int c = 0; c < 4; c++)
    for (int l = 0; l < 32; l++) {
      b->qs[32 * c + l] = (uint8_t)((L[64 * c + l] & 15) | (L[64 * c + 32 + l] & 15) << 4);
      b->qh[l] |= (uint8_t)((L[64 * c + l] >> 4) << (2 * c) | (L[64 * c + 32 + l] >> 4) << (2 * c + 1));
    }
}

// L: 0..63 (q + 32); sc: int8 scales.
static void spec_pack_q6(const uint8_t *L, const int *sc, uint16_t d, struct qs_block_q6_K *b) {
  for (int h = 0; h < 2; h++)
    for (int l = 0; l < 32; l++) {
      const uint8_t *Lh = L + 128 * h;
      b->ql[64 * h + l] = (uint8_t)((Lh[l] & 15) | (Lh[l + 64] & 15) << 4);
      b->ql[64 * h + 32 + l] = (uint8_t)((Lh[l + 32] & 15) | (Lh[l + 96] & 15) << 4);
      b->qh[32 * h + l] =
          (uint8_t)(Lh[l] >> 4 | (Lh[l + 32] >> 4) << 2 | (Lh[l + 64] >> 4) << 4 | (Lh[l + 96] >> 4) << 6);
    }
  for (int j = 0; j < 16; j++) b->scales[j] = (int8_t)sc[j];
  b->d = d;
}

// ---- ramps with exact scales: every scale and min code 0..63 (Q2_K: 0..15, Q6_K: -128..127) ------
// Sub-block values x = s·l - a (affine) or s·l (symmetric) with integer s, a and the codes l. The fit
// recovers (s, a) up to float noise (1/(1/s) is not always s in float, so a candidate grid with the
// same codes may win by a rounding); the stored codes are nearest_int of near-integers, so exactly s
// and a once each block's largest scale and largest min (or largest |scale|) are the top code: then
// d = dmin = fp16(1) (0x3C00; -1 = 0xBC00 for the symmetric types, whose top scale maps to the most
// negative code), the requantized codes are exactly l, and dequant gives x back exactly. Weights do
// not enter (an exact fit wins under any positive weights), so the importance path writes the same
// bytes: it is run with random positive importance.
#define K4_BLOCKS 9
static int k4_scale(int b, int j) { return j < 7 ? 7 * b + j : 63; } // blocks 0..8: 0..62, and 63 each
static int k4_min(int b, int j) { return k4_scale(b, 7 - j); }       // reversed: 63 in each block too

static void test_ramps_k45(const float *imp) {
  static float x[K4_BLOCKS * QK], y[K4_BLOCKS * QK];
  for (int nmax = 15; nmax <= 31; nmax += 16) {
    const char *what = nmax == 15 ? (imp ? "Q4_K ramps, imp" : "Q4_K ramps") : (imp ? "Q5_K ramps, imp" : "Q5_K ramps");
    for (int b = 0; b < K4_BLOCKS; b++)
      for (int e = 0; e < QK; e++) x[QK * b + e] = (float)(k4_scale(b, e / 32) * (e % (nmax + 1)) - k4_min(b, e / 32));
    static uint8_t got[K4_BLOCKS * 176];
    const struct ktype *kt = &k_types[nmax == 15 ? 2 : 3];
    kt->quantize(x, imp, K4_BLOCKS * QK, got);
    for (int b = 0; b < K4_BLOCKS; b++) {
      int sc[8], m[8];
      uint8_t L[QK];
      for (int j = 0; j < 8; j++) sc[j] = k4_scale(b, j), m[j] = k4_min(b, j);
      for (int e = 0; e < QK; e++) L[e] = (uint8_t)(sc[e / 32] ? e % (nmax + 1) : 0); // scale 0: x = -a, codes 0
      union { struct qs_block_q4_K q4; struct qs_block_q5_K q5; } want;
      if (nmax == 15) spec_pack_q4(L, sc, m, 0x3C00, 0x3C00, &want.q4);
      else spec_pack_q5(L, sc, m, 0x3C00, 0x3C00, &want.q5);
      CHECK_BYTES(got + kt->bytes * b, &want, kt->bytes, what);
    }
    kt->dequant(got, K4_BLOCKS * QK, y);
    check_exact(y, x, K4_BLOCKS * QK, what);
  }
}

// Q2_K: one block, scales 0..15 and mins 15..0, codes l = i%4.
static void test_ramps_q2(const float *imp) {
  float x[QK], y[QK];
  int sc[16], m[16];
  uint8_t L[QK];
  for (int j = 0; j < 16; j++) sc[j] = j, m[j] = 15 - j;
  for (int e = 0; e < QK; e++) {
    x[e] = (float)(sc[e / 16] * (e % 4) - m[e / 16]);
    L[e] = (uint8_t)(sc[e / 16] ? e % 4 : 0);
  }
  struct qs_block_q2_K got, want;
  qs_ggml_quantize_q2_K_ref(x, imp, QK, &got);
  spec_pack_q2(L, sc, m, 0x3C00, 0x3C00, &want);
  CHECK_BYTES(&got, &want, 84, imp ? "Q2_K ramps, imp" : "Q2_K ramps");
  qs_ggml_dequant_q2_K_ref(&got, QK, y);
  check_exact(y, x, QK, "Q2_K ramps");
}

// Q3_K: 5 blocks; sub-block 0 has s = 32 (the largest |scale| → code 0, d = -1), the others cycle
// through -31..31 (code 32 - s); codes l = -4 + (3i)%8 (every value, -4 first so it sets the grid).
// An all-zero sub-block (s = 0) keeps the fit's L = 0 (its scale code 32 decodes to 0).
#define Q3_BLOCKS 5
static int q3_scale(int b, int j) { return j ? -31 + (15 * b + j - 1) % 63 : 32; }

static void test_ramps_q3(const float *imp) {
  static float x[Q3_BLOCKS * QK], y[Q3_BLOCKS * QK];
  struct qs_block_q3_K got[Q3_BLOCKS], want;
  for (int b = 0; b < Q3_BLOCKS; b++)
    for (int e = 0; e < QK; e++) x[QK * b + e] = (float)(q3_scale(b, e / 16) * (-4 + 3 * (e % 16) % 8));
  qs_ggml_quantize_q3_K_ref(x, imp, Q3_BLOCKS * QK, got);
  for (int b = 0; b < Q3_BLOCKS; b++) {
    int c[16];
    uint8_t L[QK];
    for (int j = 0; j < 16; j++) c[j] = 32 - q3_scale(b, j);
    for (int e = 0; e < QK; e++) L[e] = (uint8_t)(q3_scale(b, e / 16) ? 3 * (e % 16) % 8 : 0);
    spec_pack_q3(L, c, 0xBC00, &want);
    CHECK_BYTES(&got[b], &want, 110, imp ? "Q3_K ramps, imp" : "Q3_K ramps");
  }
  qs_ggml_dequant_q3_K_ref(got, Q3_BLOCKS * QK, y);
  check_exact(y, x, Q3_BLOCKS * QK, "Q3_K ramps");
}

// Q6_K: 17 blocks; sub-block 0 has s = 128 (→ scale -128, d = -1), the others cycle through
// -127..127 (scale -s): all 256 int8 scales. Codes l = -32 + (i·m)%64 with m odd, varying per
// sub-block (-32 first; the odd codes keep the stretched grids from a proportional tie).
#define Q6_BLOCKS 17
static int q6_scale(int b, int j) { return j ? -127 + (15 * b + j - 1) % 255 : 128; }
static int q6_code(int b, int e) { return (e % 16) * (2 * ((16 * b + e / 16) % 32) + 1) % 64; } // l + 32

static void test_ramps_q6(const float *imp) {
  static float x[Q6_BLOCKS * QK], y[Q6_BLOCKS * QK];
  static struct qs_block_q6_K got[Q6_BLOCKS];
  for (int b = 0; b < Q6_BLOCKS; b++)
    for (int e = 0; e < QK; e++) x[QK * b + e] = (float)(q6_scale(b, e / 16) * (q6_code(b, e) - 32));
  qs_ggml_quantize_q6_K_ref(x, imp, Q6_BLOCKS * QK, got);
  for (int b = 0; b < Q6_BLOCKS; b++) {
    int sc[16];
    uint8_t L[QK];
    struct qs_block_q6_K want;
    for (int j = 0; j < 16; j++) sc[j] = -q6_scale(b, j);
    for (int e = 0; e < QK; e++) L[e] = (uint8_t)(q6_scale(b, e / 16) ? q6_code(b, e) : 0);
    spec_pack_q6(L, sc, 0xBC00, &want);
    CHECK_BYTES(&got[b], &want, 210, imp ? "Q6_K ramps, imp" : "Q6_K ramps");
  }
  qs_ggml_dequant_q6_K_ref(got, Q6_BLOCKS * QK, y);
  check_exact(y, x, Q6_BLOCKS * QK, "Q6_K ramps");
}

static void test_ramps(void) {
  static float imp[Q6_BLOCKS * QK];
  for (int i = 0; i < Q6_BLOCKS * QK; i++) imp[i] = (float)(0.5 + 1.5 * rng_uniform());
  for (int p = 0; p < 2; p++) {
    test_ramps_k45(p ? imp : NULL);
    test_ramps_q2(p ? imp : NULL);
    test_ramps_q3(p ? imp : NULL);
    test_ramps_q6(p ? imp : NULL);
  }
}

// ---- pack/dequant round trip: random codes packed by the spec, decoded by the reference ------------
// The expected value is the spec's formula in the reference's float order (d·sc first), so exact.
static uint16_t rand_f16(void) { return qs_f32_to_f16((float)(0.001 + rng_uniform())); }
static int rand_int(int n) { return (int)(rng_uniform() * n); }

static void test_roundtrip(void) {
  for (int rep = 0; rep < 20; rep++) {
    uint8_t L[QK];
    int sc[16], m[16];
    uint16_t d = rand_f16(), dmin = rand_f16();
    float fd = qs_f16_to_f32(d), fm = qs_f16_to_f32(dmin), y[QK], want[QK];
    union {
      struct qs_block_q2_K q2;
      struct qs_block_q3_K q3;
      struct qs_block_q4_K q4;
      struct qs_block_q5_K q5;
      struct qs_block_q6_K q6;
    } blk;
    for (int t = 0; t < N_TYPES; t++) {
      int nq = (int[]){4, 8, 16, 32, 64}[t], nsc = t == 0 ? 16 : t == 4 ? 256 : 64; // codes, scale codes
      for (int e = 0; e < QK; e++) L[e] = (uint8_t)rand_int(nq);
      for (int j = 0; j < 16; j++) sc[j] = rand_int(nsc) - (t == 4 ? 128 : 0), m[j] = rand_int(nsc);
      for (int e = 0; e < QK; e++) {
        int j16 = e / 16, j32 = e / 32;
        switch (t) {
        case 0: want[e] = fd * sc[j16] * L[e] - fm * m[j16]; break;
        case 1: want[e] = fd * (sc[j16] - 32) * (L[e] - 4); break;
        case 2: case 3: want[e] = fd * sc[j32] * L[e] - fm * m[j32]; break;
        default: want[e] = fd * sc[j16] * (L[e] - 32); break;
        }
      }
      switch (t) {
      case 0: spec_pack_q2(L, sc, m, d, dmin, &blk.q2); break;
      case 1: spec_pack_q3(L, sc, d, &blk.q3); break;
      case 2: spec_pack_q4(L, sc, m, d, dmin, &blk.q4); break;
      case 3: spec_pack_q5(L, sc, m, d, dmin, &blk.q5); break;
      default: spec_pack_q6(L, sc, d, &blk.q6); break;
      }
      k_types[t].dequant(&blk, QK, y);
      check_exact(y, want, QK, k_types[t].name);
    }
  }
}

// ---- scale equivariance ---------------------------------------------------------------------------
// Every step is a ratio, a comparison or a product that a power of two passes through exactly (sqrt of
// 4^k·v is 2^k·sqrt(v)), so x·2^k gives the same codes and scale bytes with d, dmin times 2^k (while
// fp16 stays normal), and imp·2^k gives the same bytes. Blind to the order of operations (scaling
// commutes with it), it checks on random rows that nothing depends on magnitudes but through ratios.
static void test_equivariance(void) {
  enum { N = 8 * QK };
  static float x[N], xs[N], imp[N], imps[N];
  static uint8_t a[8 * 210], b[8 * 210];
  for (int i = 0; i < N; i++) {
    x[i] = rng_normal();
    xs[i] = x[i] * 16;
    imp[i] = (float)exp(2 * rng_normal());
    imps[i] = imp[i] * 0.125f;
  }
  for (int t = 0; t < N_TYPES; t++)
    for (int p = 0; p < 2; p++) {
      const struct ktype *kt = &k_types[t];
      kt->quantize(x, p ? imp : NULL, N, a);
      kt->quantize(xs, p ? imp : NULL, N, b);
      // d (and dmin) offsets: Q2_K 80, 82; Q3_K 108; Q4_K/Q5_K 0, 2; Q6_K 208.
      int off[2] = {(int[]){80, 108, 0, 0, 208}[t], (int[]){82, -1, 2, 2, -1}[t]};
      for (int blk = 0; blk < 8; blk++)
        for (int f = 0; f < 2 && off[f] >= 0; f++) {
          uint8_t *pa = a + kt->bytes * blk + off[f], *pb = b + kt->bytes * blk + off[f];
          uint16_t ha, hb;
          memcpy(&ha, pa, 2);
          memcpy(&hb, pb, 2);
          CHECK(qs_f16_to_f32(hb) == qs_f16_to_f32(ha) * 16);
          memcpy(pb, pa, 2); // the rest must match as is
        }
      CHECK_BYTES(b, a, 8 * kt->bytes, kt->name);
      if (p) {
        kt->quantize(x, imps, N, b);
        CHECK_BYTES(b, a, 8 * kt->bytes, kt->name);
      }
    }
}

// ---- error bound per type -------------------------------------------------------------------------
// A grid of step D rounds each value by at most D/2, uniformly on smooth data: mean square D²/12. The
// bit width fixes D per sub-block from its own values: affine types (nmax = 2^bits - 1) span
// [min(x,0), max(x)], D = span/nmax; symmetric ones put the largest |x| on the code -2^(bits-1),
// D = amax/2^(bits-1). So the expected error is E = Σ_sub n·D²/12 and the test bounds the measured
// Σ (x - x̂)² by slack·E. The slack covers what rounding to the initial grid does not model: the
// stored scale/min codes (4-bit for Q2_K: a sub-block's step off by up to 1/(2·code), and a rounded
// min that clips a grid end), and the searches that trade a clipped extreme for a finer step.
// With importance (log-normal, σ = 1: weights over ~2 decades) the error is measured weighted,
// Σ imp·(x - x̂)² against Σ imp·n·D²/12, since that is what the importance path trades for.
struct kbound {
  int sub, nmax, symmetric;
  double slack;
};
static const struct kbound k_bounds[N_TYPES] = {
    {16, 3, 0, 1.5},  // Q2_K: 2-bit affine, 4-bit scales and mins
    {16, 4, 1, 1.25}, // Q3_K: 3-bit symmetric (D = amax/4), 6-bit scales
    {32, 15, 0, 1.25}, // Q4_K: 4-bit affine, 6-bit scales and mins
    {32, 31, 0, 1.25}, // Q5_K: 5-bit affine
    {16, 32, 1, 1.25}, // Q6_K: 6-bit symmetric (D = amax/32), 8-bit scales
};

static void test_error_bound(void) {
  enum { N = 64 * QK };
  static float x[N], y[N], imp[N];
  static uint8_t q[64 * 210];
  for (int i = 0; i < N; i++) x[i] = rng_normal(), imp[i] = (float)exp(rng_normal());
  for (int t = 0; t < N_TYPES; t++)
    for (int p = 0; p < 2; p++) {
      const struct kbound *kb = &k_bounds[t];
      k_types[t].quantize(x, p ? imp : NULL, N, q);
      k_types[t].dequant(q, N, y);
      double err = 0, expect = 0;
      for (int s = 0; s < N; s += kb->sub) {
        float lo = 0, hi = x[s], amax = 0;
        for (int i = s; i < s + kb->sub; i++) {
          lo = fminf(lo, x[i]);
          hi = fmaxf(hi, x[i]);
          amax = fmaxf(amax, fabsf(x[i]));
        }
        double D = kb->symmetric ? amax / (kb->nmax) : (hi - lo) / kb->nmax;
        for (int i = s; i < s + kb->sub; i++) {
          double w = p ? imp[i] : 1;
          err += w * (x[i] - y[i]) * (x[i] - y[i]);
          expect += w * D * D / 12;
        }
      }
      printf("  %s%s: error / (step²/12) = %.3f (bound %.2f)\n", k_types[t].name, p ? " imp" : "", err / expect,
             kb->slack);
      CHECK(err <= kb->slack * expect);
    }
}

// ---- the table of grid_ggml.c --------------------------------------------------------------------
static void test_table(void) {
  static float x[2 * QK];
  static uint8_t a[2 * 210], b[2 * 210];
  for (int i = 0; i < 2 * QK; i++) x[i] = rng_normal();
  for (int t = 0; t < N_TYPES; t++) {
    const struct ktype *kt = &k_types[t];
    CHECK(qs_ggml_can_quantize(kt->type));
    CHECK_EQ_INT(qs_ggml_row_size(kt->type, 2 * QK), 2 * kt->bytes);
    CHECK_EQ_INT(qs_ggml_quantize_row_ref(kt->type, x, NULL, 2 * QK, a), QS_OK);
    kt->quantize(x, NULL, 2 * QK, b);
    CHECK_BYTES(a, b, 2 * kt->bytes, kt->name);
    CHECK_EQ_INT(qs_ggml_quantize_row_ref(kt->type, x, NULL, QK + 32, a), QS_ERR_ARG); // not whole 256-blocks
  }
}

int main(void) {
  test_zeros();
  test_outlier();
  test_ramps();
  test_roundtrip();
  test_equivariance();
  test_error_bound();
  test_table();
  return qs_test_finish("test_ggml_kquants");
}
