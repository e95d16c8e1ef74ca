// eval.h — perplexity of a loaded model over an HDF5 token file (the engine of `qshard eval`,
// also used by `qshard quantize --eval` on the model as quantized in memory).
#ifndef QS_EVAL_H
#define QS_EVAL_H

#include "model/model.h"

struct qs_comm;

#define QS_EVAL_DEFAULT_SEQLEN 2048 // windows of a 1-D stream when no --seqlen is given (at most max positions)

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

// What to evaluate (the command line's options, or quantize --eval's).
struct qs_eval_request {
  const char *model, *data, *dataset; // dataset NULL: "/input_ids"
  long long seqlen;                   // 0: not given (2-D: the rows' length; 1-D: min(2048, max positions))
  long long max_windows;              // 0: all
};

// What rank 0 decided from the token file and the config, sent to every rank.
struct qs_eval_plan {
  long long n_windows; // windows evaluated
  long long n_avail;   // windows in the file
  long long n_tokens;  // tokens in the file
  int seqlen;
  int ok;
};

// Rank 0 reads the tokens (and the config: `cfg` when given, else the model's config.json), checks
// the ids against the vocabulary and plans the windows; every rank gets the plan and the ids of the
// evaluated windows (*ids: [n_windows, seqlen], malloc'ed). Returns QS_ERR_ARG silently on ranks > 0
// when rank 0 failed (it printed why).
qs_status qs_eval_share_tokens(struct qs_comm *world, const struct qs_eval_request *o, const struct qs_config *cfg,
                               struct qs_eval_plan *p, int32_t **ids);
// Every rank opens the model (and on the CPU loads its layers); then all agree that every rank
// succeeded (a rank that failed has printed why; the others must not wait for it in a collective).
qs_status qs_eval_open_model(struct qs_comm *world, const char *dir, int kind, struct qs_model *m, int *opened);
// Every rank: its share of the planned windows, then the ordered sum of the per-window NLLs over all
// of them into *nll_sum (the same bits on every rank). t0: start time, for the progress lines.
qs_status qs_eval_windows(struct qs_comm *world, struct qs_model *m, const struct qs_eval_plan *p, const int32_t *ids,
                          const struct qs_eval_device *dev, double t0, double *nll_sum);

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
// A model against a reference model (its unquantized original) on the same windows (eval
// --reference), per predicted token (ops.h qs_tok_cmp_ref; the record below) and gathered in
// token order, so every number is the same bits for any rank count: both perplexities, the mean, 99th
// percentile (nearest rank) and maximum of the KL divergence KL(reference || model), top-1 agreement
// (fraction of tokens whose argmax agrees) and the mean change of the correct token's probability.
// On dev: the CPU engine (layers loaded here if they are not yet) or cuda (qs_eval_compare_cuda,
// dev->f32 as for qs_eval_windows). nll_q / nll_ref are the bits qs_eval_windows gives for each model
// alone on the same device and precision.
// The per-token record behind it: QS_EVAL_CMP_N doubles in this order, written by the CPU engine and
// by the GPU kernel (kernels/tok_cmp.h, whose QS_TOK_CMP_* eval_cuda.c asserts equal) and gathered
// over ranks as raw doubles.
enum qs_eval_cmp_field {
  QS_EVAL_CMP_KLD,     // KL(ref || q) of the next-token distributions, >= 0
  QS_EVAL_CMP_NLL_Q,   // -log Q(target)
  QS_EVAL_CMP_NLL_REF, // -log P(target)
  QS_EVAL_CMP_DP,      // Q(target) - P(target)
  QS_EVAL_CMP_TOP,     // 1.0 when argmax P == argmax Q (first index on ties), else 0.0
  QS_EVAL_CMP_N
};
struct qs_eval_cmp {
  double nll_q, nll_ref;              // ordered sums over the predicted tokens
  double kld_mean, kld_p99, kld_max, top1, dp_mean;
  long long tokens;                   // predicted tokens
};
qs_status qs_eval_compare(struct qs_comm *world, struct qs_model *q, struct qs_model *ref, const struct qs_eval_plan *p,
                          const int32_t *ids, const struct qs_eval_device *dev, double t0, struct qs_eval_cmp *out);
// The cuda half of qs_eval_compare for a rank's windows [begin, end) of `ids` (T tokens each), q and
// ref of the same vocab / hidden / layers: out[(end - begin) * (T-1) * QS_EVAL_CMP_N] = each
// predicted token's record (above), windows and tokens in order (eval_cuda.c). Each model's forward
// and logits are exactly those of qs_eval_windows_cuda (each window alone, the same GEMM shapes),
// and the kernel's NLLs are nll.h's bits, so a token's nll_q / nll_ref are the bits whose per-window
// sums in token order that function returns for each model alone.
qs_status qs_eval_compare_cuda(struct qs_model *q, struct qs_model *ref, const int32_t *ids, int T, long long begin,
                               long long end, int f32, double *out);

// Prints the result line ("ppl ... windows ... tokens ...") from rank 0.
void qs_eval_print(const struct qs_eval_result *r, const char *data);

#endif
