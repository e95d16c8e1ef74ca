// forward.c — the Llama / Mistral / Qwen2 decoder layer on the CPU in float32 (contract in model.h),
// as transformers' LlamaDecoderLayer computes it:
//   h = x + o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))),  n1 = rmsnorm(x)
//   x' = h + down_proj(silu(gate_proj(n2)) * up_proj(n2)),                    n2 = rmsnorm(h)
// Matrix products run per sequence (M = T), so a sequence's result never depends on which other
// sequences share the call — the property that lets ranks split calibration samples bit-exactly.
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/ops.h"

qs_status qs_fwd_init(struct qs_fwd *f, const struct qs_config *c, int B, int T) {
  qs_status status = QS_OK;
  memset(f, 0, sizeof(*f));
  if (B <= 0 || T <= 0) QS_FAIL(QS_ERR_ARG, "forward workspace: B = %d, T = %d must be positive", B, T);
  const size_t rows = (size_t)B * T;
  const size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
  f->B = B;
  f->T = T;
  QS_ALLOC(f->xn, rows * c->hidden);
  QS_ALLOC(f->q, rows * qd);
  QS_ALLOC(f->k, rows * kvd);
  QS_ALLOC(f->v, rows * kvd);
  QS_ALLOC(f->att, rows * qd);
  QS_ALLOC(f->gate, rows * c->intermediate);
  QS_ALLOC(f->up, rows * c->intermediate);
  QS_ALLOC(f->tmp, rows * c->hidden);
  QS_ALLOC(f->scores, T);
  return QS_OK;
fail:
  qs_fwd_free(f);
  return status;
}

void qs_fwd_free(struct qs_fwd *f) {
  if (!f) return;
  free(f->xn);
  free(f->q);
  free(f->k);
  free(f->v);
  free(f->att);
  free(f->gate);
  free(f->up);
  free(f->tmp);
  free(f->scores);
  memset(f, 0, sizeof(*f));
}

static void add_inplace(float *x, const float *y, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = x[i] + y[i];
}

// q, k, v projections, RoPE and causal attention of sequence b into ws->att.
static qs_status attention_sequence(const struct qs_config *c, const float *inv_freq,
                                    const struct qs_layer *L, struct qs_fwd *ws, int b, int T) {
  const int H = c->n_heads, Hkv = c->n_kv_heads, D = c->head_dim;
  const size_t r0 = (size_t)b * T;
  const float *xn = ws->xn + r0 * c->hidden;
  float *q = ws->q + r0 * H * D, *k = ws->k + r0 * Hkv * D, *v = ws->v + r0 * Hkv * D;
  qs_matmul(xn, L->q.w, L->q.b, q, T, H * D, c->hidden);
  qs_matmul(xn, L->k.w, L->k.b, k, T, Hkv * D, c->hidden);
  qs_matmul(xn, L->v.w, L->v.b, v, T, Hkv * D, c->hidden);
  qs_rope_ref(q, T, H, D, inv_freq, 0);
  qs_rope_ref(k, T, Hkv, D, inv_freq, 0);
  return qs_attention(q, k, v, ws->att + r0 * H * D, T, H, Hkv, D, ws->scores);
}

// Step `step` of the layer (contract: model.h). ws->xn, ws->att, ws->gate hold the group inputs.
qs_status qs_layer_step(const struct qs_config *c, const float *inv_freq, struct qs_layer *L, float *x, int B, int T,
                        struct qs_fwd *ws, int step, const float **X, int *K) {
  qs_status status = QS_OK;
  const int rows = B * T, qd = c->n_heads * c->head_dim, I = c->intermediate, Hd = c->hidden;
  if (B <= 0 || T <= 0 || B * T > ws->B * ws->T || T > ws->T)
    QS_FAIL(QS_ERR_INTERNAL, "layer forward: %d x %d tokens do not fit the workspace (%d x %d)", B, T,
            ws->B, ws->T);
  switch (step) {
  case QS_GROUP_QKV:
    if (c->sliding_window > 0 && T > c->sliding_window)
      QS_FAIL(QS_ERR_UNSUPPORTED, "%s: sequences of %d tokens exceed the sliding attention window %d, "
              "which this forward does not implement", c->model_type, T, c->sliding_window);
    qs_rmsnorm_ref(x, L->attn_norm, ws->xn, rows, Hd, c->rms_eps);
    *X = ws->xn, *K = Hd;
    break;
  case QS_GROUP_O:
    for (int b = 0; b < B; b++) QS_TRY(attention_sequence(c, inv_freq, L, ws, b, T));
    *X = ws->att, *K = qd;
    break;
  case QS_GROUP_GATE_UP:
    for (int b = 0; b < B; b++) {
      const size_t r0 = (size_t)b * T;
      qs_matmul(ws->att + r0 * qd, L->o.w, L->o.b, ws->tmp + r0 * Hd, T, Hd, qd);
    }
    add_inplace(x, ws->tmp, (size_t)rows * Hd);
    qs_rmsnorm_ref(x, L->mlp_norm, ws->xn, rows, Hd, c->rms_eps);
    *X = ws->xn, *K = Hd;
    break;
  case QS_GROUP_DOWN:
    for (int b = 0; b < B; b++) {
      const size_t r0 = (size_t)b * T;
      float *gate = ws->gate + r0 * I, *up = ws->up + r0 * I;
      qs_matmul(ws->xn + r0 * Hd, L->gate.w, L->gate.b, gate, T, I, Hd);
      qs_matmul(ws->xn + r0 * Hd, L->up.w, L->up.b, up, T, I, Hd);
      qs_swiglu_ref(gate, up, gate, (size_t)T * I); // gate <- silu(gate) * up: the input of down_proj
    }
    *X = ws->gate, *K = I;
    break;
  default:
    for (int b = 0; b < B; b++) {
      const size_t r0 = (size_t)b * T;
      qs_matmul(ws->gate + r0 * I, L->down.w, L->down.b, ws->tmp + r0 * Hd, T, Hd, I);
    }
    add_inplace(x, ws->tmp, (size_t)rows * Hd);
    *X = NULL, *K = 0;
  }
fail:
  return status;
}

qs_status qs_layer_forward(const struct qs_config *c, const float *rope_inv_freq, struct qs_layer *L,
                           float *x, int B, int T, struct qs_fwd *ws) {
  qs_status status = QS_OK;
  const float *X;
  int K;
  for (int s = 0; s <= QS_GROUP_COUNT; s++) QS_TRY(qs_layer_step(c, rope_inv_freq, L, x, B, T, ws, s, &X, &K));
fail:
  return status;
}

void qs_model_embed(const struct qs_model *m, const int32_t *ids, int n, float *x) {
  const size_t h = (size_t)m->cfg.hidden;
  for (int i = 0; i < n; i++) qs_st_read_f32_range(m->embed, (size_t)ids[i] * h, h, x + (size_t)i * h);
}

// Rows of lm_head converted per block: 16 MiB of fp32 (at least one row).
#define QS_LOGIT_BLOCK_BYTES (16u << 20)

qs_status qs_model_logits(const struct qs_model *m, const float *x, float *logits, int T, float *xn) {
  qs_status status = QS_OK;
  const int V = m->cfg.vocab, H = m->cfg.hidden;
  const struct qs_st_tensor *w = m->lm_head;
  float *blk = NULL;
  qs_rmsnorm_ref(x, m->norm, xn, T, H, m->cfg.rms_eps);
  if (w->dtype == QS_DTYPE_F32 && (uintptr_t)w->data % sizeof(float) == 0) {
    qs_matmul(xn, (const float *)w->data, NULL, logits, T, V, H);
    return QS_OK;
  }
  const int rows = (int)QS_MAX(1, QS_MIN((size_t)V, QS_LOGIT_BLOCK_BYTES / ((size_t)H * sizeof(float))));
  QS_ALLOC(blk, (size_t)rows * H);
  for (int v0 = 0; v0 < V; v0 += rows) {
    const int n = QS_MIN(rows, V - v0);
    qs_st_read_f32_range(w, (size_t)v0 * H, (size_t)n * H, blk);
    qs_matmul_ld(xn, blk, logits + v0, T, n, H, V);
  }
fail:
  free(blk);
  return status;
}

qs_status qs_model_forward_layers(struct qs_model *m, float *x, int T, struct qs_fwd *ws) {
  qs_status status = QS_OK;
  if (!m->layers) QS_FAIL(QS_ERR_INTERNAL, "%s: layers are not loaded (call qs_model_load_layers)", m->dir);
  for (int l = 0; l < m->cfg.n_layers; l++)
    QS_TRY(qs_layer_forward(&m->cfg, m->rope_inv_freq, &m->layers[l], x, 1, T, ws));
fail:
  return status;
}
