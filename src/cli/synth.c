// synth.c — `qshard synth`: a Hugging Face Llama checkpoint with the exact shapes of a named model
// (tiny, llama-3-8b, llama-3-70b, llama-3.1-405b) and seeded random weights, for speed and memory
// work at 8B–405B scale without downloading anything.
//
// Output (HF layout): config.json, generation_config.json, and model.safetensors or
// model-XXXXX-of-YYYYY.safetensors + model.safetensors.index.json (shards of at most --shard-mb,
// greedy in state-dict order, a larger tensor alone: FORMATS.md §1.4). The directory is built as
// "<out>.tmp.<pid>" and renamed to <out> when complete.
//
// Weights — the generator is part of the contract: any tensor and any element range can be made
// alone, by any rank or thread, and the bytes do not depend on how the work is split:
//   key(tensor) = mix64(seed ^ fnv1a64(tensor name))
//   bits(j)     = mix64(key + (j + 1) * 0x9E3779B97F4A7C15)       (splitmix64 at step j + 1)
//   u1 = ((bits >> 32) + 1) * 2^-32 in (0, 1],  u2 = (bits & 0xFFFFFFFF) * 2^-32 in [0, 1)
//   element 2j     = std * sqrt(-2 ln u1) * cos(2 pi u2)   (Box-Muller in double, rounded to
//   element 2j + 1 = std * sqrt(-2 ln u1) * sin(2 pi u2)    float, then to --dtype, ties to even)
// with ln, sin, cos evaluated by the fixed polynomials below, not libm: bit-identical on every
// IEEE-754 machine.
// mix64 is splitmix64's finalizer. std = 0.02 (transformers' initializer_range) for embeddings and
// linear weights; RMSNorm weights are 1. Keys come from names, not positions: --layers N gives
// exactly the first N layers of the full model, and norm / lm_head do not depend on N.
//
// Under mpirun shard s is written by rank s % P into the shared temporary directory (so <out> must
// be on a filesystem every rank sees); rank 0 writes the JSON files and renames. Same bytes for
// any P.
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "comm.h"
#include "cli/commands.h"
#include "base/dtype.h"
#include "io/outdir.h"
#include "base/qs_common.h"
#include "io/layout.h"
#include "io/safetensors.h"
#include "io/tokens.h"

QS_PARAM(synth_threads, "QS_SYNTH_THREADS", 0) // generator threads per rank; 0 = cores / local ranks

#define SYNTH_INIT_STD 0.02      // transformers LlamaConfig.initializer_range
#define SYNTH_CHUNK (1 << 16)    // elements per generator work item (even: pairs never straddle)
#define SYNTH_NAME_MAX 96

// ---- model presets -----------------------------------------------------------------------------
struct synth_preset {
  const char *name;
  int hidden, inter, layers, heads, kv_heads, vocab, max_pos;
  double rope_theta, rms_eps;
  int llama3_rope;     // rope_scaling {rope_type llama3, factor 8, low 1, high 4, original 8192}
  int bos, eos;
};

// tiny: Llama-3-like proportions (GQA 2:1, head_dim 32) whose sizes pack for 4-bit GPTQ with
// groups of 32 or 128 and split for tensor parallelism 2 (256 / 2 = 128, 768 / 2 = 384 = 3 * 128,
// 4 KV heads / 2).
static const struct synth_preset k_presets[] = {
    {.name = "tiny", .hidden = 256, .inter = 768, .layers = 4, .heads = 8, .kv_heads = 4, .vocab = 1024,
     .max_pos = 2048, .rope_theta = 500000.0, .rms_eps = 1e-5, .bos = 1, .eos = 2},
    {.name = "llama-3-8b", .hidden = 4096, .inter = 14336, .layers = 32, .heads = 32, .kv_heads = 8,
     .vocab = 128256, .max_pos = 8192, .rope_theta = 500000.0, .rms_eps = 1e-5, .bos = 128000, .eos = 128001},
    {.name = "llama-3-70b", .hidden = 8192, .inter = 28672, .layers = 80, .heads = 64, .kv_heads = 8,
     .vocab = 128256, .max_pos = 8192, .rope_theta = 500000.0, .rms_eps = 1e-5, .bos = 128000, .eos = 128001},
    {.name = "llama-3.1-405b", .hidden = 16384, .inter = 53248, .layers = 126, .heads = 128, .kv_heads = 8,
     .vocab = 128256, .max_pos = 131072, .rope_theta = 500000.0, .rms_eps = 1e-5, .llama3_rope = 1,
     .bos = 128000, .eos = 128001},
};
enum { N_PRESETS = sizeof(k_presets) / sizeof(k_presets[0]) };

struct synth_opts {
  const struct synth_preset *preset;
  int layers;
  uint64_t seed;
  qs_dtype dtype;
  const char *out;
  uint64_t max_shard_bytes;
  int force;
  uint64_t tokens;  // --tokens N: also write DIR/tokens.h5 (0 = no)
};

enum synth_init { SYNTH_NORMAL = 0, SYNTH_ONES };

struct synth_tensor {
  char name[SYNTH_NAME_MAX];
  int ndim;
  int64_t shape[2];
  enum synth_init init;
  int shard; // 0-based shard index
};

// ---- generator -----------------------------------------------------------------------------------

static uint64_t synth_fnv1a64(const char *s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001B3ull;
  return h;
}

static uint64_t synth_tensor_key(uint64_t seed, const char *name) { return qs_mix64(seed ^ synth_fnv1a64(name)); }

// ln(u) for u in (0, 1] from +, -, *, / alone. u = m 2^e with m in [sqrt(1/2), sqrt(2));
// ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.1716: the series to s^15 is exact to 1e-15.
static double synth_log(double u) {
  int e = 0;
  double m = frexp(u, &e); // exact: m in [0.5, 1)
  if (m < 0.70710678118654752440) { m *= 2.0; e--; }
  double s = (m - 1.0) / (m + 1.0), s2 = s * s, p = 1.0 / 15;
  static const double k[7] = {1.0 / 13, 1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3, 1.0};
  for (int i = 0; i < 7; i++) p = p * s2 + k[i];
  return (double)e * 0.69314718055994530942 + 2.0 * s * p;
}

// sin and cos of 2 pi u, u in [0, 1): quadrant q = floor(4u) (exact: u has 32 bits), x in [0, pi/2),
// Taylor series to x^17 / x^18 (truncation < 5e-14).
static void synth_sincos_2pi(double u, double *sn, double *cs) {
  static const double ks[9] = {1.0 / 355687428096000.0, -1.0 / 1307674368000.0, 1.0 / 6227020800.0,
                               -1.0 / 39916800.0, 1.0 / 362880.0, -1.0 / 5040.0, 1.0 / 120.0, -1.0 / 6.0, 1.0};
  static const double kc[10] = {-1.0 / 6402373705728000.0, 1.0 / 20922789888000.0, -1.0 / 87178291200.0,
                                1.0 / 479001600.0, -1.0 / 3628800.0, 1.0 / 40320.0, -1.0 / 720.0,
                                1.0 / 24.0, -1.0 / 2.0, 1.0};
  double t = 4.0 * u;
  int q = (int)t;
  double x = (t - (double)q) * 1.57079632679489661923, x2 = x * x, s = 0.0, c = 0.0;
  for (int i = 0; i < 9; i++) s = s * x2 + ks[i];
  for (int i = 0; i < 10; i++) c = c * x2 + kc[i];
  s *= x;
  switch (q & 3) {
  case 0: *sn = s; *cs = c; break;
  case 1: *sn = c; *cs = -s; break;
  case 2: *sn = -s; *cs = -c; break;
  default: *sn = -c; *cs = s; break;
  }
}

// Elements [begin, begin + n) of the tensor with `key` (begin even) as float32. Box-Muller with
// ln, sin and cos from the polynomials above (within 5e-14 of libm) and IEEE +, -, *, /, sqrt
// alone, compiled without FMA contraction: the same bits on every IEEE-754 machine, whatever its
// libm or vector units.
static void synth_normal(uint64_t key, double std, int64_t begin, int64_t n, float *out) {
  for (int64_t i = 0; i < n; i += 2) {
    uint64_t j = (uint64_t)(begin + i) >> 1;
    uint64_t bits = qs_mix64(key + (j + 1) * QS_WEYL);
    double u1 = ((double)(bits >> 32) + 1.0) * 0x1p-32;
    double u2 = (double)(bits & 0xFFFFFFFFu) * 0x1p-32;
    double r = std * sqrt(-2.0 * synth_log(u1)), sn, cs;
    synth_sincos_2pi(u2, &sn, &cs);
    out[i] = (float)(r * cs);
    if (i + 1 < n) out[i + 1] = (float)(r * sn);
  }
}

struct synth_fill_job {
  uint64_t key;
  enum synth_init init;
  qs_dtype dtype;
  int64_t numel;
  uint8_t *out;   // [numel] of dtype
  int n_threads, thread;
  qs_status status;
};

// Work item c covers elements [c * SYNTH_CHUNK, ...); thread t takes items t, t + T, ...
static void *synth_fill_worker(void *arg) {
  struct synth_fill_job *job = arg;
  size_t esize = qs_dtype_size(job->dtype);
  float *tmp = malloc(SYNTH_CHUNK * sizeof(float));
  if (!tmp) { job->status = QS_ERR_OOM; return NULL; }
  int64_t n_items = QS_CEIL_DIV(job->numel, (int64_t)SYNTH_CHUNK);
  for (int64_t c = job->thread; c < n_items; c += job->n_threads) {
    int64_t begin = c * SYNTH_CHUNK, n = QS_MIN((int64_t)SYNTH_CHUNK, job->numel - begin);
    if (job->init == SYNTH_ONES)
      for (int64_t i = 0; i < n; i++) tmp[i] = 1.0f;
    else
      synth_normal(job->key, SYNTH_INIT_STD, begin, n, tmp);
    qs_convert_from_f32(tmp, job->dtype, job->out + (size_t)begin * esize, (size_t)n);
  }
  free(tmp);
  return NULL;
}

static int synth_thread_count(struct qs_comm *world) {
  int64_t t = qs_param_synth_threads();
  if (t <= 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    t = (cores > 0 ? cores : 1) / QS_MAX(1, qs_comm_local_size(world));
  }
  return (int)QS_MAX(1, QS_MIN(t, 256));
}

static qs_status synth_fill(const struct synth_tensor *t, uint64_t seed, qs_dtype dtype, int n_threads,
                            uint8_t *out) {
  qs_status status = QS_OK;
  struct synth_fill_job jobs[256];
  pthread_t tids[256];
  int started = 0;
  int64_t numel = t->shape[0] * (t->ndim > 1 ? t->shape[1] : 1);
  n_threads = (int)QS_MIN((int64_t)n_threads, QS_CEIL_DIV(numel, (int64_t)SYNTH_CHUNK));
  for (int i = 0; i < n_threads; i++)
    jobs[i] = (struct synth_fill_job){synth_tensor_key(seed, t->name), t->init, dtype, numel, out,
                                      n_threads, i, QS_OK};
  for (int i = 1; i < n_threads; i++, started++) {
    int e = pthread_create(&tids[i], NULL, synth_fill_worker, &jobs[i]);
    if (e != 0) { status = qs_report(QS_ERR_INTERNAL, __FILE__, __LINE__, __func__,
                                     "pthread_create: %s", strerror(e)); break; }
  }
  synth_fill_worker(&jobs[0]);
  for (int i = 1; i <= started; i++) pthread_join(tids[i], NULL);
  if (status != QS_OK) return status;
  for (int i = 0; i < n_threads; i++)
    if (jobs[i].status != QS_OK) QS_FAIL(jobs[i].status, "%s: out of memory in the generator", t->name);
fail:
  return status;
}

// ---- plan: tensors in state-dict order, then shards --------------------------------------------
static int synth_add(struct synth_tensor *list, int n, const char *name, int64_t rows, int64_t cols,
                     enum synth_init init) {
  struct synth_tensor *t = &list[n];
  snprintf(t->name, sizeof(t->name), "%s", name);
  t->ndim = cols > 0 ? 2 : 1;
  t->shape[0] = rows;
  t->shape[1] = cols;
  t->init = init;
  return n + 1;
}

// list: room for 9 * layers + 3 tensors.
static int synth_plan_tensors(const struct synth_preset *p, int layers, struct synth_tensor *list) {
  // The decoder layer's linears from the one layout table (io/layout.h), shaped by the preset.
  struct qs_config c = {.hidden = p->hidden, .intermediate = p->inter, .n_heads = p->heads,
                        .n_kv_heads = p->kv_heads, .head_dim = p->hidden / p->heads};
  const struct qs_layout *lay = qs_layout_of(&c);
  int n = synth_add(list, 0, "model.embed_tokens.weight", p->vocab, p->hidden, SYNTH_NORMAL);
  char name[SYNTH_NAME_MAX];
  for (int l = 0; l < layers; l++) {
    for (int k = 0; k < QS_LIN_COUNT; k++) {
      int rows, cols, bias;
      qs_layout_shape(&c, (enum qs_lin)k, &rows, &cols, &bias);
      snprintf(name, sizeof(name), "model.layers.%d.%s.weight", l, lay->lin_name[k]);
      n = synth_add(list, n, name, rows, cols, SYNTH_NORMAL);
    }
    snprintf(name, sizeof(name), "model.layers.%d.input_layernorm.weight", l);
    n = synth_add(list, n, name, p->hidden, 0, SYNTH_ONES);
    snprintf(name, sizeof(name), "model.layers.%d.post_attention_layernorm.weight", l);
    n = synth_add(list, n, name, p->hidden, 0, SYNTH_ONES);
  }
  n = synth_add(list, n, "model.norm.weight", p->hidden, 0, SYNTH_ONES);
  return synth_add(list, n, "lm_head.weight", p->vocab, p->hidden, SYNTH_NORMAL);
}

static uint64_t synth_bytes(const struct synth_tensor *t, qs_dtype dt) {
  return (uint64_t)t->shape[0] * (uint64_t)(t->ndim > 1 ? t->shape[1] : 1) * qs_dtype_size(dt);
}

// Greedy in order (huggingface_hub split_torch_state_dict_into_shards): a tensor that would push
// the current shard past max goes to a new one; a tensor larger than max goes alone.
static int synth_plan_shards(struct synth_tensor *list, int n, qs_dtype dt, uint64_t max) {
  int shard = -1;
  uint64_t cur = 0;
  for (int i = 0; i < n; i++) {
    uint64_t b = synth_bytes(&list[i], dt);
    if (shard < 0 || b > max || cur + b > max) {
      shard++;
      cur = 0;
    }
    list[i].shard = shard;
    cur += b;
    if (b > max) cur = max + 1; // nothing joins an oversized tensor
  }
  return shard + 1;
}

static void synth_shard_name(char *buf, size_t n, int shard, int n_shards) {
  if (n_shards == 1) snprintf(buf, n, "model.safetensors");
  else snprintf(buf, n, "model-%05d-of-%05d.safetensors", shard + 1, n_shards);
}

// snprintf into a path buffer; a path that does not fit is an error, never silently cut.
static qs_status synth_path(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static qs_status synth_path(char *buf, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(buf, n, fmt, ap);
  va_end(ap);
  if (k < 0 || (size_t)k >= n)
    return qs_report(QS_ERR_ARG, __FILE__, __LINE__, __func__, "path too long: %.200s...", buf);
  return QS_OK;
}

// ---- writing -------------------------------------------------------------------------------------
// Shard files go through one qs_st_writer each, so at most one shard's tensors are in memory.
// With several shards the writer works in "<tmp>/.shard-XXXXX" and its model.safetensors is
// renamed to the shard's name.
static qs_status synth_write_shard(const struct synth_opts *o, const char *tmp, struct synth_tensor *list,
                                   int n, int shard, int n_shards, int n_threads, double *t_gen) {
  qs_status status = QS_OK;
  struct qs_st_writer *w = NULL;
  void **bufs = NULL;
  char sub[4096], file[64], from[4096], to[4096];
  QS_ALLOC(bufs, n);
  if (n_shards == 1) QS_TRY(synth_path(sub, sizeof(sub), "%s", tmp));
  else QS_TRY(synth_path(sub, sizeof(sub), "%s/.shard-%05d", tmp, shard + 1));
  QS_TRY(qs_dir_make(sub));
  QS_TRY(qs_st_writer_init(&w, sub, UINT64_MAX));
  for (int i = 0; i < n; i++) {
    if (list[i].shard != shard) continue;
    double t0 = qs_time_now();
    bufs[i] = malloc(QS_MAX(synth_bytes(&list[i], o->dtype), 1));
    if (!bufs[i]) QS_FAIL(QS_ERR_OOM, "%s: out of memory for %" PRIu64 " bytes", list[i].name,
                          synth_bytes(&list[i], o->dtype));
    QS_TRY(synth_fill(&list[i], o->seed, o->dtype, n_threads, bufs[i]));
    *t_gen += qs_time_now() - t0;
    QS_TRY(qs_st_writer_add(w, list[i].name, o->dtype, list[i].ndim, list[i].shape, bufs[i], 0));
  }
  QS_TRY(qs_st_writer_finish(w));
  if (n_shards > 1) {
    synth_shard_name(file, sizeof(file), shard, n_shards);
    QS_TRY(synth_path(from, sizeof(from), "%s/model.safetensors", sub));
    QS_TRY(synth_path(to, sizeof(to), "%s/%s", tmp, file));
    if (rename(from, to) != 0) QS_FAIL(QS_ERR_IO, "rename %s -> %s: %s", from, to, strerror(errno));
    if (rmdir(sub) != 0) QS_FAIL(QS_ERR_IO, "cannot remove %s: %s", sub, strerror(errno));
  }
fail:
  qs_st_writer_free(w);
  for (int i = 0; bufs && i < n; i++) free(bufs[i]);
  free(bufs);
  return status;
}

// Takes ownership of j (NULL: out of memory while building it).
static qs_status synth_write_json(const char *dir, const char *name, json_t *j) {
  qs_status status = QS_OK;
  if (!j) QS_FAIL(QS_ERR_OOM, "%s: out of memory building JSON", name);
  QS_TRY(qs_outdir_write_json(dir, name, j));
fail:
  json_decref(j);
  return status;
}

static const char *synth_torch_dtype(qs_dtype dt) {
  return dt == QS_DTYPE_BF16 ? "bfloat16" : dt == QS_DTYPE_F16 ? "float16" : "float32";
}

// config.json as transformers writes LlamaConfig (the fields of the published Llama 3 configs).
static json_t *synth_config_json(const struct synth_opts *o) {
  const struct synth_preset *p = o->preset;
  json_t *c = json_object();
  json_t *arch = json_array();
  json_array_append_new(arch, json_string("LlamaForCausalLM"));
  json_object_set_new(c, "architectures", arch);
  json_object_set_new(c, "model_type", json_string("llama"));
  json_object_set_new(c, "attention_bias", json_false());
  json_object_set_new(c, "attention_dropout", json_real(0.0));
  json_object_set_new(c, "mlp_bias", json_false());
  json_object_set_new(c, "hidden_act", json_string("silu"));
  json_object_set_new(c, "hidden_size", json_integer(p->hidden));
  json_object_set_new(c, "intermediate_size", json_integer(p->inter));
  json_object_set_new(c, "num_hidden_layers", json_integer(o->layers));
  json_object_set_new(c, "num_attention_heads", json_integer(p->heads));
  json_object_set_new(c, "num_key_value_heads", json_integer(p->kv_heads));
  json_object_set_new(c, "head_dim", json_integer(p->hidden / p->heads));
  json_object_set_new(c, "vocab_size", json_integer(p->vocab));
  json_object_set_new(c, "max_position_embeddings", json_integer(p->max_pos));
  json_object_set_new(c, "rms_norm_eps", json_real(p->rms_eps));
  json_object_set_new(c, "rope_theta", json_real(p->rope_theta));
  json_object_set_new(c, "initializer_range", json_real(SYNTH_INIT_STD));
  json_object_set_new(c, "pretraining_tp", json_integer(1));
  json_object_set_new(c, "tie_word_embeddings", json_false());
  json_object_set_new(c, "use_cache", json_true());
  json_object_set_new(c, "bos_token_id", json_integer(p->bos));
  json_object_set_new(c, "eos_token_id", json_integer(p->eos));
  json_object_set_new(c, "torch_dtype", json_string(synth_torch_dtype(o->dtype)));
  if (p->llama3_rope) {
    json_t *rs = json_object();
    json_object_set_new(rs, "rope_type", json_string("llama3"));
    json_object_set_new(rs, "factor", json_real(8.0));
    json_object_set_new(rs, "low_freq_factor", json_real(1.0));
    json_object_set_new(rs, "high_freq_factor", json_real(4.0));
    json_object_set_new(rs, "original_max_position_embeddings", json_integer(8192));
    json_object_set_new(c, "rope_scaling", rs);
  } else {
    json_object_set_new(c, "rope_scaling", json_null());
  }
  return c;
}

static json_t *synth_generation_json(const struct synth_opts *o) {
  json_t *g = json_object();
  json_object_set_new(g, "_from_model_config", json_true());
  json_object_set_new(g, "bos_token_id", json_integer(o->preset->bos));
  json_object_set_new(g, "eos_token_id", json_integer(o->preset->eos));
  return g;
}

static json_t *synth_index_json(const struct synth_tensor *list, int n, int n_shards, qs_dtype dt) {
  json_t *idx = json_object(), *meta = json_object(), *map = json_object();
  uint64_t total = 0;
  char file[64];
  for (int i = 0; i < n; i++) {
    total += synth_bytes(&list[i], dt);
    synth_shard_name(file, sizeof(file), list[i].shard, n_shards);
    json_object_set_new(map, list[i].name, json_string(file));
  }
  json_object_set_new(meta, "total_size", json_integer((json_int_t)total));
  json_object_set_new(idx, "metadata", meta);
  json_object_set_new(idx, "weight_map", map);
  return idx;
}

// ---- command line --------------------------------------------------------------------------------
static void synth_usage(FILE *f) {
  fprintf(f,
          "usage: qshard synth --config NAME [--layers N] [--seed S] [--dtype bf16|f16|f32]\n"
          "                    [--shard-mb MB] [--force] --out DIR\n"
          "  HF Llama checkpoint with the shapes of NAME and seeded N(0, 0.02) weights (norms 1).\n"
          "  NAME: ");
  for (int i = 0; i < N_PRESETS; i++) fprintf(f, "%s%s", i ? ", " : "", k_presets[i].name);
  fprintf(f, "\n  --layers N   keep the first N decoder layers (default: all)\n"
             "  --seed S     generator seed (default 0); same seed, same bytes\n"
             "  --dtype      bf16 (default), f16 or f32\n"
             "  --shard-mb   largest shard in MB of 10^6 bytes (default 5000, as transformers)\n"
             "  --force      replace an existing DIR\n"
             "  --tokens N   also write DIR/tokens.h5: /input_ids, a 1-D stream of N seeded random ids\n"
             "               (BOS first) for calibration and perplexity smoke runs\n");
}

static int synth_parse_u64(const char *s, uint64_t *v) {
  char *end = NULL;
  errno = 0;
  if (!s || !*s || *s == '-') return -1;
  unsigned long long x = strtoull(s, &end, 0);
  if (errno || *end) return -1;
  *v = x;
  return 0;
}

// Returns QS_OK, or QS_ERR_ARG after one message (printed by rank 0 only: every rank parses the
// same argv). *help = 1 when --help was asked.
static qs_status synth_parse(int argc, char **argv, struct synth_opts *o, int loud, int *help) {
  const char *config = NULL, *dtype = "bf16", *bad = NULL, *what = NULL;
  uint64_t layers = 0, shard_mb = 5000;
  *o = (struct synth_opts){0};
  *help = 0;
  for (int i = 1; i < argc && !bad; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { *help = 1; return QS_OK; }
    if (!strcmp(a, "--force")) { o->force = 1; continue; }
    int takes = !strcmp(a, "--config") || !strcmp(a, "--layers") || !strcmp(a, "--seed") ||
                !strcmp(a, "--dtype") || !strcmp(a, "--out") || !strcmp(a, "--shard-mb") ||
                !strcmp(a, "--tokens");
    if (!takes) { bad = "unknown option"; what = a; break; }
    if (!v) { bad = "missing value after"; what = a; break; }
    i++;
    what = v;
    if (!strcmp(a, "--config")) config = v;
    else if (!strcmp(a, "--dtype")) dtype = v;
    else if (!strcmp(a, "--out")) o->out = v;
    else if (!strcmp(a, "--layers") && (synth_parse_u64(v, &layers) || layers == 0))
      bad = "--layers needs a positive integer, not";
    else if (!strcmp(a, "--seed") && synth_parse_u64(v, &o->seed))
      bad = "--seed needs a non-negative integer, not";
    else if (!strcmp(a, "--tokens") && (synth_parse_u64(v, &o->tokens) || o->tokens < 2 || o->tokens > (1ull << 31)))
      bad = "--tokens needs an integer in [2, 2^31], not";
    else if (!strcmp(a, "--shard-mb") && (synth_parse_u64(v, &shard_mb) || !shard_mb || shard_mb > (1ull << 40)))
      bad = "--shard-mb needs a positive integer, not";
  }
  if (!bad && !config) { bad = "--config NAME is required"; what = ""; }
  for (int i = 0; !bad && i < N_PRESETS; i++)
    if (!strcmp(config, k_presets[i].name)) o->preset = &k_presets[i];
  if (!bad && !o->preset) { bad = "unknown --config"; what = config; }
  if (!bad && (!o->out || !*o->out)) { bad = "--out DIR is required"; what = ""; }
  if (!bad && qs_dtype_from_name(!strcmp(dtype, "bf16") ? "BF16" : !strcmp(dtype, "f16") ? "F16"
                                 : !strcmp(dtype, "f32") ? "F32" : "?", &o->dtype) != 0) {
    bad = "--dtype must be bf16, f16 or f32, not";
    what = dtype;
  }
  if (!bad && layers > (uint64_t)o->preset->layers) {
    if (loud) fprintf(stderr, "qshard synth: --layers %" PRIu64 " exceeds the %d layers of %s\n", layers,
                      o->preset->layers, o->preset->name);
    return QS_ERR_ARG;
  }
  if (bad) {
    if (loud) {
      fprintf(stderr, "qshard synth: %s%s%s%s\n", bad, *what ? " '" : "", what, *what ? "'" : "");
      synth_usage(stderr);
    }
    return QS_ERR_ARG;
  }
  o->layers = layers ? (int)layers : o->preset->layers;
  o->max_shard_bytes = shard_mb * 1000000ull;
  return QS_OK;
}

// ---- the command -----------------------------------------------------------------------------------
// Rank 0: refuses an existing <out> (unless --force) and creates the temporary directory.
static qs_status synth_prepare(const struct synth_opts *o, const char *tmp) {
  qs_status status = QS_OK;
  if (qs_path_exists(o->out) && !o->force)
    QS_FAIL(QS_ERR_ARG, "%s already exists (use --force to replace it)", o->out);
  if (qs_path_exists(tmp)) QS_TRY(qs_dir_remove_tree(tmp));
  QS_TRY(qs_dir_make(tmp));
fail:
  return status;
}

// DIR/tokens.h5: BOS, then ids splitmix64(seed ^ 0x746f6b656e73 + i) mod vocab (the key spells
// "tokens": the stream does not repeat any weight's numbers).
static qs_status synth_write_tokens(const struct synth_opts *o, const char *dir) {
  qs_status status = QS_OK;
  int32_t *ids = NULL;
  char path[4096];
  QS_ALLOC(ids, o->tokens);
  ids[0] = o->preset->bos;
  for (uint64_t i = 1; i < o->tokens; i++) {
    ids[i] = (int32_t)(qs_mix64((o->seed ^ 0x746f6b656e73ull) + i * QS_WEYL) % (uint64_t)o->preset->vocab);
  }
  QS_TRY(synth_path(path, sizeof(path), "%s/tokens.h5", dir));
  QS_TRY(qs_tokens_write(path, NULL, ids, 1, (int64_t)o->tokens, 1));
fail:
  free(ids);
  return status;
}

// Rank 0, after every shard is written: JSON files, a check that every shard (some written by other
// ranks) is visible here, then the rename (an old <out> is moved aside first and removed last).
static qs_status synth_finish(const struct synth_opts *o, const char *tmp, const struct synth_tensor *list,
                              int n, int n_shards, int ranks) {
  qs_status status = QS_OK;
  char file[64], path[4096], old[4096];
  QS_TRY(synth_write_json(tmp, "config.json", synth_config_json(o)));
  QS_TRY(synth_write_json(tmp, "generation_config.json", synth_generation_json(o)));
  if (n_shards > 1)
    QS_TRY(synth_write_json(tmp, "model.safetensors.index.json", synth_index_json(list, n, n_shards, o->dtype)));
  if (o->tokens) QS_TRY(synth_write_tokens(o, tmp));
  for (int s = 0; s < n_shards; s++) {
    synth_shard_name(file, sizeof(file), s, n_shards);
    QS_TRY(synth_path(path, sizeof(path), "%s/%s", tmp, file));
    if (!qs_path_exists(path))
      QS_FAIL(QS_ERR_IO, "%s (written by rank %d) is not visible on rank 0: --out must be on a "
              "filesystem that every rank sees", path, s % ranks);
  }
  QS_TRY(synth_path(old, sizeof(old), "%s.old.tmp.%ld", o->out, (long)getpid()));
  int replace = qs_path_exists(o->out);
  if (replace && rename(o->out, old) != 0) QS_FAIL(QS_ERR_IO, "rename %s -> %s: %s", o->out, old, strerror(errno));
  if (rename(tmp, o->out) != 0) QS_FAIL(QS_ERR_IO, "rename %s -> %s: %s", tmp, o->out, strerror(errno));
  if (replace) QS_TRY(qs_dir_remove_tree(old));
fail:
  return status;
}

static void synth_summary(const struct synth_opts *o, const struct synth_tensor *list, int n, int n_shards,
                          int ranks, int threads, double t_gen, double seconds) {
  uint64_t bytes = 0, params = 0;
  for (int i = 0; i < n; i++) {
    bytes += synth_bytes(&list[i], o->dtype);
    params += synth_bytes(&list[i], o->dtype) / qs_dtype_size(o->dtype);
  }
  qs_log0("synth: %s, %d of %d layers, seed %" PRIu64 ": %" PRIu64 " params (%.3f B), %" PRIu64
          " bytes %s in %d file%s -> %s", o->preset->name, o->layers, o->preset->layers, o->seed, params,
          (double)params * 1e-9, bytes, qs_dtype_name(o->dtype), n_shards, n_shards > 1 ? "s" : "", o->out);
  qs_log0("synth: %.2f s (rank 0 generating %.2f s with %d thread%s; %d rank%s), %.0f MB/s, peak RSS %.2f GB",
          seconds, t_gen, threads, threads > 1 ? "s" : "", ranks, ranks > 1 ? "s" : "",
          seconds > 0 ? (double)bytes / seconds * 1e-6 : 0.0, (double)qs_peak_rss_bytes() * 1e-9);
}

int qs_cmd_synth(struct qs_comm *world, int argc, char **argv) {
  int rank = qs_comm_rank(world), size = qs_comm_size(world), help = 0, ok = 1, n_shards = 0;
  double t0 = qs_time_now(), t_gen = 0;
  struct synth_opts o;
  struct synth_tensor *list = NULL;
  char out[4096], tmp[4096];
  long long pid = 0;
  if (synth_parse(argc, argv, &o, rank == 0, &help) != QS_OK) return 2;
  if (help) { if (rank == 0) synth_usage(stdout); return 0; }
  if (synth_path(out, sizeof(out), "%s", o.out) != QS_OK) return 2;
  for (size_t k = strlen(out); k > 1 && out[k - 1] == '/'; k--) out[k - 1] = '\0'; // "dir/" -> "dir"
  o.out = out;
  list = calloc((size_t)o.layers * 9 + 3, sizeof(*list));
  if (!list) { qs_report(QS_ERR_OOM, __FILE__, __LINE__, __func__, "out of memory"); return 1; }
  int n = synth_plan_tensors(o.preset, o.layers, list);
  n_shards = synth_plan_shards(list, n, o.dtype, o.max_shard_bytes);
  int threads = synth_thread_count(world);

  // The temporary name carries rank 0's pid; every rank learns it (and whether rank 0 is ready).
  if (rank == 0) {
    pid = getpid();
    ok = synth_path(tmp, sizeof(tmp), "%s.tmp.%lld", out, pid) == QS_OK && synth_prepare(&o, tmp) == QS_OK;
  }
  if (qs_comm_allreduce_and(world, &ok) != QS_OK || !ok) goto done;
  if (qs_comm_bcast(world, &pid, sizeof(pid), 0) != QS_OK) { ok = 0; goto done; }
  if (synth_path(tmp, sizeof(tmp), "%s.tmp.%lld", out, pid) != QS_OK) ok = 0;
  for (int s = rank; s < n_shards && ok; s += size)
    ok = synth_write_shard(&o, tmp, list, n, s, n_shards, threads, &t_gen) == QS_OK;
  if (qs_comm_allreduce_and(world, &ok) != QS_OK) ok = 0;
  if (rank == 0 && ok) ok = synth_finish(&o, tmp, list, n, n_shards, size) == QS_OK;
  if (rank == 0 && !ok && qs_path_exists(tmp)) qs_dir_remove_tree(tmp);
  if (rank == 0 && ok) synth_summary(&o, list, n, n_shards, size, threads, t_gen, qs_time_now() - t0);
done:
  free(list);
  return ok ? 0 : 1;
}
