// ops.c — plain C references of the Llama forward ops (contracts in ops.h) and the OpenBLAS matmul.
// Where transformers' float32 arithmetic is cheap to mirror (RoPE frequencies, the order of the
// products in rotate-half, softmax scaling), the code follows it operation by operation, because
// `qshard generate` must reproduce transformers' greedy tokens exactly.
#include "model/ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/config.h"

void qs_rmsnorm_ref(const float *x, const float *w, float *out, int rows, int n, float eps) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * n;
    float *orow = out + (size_t)r * n;
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
    float var = (float)(ss / n);
    float inv = 1.0f / sqrtf(var + eps);  // torch.rsqrt in float32
    for (int i = 0; i < n; i++) orow[i] = w[i] * (xr[i] * inv);  // weight * (x * rsqrt)
  }
}

// transformers' _compute_llama3_parameters in float32 tensor arithmetic: Python scalars become
// float32 operands, and `scalar / tensor` is evaluated as reciprocal(tensor) * scalar.
static void rope_llama3_adjust(const struct qs_config *c, float *inv_freq, int n) {
  const float factor = (float)c->rope_factor;
  const float low = (float)c->rope_low_freq_factor;
  const float old_len = (float)c->rope_orig_max_pos;
  const float low_wavelen = (float)(c->rope_orig_max_pos / c->rope_low_freq_factor);
  const float high_wavelen = (float)(c->rope_orig_max_pos / c->rope_high_freq_factor);
  const float span = (float)(c->rope_high_freq_factor - c->rope_low_freq_factor);
  const float two_pi = (float)(2.0 * M_PI);
  for (int i = 0; i < n; i++) {
    float wavelen = (1.0f / inv_freq[i]) * two_pi;
    float f = wavelen > low_wavelen ? inv_freq[i] / factor : inv_freq[i];  // low frequencies: ÷ factor
    float smooth = (old_len * (1.0f / wavelen) - low) / span;
    float smoothed = (1.0f - smooth) * f / factor + smooth * f;
    int medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    inv_freq[i] = medium ? smoothed : f;
  }
}

void qs_rope_inv_freq(const struct qs_config *c, float *inv_freq) {
  const int n = c->head_dim / 2;
  const float base = (float)c->rope_theta;
  for (int i = 0; i < n; i++) {
    // 1.0 / (base ** (arange(0, d, 2).float() / d)), each step rounded to float32
    float expo = (float)(2 * i) / (float)c->head_dim;
    inv_freq[i] = 1.0f / (float)pow((double)base, (double)expo);
  }
  if (c->rope_type == QS_ROPE_LINEAR) {
    for (int i = 0; i < n; i++) inv_freq[i] /= (float)c->rope_factor;
  } else if (c->rope_type == QS_ROPE_LLAMA3) {
    rope_llama3_adjust(c, inv_freq, n);
  }
}

void qs_rope_ref(float *x, int T, int n_heads, int head_dim, const float *inv_freq, int pos0) {
  const int h = head_dim / 2;
  for (int t = 0; t < T; t++) {
    const float pos = (float)(pos0 + t);
    for (int i = 0; i < h; i++) {
      float angle = pos * inv_freq[i];
      float c = cosf(angle), s = sinf(angle);
      for (int hd = 0; hd < n_heads; hd++) {
        float *xh = x + ((size_t)t * n_heads + hd) * head_dim;
        float x0 = xh[i], x1 = xh[i + h];
        // q * cos + rotate_half(q) * sin, rotate_half(q) = cat(-q2, q1)
        xh[i] = x0 * c + (-x1) * s;
        xh[i + h] = x1 * c + x0 * s;
      }
    }
  }
}

// Softmax over p[0..n) in place: max subtraction, exp, multiply by the reciprocal of the sum (as
// torch's vectorized softmax does).
static void softmax_inplace(float *p, int n) {
  float mx = p[0];
  for (int i = 1; i < n; i++) mx = p[i] > mx ? p[i] : mx;
  float sum = 0.0f;
  for (int i = 0; i < n; i++) {
    p[i] = expf(p[i] - mx);
    sum += p[i];
  }
  float inv = 1.0f / sum;
  for (int i = 0; i < n; i++) p[i] *= inv;
}

void qs_attention_ref(const float *q, const float *k, const float *v, float *out, int T, int n_heads,
                      int n_kv_heads, int head_dim, float *scratch) {
  const int group = n_heads / n_kv_heads;
  const float scale = (float)(1.0 / sqrt((double)head_dim));  // head_dim**-0.5 as a float32 operand
  const size_t q_stride = (size_t)n_heads * head_dim, kv_stride = (size_t)n_kv_heads * head_dim;
  for (int t = 0; t < T; t++) {
    for (int hd = 0; hd < n_heads; hd++) {
      const float *qh = q + t * q_stride + (size_t)hd * head_dim;
      const size_t kv_off = (size_t)(hd / group) * head_dim;
      for (int s = 0; s <= t; s++) {  // causal: key positions 0..t
        const float *kh = k + s * kv_stride + kv_off;
        float dot = 0.0f;
        for (int d = 0; d < head_dim; d++) dot += qh[d] * kh[d];
        scratch[s] = dot * scale;
      }
      softmax_inplace(scratch, t + 1);
      float *oh = out + t * q_stride + (size_t)hd * head_dim;
      for (int d = 0; d < head_dim; d++) {
        float acc = 0.0f;
        for (int s = 0; s <= t; s++) acc += scratch[s] * v[s * kv_stride + kv_off + d];
        oh[d] = acc;
      }
    }
  }
}

// y[i] += a * x[i] for i < n, in blocks of 8 so that -O2 vectorizes it (GCC's -O2 cost model
// only vectorizes loops whose trip count is a known multiple of the vector width).
static void axpy(float a, const float *restrict x, float *restrict y, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) y[i + j] += a * x[i + j];
  for (; i < n; i++) y[i] += a * x[i];
}

// One query head at position t of qs_attention: kt is its KV head's keys transposed, [head_dim, T]
// (kt[d * T + s] = k[s, d]), so that adding term d to all t+1 dot products is one axpy, and the
// output is accumulated as axpys over s. Every sum runs in the reference's order from 0.
static void attention_head(const float *qh, const float *kt, int T, const float *v, size_t kv_stride, int t,
                           int head_dim, float scale, float *p, float *oh) {
  for (int s = 0; s <= t; s++) p[s] = 0.0f;
  for (int d = 0; d < head_dim; d++) axpy(qh[d], kt + (size_t)d * T, p, t + 1);
  for (int s = 0; s <= t; s++) p[s] *= scale;
  softmax_inplace(p, t + 1);
  for (int d = 0; d < head_dim; d++) oh[d] = 0.0f;
  for (int s = 0; s <= t; s++) axpy(p[s], v + s * kv_stride, oh, head_dim);
}

qs_status qs_attention(const float *q, const float *k, const float *v, float *out, int T, int n_heads,
                       int n_kv_heads, int head_dim, float *scratch) {
  qs_status status = QS_OK;
  const int group = n_heads / n_kv_heads;
  const float scale = (float)(1.0 / sqrt((double)head_dim));
  const size_t q_stride = (size_t)n_heads * head_dim, kv_stride = (size_t)n_kv_heads * head_dim;
  float *kt = NULL;
  QS_ALLOC(kt, (size_t)T * head_dim);
  for (int kvh = 0; kvh < n_kv_heads; kvh++) {
    const float *kh = k + (size_t)kvh * head_dim, *vh = v + (size_t)kvh * head_dim;
    for (int s = 0; s < T; s++)
      for (int d = 0; d < head_dim; d++) kt[(size_t)d * T + s] = kh[s * kv_stride + d];
    for (int t = 0; t < T; t++)
      for (int hd = kvh * group; hd < (kvh + 1) * group; hd++)
        attention_head(q + t * q_stride + (size_t)hd * head_dim, kt, T, vh, kv_stride, t, head_dim, scale,
                       scratch, out + t * q_stride + (size_t)hd * head_dim);
  }
fail:
  free(kt);
  return status;
}

void qs_swiglu_ref(const float *gate, const float *up, float *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float g = gate[i];
    out[i] = (g / (1.0f + expf(-g))) * up[i];
  }
}

void qs_matmul_ref(const float *x, const float *w, const float *bias, float *y, int M, int N, int K) {
  for (int m = 0; m < M; m++) {
    const float *xr = x + (size_t)m * K;
    for (int n = 0; n < N; n++) {
      const float *wr = w + (size_t)n * K;
      double acc = bias ? (double)bias[n] : 0.0;
      for (int kk = 0; kk < K; kk++) acc += (double)xr[kk] * wr[kk];
      y[(size_t)m * N + n] = (float)acc;
    }
  }
}

void qs_matmul(const float *x, const float *w, const float *bias, float *y, int M, int N, int K) {
  if (M <= 0 || N <= 0) return;
  // As torch.addmm does for nn.Linear: C starts as the broadcast bias and beta = 1.
  if (bias) {
    for (int m = 0; m < M; m++) memcpy(y + (size_t)m * N, bias, (size_t)N * sizeof(float));
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, bias ? 1.0f : 0.0f, y, N);
}

void qs_matmul_ld(const float *x, const float *w, float *y, int M, int N, int K, int ldy) {
  if (M <= 0 || N <= 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, 0.0f, y, ldy);
}

void qs_tok_cmp_ref(const float *ref, const float *q, int vocab, int target, struct qs_tok_cmp *out) {
  double mr = ref[0], mq = q[0];
  int ar = 0, aq = 0;
  for (int i = 1; i < vocab; i++) {
    if (ref[i] > mr) mr = ref[i], ar = i;
    if (q[i] > mq) mq = q[i], aq = i;
  }
  double sr = 0.0, sq = 0.0;
  for (int i = 0; i < vocab; i++) {
    sr += exp((double)ref[i] - mr);
    sq += exp((double)q[i] - mq);
  }
  const double lzr = mr + log(sr), lzq = mq + log(sq); // log partition functions
  double kld = 0.0;
  for (int i = 0; i < vocab; i++) {
    double lp = (double)ref[i] - lzr, lq = (double)q[i] - lzq;
    kld += exp(lp) * (lp - lq);
  }
  out->kld = kld > 0.0 ? kld : 0.0; // >= 0 in exact arithmetic; rounding may leave -1e-17
  out->nll_ref = lzr - (double)ref[target];
  out->nll_q = lzq - (double)q[target];
  out->dp = exp(-out->nll_q) - exp(-out->nll_ref);
  out->same_top = ar == aq;
}

double qs_nll_ref(const float *logits, int vocab, int target) {
  double mx = logits[0];
  for (int i = 1; i < vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
  double sum = 0.0;
  for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - mx);
  return mx + log(sum) - (double)logits[target];
}
