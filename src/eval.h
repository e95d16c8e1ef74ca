// eval.h — perplexity of a loaded model over an HDF5 token file (the engine of `qshard eval`,
// also used by `qshard quantize --eval` on the model as quantized in memory).
#ifndef QS_EVAL_H
#define QS_EVAL_H

#include "model.h"

struct qs_comm;

struct qs_eval_result {
  double ppl;            // exp(nll / predicted)
  double nll;            // summed negative log-likelihood, windows added in window order
  long long windows;     // windows scored
  long long tokens;      // windows * seqlen
  long long predicted;   // windows * (seqlen - 1)
  int seqlen;
  double seconds;
};

// Windows of `seqlen` tokens from `data` ("/input_ids", 1-D stream or 2-D rows; seqlen 0 = the
// rows' length for 2-D, else required), at most max_windows (0 = all). Layers of m must be loaded.
// Runs on every rank of world (windows split contiguously); the result is the same bits on every
// rank and for any rank count. Rank 0 prints progress lines.
qs_status qs_eval_model(struct qs_comm *world, struct qs_model *m, const char *data, int seqlen,
                        long long max_windows, struct qs_eval_result *r);
// Prints the result line ("ppl ... windows ... tokens ...") from rank 0.
void qs_eval_print(const struct qs_eval_result *r, const char *data);

#endif
