// trtllm_ckpt.c — `qshard quantize --tp T`: the TensorRT-LLM per-rank checkpoint (contract and
// tensor list: trtllm.h; format: FORMATS.md §6.1). Each writer rank cuts its shards out of every
// quantized module as it is emitted, adds the dense tensors from the input checkpoint at the end,
// and writes its rank files itself; rank 0 writes config.json.
#include "formats/trtllm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "io/outdir.h"

// How a decoder linear is split over TP ranks (§6.1 table; convert.py load_weights_from_gptq).
enum qs_trtllm_split {
  QS_TRTLLM_SPLIT_COLUMN = 0, // output columns of [K/8, N] split: N/T each
  QS_TRTLLM_SPLIT_ROW,        // input rows split: K/T each, groups aligned
  QS_TRTLLM_SPLIT_QKV,        // column split, q/k/v fused into one [q_t | k_t | v_t]
};

static const struct {
  const char *hf, *trt;
  enum qs_trtllm_split split;
  int part; // QKV: 0 q, 1 k, 2 v
} k_linears[] = {
    {"self_attn.q_proj", "attention.qkv", QS_TRTLLM_SPLIT_QKV, 0},
    {"self_attn.k_proj", "attention.qkv", QS_TRTLLM_SPLIT_QKV, 1},
    {"self_attn.v_proj", "attention.qkv", QS_TRTLLM_SPLIT_QKV, 2},
    {"self_attn.o_proj", "attention.dense", QS_TRTLLM_SPLIT_ROW, 0},
    {"mlp.gate_proj", "mlp.fc", QS_TRTLLM_SPLIT_COLUMN, 0}, // §6: mlp.fc is gate_proj
    {"mlp.up_proj", "mlp.gate", QS_TRTLLM_SPLIT_COLUMN, 0}, // §6: mlp.gate is up_proj
    {"mlp.down_proj", "mlp.proj", QS_TRTLLM_SPLIT_ROW, 0},
};
#define QS_TRTLLM_N_LINEARS ((int)(sizeof(k_linears) / sizeof(k_linears[0])))
#define QS_TRTLLM_PER_LAYER 5 // TensorRT-LLM linears per layer: qkv, dense, fc, gate, proj

// One TensorRT-LLM linear of one shard, being assembled (the fused qkv over three modules).
struct qs_trtllm_linear {
  int64_t K, G, N;           // shard sizes: qweight [K/8, N], qzeros [G, N/8], scales [G, N]
  int32_t *qweight, *qzeros; // GPTQ v1 packing
  uint16_t *scales;          // fp16
  int32_t *g_idx;            // [K], shard-local
  int parts;                 // modules copied in so far
};

struct qs_trtllm_shard {
  int t;                       // TP rank = rank file index
  char *dir;                   // writer directory tmp/trtllm/.rank{t} (model.safetensors renamed out)
  struct qs_st_writer *w;
  struct qs_trtllm_linear qkv; // pending fused q/k/v of the current layer
  int n_linears;               // TensorRT-LLM linears added
};

struct qs_trtllm {
  int T, P, rank;
  char *dir; // tmp/trtllm
  int n_shards;
  struct qs_trtllm_shard *s; // shards t with t % P == rank, ascending
};

// 32/bits codes per int32 word; --tp allows 4 bits only (W4A16_GPTQ).
#define QS_TRTLLM_PF 8

// ---- the check, before any work ---------------------------------------------------------------------

// One message from rank 0 naming the option; QS_ERR_ARG everywhere (quantize.h).
#define refuse(world, value, ...) qs_quantize_refuse(world, "--tp", value, __VA_ARGS__)

enum qs_trtllm_dense { QS_TRTLLM_DENSE_COPY = 0, QS_TRTLLM_DENSE_VOCAB, QS_TRTLLM_DENSE_LINEAR,
                       QS_TRTLLM_DENSE_SKIP, QS_TRTLLM_DENSE_UNKNOWN };

// The §6.1 name of an input tensor that is not quantized (out), or what else it is.
static enum qs_trtllm_dense dense_map(const char *hf, char *out, size_t n) {
  int l = -1, off = 0;
  if (!strcmp(hf, "model.embed_tokens.weight")) { snprintf(out, n, "transformer.vocab_embedding.weight"); return QS_TRTLLM_DENSE_COPY; }
  if (!strcmp(hf, "model.norm.weight")) { snprintf(out, n, "transformer.ln_f.weight"); return QS_TRTLLM_DENSE_COPY; }
  if (!strcmp(hf, "lm_head.weight")) { snprintf(out, n, "lm_head.weight"); return QS_TRTLLM_DENSE_VOCAB; }
  if (sscanf(hf, "model.layers.%d.%n", &l, &off) != 1 || off == 0 || l < 0) return QS_TRTLLM_DENSE_UNKNOWN;
  const char *rest = hf + off;
  if (!strcmp(rest, "input_layernorm.weight")) {
    snprintf(out, n, "transformer.layers.%d.input_layernorm.weight", l);
    return QS_TRTLLM_DENSE_COPY;
  }
  if (!strcmp(rest, "post_attention_layernorm.weight")) {
    snprintf(out, n, "transformer.layers.%d.post_layernorm.weight", l);
    return QS_TRTLLM_DENSE_COPY;
  }
  if (!strcmp(rest, "self_attn.rotary_emb.inv_freq")) return QS_TRTLLM_DENSE_SKIP; // engines recompute it
  for (int i = 0; i < QS_TRTLLM_N_LINEARS; i++) {
    size_t m = strlen(k_linears[i].hf);
    if (!strncmp(rest, k_linears[i].hf, m) && !strcmp(rest + m, ".weight")) return QS_TRTLLM_DENSE_LINEAR;
  }
  return QS_TRTLLM_DENSE_UNKNOWN;
}

static const char *dtype_json(qs_dtype t) {
  return t == QS_DTYPE_BF16 ? "bfloat16" : t == QS_DTYPE_F16 ? "float16" : t == QS_DTYPE_F32 ? "float32" : NULL;
}

// Options and model type (FORMATS §6.1: W4A16_GPTQ import, Llama layout).
static qs_status check_options(struct qs_comm *w, const struct qs_qargs *a, const struct qs_config *c) {
  int T = a->tp;
  const struct qs_quant_opts *o = &a->q;
  if (o->bits != 4)
    return refuse(w, T, "TensorRT-LLM's GPTQ checkpoint (quant_algo W4A16_GPTQ, FORMATS §6.1) is 4-bit only; got --bits %d", o->bits);
  if (o->group_size <= 0)
    return refuse(w, T, "W4A16_GPTQ is groupwise: --group-size %d (one group per row) has no TensorRT-LLM layout", o->group_size);
  if (o->act_order && !o->static_groups)
    return refuse(w, T, "--act-order without --static-groups: TensorRT-LLM's GPTQ import reads qweight, qzeros and "
                        "scales only and ignores g_idx (FORMATS §6.1), so reordered groups would load wrong; add --static-groups");
  if (c->arch == QS_ARCH_QWEN2)
    return refuse(w, T, "FORMATS §6.1 specifies the Llama layout (LlamaForCausalLM) only; %s models are not supported", c->model_type);
  if (c->attn_bias || c->mlp_bias)
    return refuse(w, T, "the model has linear biases; the TensorRT-LLM layout of FORMATS §6.1 has none");
  if (!dtype_json(c->dtype))
    return refuse(w, T, "model dtype %s has no TensorRT-LLM name (float32, float16, bfloat16)", qs_dtype_name(c->dtype));
  return QS_OK;
}

// Shapes: whole heads per rank, packed widths, group boundaries on shard boundaries.
static qs_status check_shapes(struct qs_comm *w, const struct qs_qargs *a, const struct qs_config *c) {
  int T = a->tp, gs = a->q.group_size, pf = QS_TRTLLM_PF;
  if (c->n_heads % T)
    return refuse(w, T, "num_attention_heads %d is not divisible by %d (each TP rank holds whole query heads)", c->n_heads, T);
  if (c->n_kv_heads % T && T % c->n_kv_heads)
    return refuse(w, T, "num_key_value_heads %d: neither it divides by %d nor %d by it (KV heads are split or duplicated, "
                        "FORMATS §6.1)", c->n_kv_heads, T, T);
  if (c->intermediate % T)
    return refuse(w, T, "intermediate_size %d is not divisible by %d (gate/up/down are split on it)", c->intermediate, T);
  // Every K whole groups (TensorRT-LLM's scales are [K/group, N]) and every shard's K whole groups;
  // every shard's N whole packed qzeros words.
  const struct { const char *what; long long v, mult; } need[] = {
      {"hidden_size (input of q/k/v/gate/up, output of o/down)", c->hidden, gs},
      {"num_attention_heads*head_dim/T (q columns and o_proj inputs per rank)", (long long)c->n_heads / T * c->head_dim, gs},
      {"KV columns per rank (max(num_key_value_heads/T, 1)*head_dim)", (long long)QS_MAX(c->n_kv_heads / T, 1) * c->head_dim, pf},
      {"intermediate_size/T (gate/up columns and down_proj inputs per rank)", c->intermediate / T, gs},
  };
  for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
    long long v = need[i].v, m = v % need[i].mult ? need[i].mult : pf;
    if (v % m)
      return refuse(w, T, "%s = %lld is not a multiple of %lld (group size %d, 8 4-bit codes per packed word): groups "
                          "or packed words would straddle TP shards", need[i].what, v, m, gs);
  }
  return QS_OK;
}

qs_status qs_trtllm_check(struct qs_comm *world, const struct qs_qargs *a, const struct qs_model *m) {
  char name[256];
  qs_status st = check_options(world, a, &m->cfg); // no backtrace lines: the one message says it all
  if (st == QS_OK) st = check_shapes(world, a, &m->cfg);
  for (size_t i = 0; st == QS_OK && i < m->ckpt.n_tensors; i++) {
    const char *hf = m->ckpt.by_name[i]->name;
    if (dense_map(hf, name, sizeof(name)) == QS_TRTLLM_DENSE_UNKNOWN)
      st = refuse(world, a->tp, "input tensor %s (%s) has no TensorRT-LLM name in FORMATS §6.1", hf, m->ckpt.path);
  }
  return st;
}

// ---- shards: setup ----------------------------------------------------------------------------------

static qs_status shard_init(struct qs_trtllm_shard *s, const char *trtdir, int t) {
  qs_status status = QS_OK;
  char sub[64];
  snprintf(sub, sizeof(sub), ".rank%d", t);
  s->t = t;
  s->dir = qs_path_join(trtdir, sub);
  if (!s->dir) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(qs_st_writer_init(&s->w, s->dir, 0)); // no size limit: one file per rank
fail:
  return status;
}

static void linear_free(struct qs_trtllm_linear *L) {
  free(L->qweight);
  free(L->qzeros);
  free(L->scales);
  free(L->g_idx);
  *L = (struct qs_trtllm_linear){0};
}

void qs_trtllm_free(struct qs_trtllm *tr) {
  if (!tr) return;
  for (int i = 0; i < tr->n_shards; i++) {
    linear_free(&tr->s[i].qkv);
    qs_st_writer_free(tr->s[i].w);
    free(tr->s[i].dir);
  }
  free(tr->s);
  free(tr->dir);
  free(tr);
}

qs_status qs_trtllm_init(struct qs_qrun *run, const char *tmp) {
  qs_status status = QS_OK;
  struct qs_trtllm *tr = NULL;
  char path[4096] = {0};
  int rank = qs_comm_rank(run->world), P = qs_comm_size(run->world);
  if (rank == 0) {
    snprintf(path, sizeof(path), "%s/trtllm", tmp);
    QS_TRY(qs_dir_remove_tree(path)); // a resumed run's leftovers: every file here is written anew
    QS_TRY(qs_dir_make(path));        // before the broadcast: every rank may write into it afterwards
  }
  QS_TRY(qs_comm_bcast(run->world, path, sizeof(path), 0));
  QS_ALLOC(tr, 1);
  tr->T = run->a->tp;
  tr->P = P;
  tr->rank = rank;
  tr->dir = strdup(path);
  if (!tr->dir) QS_FAIL(QS_ERR_OOM, "out of memory");
  for (int t = rank; t < tr->T; t += P) tr->n_shards++;
  if (tr->n_shards) QS_ALLOC(tr->s, tr->n_shards);
  for (int i = 0; i < tr->n_shards; i++) QS_TRY(shard_init(&tr->s[i], path, rank + i * P));
  run->trtllm = tr;
  return QS_OK;
fail:
  qs_trtllm_free(tr);
  return status;
}

int qs_trtllm_is_writer(const struct qs_qrun *run) { return run->a->tp > 0 && qs_comm_rank(run->world) < run->a->tp; }

// ---- shards: quantized linears ------------------------------------------------------------------------

static qs_status linear_alloc(struct qs_trtllm_linear *L, int64_t K, int64_t G, int64_t N) {
  qs_status status = QS_OK;
  *L = (struct qs_trtllm_linear){.K = K, .G = G, .N = N};
  QS_ALLOC(L->qweight, K / QS_TRTLLM_PF * N);
  QS_ALLOC(L->qzeros, G * (N / QS_TRTLLM_PF));
  QS_ALLOC(L->scales, G * N);
  QS_ALLOC(L->g_idx, K);
fail:
  return status;
}

// dst[r, d0 + j] = src[r, c0 + j] for r < rows, j < w: row-major arrays of `elem`-byte items with
// dld / sld items per row.
static void copy_cols(void *dst, int64_t dld, int64_t d0, const void *src, int64_t sld, int64_t c0, int64_t rows,
                      int64_t w, size_t elem) {
  for (int64_t r = 0; r < rows; r++)
    memcpy((char *)dst + ((size_t)(r * dld + d0)) * elem, (const char *)src + ((size_t)(r * sld + c0)) * elem,
           (size_t)w * elem);
}

// Output columns [c0, c0 + w) of module p into columns [d0, d0 + w) of L (every input row): qweight
// and scales by column, qzeros by packed word (c0, w, d0 are multiples of 8, checked up front).
static void linear_put_cols(struct qs_trtllm_linear *L, const struct qs_qpacked *p, int64_t c0, int64_t w, int64_t d0) {
  int64_t pf = QS_TRTLLM_PF;
  copy_cols(L->qweight, L->N, d0, p->qweight, p->N, c0, p->K / pf, w, sizeof(int32_t));
  copy_cols(L->qzeros, L->N / pf, d0 / pf, p->qzeros, p->N / pf, c0 / pf, p->G, w / pf, sizeof(int32_t));
  copy_cols(L->scales, L->N, d0, p->scales, p->N, c0, p->G, w, sizeof(uint16_t));
  memcpy(L->g_idx, p->g_idx, (size_t)p->K * sizeof(int32_t));
  L->parts++;
}

// Input rows [t*K/T, (t+1)*K/T) of module p: whole packed rows of qweight, whole groups of
// qzeros/scales (K/T is a multiple of the group size), g_idx made shard-local.
static void linear_put_rows(struct qs_trtllm_linear *L, const struct qs_qpacked *p, int t) {
  int64_t pf = QS_TRTLLM_PF, N = p->N;
  memcpy(L->qweight, p->qweight + t * (L->K / pf) * N, (size_t)(L->K / pf * N) * sizeof(int32_t));
  memcpy(L->qzeros, p->qzeros + t * L->G * (N / pf), (size_t)(L->G * (N / pf)) * sizeof(int32_t));
  memcpy(L->scales, p->scales + t * L->G * N, (size_t)(L->G * N) * sizeof(uint16_t));
  for (int64_t k = 0; k < L->K; k++) L->g_idx[k] = p->g_idx[t * L->K + k] - (int32_t)(t * L->G);
  L->parts++;
}

// TensorRT-LLM's `zero` (convert.py load_weights_from_gptq, FORMATS §6.1): (8 - 1 - qz) * scale with
// qz the stored v1 zero (z - 1), rounded once to fp16 — the product of a small integer and an fp16
// value is exact in fp32, so this equals torch's fp16 multiply bit for bit.
static void linear_zero(const struct qs_trtllm_linear *L, uint16_t *zero) {
  int64_t N = L->N, wpr = N / QS_TRTLLM_PF;
  for (int64_t g = 0; g < L->G; g++)
    for (int64_t n = 0; n < N; n++) {
      int qz = (int)(((uint32_t)L->qzeros[g * wpr + n / QS_TRTLLM_PF] >> (4 * (n % QS_TRTLLM_PF))) & 0xFu);
      zero[g * N + n] = qs_f32_to_f16((float)(7 - qz) * qs_f16_to_f32(L->scales[g * N + n]));
    }
}

static qs_status add_tensor(struct qs_st_writer *w, const char *prefix, const char *suffix, qs_dtype dt, int64_t d0,
                            int64_t d1, int ndim, const void *data) {
  char name[256];
  int64_t shape[2] = {d0, d1};
  snprintf(name, sizeof(name), "%s.%s", prefix, suffix);
  return qs_st_writer_add(w, name, dt, ndim, shape, data, 1);
}

// The finished linear into the shard's writer (copied), then freed.
static qs_status linear_emit(struct qs_trtllm_shard *s, int layer, const char *trt, struct qs_trtllm_linear *L) {
  qs_status status = QS_OK;
  uint16_t *zero = NULL;
  char prefix[160];
  int64_t pf = QS_TRTLLM_PF;
  snprintf(prefix, sizeof(prefix), "transformer.layers.%d.%s", layer, trt);
  QS_ALLOC(zero, L->G * L->N);
  linear_zero(L, zero);
  QS_TRY(add_tensor(s->w, prefix, "qweight", QS_DTYPE_I32, L->K / pf, L->N, 2, L->qweight));
  QS_TRY(add_tensor(s->w, prefix, "qzeros", QS_DTYPE_I32, L->G, L->N / pf, 2, L->qzeros));
  QS_TRY(add_tensor(s->w, prefix, "weights_scaling_factor", QS_DTYPE_F16, L->G, L->N, 2, L->scales));
  QS_TRY(add_tensor(s->w, prefix, "zero", QS_DTYPE_F16, L->G, L->N, 2, zero));
  QS_TRY(add_tensor(s->w, prefix, "g_idx", QS_DTYPE_I32, L->K, 0, 1, L->g_idx));
  s->n_linears++;
fail:
  free(zero);
  linear_free(L);
  return status;
}

// Columns of q, k or v that rank t holds and where they go in the fused [q_t | k_t | v_t]; KV heads
// duplicated when there are fewer than T (rank t holds head t*nkv/T: dup_kv_weight, §6.1).
static void qkv_cols(const struct qs_config *c, int T, int t, int part, int64_t *c0, int64_t *w, int64_t *d0,
                     int64_t *N_fused) {
  int64_t hd = c->head_dim, qw = (int64_t)c->n_heads / T * hd, kw = (int64_t)QS_MAX(c->n_kv_heads / T, 1) * hd;
  int64_t h0 = (int64_t)t * c->n_kv_heads / T;
  *N_fused = qw + 2 * kw;
  *w = part == 0 ? qw : kw;
  *c0 = part == 0 ? t * qw : h0 * hd;
  *d0 = part == 0 ? 0 : part == 1 ? qw : qw + kw;
}

// One module's slice for shard s (whole linears are emitted at once; q/k/v when v arrives).
static qs_status shard_add(struct qs_trtllm *tr, struct qs_trtllm_shard *s, const struct qs_qrun *run, int li,
                           const struct qs_qpacked *p) {
  qs_status status = QS_OK;
  struct qs_trtllm_linear L = {0};
  int T = tr->T, t = s->t, gs = run->a->q.group_size;
  if (k_linears[li].split == QS_TRTLLM_SPLIT_ROW) {
    QS_TRY(linear_alloc(&L, p->K / T, p->K / T / gs, p->N));
    linear_put_rows(&L, p, t);
    return linear_emit(s, run->layer, k_linears[li].trt, &L);
  }
  if (k_linears[li].split == QS_TRTLLM_SPLIT_COLUMN) {
    QS_TRY(linear_alloc(&L, p->K, p->G, p->N / T));
    linear_put_cols(&L, p, t * (p->N / T), p->N / T, 0);
    return linear_emit(s, run->layer, k_linears[li].trt, &L);
  }
  int64_t c0, w, d0, Nf;
  int part = k_linears[li].part;
  qkv_cols(&run->m->cfg, T, t, part, &c0, &w, &d0, &Nf);
  if (s->qkv.parts != part)
    QS_FAIL(QS_ERR_INTERNAL, "layer %d: %s out of order (q, k, v expected)", run->layer, k_linears[li].hf);
  if (part == 0) QS_TRY(linear_alloc(&s->qkv, p->K, p->G, Nf));
  else if (memcmp(s->qkv.g_idx, p->g_idx, (size_t)p->K * sizeof(int32_t)))
    QS_FAIL(QS_ERR_INTERNAL, "layer %d: q/k/v g_idx differ; the fused qkv has one", run->layer);
  linear_put_cols(&s->qkv, p, c0, w, d0);
  if (part == 2) QS_TRY(linear_emit(s, run->layer, k_linears[li].trt, &s->qkv));
fail:
  linear_free(&L);
  return status;
}

// g_idx must be k / group_size: TensorRT-LLM's GPTQ import ignores it (§6.1), and the shard-local
// g_idx of a row-parallel shard is only meaningful when groups are contiguous columns.
static qs_status check_g_idx(const char *name, const struct qs_qpacked *p, int gs) {
  qs_status status = QS_OK;
  for (int64_t k = 0; k < p->K; k++)
    if (p->g_idx[k] != (int32_t)(k / gs))
      QS_FAIL(QS_ERR_INTERNAL, "%s: g_idx[%lld] = %d, not k/%d: not a TensorRT-LLM GPTQ grouping", name, (long long)k,
              p->g_idx[k], gs);
fail:
  return status;
}

qs_status qs_trtllm_add_module(struct qs_qrun *run, const char *name, const struct qs_qpacked *p) {
  qs_status status = QS_OK;
  struct qs_trtllm *tr = run->trtllm;
  int l = -1, off = 0, li = -1;
  if (!tr) QS_FAIL(QS_ERR_INTERNAL, "--tp: qs_trtllm_init was not called");
  if (!p) QS_FAIL(QS_ERR_INTERNAL, "%s: --tp needs every linear packed (checked before the run)", name);
  if (sscanf(name, "model.layers.%d.%n", &l, &off) != 1 || off == 0 || l != run->layer)
    QS_FAIL(QS_ERR_INTERNAL, "%s: not a linear of layer %d", name, run->layer);
  for (int i = 0; i < QS_TRTLLM_N_LINEARS; i++)
    if (!strcmp(name + off, k_linears[i].hf)) li = i;
  if (li < 0) QS_FAIL(QS_ERR_INTERNAL, "%s: no TensorRT-LLM name", name);
  if (p->bias) QS_FAIL(QS_ERR_INTERNAL, "%s: has a bias (refused before the run)", name);
  if (!tr->n_shards) return QS_OK;
  if (!p->qweight) QS_FAIL(QS_ERR_INTERNAL, "%s: packed tensors missing on writer rank %d", name, tr->rank);
  QS_TRY(check_g_idx(name, p, run->a->q.group_size));
  for (int i = 0; i < tr->n_shards; i++) QS_TRY(shard_add(tr, &tr->s[i], run, li, p));
fail:
  return status;
}

// ---- shards: dense tensors from the input checkpoint ---------------------------------------------------

// Rows [r0, r1) of a stored tensor (rows = its first dimension) into dst as dtype dt; rows past
// the tensor's end are zero (the padded vocabulary of lm_head).
static qs_status rows_as(const struct qs_st_tensor *src, int64_t r0, int64_t r1, qs_dtype dt, void *dst) {
  qs_status status = QS_OK;
  float *row = NULL;
  int64_t n_rows = src->ndim ? src->shape[0] : 1, per = n_rows ? qs_st_numel(src) / n_rows : 0;
  size_t out_row = (size_t)per * qs_dtype_size(dt), in_row = (size_t)per * qs_dtype_size(src->dtype);
  if (src->dtype != dt) QS_ALLOC(row, per);
  for (int64_t r = r0; r < r1; r++) {
    char *out = (char *)dst + (size_t)(r - r0) * out_row;
    const char *in = (const char *)src->data + (size_t)r * in_row;
    if (r >= n_rows) memset(out, 0, out_row);
    else if (!row) memcpy(out, in, out_row);
    else { qs_convert_to_f32(in, src->dtype, row, (size_t)per); qs_convert_from_f32(row, dt, out, (size_t)per); }
  }
fail:
  free(row);
  return status;
}

// A dense tensor into writer w as `name`: rows [r0, r1) (r1 may pass the end: zero rows), in the
// model dtype (§6.1 converters cast to config.dtype; as stored when it is already that dtype).
static qs_status add_dense(struct qs_st_writer *w, const char *name, const struct qs_st_tensor *src, int64_t r0,
                           int64_t r1, qs_dtype dt) {
  qs_status status = QS_OK;
  void *buf = NULL;
  int64_t shape[QS_ST_MAX_DIMS];
  int whole = r0 == 0 && r1 == (src->ndim ? src->shape[0] : 1);
  for (int i = 0; i < src->ndim; i++) shape[i] = src->shape[i];
  if (src->ndim) shape[0] = r1 - r0;
  if (whole && src->dtype == dt) return qs_st_writer_add(w, name, dt, src->ndim, shape, src->data, 0); // mmap
  int64_t per = (src->ndim && src->shape[0]) ? qs_st_numel(src) / src->shape[0] : qs_st_numel(src);
  QS_ALLOC(buf, (size_t)((r1 - r0) * per) * qs_dtype_size(dt));
  QS_TRY(rows_as(src, r0, r1, dt, buf));
  QS_TRY(qs_st_writer_add(w, name, dt, src->ndim, shape, buf, 1));
fail:
  free(buf);
  return status;
}

// lm_head (embed_tokens when tied and absent): vocab rows split, padded with zero rows to a
// multiple of T (convert.py pads with pad_vocab_size; config.json keeps the true vocab_size).
static qs_status add_lm_head(const struct qs_trtllm *tr, struct qs_trtllm_shard *s, const struct qs_model *m) {
  qs_status status = QS_OK;
  const struct qs_st_tensor *src = qs_ckpt_find(&m->ckpt, "lm_head.weight");
  if (!src) src = qs_ckpt_find(&m->ckpt, "model.embed_tokens.weight");
  if (!src || src->ndim != 2) QS_FAIL(QS_ERR_FORMAT, "%s: no 2-D lm_head.weight or model.embed_tokens.weight", m->ckpt.path);
  int64_t per = QS_CEIL_DIV(src->shape[0], (int64_t)tr->T);
  QS_TRY(add_dense(s->w, "lm_head.weight", src, s->t * per, (s->t + 1) * per, m->cfg.dtype));
fail:
  return status;
}

static qs_status shard_add_dense(const struct qs_trtllm *tr, struct qs_trtllm_shard *s, const struct qs_model *m) {
  qs_status status = QS_OK;
  char name[256];
  for (size_t i = 0; i < m->ckpt.n_tensors; i++) {
    const struct qs_st_tensor *t = m->ckpt.by_name[i];
    if (dense_map(t->name, name, sizeof(name)) != QS_TRTLLM_DENSE_COPY) continue; // lm_head below
    QS_TRY(add_dense(s->w, name, t, 0, t->ndim ? t->shape[0] : 1, m->cfg.dtype));
  }
  QS_TRY(add_lm_head(tr, s, m));
fail:
  return status;
}

// ---- finish ------------------------------------------------------------------------------------------

// Writer directory .rank{t}/model.safetensors (itself written under a temporary name) renamed to
// rank{t}.safetensors once complete, so a rank file is never partial.
static qs_status shard_write(const struct qs_trtllm *tr, struct qs_trtllm_shard *s, const struct qs_qrun *run) {
  qs_status status = QS_OK;
  char *from = NULL, *to = NULL, file[64];
  int want = QS_TRTLLM_PER_LAYER * run->m->cfg.n_layers;
  if (s->n_linears != want || s->qkv.parts)
    QS_FAIL(QS_ERR_INTERNAL, "%s: rank %d file has %d of %d quantized linears", tr->dir, s->t, s->n_linears, want);
  QS_TRY(shard_add_dense(tr, s, run->m));
  QS_TRY(qs_st_writer_finish(s->w));
  snprintf(file, sizeof(file), "rank%d.safetensors", s->t);
  from = qs_path_join(s->dir, "model.safetensors");
  to = qs_path_join(tr->dir, file);
  if (!from || !to) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (rename(from, to) != 0) QS_FAIL(QS_ERR_IO, "rename %s -> %s failed: %s", from, to, strerror(errno));
  if (rmdir(s->dir) != 0) QS_FAIL(QS_ERR_IO, "cannot remove %s: %s", s->dir, strerror(errno));
  qs_st_writer_free(s->w);
  s->w = NULL;
fail:
  free(from);
  free(to);
  return status;
}

static json_t *rotary_scaling(const struct qs_config *c) {
  // TensorRT-LLM reads rotary_scaling["type"]; HF's rope_scaling dict is copied through, so both
  // spellings of the type key are written.
  if (c->rope_type == QS_ROPE_LINEAR)
    return json_pack("{s:s, s:s, s:f}", "type", "linear", "rope_type", "linear", "factor", c->rope_factor);
  if (c->rope_type == QS_ROPE_LLAMA3)
    return json_pack("{s:s, s:s, s:f, s:f, s:f, s:i}", "type", "llama3", "rope_type", "llama3", "factor", c->rope_factor,
                     "low_freq_factor", c->rope_low_freq_factor, "high_freq_factor", c->rope_high_freq_factor,
                     "original_max_position_embeddings", c->rope_orig_max_pos);
  return json_null();
}

// A float as written in config.json (a float widened to double prints as 9.99999974737875e-06).
static double float_json(float f) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.6g", (double)f);
  return strtod(buf, NULL);
}

// config.json (FORMATS §6.1 fields; LLaMAConfig extras), quantization as convert_checkpoint.py sets
// it for --weight_only_precision int4_gptq: W4A16_GPTQ, has_zero_point, no pre_quant_scale;
// exclude_modules null = TensorRT-LLM's default, which keeps lm_head unquantized.
static json_t *trtllm_config(const struct qs_qrun *run) {
  const struct qs_config *c = &run->m->cfg;
  int T = run->a->tp;
  json_t *root = json_pack(
      "{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:i, s:f, s:s, s:f, s:o, s:b, s:b, s:b, s:b, s:i}",
      "architecture", "LlamaForCausalLM", "dtype", dtype_json(c->dtype), "logits_dtype", "float32", "vocab_size",
      c->vocab, "max_position_embeddings", c->max_pos, "hidden_size", c->hidden, "num_hidden_layers", c->n_layers,
      "num_attention_heads", c->n_heads, "num_key_value_heads", c->n_kv_heads, "head_size", c->head_dim, "hidden_act",
      "silu", "intermediate_size", c->intermediate, "norm_epsilon", float_json(c->rms_eps), "position_embedding_type",
      "rope_gpt_neox", "rotary_base", c->rope_theta, "rotary_scaling", rotary_scaling(c), "attn_bias", 0, "mlp_bias",
      0, "tie_word_embeddings", c->tie_embeddings, "use_parallel_embedding", 0, "embedding_sharding_dim", 0);
  if (!root) return NULL;
  json_object_set_new(root, "mapping", json_pack("{s:i, s:i, s:i}", "world_size", T, "tp_size", T, "pp_size", 1));
  json_object_set_new(root, "quantization",
                      json_pack("{s:s, s:n, s:i, s:b, s:b, s:n}", "quant_algo", "W4A16_GPTQ", "kv_cache_quant_algo",
                                "group_size", run->a->q.group_size, "has_zero_point", 1, "pre_quant_scale", 0,
                                "exclude_modules"));
  json_object_set_new(root, "qshard",
                      json_pack("{s:s, s:s, s:b}", "linear_weights",
                                "qweight/qzeros: GPTQ v1 packing of each rank's slice; TensorRT-LLM's arch-specific "
                                "`weight` (preprocess_weights_for_mixed_gemm of qweight) is not written",
                                "method", run->a->method == QS_QMETHOD_GPTQ ? "gptq" : "rtn", "sym", run->a->q.sym));
  if (!json_object_get(root, "mapping") || !json_object_get(root, "quantization") || !json_object_get(root, "qshard")) {
    json_decref(root);
    return NULL;
  }
  return root;
}

static qs_status write_local(struct qs_trtllm *tr, const struct qs_qrun *run) {
  qs_status status = QS_OK;
  json_t *cfg = NULL;
  for (int i = 0; i < tr->n_shards; i++) QS_TRY(shard_write(tr, &tr->s[i], run));
  if (tr->rank == 0) {
    if (!(cfg = trtllm_config(run))) QS_FAIL(QS_ERR_OOM, "out of memory building %s/config.json", tr->dir);
    QS_TRY(qs_outdir_write_json(tr->dir, "config.json", cfg));
  }
fail:
  json_decref(cfg);
  return status;
}

qs_status qs_trtllm_finish(struct qs_qrun *run) {
  qs_status status = QS_OK;
  struct qs_trtllm *tr = run->trtllm;
  double t0 = qs_time_now();
  if (!tr) QS_FAIL(QS_ERR_INTERNAL, "--tp: qs_trtllm_init was not called");
  int ok = write_local(tr, run) == QS_OK;
  QS_TRY(qs_comm_allreduce_and(run->world, &ok));
  if (!ok) QS_FAIL(QS_ERR_IO, "--tp %d: writing the TensorRT-LLM checkpoint in %s failed (see above)", tr->T, tr->dir);
  qs_log0("wrote TensorRT-LLM checkpoint: %d rank files (tp %d) in %.2f s", tr->T, tr->T, qs_time_now() - t0);
fail:
  return status;
}
