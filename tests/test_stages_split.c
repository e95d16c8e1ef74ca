// test_stages_split.c — the layer split of `--stages S` (qs_stages_split_layers, src/run/stages.h):
// contiguous, non-empty, every boundary the one whose parameter prefix is nearest to s/S of the total
// (ties to the lower layer), checked against a brute-force search of that rule; plus fixed cases.
// Run: ctest -R test_stages_split.
#include <stdint.h>

#include "qs_test.h"
#include "run/stages.h"

// The rule spelled out: for s = 1..S-1, among l in [bounds[s-1] + 1, n - (S - s)], the first l
// minimising |S * prefix(l) - s * total|.
static void split_brute(const long long *params, int n, int S, int *bounds) {
  long long total = 0;
  for (int l = 0; l < n; l++) total += params[l];
  bounds[0] = 0;
  bounds[S] = n;
  for (int s = 1; s < S; s++) {
    long long best = -1;
    for (int l = bounds[s - 1] + 1; l <= n - (S - s); l++) {
      long long p = 0;
      for (int i = 0; i < l; i++) p += params[i];
      long long d = llabs((long long)S * p - (long long)s * total);
      if (best < 0 || d < best) { best = d; bounds[s] = l; }
    }
  }
}

static void check_fixed(const long long *params, int n, int S, const int *want) {
  int b[16];
  qs_stages_split_layers(params, n, S, b);
  for (int s = 0; s <= S; s++) CHECK_EQ_INT(b[s], want[s]);
}

int main(void) {
  const long long eq[8] = {5, 5, 5, 5, 5, 5, 5, 5};
  check_fixed(eq, 5, 1, (const int[]){0, 5});
  check_fixed(eq, 5, 2, (const int[]){0, 2, 5});          // 2.5 layers: the tie goes to the lower boundary
  check_fixed(eq, 5, 4, (const int[]){0, 1, 2, 4, 5});    // stories260K at S = 4 (tests/test_stages.sh)
  check_fixed(eq, 5, 5, (const int[]){0, 1, 2, 3, 4, 5}); // one layer per stage
  check_fixed(eq, 8, 2, (const int[]){0, 4, 8});
  check_fixed(eq, 8, 3, (const int[]){0, 3, 5, 8});       // 2.67 -> 3, 5.33 -> 5
  // a heavy first layer: balance by parameters, not by count, but never an empty stage
  check_fixed((const long long[]){100, 1, 1, 1}, 4, 2, (const int[]){0, 1, 4});
  check_fixed((const long long[]){100, 1, 1, 1}, 4, 4, (const int[]){0, 1, 2, 3, 4});
  check_fixed((const long long[]){1, 1, 1, 9}, 4, 2, (const int[]){0, 3, 4});
  // seeded random layer sizes against the brute-force rule; contiguity and non-empty stages
  uint64_t x = 12345;
  for (int t = 0; t < 2000; t++) {
    long long params[12];
    int n = 1 + (int)(t % 12), S, b[13], r[13];
    for (int l = 0; l < n; l++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      params[l] = 1 + (long long)(x >> 40) % 1000;
    }
    S = 1 + (int)((x >> 20) % (uint64_t)n);
    qs_stages_split_layers(params, n, S, b);
    split_brute(params, n, S, r);
    for (int s = 0; s <= S; s++) CHECK_EQ_INT(b[s], r[s]);
    for (int s = 0; s < S; s++) CHECK(b[s] < b[s + 1]);
  }
  return qs_test_finish("test_stages_split");
}
