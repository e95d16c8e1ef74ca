// awq.c — AutoAWQ's GEMM format (FORMATS.md §3): writer and reader. Per quantized linear X:
//   X.qweight I32 [K, N/8]   eight 4-bit codes of one input row, packed along the OUTPUT dimension in
//                            AWQ's interleaved order: nibble i of word c holds column 8c + k_order[i]
//   X.qzeros  I32 [G, N/8]   the zero points (as they are, no v1 -1), same interleave
//   X.scales  F16 [G, N]     X.bias F16 [N] (optional)
// value W[n, k] = (q[k, n] - z[k/gs, n]) · s[k/gs, n]. Every other tensor as stored in the input;
// config.json quantization_config as transformers' AwqConfig writes it (quant_method awq, version
// gemm, zero_point, group_size, bits 4). Loaders: vLLM (awq / awq_marlin), transformers + GPTQModel.
// Only 4-bit codes, contiguous groups (no g_idx in the format), N a multiple of 8 and K of the group
// size: a module of another shape is kept dense and named in modules_to_not_convert.
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "formats/format.h"

extern const struct qs_format qs_format_awq;

// Nibble i of a word holds column 8c + k_order[i] (AutoAWQ AWQ_ORDER).
static const int k_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

struct awq_writer {
  struct qs_fdir d;
  int dense_lin[QS_LIN_COUNT]; // 1: this linear kept dense (every layer has the same shapes)
};

static int awq_group(const struct qs_grid *g, int64_t K) { return g->group_size > 0 ? g->group_size : (int)K; }

static int awq_can_pack(int64_t N, int64_t K, int gs) { return N % 8 == 0 && K % gs == 0; }

// ---- writer ----------------------------------------------------------------------------------------

static int awq_refuse(const struct qs_format_run *fr, char *msg, size_t cap) {
  const struct qs_qopts *o = fr->opts;
  if (o->grid.kind != QS_GRID_INT || o->grid.bits != 4) {
    snprintf(msg, cap, "--format awq stores 4-bit integer grids only (--bits 4)");
    return 1;
  }
  if (o->act_order == QS_ACT_ORDER_GROUP) {
    snprintf(msg, cap, "--format awq has no g_idx: --act-order=group cannot be stored (use --act-order)");
    return 1;
  }
  return 0;
}

static int awq_writes(const struct qs_format_run *fr) { return fr->rank == fr->writer; }

static void awq_free(struct qs_fwriter *base) {
  struct awq_writer *w = (struct awq_writer *)base;
  if (!w) return;
  qs_fdir_free(&w->d);
  free(w);
}

static qs_status awq_open(struct qs_fwriter **out, const struct qs_format_run *fr, const char *dir) {
  qs_status status = QS_OK;
  struct awq_writer *w = NULL;
  QS_ALLOC(w, 1);
  QS_TRY(qs_fdir_init(&w->d, &qs_format_awq, fr, dir));
  *out = &w->d.base;
  return QS_OK;
fail:
  awq_free(w ? &w->d.base : NULL);
  return status;
}

// v [rows, N] bytes (one 4-bit value each, row r of n at src[r * rs + n * cs]) -> words [rows, N/8].
static void pack_rows(const uint8_t *src, int64_t rows, int64_t N, int64_t rs, int64_t cs, int32_t *words) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < N / 8; c++) {
      uint32_t v = 0;
      for (int i = 0; i < 8; i++) v |= (uint32_t)(src[r * rs + (8 * c + k_order[i]) * cs] & 0xF) << (4 * i);
      words[r * (N / 8) + c] = (int32_t)v;
    }
}

static qs_status awq_module(struct qs_fwriter *base, const struct qs_qrecord *r, int *dense) {
  qs_status status = QS_OK;
  struct awq_writer *w = (struct awq_writer *)base;
  const int64_t N = r->N, K = r->K, G = r->G;
  const int gs = awq_group(&r->grid, K);
  int32_t *qweight = NULL, *qzeros = NULL;
  uint16_t *scales = NULL, *bias = NULL;
  int lin = 0;
  QS_TRY(qs_format_record_lin(base->fr, r, &lin));
  *dense = !awq_can_pack(N, K, gs);
  if (*dense) {
    w->dense_lin[lin] = 1;
    return qs_fdir_dense_record(&w->d, r);
  }
  if (!qs_qrecord_contiguous(r)) QS_FAIL(QS_ERR_INTERNAL, "%s: permuted groups cannot be stored as AWQ", r->name);
  if (G != K / gs) QS_FAIL(QS_ERR_INTERNAL, "%s: %lld groups of %d columns for K = %lld", r->name, (long long)G, gs, (long long)K);
  QS_ALLOC(qweight, K * (N / 8));
  QS_ALLOC(qzeros, G * (N / 8));
  QS_ALLOC(scales, G * N);
  pack_rows(r->codes, K, N, 1, K, qweight); // codes [N, K]: row k of qweight reads column k
  pack_rows(r->zeros, G, N, 1, G, qzeros);  // zeros [N, G]
  for (int64_t g = 0; g < G; g++)
    for (int64_t n = 0; n < N; n++) scales[g * N + n] = qs_f32_to_f16(r->scales[n * G + g]); // exact: fp16 grid
  QS_TRY(qs_format_add(w->d.st, r->name, "qweight", QS_DTYPE_I32, 2, K, N / 8, qweight));
  QS_TRY(qs_format_add(w->d.st, r->name, "qzeros", QS_DTYPE_I32, 2, G, N / 8, qzeros));
  QS_TRY(qs_format_add(w->d.st, r->name, "scales", QS_DTYPE_F16, 2, G, N, scales));
  QS_TRY(qs_fdir_replaced(&w->d, r->name, "weight"));
  if (r->bias) {
    QS_ALLOC(bias, N);
    qs_convert_from_f32(r->bias, QS_DTYPE_F16, bias, (size_t)N);
    QS_TRY(qs_format_add(w->d.st, r->name, "bias", QS_DTYPE_F16, 1, N, 0, bias));
    QS_TRY(qs_fdir_replaced(&w->d, r->name, "bias"));
  }
fail:
  free(qweight);
  free(qzeros);
  free(scales);
  free(bias);
  return status;
}

static qs_status awq_dense(struct qs_fwriter *base, const struct qs_st_tensor *t) {
  return qs_fdir_dense(&((struct awq_writer *)base)->d, t);
}

// transformers' AwqConfig.to_dict keys; modules kept dense by their leaf names (loaders match them as
// substrings of the module path).
static json_t *quantization_config(const struct awq_writer *w) {
  const struct qs_format_run *fr = w->d.base.fr;
  const struct qs_grid *g = &fr->opts->grid;
  const struct qs_layout *lay = qs_layout_of(fr->cfg);
  json_t *skip = json_array(), *qc = NULL;
  if (!skip) return NULL;
  for (int i = 0; i < QS_LIN_COUNT; i++)
    if (w->dense_lin[i]) json_array_append_new(skip, json_string(lay->lin_name[i]));
  qc = json_pack("{s:s, s:b, s:i, s:i, s:s, s:o}", "quant_method", "awq", "zero_point", 1, "group_size",
                 g->group_size > 0 ? g->group_size : -1, "bits", g->bits, "version", "gemm", "modules_to_not_convert",
                 json_array_size(skip) ? skip : json_null());
  if (!json_array_size(skip)) json_decref(skip);
  if (qc) json_object_set_new(qc, "meta", json_pack("{s:[s], s:s}", "quantizer", "qshard:0.1.0", "method", fr->method));
  return qc;
}

static qs_status awq_finish(struct qs_fwriter *base) {
  qs_status status = QS_OK;
  struct awq_writer *w = (struct awq_writer *)base;
  QS_TRY(qs_st_writer_finish(w->d.st));
  QS_TRY(qs_format_write_config(base->fr, w->d.dir, quantization_config(w)));
fail:
  return status;
}

// ---- reader ----------------------------------------------------------------------------------------

static int awq_detect(const json_t *qc) {
  const char *m = json_string_value(json_object_get(qc, "quant_method"));
  return m && !strcmp(m, "awq");
}

static qs_status get_copy(const struct qs_ckpt *ck, const char *prefix, const char *suffix, qs_dtype dt, int64_t d0,
                          int64_t d1, void **out) {
  qs_status status = QS_OK;
  const struct qs_st_tensor *t = NULL;
  char name[512];
  snprintf(name, sizeof(name), "%s.%s", prefix, suffix);
  QS_TRY(qs_ckpt_get(ck, name, 1u << dt, 2, (int64_t[]){d0, d1}, &t));
  QS_ALLOC(*(uint8_t **)out, t->end - t->begin ? t->end - t->begin : 1);
  memcpy(*out, t->data, t->end - t->begin); // the mapping may be misaligned
fail:
  return status;
}

static qs_status awq_load_linear(const json_t *qc, const struct qs_ckpt *ck, const char *prefix, int64_t N, int64_t K,
                                 float *W) {
  qs_status status = QS_OK;
  int32_t *qw = NULL, *qz = NULL;
  uint16_t *sc = NULL;
  const char *ver = json_string_value(json_object_get(qc, "version"));
  json_int_t bits = json_integer_value(json_object_get(qc, "bits")), gs = json_integer_value(json_object_get(qc, "group_size"));
  if (!bits) bits = json_integer_value(json_object_get(qc, "w_bit"));
  if (!gs) gs = json_integer_value(json_object_get(qc, "q_group_size"));
  if (ver && strcmp(ver, "gemm") && strcmp(ver, "GEMM"))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: AWQ version '%s': only the gemm layout is read", ck->path, ver);
  if (bits != 4) QS_FAIL(QS_ERR_FORMAT, "%s: AWQ with %lld bits (only 4-bit is defined)", ck->path, (long long)bits);
  if (gs <= 0) gs = K;
  if (N % 8 || K % gs)
    QS_FAIL(QS_ERR_FORMAT, "%s: %s [%lld, %lld] does not split into AWQ words and groups of %lld", ck->path, prefix,
            (long long)N, (long long)K, (long long)gs);
  const int64_t G = K / gs;
  QS_TRY(get_copy(ck, prefix, "qweight", QS_DTYPE_I32, K, N / 8, (void **)&qw));
  QS_TRY(get_copy(ck, prefix, "qzeros", QS_DTYPE_I32, G, N / 8, (void **)&qz));
  QS_TRY(get_copy(ck, prefix, "scales", QS_DTYPE_F16, G, N, (void **)&sc));
  for (int64_t k = 0; k < K; k++) {
    const int64_t g = k / gs;
    for (int64_t c = 0; c < N / 8; c++)
      for (int i = 0; i < 8; i++) {
        const int64_t n = 8 * c + k_order[i];
        const int q = (int)(((uint32_t)qw[k * (N / 8) + c] >> (4 * i)) & 0xF);
        const int z = (int)(((uint32_t)qz[g * (N / 8) + c] >> (4 * i)) & 0xF);
        W[n * K + k] = qs_f16_to_f32(sc[g * N + n]) * (float)(q - z);
      }
  }
fail:
  free(qw), free(qz), free(sc);
  return status;
}

const struct qs_format qs_format_awq = {
    .name = "awq",
    .load_hint = "vLLM: vllm serve {OUT}; transformers (+ gptqmodel): AutoModelForCausalLM.from_pretrained(\"{OUT}\")",
    .help = "AutoAWQ GEMM, 4-bit (vLLM awq / awq_marlin, transformers + GPTQModel)",
    .model_dir = 1,
    .method = "awq",
    .refuse = awq_refuse,
    .scale_dtypes = 1u << QS_DTYPE_F16,
    .writes = awq_writes,
    .open = awq_open,
    .module = awq_module,
    .dense = awq_dense,
    .finish = awq_finish,
    .free = awq_free,
    .detect = awq_detect,
    .load_linear = awq_load_linear,
};
