// parallel.c — the parallel for of parallel.h on pthreads (one thread per chunk, joined before return).
#include "base/parallel.h"

#include <pthread.h>
#include <unistd.h>

QS_PARAM(threads, "QS_THREADS", 0)

int qs_parallel_threads(void) {
  int64_t t = qs_param_threads();
  if (t <= 0) t = sysconf(_SC_NPROCESSORS_ONLN);
  return (int)QS_MAX(1, QS_MIN(t, 64));
}

struct chunk {
  void (*fn)(void *ctx, int64_t i0, int64_t i1);
  void *ctx;
  int64_t i0, i1;
};

static void *run_chunk(void *arg) {
  struct chunk *c = arg;
  c->fn(c->ctx, c->i0, c->i1);
  return NULL;
}

void qs_parallel_for(int64_t n, int64_t grain, void (*fn)(void *ctx, int64_t i0, int64_t i1), void *ctx) {
  struct chunk ch[64];
  pthread_t th[64];
  int started[64] = {0};
  int64_t k = qs_parallel_threads();
  if (grain < 1) grain = 1;
  k = QS_MAX(1, QS_MIN(k, n / grain));
  for (int64_t t = 0; t < k; t++) ch[t] = (struct chunk){fn, ctx, n * t / k, n * (t + 1) / k};
  for (int64_t t = 1; t < k; t++) started[t] = pthread_create(&th[t], NULL, run_chunk, &ch[t]) == 0;
  run_chunk(&ch[0]);
  for (int64_t t = 1; t < k; t++) {
    if (started[t]) pthread_join(th[t], NULL);
    else run_chunk(&ch[t]); // no thread: the caller does it
  }
}
