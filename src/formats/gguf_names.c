// gguf_names.c — llama.cpp's file types, llama-quantize's per-tensor type rules, and the tensor
// names between Hugging Face and GGUF (contract: formats/gguf.h). Facts from llama.cpp's
// src/llama-quant.cpp (llama_tensor_get_type_impl, tensor_type_fallback) and gguf-py's tensor map.
#include "formats/gguf.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "io/ggml_types.h"
#include "io/layout.h"

static const struct qs_gguf_ftype k_ftypes[] = {
    {"F32", 0, QS_GGML_F32},       {"F16", 1, QS_GGML_F16},       {"BF16", 32, QS_GGML_BF16},
    {"Q8_0", 7, QS_GGML_Q8_0},     {"Q4_0", 2, QS_GGML_Q4_0},     {"Q4_1", 3, QS_GGML_Q4_1},
    {"Q5_0", 8, QS_GGML_Q5_0},     {"Q5_1", 9, QS_GGML_Q5_1},     {"Q2_K", 10, QS_GGML_Q2_K},
    {"Q3_K_S", 11, QS_GGML_Q3_K},  {"Q3_K_M", 12, QS_GGML_Q3_K},  {"Q3_K_L", 13, QS_GGML_Q3_K},
    {"Q4_K_S", 14, QS_GGML_Q4_K},  {"Q4_K_M", 15, QS_GGML_Q4_K},  {"Q5_K_S", 16, QS_GGML_Q5_K},
    {"Q5_K_M", 17, QS_GGML_Q5_K},  {"Q6_K", 18, QS_GGML_Q6_K},    {"IQ4_NL", 25, QS_GGML_IQ4_NL},
};
#define N_FTYPES (sizeof(k_ftypes) / sizeof(k_ftypes[0]))
enum { FT_Q2_K = 10, FT_Q3_K_S, FT_Q3_K_M, FT_Q3_K_L, FT_Q4_K_S, FT_Q4_K_M, FT_Q5_K_S, FT_Q5_K_M, FT_Q6_K,
       FT_Q4_0 = 2, FT_Q5_0 = 8, FT_IQ4_NL = 25 };

static int name_eq(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (toupper((unsigned char)*a) != toupper((unsigned char)*b)) return 0;
  return !*a && !*b;
}

const struct qs_gguf_ftype *qs_gguf_ftype_find(const char *name) {
  static const char *const alias[][2] = {{"Q3_K", "Q3_K_M"}, {"Q4_K", "Q4_K_M"}, {"Q5_K", "Q5_K_M"}};
  if (!name) return NULL;
  for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++)
    if (name_eq(name, alias[i][0])) name = alias[i][1];
  for (size_t i = 0; i < N_FTYPES; i++)
    if (name_eq(name, k_ftypes[i].name)) return &k_ftypes[i];
  return NULL;
}

const char *qs_gguf_ftype_names(void) {
  static char buf[256];
  if (!buf[0])
    for (size_t i = 0; i < N_FTYPES; i++) {
      size_t n = strlen(buf);
      snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "|" : "", k_ftypes[i].name);
    }
  return buf;
}

const char *qs_gguf_arch(const struct qs_config *c) { return c->arch == QS_ARCH_QWEN2 ? "qwen2" : "llama"; }

// ---- llama-quantize's type rules ------------------------------------------------------------------

// More bits for the first and last eighth of the layers and every third one between.
static int use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// llama.cpp's LLM_TYPE_70B, which bumps attn_v: 80 layers with grouped-query attention.
static int is_70b(const struct qs_config *c) { return c->n_layers == 80 && c->n_heads != c->n_kv_heads; }

// The mix's rule for one tensor (llama_tensor_get_type_impl, for the dense llama/qwen2 models and the
// file types of k_ftypes). The counters llama-quantize keeps (i_attention_wv, i_ffn_down) equal the
// layer index here: it visits tensors sorted by layer, one attn_v and one ffn_down per layer.
static int mix_rule(const struct qs_gguf_ftype *ft, const struct qs_config *c, enum qs_gguf_cat cat, int i, int64_t ne0,
                    int has_imatrix) {
  const int f = ft->ftype, n = c->n_layers, n_gqa = c->n_heads / c->n_kv_heads;
  int t = ft->type;
  if (cat == QS_GGUF_CAT_OUTPUT || (c->tie_embeddings && cat == QS_GGUF_CAT_TOKEN_EMBD)) {
    // the token embeddings of a tied model are also its output: they get the output's type
    if (ne0 % qs_ggml_blck_size(t)) t = QS_GGML_Q8_0;
    else if (t != QS_GGML_Q8_0) t = QS_GGML_Q6_K;
  } else if (cat == QS_GGUF_CAT_V) {
    if (f == FT_Q2_K) t = n_gqa >= 4 ? QS_GGML_Q4_K : QS_GGML_Q3_K;
    else if (f == FT_Q3_K_M) t = i < 2 ? QS_GGML_Q5_K : QS_GGML_Q4_K;
    else if (f == FT_Q3_K_L) t = QS_GGML_Q5_K;
    else if (f == FT_IQ4_NL && n_gqa >= 4) t = QS_GGML_Q5_K;
    else if ((f == FT_Q4_K_M || f == FT_Q5_K_M) && use_more_bits(i, n)) t = QS_GGML_Q6_K;
    else if (f == FT_Q4_K_S && i < 4) t = QS_GGML_Q5_K;
    if (is_70b(c) && (t == QS_GGML_Q3_K || t == QS_GGML_Q4_K)) t = QS_GGML_Q5_K;
  } else if (cat == QS_GGUF_CAT_DOWN) {
    if (f == FT_Q2_K) t = QS_GGML_Q3_K;
    else if (f == FT_Q3_K_M) t = i < n / 16 ? QS_GGML_Q5_K : QS_GGML_Q4_K;
    else if (f == FT_Q3_K_L) t = QS_GGML_Q5_K;
    else if (f == FT_Q4_K_M) { if (use_more_bits(i, n)) t = QS_GGML_Q6_K; }
    else if (i < n / 8 && f == FT_IQ4_NL && !has_imatrix) t = QS_GGML_Q5_K;
    else if (f == FT_Q5_K_M && use_more_bits(i, n)) t = QS_GGML_Q6_K;
    else if (f == FT_Q4_K_S && i < n / 8) t = QS_GGML_Q5_K;
    else if ((f == FT_Q4_0 || f == FT_Q5_0) && has_imatrix && i < n / 8)
      t = f == FT_Q4_0 ? QS_GGML_Q4_1 : QS_GGML_Q5_1; // "craziness in the first ffn_down layers"
  } else if (cat == QS_GGUF_CAT_O) {
    if (f == FT_Q2_K) t = QS_GGML_Q3_K;
    else if (f == FT_Q3_K_M) t = QS_GGML_Q4_K;
    else if (f == FT_Q3_K_L) t = QS_GGML_Q5_K;
  }
  return t;
}

int qs_gguf_tensor_type(const struct qs_gguf_ftype *ft, const struct qs_config *c, enum qs_gguf_cat cat, int layer,
                        int64_t ne0, int has_imatrix, char *msg, size_t cap) {
  if (cat == QS_GGUF_CAT_OTHER) return QS_GGML_F32;
  if (ft->type == QS_GGML_F32 || ft->type == QS_GGML_F16 || ft->type == QS_GGML_BF16) return ft->type;
  int t = mix_rule(ft, c, cat, layer, ne0, has_imatrix);
  if (ne0 % qs_ggml_blck_size(t) == 0) return t;
  int fb; // tensor_type_fallback
  switch (t) {
  case QS_GGML_Q2_K: case QS_GGML_Q3_K: fb = QS_GGML_Q4_0; break;
  case QS_GGML_Q4_K: fb = QS_GGML_Q5_0; break;
  case QS_GGML_Q5_K: fb = QS_GGML_Q5_1; break;
  case QS_GGML_Q6_K: fb = QS_GGML_Q8_0; break;
  default:
    snprintf(msg, cap, "rows of %lld values are not whole %d-blocks of %s, and llama-quantize has no fallback for "
             "%s (it stops there too)", (long long)ne0, qs_ggml_blck_size(t), qs_ggml_type_name(t), qs_ggml_type_name(t));
    return -1;
  }
  return ne0 % qs_ggml_blck_size(fb) ? QS_GGML_F16 : fb;
}

// ---- names ----------------------------------------------------------------------------------------

// GGUF names of the decoder layer's linears, by enum qs_lin (the HF names are the layout's).
static const char *const k_lin_gguf[QS_LIN_COUNT] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                     "ffn_gate", "ffn_up", "ffn_down"};
static const enum qs_gguf_cat k_lin_cat[QS_LIN_COUNT] = {QS_GGUF_CAT_Q, QS_GGUF_CAT_K, QS_GGUF_CAT_V, QS_GGUF_CAT_O,
                                                        QS_GGUF_CAT_GATE, QS_GGUF_CAT_UP, QS_GGUF_CAT_DOWN};
static const char *const k_global[][2] = {{"model.embed_tokens.weight", "token_embd.weight"},
                                          {"model.norm.weight", "output_norm.weight"},
                                          {"lm_head.weight", "output.weight"}};
static const char *const k_norm[][2] = {{"input_layernorm", "attn_norm"}, {"post_attention_layernorm", "ffn_norm"}};

int qs_gguf_name_of(const struct qs_config *c, const char *hf, char *out, size_t cap, enum qs_gguf_cat *cat,
                    int *layer, int *perm_heads) {
  const struct qs_layout *lay = qs_layout_of(c);
  int l = -1, off = 0;
  *cat = QS_GGUF_CAT_OTHER;
  *layer = -1;
  *perm_heads = 0;
  for (size_t i = 0; i < sizeof(k_global) / sizeof(k_global[0]); i++)
    if (!strcmp(hf, k_global[i][0])) {
      snprintf(out, cap, "%s", k_global[i][1]);
      *cat = i == 0 ? QS_GGUF_CAT_TOKEN_EMBD : i == 2 ? QS_GGUF_CAT_OUTPUT : QS_GGUF_CAT_OTHER;
      return 0;
    }
  if (sscanf(hf, "model.layers.%d.%n", &l, &off) != 1 || !off || l < 0 || l >= c->n_layers) return -1;
  const char *rest = hf + off, *dot = strrchr(rest, '.');
  if (!dot || (strcmp(dot, ".weight") && strcmp(dot, ".bias"))) return -1;
  char module[96];
  snprintf(module, sizeof(module), "%.*s", (int)(dot - rest), rest);
  *layer = l;
  for (size_t i = 0; i < sizeof(k_norm) / sizeof(k_norm[0]); i++)
    if (!strcmp(module, k_norm[i][0]) && !strcmp(dot, ".weight")) {
      snprintf(out, cap, "blk.%d.%s.weight", l, k_norm[i][1]);
      return 0;
    }
  int lin = qs_layout_find(lay, module);
  if (lin < 0) return -1;
  snprintf(out, cap, "blk.%d.%s%s", l, k_lin_gguf[lin], dot);
  if (!strcmp(dot, ".weight")) *cat = k_lin_cat[lin];
  // llama.cpp's llama architecture rotates pairs of adjacent head values, HF rotates halves
  if (c->arch != QS_ARCH_QWEN2 && (lin == QS_LIN_Q || lin == QS_LIN_K))
    *perm_heads = lin == QS_LIN_Q ? c->n_heads : c->n_kv_heads;
  return 0;
}

int qs_gguf_hf_name_of(const struct qs_config *c, const char *name, char *out, size_t cap) {
  const struct qs_layout *lay = qs_layout_of(c);
  int l = -1, off = 0;
  for (size_t i = 0; i < sizeof(k_global) / sizeof(k_global[0]); i++)
    if (!strcmp(name, k_global[i][1])) return snprintf(out, cap, "%s", k_global[i][0]) < (int)cap ? 0 : -1;
  if (sscanf(name, "blk.%d.%n", &l, &off) != 1 || !off || l < 0) return -1;
  const char *rest = name + off, *dot = strrchr(rest, '.');
  if (!dot) return -1;
  size_t n = (size_t)(dot - rest);
  for (size_t i = 0; i < sizeof(k_norm) / sizeof(k_norm[0]); i++)
    if (strlen(k_norm[i][1]) == n && !strncmp(rest, k_norm[i][1], n) && !strcmp(dot, ".weight"))
      return snprintf(out, cap, "model.layers.%d.%s.weight", l, k_norm[i][0]) < (int)cap ? 0 : -1;
  for (int i = 0; i < QS_LIN_COUNT; i++)
    if (strlen(k_lin_gguf[i]) == n && !strncmp(rest, k_lin_gguf[i], n))
      return snprintf(out, cap, "model.layers.%d.%s%s", l, lay->lin_name[i], dot) < (int)cap ? 0 : -1;
  return -1;
}

void qs_gguf_permute_rows(const void *src, void *dst, int64_t N, size_t row_bytes, int heads, int inverse) {
  const int64_t hd = N / heads, half = hd / 2;
  for (int64_t h = 0; h < heads; h++)
    for (int64_t s = 0; s < 2; s++)
      for (int64_t j = 0; j < half; j++) {
        int64_t hf = h * hd + s * half + j, gg = h * hd + 2 * j + s;
        const int64_t from = inverse ? gg : hf, to = inverse ? hf : gg;
        memcpy((char *)dst + (size_t)to * row_bytes, (const char *)src + (size_t)from * row_bytes, row_bytes);
      }
}
