// ckpt_codes_cmp.c — compares the integer codes of two GPTQ v1 checkpoints written by `qshard
// quantize` (e.g. the cuda and cpu engines on the same model and options), module by module:
//   ckpt_codes_cmp DIR_A DIR_B MIN_FRACTION
// For every `<module>.qweight` of A, B must have the same tensor shape; both are unpacked
// (qs_gptq_unpack_codes, FORMATS §2.2) and the fraction of identical codes is printed. Exit 1 when a
// module is missing or any fraction is below MIN_FRACTION; 0 otherwise. Used by tests/test_quantize_cuda.sh.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/config.h"
#include "formats/gptq.h"
#include "io/safetensors.h"

static int cmp_module(const struct qs_ckpt *a, const struct qs_ckpt *b, const struct qs_st_tensor *ta, int bits,
                      double min_frac, double *worst) {
  const struct qs_st_tensor *tb = qs_ckpt_find(b, ta->name);
  if (!tb || tb->ndim != 2 || tb->shape[0] != ta->shape[0] || tb->shape[1] != ta->shape[1]) {
    printf("FAIL %s: missing or shaped differently in B\n", ta->name);
    return 1;
  }
  int64_t N = ta->shape[1], K = ta->shape[0] * 32 / bits;
  uint8_t *ca = malloc((size_t)(N * K)), *cb = malloc((size_t)(N * K));
  int32_t *wa = malloc(ta->end - ta->begin), *wb = malloc(tb->end - tb->begin);
  int bad = 1;
  if (!ca || !cb || !wa || !wb) { printf("FAIL: out of memory\n"); goto done; }
  memcpy(wa, ta->data, ta->end - ta->begin); // the mapping may be misaligned for int32
  memcpy(wb, tb->data, tb->end - tb->begin);
  if (qs_gptq_unpack_codes(wa, bits, N, K, ca) != QS_OK || qs_gptq_unpack_codes(wb, bits, N, K, cb) != QS_OK) goto done;
  int64_t same = 0;
  for (int64_t i = 0; i < N * K; i++) same += ca[i] == cb[i];
  double f = (double)same / (double)(N * K);
  if (f < *worst) *worst = f;
  printf("%-48s [%6lld x %6lld]  identical codes %.6f%s\n", ta->name, (long long)N, (long long)K, f,
         f < min_frac ? "  < limit" : "");
  bad = f < min_frac;
done:
  free(ca), free(cb), free(wa), free(wb);
  return bad;
}

int main(int argc, char **argv) {
  struct qs_ckpt a = {0}, b = {0};
  struct qs_config cfg;
  char path[4096];
  int fails = 0, n = 0;
  double worst = 1.0;
  if (argc != 4) { fprintf(stderr, "usage: ckpt_codes_cmp DIR_A DIR_B MIN_FRACTION\n"); return 2; }
  double min_frac = atof(argv[3]);
  snprintf(path, sizeof(path), "%s/config.json", argv[1]);
  if (qs_config_load(&cfg, path) != QS_OK || qs_ckpt_open(&a, argv[1]) != QS_OK || qs_ckpt_open(&b, argv[2]) != QS_OK)
    return 2;
  if (cfg.quant_bits <= 0) { fprintf(stderr, "%s: not a quantized checkpoint\n", argv[1]); return 2; }
  for (size_t i = 0; i < a.n_tensors; i++) {
    const struct qs_st_tensor *t = a.by_name[i];
    size_t len = strlen(t->name);
    if (len < 8 || strcmp(t->name + len - 8, ".qweight")) continue;
    fails += cmp_module(&a, &b, t, cfg.quant_bits, min_frac, &worst);
    n++;
  }
  printf("%d modules, worst identical fraction %.6f (limit %.6f)\n", n, worst, min_frac);
  qs_ckpt_close(&a);
  qs_ckpt_close(&b);
  return fails || n == 0 ? 1 : 0;
}
