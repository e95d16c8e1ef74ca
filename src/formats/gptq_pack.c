// gptq_pack.c — GPTQ v1 checkpoint tensors (FORMATS.md §2.1-2.3): codes and zero points packed
// into int32 words as little-endian bit streams, and the inverse used when loading a checkpoint.
// Contract: gptq.h.
//
// One rule covers every width (AutoGPTQ qlinear_cuda.py pack(), GPTQModel pack_original()): field i
// of a stream occupies stream bits [b*i, b*i + b), stream bit s being bit s%32 of word s/32. For
// b = 2, 4, 8 that is "value j of word r at bits b*j" (32/b whole fields per word); for b = 3 it is
// the 96-bit scheme: 32 fields in 3 words, fields 10 and 21 split across a word boundary.
#include "formats/gptq.h"

#include <stdlib.h>
#include <string.h>

#include "base/bits.h"
#include "base/dtype.h"
#include "base/parallel.h"

// Field i of the stream whose word w lives at words[w * stride] (stride lets a stream run down a
// column of a row-major [words, N] matrix). The target bits must be zero before a put.
static inline void qs_bits_put(uint32_t *words, int64_t stride, int64_t i, int bits, uint32_t v) {
  int64_t s = (int64_t)bits * i, w = s >> 5;
  int off = (int)(s & 31);
  words[w * stride] |= v << off;
  if (off + bits > 32) words[(w + 1) * stride] |= v >> (32 - off); // the straddling high part
}

static inline uint32_t qs_bits_get(const uint32_t *words, int64_t stride, int64_t i, int bits) {
  int64_t s = (int64_t)bits * i, w = s >> 5;
  int off = (int)(s & 31);
  uint32_t v = words[w * stride] >> off;
  if (off + bits > 32) v |= words[(w + 1) * stride] << (32 - off);
  return v & ((1u << bits) - 1u);
}

int qs_gptq_can_pack(int64_t N, int64_t K, int bits, int group_size) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) return 0;
  if (group_size == 0 || group_size < -1 || N <= 0 || K <= 0) return 0;
  // Whole words along K (qweight) and along N (qzeros): for 3 bits that means multiples of 32.
  return (K * bits) % 32 == 0 && (N * bits) % 32 == 0;
}

static qs_status qs_gptq_pack_check(int bits, int64_t N, int64_t K, int64_t G) {
  qs_status status = QS_OK;
  if (!qs_gptq_can_pack(N, K, bits, -1) || G <= 0)
    QS_FAIL(QS_ERR_UNSUPPORTED, "gptq pack: %d-bit [N %lld, K %lld] with %lld groups cannot be packed "
            "(needs K*bits and N*bits multiples of 32)", bits, (long long)N, (long long)K, (long long)G);
fail:
  return status;
}

// One word of the stream of codes c[0..32/bits) for bits 2, 4, 8: c[j] at bits [bits*j, ...).
static inline uint32_t qs_gptq_word(const uint8_t *c, int bits) {
  if (bits == 4) return qs_bits_pack4(qs_bits_load64(c));
  if (bits == 2) return qs_bits_pack2(qs_bits_load64(c), qs_bits_load64(c + 8));
  uint32_t w;
  memcpy(&w, c, 4); // 8 bits: the bytes themselves (little-endian)
  return w;
}

// qweight [K*bits/32, N]: the stream of column n runs down qweight's column n (stride N). Rows are
// taken in tiles of 64 columns n: each word row r of the tile is one contiguous 256-byte store, and
// the tile's 64 code rows are read as sequential streams.
struct qs_gptq_pack_job {
  const uint8_t *codes;
  int bits;
  int64_t N, K;
  uint32_t *qw;
};

// Columns n of tiles [t0, t1) of 64: every column is written by exactly one tile, so tiles run in
// parallel (qs_parallel_for) with the same bytes as one pass.
static void qs_gptq_pack_tiles(void *arg, int64_t t0, int64_t t1) {
  const struct qs_gptq_pack_job *j = arg;
  const int64_t tile = 64, N = j->N, K = j->K, bits = j->bits, words = K * bits / 32;
  for (int64_t n0 = t0 * tile; n0 < QS_MIN(t1 * tile, N); n0 += tile) {
    const int64_t n1 = QS_MIN(n0 + tile, N);
    if (bits != 3) { // whole fields per word: one word from 32/bits consecutive codes
      const int64_t pf = 32 / bits;
      for (int64_t r = 0; r < words; r++)
        for (int64_t n = n0; n < n1; n++) j->qw[r * N + n] = qs_gptq_word(j->codes + n * K + r * pf, (int)bits);
      continue;
    }
    for (int64_t r = 0; r < words; r++)
      for (int64_t n = n0; n < n1; n++) j->qw[r * N + n] = 0;
    for (int64_t k = 0; k < K; k++)
      for (int64_t n = n0; n < n1; n++) qs_bits_put(j->qw + n, N, k, (int)bits, j->codes[n * K + k]);
  }
}

static void qs_gptq_pack_qweight(const uint8_t *codes, int bits, int64_t N, int64_t K, uint32_t *qw) {
  struct qs_gptq_pack_job j = {codes, bits, N, K, qw};
  qs_parallel_for(QS_CEIL_DIV(N, (int64_t)64), 16, qs_gptq_pack_tiles, &j);
}

qs_status qs_gptq_pack(const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros, int bits,
                       int64_t N, int64_t K, int64_t G, int32_t *qweight, int32_t *qzeros,
                       uint16_t *scales_out, int64_t *n_wrapped) {
  qs_status status = QS_OK;
  QS_TRY(qs_gptq_pack_check(bits, N, K, G));
  uint32_t mask = (1u << bits) - 1u;
  int64_t zwords = N * bits / 32, wrapped = 0;
  qs_gptq_pack_qweight(codes, bits, N, K, (uint32_t *)qweight);
  memset(qzeros, 0, sizeof(int32_t) * (size_t)(G * zwords));
  for (int64_t g = 0; g < G; g++)
    for (int64_t n = 0; n < N; n++) {
      uint32_t z = zeros[n * G + g];
      if (z > mask) QS_FAIL(QS_ERR_ARG, "gptq pack: zero %u of row %lld does not fit %d bits", z, (long long)n, bits);
      wrapped += z == 0;
      // v1 stores zero - 1 (readers add 1 back); masked, so 0 wraps to all ones in its own field.
      qs_bits_put((uint32_t *)qzeros + g * zwords, 1, n, bits, (z - 1u) & mask);
      scales_out[g * N + n] = scales[n * G + g];
    }
  if (n_wrapped) *n_wrapped = wrapped;
fail:
  return status;
}

qs_status qs_gptq_unpack_codes(const int32_t *qweight, int bits, int64_t N, int64_t K, uint8_t *codes) {
  qs_status status = QS_OK;
  QS_TRY(qs_gptq_pack_check(bits, N, K, 1));
  const uint32_t *qw = (const uint32_t *)qweight;
  for (int64_t n0 = 0; n0 < N; n0 += 16) // 16 columns: one cache line of each qweight row
    for (int64_t k = 0; k < K; k++)
      for (int64_t n = n0; n < QS_MIN(n0 + 16, N); n++) codes[n * K + k] = (uint8_t)qs_bits_get(qw + n, N, k, bits);
fail:
  return status;
}

qs_status qs_gptq_unpack_zeros(const int32_t *qzeros, int bits, int64_t N, int64_t G, int32_t *zeros) {
  qs_status status = QS_OK;
  QS_TRY(qs_gptq_pack_check(bits, N, 32, G));
  int64_t zwords = N * bits / 32;
  for (int64_t g = 0; g < G; g++)
    for (int64_t n = 0; n < N; n++)
      zeros[n * G + g] = (int32_t)qs_bits_get((const uint32_t *)qzeros + g * zwords, 1, n, bits) + 1;
fail:
  return status;
}

qs_status qs_gptq_unpack_dequant(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales,
                                 const int32_t *g_idx, int bits, int64_t N, int64_t K, int64_t G,
                                 float *W) {
  qs_status status = QS_OK;
  QS_TRY(qs_gptq_pack_check(bits, N, K, G));
  for (int64_t k = 0; k < K; k++)
    if (g_idx[k] < 0 || g_idx[k] >= G)
      QS_FAIL(QS_ERR_FORMAT, "gptq: g_idx[%lld] = %d is outside [0, %lld)", (long long)k, g_idx[k], (long long)G);
  const uint32_t *qw = (const uint32_t *)qweight, *qz = (const uint32_t *)qzeros;
  int64_t zwords = N * bits / 32;
  for (int64_t n0 = 0; n0 < N; n0 += 16) // 16 columns: one cache line of each qweight row
    for (int64_t k = 0; k < K; k++)
      for (int64_t n = n0; n < QS_MIN(n0 + 16, N); n++) {
        int64_t g = g_idx[k];
        int32_t q = (int32_t)qs_bits_get(qw + n, N, k, bits);
        int32_t z = (int32_t)qs_bits_get(qz + g * zwords, 1, n, bits) + 1; // v1: stored zero + 1
        // fp32: scale * (q - z), q - z an exact small integer -> the solver's Q bit for bit.
        W[n * K + k] = qs_f16_to_f32(scales[g * N + n]) * (float)(q - z);
      }
fail:
  return status;
}
