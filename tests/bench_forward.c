// bench_forward.c — CPU forward throughput (float32, OpenBLAS) of the production forward
// (qs_model_forward_layers / qs_layer_forward), against the measured sgemm peak of this machine:
//   1. stories260K, the whole model (embeddings, 5 layers, logits), one sequence of 512 tokens;
//   2. one decoder layer of Llama-3-8B shape (hidden 4096, intermediate 14336, 32 heads, 8 KV
//      heads, head_dim 128) with seeded random weights, B = 1, T = 512.
// Run: OPENBLAS_NUM_THREADS=2 build/tests/bench_forward [--smoke]   (--smoke: tiny sizes, for ctest)
// QS_DATA_DIR locates stories260K (part 1 is skipped without it).
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "qs_test.h"
#include "model/ops.h"

static uint64_t g_rng = 0x853C49E6748FEA9Bull;
static float frand(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return (float)((g_rng >> 40) / 8388608.0 - 1.0);
}

static float *rand_buf(size_t n, float scale) {
  float *p = malloc(n * sizeof(float));
  if (!p) {
    fprintf(stderr, "bench_forward: out of memory (%zu floats)\n", n);
    exit(1);
  }
  for (size_t i = 0; i < n; i++) p[i] = scale * frand();
  return p;
}

// Best-of-`reps` seconds of an sgemm [n, n] x [n, n]^T: the achievable float32 rate here.
static double sgemm_peak_gflops(int n, int reps) {
  float *a = rand_buf((size_t)n * n, 1), *b = rand_buf((size_t)n * n, 1), *c = rand_buf((size_t)n * n, 1);
  double best = 1e30;
  for (int r = 0; r < reps + 1; r++) {  // first run is warm-up
    double t0 = qs_time_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double dt = qs_time_now() - t0;
    if (r > 0 && dt < best) best = dt;
  }
  free(a), free(b), free(c);
  return 2.0 * n * n * n / best / 1e9;
}

// Forward FLOPs of one layer on T tokens: 2 per weight per token, plus causal attention
// (q·k and p·v: 2 * 2 * D per (query, key) pair, T(T+1)/2 pairs per head).
static double layer_flops(const struct qs_config *c, int T) {
  double w = (double)qs_config_layer_params(c) - 2.0 * c->hidden;
  return 2.0 * w * T + 4.0 * c->head_dim * c->n_heads * (T * (T + 1.0) / 2);
}

static int bench_stories(const char *data, int T, int reps, double peak) {
  qs_status status = QS_OK;
  char dir[4096];
  struct qs_model m = {0};
  struct qs_fwd ws = {0};
  float *x = NULL, *logits = NULL;
  int32_t *ids = NULL;
  snprintf(dir, sizeof(dir), "%s/stories260K", data);
  QS_TRY(qs_model_open(&m, dir));
  QS_TRY(qs_model_load_layers(&m));
  QS_TRY(qs_fwd_init(&ws, &m.cfg, 1, T));
  QS_ALLOC(x, (size_t)T * m.cfg.hidden);
  QS_ALLOC(logits, (size_t)T * m.cfg.vocab);
  QS_ALLOC(ids, T);
  for (int i = 0; i < T; i++) ids[i] = (int32_t)((frand() + 1) * 0.5f * (m.cfg.vocab - 1));
  double best = 1e30;
  for (int r = 0; r < reps + 1; r++) {
    double t0 = qs_time_now();
    qs_model_embed(&m, ids, T, x);
    QS_TRY(qs_model_forward_layers(&m, x, T, &ws));
    qs_model_logits(&m, x, logits, T, ws.xn);
    double dt = qs_time_now() - t0;
    if (r > 0 && dt < best) best = dt;
  }
  double flops = m.cfg.n_layers * layer_flops(&m.cfg, T) + 2.0 * m.cfg.vocab * m.cfg.hidden * T;
  printf("stories260K full model  T=%-4d  %8.3f ms  %10.0f tokens/s  %6.2f GFLOP/s (%4.1f%% of sgemm peak)\n",
         T, best * 1e3, T / best, flops / best / 1e9, 100 * flops / best / 1e9 / peak);
fail:
  free(x), free(logits), free(ids);
  qs_fwd_free(&ws);
  qs_model_close(&m);
  return status == QS_OK ? 0 : 1;
}

static int bench_layer(const struct qs_config *c, const char *name, int T, int reps, double peak) {
  qs_status status = QS_OK;
  const size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
  struct qs_fwd ws = {0};
  float inv[256];
  float *x = rand_buf((size_t)T * c->hidden, 1.0f);
  const float s_h = 1.0f / sqrtf((float)c->hidden), s_i = 1.0f / sqrtf((float)c->intermediate);
  struct qs_layer L = {.attn_norm = rand_buf(c->hidden, 1), .mlp_norm = rand_buf(c->hidden, 1)};
  L.q = (struct qs_linear){(int)qd, c->hidden, rand_buf(qd * c->hidden, s_h), NULL};
  L.k = (struct qs_linear){(int)kvd, c->hidden, rand_buf(kvd * c->hidden, s_h), NULL};
  L.v = (struct qs_linear){(int)kvd, c->hidden, rand_buf(kvd * c->hidden, s_h), NULL};
  L.o = (struct qs_linear){c->hidden, (int)qd, rand_buf(qd * c->hidden, s_h), NULL};
  L.gate = (struct qs_linear){c->intermediate, c->hidden, rand_buf((size_t)c->intermediate * c->hidden, s_h), NULL};
  L.up = (struct qs_linear){c->intermediate, c->hidden, rand_buf((size_t)c->intermediate * c->hidden, s_h), NULL};
  L.down = (struct qs_linear){c->hidden, c->intermediate, rand_buf((size_t)c->intermediate * c->hidden, s_i), NULL};
  qs_rope_inv_freq(c, inv);
  QS_TRY(qs_fwd_init(&ws, c, 1, T));
  double best = 1e30;
  for (int r = 0; r < reps + 1; r++) {
    double t0 = qs_time_now();
    QS_TRY(qs_layer_forward(c, inv, &L, x, 1, T, &ws));
    double dt = qs_time_now() - t0;
    if (r > 0 && dt < best) best = dt;
  }
  double fl = layer_flops(c, T);
  printf("%-23s T=%-4d  %8.1f ms  %10.1f tokens/s  %6.2f GFLOP/s (%4.1f%% of sgemm peak)\n", name, T,
         best * 1e3, T / best, fl / best / 1e9, 100 * fl / best / 1e9 / peak);
fail:
  qs_fwd_free(&ws);
  qs_layer_free(&L);
  free(x);
  return status == QS_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  const int smoke = argc > 1 && !strcmp(argv[1], "--smoke");
  const char *data = qs_test_data_dir(); // NULL when unset or absent
  const int reps = smoke ? 1 : 3;
  printf("bench_forward: float32 CPU forward, OpenBLAS %d thread(s)%s\n", openblas_get_num_threads(),
         smoke ? " [smoke sizes]" : "");
  double peak = sgemm_peak_gflops(smoke ? 256 : 2048, reps);
  printf("sgemm peak (%d^3, NoTrans x Trans): %.2f GFLOP/s\n", smoke ? 256 : 2048, peak);
  int rc = 0;
  if (data) rc |= bench_stories(data, smoke ? 32 : 512, smoke ? 1 : 10, peak);
  else printf("stories260K: skipped (shared data not found: QS_DATA_DIR unset or absent)\n");
  struct qs_config c = {.arch = QS_ARCH_LLAMA, .hidden = 4096, .intermediate = 14336, .n_layers = 1,
                        .n_heads = 32, .n_kv_heads = 8, .head_dim = 128, .vocab = 128256, .max_pos = 8192,
                        .rms_eps = 1e-5f, .rope_theta = 500000.0};
  if (smoke) c.hidden = 256, c.intermediate = 512, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 64;
  rc |= bench_layer(&c, smoke ? "tiny layer" : "llama-3-8b layer", smoke ? 64 : 512, reps, peak);
  return rc;
}
