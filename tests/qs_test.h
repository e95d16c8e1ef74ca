// qs_test.h — minimal assertion helpers for the C test programs (one program per area, run by
// ctest). A failed check prints file:line and the values, and the program exits non-zero at the
// end; QS_TEST_SKIP exits with 77 (ctest SKIP_RETURN_CODE) and a reason.
#ifndef QS_TEST_H
#define QS_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>

static int qs_test_failures = 0;
static int qs_test_checks = 0;

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    qs_test_checks++;                                                                   \
    if (!(cond)) {                                                                      \
      qs_test_failures++;                                                               \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                   \
    }                                                                                   \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                              \
  do {                                                                                  \
    long long a_ = (long long)(a), b_ = (long long)(b);                                 \
    qs_test_checks++;                                                                   \
    if (a_ != b_) {                                                                     \
      qs_test_failures++;                                                               \
      fprintf(stderr, "FAIL %s:%d: %s == %s (%lld vs %lld)\n", __FILE__, __LINE__, #a,  \
              #b, a_, b_);                                                              \
    }                                                                                   \
  } while (0)

// |a - b| <= atol + rtol * |b|; the caller documents why the tolerance is what it is.
#define CHECK_CLOSE(a, b, atol, rtol)                                                   \
  do {                                                                                  \
    double a_ = (double)(a), b_ = (double)(b);                                          \
    qs_test_checks++;                                                                   \
    if (!(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_))) {                               \
      qs_test_failures++;                                                               \
      fprintf(stderr, "FAIL %s:%d: %s ~ %s (%.9g vs %.9g)\n", __FILE__, __LINE__, #a,    \
              #b, a_, b_);                                                              \
    }                                                                                   \
  } while (0)

#define QS_TEST_SKIP(...)                                                               \
  do {                                                                                  \
    printf("SKIP: ");                                                                   \
    printf(__VA_ARGS__);                                                                \
    printf("\n");                                                                       \
    exit(77);                                                                           \
  } while (0)

static inline int qs_test_finish(const char *name) {
  printf("%s: %d checks, %d failed\n", name, qs_test_checks, qs_test_failures);
  return qs_test_failures ? 1 : 0;
}

// Path of ../shared/data as seen from the repo root (QS_DATA_DIR env overrides); NULL if absent.
static inline const char *qs_test_data_dir(void) {
  const char *d = getenv("QS_DATA_DIR");
  struct stat st;
  if (!d || !*d || stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL; // absent: tests skip that part
  return d;
}

#endif
