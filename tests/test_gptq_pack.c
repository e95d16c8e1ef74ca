// test_gptq_pack.c — unit tests of the GPTQ v1 packing (formats/gptq.h, formats/gptq_pack.c) against
// FORMATS.md §2.2-2.3. Scales are passed as fp16 bits, as qs_gptq_pack takes them.
// Run: ctest --test-dir build -R test_gptq_pack --output-on-failure
// What is checked: hand-computed words for 2/3/4/8 bits, qweight and qzeros against a literal C
// port of AutoGPTQ qlinear_cuda.py pack() (including its 3-bit branch), exact round trips for all
// widths with sym/asym zeros and act-order g_idx, the symmetric qzeros constants, the wrap of a zero
// of 0, can_pack, and a bad g_idx reported as a format error. All comparisons are exact (integers).
#include <stdint.h>

#include "base/dtype.h"
#include "qs_test.h"
#include "formats/gptq.h"
#include "quant/grid.h"

static uint64_t rng_state = 0x0123456789ABCDEFull;
static uint32_t rng_u32(void) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(rng_state >> 33);
}

// AutoGPTQ pack(), literally: intweight is [K, N] (codes transposed), qweight [K/32*bits, N].
static void autogptq_pack_rows(const uint32_t *iw, int K, int N, int bits, uint32_t *qw) {
  memset(qw, 0, sizeof(uint32_t) * K / 32 * bits * N);
  for (int n = 0; n < N; n++) {
    int i = 0, row = 0;
#define IW(j) iw[(size_t)(j) * N + n]
#define QW(r) qw[(size_t)(r) * N + n]
    while (row < K / 32 * bits) {
      if (bits != 3) {
        for (int j = i; j < i + 32 / bits; j++) QW(row) |= IW(j) << (bits * (j - i));
        i += 32 / bits;
        row += 1;
      } else {
        for (int j = i; j < i + 10; j++) QW(row) |= IW(j) << (3 * (j - i));
        i += 10;
        QW(row) |= IW(i) << 30;
        row += 1;
        QW(row) |= (IW(i) >> 2) & 1;
        i += 1;
        for (int j = i; j < i + 10; j++) QW(row) |= IW(j) << (3 * (j - i) + 1);
        i += 10;
        QW(row) |= IW(i) << 31;
        row += 1;
        QW(row) |= (IW(i) >> 1) & 0x3;
        i += 1;
        for (int j = i; j < i + 10; j++) QW(row) |= IW(j) << (3 * (j - i) + 2);
        i += 10;
        row += 1;
      }
    }
#undef IW
#undef QW
  }
}

static void test_known_words(void) {
  // 4-bit, values 1..8 at k = 0..7: word = 0x87654321 (value j at bits 4j).
  uint8_t c4[8 * 8];
  for (int n = 0; n < 8; n++)
    for (int k = 0; k < 8; k++) c4[n * 8 + k] = (uint8_t)(k + 1);
  int32_t w4[8], z4[1];
  uint16_t s4[8] = {0}, s4o[8];
  uint8_t zz[8] = {8, 8, 8, 8, 8, 8, 8, 8};
  CHECK(qs_gptq_pack(c4, s4, zz, 4, 8, 8, 1, w4, z4, s4o, NULL) == QS_OK);
  CHECK((uint32_t)w4[0] == 0x87654321u && (uint32_t)w4[7] == 0x87654321u);
  CHECK((uint32_t)z4[0] == 0x77777777u);
  // 8-bit values 1..4 -> 0x04030201; 2-bit values 0..3 repeated -> 0xE4E4E4E4.
  uint8_t c8[4 * 4], c2[16 * 16], z8[4] = {128, 128, 128, 128}, z2[16];
  int32_t w8[4], q8[1], w2[16], q2[1];
  uint16_t s8[4] = {0}, s8o[4], s2[16] = {0}, s2o[16];
  for (int n = 0; n < 4; n++)
    for (int k = 0; k < 4; k++) c8[n * 4 + k] = (uint8_t)(k + 1);
  for (int n = 0; n < 16; n++) {
    z2[n] = 2;
    for (int k = 0; k < 16; k++) c2[n * 16 + k] = (uint8_t)(k % 4);
  }
  CHECK(qs_gptq_pack(c8, s8, z8, 8, 4, 4, 1, w8, q8, s8o, NULL) == QS_OK);
  CHECK((uint32_t)w8[0] == 0x04030201u && (uint32_t)q8[0] == 0x7F7F7F7Fu);
  CHECK(qs_gptq_pack(c2, s2, z2, 2, 16, 16, 1, w2, q2, s2o, NULL) == QS_OK);
  CHECK((uint32_t)w2[0] == 0xE4E4E4E4u && (uint32_t)q2[0] == 0x55555555u);
  // 3-bit, one column of 32 codes all 7 -> 96 ones: 3 words of 0xFFFFFFFF; codes k%8 -> compare to
  // the stream written bit by bit (field i at stream bits 3i..3i+2).
  enum { N3 = 32, K3 = 32 };
  uint8_t c3[N3 * K3], z3[N3];
  int32_t w3[3 * N3], q3[3];
  uint16_t s3[N3] = {0}, s3o[N3];
  for (int n = 0; n < N3; n++) {
    z3[n] = 4;
    for (int k = 0; k < K3; k++) c3[n * K3 + k] = (uint8_t)(n == 0 ? 7 : (k * 5 + n) % 8);
  }
  CHECK(qs_gptq_pack(c3, s3, z3, 3, N3, K3, 1, w3, q3, s3o, NULL) == QS_OK);
  CHECK((uint32_t)w3[0] == 0xFFFFFFFFu && (uint32_t)w3[N3] == 0xFFFFFFFFu && (uint32_t)w3[2 * N3] == 0xFFFFFFFFu);
  int bad = 0;
  for (int n = 1; n < N3; n++) {
    uint32_t want[3] = {0, 0, 0};
    for (int k = 0; k < K3; k++)
      for (int b = 0; b < 3; b++)
        if ((c3[n * K3 + k] >> b) & 1) want[(3 * k + b) / 32] |= 1u << ((3 * k + b) % 32);
    for (int w = 0; w < 3; w++) bad += (uint32_t)w3[w * N3 + n] != want[w];
  }
  CHECK_EQ_INT(bad, 0);
  // symmetric 3-bit zero 4 -> stored 3 = 0b011 in every field: stream "110" repeated from bit 0.
  CHECK((uint32_t)q3[0] == 0xDB6DB6DBu && (uint32_t)q3[1] == 0xB6DB6DB6u && (uint32_t)q3[2] == 0x6DB6DB6Du);
}

// Random codes/zeros/scales -> pack -> unpack, for every width; qweight equals AutoGPTQ's packer.
static void test_roundtrip(void) {
  enum { N = 64, K = 128, GS = 32, G = K / GS };
  const int widths[] = {2, 3, 4, 8};
  for (int wi = 0; wi < 4; wi++)
    for (int sym = 0; sym <= 1; sym++)
      for (int act = 0; act <= 1; act++) {
        int bits = widths[wi];
        uint32_t maxq = (1u << bits) - 1;
        uint8_t codes[N * K], zeros[N * G], codes2[N * K];
        uint16_t scales[N * G], scales_out[G * N];
        int32_t g_idx[K], zeros2[N * G], qw[K * 8 / 32 * N], qz[G * N * 8 / 32];
        uint32_t iw[K * N], ref[K * 8 / 32 * N];
        float W[N * K];
        int64_t wrapped = -1;
        for (int i = 0; i < N * K; i++) codes[i] = (uint8_t)(rng_u32() & maxq);
        for (int i = 0; i < N * G; i++) {
          zeros[i] = sym ? (uint8_t)((maxq + 1) / 2) : (uint8_t)(1 + rng_u32() % maxq); // 1..maxq
          scales[i] = qs_f32_to_f16((float)(rng_u32() % 1000 + 1) * 1e-4f);
        }
        struct qs_grid grid = qs_grid_default();
        grid.bits = bits, grid.sym = sym, grid.group_size = GS;
        qs_grid_g_idx_contiguous(&grid, K, g_idx); // k / GS
        if (act) // an act-order grouping: g_idx a permutation of the plain one
          for (int k = K - 1; k > 0; k--) {
            int j = (int)(rng_u32() % (uint32_t)(k + 1)), t = g_idx[k];
            g_idx[k] = g_idx[j], g_idx[j] = t;
          }
        CHECK(qs_gptq_pack(codes, scales, zeros, bits, N, K, G, qw, qz, scales_out, &wrapped) == QS_OK);
        CHECK_EQ_INT(wrapped, 0);
        for (int k = 0; k < K; k++)
          for (int n = 0; n < N; n++) iw[k * N + n] = codes[n * K + k];
        autogptq_pack_rows(iw, K, N, bits, ref);
        CHECK(!memcmp(qw, ref, sizeof(uint32_t) * K * bits / 32 * N));
        CHECK(qs_gptq_unpack_codes(qw, bits, N, K, codes2) == QS_OK);
        CHECK(qs_gptq_unpack_zeros(qz, bits, N, G, zeros2) == QS_OK);
        CHECK(qs_gptq_unpack_dequant(qw, qz, scales_out, g_idx, bits, N, K, G, W) == QS_OK);
        int bad = 0;
        for (int i = 0; i < N * K; i++) bad += codes2[i] != codes[i];
        for (int n = 0; n < N; n++)
          for (int g = 0; g < G; g++) bad += zeros2[n * G + g] != zeros[n * G + g] || scales_out[g * N + n] != scales[n * G + g];
        for (int n = 0; n < N; n++)
          for (int k = 0; k < K; k++) {
            int g = g_idx[k];
            bad += W[n * K + k] != qs_f16_to_f32(scales[n * G + g]) * ((float)codes[n * K + k] - zeros[n * G + g]);
          }
        CHECK_EQ_INT(bad, 0);
        if (sym && bits == 4) {
          int nz = 0;
          for (int i = 0; i < G * N * bits / 32; i++) nz += (uint32_t)qz[i] != 0x77777777u;
          CHECK_EQ_INT(nz, 0);
        }
        if (sym && bits == 8) {
          int nz = 0;
          for (int i = 0; i < G * N * bits / 32; i++) nz += (uint32_t)qz[i] != 0x7F7F7F7Fu;
          CHECK_EQ_INT(nz, 0);
        }
      }
}

// A zero of 0 is stored as (0 - 1) & mask = mask in its own field (neighbours intact) and reads back
// as 2^bits, as every v1 reader (stored + 1) sees it.
static void test_zero_wrap(void) {
  enum { N = 8, K = 8 };
  uint8_t codes[N * K] = {0}, zeros[N] = {0, 5, 0, 5, 5, 5, 5, 5};
  uint16_t scales[N] = {0}, so[N];
  int32_t qw[K * 4 / 32 * N], qz[1], z2[N];
  int64_t wrapped = 0;
  CHECK(qs_gptq_pack(codes, scales, zeros, 4, N, K, 1, qw, qz, so, &wrapped) == QS_OK);
  CHECK_EQ_INT(wrapped, 2);
  CHECK((uint32_t)qz[0] == 0x44444F4Fu);
  CHECK(qs_gptq_unpack_zeros(qz, 4, N, 1, z2) == QS_OK);
  CHECK(z2[0] == 16 && z2[1] == 5 && z2[2] == 16);
  uint8_t big[N] = {16, 1, 1, 1, 1, 1, 1, 1}; // does not fit 4 bits
  CHECK(qs_gptq_pack(codes, scales, big, 4, N, K, 1, qw, qz, so, NULL) == QS_ERR_ARG);
}

static void test_can_pack_and_errors(void) {
  CHECK(qs_gptq_can_pack(64, 128, 4, 128));
  CHECK(!qs_gptq_can_pack(64, 100, 4, 32)); // 100 inputs are not whole 4-bit words
  CHECK(qs_gptq_can_pack(64, 100, 8, 32));  // ... but are whole 8-bit words (ragged group ok)
  CHECK(qs_gptq_can_pack(64, 96, 3, -1));
  CHECK(!qs_gptq_can_pack(64, 48, 3, -1)); // 3-bit needs K % 32
  CHECK(!qs_gptq_can_pack(16, 64, 3, -1)); // ... and N % 32 for qzeros
  CHECK(!qs_gptq_can_pack(8, 64, 2, -1));  // 8 2-bit zeros are half a word
  CHECK(!qs_gptq_can_pack(64, 128, 5, -1));
  CHECK(!qs_gptq_can_pack(64, 128, 4, 0));
  enum { N = 8, K = 8 };
  int32_t qw[N] = {0}, qz[2] = {0}, g_idx[K] = {0, 0, 0, 0, 1, 1, 1, 2}; // 2 is out of [0, 2)
  uint16_t sc[2 * N] = {0};
  float W[N * K];
  CHECK(qs_gptq_unpack_dequant(qw, qz, sc, g_idx, 4, N, K, 2, W) == QS_ERR_FORMAT);
  CHECK(qs_gptq_unpack_dequant(qw, qz, sc, g_idx, 4, N, 12, 2, W) == QS_ERR_UNSUPPORTED);
}

int main(void) {
  test_known_words();
  test_roundtrip();
  test_zero_wrap();
  test_can_pack_and_errors();
  return qs_test_finish("test_gptq_pack");
}
