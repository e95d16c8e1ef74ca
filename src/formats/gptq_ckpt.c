// gptq_ckpt.c — the GPTQ v1 checkpoint of `qshard quantize` (FORMATS.md §2): per quantized linear
// qweight/qzeros/scales/g_idx (+ fp16 bias), every other tensor as stored in the input,
// quantization_config in config.json and quantize_config.json, tokenizer files, report.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "io/outdir.h"
#include "run/quantize.h"
#include "run/stages.h"

// The damping as the user wrote it (a float widened to double prints as 0.009999999776...).
static double damp_json(float d) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.6g", (double)d);
  return strtod(buf, NULL);
}

static qs_status replaced_push(struct qs_qrun *run, const char *name) {
  qs_status status = QS_OK;
  if (run->n_replaced == run->cap_replaced) {
    int cap = run->cap_replaced ? 2 * run->cap_replaced : 256;
    char **p = realloc(run->replaced, (size_t)cap * sizeof(*p));
    if (!p) QS_FAIL(QS_ERR_OOM, "out of memory");
    run->replaced = p;
    run->cap_replaced = cap;
  }
  run->replaced[run->n_replaced] = strdup(name);
  if (!run->replaced[run->n_replaced]) QS_FAIL(QS_ERR_OOM, "out of memory");
  run->n_replaced++;
fail:
  return status;
}

qs_status qs_gptq_ckpt_mark_replaced(struct qs_qrun *run, const char *name) { return replaced_push(run, name); }

static int is_replaced(const struct qs_qrun *run, const char *name) {
  for (int i = 0; i < run->n_replaced; i++)
    if (!strcmp(run->replaced[i], name)) return 1;
  return 0;
}

static qs_status add_tensor(struct qs_qrun *run, const char *prefix, const char *suffix, qs_dtype dt,
                            int64_t d0, int64_t d1, int ndim, const void *data) {
  char name[256];
  int64_t shape[2] = {d0, d1};
  snprintf(name, sizeof(name), "%s.%s", prefix, suffix);
  return qs_st_writer_add(run->writer, name, dt, ndim, shape, data, 1);
}

qs_status qs_gptq_pack_module(const struct qs_qrun *run, int64_t N, int64_t K, const uint8_t *codes,
                              const uint16_t *scales, const uint8_t *zeros, int32_t **qweight, int32_t **qzeros,
                              uint16_t **scales_out, long long *wrapped) {
  qs_status status = QS_OK;
  int bits = run->a->q.bits;
  int64_t G = qs_quant_n_groups(K, run->a->q.group_size), w64 = 0;
  *qweight = NULL;
  *qzeros = NULL;
  *scales_out = NULL;
  QS_ALLOC(*qweight, K * bits / 32 * N);
  QS_ALLOC(*qzeros, G * (N * bits / 32));
  QS_ALLOC(*scales_out, G * N);
  QS_TRY(qs_gptq_pack(codes, scales, zeros, bits, N, K, G, *qweight, *qzeros, *scales_out, &w64));
  *wrapped = w64;
  return QS_OK;
fail:
  free(*qweight);
  free(*qzeros);
  free(*scales_out);
  *qweight = *qzeros = NULL;
  *scales_out = NULL;
  return status;
}

qs_status qs_gptq_ckpt_add_module(struct qs_qrun *run, const char *name, const struct qs_qpacked *p) {
  qs_status status = QS_OK;
  uint16_t *bias = NULL;
  int bits = run->a->q.bits;
  int64_t N = p->N, K = p->K, G = p->G;
  char full[256];
  QS_TRY(add_tensor(run, name, "qweight", QS_DTYPE_I32, K * bits / 32, N, 2, p->qweight));
  QS_TRY(add_tensor(run, name, "qzeros", QS_DTYPE_I32, G, N * bits / 32, 2, p->qzeros));
  QS_TRY(add_tensor(run, name, "scales", QS_DTYPE_F16, G, N, 2, p->scales));
  QS_TRY(add_tensor(run, name, "g_idx", QS_DTYPE_I32, K, 0, 1, p->g_idx));
  snprintf(full, sizeof(full), "%s.weight", name);
  QS_TRY(replaced_push(run, full));
  if (p->bias) { // GPTQ linears carry an fp16 bias (AutoGPTQ QuantLinear registers it as float16)
    QS_ALLOC(bias, N);
    qs_convert_from_f32(p->bias, QS_DTYPE_F16, bias, (size_t)N);
    QS_TRY(add_tensor(run, name, "bias", QS_DTYPE_F16, N, 0, 1, bias));
    snprintf(full, sizeof(full), "%s.bias", name);
    QS_TRY(replaced_push(run, full));
  }
fail:
  free(bias);
  return status;
}

qs_status qs_gptq_ckpt_add_rest(struct qs_qrun *run) {
  qs_status status = QS_OK;
  const struct qs_ckpt *c = &run->m->ckpt;
  for (size_t i = 0; i < c->n_tensors; i++) {
    const struct qs_st_tensor *t = c->by_name[i];
    if (is_replaced(run, t->name)) continue;
    QS_TRY(qs_st_writer_add(run->writer, t->name, t->dtype, t->ndim, t->shape, t->data, 0));
  }
fail:
  return status;
}

// Modules of a block in true-sequential order, as optimum's modules_in_block_to_quantize lists them.
static const char *k_block_modules[4][3] = {
    {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, {"self_attn.o_proj"},
    {"mlp.gate_proj", "mlp.up_proj"}, {"mlp.down_proj"}};

static int module_packed(const struct qs_qrun *run, const char *suffix) {
  // Every layer has the same shapes, so layer 0's verdict holds for all.
  for (int i = 0; i < run->n_reports; i++) {
    const char *n = run->reports[i].name;
    size_t a = strlen(n), b = strlen(suffix);
    if (a > b && !strcmp(n + a - b, suffix) && n[a - b - 1] == '.') return run->reports[i].packed;
  }
  return 1;
}

// Loaders must be told which modules stayed dense: optimum reads modules_in_block_to_quantize,
// GPTQModel and vLLM read `dynamic` ("-:" + regex = do not quantize; vLLM matches its fused names).
static qs_status add_unpacked_info(const struct qs_qrun *run, json_t *qc) {
  qs_status status = QS_OK;
  json_t *blocks = json_array(), *dyn = json_object();
  int any_unpacked = 0;
  if (!blocks || !dyn) QS_FAIL(QS_ERR_OOM, "out of memory");
  for (int b = 0; b < 4; b++) {
    json_t *list = json_array();
    for (int i = 0; i < 3 && k_block_modules[b][i]; i++) {
      const char *m = k_block_modules[b][i];
      if (module_packed(run, m)) { json_array_append_new(list, json_string(m)); continue; }
      any_unpacked = 1;
      char re[160];
      const char *leaf = strchr(m, '.') + 1;
      const char *fused = b == 0 ? "|qkv_proj" : b == 2 ? "|gate_up_proj" : "";
      snprintf(re, sizeof(re), "-:.*\\.(%s%s)$", leaf, fused);
      json_object_set_new(dyn, re, json_object());
    }
    if (json_array_size(list)) json_array_append_new(blocks, list);
    else json_decref(list);
  }
  if (any_unpacked) {
    json_object_set(qc, "modules_in_block_to_quantize", blocks);
    json_object_set(qc, "dynamic", dyn);
  }
fail:
  json_decref(blocks);
  json_decref(dyn);
  return status;
}

static json_t *quantization_config(const struct qs_qrun *run) {
  const struct qs_quant_opts *o = &run->a->q;
  json_t *qc = json_pack("{s:s, s:i, s:i, s:b, s:b, s:f, s:b, s:b, s:s, s:s, s:b}", "quant_method", "gptq",
                         "bits", o->bits, "group_size", o->group_size, "desc_act", o->act_order, "sym", o->sym,
                         "damp_percent", damp_json(o->damp), "true_sequential", 1, "static_groups",
                         o->static_groups, "checkpoint_format", "gptq", "format", "gptq", "lm_head", 0);
  if (!qc) return NULL;
  json_object_set_new(qc, "meta", json_pack("{s:[s], s:s}", "quantizer", "qshard:0.1.0", "method",
                                            run->a->method == QS_QMETHOD_GPTQ ? "gptq" : "rtn"));
  if (add_unpacked_info(run, qc) != QS_OK) { json_decref(qc); return NULL; }
  return qc;
}

qs_status qs_gptq_ckpt_write_configs(struct qs_qrun *run, const char *dir) {
  qs_status status = QS_OK;
  const struct qs_quant_opts *o = &run->a->q;
  json_t *qc = quantization_config(run), *legacy = NULL;
  if (!qc) QS_FAIL(QS_ERR_OOM, "out of memory building quantization_config");
  QS_TRY(qs_outdir_write_config(run->a->model, dir, "quantization_config", qc));
  // quantize_config.json: what AutoGPTQ and older vLLM read (AutoGPTQ BaseQuantizeConfig.to_dict).
  legacy = json_pack("{s:i, s:i, s:f, s:b, s:b, s:b, s:b, s:n, s:s, s:s, s:s}", "bits", o->bits, "group_size",
                     o->group_size, "damp_percent", damp_json(o->damp), "desc_act", o->act_order, "static_groups",
                     o->static_groups, "sym", o->sym, "true_sequential", 1, "model_name_or_path",
                     "model_file_base_name", "model", "quant_method", "gptq", "checkpoint_format", "gptq");
  if (!legacy) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(qs_outdir_write_json(dir, "quantize_config.json", legacy));
  QS_TRY(qs_outdir_copy_aux(run->a->model, dir));
fail:
  json_decref(qc);
  json_decref(legacy);
  return status;
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *qs_qreport_json(const struct qs_qrun *run, double seconds, json_t *eval) {
  const struct qs_qargs *a = run->a;
  json_t *mods = json_array(), *unpacked = json_array();
  for (int i = 0; i < run->n_reports; i++) {
    const struct qs_qreport *r = &run->reports[i];
    json_t *e = json_pack("{s:s, s:i, s:i, s:i, s:o, s:o, s:f, s:i, s:f, s:b, s:I}", "name", r->name, "layer",
                          r->layer, "out_features", r->n, "in_features", r->k, "loss", num_or_null(r->loss),
                          "rel_output_error", num_or_null(r->rel_err), "damp", (double)r->damp,
                          "damp_raises", r->damp_raises, "seconds", r->seconds, "packed", r->packed,
                          "wrapped_zeros", (json_int_t)r->wrapped);
    json_array_append_new(mods, e);
    if (!r->packed) json_array_append_new(unpacked, json_string(r->name));
  }
  json_t *rep = json_pack("{s:s, s:s, s:i, s:i, s:b, s:b, s:b, s:f, s:i, s:i, s:I, s:i, s:f, s:o, s:o}",
                          "model", a->model, "method", a->method == QS_QMETHOD_GPTQ ? "gptq" : "rtn", "bits",
                          a->q.bits, "group_size", a->q.group_size, "sym", a->q.sym, "act_order", a->q.act_order,
                          "static_groups", a->q.static_groups, "damp", damp_json(a->q.damp), "samples",
                          (int)run->n_samples, "seqlen", run->T, "seed", (json_int_t)a->seed, "ranks",
                          qs_comm_size(run->world), "seconds", seconds, "modules", mods, "unpacked", unpacked);
  if (rep && run->grid->S > 1) json_object_set_new(rep, "stages", qs_stages_json(run->grid));
  if (rep && eval) json_object_set_new(rep, "eval", eval);
  else json_decref(eval);
  return rep;
}
