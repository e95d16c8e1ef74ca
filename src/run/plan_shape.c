// plan_shape.c — what `qshard plan` (plan.h) knows of the model before a run: its shapes and stored
// sizes (a built-in shape name, or a model directory's config.json and safetensors headers), and the
// bytes of every output format and of the resume state's layer records, computed from the shapes as
// the writers lay them out (formats/*.c, quant/record.c qs_qrecord_save).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/gptq.h"
#include "io/ggml_types.h"
#include "run/plan.h"

// The shapes of `qshard synth --config NAME` (cli/synth.c k_presets): same names, sizes and
// config.json fields that matter here. test_plan.sh checks `plan --config tiny` against a synth'd
// tiny directory.
struct plan_preset {
  const char *name;
  int hidden, inter, layers, heads, kv_heads, vocab, max_pos, llama3_rope;
};
static const struct plan_preset k_presets[] = {
    {"tiny", 256, 768, 4, 8, 4, 1024, 2048, 0},
    {"llama-3-8b", 4096, 14336, 32, 32, 8, 128256, 8192, 0},
    {"llama-3-70b", 8192, 28672, 80, 64, 8, 128256, 8192, 0},
    {"llama-3.1-405b", 16384, 53248, 126, 128, 8, 128256, 131072, 1},
};
enum { N_PRESETS = sizeof(k_presets) / sizeof(k_presets[0]) };

#define QS_PLAN_ALIGN 256 // the weight reader's tensor alignment in its pinned slot (model/wstream_cuda.c)

const char *qs_plan_shape_names(void) { return "tiny|llama-3-8b|llama-3-70b|llama-3.1-405b"; }

static double align_up(double b) { return b <= 0 ? 0 : (double)QS_CEIL_DIV((long long)b, QS_PLAN_ALIGN) * QS_PLAN_ALIGN; }

// The linears' shapes and the per-layer parameter counts (the same for every layer here).
static qs_status shape_fill(struct qs_plan_shape *s) {
  qs_status status = QS_OK;
  for (int i = 0; i < QS_LIN_COUNT; i++) qs_layout_shape(&s->cfg, (enum qs_lin)i, &s->n_out[i], &s->n_in[i], &s->bias[i]);
  s->layer_params = qs_config_layer_params(&s->cfg);
  QS_ALLOC(s->params, QS_MAX(s->cfg.n_layers, 1));
  for (int l = 0; l < s->cfg.n_layers; l++) s->params[l] = s->layer_params;
fail:
  return status;
}

qs_status qs_plan_shape_preset(struct qs_plan_shape *s, const char *name) {
  qs_status status = QS_OK;
  const struct plan_preset *p = NULL;
  char json[1024];
  memset(s, 0, sizeof(*s));
  for (int i = 0; i < N_PRESETS; i++)
    if (!strcmp(name, k_presets[i].name)) p = &k_presets[i];
  if (!p) QS_FAIL(QS_ERR_ARG, "--config '%s': expected %s", name, qs_plan_shape_names());
  snprintf(json, sizeof(json),
           "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": %d, "
           "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
           "\"num_key_value_heads\": %d, \"head_dim\": %d, \"vocab_size\": %d, \"max_position_embeddings\": %d, "
           "\"rms_norm_eps\": 1e-5, \"rope_theta\": 500000.0, \"tie_word_embeddings\": false, "
           "\"torch_dtype\": \"bfloat16\"%s}",
           p->hidden, p->inter, p->layers, p->heads, p->kv_heads, p->hidden / p->heads, p->vocab, p->max_pos,
           p->llama3_rope ? ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
                            "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}" : "");
  QS_TRY(qs_config_parse(&s->cfg, json, name));
  snprintf(s->name, sizeof(s->name), "%s", name);
  QS_TRY(shape_fill(s));
  const double e = 2.0; // synth writes bf16
  for (int i = 0; i < QS_LIN_COUNT; i++) s->layer_bytes += align_up((double)s->n_out[i] * s->n_in[i] * e);
  s->layer_bytes += 2 * align_up(s->cfg.hidden * e);
  s->wsize = e;
  s->embed_bytes = (double)s->cfg.vocab * s->cfg.hidden * e;
  s->head_bytes = s->embed_bytes;
  s->other_bytes = s->cfg.hidden * e;
  s->in_bytes = (double)qs_config_param_count(&s->cfg) * e;
fail:
  if (status != QS_OK) qs_plan_shape_free(s);
  return status;
}

// Bytes a tensor takes as stored, or `absent` when the checkpoint lacks it.
static double tensor_bytes(const struct qs_ckpt *ck, const char *name, double absent, qs_dtype *dt) {
  const struct qs_st_tensor *t = qs_ckpt_find(ck, name);
  if (dt) *dt = t ? t->dtype : QS_DTYPE_F32;
  return t ? (double)(t->end - t->begin) : absent;
}

// Layer l as the weight reader holds it (wstream_cuda.c tensor_bytes): each linear as stored (fp32
// when stored quantized), biases, the two norms; every tensor aligned.
static double layer_bytes(const struct qs_plan_shape *s, int l) {
  const struct qs_layout *lay = qs_layout_of(&s->cfg);
  char name[320];
  double b = 0;
  for (int i = 0; i < QS_LIN_COUNT; i++) {
    snprintf(name, sizeof(name), "model.layers.%d.%s.weight", l, lay->lin_name[i]);
    b += align_up(tensor_bytes(&s->ckpt, name, (double)s->n_out[i] * s->n_in[i] * 4, NULL));
    if (!s->bias[i]) continue;
    snprintf(name, sizeof(name), "model.layers.%d.%s.bias", l, lay->lin_name[i]);
    b += align_up(tensor_bytes(&s->ckpt, name, (double)s->n_out[i] * 4, NULL));
  }
  snprintf(name, sizeof(name), "model.layers.%d.input_layernorm.weight", l);
  b += align_up(tensor_bytes(&s->ckpt, name, s->cfg.hidden * 4.0, NULL));
  snprintf(name, sizeof(name), "model.layers.%d.post_attention_layernorm.weight", l);
  b += align_up(tensor_bytes(&s->ckpt, name, s->cfg.hidden * 4.0, NULL));
  return b;
}

qs_status qs_plan_shape_dir(struct qs_plan_shape *s, const char *dir) {
  qs_status status = QS_OK;
  char *cfg = NULL;
  double layers = 0;
  memset(s, 0, sizeof(*s));
  if (!(cfg = qs_path_join(dir, "config.json"))) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(qs_config_load(&s->cfg, cfg));
  QS_TRY(qs_ckpt_open(&s->ckpt, dir)); // headers only: the data stays unread in the mappings
  snprintf(s->name, sizeof(s->name), "%s", dir);
  QS_TRY(shape_fill(s));
  for (int l = 0; l < s->cfg.n_layers; l++) {
    double b = layer_bytes(s, l);
    s->layer_bytes = QS_MAX(s->layer_bytes, b);
    layers += b;
  }
  qs_dtype wdt;
  tensor_bytes(&s->ckpt, "model.layers.0.self_attn.q_proj.weight", 0, &wdt); // absent (quantized): fp32
  s->wsize = (double)qs_dtype_size(wdt);
  s->embed_bytes = tensor_bytes(&s->ckpt, "model.embed_tokens.weight", 0, NULL);
  s->head_bytes = s->cfg.tie_embeddings ? 0 : tensor_bytes(&s->ckpt, "lm_head.weight", 0, NULL);
  for (size_t i = 0; i < s->ckpt.n_files; i++) s->in_bytes += (double)s->ckpt.files[i].map_size;
  s->other_bytes = QS_MAX(0.0, s->in_bytes - layers - s->embed_bytes - s->head_bytes);
fail:
  free(cfg);
  if (status != QS_OK) qs_plan_shape_free(s);
  return status;
}

void qs_plan_shape_free(struct qs_plan_shape *s) {
  if (!s) return;
  if (s->ckpt.path || s->ckpt.n_files) qs_ckpt_close(&s->ckpt);
  free(s->params);
  memset(s, 0, sizeof(*s));
}

// ---- formats ---------------------------------------------------------------------------------------

// What a format writer sees of the model: the shape's config and checkpoint (empty for a shape name).
static struct qs_model model_view(const struct qs_plan_shape *s) {
  return (struct qs_model){.cfg = s->cfg, .ckpt = s->ckpt};
}

qs_status qs_plan_settle_formats(const struct qs_plan_shape *s, struct qs_run_opts *a, char *warn, size_t cap) {
  qs_status status = QS_OK;
  struct qs_model m = model_view(s);
  const struct qs_format *trt = qs_format_find("trtllm");
  int has_trt = 0;
  char msg[320];
  warn[0] = '\0';
  for (int i = 0; i < a->n_formats; i++) has_trt |= a->formats[i] == trt;
  if (a->tp && !has_trt && a->n_formats < QS_MAX_FORMATS) a->formats[a->n_formats++] = trt;
  int sd = qs_format_scale_dtype(a->formats, a->n_formats, s->cfg.dtype);
  if (sd < 0) QS_FAIL(QS_ERR_ARG, "--format: no scale dtype that every format stores");
  a->q.grid.scale_dtype = sd;
  for (int i = 0; i < a->n_formats; i++) {
    struct qs_format_run fr = qs_run_format_run(a, &m, i, 0, 1);
    if (a->formats[i]->constrain) a->formats[i]->constrain(&fr, &a->q.grid);
  }
  for (int i = 0; i < a->n_formats && !warn[0]; i++) { // the run's refusal, as a warning
    struct qs_format_run fr = qs_run_format_run(a, &m, i, 0, 1);
    if (a->formats[i]->refuse && a->formats[i]->refuse(&fr, msg, sizeof(msg)))
      snprintf(warn, cap, "quantize refuses --format %s: %s", a->formats[i]->name, msg);
  }
fail:
  return status;
}

// The grid module `lin` of layer l is quantized on (a format's per-module grid: run.c qs_run_module_opts).
static struct qs_grid module_grid(const struct qs_plan_shape *s, const struct qs_run_opts *a, int l, int lin) {
  struct qs_model m = model_view(s);
  struct qs_grid g = a->q.grid;
  for (int i = 0; i < a->n_formats; i++) {
    if (!a->formats[i]->module_grid) continue;
    struct qs_format_run fr = qs_run_format_run(a, &m, i, 0, 1);
    a->formats[i]->module_grid(&fr, l, lin, &g);
  }
  return g;
}

double qs_plan_record_bytes(const struct qs_plan_shape *s, const struct qs_run_opts *a, int l, int lin,
                            double *unpacked) {
  const struct qs_grid g = module_grid(s, a, l, lin);
  const double N = s->n_out[lin], K = s->n_in[lin];
  const double C = (double)qs_grid_row_codes(&g, (int64_t)K), G = (double)qs_grid_n_groups(&g, (int64_t)K);
  const double bits = g.kind == QS_GRID_INT ? g.bits : 8;
  if (unpacked) *unpacked = N * C + N * G * 5; // the engine's record: a code per byte, fp32 scales, u8 zeros
  // qs_qrecord_save: codes packed to `bits`, scales fp32, zeros u8, g_idx i32, the grid, a bias fp32
  return N * (double)QS_CEIL_DIV((long long)(C * bits), 8) + N * G * 5 + 4 * K + 28 + (s->bias[lin] ? 4 * N : 0);
}

static double gguf_row(int type, double ne0) {
  int64_t r = qs_ggml_row_size(type, (int64_t)ne0);
  return r < 0 ? ne0 * 4 : (double)r;
}

// GGUF: every tensor at the type llama-quantize's mix gives it (formats/gguf.c plan_tensors).
static double gguf_bytes(const struct qs_plan_shape *s, const struct qs_run_opts *a, int i) {
  static const enum qs_gguf_cat cat[QS_LIN_COUNT] = {QS_GGUF_CAT_Q, QS_GGUF_CAT_K, QS_GGUF_CAT_V, QS_GGUF_CAT_O,
                                                     QS_GGUF_CAT_GATE, QS_GGUF_CAT_UP, QS_GGUF_CAT_DOWN};
  const struct qs_gguf_ftype *ft = qs_gguf_ftype_find(a->format_args[i]);
  const struct qs_config *c = &s->cfg;
  const int imat = a->imatrix != 0;
  char msg[256];
  if (!ft) return 0;
  double b = c->vocab * gguf_row(qs_gguf_tensor_type(ft, c, QS_GGUF_CAT_TOKEN_EMBD, -1, c->hidden, imat, msg, sizeof(msg)), c->hidden);
  if (!c->tie_embeddings)
    b += c->vocab * gguf_row(qs_gguf_tensor_type(ft, c, QS_GGUF_CAT_OUTPUT, -1, c->hidden, imat, msg, sizeof(msg)), c->hidden);
  b += 4.0 * c->hidden * (1 + 2.0 * c->n_layers); // norms, F32
  for (int l = 0; l < c->n_layers; l++)
    for (int j = 0; j < QS_LIN_COUNT; j++) {
      int t = qs_gguf_tensor_type(ft, c, cat[j], l, s->n_in[j], imat, msg, sizeof(msg));
      b += s->n_out[j] * gguf_row(t, s->n_in[j]) + (s->bias[j] ? 4.0 * s->n_out[j] : 0);
    }
  return b;
}

// One linear as format `name` stores it (bytes), or the dense weight when the format keeps it dense.
static double module_bytes(const struct qs_plan_shape *s, const struct qs_run_opts *a, const char *name, int lin) {
  const struct qs_grid *g = &a->q.grid;
  const double N = s->n_out[lin], K = s->n_in[lin], G = (double)qs_grid_n_groups(g, (int64_t)K), bits = g->bits;
  const double es = s->wsize;
  const double dense = N * K * es + (s->bias[lin] ? N * es : 0);
  const int gs = g->group_size > 0 ? g->group_size : (int)K;
  if (!strcmp(name, "gptq")) {
    if (!qs_gptq_can_pack((int64_t)N, (int64_t)K, g->bits, g->group_size)) return dense;
    return N * K * bits / 8 + G * N * bits / 8 + 2 * G * N + 4 * K + (s->bias[lin] ? 2 * N : 0);
  }
  if (!strcmp(name, "compressed-tensors")) {
    double kw = (double)QS_CEIL_DIV((long long)(K * bits), 32), nw = (double)QS_CEIL_DIV((long long)(N * bits), 32);
    return N * kw * 4 + N * G * (double)qs_dtype_size((qs_dtype)g->scale_dtype) + 16 + (g->sym ? 0 : nw * 4 * G) +
           (s->bias[lin] ? N * es : 0);
  }
  if (!strcmp(name, "awq")) {
    if ((long long)N % 8 || (long long)K % gs) return dense;
    return K * N / 2 + G * N / 2 + 2 * G * N + (s->bias[lin] ? 2 * N : 0);
  }
  if (!strcmp(name, "trtllm")) { // rank files: qweight, qzeros, fp16 scales and `zero`, a g_idx per shard
    const int T = QS_MAX(a->tp, 1), col = lin != QS_LIN_O && lin != QS_LIN_DOWN;
    return K * N / 2 + G * N / 2 + 4 * G * N + 4 * K * (col ? T : 1);
  }
  return dense;
}

double qs_plan_format_bytes(const struct qs_plan_shape *s, const struct qs_run_opts *a, int i) {
  const char *name = a->formats[i]->name;
  const struct qs_config *c = &s->cfg;
  if (!strcmp(name, "gguf")) return gguf_bytes(s, a, i);
  double b = 0;
  for (int l = 0; l < QS_LIN_COUNT; l++) b += module_bytes(s, a, name, l);
  b *= c->n_layers;
  // the tensors passed through as stored: embeddings, lm_head, norms (replicated on every TensorRT-LLM
  // rank but lm_head, which is split over them)
  const int T = !strcmp(name, "trtllm") ? QS_MAX(a->tp, 1) : 1;
  return b + T * (s->embed_bytes + s->other_bytes) + s->head_bytes;
}
