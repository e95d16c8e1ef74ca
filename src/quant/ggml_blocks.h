// ggml_blocks.h — the block structures of llama.cpp's types (ggml-common.h; FORMATS.md §5.6), where each
// element keeps its bits in them, and the per-type references behind the table of grid_ggml.c.
// ggml_half = IEEE fp16 bits, little-endian. Legacy 32-blocks: quant/ggml_quants.c; k-quants
// (256-blocks): quant/ggml_kquants.c; the searches both share: quant/ggml_search.c; the element view
// used by GPTQ: quant/ggml_elems.c. The header of those files and their tests; callers use grid_ggml.h.
#ifndef QS_GGML_BLOCKS_H
#define QS_GGML_BLOCKS_H

#include <stdint.h>

#include "io/ggml_types.h"

#define QS_GGML_GROUP_MAX_EPS 1e-15f // below this |max| a group is all zero (ggml-quants.c GROUP_MAX_EPS)

#define QS_QK4_0 32
#define QS_QK4_1 32
#define QS_QK5_0 32
#define QS_QK5_1 32
#define QS_QK8_0 32
#define QS_QK4_NL 32
#define QS_QK_MXFP4 32
#define QS_K_SCALE_SIZE 12

struct qs_block_q4_0 { uint16_t d; uint8_t qs[QS_QK4_0 / 2]; };
struct qs_block_q4_1 { uint16_t d, m; uint8_t qs[QS_QK4_1 / 2]; };
struct qs_block_q5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QS_QK5_0 / 2]; };
struct qs_block_q5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QS_QK5_1 / 2]; };
struct qs_block_q8_0 { uint16_t d; int8_t qs[QS_QK8_0]; };
struct qs_block_iq4_nl { uint16_t d; uint8_t qs[QS_QK4_NL / 2]; };
struct qs_block_mxfp4 { uint8_t e; uint8_t qs[QS_QK_MXFP4 / 2]; };
struct qs_block_q2_K { uint8_t scales[QS_QK_K / 16]; uint8_t qs[QS_QK_K / 4]; uint16_t d, dmin; };
struct qs_block_q3_K { uint8_t hmask[QS_QK_K / 8]; uint8_t qs[QS_QK_K / 4]; uint8_t scales[12]; uint16_t d; };
struct qs_block_q4_K { uint16_t d, dmin; uint8_t scales[QS_K_SCALE_SIZE]; uint8_t qs[QS_QK_K / 2]; };
struct qs_block_q5_K { uint16_t d, dmin; uint8_t scales[QS_K_SCALE_SIZE]; uint8_t qh[QS_QK_K / 8]; uint8_t qs[QS_QK_K / 2]; };
struct qs_block_q6_K { uint8_t ql[QS_QK_K / 2]; uint8_t qh[QS_QK_K / 4]; int8_t scales[QS_QK_K / 16]; uint16_t d; };

_Static_assert(sizeof(struct qs_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(struct qs_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(struct qs_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(struct qs_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(struct qs_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(struct qs_block_iq4_nl) == 18, "iq4_nl block");
_Static_assert(sizeof(struct qs_block_mxfp4) == 17, "mxfp4 block");
_Static_assert(sizeof(struct qs_block_q2_K) == 84, "q2_K block");
_Static_assert(sizeof(struct qs_block_q3_K) == 110, "q3_K block");
_Static_assert(sizeof(struct qs_block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(struct qs_block_q5_K) == 176, "q5_K block");
_Static_assert(sizeof(struct qs_block_q6_K) == 210, "q6_K block");

// ---- rounding ----------------------------------------------------------------------------------------

// llama.cpp's nearest_int (ggml-quants.c), which every type uses: round to nearest, ties to even,
// valid for |f| <= 4194303 (the 1.5*2^23 trick).
static inline int qs_ggml_nearest_int(float f) {
  union { float f; int32_t i; } v = {f + 12582912.f};
  return (v.i & 0x007fffff) - 0x00400000;
}

static inline int qs_ggml_clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// The k-quants' final rounding of a value on a sub-block's decoded parameters, which the references
// apply after quantizing the scales and the element view (ggml_elems.c) applies to any value — so
// re-coding a block's own inputs gives its bytes back. Affine: x ≈ d·L - dm, L in [0, nmax].
// Symmetric: x ≈ d·(L - half), L in [0, 2·half).
static inline int qs_ggml_round_affine(float x, float d, float dm, int nmax) {
  return qs_ggml_clamp(qs_ggml_nearest_int((x + dm) / d), 0, nmax);
}
static inline int qs_ggml_round_symmetric(float x, float d, int half) {
  return qs_ggml_clamp(qs_ggml_nearest_int(x / d), -half, half - 1) + half;
}

// ---- code layouts: the byte and the bit shift of element e's field (the packers OR codes into zeroed
// bytes, the dequantizers and the element view read and rewrite single fields).

// Legacy 32-blocks (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4): 4 bits, element j in the low nibble of
// qs[j] and element j+16 in the high nibble.
static inline int qs_ggml_nib_byte(int j) { return j % 16; }
static inline int qs_ggml_nib_shift(int j) { return 4 * (j / 16); }
// Q5_0 / Q5_1 qh: bit 4 of element j is bit j of the little-endian uint32, i.e. byte j/8, bit j%8.
static inline int qs_ggml_bit32_byte(int j) { return j / 8; }
static inline int qs_ggml_bit32_shift(int j) { return j % 8; }
// 2-bit codes of Q2_K and Q3_K (low bits), Q6_K's high 2 bits (qh): qs[32·(e/128) + e%32], bits 2·((e%128)/32).
static inline int qs_ggml_2bit_byte(int e) { return 32 * (e / 128) + e % 32; }
static inline int qs_ggml_2bit_shift(int e) { return 2 * (e % 128 / 32); }
// 4-bit codes (Q4_K, Q5_K low bits): qs[32·(e/64) + e%32], the high nibble for the second 32 of a 64.
static inline int qs_ggml_4bit_byte(int e) { return 32 * (e / 64) + e % 32; }
static inline int qs_ggml_4bit_shift(int e) { return 4 * (e / 32 % 2); }
// One high bit per element (Q3_K hmask, Q5_K qh): byte e%32, bit e/32.
static inline int qs_ggml_hbit_byte(int e) { return e % 32; }
static inline int qs_ggml_hbit_shift(int e) { return e / 32; }
// Q6_K's low nibble: ql[64·(e/128) + 32·((e/32)%2) + e%32] at bits 4·((e%128)/64).
static inline int qs_ggml_q6_ql_byte(int e) { return 64 * (e / 128) + 32 * (e / 32 % 2) + e % 32; }
static inline int qs_ggml_q6_ql_shift(int e) { return 4 * (e % 128 / 64); }

// ---- sub-block scales

// Q4_K / Q5_K: 8 six-bit scales and 8 six-bit mins in 12 bytes. Sub-blocks 0..3 take the low 6 bits of
// bytes 0..3 (scale) and 4..7 (min); 4..7 put their low nibbles in bytes 8..11 (scale low, min high)
// and their top 2 bits in the top bits of bytes j-4 (scale) and j (min). put: called for j = 0..7 in
// order on zeroed bytes; the uint8 truncation of an out-of-range code is the reference's.
// get: get_scale_min_k4.
static inline void qs_ggml_k4_put_scale_min(uint8_t *q, int j, uint8_t ls, uint8_t lm) {
  if (j < 4) {
    q[j] = ls;
    q[j + 4] = lm;
  } else {
    q[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
    q[j - 4] |= (uint8_t)((ls >> 4) << 6);
    q[j] |= (uint8_t)((lm >> 4) << 6);
  }
}
static inline void qs_ggml_k4_get_scale_min(const uint8_t *q, int j, uint8_t *sc, uint8_t *m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q3_K: 16 six-bit codes (scale + 32) in 12 bytes: low nibbles in bytes 0..7 (sub-blocks 8..15 in the
// high nibbles), the top 2 bits of sub-block j in byte 8 + j%4 at bits 2·(j/4). put: on zeroed bytes.
// get: the stored code, 0..63 (the scale is the code - 32).
static inline void qs_ggml_q3_put_scale(uint8_t *q, int j, int l) {
  q[j % 8] |= (uint8_t)((l & 0xF) << (j < 8 ? 0 : 4));
  q[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}
static inline int qs_ggml_q3_get_scale(const uint8_t *q, int j) {
  int lo = j < 8 ? q[j] & 0xF : q[j - 8] >> 4;
  return lo | (((q[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
}

// ---- llama.cpp's searches and their helpers (quant/ggml_search.c), shared by the 32-block and the
// k-quant references. Codes L are uint8 (all the searches' final codes are non-negative); w are
// per-value weights.

// The value of largest magnitude with its sign (the first on ties; 0 when all are 0); *amax (when not
// NULL) gets that magnitude. The symmetric grids map it to their negative end, which has one level more.
float qs_ggml_find_absmax(int n, const float *x, float *amax);
// Σ x² in index order (sigma2 of the importance weights, the rms of Q4_K/Q5_K's weights): each caller
// scales it in its reference's own expression (Σ/n, 2·Σ/256, Σ·(2/32) round differently at the edges).
float qs_ggml_sum_squares(int64_t n, const float *x);
// The importance path's weights w = imp·sqrt(sigma2 + x²) (columns that matter, and large values, weigh
// more); returns Σ w in index order (the weight of the whole sub-block).
float qs_ggml_fill_weights(int n, const float *x, const float *imp, float sigma2, float *w);
// make_qx_quants(rmse_type 1): codes L = l + nmax for x ≈ scale·l, l in [-nmax, nmax-1]; w NULL: x².
float qs_ggml_fit_symmetric(int n, int nmax, const float *x, const float *w, uint8_t *L);
// make_qkx2_quants / make_qkx3_quants: codes L in [0, nmax] for x ≈ scale·L - *neg_min.
float qs_ggml_fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, float rmin,
                         float rdelta, int nstep, int use_mad);
// make_q3_quants(do_rmse): codes L = l + nmax, l in [-nmax, nmax-1], weights x², coordinate descent.
float qs_ggml_fit_q3(int n, int nmax, const float *x, uint8_t *L);
// make_qp_quants: non-negative x (sub-block scales) onto L in [0, nmax] times one step.
float qs_ggml_fit_steps(int n, int nmax, const float *x, const float *w, uint8_t *L);

// Per type: quantize one row (imp NULL: the *_ref path; else the quant_weights path) and dequantize.
#define QS_GGML_DECLARE(t)                                                                         \
  void qs_ggml_quantize_##t##_ref(const float *x, const float *imp, int64_t n, void *out);        \
  void qs_ggml_dequant_##t##_ref(const void *in, int64_t n, float *y);
QS_GGML_DECLARE(f16)
QS_GGML_DECLARE(bf16)
QS_GGML_DECLARE(q4_0)
QS_GGML_DECLARE(q4_1)
QS_GGML_DECLARE(q5_0)
QS_GGML_DECLARE(q5_1)
QS_GGML_DECLARE(q8_0)
QS_GGML_DECLARE(iq4_nl)
QS_GGML_DECLARE(mxfp4)
QS_GGML_DECLARE(q2_K)
QS_GGML_DECLARE(q3_K)
QS_GGML_DECLARE(q4_K)
QS_GGML_DECLARE(q5_K)
QS_GGML_DECLARE(q6_K)
#undef QS_GGML_DECLARE

#endif
