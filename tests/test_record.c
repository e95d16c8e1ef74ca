// test_record.c — the neutral module record (src/quant/record.h) and the bit helpers it and the
// formats pack with (src/base/bits.h), on the CPU:
//  * the word helpers against a field-by-field definition, for random codes;
//  * row bit streams: compact then expand gives the codes back for 2/3/4/8 bits and odd lengths
//    (the 8-code fast path and the tails), and the stream is the definition's bytes;
//  * save then load through a safetensors file: every field equal (codes, scales, zeros, g_idx, bias,
//    grid, an extra tensor), whatever the thread count of the row loops (QS_THREADS 1 and 3);
//  * dequant = scale * (code - zero) per group; a g_idx out of range is a format error;
//  * a lent record (release callback) is released, not freed.
// Run: ctest -R test_record (label unit).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/bits.h"
#include "qs_test.h"
#include "quant/record.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) { return (uint32_t)((rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 33); }

static void test_bits(void) {
  for (int t = 0; t < 20000; t++) {
    uint8_t c[16];
    uint32_t w4 = 0, w2 = 0;
    for (int i = 0; i < 16; i++) c[i] = (uint8_t)(rnd() & 15);
    for (int j = 0; j < 8; j++) w4 |= (uint32_t)c[j] << (4 * j);
    CHECK(qs_bits_pack4(qs_bits_load64(c)) == w4);
    CHECK(qs_bits_unpack4(w4) == qs_bits_load64(c));
    for (int i = 0; i < 16; i++) c[i] &= 3;
    for (int j = 0; j < 16; j++) w2 |= (uint32_t)c[j] << (2 * j);
    CHECK(qs_bits_pack2(qs_bits_load64(c), qs_bits_load64(c + 8)) == w2);
  }
}

static void test_streams(void) {
  const int bits[] = {2, 3, 4, 8};
  const int64_t lens[] = {1, 7, 8, 9, 31, 32, 33, 172, 1000};
  for (size_t b = 0; b < 4; b++)
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
      int64_t n = lens[l], nb = (n * bits[b] + 7) / 8;
      uint8_t *c = malloc(n), *s = malloc(nb), *d = malloc(nb), *back = malloc(n);
      for (int64_t i = 0; i < n; i++) c[i] = (uint8_t)(rnd() & ((1u << bits[b]) - 1));
      memset(d, 0, nb); // the definition: code i at stream bits [bits*i, bits*i + bits)
      for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < bits[b]; k++)
          if (c[i] >> k & 1) d[(bits[b] * i + k) / 8] |= (uint8_t)(1u << ((bits[b] * i + k) % 8));
      qs_qrecord_codes_compact(c, n, bits[b], s);
      CHECK(!memcmp(s, d, nb));
      qs_qrecord_codes_expand(s, n, bits[b], back);
      CHECK(!memcmp(back, c, n));
      free(c), free(s), free(d), free(back);
    }
}

static void fill(struct qs_qrecord *r) {
  for (int64_t i = 0; i < r->N * r->K; i++) r->codes[i] = (uint8_t)(rnd() & ((1u << r->grid.bits) - 1));
  for (int64_t i = 0; i < r->N * r->G; i++) {
    r->scales[i] = (float)(rnd() % 1000 + 1) / 4096.0f;
    r->zeros[i] = (uint8_t)(rnd() & ((1u << r->grid.bits) - 1));
  }
  qs_grid_g_idx_contiguous(&r->grid, r->K, r->g_idx);
  for (int64_t i = 0; r->bias && i < r->N; i++) r->bias[i] = (float)(rnd() % 100) - 50.0f;
}

static int same(const struct qs_qrecord *a, const struct qs_qrecord *b) {
  return a->N == b->N && a->K == b->K && a->G == b->G && !memcmp(&a->grid, &b->grid, sizeof(a->grid)) &&
         !memcmp(a->codes, b->codes, (size_t)(a->N * a->K)) &&
         !memcmp(a->scales, b->scales, sizeof(float) * (size_t)(a->N * a->G)) &&
         !memcmp(a->zeros, b->zeros, (size_t)(a->N * a->G)) && !memcmp(a->g_idx, b->g_idx, sizeof(int32_t) * a->K) &&
         (!a->bias) == (!b->bias) && (!a->bias || !memcmp(a->bias, b->bias, sizeof(float) * a->N));
}

static void test_save_load(const char *dir) {
  const int bits[] = {2, 3, 4, 8};
  for (int threads = 1; threads <= 3; threads += 2) {
    char env[8];
    snprintf(env, sizeof(env), "%d", threads);
    setenv("QS_THREADS", env, 1); // read once per process: the second pass keeps the first value
    for (size_t b = 0; b < 4; b++) {
      struct qs_grid g = qs_grid_default();
      g.bits = bits[b], g.group_size = b == 1 ? -1 : 32, g.sym = b & 1, g.scale_dtype = QS_DTYPE_BF16;
      struct qs_qrecord r, back;
      struct qs_st_writer *w = NULL;
      struct qs_st_file f;
      char name[64], path[512];
      snprintf(name, sizeof(name), "model.layers.%zu.mlp.down_proj", b);
      CHECK_EQ_INT(qs_qrecord_init(&r, name, (int)b, 600, 172, &g, b == 2), QS_OK);
      fill(&r);
      r.n_extra = 1;
      snprintf(r.extra[0].name, sizeof(r.extra[0].name), "input_scale");
      r.extra[0].ndim = 1, r.extra[0].shape[0] = 172;
      r.extra[0].data = calloc(172, sizeof(float));
      r.extra[0].data[5] = 2.5f;
      CHECK_EQ_INT(qs_st_writer_init(&w, dir, 0), QS_OK);
      CHECK_EQ_INT(qs_qrecord_save(w, &r), QS_OK);
      CHECK_EQ_INT(qs_st_writer_finish(w), QS_OK);
      qs_st_writer_free(w);
      snprintf(path, sizeof(path), "%s/model.safetensors", dir);
      CHECK_EQ_INT(qs_st_open(&f, path), QS_OK);
      CHECK_EQ_INT(qs_qrecord_load(&f, name, (int)b, &back), QS_OK);
      CHECK(same(&r, &back));
      CHECK(back.n_extra == 1 && back.extra[0].data[5] == 2.5f && !strcmp(back.extra[0].name, "input_scale"));
      qs_qrecord_free(&back);
      CHECK(qs_qrecord_load(&f, "model.layers.9.mlp.up_proj", 9, &back) == QS_ERR_FORMAT); // absent
      qs_st_close(&f);
      qs_qrecord_free(&r);
    }
  }
}

static void test_dequant(void) {
  struct qs_grid g = qs_grid_default();
  struct qs_qrecord r;
  g.group_size = 4, g.sym = 0;
  CHECK_EQ_INT(qs_qrecord_init(&r, "m", 0, 3, 10, &g, 0), QS_OK); // groups 4, 4, 2 (ragged)
  fill(&r);
  float W[30];
  CHECK_EQ_INT(qs_qrecord_dequant(&r, W), QS_OK);
  for (int n = 0; n < 3; n++)
    for (int k = 0; k < 10; k++)
      CHECK(W[n * 10 + k] == r.scales[n * 3 + k / 4] * (float)((int)r.codes[n * 10 + k] - (int)r.zeros[n * 3 + k / 4]));
  CHECK(qs_qrecord_contiguous(&r));
  r.g_idx[9] = 3;
  CHECK(!qs_qrecord_contiguous(&r));
  CHECK(qs_qrecord_dequant(&r, W) == QS_ERR_FORMAT);
  qs_qrecord_free(&r);
}

static int released;
static void release(void *ctx, struct qs_qrecord *r) { (void)r, released += *(int *)ctx; }

static void test_lent(void) {
  static uint8_t codes[8], zeros[2];
  static float scales[2];
  int one = 1;
  struct qs_qrecord r = {.N = 2, .K = 4, .G = 1, .codes = codes, .scales = scales, .zeros = zeros,
                         .release = release, .release_ctx = &one};
  r.g_idx = malloc(4 * sizeof(int32_t));
  qs_qrecord_free(&r); // a static buffer: freeing it would crash under ASan
  CHECK_EQ_INT(released, 1);
  CHECK(r.codes == NULL && r.release == NULL);
}

int main(void) {
  char dir[] = "/tmp/qs_record.XXXXXX";
  if (!mkdtemp(dir)) return 1;
  test_bits();
  test_streams();
  test_save_load(dir);
  test_dequant();
  test_lent();
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  printf("test_record: %d checks, %d failed\n", qs_test_checks, qs_test_failures);
  return qs_test_failures ? 1 : 0;
}
