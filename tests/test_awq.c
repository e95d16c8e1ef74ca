// test_awq.c — AWQ's numeric parts (src/quant/awq.h) and the fold (model.h qs_layer_fold):
//   1. the scales of α: α = 0 gives 1 everywhere, and every set is normalized to max·min = 1;
//   2. the scale search's error d H dᵀ equals the output error ||X dᵀ||²·2/n computed from the
//      tokens themselves, within a bound derived from the float32 sums;
//   3. the clipped row at shrink 1 is plain RTN (same codes and parameters), and clipping never
//      raises the row's error (r = 1 is one of the candidates);
//   4. on stories260K (a real model: shared data), folding scales into a group and its preceding norm
//      or linear leaves each linear's output unchanged within the float32 bounds below — q/k/v,
//      gate/up and down on its layer 0, and o (after v) on the same layer made multi-head.
#include <string.h>

#include "io/layout.h"
#include "model/model.h"
#include "model/ops.h"
#include "quant/awq.h"
#include "quant/gptq.h"
#include "qs_test.h"

static unsigned g_seed = 12345;
static float frand(void) { // uniform in [-1, 1)
  g_seed = g_seed * 1103515245u + 12345u;
  return (float)((g_seed >> 8) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

static const double k_u = 5.9604644775390625e-08; // 2^-24, float32's unit roundoff

static void test_scales(void) {
  float xabs[7] = {0.5f, 2.0f, 0.0f, 8.0f, 1.0f, 3.0f, 0.25f}, s[7];
  qs_awq_scales_ref(0.0f, xabs, 7, s);
  for (int k = 0; k < 7; k++) CHECK_CLOSE(s[k], 1.0, 0, 4 * k_u);
  qs_awq_scales_ref(0.5f, xabs, 7, s);
  float mx = 0, mn = 1e30f;
  for (int k = 0; k < 7; k++) mx = s[k] > mx ? s[k] : mx, mn = s[k] < mn ? s[k] : mn;
  CHECK_CLOSE((double)mx * mn, 1.0, 0, 8 * k_u); // normalized (a few roundings of sqrt and divide)
  CHECK(s[2] == mn);                               // the silent channel: clamped at 1e-4 before normalizing
  CHECK_CLOSE(s[3] / s[0], 4.0, 0, 8 * k_u);       // sqrt(8 / 0.5)
}

// d H dᵀ from the Hessian vs Σ_t (x_t · d)² · 2/n from the tokens.
static void test_error_vs_tokens(void) {
  enum { n = 64, K = 48, N = 40 };
  static float X[n * K], W[N * K], H[K * K], s[K], Wq[K], sc[K];
  static double err[N];
  uint8_t codes[K], zeros[K];
  struct qs_grid g = qs_grid_default();
  g.group_size = 16;
  g.sym = 0;
  for (int i = 0; i < n * K; i++) X[i] = frand() * (1.0f + (float)(i % K) / 8.0f); // uneven channels
  for (int i = 0; i < N * K; i++) W[i] = frand();
  for (int k = 0; k < K; k++) s[k] = 0.5f + 0.75f * (frand() + 1.0f);
  memset(H, 0, sizeof(H));
  qs_gptq_hessian_add_ref(H, X, n, K);
  CHECK_EQ_INT(qs_gptq_hessian_finalize(H, K, n), QS_OK);
  CHECK_EQ_INT(qs_awq_scaled_error_ref(&g, H, K, W, N, s, 1, err), QS_OK);
  for (int r = 0; r < N; r++) {
    float d[K];
    for (int k = 0; k < K; k++) Wq[k] = W[r * K + k] * s[k];
    qs_grid_quantize_row_ref(&g, Wq, NULL, K, codes, sc, zeros, Wq);
    for (int k = 0; k < K; k++) d[k] = W[r * K + k] - Wq[k] / s[k];
    double ref = 0, mag = 0;
    for (int t = 0; t < n; t++) {
      double y = 0;
      for (int k = 0; k < K; k++) y += (double)X[t * K + k] * d[k];
      ref += y * y;
    }
    ref *= 2.0 / n;
    // Bound: H's entries are float sums of n products (relative error <= (n+2)u of Σ|x||x|), and
    // D·H is a float sum of K products (<= (K+2)u of Σ|d||H|): |err - ref| <= (n + K + 4)·u·M with
    // M = Σ_ij |d_i| (2/n Σ_t |x_ti||x_tj|) |d_j|.
    for (int t = 0; t < n; t++) {
      double y = 0;
      for (int k = 0; k < K; k++) y += fabs((double)X[t * K + k] * d[k]);
      mag += y * y;
    }
    mag *= 2.0 / n;
    CHECK_CLOSE(err[r], ref, (n + K + 4) * k_u * mag, 0);
  }
}

static void test_clip_row(void) {
  enum { K = 96 };
  static float w[K], w2[K], w3[K], H[K * K], Hb[K * 32], X[200 * K], sc[3], sc2[3];
  uint8_t c[K], c2[K], z[3], z2[3];
  struct qs_grid g = qs_grid_default();
  g.group_size = 32;
  g.sym = 0;
  for (int i = 0; i < 200 * K; i++) X[i] = frand();
  memset(H, 0, sizeof(H));
  qs_gptq_hessian_add_ref(H, X, 200, K);
  CHECK_EQ_INT(qs_gptq_hessian_finalize(H, K, 200), QS_OK);
  qs_awq_diag_blocks(&g, H, K, Hb);
  CHECK(Hb[32 * 32 + 5 * 32 + 7] == H[(32 + 5) * K + 32 + 7]); // block 1, entry (5, 7)
  for (int k = 0; k < K; k++) w[k] = frand() * frand() * frand() * 3.0f; // heavy-tailed: clipping pays
  memcpy(w2, w, sizeof(w));
  memcpy(w3, w, sizeof(w));
  double e1 = qs_awq_clip_row_ref(&g, Hb, 0, w2, K, c, sc, z);
  qs_grid_quantize_row_ref(&g, w, NULL, K, c2, sc2, z2, w);
  CHECK(!memcmp(c, c2, K) && !memcmp(sc, sc2, sizeof(sc)) && !memcmp(z, z2, sizeof(z)) && !memcmp(w, w2, sizeof(w)));
  double e2 = qs_awq_clip_row_ref(&g, Hb, 1, w3, K, c, sc, z);
  CHECK(e2 <= e1);
  CHECK(e1 > 0);
}

// Each linear of the group gives the same outputs after the fold: y = Σ_k x_k w_jk against
// y' = Σ_k x'_k (w_jk s_k) with x'_k = x_k / s_k up to rounding (y, y' summed here in double):
//  - after a norm, x'_k = (x̂_k γ_k/s_k) with γ/s rounded: each term differs by at most 4 roundings
//    (γ/s, the norm's product, w·s, and one spare): |y' - y| <= 4u·Σ_k |x_k w_jk|;
//  - after a linear (down reads silu(gate)·up, up's rows divided by s), up'_k·s_k and up_k are two
//    float sums of the same Kp products, each within (Kp+2)u·U_k of the exact one (U_k = Σ_i
//    |xn_i up_ki|, the products perturbed by one more rounding of w/s): |x'_k s_k - x_k| <=
//    |silu(gate_k)|·(2Kp + 6)u·U_k, which adds Σ_k that·|w_jk| (+ one rounding of w·s per term).
// Checked as |y' - y| <= 8u·Σ|x w| + the linear term (twice the roundings counted, for slack).
// L0: the layer, L1: a copy of it that this folds (config c: the model's, or its MHA variant).
static void check_group_outputs(const struct qs_model *m, const struct qs_config *c, struct qs_layer *L0x,
                                struct qs_layer *L1x, int g, const float *s, const int32_t *ids, int T) {
  const struct qs_layout *lay = qs_layout_of(c);
  const struct qs_layout_group *grp = &lay->group[g];
  struct qs_layer L0 = *L0x, L1 = *L1x;
  struct qs_fwd ws0, ws1;
  float *x0 = malloc(sizeof(float) * T * c->hidden), *x1 = malloc(sizeof(float) * T * c->hidden);
  CHECK_EQ_INT(qs_fwd_init(&ws0, c, 1, T), QS_OK);
  CHECK_EQ_INT(qs_fwd_init(&ws1, c, 1, T), QS_OK);
  CHECK_EQ_INT(qs_layer_fold(&L1, c, (enum qs_group)g, s, QS_DTYPE_F32, NULL), QS_OK);
  qs_model_embed(m, ids, T, x0);
  memcpy(x1, x0, sizeof(float) * T * c->hidden);
  const float *X0 = NULL, *X1 = NULL;
  int K0 = 0, K1 = 0;
  for (int st = 0; st <= g; st++) {
    CHECK_EQ_INT(qs_layer_step(c, m->rope_inv_freq, &L0, x0, 1, T, &ws0, st, &X0, &K0), QS_OK);
    CHECK_EQ_INT(qs_layer_step(c, m->rope_inv_freq, &L1, x1, 1, T, &ws1, st, &X1, &K1), QS_OK);
  }
  CHECK_EQ_INT(K0, K1);
  // down: the per-channel error bound of its input after up's rows were divided by s
  double *ein = calloc((size_t)T * K0, sizeof(double));
  if (g == QS_GROUP_O) {
    // o reads softmax-weighted sums of v over positions <= t (weights >= 0, summing to 1): each v_k
    // as the up_k above, plus the two attention sums' own roundings, (t+3)u·max|v_k| each
    const struct qs_linear *v = &L0.v;
    double *V = calloc((size_t)T * K0, sizeof(double)), *va = calloc((size_t)T * K0, sizeof(double));
    for (int t = 0; t < T; t++)
      for (int k = 0; k < K0; k++) {
        double U = 0, y = 0;
        for (int i = 0; i < v->n_in; i++) {
          U += fabs((double)ws0.xn[t * v->n_in + i] * v->w[k * v->n_in + i]);
          y += (double)ws0.xn[t * v->n_in + i] * v->w[k * v->n_in + i];
        }
        V[t * K0 + k] = U, va[t * K0 + k] = fabs(y);
      }
    for (int t = 0; t < T; t++)
      for (int k = 0; k < K0; k++) {
        double mU = 0, mv = 0;
        for (int p = 0; p <= t; p++) mU = fmax(mU, V[p * K0 + k]), mv = fmax(mv, va[p * K0 + k]);
        ein[t * K0 + k] = (2.0 * v->n_in + 6) * k_u * mU + 2.0 * (t + 3) * k_u * mv;
      }
    free(V);
    free(va);
  }
  if (g == QS_GROUP_DOWN) {
    const struct qs_linear *up = &L0.up, *gate = &L0.gate;
    for (int t = 0; t < T; t++)
      for (int k = 0; k < K0; k++) {
        double U = 0, gk = 0;
        for (int i = 0; i < up->n_in; i++) {
          U += fabs((double)ws0.xn[t * up->n_in + i] * up->w[k * up->n_in + i]);
          gk += (double)ws0.xn[t * up->n_in + i] * gate->w[k * gate->n_in + i];
        }
        ein[t * K0 + k] = fabs(gk / (1.0 + exp(-gk))) * (2.0 * up->n_in + 6) * k_u * U;
      }
  }
  int bad = 0;
  double worst = 0;
  for (int i = grp->first; i < grp->first + grp->count; i++) {
    const struct qs_linear *a = &L0.lin[i], *b = &L1.lin[i];
    for (int t = 0; t < T; t++)
      for (int j = 0; j < a->n_out; j++) {
        double y0 = 0, y1 = 0, mag = 0, lin = 0;
        for (int k = 0; k < K0; k++) {
          y0 += (double)X0[t * K0 + k] * a->w[j * K0 + k];
          y1 += (double)X1[t * K0 + k] * b->w[j * K0 + k];
          mag += fabs((double)X0[t * K0 + k] * a->w[j * K0 + k]);
          lin += ein[t * K0 + k] * fabs((double)a->w[j * K0 + k]);
        }
        double tol = 2.0 * (4 * k_u * mag + lin);
        if (fabs(y1 - y0) > tol) bad++;
        if (mag > 0 && fabs(y1 - y0) / tol > worst) worst = fabs(y1 - y0) / tol;
      }
  }
  CHECK_EQ_INT(bad, 0);
  free(ein);
  printf("  group %d (%s): worst |y' - y| at %.2f of its bound\n", g, grp->input, worst);
  qs_fwd_free(&ws0);
  qs_fwd_free(&ws1);
  free(x0);
  free(x1);
}

static void test_fold_stories(void) {
  const char *data = getenv("QS_DATA_DIR");
  char dir[1024];
  struct qs_model m;
  if (!data) {
    printf("note: QS_DATA_DIR unset: the fold is not checked on stories260K\n");
    return;
  }
  snprintf(dir, sizeof(dir), "%s/stories260K", data);
  if (qs_model_open(&m, dir) != QS_OK) {
    printf("note: %s not readable: the fold is not checked\n", dir);
    return;
  }
  const struct qs_layout *lay = qs_layout_of(&m.cfg);
  int32_t ids[24];
  for (int t = 0; t < 24; t++) ids[t] = (int32_t)((t * 37 + 1) % m.cfg.vocab);
  int checked = 0;
  for (int g = 0; g < QS_GROUP_COUNT; g++) {
    int n_out, K, bias;
    if (qs_layout_prev_lin(lay, &m.cfg, (enum qs_group)g) < 0 && !lay->group[g].prev_norm) continue; // o under GQA
    qs_layout_shape(&m.cfg, (enum qs_lin)lay->group[g].first, &n_out, &K, &bias);
    float *s = malloc(sizeof(float) * K);
    for (int k = 0; k < K; k++) s[k] = 0.25f + 1.75f * (frand() + 1.0f); // [0.25, 3.75]: far from 1
    struct qs_layer L0 = {0}, L1 = {0};
    CHECK_EQ_INT(qs_model_load_layer(&m, 0, &L0), QS_OK);
    CHECK_EQ_INT(qs_model_load_layer(&m, 0, &L1), QS_OK);
    CHECK_EQ_INT(qs_layer_fold(&L1, &m.cfg, (enum qs_group)g, s, QS_DTYPE_F32, NULL), QS_OK);
    check_group_outputs(&m, &m.cfg, &L0, &L1, g, s, ids, 24);
    qs_layer_free(&L0);
    qs_layer_free(&L1);
    free(s);
    checked++;
  }
  CHECK_EQ_INT(checked, 3); // stories260K: q/k/v, gate/up, down (GQA: no v -> o fold)
  // v -> o needs every head to read its own v head: the same layer as multi-head attention (each KV
  // head repeated for the query heads that share it, the same function), where o's scales fold into v
  struct qs_config mha = m.cfg;
  mha.n_kv_heads = mha.n_heads;
  CHECK_EQ_INT(qs_layout_prev_lin(lay, &mha, QS_GROUP_O), QS_LIN_V);
  CHECK_EQ_INT(qs_layout_prev_lin(lay, &m.cfg, QS_GROUP_O), -1);
  struct qs_layer L0 = {0}, L1 = {0};
  CHECK_EQ_INT(qs_model_load_layer(&m, 0, &L0), QS_OK);
  const int D = m.cfg.head_dim, rep = m.cfg.n_heads / m.cfg.n_kv_heads, hid = m.cfg.hidden;
  struct qs_linear *kv[2] = {&L0.k, &L0.v};
  for (int j = 0; j < 2; j++) {
    float *w = malloc(sizeof(float) * (size_t)mha.n_heads * D * hid);
    for (int h = 0; h < mha.n_heads; h++)
      memcpy(w + (size_t)h * D * hid, kv[j]->w + (size_t)(h / rep) * D * hid, sizeof(float) * D * hid);
    free(kv[j]->w);
    kv[j]->w = w;
    kv[j]->n_out = mha.n_heads * D;
  }
  L1 = L0;
  float *copies[QS_LIN_COUNT + 2];
  for (int i = 0; i < QS_LIN_COUNT; i++) { // a deep copy of L0's weights for L1
    size_t n = (size_t)L0.lin[i].n_out * L0.lin[i].n_in;
    copies[i] = malloc(sizeof(float) * n);
    memcpy(copies[i], L0.lin[i].w, sizeof(float) * n);
    L1.lin[i].w = copies[i];
    L1.lin[i].b = NULL;
  }
  copies[QS_LIN_COUNT] = L1.attn_norm = malloc(sizeof(float) * hid);
  copies[QS_LIN_COUNT + 1] = L1.mlp_norm = malloc(sizeof(float) * hid);
  memcpy(L1.attn_norm, L0.attn_norm, sizeof(float) * hid);
  memcpy(L1.mlp_norm, L0.mlp_norm, sizeof(float) * hid);
  int K = L0.o.n_in;
  float *s = malloc(sizeof(float) * K);
  for (int k = 0; k < K; k++) s[k] = 0.25f + 1.75f * (frand() + 1.0f);
  CHECK_EQ_INT(qs_layer_fold(&L1, &mha, QS_GROUP_O, s, QS_DTYPE_F32, NULL), QS_OK);
  CHECK(L1.v.w[0] != L0.v.w[0] && L1.o.w[0] != L0.o.w[0]); // both sides of the fold changed
  check_group_outputs(&m, &mha, &L0, &L1, QS_GROUP_O, s, ids, 24);
  for (int i = 0; i < QS_LIN_COUNT + 2; i++) free(copies[i]);
  free(s);
  qs_layer_free(&L0);
  qs_model_close(&m);
}

int main(void) {
  test_scales();
  test_error_vs_tokens();
  test_clip_row();
  test_fold_stories();
  return qs_test_finish("test_awq");
}
