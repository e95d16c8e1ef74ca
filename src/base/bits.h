// bits.h — packing small unsigned codes (one per byte) into little-endian bit fields and back, a
// machine word at a time: the inner loops of the record's row streams (quant/record.c) and of the
// formats' packers (GPTQ v1, compressed-tensors). Field j of a word holds code j at bits
// [b*j, b*j + b), as every format qshard writes packs them. Codes must fit their width.
#ifndef QS_BITS_H
#define QS_BITS_H

#include <stdint.h>
#include <string.h>

// 8 codes of 4 bits (the bytes of x, low byte first) -> one 32-bit word.
static inline uint32_t qs_bits_pack4(uint64_t x) {
  x = (x | x >> 4) & 0x00FF00FF00FF00FFull;  // byte pairs: c0 | c1 << 4 in bytes 0, 2, 4, 6
  x = (x | x >> 8) & 0x0000FFFF0000FFFFull;
  return (uint32_t)(x | x >> 16);
}
// One 32-bit word -> 8 codes of 4 bits (bytes of the result, low byte first).
static inline uint64_t qs_bits_unpack4(uint32_t w) {
  uint64_t x = w;
  x = (x | x << 16) & 0x0000FFFF0000FFFFull;
  x = (x | x << 8) & 0x00FF00FF00FF00FFull;
  return (x | x << 4) & 0x0F0F0F0F0F0F0F0Full;
}
// 16 codes of 2 bits (lo = codes 0..7, hi = codes 8..15) -> one 32-bit word.
static inline uint32_t qs_bits_pack2(uint64_t lo, uint64_t hi) {
  lo = (lo | lo >> 6) & 0x000F000F000F000Full; // 4 codes per 16 bits
  hi = (hi | hi >> 6) & 0x000F000F000F000Full;
  lo = (lo | lo >> 12) & 0x000000FF000000FFull;
  hi = (hi | hi >> 12) & 0x000000FF000000FFull;
  return (uint32_t)((lo | lo >> 24) & 0xFFFF) | (uint32_t)((hi | hi >> 24) & 0xFFFF) << 16;
}
static inline uint64_t qs_bits_load64(const uint8_t *p) {
  uint64_t x;
  memcpy(&x, p, 8); // little-endian hosts (x86-64, aarch64): byte i is bits [8i, 8i+8)
  return x;
}

#endif
