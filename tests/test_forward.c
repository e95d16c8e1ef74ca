// test_forward.c — the decoder layer (src/model/forward.c) and model loading (src/model/model.c):
//  * a layer with random weights built in memory (Qwen2-style q/k/v biases, head_dim*heads != hidden):
//    the batched forward equals a per-sequence composition of the ops bit for bit, sequences do not
//    influence each other, the steps (qs_layer_step) expose the documented group inputs in order and
//    weights replaced between steps are what the forward applies;
//  * loading small checkpoints written here: bf16 weights, errors (wrong shape, missing tensor,
//    untied without lm_head), a GPTQ v1 linear dequantized exactly (v2 / AWQ refused);
//  * stories260K (shared data): teacher-forced argmax of the real model reproduces greedy_ids.json.
// Run: ctest -R test_forward (labels unit, data).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"
#include "model/ops.h"
#include "formats/gptq.h"
#include "qs_test.h"

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static float frand(void) {  // uniform in [-1, 1), deterministic
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return (float)((g_rng >> 40) / 8388608.0 - 1.0);
}
static float *rand_buf(size_t n, float scale) {
  float *p = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) p[i] = scale * frand();
  return p;
}

static struct qs_config tiny_config(void) {
  return (struct qs_config){.arch = QS_ARCH_QWEN2, .hidden = 16, .intermediate = 24, .n_layers = 1,
                            .n_heads = 4, .n_kv_heads = 2, .head_dim = 6, .vocab = 10, .max_pos = 64,
                            .rms_eps = 1e-5f, .rope_theta = 10000.0, .attn_bias = 1, .bos_id = 1};
}

static struct qs_linear rand_linear(int n_out, int n_in, int bias) {
  return (struct qs_linear){n_out, n_in, rand_buf((size_t)n_out * n_in, 0.4f), bias ? rand_buf(n_out, 0.2f) : NULL};
}

static struct qs_layer rand_layer(const struct qs_config *c) {
  const int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
  struct qs_layer L = {.attn_norm = rand_buf(c->hidden, 1.0f), .mlp_norm = rand_buf(c->hidden, 1.0f)};
  L.q = rand_linear(qd, c->hidden, 1);
  L.k = rand_linear(kvd, c->hidden, 1);
  L.v = rand_linear(kvd, c->hidden, 1);
  L.o = rand_linear(c->hidden, qd, 0);
  L.gate = rand_linear(c->intermediate, c->hidden, 0);
  L.up = rand_linear(c->intermediate, c->hidden, 0);
  L.down = rand_linear(c->hidden, c->intermediate, 0);
  return L;
}

// The layer on one sequence x: [T, hidden] composed op by op as transformers' LlamaDecoderLayer
// does; the four group inputs are returned for the hook checks.
struct direct { float *x_qkv, *x_o, *x_gu, *x_down; };
static void layer_direct(const struct qs_config *c, const float *inv, const struct qs_layer *L, float *x,
                         int T, struct direct *d) {
  const int Hd = c->hidden, I = c->intermediate, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
  float *q = malloc(sizeof(float) * T * qd), *k = malloc(sizeof(float) * T * kvd);
  float *v = malloc(sizeof(float) * T * kvd), *up = malloc(sizeof(float) * T * I);
  float *tmp = malloc(sizeof(float) * T * Hd), *scores = malloc(sizeof(float) * T);
  qs_rmsnorm_ref(x, L->attn_norm, d->x_qkv, T, Hd, c->rms_eps);
  qs_matmul(d->x_qkv, L->q.w, L->q.b, q, T, qd, Hd);
  qs_matmul(d->x_qkv, L->k.w, L->k.b, k, T, kvd, Hd);
  qs_matmul(d->x_qkv, L->v.w, L->v.b, v, T, kvd, Hd);
  qs_rope_ref(q, T, c->n_heads, c->head_dim, inv, 0);
  qs_rope_ref(k, T, c->n_kv_heads, c->head_dim, inv, 0);
  qs_attention_ref(q, k, v, d->x_o, T, c->n_heads, c->n_kv_heads, c->head_dim, scores);
  qs_matmul(d->x_o, L->o.w, L->o.b, tmp, T, Hd, qd);
  for (int i = 0; i < T * Hd; i++) x[i] += tmp[i];
  qs_rmsnorm_ref(x, L->mlp_norm, d->x_gu, T, Hd, c->rms_eps);
  qs_matmul(d->x_gu, L->gate.w, NULL, d->x_down, T, I, Hd);
  qs_matmul(d->x_gu, L->up.w, NULL, up, T, I, Hd);
  qs_swiglu_ref(d->x_down, up, d->x_down, (size_t)T * I);
  qs_matmul(d->x_down, L->down.w, NULL, tmp, T, Hd, I);
  for (int i = 0; i < T * Hd; i++) x[i] += tmp[i];
  free(q), free(k), free(v), free(up), free(tmp), free(scores);
}

// Hook that records every call and its input, and (when zero_out) swaps in zero o/down weights.
struct rec {
  int n;
  enum qs_group g[8];
  int rows[8], K[8];
  float *X[8];
  float *zeros, *saved_o, *saved_down;
};
static qs_status rec_hook(void *ctx, enum qs_group g, struct qs_layer *L, const float *X, int rows, int K) {
  struct rec *r = ctx;
  if (r->n >= 8) return QS_ERR_INTERNAL;
  r->g[r->n] = g, r->rows[r->n] = rows, r->K[r->n] = K;
  r->X[r->n] = malloc(sizeof(float) * rows * K);
  memcpy(r->X[r->n], X, sizeof(float) * rows * K);
  r->n++;
  if (r->zeros && g == QS_GROUP_O) r->saved_o = L->o.w, L->o.w = r->zeros;
  if (r->zeros && g == QS_GROUP_DOWN) r->saved_down = L->down.w, L->down.w = r->zeros;
  return QS_OK;
}

// qs_layer_step in order, with a caller's hook between a group's input and its use (what the
// quantize pipeline does): the hook sees each group's input and may replace the group's weights.
typedef qs_status (*hook_fn)(void *ctx, enum qs_group g, struct qs_layer *L, const float *X, int rows, int K);
static qs_status forward_hooked(const struct qs_config *c, const float *inv, struct qs_layer *L, float *x, int B, int T,
                                struct qs_fwd *ws, hook_fn hook, void *ctx) {
  qs_status st = QS_OK;
  for (int s = 0; s <= QS_GROUP_COUNT && st == QS_OK; s++) {
    const float *X = NULL;
    int K = 0;
    st = qs_layer_step(c, inv, L, x, B, T, ws, s, &X, &K);
    if (st == QS_OK && s < QS_GROUP_COUNT) st = hook(ctx, (enum qs_group)s, L, X, B * T, K);
  }
  return st;
}

static void test_layer_in_memory(void) {
  struct qs_config c = tiny_config();
  enum { B = 3, T = 7 };
  const int Hd = c.hidden, I = c.intermediate, qd = c.n_heads * c.head_dim;
  float inv[3];
  qs_rope_inv_freq(&c, inv);
  struct qs_layer L = rand_layer(&c);
  float *x0 = rand_buf((size_t)B * T * Hd, 2.0f), *x = malloc(sizeof(float) * B * T * Hd);
  float *xd = malloc(sizeof(float) * B * T * Hd);
  struct direct d = {malloc(sizeof(float) * B * T * Hd), malloc(sizeof(float) * B * T * qd),
                     malloc(sizeof(float) * B * T * Hd), malloc(sizeof(float) * B * T * I)};
  memcpy(xd, x0, sizeof(float) * B * T * Hd);
  for (int b = 0; b < B; b++) {
    struct direct db = {d.x_qkv + b * T * Hd, d.x_o + b * T * qd, d.x_gu + b * T * Hd, d.x_down + b * T * I};
    layer_direct(&c, inv, &L, xd + b * T * Hd, T, &db);
  }
  struct qs_fwd ws;
  struct rec r = {0};
  CHECK_EQ_INT(qs_fwd_init(&ws, &c, B, T), QS_OK);
  memcpy(x, x0, sizeof(float) * B * T * Hd);
  CHECK_EQ_INT(forward_hooked(&c, inv, &L, x, B, T, &ws, rec_hook, &r), QS_OK);
  CHECK(memcmp(x, xd, sizeof(float) * B * T * Hd) == 0);  // same ops in the same order: same bits
  const enum qs_group order[4] = {QS_GROUP_QKV, QS_GROUP_O, QS_GROUP_GATE_UP, QS_GROUP_DOWN};
  const int Ks[4] = {Hd, qd, Hd, I};
  const float *want[4] = {d.x_qkv, d.x_o, d.x_gu, d.x_down};
  CHECK_EQ_INT(r.n, 4);
  for (int i = 0; i < r.n && i < 4; i++) {
    CHECK_EQ_INT(r.g[i], order[i]);
    CHECK_EQ_INT(r.rows[i], B * T);
    CHECK_EQ_INT(r.K[i], Ks[i]);
    CHECK(memcmp(r.X[i], want[i], sizeof(float) * B * T * Ks[i]) == 0);
  }
  // One sequence alone gives the bits it had in the batch (its neighbours do not matter).
  memcpy(x, x0 + 2 * T * Hd, sizeof(float) * T * Hd);
  CHECK_EQ_INT(qs_layer_forward(&c, inv, &L, x, 1, T, &ws), QS_OK);
  CHECK(memcmp(x, xd + 2 * T * Hd, sizeof(float) * T * Hd) == 0);
  // Weights replaced by the hook are the ones applied: zero o_proj and down_proj leave x as it was.
  struct rec z = {.zeros = calloc((size_t)Hd * (qd > I ? qd : I), sizeof(float))};
  memcpy(x, x0, sizeof(float) * B * T * Hd);
  CHECK_EQ_INT(forward_hooked(&c, inv, &L, x, B, T, &ws, rec_hook, &z), QS_OK);
  CHECK(memcmp(x, x0, sizeof(float) * B * T * Hd) == 0);
  L.o.w = z.saved_o, L.down.w = z.saved_down;
  // A sequence longer than the workspace is refused.
  CHECK(qs_layer_forward(&c, inv, &L, x, 1, T + 1, &ws) != QS_OK);
  for (int i = 0; i < 8; i++) free(r.X[i]), free(z.X[i]);
  free(z.zeros), free(x0), free(x), free(xd), free(d.x_qkv), free(d.x_o), free(d.x_gu), free(d.x_down);
  qs_fwd_free(&ws);
  qs_layer_free(&L);
}

// ---- small checkpoints written here ------------------------------------------------------------
static const char *k_tiny_json =
    "{\"model_type\": \"%s\", \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 1,"
    " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 6, \"vocab_size\": 10,"
    " \"max_position_embeddings\": 64, \"tie_word_embeddings\": %s%s}";

static void add_rand(struct qs_st_writer *w, const char *name, int ndim, int64_t r, int64_t cols, qs_dtype dt) {
  int64_t shape[2] = {r, cols};
  size_t n = (size_t)r * (ndim == 2 ? cols : 1);
  float *f = rand_buf(n, 0.5f);
  uint16_t *h = malloc(n * 2);
  if (dt == QS_DTYPE_BF16) qs_convert_from_f32(f, dt, h, n);
  CHECK_EQ_INT(qs_st_writer_add(w, name, dt, ndim, shape, dt == QS_DTYPE_BF16 ? (void *)h : (void *)f, 1), QS_OK);
  free(f), free(h);
}

// GPTQ 4-bit tensors of q_proj [N 24, K 16], groups of 8, made by the production packer; `want`
// receives the weight they stand for: scale * (code - zero).
enum { GQ_N = 24, GQ_K = 16, GQ_G = 2 };
static void add_gptq_q(struct qs_st_writer *w, float *want) {
  uint8_t codes[GQ_N * GQ_K], zeros[GQ_N * GQ_G];
  uint16_t scales[GQ_N * GQ_G], scales_out[GQ_G * GQ_N];
  int32_t qweight[GQ_K * 4 / 32 * GQ_N], qzeros[GQ_G * GQ_N * 4 / 32], g_idx[GQ_K];
  for (int i = 0; i < GQ_N * GQ_K; i++) codes[i] = (uint8_t)((frand() + 1) * 7.99f);
  for (int i = 0; i < GQ_N * GQ_G; i++) {
    zeros[i] = (uint8_t)(1 + (frand() + 1) * 7.4f);  // 1..15: v1 cannot store a zero point of 0
    scales[i] = qs_f32_to_f16(0.01f + 0.05f * (frand() + 1));
  }
  for (int k = 0; k < GQ_K; k++) g_idx[k] = k / 8;
  for (int n = 0; n < GQ_N; n++)
    for (int k = 0; k < GQ_K; k++)
      want[n * GQ_K + k] = qs_f16_to_f32(scales[n * GQ_G + k / 8]) * (float)(codes[n * GQ_K + k] - zeros[n * GQ_G + k / 8]);
  CHECK_EQ_INT(qs_gptq_pack(codes, scales, zeros, 4, GQ_N, GQ_K, GQ_G, qweight, qzeros, scales_out, NULL), QS_OK);
  const char *p = "model.layers.0.self_attn.q_proj";
  char name[128];
  snprintf(name, sizeof(name), "%s.qweight", p);
  CHECK_EQ_INT(qs_st_writer_add(w, name, QS_DTYPE_I32, 2, (int64_t[]){GQ_K * 4 / 32, GQ_N}, qweight, 1), QS_OK);
  snprintf(name, sizeof(name), "%s.qzeros", p);
  CHECK_EQ_INT(qs_st_writer_add(w, name, QS_DTYPE_I32, 2, (int64_t[]){GQ_G, GQ_N * 4 / 32}, qzeros, 1), QS_OK);
  snprintf(name, sizeof(name), "%s.scales", p);
  CHECK_EQ_INT(qs_st_writer_add(w, name, QS_DTYPE_F16, 2, (int64_t[]){GQ_G, GQ_N}, scales_out, 1), QS_OK);
  snprintf(name, sizeof(name), "%s.g_idx", p);
  CHECK_EQ_INT(qs_st_writer_add(w, name, QS_DTYPE_I32, 1, (int64_t[]){GQ_K}, g_idx, 1), QS_OK);
}

// Writes a one-layer model into dir; `skip` names a tensor to leave out, `bad` one written with a
// wrong shape (NULL: none); with `quant` (config fields), q_proj is stored as GPTQ (into gptq_want).
static float gptq_want[GQ_N * GQ_K];
static void write_tiny_q(const char *dir, const char *arch, int tied, const char *skip, const char *bad,
                         const char *quant) {
  char path[512], json[1024], name[128];
  snprintf(json, sizeof(json), k_tiny_json, arch, tied ? "true" : "false", quant ? quant : "");
  snprintf(path, sizeof(path), "%s/config.json", dir);
  CHECK_EQ_INT(qs_file_write_all(path, json, strlen(json)), QS_OK);
  struct qs_st_writer *w = NULL;
  CHECK_EQ_INT(qs_st_writer_init(&w, dir, 1ull << 40), QS_OK);
  const struct { const char *n; int ndim; int64_t r, c; } t[] = {
      {"model.embed_tokens.weight", 2, 10, 16}, {"model.norm.weight", 1, 16, 1}, {"lm_head.weight", 2, 10, 16},
      {"input_layernorm.weight", 1, 16, 1}, {"post_attention_layernorm.weight", 1, 16, 1},
      {"self_attn.q_proj.weight", 2, 24, 16}, {"self_attn.k_proj.weight", 2, 12, 16},
      {"self_attn.v_proj.weight", 2, 12, 16}, {"self_attn.o_proj.weight", 2, 16, 24},
      {"self_attn.q_proj.bias", 1, 24, 1}, {"self_attn.k_proj.bias", 1, 12, 1}, {"self_attn.v_proj.bias", 1, 12, 1},
      {"mlp.gate_proj.weight", 2, 24, 16}, {"mlp.up_proj.weight", 2, 24, 16}, {"mlp.down_proj.weight", 2, 16, 24}};
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    if (tied && i == 2) continue;
    if (i >= 3) snprintf(name, sizeof(name), "model.layers.0.%s", t[i].n);
    else snprintf(name, sizeof(name), "%s", t[i].n);
    if (skip && !strcmp(name, skip)) continue;
    if (quant && !strcmp(name, "model.layers.0.self_attn.q_proj.weight")) continue;
    int64_t rows = bad && !strcmp(name, bad) ? t[i].r + 1 : t[i].r;
    add_rand(w, name, t[i].ndim, rows, t[i].c, i % 2 ? QS_DTYPE_BF16 : QS_DTYPE_F32);
  }
  if (quant) add_gptq_q(w, gptq_want);
  CHECK_EQ_INT(qs_st_writer_finish(w), QS_OK);
  qs_st_writer_free(w);
}
static void write_tiny(const char *dir, const char *arch, int tied, const char *skip, const char *bad) {
  write_tiny_q(dir, arch, tied, skip, bad, NULL);
}

static qs_status open_and_load(const char *dir) {
  struct qs_model m;
  qs_status st = qs_model_open(&m, dir);
  if (st == QS_OK) st = qs_model_load_layers(&m);
  qs_model_close(&m);
  return st;
}

static void test_loading(void) {
  char dir[] = "/tmp/qs_test_forward_XXXXXX";
  if (!mkdtemp(dir)) QS_TEST_SKIP("cannot create a temporary directory");
  write_tiny(dir, "qwen2", 1, NULL, NULL);
  struct qs_model m;
  CHECK_EQ_INT(qs_model_open(&m, dir), QS_OK);
  CHECK(m.lm_head == m.embed);
  CHECK_EQ_INT(qs_model_load_layers(&m), QS_OK);
  CHECK(m.layers && m.layers[0].q.b && m.layers[0].k.b && m.layers[0].v.b && !m.layers[0].o.b);
  // bf16 tensors (odd entries of the table) arrive as their exact float32 values
  uint32_t bits = 1;
  if (m.norm) memcpy(&bits, &m.norm[3], sizeof(bits));
  CHECK((bits & 0xffffu) == 0 && bits != 0);
  qs_model_close(&m);
  write_tiny(dir, "llama", 0, NULL, NULL);  // untied with lm_head; no biases for llama
  CHECK_EQ_INT(open_and_load(dir), QS_OK);
  write_tiny(dir, "llama", 0, "lm_head.weight", NULL);
  CHECK_EQ_INT(open_and_load(dir), QS_ERR_FORMAT);
  write_tiny(dir, "qwen2", 1, "model.layers.0.self_attn.k_proj.bias", NULL);
  CHECK_EQ_INT(open_and_load(dir), QS_ERR_FORMAT);
  write_tiny(dir, "llama", 1, NULL, "model.layers.0.mlp.down_proj.weight");
  CHECK_EQ_INT(open_and_load(dir), QS_ERR_FORMAT);
  write_tiny(dir, "llama", 1, NULL, "model.embed_tokens.weight");
  CHECK_EQ_INT(open_and_load(dir), QS_ERR_FORMAT);
  CHECK_EQ_INT(open_and_load("/nonexistent/model"), QS_ERR_IO);
  // GPTQ v1 q_proj: dequantized on load to exactly scale * (code - zero)
  const char *gptq = ", \"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 8,"
                     " \"checkpoint_format\": \"gptq\"}";
  write_tiny_q(dir, "llama", 1, NULL, NULL, gptq);
  CHECK_EQ_INT(qs_model_open(&m, dir), QS_OK);
  CHECK_EQ_INT(qs_model_load_layers(&m), QS_OK);
  CHECK(m.layers && !memcmp(m.layers[0].q.w, gptq_want, sizeof(gptq_want)));
  qs_model_close(&m);
  write_tiny_q(dir, "llama", 1, NULL, NULL, ", \"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 8}");
  CHECK_EQ_INT(open_and_load(dir), QS_ERR_FORMAT);  // 4-bit tensors, config says 8
  write_tiny_q(dir, "llama", 1, NULL, NULL, ", \"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4,"
               " \"checkpoint_format\": \"gptq_v2\"}");
  CHECK_EQ_INT(open_and_load(dir), QS_ERR_UNSUPPORTED);
  write_tiny_q(dir, "llama", 1, NULL, NULL, ", \"quantization_config\": {\"quant_method\": \"bitnet\", \"bits\": 4}");
  CHECK_EQ_INT(open_and_load(dir), QS_ERR_UNSUPPORTED);
  CHECK_EQ_INT(qs_dir_remove_tree(dir), QS_OK);
}

// Teacher forcing on the first T ids of greedy_ids.json: the argmax after position t must be id t+1.
static void test_stories260k(void) {
  const char *data = qs_test_data_dir();
  if (!data) {
    printf("note: shared data not found (QS_DATA_DIR unset or absent), stories260K not checked\n");
    return;
  }
  // greedy_ids.json prefix (transformers, float32), first 24 ids
  static const int32_t ids[24] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315,
                                  421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419};
  enum { T = 24 };
  char dir[4096];
  snprintf(dir, sizeof(dir), "%s/stories260K", data);
  struct qs_model m;
  struct qs_fwd ws = {0};
  CHECK_EQ_INT(qs_model_open(&m, dir), QS_OK);
  CHECK_EQ_INT(qs_model_load_layers(&m), QS_OK);
  CHECK_EQ_INT(qs_fwd_init(&ws, &m.cfg, 1, T), QS_OK);
  float *x = malloc(sizeof(float) * T * m.cfg.hidden), *logits = malloc(sizeof(float) * T * m.cfg.vocab);
  qs_model_embed(&m, ids, T, x);
  CHECK_EQ_INT(qs_model_forward_layers(&m, x, T, &ws), QS_OK);
  qs_model_logits(&m, x, logits, T, ws.xn);
  for (int t = 0; t + 1 < T; t++) {
    int best = 0;
    for (int i = 1; i < m.cfg.vocab; i++) best = logits[t * m.cfg.vocab + i] > logits[t * m.cfg.vocab + best] ? i : best;
    CHECK_EQ_INT(best, ids[t + 1]);
  }
  free(x), free(logits);
  qs_fwd_free(&ws);
  qs_model_close(&m);
}

int main(void) {
  test_layer_in_memory();
  test_loading();
  test_stories260k();
  return qs_test_finish("test_forward");
}
