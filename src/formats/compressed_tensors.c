// compressed_tensors.c — compressed-tensors "pack-quantized" (FORMATS.md §4.1, §4.3, §4.10), as
// llm-compressor writes W4A16 / W8A16 (and 2/3-bit) integer weight-only checkpoints, which vLLM and
// transformers + compressed-tensors load. Per quantized linear X (W [N, K]):
//   X.weight_packed      I32 [N, ceil(K*bits/32)]  each row a little-endian bit stream of the codes
//                                                  (unsigned u = q + 2^(bits-1) of CT's signed q,
//                                                  i.e. our codes), zero-padded to whole words; for
//                                                  bits 2/4/8 that is 32/bits codes per word
//   X.weight_scale       model dtype [N, G]        (strategy "group"; [N, 1] for "channel")
//   X.weight_zero_point  I32 [ceil(N*bits/32), G]  asymmetric only: each column a bit stream along N
//                                                  of u_zp = zp + 2^(bits-1) (our zero points)
//   X.weight_shape       I64 [2] = [N, K]
// Dequantization (forward.py _dequantize): W = (q - zp) * scale = (u - u_zp) * scale: the record's
// values exactly, when the scale is stored in the dtype the grid rounded it to (this format takes
// fp16, bf16 and fp32 scales; the run uses the model's dtype unless another format needs fp16).
// Groups are contiguous in the original column order (act-order only as static groups, no
// weight_g_idx: current compressed-tensors and vLLM reject permuted groups, §4.10); a ragged last
// group is not a compressed-tensors layout, so K must be a multiple of the group size.
#include <stdlib.h>
#include <string.h>

#include "base/bits.h"
#include "base/dtype.h"
#include "base/parallel.h"
#include "formats/format.h"

struct ct_writer {
  struct qs_fdir d;
};

// Words of a bit stream of n values of `bits` bits.
static int64_t ct_words(int64_t n, int bits) { return (n * bits + 31) / 32; }

// values v[i * stride], i < n, as a little-endian bit stream into words w[j * wstride] (zeroed here).
static void ct_pack_stream(const uint8_t *v, int64_t n, int64_t stride, int bits, uint32_t *w, int64_t wstride) {
  int64_t nw = ct_words(n, bits);
  for (int64_t j = 0; j < nw; j++) w[j * wstride] = 0;
  for (int64_t i = 0; i < n; i++) {
    uint64_t s = (uint64_t)bits * (uint64_t)i, x = (uint64_t)v[i * stride] << (s & 31);
    w[(s >> 5) * wstride] |= (uint32_t)x;
    if ((s & 31) + (uint64_t)bits > 32) w[((s >> 5) + 1) * wstride] |= (uint32_t)(x >> 32);
  }
}

// One row of codes [K] into its weight_packed row: whole words a machine word at a time for 2/4/8
// bits (the stream's words are then 32/bits whole codes), the rest (and 3 bits) bit by bit.
static void ct_pack_row(const uint8_t *codes, int64_t K, int bits, uint32_t *w) {
  int64_t j = 0, pf = 32 / bits;
  if (bits == 4 || bits == 8 || bits == 2)
    for (; (j + 1) * pf <= K; j++) {
      const uint8_t *c = codes + j * pf;
      if (bits == 4) w[j] = qs_bits_pack4(qs_bits_load64(c));
      else if (bits == 2) w[j] = qs_bits_pack2(qs_bits_load64(c), qs_bits_load64(c + 8));
      else memcpy(&w[j], c, 4);
    }
  if (j * pf < K || bits == 3) { // the tail (or everything for 3 bits) through the bit stream
    int64_t done = bits == 3 ? 0 : j * pf;
    uint32_t *rest = w + done * bits / 32;
    ct_pack_stream(codes + done, K - done, 1, bits, rest, 1);
  }
}

static void ct_unpack_stream(const uint32_t *w, int64_t wstride, int64_t n, int bits, uint8_t *v, int64_t stride) {
  uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < n; i++) {
    uint64_t s = (uint64_t)bits * (uint64_t)i, x = w[(s >> 5) * wstride] >> (s & 31);
    if ((s & 31) + (uint64_t)bits > 32) x |= (uint64_t)w[((s >> 5) + 1) * wstride] << (32 - (s & 31));
    v[i * stride] = (uint8_t)(x & mask);
  }
}

struct ct_rows_job {
  const uint8_t *codes;
  int64_t K, kw;
  int bits;
  uint32_t *packed;
};

static void ct_rows(void *arg, int64_t r0, int64_t r1) {
  const struct ct_rows_job *j = arg;
  for (int64_t n = r0; n < r1; n++) ct_pack_row(j->codes + n * j->K, j->K, j->bits, j->packed + n * j->kw);
}

// ---- writer ----------------------------------------------------------------------------------------

static int ct_refuse(const struct qs_format_run *fr, char *msg, size_t cap) {
  const struct qs_grid *g = &fr->opts->grid;
  const struct qs_config *c = fr->cfg;
  if (g->kind != QS_GRID_INT) { snprintf(msg, cap, "--format compressed-tensors: integer grids only here"); return 1; }
  if (fr->opts->act_order == QS_ACT_ORDER_GROUP) {
    snprintf(msg, cap, "--act-order=group: compressed-tensors and vLLM no longer accept permuted groups "
             "(weight_g_idx, FORMATS §4.10); use --act-order (static groups)");
    return 1;
  }
  if (g->group_size > 0) {
    int n_out, n_in, bias;
    for (int i = 0; i < QS_LIN_COUNT; i++) {
      qs_layout_shape(c, (enum qs_lin)i, &n_out, &n_in, &bias);
      if (n_in % g->group_size) {
        snprintf(msg, cap, "--group-size %d: %s has %d input columns, not a multiple of it (compressed-tensors groups "
                 "are whole); use a group size dividing it or -1", g->group_size, qs_layout_of(c)->lin_name[i], n_in);
        return 1;
      }
    }
  }
  return 0;
}

static int ct_writes(const struct qs_format_run *fr) { return fr->rank == fr->writer; }

static void ct_free(struct qs_fwriter *base) {
  struct ct_writer *w = (struct ct_writer *)base;
  if (!w) return;
  qs_fdir_free(&w->d);
  free(w);
}

extern const struct qs_format qs_format_ct;

static qs_status ct_open(struct qs_fwriter **out, const struct qs_format_run *fr, const char *dir) {
  qs_status status = QS_OK;
  struct ct_writer *w = NULL;
  QS_ALLOC(w, 1);
  QS_TRY(qs_fdir_init(&w->d, &qs_format_ct, fr, dir));
  *out = &w->d.base;
  return QS_OK;
fail:
  ct_free(w ? &w->d.base : NULL);
  return status;
}

static qs_status ct_module(struct qs_fwriter *base, const struct qs_qrecord *r, int *dense) {
  qs_status status = QS_OK;
  struct ct_writer *w = (struct ct_writer *)base;
  const int bits = r->grid.bits;
  const int64_t N = r->N, K = r->K, G = r->G, kw = ct_words(K, bits), nw = ct_words(N, bits);
  const qs_dtype sd = (qs_dtype)r->grid.scale_dtype;
  uint32_t *packed = NULL, *zp = NULL;
  void *scales = NULL;
  int64_t shape[2] = {N, K};
  *dense = 0;
  if (!qs_qrecord_contiguous(r))
    QS_FAIL(QS_ERR_INTERNAL, "%s: permuted groups have no compressed-tensors layout (refused before the run)", r->name);
  QS_ALLOC(packed, N * kw);
  struct ct_rows_job job = {r->codes, K, kw, bits, packed};
  qs_parallel_for(N, 256, ct_rows, &job);
  QS_ALLOC(scales, (size_t)(N * G) * qs_dtype_size(sd));
  qs_convert_from_f32(r->scales, sd, scales, (size_t)(N * G)); // exact: the grid rounded them to sd
  QS_TRY(qs_format_add(w->d.st, r->name, "weight_packed", QS_DTYPE_I32, 2, N, kw, packed));
  QS_TRY(qs_format_add(w->d.st, r->name, "weight_scale", sd, 2, N, G, scales));
  QS_TRY(qs_format_add(w->d.st, r->name, "weight_shape", QS_DTYPE_I64, 1, 2, 0, shape));
  if (!r->grid.sym) {
    QS_ALLOC(zp, nw * G);
    for (int64_t g = 0; g < G; g++) ct_pack_stream(r->zeros + g, N, G, bits, zp + g, G);
    QS_TRY(qs_format_add(w->d.st, r->name, "weight_zero_point", QS_DTYPE_I32, 2, nw, G, zp));
  }
  QS_TRY(qs_fdir_replaced(&w->d, r->name, "weight")); // the bias, if any, stays as stored
fail:
  free(packed);
  free(zp);
  free(scales);
  return status;
}

static qs_status ct_dense(struct qs_fwriter *base, const struct qs_st_tensor *t) {
  return qs_fdir_dense(&((struct ct_writer *)base)->d, t);
}

// quantization_config as compressed-tensors' ModelCompressor writes it for a weight-only int scheme
// (keys of the 0.20 line; no scale_dtype/zp_dtype, which older loaders' pydantic models reject).
static json_t *quantization_config(const struct qs_format_run *fr) {
  const struct qs_grid *g = &fr->opts->grid;
  json_t *weights = json_pack("{s:b, s:i, s:s, s:b, s:s, s:n}", "dynamic", 0, "num_bits", g->bits, "strategy",
                              g->group_size > 0 ? "group" : "channel", "symmetric", g->sym, "type", "int", "actorder");
  if (!weights) return NULL;
  json_object_set_new(weights, "group_size", g->group_size > 0 ? json_integer(g->group_size) : json_null());
  return json_pack("{s:{s:{s:s, s:n, s:n, s:[s], s:o}}, s:s, s:n, s:[s], s:n, s:s, s:s, s:{}, s:s}", "config_groups",
                   "group_0", "format", "pack-quantized", "input_activations", "output_activations", "targets",
                   "Linear", "weights", weights, "format", "pack-quantized", "global_compression_ratio", "ignore",
                   "lm_head", "kv_cache_scheme", "quant_method", "compressed-tensors", "quantization_status",
                   "compressed", "sparsity_config", "version", "0.20.1");
}

static qs_status ct_finish(struct qs_fwriter *base) {
  qs_status status = QS_OK;
  struct ct_writer *w = (struct ct_writer *)base;
  QS_TRY(qs_st_writer_finish(w->d.st));
  QS_TRY(qs_format_write_config(base->fr, w->d.dir, quantization_config(base->fr)));
fail:
  return status;
}

// ---- reader ----------------------------------------------------------------------------------------

static const json_t *ct_weights(const json_t *qc) {
  const json_t *groups = json_object_get(qc, "config_groups");
  const char *key;
  const json_t *v;
  if (!json_is_object(groups) || json_object_size(groups) != 1) return NULL;
  json_object_foreach((json_t *)groups, key, v) return json_object_get(v, "weights");
  return NULL;
}

static int ct_detect(const json_t *qc) {
  const char *m = json_string_value(json_object_get(qc, "quant_method"));
  return m && !strcmp(m, "compressed-tensors");
}

// Tensor `prefix.suffix` with dtype mask and shape; its data copied (mappings may be misaligned).
static qs_status ct_copy(const struct qs_ckpt *ck, const char *prefix, const char *suffix, unsigned dts, int ndim,
                         const int64_t *shape, void **out, qs_dtype *dt) {
  qs_status status = QS_OK;
  const struct qs_st_tensor *t = NULL;
  char name[512];
  snprintf(name, sizeof(name), "%s.%s", prefix, suffix);
  QS_TRY(qs_ckpt_get(ck, name, dts, ndim, shape, &t));
  *out = malloc(t->end - t->begin ? t->end - t->begin : 1);
  if (!*out) QS_FAIL(QS_ERR_OOM, "out of memory reading %s", name);
  memcpy(*out, t->data, t->end - t->begin);
  if (dt) *dt = t->dtype;
fail:
  return status;
}

static qs_status ct_load_linear(const json_t *qc, const struct qs_ckpt *ck, const char *prefix, int64_t N, int64_t K,
                                float *W) {
  qs_status status = QS_OK;
  const json_t *wq = ct_weights(qc);
  const char *fmt = json_string_value(json_object_get(qc, "format"));
  uint32_t *packed = NULL, *zp = NULL;
  int64_t *shape = NULL;
  void *sc = NULL;
  float *scales = NULL;
  uint8_t *codes = NULL, *zeros = NULL;
  qs_dtype sdt = QS_DTYPE_F32;
  const unsigned floats = 1u << QS_DTYPE_F32 | 1u << QS_DTYPE_F16 | 1u << QS_DTYPE_BF16;
  if (!wq || !fmt || strcmp(fmt, "pack-quantized"))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: compressed-tensors checkpoint: only one pack-quantized config group is read "
            "(format '%s')", ck->path, fmt ? fmt : "?");
  int bits = (int)json_integer_value(json_object_get(wq, "num_bits"));
  int sym = json_is_true(json_object_get(wq, "symmetric"));
  const char *strategy = json_string_value(json_object_get(wq, "strategy"));
  const char *type = json_string_value(json_object_get(wq, "type"));
  int gs = (int)json_integer_value(json_object_get(wq, "group_size"));
  const json_t *ao = json_object_get(wq, "actorder");
  if (bits < 2 || bits > 8 || !type || strcmp(type, "int") || !strategy ||
      (strcmp(strategy, "group") && strcmp(strategy, "channel")) || (!strcmp(strategy, "group") && gs <= 0) ||
      (ao && !json_is_null(ao) && !(json_is_string(ao) && (!strcmp(json_string_value(ao), "weight") ||
                                                           !strcmp(json_string_value(ao), "static")))))
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: compressed-tensors weights: %d-bit %s strategy %s group %d actorder: only int "
            "2..8 bits, group or channel, no permuted groups are read", ck->path, bits, type ? type : "?",
            strategy ? strategy : "?", gs);
  if (strcmp(strategy, "group")) gs = (int)K;
  if (K % gs) QS_FAIL(QS_ERR_FORMAT, "%s: %s: %lld columns in groups of %d", ck->path, prefix, (long long)K, gs);
  int64_t G = K / gs, kw = ct_words(K, bits), nw = ct_words(N, bits);
  QS_TRY(ct_copy(ck, prefix, "weight_packed", 1u << QS_DTYPE_I32, 2, (int64_t[]){N, kw}, (void **)&packed, NULL));
  QS_TRY(ct_copy(ck, prefix, "weight_scale", floats, 2, (int64_t[]){N, G}, &sc, &sdt));
  QS_TRY(ct_copy(ck, prefix, "weight_shape", 1u << QS_DTYPE_I64 | 1u << QS_DTYPE_I32, 1, (int64_t[]){2},
                 (void **)&shape, NULL));
  QS_ALLOC(scales, N * G);
  QS_ALLOC(codes, K);
  QS_ALLOC(zeros, N * G);
  qs_convert_to_f32(sc, sdt, scales, (size_t)(N * G));
  if (sym) memset(zeros, 1 << (bits - 1), (size_t)(N * G));
  else {
    QS_TRY(ct_copy(ck, prefix, "weight_zero_point", 1u << QS_DTYPE_I32, 2, (int64_t[]){nw, G}, (void **)&zp, NULL));
    for (int64_t g = 0; g < G; g++) ct_unpack_stream(zp + g, G, N, bits, zeros + g, G);
  }
  for (int64_t n = 0; n < N; n++) {
    ct_unpack_stream(packed + n * kw, 1, K, bits, codes, 1);
    for (int64_t k = 0; k < K; k++)
      W[n * K + k] = scales[n * G + k / gs] * (float)((int)codes[k] - (int)zeros[n * G + k / gs]);
  }
fail:
  free(packed), free(zp), free(shape), free(sc), free(scales), free(codes), free(zeros);
  return status;
}

const struct qs_format qs_format_ct = {
    .name = "compressed-tensors",
    .load_hint = "vLLM: vllm serve {OUT}; transformers (+ compressed-tensors): AutoModelForCausalLM.from_pretrained(\"{OUT}\")",
    .help = "compressed-tensors pack-quantized (vLLM, transformers + compressed-tensors; llm-compressor's layout)",
    .model_dir = 1,
    .refuse = ct_refuse,
    .scale_dtypes = 1u << QS_DTYPE_F16 | 1u << QS_DTYPE_BF16 | 1u << QS_DTYPE_F32,
    .writes = ct_writes,
    .open = ct_open,
    .module = ct_module,
    .dense = ct_dense,
    .finish = ct_finish,
    .free = ct_free,
    .detect = ct_detect,
    .load_linear = ct_load_linear,
};
