// calib.h — calibration samples for quantization: [n, seqlen] token windows.
#ifndef QS_CALIB_H
#define QS_CALIB_H

#include <stdint.h>

#include "base/qs_common.h"

struct qs_calib {
  int32_t *ids;   // [n, seqlen]
  int n, seqlen;
  int64_t *offsets; // [n] start of each window in a 1-D stream; NULL when read as 2-D
};

// Reads "/input_ids" from `path`. A 2-D dataset [rows, cols] is used as given (samples > 0 keeps the
// first `samples` rows; seqlen > 0 must equal cols). A 1-D stream of L tokens is cut into `samples`
// windows of `seqlen` tokens starting at offsets o_i = qs_calib_offset(seed, i, L - seqlen + 1)
// (seeded, documented, the same on every rank and platform). Ids are checked against the vocabulary.
qs_status qs_calib_load(const char *path, int samples, int seqlen, uint64_t seed, int vocab,
                        struct qs_calib *out);
void qs_calib_free(struct qs_calib *c);

// Offset of window i: splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15) mod range — the splitmix64
// finalizer (Steele et al. 2014) of a Weyl sequence, reduced modulo `range` (bias < range / 2^64).
int64_t qs_calib_offset(uint64_t seed, int64_t i, int64_t range);

#endif
