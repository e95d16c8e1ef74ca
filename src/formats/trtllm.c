// trtllm.c — the TensorRT-LLM per-rank checkpoint (FORMATS.md §6.1; `--tp T`, or --format trtllm with
// --tp T), written in OUT/trtllm/: config.json and rank{t}.safetensors for t < T
// (mapping world_size = tp_size = T, pp_size = 1, so file t is TP rank t).
//
// Tensors of rank file t (names: TensorRT-LLM models/llama/convert.py, FORMATS §6.1):
//   transformer.vocab_embedding.weight       [V, H]     embed_tokens, replicated (as stored)
//   transformer.ln_f.weight                  [H]        model.norm, replicated
//   transformer.layers.L.input_layernorm.weight  [H]    replicated
//   transformer.layers.L.post_layernorm.weight   [H]    post_attention_layernorm, replicated
//   lm_head.weight                           [Vp/T, H]  lm_head (embed_tokens when tied), vocab rows
//                                                       split, zero-padded to Vp = ceil(V/T)*T
//   per quantized linear X of layer L (prefix transformer.layers.L.X):
//     X = attention.qkv   q, k, v fused: each split on its output columns, [q_t | k_t | v_t]
//                         (K/V heads duplicated first when num_key_value_heads < T: rank t holds
//                         KV head t*nkv/T, TensorRT-LLM's dup_kv_weight)
//         attention.dense o_proj,    row-parallel: input rows split
//         mlp.fc          gate_proj, column-parallel (sic: fc = gate, §6)
//         mlp.gate        up_proj,   column-parallel
//         mlp.proj        down_proj, row-parallel
//     .qweight                I32 [K_t/8, N_t]  GPTQ v1 packing of the shard (bit-identical slice of
//                                               the HF checkpoint's qweight; see "weight" below)
//     .qzeros                 I32 [G_t, N_t/8]  GPTQ v1 zeros (stored z - 1) of the shard
//     .weights_scaling_factor F16 [G_t, N_t]    = the GPTQ scales of the shard (TRT-LLM's name/layout)
//     .zero                   F16 [G_t, N_t]    fp16((8 - 1 - qz) * scale): TRT-LLM's GPTQ import,
//                                               whose dequantization (q - 8)*s + zero = (q - z)*s
//     .g_idx                  I32 [K_t]         shard-local group index (= k_local / group_size)
//   K_t = K/T for row-parallel modules (K_t % group_size == 0: groups never straddle shards), K
//   otherwise; N_t = N/T for column-parallel ones; G_t = K_t / group_size.
// "weight": TensorRT-LLM's own W4A16_GPTQ `weight` is qweight re-packed by its CUDA-arch-specific
// preprocess_weights_for_mixed_gemm (§6: "exact packing is version dependent [UNCONFIRMED]", §8
// open); qshard does not reproduce it and writes the arch-independent source under `qweight`
// instead, so an engine build without that step fails on a missing `weight` rather than loading
// mis-packed data. Everything else (names, splits, fusing, scales, zero, config) is TRT-LLM's.
//
// Parallel writing: shard t is cut from each record, packed (GPTQ v1 words, formats/gptq.h) and
// written by rank t % P (P = MPI ranks), each file under a temporary name and renamed; rank 0 writes
// config.json. The output directory must be visible to every writer rank (a shared filesystem
// across nodes), as for --eval.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/dtype.h"
#include "formats/format.h"
#include "formats/gptq.h"
#include "io/outdir.h"

// How a decoder linear is split over TP ranks (§6.1 table; convert.py load_weights_from_gptq).
enum qs_trtllm_split {
  QS_TRTLLM_SPLIT_COLUMN = 0, // output columns of [K/8, N] split: N/T each
  QS_TRTLLM_SPLIT_ROW,        // input rows split: K/T each, groups aligned
  QS_TRTLLM_SPLIT_QKV,        // column split, q/k/v fused into one [q_t | k_t | v_t]
};

static const struct {
  const char *trt;
  enum qs_trtllm_split split;
  int part; // QKV: 0 q, 1 k, 2 v
} k_linears[QS_LIN_COUNT] = {
    [QS_LIN_Q] = {"attention.qkv", QS_TRTLLM_SPLIT_QKV, 0},
    [QS_LIN_K] = {"attention.qkv", QS_TRTLLM_SPLIT_QKV, 1},
    [QS_LIN_V] = {"attention.qkv", QS_TRTLLM_SPLIT_QKV, 2},
    [QS_LIN_O] = {"attention.dense", QS_TRTLLM_SPLIT_ROW, 0},
    [QS_LIN_GATE] = {"mlp.fc", QS_TRTLLM_SPLIT_COLUMN, 0}, // §6: mlp.fc is gate_proj
    [QS_LIN_UP] = {"mlp.gate", QS_TRTLLM_SPLIT_COLUMN, 0}, // §6: mlp.gate is up_proj
    [QS_LIN_DOWN] = {"mlp.proj", QS_TRTLLM_SPLIT_ROW, 0},
};
#define QS_TRTLLM_PER_LAYER 5 // TensorRT-LLM linears per layer: qkv, dense, fc, gate, proj

// 32/bits codes per int32 word; the format is 4-bit only (W4A16_GPTQ).
#define QS_TRTLLM_PF 8

// One TensorRT-LLM linear of one shard, being assembled from records (the fused qkv from three).
struct trt_linear {
  int64_t K, G, N;  // shard sizes
  uint8_t *codes;   // [N, K]
  uint16_t *scales; // [N, G] fp16 bits
  uint8_t *zeros;   // [N, G]
  int32_t *g_idx;   // [K], shard-local
  int parts;        // modules copied in so far
};

struct trt_shard {
  int t;                   // TP rank = rank file index
  char *dir;               // writer directory trtllm/.rank{t} (model.safetensors renamed out)
  struct qs_st_writer *w;
  struct trt_linear qkv;   // pending fused q/k/v of the current layer
  int n_linears;           // TensorRT-LLM linears added
};

extern const struct qs_format qs_format_trtllm;

struct trt_writer {
  struct qs_fwriter base;
  int T, P, rank;
  char *dir;               // OUT/trtllm
  int n_shards;
  struct trt_shard *s;     // shards t with t % P == rank, ascending
};

// ---- the check, before any work ---------------------------------------------------------------------

enum qs_trtllm_dense { QS_TRTLLM_DENSE_COPY = 0, QS_TRTLLM_DENSE_VOCAB, QS_TRTLLM_DENSE_LINEAR,
                       QS_TRTLLM_DENSE_SKIP, QS_TRTLLM_DENSE_UNKNOWN };

// The §6.1 name of an input tensor that is not quantized (out), or what else it is.
static enum qs_trtllm_dense dense_map(const struct qs_config *c, const char *hf, char *out, size_t n) {
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
  const char *dot = strrchr(rest, '.');
  if (dot && !strcmp(dot, ".weight")) {
    char module[128];
    snprintf(module, sizeof(module), "%.*s", (int)(dot - rest), rest);
    if (qs_layout_find(qs_layout_of(c), module) >= 0) return QS_TRTLLM_DENSE_LINEAR;
  }
  return QS_TRTLLM_DENSE_UNKNOWN;
}

static const char *dtype_json(qs_dtype t) {
  return t == QS_DTYPE_BF16 ? "bfloat16" : t == QS_DTYPE_F16 ? "float16" : t == QS_DTYPE_F32 ? "float32" : NULL;
}

#define refuse(...) (snprintf(msg, cap, __VA_ARGS__), 1)

// Options and model type (FORMATS §6.1: W4A16_GPTQ import, Llama layout).
static int check_options(const struct qs_format_run *fr, char *msg, size_t cap) {
  const struct qs_config *c = fr->cfg;
  const struct qs_grid *g = &fr->opts->grid;
  if (fr->tp <= 0) return refuse("needs --tp T (the tensor-parallel ranks of the rank files)");
  if (g->kind != QS_GRID_INT || g->bits != 4)
    return refuse("TensorRT-LLM's GPTQ checkpoint (quant_algo W4A16_GPTQ, FORMATS §6.1) is 4-bit only; got --bits %d",
                  g->bits);
  if (g->group_size <= 0)
    return refuse("W4A16_GPTQ is groupwise: --group-size %d (one group per row) has no TensorRT-LLM layout", g->group_size);
  if (fr->opts->act_order == QS_ACT_ORDER_GROUP)
    return refuse("--act-order=group: TensorRT-LLM's GPTQ import reads qweight, qzeros and scales only and ignores "
                  "g_idx (FORMATS §6.1), so permuted groups would load wrong; use --act-order (static groups)");
  if (c->arch == QS_ARCH_QWEN2)
    return refuse("FORMATS §6.1 specifies the Llama layout (LlamaForCausalLM) only; %s models are not supported", c->model_type);
  if (c->attn_bias || c->mlp_bias) return refuse("the model has linear biases; the TensorRT-LLM layout of FORMATS §6.1 has none");
  if (!dtype_json(c->dtype))
    return refuse("model dtype %s has no TensorRT-LLM name (float32, float16, bfloat16)", qs_dtype_name(c->dtype));
  return 0;
}

// Shapes: whole heads per rank, packed widths, group boundaries on shard boundaries.
static int check_shapes(const struct qs_format_run *fr, char *msg, size_t cap) {
  const struct qs_config *c = fr->cfg;
  int T = fr->tp, gs = fr->opts->grid.group_size, pf = QS_TRTLLM_PF;
  if (c->n_heads % T)
    return refuse("num_attention_heads %d is not divisible by %d (each TP rank holds whole query heads)", c->n_heads, T);
  if (c->n_kv_heads % T && T % c->n_kv_heads)
    return refuse("num_key_value_heads %d: neither it divides by %d nor %d by it (KV heads are split or duplicated, "
                  "FORMATS §6.1)", c->n_kv_heads, T, T);
  if (c->intermediate % T)
    return refuse("intermediate_size %d is not divisible by %d (gate/up/down are split on it)", c->intermediate, T);
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
      return refuse("%s = %lld is not a multiple of %lld (group size %d, 8 4-bit codes per packed word): groups "
                    "or packed words would straddle TP shards", need[i].what, v, m, gs);
  }
  return 0;
}

static int trt_refuse(const struct qs_format_run *fr, char *msg, size_t cap) {
  char name[256];
  if (check_options(fr, msg, cap) || check_shapes(fr, msg, cap)) return 1;
  for (size_t i = 0; i < fr->ckpt->n_tensors; i++) {
    const char *hf = fr->ckpt->by_name[i]->name;
    if (dense_map(fr->cfg, hf, name, sizeof(name)) == QS_TRTLLM_DENSE_UNKNOWN)
      return refuse("input tensor %s (%s) has no TensorRT-LLM name in FORMATS §6.1", hf, fr->ckpt->path);
  }
  return 0;
}
#undef refuse

// The GPTQ import dequantizes (q - 8)*s + zero with zero derived from the v1 stored zero (z - 1):
// a zero point of 0 would wrap, as in GPTQ v1.
static void trt_constrain(const struct qs_format_run *fr, struct qs_grid *g) {
  (void)fr;
  if (!g->sym && g->min_zero < 1) g->min_zero = 1;
}

static int trt_writes(const struct qs_format_run *fr) { return fr->rank < fr->tp; }

// ---- shards: setup ----------------------------------------------------------------------------------

static void linear_free(struct trt_linear *L) {
  free(L->codes);
  free(L->scales);
  free(L->zeros);
  free(L->g_idx);
  *L = (struct trt_linear){0};
}

static void trt_free(struct qs_fwriter *base) {
  struct trt_writer *tr = (struct trt_writer *)base;
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

static qs_status trt_open(struct qs_fwriter **out, const struct qs_format_run *fr, const char *dir) {
  qs_status status = QS_OK;
  struct trt_writer *tr = NULL;
  QS_ALLOC(tr, 1);
  tr->base = (struct qs_fwriter){.fmt = &qs_format_trtllm, .fr = fr};
  tr->T = fr->tp;
  tr->P = fr->ranks;
  tr->rank = fr->rank;
  if (!(tr->dir = strdup(dir))) QS_FAIL(QS_ERR_OOM, "out of memory");
  for (int t = tr->rank; t < tr->T; t += tr->P) tr->n_shards++;
  QS_ALLOC(tr->s, QS_MAX(tr->n_shards, 1));
  for (int i = 0; i < tr->n_shards; i++) {
    struct trt_shard *s = &tr->s[i];
    char sub[64];
    s->t = tr->rank + i * tr->P;
    snprintf(sub, sizeof(sub), ".rank%d", s->t);
    if (!(s->dir = qs_path_join(dir, sub))) QS_FAIL(QS_ERR_OOM, "out of memory");
    QS_TRY(qs_st_writer_init(&s->w, s->dir, 0)); // no size limit: one file per rank
  }
  *out = &tr->base;
  return QS_OK;
fail:
  trt_free(&tr->base);
  return status;
}

// ---- shards: quantized linears ------------------------------------------------------------------------

static qs_status linear_alloc(struct trt_linear *L, int64_t K, int64_t G, int64_t N) {
  qs_status status = QS_OK;
  *L = (struct trt_linear){.K = K, .G = G, .N = N};
  QS_ALLOC(L->codes, N * K);
  QS_ALLOC(L->scales, N * G);
  QS_ALLOC(L->zeros, N * G);
  QS_ALLOC(L->g_idx, K);
fail:
  return status;
}

// Output rows [c0, c0 + w) of record r into rows [d0, d0 + w) of L (every input column; c0, w, d0
// are multiples of 8, checked up front, so the packed qzeros words of the shard are whole).
static void linear_put_cols(struct trt_linear *L, const struct qs_qrecord *r, int64_t c0, int64_t w, int64_t d0) {
  memcpy(L->codes + d0 * L->K, r->codes + c0 * r->K, (size_t)(w * r->K));
  for (int64_t i = 0; i < w * r->G; i++) L->scales[d0 * L->G + i] = qs_f32_to_f16(r->scales[c0 * r->G + i]);
  memcpy(L->zeros + d0 * L->G, r->zeros + c0 * r->G, (size_t)(w * r->G));
  memcpy(L->g_idx, r->g_idx, (size_t)r->K * sizeof(int32_t));
  L->parts++;
}

// Input columns [t*K/T, (t+1)*K/T) of record r: whole groups (K/T is a multiple of the group size),
// g_idx made shard-local.
static void linear_put_rows(struct trt_linear *L, const struct qs_qrecord *r, int t) {
  for (int64_t n = 0; n < L->N; n++) {
    memcpy(L->codes + n * L->K, r->codes + n * r->K + t * L->K, (size_t)L->K);
    for (int64_t g = 0; g < L->G; g++) {
      L->scales[n * L->G + g] = qs_f32_to_f16(r->scales[n * r->G + t * L->G + g]);
      L->zeros[n * L->G + g] = r->zeros[n * r->G + t * L->G + g];
    }
  }
  for (int64_t k = 0; k < L->K; k++) L->g_idx[k] = r->g_idx[t * L->K + k] - (int32_t)(t * L->G);
  L->parts++;
}

// The finished linear packed into the shard's writer (copied), then freed. TensorRT-LLM's `zero`
// (convert.py load_weights_from_gptq, FORMATS §6.1) is (8 - 1 - qz) * scale with qz the stored v1
// zero z - 1, i.e. (8 - z) * scale, rounded once to fp16: the product of a small integer and an
// fp16 value is exact in fp32, so this equals torch's fp16 multiply bit for bit.
static qs_status linear_emit(struct trt_shard *s, int layer, const char *trt, struct trt_linear *L) {
  qs_status status = QS_OK;
  int32_t *qweight = NULL, *qzeros = NULL;
  uint16_t *scales = NULL, *zero = NULL;
  const int64_t K = L->K, G = L->G, N = L->N, pf = QS_TRTLLM_PF;
  char prefix[160];
  snprintf(prefix, sizeof(prefix), "transformer.layers.%d.%s", layer, trt);
  QS_ALLOC(qweight, K / pf * N);
  QS_ALLOC(qzeros, G * (N / pf));
  QS_ALLOC(scales, G * N);
  QS_ALLOC(zero, G * N);
  QS_TRY(qs_gptq_pack(L->codes, L->scales, L->zeros, 4, N, K, G, qweight, qzeros, scales, NULL));
  for (int64_t g = 0; g < G; g++)
    for (int64_t n = 0; n < N; n++)
      zero[g * N + n] = qs_f32_to_f16((float)(8 - (int)L->zeros[n * G + g]) * qs_f16_to_f32(scales[g * N + n]));
  QS_TRY(qs_format_add(s->w, prefix, "qweight", QS_DTYPE_I32, 2, K / pf, N, qweight));
  QS_TRY(qs_format_add(s->w, prefix, "qzeros", QS_DTYPE_I32, 2, G, N / pf, qzeros));
  QS_TRY(qs_format_add(s->w, prefix, "weights_scaling_factor", QS_DTYPE_F16, 2, G, N, scales));
  QS_TRY(qs_format_add(s->w, prefix, "zero", QS_DTYPE_F16, 2, G, N, zero));
  QS_TRY(qs_format_add(s->w, prefix, "g_idx", QS_DTYPE_I32, 1, K, 0, L->g_idx));
  s->n_linears++;
fail:
  free(qweight);
  free(qzeros);
  free(scales);
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
static qs_status shard_add(struct trt_writer *tr, struct trt_shard *s, const struct qs_qrecord *r, int li) {
  qs_status status = QS_OK;
  struct trt_linear L = {0};
  int T = tr->T, t = s->t;
  int64_t gs = r->grid.group_size;
  if (k_linears[li].split == QS_TRTLLM_SPLIT_ROW) {
    QS_TRY(linear_alloc(&L, r->K / T, r->K / T / gs, r->N));
    linear_put_rows(&L, r, t);
    return linear_emit(s, r->layer, k_linears[li].trt, &L);
  }
  if (k_linears[li].split == QS_TRTLLM_SPLIT_COLUMN) {
    QS_TRY(linear_alloc(&L, r->K, r->G, r->N / T));
    linear_put_cols(&L, r, t * (r->N / T), r->N / T, 0);
    return linear_emit(s, r->layer, k_linears[li].trt, &L);
  }
  int64_t c0, w, d0, Nf;
  int part = k_linears[li].part;
  qkv_cols(tr->base.fr->cfg, T, t, part, &c0, &w, &d0, &Nf);
  if (s->qkv.parts != part) QS_FAIL(QS_ERR_INTERNAL, "layer %d: %s out of order (q, k, v expected)", r->layer, r->name);
  if (part == 0) QS_TRY(linear_alloc(&s->qkv, r->K, r->G, Nf));
  else if (memcmp(s->qkv.g_idx, r->g_idx, (size_t)r->K * sizeof(int32_t)))
    QS_FAIL(QS_ERR_INTERNAL, "layer %d: q/k/v g_idx differ; the fused qkv has one", r->layer);
  linear_put_cols(&s->qkv, r, c0, w, d0);
  if (part == 2) QS_TRY(linear_emit(s, r->layer, k_linears[li].trt, &s->qkv));
fail:
  linear_free(&L);
  return status;
}

static qs_status trt_module(struct qs_fwriter *base, const struct qs_qrecord *r, int *dense) {
  qs_status status = QS_OK;
  struct trt_writer *tr = (struct trt_writer *)base;
  int li = 0;
  *dense = 0;
  QS_TRY(qs_format_record_lin(base->fr, r, &li));
  if (r->bias) QS_FAIL(QS_ERR_INTERNAL, "%s: has a bias (refused before the run)", r->name);
  // The GPTQ import ignores g_idx (§6.1), and a row-parallel shard's local g_idx is only meaningful
  // when groups are contiguous columns.
  if (!qs_qrecord_contiguous(r))
    QS_FAIL(QS_ERR_INTERNAL, "%s: groups are not contiguous columns (g_idx != k / group_size)", r->name);
  for (int i = 0; i < tr->n_shards; i++) QS_TRY(shard_add(tr, &tr->s[i], r, li));
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

static qs_status trt_dense(struct qs_fwriter *base, const struct qs_st_tensor *t) {
  qs_status status = QS_OK;
  struct trt_writer *tr = (struct trt_writer *)base;
  char name[256];
  if (dense_map(base->fr->cfg, t->name, name, sizeof(name)) != QS_TRTLLM_DENSE_COPY) return QS_OK; // lm_head: finish
  for (int i = 0; i < tr->n_shards; i++)
    QS_TRY(add_dense(tr->s[i].w, name, t, 0, t->ndim ? t->shape[0] : 1, base->fr->cfg->dtype));
fail:
  return status;
}

// lm_head (embed_tokens when tied and absent): vocab rows split, padded with zero rows to a
// multiple of T (convert.py pads with pad_vocab_size; config.json keeps the true vocab_size).
static qs_status add_lm_head(const struct trt_writer *tr, struct trt_shard *s) {
  qs_status status = QS_OK;
  const struct qs_ckpt *ck = tr->base.fr->ckpt;
  const struct qs_st_tensor *src = qs_ckpt_find(ck, "lm_head.weight");
  if (!src) src = qs_ckpt_find(ck, "model.embed_tokens.weight");
  if (!src || src->ndim != 2) QS_FAIL(QS_ERR_FORMAT, "%s: no 2-D lm_head.weight or model.embed_tokens.weight", ck->path);
  int64_t per = QS_CEIL_DIV(src->shape[0], (int64_t)tr->T);
  QS_TRY(add_dense(s->w, "lm_head.weight", src, s->t * per, (s->t + 1) * per, tr->base.fr->cfg->dtype));
fail:
  return status;
}

// ---- finish ------------------------------------------------------------------------------------------

// Writer directory .rank{t}/model.safetensors (itself written under a temporary name) renamed to
// rank{t}.safetensors once complete, so a rank file is never partial.
static qs_status shard_write(const struct trt_writer *tr, struct trt_shard *s) {
  qs_status status = QS_OK;
  char *from = NULL, *to = NULL, file[64];
  int want = QS_TRTLLM_PER_LAYER * tr->base.fr->cfg->n_layers;
  if (s->n_linears != want || s->qkv.parts)
    QS_FAIL(QS_ERR_INTERNAL, "%s: rank %d file has %d of %d quantized linears", tr->dir, s->t, s->n_linears, want);
  QS_TRY(add_lm_head(tr, s));
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

// config.json (FORMATS §6.1 fields; LLaMAConfig extras), quantization as convert_checkpoint.py sets
// it for --weight_only_precision int4_gptq: W4A16_GPTQ, has_zero_point, no pre_quant_scale;
// exclude_modules null = TensorRT-LLM's default, which keeps lm_head unquantized.
static json_t *trtllm_config(const struct qs_format_run *fr) {
  const struct qs_config *c = fr->cfg;
  int T = fr->tp;
  json_t *root = json_pack(
      "{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:i, s:f, s:s, s:f, s:o, s:b, s:b, s:b, s:b, s:i}",
      "architecture", "LlamaForCausalLM", "dtype", dtype_json(c->dtype), "logits_dtype", "float32", "vocab_size",
      c->vocab, "max_position_embeddings", c->max_pos, "hidden_size", c->hidden, "num_hidden_layers", c->n_layers,
      "num_attention_heads", c->n_heads, "num_key_value_heads", c->n_kv_heads, "head_size", c->head_dim, "hidden_act",
      "silu", "intermediate_size", c->intermediate, "norm_epsilon", qs_format_float_json(c->rms_eps),
      "position_embedding_type", "rope_gpt_neox", "rotary_base", c->rope_theta, "rotary_scaling", rotary_scaling(c),
      "attn_bias", 0, "mlp_bias", 0, "tie_word_embeddings", c->tie_embeddings, "use_parallel_embedding", 0,
      "embedding_sharding_dim", 0);
  if (!root) return NULL;
  json_object_set_new(root, "mapping", json_pack("{s:i, s:i, s:i}", "world_size", T, "tp_size", T, "pp_size", 1));
  json_object_set_new(root, "quantization",
                      json_pack("{s:s, s:n, s:i, s:b, s:b, s:n}", "quant_algo", "W4A16_GPTQ", "kv_cache_quant_algo",
                                "group_size", fr->opts->grid.group_size, "has_zero_point", 1, "pre_quant_scale", 0,
                                "exclude_modules"));
  json_object_set_new(root, "qshard",
                      json_pack("{s:s, s:s, s:b}", "linear_weights",
                                "qweight/qzeros: GPTQ v1 packing of each rank's slice; TensorRT-LLM's arch-specific "
                                "`weight` (preprocess_weights_for_mixed_gemm of qweight) is not written",
                                "method", fr->method, "sym", fr->opts->grid.sym));
  if (!json_object_get(root, "mapping") || !json_object_get(root, "quantization") || !json_object_get(root, "qshard")) {
    json_decref(root);
    return NULL;
  }
  return root;
}

static qs_status trt_finish(struct qs_fwriter *base) {
  qs_status status = QS_OK;
  struct trt_writer *tr = (struct trt_writer *)base;
  json_t *cfg = NULL;
  for (int i = 0; i < tr->n_shards; i++) QS_TRY(shard_write(tr, &tr->s[i]));
  if (tr->rank == 0) {
    if (!(cfg = trtllm_config(base->fr))) QS_FAIL(QS_ERR_OOM, "out of memory building %s/config.json", tr->dir);
    QS_TRY(qs_outdir_write_json(tr->dir, "config.json", cfg));
  }
fail:
  json_decref(cfg);
  return status;
}


// ---- reader: the rank files reassembled as the Hugging Face GPTQ v1 checkpoint they were cut from ----

// A TensorRT-LLM checkpoint directory: config.json with "architecture" and "mapping".
static int trt_is_dir(const char *dir) {
  char *path = qs_path_join(dir, "config.json");
  json_t *root = path ? json_load_file(path, 0, NULL) : NULL;
  int yes = json_is_object(json_object_get(root, "mapping")) && json_is_string(json_object_get(root, "architecture"));
  json_decref(root);
  free(path);
  return yes;
}

static int json_int(const json_t *o, const char *key) { return (int)json_integer_value(json_object_get(o, key)); }

// config.json of TensorRT-LLM -> the Hugging Face config.json text it came from (qs_config_parse
// validates it as any other).
static qs_status hf_config(const char *path, const json_t *root, char **text, int *tp, int *gs, int *sym) {
  qs_status status = QS_OK;
  const json_t *map = json_object_get(root, "mapping"), *q = json_object_get(root, "quantization");
  const json_t *scal = json_object_get(root, "rotary_scaling"), *qs = json_object_get(root, "qshard");
  const char *algo = json_string_value(json_object_get(q, "quant_algo"));
  json_t *hf = NULL;
  *tp = json_int(map, "tp_size");
  *gs = json_int(q, "group_size");
  *sym = !qs || json_is_true(json_object_get(qs, "sym")) || !json_object_get(qs, "sym");
  if (!algo || strcmp(algo, "W4A16_GPTQ") || *tp < 1 || json_int(map, "pp_size") != 1 || *gs <= 0)
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: only W4A16_GPTQ checkpoints with tensor parallelism (pp_size 1) are read; "
            "quant_algo %s, tp_size %d, group_size %d", path, algo ? algo : "none", *tp, *gs);
  hf = json_pack("{s:s, s:[s], s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "model_type", "llama",
                 "architectures", "LlamaForCausalLM", "hidden_size", json_object_get(root, "hidden_size"),
                 "intermediate_size", json_object_get(root, "intermediate_size"), "num_hidden_layers",
                 json_object_get(root, "num_hidden_layers"), "num_attention_heads",
                 json_object_get(root, "num_attention_heads"), "num_key_value_heads",
                 json_object_get(root, "num_key_value_heads"), "head_dim", json_object_get(root, "head_size"),
                 "vocab_size", json_object_get(root, "vocab_size"), "max_position_embeddings",
                 json_object_get(root, "max_position_embeddings"), "rms_norm_eps",
                 json_object_get(root, "norm_epsilon"), "rope_theta", json_object_get(root, "rotary_base"),
                 "tie_word_embeddings", json_object_get(root, "tie_word_embeddings"), "torch_dtype",
                 json_object_get(root, "dtype"));
  if (!hf) QS_FAIL(QS_ERR_FORMAT, "%s: a key of the Llama layout is missing (hidden_size, head_size, ...)", path);
  if (scal && !json_is_null(scal)) json_object_set(hf, "rope_scaling", (json_t *)scal);
  if (!(*text = json_dumps(hf, JSON_COMPACT))) QS_FAIL(QS_ERR_OOM, "out of memory");
fail:
  json_decref(hf);
  return status;
}

struct trt_in {
  int T;
  struct qs_st_file *f; // rank files
  struct qs_ckpt *ck;   // being filled
  const struct qs_config *c;
};

// A tensor of rank file t, checked to have dtype dt and ndim dims.
static qs_status rank_tensor(const struct trt_in *in, int t, const char *name, qs_dtype dt, int ndim,
                             const struct qs_st_tensor **out) {
  qs_status status = QS_OK;
  const struct qs_st_tensor *x = qs_st_find(&in->f[t], name);
  if (!x) QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s is missing", in->f[t].path, name);
  if (x->dtype != dt || x->ndim != ndim)
    QS_FAIL(QS_ERR_FORMAT, "%s: %s is %s with %d dims, expected %s with %d", in->f[t].path, name,
            qs_dtype_name(x->dtype), x->ndim, qs_dtype_name(dt), ndim);
  *out = x;
fail:
  return status;
}

// Copies rows [r0, r1) of rank t's tensor `name` (any dtype) into the checkpoint as `hf`, [r1-r0, ...].
static qs_status add_rows(struct trt_in *in, int t, const char *name, const char *hf, int64_t r0, int64_t r1) {
  qs_status status = QS_OK;
  const struct qs_st_tensor *x = qs_st_find(&in->f[t], name);
  void *buf = NULL;
  int64_t shape[QS_ST_MAX_DIMS];
  if (!x || x->ndim < 1 || r1 > x->shape[0]) QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s is missing or too short", in->f[t].path, name);
  size_t row = (size_t)(qs_st_numel(x) / x->shape[0]) * qs_dtype_size(x->dtype);
  for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
  shape[0] = r1 - r0;
  QS_ALLOC(buf, (size_t)(r1 - r0) * row);
  memcpy(buf, (const char *)x->data + (size_t)r0 * row, (size_t)(r1 - r0) * row);
  QS_TRY(qs_ckpt_add_owned(in->ck, hf, x->dtype, x->ndim, shape, buf));
fail:
  return status;
}

// One HF GPTQ linear from its TensorRT-LLM shards (the inverse of shard_add): qweight [K/8, N],
// qzeros [G, N/8], scales [G, N], g_idx [K].
static qs_status add_linear(struct trt_in *in, int l, int li) {
  qs_status status = QS_OK;
  const struct qs_config *c = in->c;
  const int T = in->T, pf = QS_TRTLLM_PF;
  int N, K, bias;
  int32_t *qw = NULL, *qz = NULL, *gi = NULL;
  uint16_t *sc = NULL;
  char trt[160], name[256], hf[200];
  qs_layout_shape(c, (enum qs_lin)li, &N, &K, &bias);
  snprintf(trt, sizeof(trt), "transformer.layers.%d.%s", l, k_linears[li].trt);
  const struct qs_st_tensor *gt0 = NULL;
  snprintf(name, sizeof(name), "%s.weights_scaling_factor", trt);
  QS_TRY(rank_tensor(in, 0, name, QS_DTYPE_F16, 2, &gt0));
  int64_t Gt = gt0->shape[0]; // groups per shard
  int64_t G = k_linears[li].split == QS_TRTLLM_SPLIT_ROW ? Gt * T : Gt;
  QS_ALLOC(qw, (int64_t)K / pf * N);
  QS_ALLOC(qz, G * (N / pf));
  QS_ALLOC(sc, G * N);
  QS_ALLOC(gi, K);
  for (int t = 0; t < T; t++) {
    const struct qs_st_tensor *tw, *tz, *ts, *tg;
    snprintf(name, sizeof(name), "%s.qweight", trt);
    QS_TRY(rank_tensor(in, t, name, QS_DTYPE_I32, 2, &tw));
    snprintf(name, sizeof(name), "%s.qzeros", trt);
    QS_TRY(rank_tensor(in, t, name, QS_DTYPE_I32, 2, &tz));
    snprintf(name, sizeof(name), "%s.weights_scaling_factor", trt);
    QS_TRY(rank_tensor(in, t, name, QS_DTYPE_F16, 2, &ts));
    snprintf(name, sizeof(name), "%s.g_idx", trt);
    QS_TRY(rank_tensor(in, t, name, QS_DTYPE_I32, 1, &tg));
    int64_t Kt = tw->shape[0] * pf, Nt = tw->shape[1];
    if (ts->shape[0] != Gt || ts->shape[1] != Nt || tz->shape[0] != Gt || tz->shape[1] * pf != Nt || tg->shape[0] != Kt)
      QS_FAIL(QS_ERR_FORMAT, "%s: %s: shard shapes disagree", in->f[t].path, trt);
    if (k_linears[li].split == QS_TRTLLM_SPLIT_ROW) { // input rows t*Kt.., groups t*Gt..
      if (Kt * T != K || Nt != N) QS_FAIL(QS_ERR_FORMAT, "%s: %s is not a 1/%d row shard of [%d, %d]", in->f[t].path, trt, T, N, K);
      memcpy(qw + t * (Kt / pf) * N, tw->data, (size_t)(Kt / pf * N) * 4);
      memcpy(qz + t * Gt * (N / pf), tz->data, (size_t)(Gt * (N / pf)) * 4);
      memcpy(sc + t * Gt * N, ts->data, (size_t)(Gt * N) * 2);
      for (int64_t k = 0; k < Kt; k++) gi[t * Kt + k] = ((const int32_t *)tg->data)[k] + (int32_t)(t * Gt);
      continue;
    }
    if (Kt != K) QS_FAIL(QS_ERR_FORMAT, "%s: %s has %lld inputs, expected %d", in->f[t].path, trt, (long long)Kt, K);
    if (t == 0) memcpy(gi, tg->data, (size_t)K * 4);
    // Column shards: which output columns of the HF module this shard's columns [s0, s0 + w) hold.
    int64_t c0, w, d0, Nf;
    if (k_linears[li].split == QS_TRTLLM_SPLIT_COLUMN) c0 = t * (N / T), w = N / T, d0 = 0;
    else {
      qkv_cols(c, T, t, k_linears[li].part, &c0, &w, &d0, &Nf);
      if (Nf != Nt) QS_FAIL(QS_ERR_FORMAT, "%s: %s fused width %lld, expected %lld", in->f[t].path, trt, (long long)Nt, (long long)Nf);
      if (k_linears[li].part > 0 && c->n_kv_heads < T && t * c->n_kv_heads / T == (t - 1 < 0 ? -1 : (t - 1) * c->n_kv_heads / T))
        continue; // a duplicated KV head: its first holder gave it
    }
    for (int64_t r = 0; r < K / pf; r++)
      memcpy(qw + r * N + c0, (const int32_t *)tw->data + r * Nt + d0, (size_t)w * 4);
    for (int64_t g = 0; g < Gt; g++) {
      memcpy(qz + g * (N / pf) + c0 / pf, (const int32_t *)tz->data + g * (Nt / pf) + d0 / pf, (size_t)(w / pf) * 4);
      memcpy(sc + g * N + c0, (const uint16_t *)ts->data + g * Nt + d0, (size_t)w * 2);
    }
  }
  qs_layout_module_path(qs_layout_of(c), l, (enum qs_lin)li, hf, sizeof(hf));
  snprintf(name, sizeof(name), "%s.qweight", hf);
  QS_TRY(qs_ckpt_add_owned(in->ck, name, QS_DTYPE_I32, 2, (int64_t[]){K / pf, N}, qw));
  qw = NULL;
  snprintf(name, sizeof(name), "%s.qzeros", hf);
  QS_TRY(qs_ckpt_add_owned(in->ck, name, QS_DTYPE_I32, 2, (int64_t[]){G, N / pf}, qz));
  qz = NULL;
  snprintf(name, sizeof(name), "%s.scales", hf);
  QS_TRY(qs_ckpt_add_owned(in->ck, name, QS_DTYPE_F16, 2, (int64_t[]){G, N}, sc));
  sc = NULL;
  snprintf(name, sizeof(name), "%s.g_idx", hf);
  QS_TRY(qs_ckpt_add_owned(in->ck, name, QS_DTYPE_I32, 1, (int64_t[]){K}, gi));
  gi = NULL;
fail:
  free(qw), free(qz), free(sc), free(gi);
  return status;
}

// Every HF tensor from the rank files into in->ck.
static qs_status reassemble(struct trt_in *in) {
  qs_status status = QS_OK;
  const struct qs_config *c = in->c;
  char trt[200], hf[200];
  QS_TRY(add_rows(in, 0, "transformer.vocab_embedding.weight", "model.embed_tokens.weight", 0, c->vocab));
  QS_TRY(add_rows(in, 0, "transformer.ln_f.weight", "model.norm.weight", 0, c->hidden));
  if (!c->tie_embeddings) { // lm_head: vocab rows split over the ranks, zero-padded to a multiple of T
    const struct qs_st_tensor *x = qs_st_find(&in->f[0], "lm_head.weight");
    if (!x || x->ndim != 2) QS_FAIL(QS_ERR_FORMAT, "%s: lm_head.weight is missing", in->f[0].path);
    int64_t per = x->shape[0], row = x->shape[1] * (int64_t)qs_dtype_size(x->dtype);
    char *buf = NULL;
    QS_ALLOC(buf, (size_t)c->vocab * (size_t)row);
    for (int64_t v = 0; v < c->vocab; v++) {
      const struct qs_st_tensor *y = qs_st_find(&in->f[v / per], "lm_head.weight");
      if (!y || y->dtype != x->dtype || y->shape[0] != per) { free(buf); QS_FAIL(QS_ERR_FORMAT, "%s: lm_head.weight shards disagree", in->f[v / per].path); }
      memcpy(buf + v * row, (const char *)y->data + (v % per) * row, (size_t)row);
    }
    QS_TRY(qs_ckpt_add_owned(in->ck, "lm_head.weight", x->dtype, 2, (int64_t[]){c->vocab, x->shape[1]}, buf));
  }
  for (int l = 0; l < c->n_layers; l++) {
    static const char *norms[2][2] = {{"input_layernorm", "input_layernorm"}, {"post_layernorm", "post_attention_layernorm"}};
    for (int i = 0; i < 2; i++) {
      snprintf(trt, sizeof(trt), "transformer.layers.%d.%s.weight", l, norms[i][0]);
      snprintf(hf, sizeof(hf), "model.layers.%d.%s.weight", l, norms[i][1]);
      QS_TRY(add_rows(in, 0, trt, hf, 0, c->hidden));
    }
    for (int li = 0; li < QS_LIN_COUNT; li++) QS_TRY(add_linear(in, l, li));
  }
fail:
  return status;
}

static qs_status trt_open_dir(const char *dir, struct qs_config *cfg, struct qs_ckpt *ck, json_t **qc) {
  qs_status status = QS_OK;
  char *path = qs_path_join(dir, "config.json"), *text = NULL, file[64];
  json_t *root = NULL;
  json_error_t err;
  struct trt_in in = {.ck = ck, .c = cfg};
  int gs = 0, sym = 1, opened = 0;
  memset(ck, 0, sizeof(*ck));
  *qc = NULL;
  if (!path) QS_FAIL(QS_ERR_OOM, "out of memory");
  if (!(root = json_load_file(path, 0, &err))) QS_FAIL(QS_ERR_FORMAT, "%s: invalid JSON at line %d: %s", path, err.line, err.text);
  QS_TRY(hf_config(path, root, &text, &in.T, &gs, &sym));
  QS_TRY(qs_config_parse(cfg, text, path));
  QS_ALLOC(in.f, in.T);
  for (; opened < in.T; opened++) {
    char *fp;
    snprintf(file, sizeof(file), "rank%d.safetensors", opened);
    if (!(fp = qs_path_join(dir, file))) QS_FAIL(QS_ERR_OOM, "out of memory");
    status = qs_st_open(&in.f[opened], fp);
    free(fp);
    if (status != QS_OK) QS_FAIL(status, "%s: rank file %d of %d cannot be read", dir, opened, in.T);
  }
  QS_TRY(qs_ckpt_init_memory(ck, dir));
  QS_TRY(reassemble(&in));
  QS_TRY(qs_ckpt_seal(ck));
  *qc = json_pack("{s:s, s:i, s:i, s:b, s:b, s:s}", "quant_method", "gptq", "bits", 4, "group_size", gs, "desc_act", 0,
                  "sym", sym, "checkpoint_format", "gptq");
  if (!*qc) QS_FAIL(QS_ERR_OOM, "out of memory");
fail:
  for (int t = 0; t < opened; t++) qs_st_close(&in.f[t]);
  free(in.f);
  if (status != QS_OK) qs_ckpt_close(ck);
  json_decref(root);
  free(path);
  free(text);
  return status;
}

const struct qs_format qs_format_trtllm = {
    .name = "trtllm",
    .load_hint = "TensorRT-LLM: trtllm-build --checkpoint_dir {OUT} --output_dir ENGINE_DIR",
    .help = "TensorRT-LLM per-rank checkpoint for --tp T ranks (W4A16_GPTQ), in OUT/trtllm",
    .model_dir = 0,
    .refuse = trt_refuse,
    .scale_dtypes = 1u << QS_DTYPE_F16,
    .constrain = trt_constrain,
    .writes = trt_writes,
    .open = trt_open,
    .module = trt_module,
    .dense = trt_dense,
    .finish = trt_finish,
    .free = trt_free,
    .is_dir = trt_is_dir,
    .open_dir = trt_open_dir,
};
