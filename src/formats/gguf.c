// gguf.c — llama.cpp's GGUF as a qshard format: `--format gguf:TYPE` writes one file
// OUT/<model>-<TYPE>.gguf that llama.cpp (llama-cli, llama-server, llama-cpp-python) runs as it is,
// and `qshard eval` reads one back (dequantized to fp32 on load).
//
// What is written (FORMATS.md §5): the GGUF v3 container (io/gguf.h); general.* and <arch>.* keys with
// the types llama.cpp's loader checks; the tokenizer of the model directory (io/vocab.h); every tensor
// under its GGUF name, 2-D weights [N, K] as ne = {K, N} with the same bytes, q/k rows of the llama
// architecture permuted to llama.cpp's RoPE pairing (§5.4; quant blocks lie in rows, so quantized rows
// are permuted as they are). Tensor types follow llama-quantize's mix for TYPE (formats/gguf.h):
// the decoder layers' linears are the run's records (the method quantized them on the module grid
// this format chose, module_grid), the token embeddings / output are quantized here with the same
// references (quant/grid_ggml.h), norms and biases stay F32. With --method rtn (the default) each
// tensor is byte for byte what llama-quantize writes from the same float32 values (no imatrix, or
// the same imatrix); --method gptq chooses the linears' codes by GPTQ on the same blocks' scales.
//
// The file is planned completely in open() (every tensor's type and size, hence its offset), so
// tensors are written at their offsets as they arrive, from any thread; it is written under a
// temporary name and renamed when complete (io/gguf.h). With --imatrix from calibration the sums of
// squared activations are written beside it as OUT/imatrix.gguf (llama.cpp's imatrix format).
#include "formats/gguf.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/parallel.h"
#include "formats/format.h"
#include "io/gguf.h"
#include "io/vocab.h"
#include "quant/grid_ggml.h"

#define GGUF_QNT_VERSION 2 // general.quantization_version (GGML_QNT_VERSION)

extern const struct qs_format qs_format_gguf;

// One tensor of the file.
struct gguf_plan {
  char name[QS_GGUF_MAX_NAME + 1];
  const struct qs_st_tensor *src; // the input tensor; NULL for rope_freqs (made here)
  enum qs_gguf_cat cat;
  int layer, type, n_dims, perm_heads;
  int64_t ne[2];                  // ne[0]: row length; ne[1]: rows (1 for 1-D)
  int from_record;                // a decoder linear's weight: written by module()
  size_t index;
};

struct gguf_writer {
  struct qs_fwriter base;
  const struct qs_gguf_ftype *ft;
  struct qs_gguf_writer *g;
  char *path, *dir;
  struct gguf_plan *plan;
  int n_plan;
  float *rope_freqs; // [head_dim/2] llama3 rope factors, or NULL
  struct qs_imatrix imat; // the records' in_sum2 (QS_IMP_CALIB), written as OUT/imatrix.gguf
};

static int has_imatrix(const struct qs_format_run *fr) { return fr->opts->importance != QS_IMP_NONE; }

// ---- checks and grids (before any work) -------------------------------------------------------------

static int gguf_parse_arg(const char *arg, char *msg, size_t cap) {
  if (qs_gguf_ftype_find(arg)) return 0;
  snprintf(msg, cap, "gguf:%s: expected gguf:TYPE with TYPE one of %s", arg ? arg : "", qs_gguf_ftype_names());
  return 1;
}

// The type of decoder linear `lin` of layer l (the module grid), or -1 with msg.
static int lin_type(const struct qs_format_run *fr, int l, int lin, char *msg, size_t cap) {
  static const enum qs_gguf_cat cat[QS_LIN_COUNT] = {QS_GGUF_CAT_Q, QS_GGUF_CAT_K, QS_GGUF_CAT_V, QS_GGUF_CAT_O,
                                                     QS_GGUF_CAT_GATE, QS_GGUF_CAT_UP, QS_GGUF_CAT_DOWN};
  int n_out, n_in, bias;
  qs_layout_shape(fr->cfg, (enum qs_lin)lin, &n_out, &n_in, &bias);
  return qs_gguf_tensor_type(qs_gguf_ftype_find(fr->arg), fr->cfg, cat[lin], l, n_in, has_imatrix(fr), msg, cap);
}

static int gguf_refuse(const struct qs_format_run *fr, char *msg, size_t cap) {
  char why[256];
  if (gguf_parse_arg(fr->arg, msg, cap)) return 1;
  const int gptq = !strcmp(fr->method, "gptq");
  if (strcmp(fr->method, "rtn") && !gptq) {
    snprintf(msg, cap, "--method %s: llama.cpp's block grids take --method rtn (its own quantizers, the default "
             "with this format) or gptq (GPTQ error feedback on the blocks' scales)", fr->method);
    return 1;
  }
  if (gptq && fr->opts->act_order != QS_ACT_ORDER_NONE) {
    snprintf(msg, cap, "--act-order: GPTQ into llama.cpp's block grids keeps the column order (not built with it)");
    return 1;
  }
  for (int l = 0; l < fr->cfg->n_layers; l++)
    for (int i = 0; i < QS_LIN_COUNT; i++) {
      int t = lin_type(fr, l, i, why, sizeof(why));
      if (t < 0) {
        snprintf(msg, cap, "layer %d %s: %s", l, qs_layout_of(fr->cfg)->lin_name[i], why);
        return 1;
      }
      if (gptq && !qs_ggml_elem_supported(t)) {
        snprintf(msg, cap, "--method gptq: layer %d %s is %s, whose codes GPTQ cannot choose (not a rounding on "
                 "the block's scales); use --method rtn", l, qs_layout_of(fr->cfg)->lin_name[i], qs_ggml_type_name(t));
        return 1;
      }
    }
  if (fr->cfg->rope_type != QS_ROPE_DEFAULT && fr->cfg->rope_type != QS_ROPE_LINEAR &&
      fr->cfg->rope_type != QS_ROPE_LLAMA3) {
    snprintf(msg, cap, "this model's rope scaling has no GGUF form here");
    return 1;
  }
  return 0;
}

static void gguf_constrain(const struct qs_format_run *fr, struct qs_grid *g) {
  *g = qs_grid_ggml(qs_gguf_ftype_find(fr->arg)->type);
}

static void gguf_module_grid(const struct qs_format_run *fr, int layer, int lin, struct qs_grid *g) {
  char msg[256];
  int t = lin_type(fr, layer, lin, msg, sizeof(msg));
  if (t >= 0) *g = qs_grid_ggml(t); // refuse() stopped the run before any type could be -1
}

static int gguf_writes(const struct qs_format_run *fr) { return fr->rank == fr->writer; }

// ---- the plan -------------------------------------------------------------------------------------

// llama3 rope factors per frequency (conversion/llama.py generate_extra_tensors): 1 for short wave
// lengths, `factor` for long ones, smoothly between.
static qs_status rope_factors(const struct qs_config *c, float **out, int *n) {
  qs_status status = QS_OK;
  const int dim = c->head_dim;
  const double lo = c->rope_orig_max_pos / c->rope_low_freq_factor, hi = c->rope_orig_max_pos / c->rope_high_freq_factor;
  QS_ALLOC(*out, dim / 2);
  for (int i = 0; i < dim / 2; i++) {
    double freq = 1.0 / pow(c->rope_theta, (double)(2 * i) / dim), wl = 2.0 * M_PI / freq;
    double f;
    if (wl < hi) f = 1.0;
    else if (wl > lo) f = c->rope_factor;
    else {
      double smooth = (c->rope_orig_max_pos / wl - c->rope_low_freq_factor) /
                      (c->rope_high_freq_factor - c->rope_low_freq_factor);
      f = 1.0 / ((1.0 - smooth) / c->rope_factor + smooth);
    }
    (*out)[i] = (float)f;
  }
  *n = dim / 2;
fail:
  return status;
}

static qs_status plan_add(struct gguf_writer *w, const char *hf, int optional) {
  qs_status status = QS_OK;
  const struct qs_format_run *fr = w->base.fr;
  const struct qs_st_tensor *t = qs_ckpt_find(fr->ckpt, hf);
  struct gguf_plan p = {0};
  char msg[256];
  if (!t) {
    if (optional) return QS_OK;
    QS_FAIL(QS_ERR_FORMAT, "%s: tensor %s is missing", fr->model_dir, hf);
  }
  if (qs_gguf_name_of(fr->cfg, hf, p.name, sizeof(p.name), &p.cat, &p.layer, &p.perm_heads))
    QS_FAIL(QS_ERR_INTERNAL, "%s has no GGUF name", hf);
  if (t->ndim != 1 && t->ndim != 2) QS_FAIL(QS_ERR_UNSUPPORTED, "%s: %d dims", hf, t->ndim);
  p.src = t;
  p.n_dims = t->ndim;
  p.ne[0] = t->shape[t->ndim - 1];
  p.ne[1] = t->ndim == 2 ? t->shape[0] : 1;
  p.type = t->ndim == 1 ? QS_GGML_F32 : qs_gguf_tensor_type(w->ft, fr->cfg, p.cat, p.layer, p.ne[0], has_imatrix(fr), msg, sizeof(msg));
  if (p.type < 0) QS_FAIL(QS_ERR_UNSUPPORTED, "%s: %s", hf, msg);
  p.from_record = p.n_dims == 2 && p.layer >= 0 && p.cat != QS_GGUF_CAT_OTHER;
  int64_t ne[2] = {p.ne[0], p.ne[1]};
  QS_TRY(qs_gguf_writer_add_tensor(w->g, p.name, p.type, p.n_dims, ne, &p.index));
  w->plan[w->n_plan++] = p;
fail:
  return status;
}

// Every tensor of the file, in llama.cpp's order (global tensors, then layer by layer).
static qs_status plan_tensors(struct gguf_writer *w) {
  qs_status status = QS_OK;
  const struct qs_format_run *fr = w->base.fr;
  const struct qs_config *c = fr->cfg;
  const struct qs_layout *lay = qs_layout_of(c);
  char hf[192];
  QS_ALLOC(w->plan, fr->ckpt->n_tensors + 1);
  QS_TRY(plan_add(w, "model.embed_tokens.weight", 0));
  if (c->rope_type == QS_ROPE_LLAMA3) {
    int n = 0;
    QS_TRY(rope_factors(c, &w->rope_freqs, &n));
    struct gguf_plan p = {.cat = QS_GGUF_CAT_OTHER, .layer = -1, .type = QS_GGML_F32, .n_dims = 1, .ne = {n, 1}};
    snprintf(p.name, sizeof(p.name), "rope_freqs.weight");
    QS_TRY(qs_gguf_writer_add_tensor(w->g, p.name, p.type, 1, p.ne, &p.index));
    w->plan[w->n_plan++] = p;
  }
  QS_TRY(plan_add(w, "model.norm.weight", 0));
  if (!c->tie_embeddings) QS_TRY(plan_add(w, "lm_head.weight", 0));
  for (int l = 0; l < c->n_layers; l++) {
    snprintf(hf, sizeof(hf), "model.layers.%d.input_layernorm.weight", l);
    QS_TRY(plan_add(w, hf, 0));
    for (int i = 0; i < QS_LIN_COUNT; i++) {
      snprintf(hf, sizeof(hf), "model.layers.%d.%s.weight", l, lay->lin_name[i]);
      QS_TRY(plan_add(w, hf, 0));
      snprintf(hf, sizeof(hf), "model.layers.%d.%s.bias", l, lay->lin_name[i]);
      QS_TRY(plan_add(w, hf, 1));
      if (i == QS_LIN_O) {
        snprintf(hf, sizeof(hf), "model.layers.%d.post_attention_layernorm.weight", l);
        QS_TRY(plan_add(w, hf, 0));
      }
    }
  }
fail:
  return status;
}

static struct gguf_plan *plan_find(struct gguf_writer *w, const char *gname) {
  for (int i = 0; i < w->n_plan; i++)
    if (!strcmp(w->plan[i].name, gname)) return &w->plan[i];
  return NULL;
}

// ---- keys -----------------------------------------------------------------------------------------

static qs_status set_keys(struct gguf_writer *w) {
  qs_status status = QS_OK;
  const struct qs_format_run *fr = w->base.fr;
  const struct qs_config *c = fr->cfg;
  struct qs_gguf_writer *g = w->g;
  const char *arch = qs_gguf_arch(c);
  char key[96], name[256];
  struct qs_vocab v = {0};
  const char *base = strrchr(fr->model_dir, '/');
  snprintf(name, sizeof(name), "%s", base && base[1] ? base + 1 : fr->model_dir);
#define KEY(k) (snprintf(key, sizeof(key), "%s." k, arch), key)
  QS_TRY(qs_gguf_writer_set_string(g, "general.architecture", arch));
  QS_TRY(qs_gguf_writer_set_string(g, "general.type", "model"));
  QS_TRY(qs_gguf_writer_set_string(g, "general.name", name));
  QS_TRY(qs_gguf_writer_set_u32(g, KEY("block_count"), (uint32_t)c->n_layers));
  QS_TRY(qs_gguf_writer_set_u32(g, KEY("context_length"), (uint32_t)c->max_pos));
  QS_TRY(qs_gguf_writer_set_u32(g, KEY("embedding_length"), (uint32_t)c->hidden));
  QS_TRY(qs_gguf_writer_set_u32(g, KEY("feed_forward_length"), (uint32_t)c->intermediate));
  QS_TRY(qs_gguf_writer_set_u32(g, KEY("attention.head_count"), (uint32_t)c->n_heads));
  QS_TRY(qs_gguf_writer_set_u32(g, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads));
  QS_TRY(qs_gguf_writer_set_f32(g, KEY("rope.freq_base"), (float)c->rope_theta));
  QS_TRY(qs_gguf_writer_set_f32(g, KEY("attention.layer_norm_rms_epsilon"), c->rms_eps));
  QS_TRY(qs_gguf_writer_set_u32(g, KEY("attention.key_length"), (uint32_t)c->head_dim));
  QS_TRY(qs_gguf_writer_set_u32(g, KEY("attention.value_length"), (uint32_t)c->head_dim));
  QS_TRY(qs_gguf_writer_set_u32(g, "general.file_type", (uint32_t)w->ft->ftype));
  if (c->arch != QS_ARCH_QWEN2) {
    QS_TRY(qs_gguf_writer_set_u32(g, KEY("vocab_size"), (uint32_t)c->vocab));
    QS_TRY(qs_gguf_writer_set_u32(g, KEY("rope.dimension_count"), (uint32_t)c->head_dim));
  }
  if (c->rope_type == QS_ROPE_LINEAR) {
    QS_TRY(qs_gguf_writer_set_string(g, KEY("rope.scaling.type"), "linear"));
    QS_TRY(qs_gguf_writer_set_f32(g, KEY("rope.scaling.factor"), (float)c->rope_factor));
  }
  QS_TRY(qs_gguf_writer_set_u32(g, "general.quantization_version", GGUF_QNT_VERSION));
#undef KEY
  QS_TRY(qs_vocab_load(&v, fr->model_dir));
  QS_TRY(qs_vocab_add_gguf_keys(&v, g));
fail:
  qs_vocab_free(&v);
  return status;
}

// ---- writing --------------------------------------------------------------------------------------

static void gguf_free(struct qs_fwriter *base) {
  struct gguf_writer *w = (struct gguf_writer *)base;
  if (!w) return;
  qs_gguf_writer_free(w->g); // removes the temporary file of an unfinished write
  qs_imatrix_free(&w->imat);
  free(w->plan);
  free(w->rope_freqs);
  free(w->path);
  free(w->dir);
  free(w);
}

static qs_status gguf_open(struct qs_fwriter **out, const struct qs_format_run *fr, const char *dir) {
  qs_status status = QS_OK;
  struct gguf_writer *w = NULL;
  char file[320];
  QS_ALLOC(w, 1);
  w->base = (struct qs_fwriter){.fmt = &qs_format_gguf, .fr = fr};
  w->ft = qs_gguf_ftype_find(fr->arg);
  if (!w->ft) QS_FAIL(QS_ERR_ARG, "--format gguf:%s: unknown type", fr->arg ? fr->arg : "");
  QS_TRY(qs_dir_make(dir));
  const char *base = strrchr(fr->model_dir, '/');
  base = base && base[1] ? base + 1 : fr->model_dir;
  snprintf(file, sizeof(file), "%s-%s.gguf", base, w->ft->name);
  if (!(w->dir = strdup(dir)) || !(w->path = qs_path_join(dir, file))) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(qs_gguf_writer_init(&w->g));
  QS_TRY(set_keys(w));
  QS_TRY(plan_tensors(w));
  QS_TRY(qs_gguf_writer_open(w->g, w->path));
  *out = &w->base;
  return QS_OK;
fail:
  gguf_free(&w->base);
  return status;
}

// A record's rows into its tensor (q/k rows permuted).
static qs_status gguf_module(struct qs_fwriter *base, const struct qs_qrecord *r, int *dense) {
  qs_status status = QS_OK;
  struct gguf_writer *w = (struct gguf_writer *)base;
  const struct qs_format_run *fr = w->base.fr;
  char hf[160], gname[QS_GGUF_MAX_NAME + 1];
  enum qs_gguf_cat cat;
  int layer, ph;
  uint8_t *perm = NULL;
  *dense = 0;
  snprintf(hf, sizeof(hf), "%s.weight", r->name);
  if (qs_gguf_name_of(fr->cfg, hf, gname, sizeof(gname), &cat, &layer, &ph)) QS_FAIL(QS_ERR_INTERNAL, "%s: no GGUF name", hf);
  struct gguf_plan *p = plan_find(w, gname);
  if (!p || !p->from_record) QS_FAIL(QS_ERR_INTERNAL, "%s: not a planned decoder linear", gname);
  if (r->grid.kind != QS_GRID_GGML || r->grid.ggml_type != p->type || r->K != p->ne[0] || r->N != p->ne[1])
    QS_FAIL(QS_ERR_INTERNAL, "%s: the record (%s) is not the planned %s [%lld, %lld]", gname,
            qs_ggml_type_name(r->grid.ggml_type), qs_ggml_type_name(p->type), (long long)p->ne[1], (long long)p->ne[0]);
  const size_t row = (size_t)qs_ggml_row_size(p->type, p->ne[0]);
  const void *data = r->codes;
  if (p->perm_heads) {
    QS_ALLOC(perm, (size_t)r->N * row);
    qs_gguf_permute_rows(r->codes, perm, r->N, row, p->perm_heads, 0);
    data = perm;
  }
  QS_TRY(qs_gguf_writer_write_tensor(w->g, p->index, data, (uint64_t)r->N * row));
  for (int i = 0; i < r->n_extra; i++)
    if (!strcmp(r->extra[i].name, "in_sum2"))
      QS_TRY(qs_imatrix_add(&w->imat, r->name, r->extra[i].data, r->K, fr->opts->imp_count));
fail:
  free(perm);
  return status;
}

// Rows [i0, i1) of one input tensor converted to fp32, quantized to the planned type and written at
// their place in the file (q/k rows at their permuted place).
struct dense_job {
  struct gguf_writer *w;
  const struct gguf_plan *p;
  const float *imp; // the importance of this tensor from an imatrix file (untied output.weight), or NULL
  qs_status status; // the first failure (chunks write distinct rows; the status is set under no lock:
                    // any non-OK value makes the tensor fail)
};

static void dense_rows(void *arg, int64_t i0, int64_t i1) {
  struct dense_job *j = arg;
  const struct gguf_plan *p = j->p;
  const int64_t K = p->ne[0];
  const size_t row = (size_t)qs_ggml_row_size(p->type, K), esz = qs_dtype_size(p->src->dtype);
  float *x = malloc((size_t)K * sizeof(float));
  uint8_t *q = malloc(row);
  qs_status st = QS_OK;
  if (!x || !q) st = qs_report(QS_ERR_OOM, __FILE__, __LINE__, __func__, "out of memory");
  for (int64_t r = i0; r < i1 && st == QS_OK; r++) {
    qs_convert_to_f32((const char *)p->src->data + (size_t)r * K * esz, p->src->dtype, x, (size_t)K);
    st = qs_ggml_quantize_row_ref(p->type, x, j->imp, K, q);
    int64_t dst = r;
    if (p->perm_heads) { // the destination of HF row r (qs_gguf_permute_rows)
      const int64_t hd = p->ne[1] / p->perm_heads, half = hd / 2, h = r / hd, s = (r % hd) / half, jj = (r % hd) % half;
      dst = h * hd + 2 * jj + s;
    }
    if (st == QS_OK) st = qs_gguf_writer_write_part(j->w->g, p->index, (uint64_t)dst * row, q, row);
  }
  if (st != QS_OK) j->status = st;
  free(x);
  free(q);
}

static qs_status gguf_dense(struct qs_fwriter *base, const struct qs_st_tensor *t) {
  qs_status status = QS_OK;
  struct gguf_writer *w = (struct gguf_writer *)base;
  const struct qs_format_run *fr = w->base.fr;
  char gname[QS_GGUF_MAX_NAME + 1];
  enum qs_gguf_cat cat;
  int layer, ph;
  if ((fr->cfg->tie_embeddings && !strcmp(t->name, "lm_head.weight")) || strstr(t->name, "rotary_emb.inv_freq"))
    return QS_OK; // the tied output is token_embd; inverse frequencies are recomputed by llama.cpp
  if (qs_gguf_name_of(fr->cfg, t->name, gname, sizeof(gname), &cat, &layer, &ph))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: tensor %s has no GGUF name", fr->model_dir, t->name);
  struct gguf_plan *p = plan_find(w, gname);
  if (!p) QS_FAIL(QS_ERR_INTERNAL, "%s: not planned", gname);
  if (p->from_record) return QS_OK; // module() wrote it
  if (p->n_dims == 1) { // norms and biases: F32 (q/k biases permuted like their weights' rows)
    float *v = NULL, *pv = NULL;
    QS_ALLOC(v, p->ne[0]);
    qs_convert_to_f32(t->data, t->dtype, v, (size_t)p->ne[0]);
    if (p->perm_heads) {
      pv = malloc((size_t)p->ne[0] * sizeof(float));
      if (!pv) { free(v); QS_FAIL(QS_ERR_OOM, "out of memory"); }
      qs_gguf_permute_rows(v, pv, p->ne[0], sizeof(float), p->perm_heads, 0);
    }
    status = qs_gguf_writer_write_tensor(w->g, p->index, pv ? pv : v, (uint64_t)p->ne[0] * sizeof(float));
    free(v);
    free(pv);
    QS_TRY(status);
    return QS_OK;
  }
  struct dense_job job = {.w = w, .p = p, .status = QS_OK};
  if (fr->opts->importance == QS_IMP_TABLE) { // as llama-quantize: the file's entry under this tensor's name
    char module[192];
    snprintf(module, sizeof(module), "%.*s", (int)(strlen(t->name) - strlen(".weight")), t->name);
    job.imp = qs_imatrix_find(fr->opts->imatrix, module, p->ne[0], &status);
    QS_TRY(status);
  }
  qs_parallel_for(p->ne[1], 64, dense_rows, &job);
  QS_TRY(job.status);
fail:
  return status;
}

static qs_status gguf_finish(struct qs_fwriter *base) {
  qs_status status = QS_OK;
  struct gguf_writer *w = (struct gguf_writer *)base;
  char *ipath = NULL;
  struct gguf_plan *rf = plan_find(w, "rope_freqs.weight");
  if (rf) QS_TRY(qs_gguf_writer_write_tensor(w->g, rf->index, w->rope_freqs, (uint64_t)rf->ne[0] * sizeof(float)));
  QS_TRY(qs_gguf_writer_commit(w->g)); // every tensor written exactly once, then the rename
  if (w->imat.n) { // llama-imatrix's bookkeeping: the calibration file, its windows and their length
    const struct qs_format_run *fr = w->base.fr;
    if (!(ipath = qs_path_join(w->dir, "imatrix.gguf")) || (fr->calib && !(w->imat.dataset = strdup(fr->calib))))
      QS_FAIL(QS_ERR_OOM, "out of memory");
    w->imat.chunk_count = (uint32_t)fr->calib_samples;
    w->imat.chunk_size = fr->calib_samples ? (uint32_t)(fr->opts->imp_count / (float)fr->calib_samples) : 0;
    QS_TRY(qs_gguf_imatrix_write(ipath, w->base.fr->cfg, &w->imat));
  }
fail:
  free(ipath);
  return status;
}

// ---- reading ----------------------------------------------------------------------------------------

// The GGUF model file of `path`: the file itself, or the one *.gguf (imatrix.gguf aside) of a
// directory without config.json. NULL when path is neither (malloc'ed).
static char *model_file(const char *path) {
  if (!qs_path_is_dir(path)) return qs_str_has_suffix(path, ".gguf") ? strdup(path) : NULL;
  char *cfg = qs_path_join(path, "config.json"), *found = NULL;
  FILE *f = cfg ? fopen(cfg, "r") : NULL;
  free(cfg);
  if (f) { fclose(f); return NULL; }
  DIR *d = opendir(path);
  if (!d) return NULL;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (qs_str_has_suffix(e->d_name, ".gguf") && strcmp(e->d_name, "imatrix.gguf")) {
      n++;
      free(found);
      found = qs_path_join(path, e->d_name);
    }
  closedir(d);
  if (n != 1) { free(found); return NULL; }
  return found;
}

static int gguf_is_dir(const char *path) {
  char *f = model_file(path);
  free(f);
  return f != NULL;
}

// config.json text for the model a GGUF file describes (the keys set_keys writes).
static qs_status config_of(const struct qs_gguf_file *f, char **json, int tied) {
  qs_status status = QS_OK;
  const char *arch = NULL;
  uint32_t n_layer, ctx, emb, ff, nh, nkv, hd = 0;
  float base = 10000.0f, eps;
  char key[96];
  json_t *root = NULL;
  QS_TRY(qs_gguf_get_string(f, "general.architecture", &arch));
  if (strcmp(arch, "llama") && strcmp(arch, "qwen2"))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: architecture %s (qshard reads llama and qwen2)", f->path, arch);
#define KEY(k) (snprintf(key, sizeof(key), "%s." k, arch), key)
  QS_TRY(qs_gguf_get_u32(f, KEY("block_count"), &n_layer));
  QS_TRY(qs_gguf_get_u32(f, KEY("context_length"), &ctx));
  QS_TRY(qs_gguf_get_u32(f, KEY("embedding_length"), &emb));
  QS_TRY(qs_gguf_get_u32(f, KEY("feed_forward_length"), &ff));
  QS_TRY(qs_gguf_get_u32(f, KEY("attention.head_count"), &nh));
  if (nh == 0) QS_FAIL(QS_ERR_FORMAT, "%s: %s is 0", f->path, key); // head_dim defaults to emb / nh
  nkv = nh;
  if (qs_gguf_find_kv(f, KEY("attention.head_count_kv"))) QS_TRY(qs_gguf_get_u32(f, key, &nkv));
  if (qs_gguf_find_kv(f, KEY("rope.freq_base"))) QS_TRY(qs_gguf_get_f32(f, key, &base));
  if (qs_gguf_find_kv(f, KEY("attention.key_length"))) QS_TRY(qs_gguf_get_u32(f, key, &hd));
  QS_TRY(qs_gguf_get_f32(f, KEY("attention.layer_norm_rms_epsilon"), &eps));
  if (qs_gguf_find_kv(f, KEY("rope.scaling.type")) || qs_gguf_find_tensor(f, "rope_freqs.weight"))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: rope scaling in a GGUF file is not read by qshard eval yet", f->path);
#undef KEY
  const struct qs_gguf_tensor *te = qs_gguf_find_tensor(f, "token_embd.weight");
  if (!te || te->n_dims != 2) QS_FAIL(QS_ERR_FORMAT, "%s: token_embd.weight missing or not 2-D", f->path);
  const struct qs_gguf_tensor *qb = qs_gguf_find_tensor(f, "blk.0.attn_q.bias");
  const struct qs_gguf_tensor *ob = qs_gguf_find_tensor(f, "blk.0.attn_output.bias");
  root = json_pack("{s:s, s:[s], s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:b, s:s, s:b}", "model_type", arch,
                   "architectures", strcmp(arch, "qwen2") ? "LlamaForCausalLM" : "Qwen2ForCausalLM", "hidden_size",
                   (int)emb, "intermediate_size", (int)ff, "num_hidden_layers", (int)n_layer, "num_attention_heads",
                   (int)nh, "num_key_value_heads", (int)nkv, "head_dim", (int)(hd ? hd : emb / nh), "vocab_size",
                   (int)te->ne[1], "max_position_embeddings", (int)ctx, "rms_norm_eps", (double)eps, "rope_theta",
                   (double)base, "tie_word_embeddings", tied, "torch_dtype", "float32", "attention_bias",
                   qb != NULL && (strcmp(arch, "llama") || ob != NULL));
  if (!root || !(*json = json_dumps(root, 0))) QS_FAIL(QS_ERR_OOM, "out of memory");
fail:
  json_decref(root);
  return status;
}

// One GGUF tensor as an fp32 checkpoint tensor under its Hugging Face name (q/k rows back in HF order).
static qs_status read_tensor(struct qs_gguf_file *f, const struct qs_gguf_tensor *t, const struct qs_config *c,
                             struct qs_ckpt *ck) {
  qs_status status = QS_OK;
  char hf[192], back[QS_GGUF_MAX_NAME + 1];
  enum qs_gguf_cat cat;
  int layer, ph;
  const void *data;
  float *w = NULL, *tmp = NULL;
  if (qs_gguf_hf_name_of(c, t->name, hf, sizeof(hf)) || qs_gguf_name_of(c, hf, back, sizeof(back), &cat, &layer, &ph))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: tensor %s is not one of a llama/qwen2 model", f->path, t->name);
  if (t->n_dims < 1 || t->n_dims > 2) QS_FAIL(QS_ERR_FORMAT, "%s: %s has %d dims", f->path, t->name, t->n_dims);
  const int64_t K = t->ne[0], N = t->n_dims == 2 ? t->ne[1] : 1;
  const size_t row = (size_t)qs_ggml_row_size(t->type, K);
  QS_TRY(qs_gguf_map_tensor(f, t, &data));
  QS_ALLOC(w, (size_t)(N * K));
  for (int64_t r = 0; r < N; r++) {
    QS_TRY(qs_ggml_dequant_row_ref(t->type, (const char *)data + (size_t)r * row, K, w + r * K));
  }
  if (ph) { // a q/k weight [N, K] or bias [N] (one value per row)
    const int64_t rows = t->n_dims == 2 ? N : K, rb = t->n_dims == 2 ? K : 1;
    QS_ALLOC(tmp, (size_t)(N * K));
    qs_gguf_permute_rows(w, tmp, rows, (size_t)rb * sizeof(float), ph, 1);
    free(w);
    w = tmp;
    tmp = NULL;
  }
  int64_t shape[2] = {t->n_dims == 2 ? N : K, K};
  QS_TRY(qs_ckpt_add_owned(ck, hf, QS_DTYPE_F32, t->n_dims, shape, w));
  w = NULL;
fail:
  free(w);
  free(tmp);
  return status;
}

static qs_status gguf_open_dir(const char *path, struct qs_config *cfg, struct qs_ckpt *ck, json_t **qc) {
  qs_status status = QS_OK;
  struct qs_gguf_file f = {0};
  char *file = model_file(path), *json = NULL;
  int opened = 0, ck_init = 0;
  *qc = NULL;
  if (!file) QS_FAIL(QS_ERR_IO, "%s: no GGUF model file", path);
  QS_TRY(qs_gguf_open(&f, file));
  opened = 1;
  QS_TRY(config_of(&f, &json, qs_gguf_find_tensor(&f, "output.weight") == NULL));
  QS_TRY(qs_config_parse(cfg, json, file));
  QS_TRY(qs_ckpt_init_memory(ck, file));
  ck_init = 1;
  for (size_t i = 0; i < f.n_tensors; i++) QS_TRY(read_tensor(&f, &f.tensors[i], cfg, ck));
  QS_TRY(qs_ckpt_seal(ck));
  ck_init = 0;
fail:
  if (ck_init) qs_ckpt_close(ck);
  if (opened) qs_gguf_close(&f);
  free(json);
  free(file);
  return status;
}

const struct qs_format qs_format_gguf = {
    .name = "gguf",
    .load_hint = "llama.cpp: llama-server -m {FILE} (or llama-cli -m {FILE})",
    .help = "gguf:TYPE = llama.cpp's GGUF file (llama-cli, llama-server, llama-cpp-python), TYPE one of "
            "F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S/M/L Q4_K_S/M Q5_K_S/M Q6_K IQ4_NL, "
            "each tensor byte for byte what llama-quantize writes (its per-tensor mix; --imatrix)",
    .model_dir = 1,
    .method = "rtn",
    .parse_arg = gguf_parse_arg,
    .refuse = gguf_refuse,
    .constrain = gguf_constrain,
    .module_grid = gguf_module_grid,
    .scale_dtypes = 1u << QS_DTYPE_F16 | 1u << QS_DTYPE_BF16 | 1u << QS_DTYPE_F32, // blocks carry their own
    .writes = gguf_writes,
    .open = gguf_open,
    .module = gguf_module,
    .dense = gguf_dense,
    .finish = gguf_finish,
    .free = gguf_free,
    .is_dir = gguf_is_dir,
    .open_dir = gguf_open_dir,
};
