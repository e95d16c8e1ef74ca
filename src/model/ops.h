// ops.h — the numeric operations of the Llama forward pass as plain C references (`_ref`).
// They define each op: the CPU backend is built from them and every CUDA kernel is tested
// against them. Row-major; shapes in comments. Float32 compute, reductions in index order.
#ifndef QS_OPS_H
#define QS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "base/qs_common.h"

struct qs_config;

// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w   (sum of squares in double, as the
// reference for fp32 accumulation) — x, out: [rows, n]; w: [n]. out may equal x.
void qs_rmsnorm_ref(const float *x, const float *w, float *out, int rows, int n, float eps);

// inv_freq[i] = theta^(-2i/head_dim), i < head_dim/2, adjusted for rope_type linear
// (÷ factor) and llama3 (wavelength-dependent smoothing, as transformers'
// _compute_llama3_parameters).
void qs_rope_inv_freq(const struct qs_config *c, float *inv_freq);

// Rotate-half RoPE (HF / NeoX layout) in place: x: [T, n_heads, head_dim], token t at position
// pos0 + t. For i < head_dim/2: (x_i, x_{i+h}) <- (x_i cos - x_{i+h} sin, x_{i+h} cos + x_i sin),
// angle = pos * inv_freq[i] computed in float as transformers does.
void qs_rope_ref(float *x, int T, int n_heads, int head_dim, const float *inv_freq, int pos0);

// Causal grouped-query attention for one sequence: q: [T, n_heads, head_dim],
// k, v: [T, n_kv_heads, head_dim], out: [T, n_heads, head_dim]. Query head h reads KV head
// h / (n_heads / n_kv_heads). Scores scaled by 1/sqrt(head_dim), softmax in float with max
// subtraction. scratch: T floats.
void qs_attention_ref(const float *q, const float *k, const float *v, float *out, int T,
                      int n_heads, int n_kv_heads, int head_dim, float *scratch);

// The CPU backend of qs_attention_ref: same contract and the same bits (every sum in the same
// order), with each KV head's keys transposed so that the inner loops vectorize. Allocates
// T * head_dim floats (QS_ERR_OOM when it cannot).
qs_status qs_attention(const float *q, const float *k, const float *v, float *out, int T, int n_heads,
                       int n_kv_heads, int head_dim, float *scratch);

// out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x)). out may alias gate.
void qs_swiglu_ref(const float *gate, const float *up, float *out, size_t n);

// y: [M, N] = x: [M, K] · w: [N, K]^T (+ bias: [N] or NULL). Plain triple loop, double
// accumulator: the definition used by tests.
void qs_matmul_ref(const float *x, const float *w, const float *bias, float *y, int M, int N, int K);
// Same contract through OpenBLAS cblas_sgemm (the CPU backend).
void qs_matmul(const float *x, const float *w, const float *bias, float *y, int M, int N, int K);
// y: [M, N] with rows ldy floats apart (a column block of a wider matrix) = x: [M, K] · w: [N, K]^T.
void qs_matmul_ld(const float *x, const float *w, float *y, int M, int N, int K, int ldy);

// Negative log-likelihood of `target` under logits [vocab] (log-sum-exp in double).
double qs_nll_ref(const float *logits, int vocab, int target);
// One predicted token of two models (llama.cpp's KL-divergence statistics): with P = softmax(ref)
// and Q = softmax(q), all in double: kld = sum_i P_i (log P_i - log Q_i); nll_ref / nll_q = -log P /
// -log Q of the target; same_top = argmax P == argmax Q (first index on ties); dp = Q_t - P_t.
struct qs_tok_cmp {
  double kld, nll_ref, nll_q, dp;
  int same_top;
};
void qs_tok_cmp_ref(const float *ref, const float *q, int vocab, int target, struct qs_tok_cmp *out);

#endif
