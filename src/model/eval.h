// eval.h — perplexity of a loaded model over an HDF5 token file (the engine of `qshard eval`,
// also used by `qshard quantize --eval` on the model as quantized in memory).
#ifndef QS_EVAL_H
#define QS_EVAL_H

#include "model/model.h"

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

// Where the forward runs (device.h kinds; AUTO is resolved by the caller). f32: on cuda, the all-fp32
// path (GEMMs, attention) instead of bf16 activations with fp32 accumulation.
struct qs_eval_device {
  int kind;
  int f32;
};

// Windows of `seqlen` tokens from `data` ("/input_ids", 1-D stream or 2-D rows; seqlen 0 = the
// rows' length for 2-D, else required), at most max_windows (0 = all). On the CPU the layers of m
// are loaded here if they are not yet; on cuda they are streamed to the device one at a time.
// Runs on every rank of world (windows split contiguously); the result is the same bits on every
// rank and for any rank count. Rank 0 prints progress lines.
qs_status qs_eval_model(struct qs_comm *world, struct qs_model *m, const char *data, int seqlen,
                        long long max_windows, const struct qs_eval_device *dev, struct qs_eval_result *r);

// The cuda forward of a rank's windows [begin, end) of `ids` (T tokens each): nll[i] = the NLL sum of
// window begin + i, tokens added in order (eval_cuda.c). Layer-major: each layer is loaded once and
// applied to every window, each window alone (M = T rows in every GEMM), so a window's value does
// not depend on the rank count.
qs_status qs_eval_windows_cuda(struct qs_model *m, const int32_t *ids, int T, long long begin, long long end,
                               int f32, double *nll);
// Prints the result line ("ppl ... windows ... tokens ...") from rank 0.
void qs_eval_print(const struct qs_eval_result *r, const char *data);

#endif
