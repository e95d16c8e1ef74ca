// parallel.h — a parallel for over a range, for the host loops that move bytes (packing codes into a
// format's words, a record's row streams): fn(ctx, i0, i1) runs on contiguous chunks of [0, n) on up
// to qs_parallel_threads() threads, the caller's thread taking the first chunk. Results must not
// depend on the split (each chunk writes its own outputs), so the bytes are the same for any thread
// count. Threads: QS_THREADS in the environment, else the online cores (at most 64).
#ifndef QS_PARALLEL_H
#define QS_PARALLEL_H

#include <stdint.h>

#include "base/qs_common.h"

int qs_parallel_threads(void);
// Chunks hold at least `grain` items. A thread that cannot be started leaves its chunk to the caller.
void qs_parallel_for(int64_t n, int64_t grain, void (*fn)(void *ctx, int64_t i0, int64_t i1), void *ctx);

#endif
