// summary.h — the end-of-run summary of `qshard quantize`: what was written where, how big against
// the original, how good (when --eval ran), what was left out, what it cost, and how an engine loads it.
#ifndef QS_SUMMARY_H
#define QS_SUMMARY_H

#include "run/run.h"

struct qs_summary_in {
  double seconds;      // the whole run, wall
  long long peak_host; // bytes, max over ranks
  double eval_ppl;     // NaN: no --eval
  double eval_fp_ppl, eval_kld; // the original's perplexity on the same windows, mean KLD (NaN: not computed)
  const char *eval_data;
};

// Bytes of the weight files (.safetensors, .gguf but imatrix.gguf) at the top of dir (0 when it cannot
// be listed); *first_gguf, when first_gguf is not NULL, gets the first GGUF's path (malloc'ed).
double qs_summary_weight_bytes(const char *dir, char **first_gguf);

// Rank 0, once OUT is in place: a few lines (with --log-json one "summary" event).
void qs_summary_print(const struct qs_qrun *run, const struct qs_summary_in *in);

#endif
