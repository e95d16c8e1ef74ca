// gptq.c — the GPTQ v1 format (FORMATS.md §2; packing and layout: gptq.h): writer and reader.
// Per quantized linear X: X.qweight / X.qzeros / X.scales (fp16) / X.g_idx (+ fp16 X.bias); every
// other tensor as stored in the input; quantization_config in config.json and quantize_config.json.
// A module whose shape cannot be packed (K*bits or N*bits not a multiple of 32) stays dense, and the
// configs tell loaders so (modules_in_block_to_quantize, dynamic).
#include "formats/gptq.h"

#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "formats/format.h"
#include "io/outdir.h"

extern const struct qs_format qs_format_gptq;

struct gptq_writer {
  struct qs_fdir d;
  int dense_lin[QS_LIN_COUNT]; // 1: this linear kept dense (every layer has the same shapes)
};

// ---- writer ----------------------------------------------------------------------------------------

static int gptq_refuse(const struct qs_format_run *fr, char *msg, size_t cap) {
  const struct qs_grid *g = &fr->opts->grid;
  if (g->kind != QS_GRID_INT) {
    snprintf(msg, cap, "--format gptq stores integer grids only");
    return 1;
  }
  return 0;
}

// v1 stores zero - 1 in `bits` bits: a zero point of 0 would wrap (gptq.h).
static void gptq_constrain(const struct qs_format_run *fr, struct qs_grid *g) {
  (void)fr;
  if (!g->sym && g->min_zero < 1) g->min_zero = 1;
}

static int gptq_writes(const struct qs_format_run *fr) { return fr->rank == fr->writer; }

static void gptq_free(struct qs_fwriter *base) {
  struct gptq_writer *w = (struct gptq_writer *)base;
  if (!w) return;
  qs_fdir_free(&w->d);
  free(w);
}

static qs_status gptq_open(struct qs_fwriter **out, const struct qs_format_run *fr, const char *dir) {
  qs_status status = QS_OK;
  struct gptq_writer *w = NULL;
  QS_ALLOC(w, 1);
  QS_TRY(qs_fdir_init(&w->d, &qs_format_gptq, fr, dir));
  *out = &w->d.base;
  return QS_OK;
fail:
  gptq_free(w ? &w->d.base : NULL);
  return status;
}

static qs_status gptq_module(struct qs_fwriter *base, const struct qs_qrecord *r, int *dense) {
  qs_status status = QS_OK;
  struct gptq_writer *w = (struct gptq_writer *)base;
  const int bits = r->grid.bits;
  const int64_t N = r->N, K = r->K, G = r->G;
  int32_t *qweight = NULL, *qzeros = NULL;
  uint16_t *scales = NULL, *scales_out = NULL, *bias = NULL;
  int lin = 0;
  QS_TRY(qs_format_record_lin(base->fr, r, &lin));
  *dense = !qs_gptq_can_pack(N, K, bits, r->grid.group_size);
  if (*dense) {
    w->dense_lin[lin] = 1;
    return qs_fdir_dense_record(&w->d, r);
  }
  QS_ALLOC(qweight, K * bits / 32 * N);
  QS_ALLOC(qzeros, G * (N * bits / 32));
  QS_ALLOC(scales, N * G);
  QS_ALLOC(scales_out, G * N);
  for (int64_t i = 0; i < N * G; i++) scales[i] = qs_f32_to_f16(r->scales[i]); // exact: the grid's fp16 values
  QS_TRY(qs_gptq_pack(r->codes, scales, r->zeros, bits, N, K, G, qweight, qzeros, scales_out, NULL));
  QS_TRY(qs_format_add(w->d.st, r->name, "qweight", QS_DTYPE_I32, 2, K * bits / 32, N, qweight));
  QS_TRY(qs_format_add(w->d.st, r->name, "qzeros", QS_DTYPE_I32, 2, G, N * bits / 32, qzeros));
  QS_TRY(qs_format_add(w->d.st, r->name, "scales", QS_DTYPE_F16, 2, G, N, scales_out));
  QS_TRY(qs_format_add(w->d.st, r->name, "g_idx", QS_DTYPE_I32, 1, K, 0, r->g_idx));
  QS_TRY(qs_fdir_replaced(&w->d, r->name, "weight"));
  if (r->bias) { // GPTQ linears carry an fp16 bias (AutoGPTQ QuantLinear registers it as float16)
    QS_ALLOC(bias, N);
    qs_convert_from_f32(r->bias, QS_DTYPE_F16, bias, (size_t)N);
    QS_TRY(qs_format_add(w->d.st, r->name, "bias", QS_DTYPE_F16, 1, N, 0, bias));
    QS_TRY(qs_fdir_replaced(&w->d, r->name, "bias"));
  }
fail:
  free(qweight);
  free(qzeros);
  free(scales);
  free(scales_out);
  free(bias);
  return status;
}

static qs_status gptq_dense(struct qs_fwriter *base, const struct qs_st_tensor *t) {
  return qs_fdir_dense(&((struct gptq_writer *)base)->d, t);
}

// Loaders must be told which modules stayed dense: optimum reads modules_in_block_to_quantize,
// GPTQModel and vLLM read `dynamic` ("-:" + regex = do not quantize; vLLM matches its fused names).
static qs_status add_dense_info(const struct gptq_writer *w, json_t *qc) {
  qs_status status = QS_OK;
  const struct qs_layout *lay = qs_layout_of(w->d.base.fr->cfg);
  json_t *blocks = json_array(), *dyn = json_object();
  int any = 0;
  if (!blocks || !dyn) QS_FAIL(QS_ERR_OOM, "out of memory");
  for (int g = 0; g < QS_GROUP_COUNT; g++) {
    json_t *list = json_array();
    for (int i = lay->group[g].first; i < lay->group[g].first + lay->group[g].count; i++) {
      const char *m = lay->lin_name[i];
      if (!w->dense_lin[i]) { json_array_append_new(list, json_string(m)); continue; }
      any = 1;
      char re[160];
      const char *leaf = strchr(m, '.') + 1;
      const char *fused = g == QS_GROUP_QKV ? "|qkv_proj" : g == QS_GROUP_GATE_UP ? "|gate_up_proj" : "";
      snprintf(re, sizeof(re), "-:.*\\.(%s%s)$", leaf, fused);
      json_object_set_new(dyn, re, json_object());
    }
    if (json_array_size(list)) json_array_append_new(blocks, list);
    else json_decref(list);
  }
  if (any) {
    json_object_set(qc, "modules_in_block_to_quantize", blocks);
    json_object_set(qc, "dynamic", dyn);
  }
fail:
  json_decref(blocks);
  json_decref(dyn);
  return status;
}

// desc_act is true only for permuted groups (--act-order=group): with static groups the stored layout
// is that of no act-order (g_idx = k/gs), and FORMATS §2.4's writer rule says desc_act false.
static json_t *quantization_config(const struct gptq_writer *w) {
  const struct qs_format_run *fr = w->d.base.fr;
  const struct qs_qopts *o = fr->opts;
  const struct qs_grid *g = &o->grid;
  json_t *qc = json_pack("{s:s, s:i, s:i, s:b, s:b, s:f, s:b, s:b, s:s, s:s, s:b}", "quant_method", "gptq", "bits",
                         g->bits, "group_size", g->group_size, "desc_act", o->act_order == QS_ACT_ORDER_GROUP, "sym",
                         g->sym, "damp_percent", qs_format_float_json(o->damp), "true_sequential", 1, "static_groups",
                         o->act_order == QS_ACT_ORDER_STATIC, "checkpoint_format", "gptq", "format", "gptq", "lm_head",
                         0);
  if (!qc) return NULL;
  json_t *meta = json_pack("{s:[s], s:s}", "quantizer", "qshard:0.1.0", "method", fr->method);
  if (meta && o->act_order != QS_ACT_ORDER_NONE)
    json_object_set_new(meta, "act_order", json_string(o->act_order == QS_ACT_ORDER_STATIC ? "static" : "group"));
  json_object_set_new(qc, "meta", meta);
  if (add_dense_info(w, qc) != QS_OK) { json_decref(qc); return NULL; }
  return qc;
}

static qs_status gptq_finish(struct qs_fwriter *base) {
  qs_status status = QS_OK;
  struct gptq_writer *w = (struct gptq_writer *)base;
  const struct qs_qopts *o = base->fr->opts;
  json_t *legacy = NULL;
  QS_TRY(qs_st_writer_finish(w->d.st));
  QS_TRY(qs_format_write_config(base->fr, w->d.dir, quantization_config(w)));
  // quantize_config.json: what AutoGPTQ and older vLLM read (AutoGPTQ BaseQuantizeConfig.to_dict).
  legacy = json_pack("{s:i, s:i, s:f, s:b, s:b, s:b, s:b, s:n, s:s, s:s, s:s}", "bits", o->grid.bits, "group_size",
                     o->grid.group_size, "damp_percent", qs_format_float_json(o->damp), "desc_act",
                     o->act_order == QS_ACT_ORDER_GROUP, "static_groups", o->act_order == QS_ACT_ORDER_STATIC, "sym",
                     o->grid.sym, "true_sequential", 1, "model_name_or_path", "model_file_base_name", "model",
                     "quant_method", "gptq", "checkpoint_format", "gptq");
  if (!legacy) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(qs_outdir_write_json(w->d.dir, "quantize_config.json", legacy));
fail:
  json_decref(legacy);
  return status;
}

// ---- reader ----------------------------------------------------------------------------------------

static int gptq_detect(const json_t *qc) {
  const char *m = json_string_value(json_object_get(qc, "quant_method"));
  return m && !strcmp(m, "gptq");
}

// Copy of an integer/fp16 tensor of the given dtype and shape (the mapping may be misaligned).
static qs_status copy_tensor(const struct qs_ckpt *ck, const char *name, qs_dtype dt, int ndim, const int64_t *shape,
                             void **out) {
  qs_status status = QS_OK;
  const struct qs_st_tensor *t = NULL;
  QS_TRY(qs_ckpt_get(ck, name, 1u << dt, ndim, shape, &t));
  *out = malloc(t->end - t->begin ? t->end - t->begin : 1);
  if (!*out) QS_FAIL(QS_ERR_OOM, "out of memory reading %s", name);
  memcpy(*out, t->data, t->end - t->begin);
fail:
  return status;
}

// qweight [K*bits/32, N], qzeros [G, N*bits/32], scales fp16 [G, N], g_idx [K] -> W [N, K] fp32
// = scale * (q - (stored zero + 1)).
static qs_status gptq_load_linear(const json_t *qc, const struct qs_ckpt *ck, const char *prefix, int64_t N,
                                  int64_t K, float *W) {
  qs_status status = QS_OK;
  const struct qs_st_tensor *qw_t = NULL, *sc_t = NULL;
  void *qw = NULL, *qz = NULL, *sc = NULL, *gi = NULL;
  const char *fmt = json_string_value(json_object_get(qc, "checkpoint_format"));
  if (!fmt) fmt = json_string_value(json_object_get(qc, "format"));
  int64_t want = json_integer_value(json_object_get(qc, "bits"));
  char name[512];
  if (fmt && !strcmp(fmt, "gptq_v2"))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: %s is stored in gptq_v2 (zeros without v1's -1); only GPTQ v1 checkpoints "
            "can be loaded", ck->path, prefix);
  snprintf(name, sizeof(name), "%s.qweight", prefix);
  QS_TRY(qs_ckpt_get(ck, name, 1u << QS_DTYPE_I32, 0, NULL, &qw_t));
  const int64_t bits = qw_t->ndim == 2 && K > 0 ? qw_t->shape[0] * 32 / K : 0;
  if (bits != want || qw_t->shape[0] * 32 != bits * K || (N * bits) % 32)
    QS_FAIL(QS_ERR_FORMAT, "%s: %s does not hold %lld-bit codes of a [%lld, %lld] weight", ck->path, name,
            (long long)want, (long long)N, (long long)K);
  QS_TRY(copy_tensor(ck, name, QS_DTYPE_I32, 2, (int64_t[]){K * bits / 32, N}, &qw));
  snprintf(name, sizeof(name), "%s.scales", prefix);
  QS_TRY(qs_ckpt_get(ck, name, 1u << QS_DTYPE_F16, 0, NULL, &sc_t));
  const int64_t G = sc_t->ndim == 2 ? sc_t->shape[0] : 0;
  QS_TRY(copy_tensor(ck, name, QS_DTYPE_F16, 2, (int64_t[]){G, N}, &sc));
  snprintf(name, sizeof(name), "%s.qzeros", prefix);
  QS_TRY(copy_tensor(ck, name, QS_DTYPE_I32, 2, (int64_t[]){G, N * bits / 32}, &qz));
  snprintf(name, sizeof(name), "%s.g_idx", prefix);
  QS_TRY(copy_tensor(ck, name, QS_DTYPE_I32, 1, (int64_t[]){K}, &gi));
  QS_TRY(qs_gptq_unpack_dequant(qw, qz, sc, gi, (int)bits, N, K, G, W));
fail:
  free(qw), free(qz), free(sc), free(gi);
  return status;
}

const struct qs_format qs_format_gptq = {
    .name = "gptq",
    .load_hint = "vLLM: vllm serve {OUT}; transformers (+ optimum, gptqmodel): AutoModelForCausalLM.from_pretrained(\"{OUT}\")",
    .help = "GPTQ v1 (vLLM, transformers + optimum/GPTQModel, AutoGPTQ)",
    .model_dir = 1,
    .refuse = gptq_refuse,
    .scale_dtypes = 1u << QS_DTYPE_F16,
    .constrain = gptq_constrain,
    .writes = gptq_writes,
    .open = gptq_open,
    .module = gptq_module,
    .dense = gptq_dense,
    .finish = gptq_finish,
    .free = gptq_free,
    .detect = gptq_detect,
    .load_linear = gptq_load_linear,
};
