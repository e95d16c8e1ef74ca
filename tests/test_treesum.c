// test_treesum.c — qs_comm_treesum_f32 gives the same bits for any rank count.
// Run under mpirun -np P by tests/test_treesum.sh, which compares the printed digests across P.
// Leaves mix magnitudes over 7 decades, so a different addition order changes low bits: the
// program also reports whether a plain left-to-right sum differs (it must, or the test proves
// nothing about ordering).
#include <stdint.h>
#include <stdio.h>

#include "comm.h"
#include "qs_test.h"

enum { N_LEAVES = 37, LEN = 4099 };

static float leaf_value(long long i, size_t j) {
  int m = (int)((i * 7919 + (long long)j * 104729) % 1000) - 500;
  return (float)m * powf(10.0f, (float)((i + (long long)j) % 7) - 3.0f);
}

static qs_status leaf_fn(void *ctx, long long leaf, float *out) {
  (void)ctx;
  for (size_t j = 0; j < LEN; j++) out[j] = leaf_value(leaf, j);
  return QS_OK;
}

static uint64_t digest(const float *x, size_t n) {
  uint64_t h = 1469598103934665603ull; // FNV-1a over the bytes
  const unsigned char *p = (const unsigned char *)x;
  for (size_t i = 0; i < n * sizeof(float); i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

int main(int argc, char **argv) {
  struct qs_comm *world = NULL;
  if (qs_comm_init(&argc, &argv, &world) != QS_OK) return 1;
  static float tree[LEN], seq[LEN];
  long long n = argc > 1 ? atoll(argv[1]) : N_LEAVES;
  CHECK(qs_comm_treesum_f32(world, n, LEN, leaf_fn, NULL, tree) == QS_OK);
  int differs = 0;
  double max_rel = 0;
  for (size_t j = 0; j < LEN; j++) {
    double exact = 0;
    for (long long i = 0; i < n; i++) { seq[j] += leaf_value(i, j); exact += leaf_value(i, j); }
    differs += seq[j] != tree[j];
    // Any summation order of n float terms is within n*2^-24 * sum|x| of the exact sum.
    double abs_sum = 0;
    for (long long i = 0; i < n; i++) abs_sum += fabs(leaf_value(i, j));
    CHECK_CLOSE(tree[j], exact, (double)n * 0x1p-24 * abs_sum, 0);
    if (abs_sum > 0) max_rel = fmax(max_rel, fabs(tree[j] - exact) / abs_sum);
  }
  if (qs_comm_rank(world) == 0) {
    printf("digest %016llx leaves %lld ranks %d\n", (unsigned long long)digest(tree, LEN), n,
           qs_comm_size(world));
    printf("elements where left-to-right order differs from the tree: %d of %d\n", differs, LEN);
    if (n > 2) CHECK(differs > 0);
  }
  int rc = qs_test_finish("test_treesum");
  qs_comm_finalize(world);
  return rc;
}
