// wstream_cuda.c — the weight reader of forward_cuda.h: a decoder layer's tensors copied from the
// mmapped checkpoint into pinned host memory by a background thread (the page faults of the read
// happen there, off the GPU's critical path), two slots so that layer l+1 is read while layer l is
// uploaded and computed. A linear stored GPTQ-quantized is dequantized to fp32 on the host
// (qs_model_load_linear: the format's reader) — the eval of quantized checkpoints; an FP checkpoint is copied as stored.
#include <stdlib.h>
#include <string.h>

#include "model/forward_cuda.h"
#include "qs_cuda.h"


#define QS_WS_ALIGN 256

static int lin_has_bias(const struct qs_config *c, int i) {
  int n_out, n_in, bias;
  qs_layout_shape(c, (enum qs_lin)i, &n_out, &n_in, &bias);
  return bias;
}

static const char *lin_name(const struct qs_config *c, int i) { return qs_layout_of(c)->lin_name[i]; }

// Bytes tensor i of layer l takes in a slot (0 when absent): as stored, or fp32 when quantized.
static size_t tensor_bytes(const struct qs_model *m, int l, int i, qs_dtype *dt) {
  const struct qs_config *c = &m->cfg;
  int no[QS_LIN_COUNT], ni[QS_LIN_COUNT];
  char name[320];
  qs_dlayer_shapes(c, no, ni);
  *dt = QS_DTYPE_F32;
  if (i >= QS_LT_ATTN_NORM) {
    snprintf(name, sizeof(name), "model.layers.%d.%s.weight", l,
             i == QS_LT_ATTN_NORM ? "input_layernorm" : "post_attention_layernorm");
  } else if (i >= QS_LT_B) {
    if (!lin_has_bias(c, i - QS_LT_B)) return 0;
    snprintf(name, sizeof(name), "model.layers.%d.%s.bias", l, lin_name(c, i - QS_LT_B));
  } else {
    snprintf(name, sizeof(name), "model.layers.%d.%s.weight", l, lin_name(c, i));
    if (!qs_ckpt_find(&m->ckpt, name)) return (size_t)no[i] * (size_t)ni[i] * sizeof(float); // quantized
  }
  const struct qs_st_tensor *t = qs_ckpt_find(&m->ckpt, name);
  if (!t) return (size_t)(i >= QS_LT_B ? no[i - QS_LT_B] : c->hidden) * sizeof(float); // bias of a GPTQ module
  *dt = t->dtype;
  return t->end - t->begin;
}

// Reads tensor i of layer l into dst (dt and size as tensor_bytes said); shapes checked here.
static qs_status read_tensor(const struct qs_model *m, int l, int i, qs_dtype dt, void *dst) {
  qs_status status = QS_OK;
  const struct qs_config *c = &m->cfg;
  int no[QS_LIN_COUNT], ni[QS_LIN_COUNT];
  char name[320];
  struct qs_linear lin = {0};
  qs_dlayer_shapes(c, no, ni);
  const unsigned floats = 1u << QS_DTYPE_F32 | 1u << QS_DTYPE_F16 | 1u << QS_DTYPE_BF16;
  const struct qs_st_tensor *t = NULL;
  if (i >= QS_LT_ATTN_NORM) {
    int64_t shape[1] = {c->hidden};
    snprintf(name, sizeof(name), "model.layers.%d.%s.weight", l,
             i == QS_LT_ATTN_NORM ? "input_layernorm" : "post_attention_layernorm");
    QS_TRY(qs_ckpt_get(&m->ckpt, name, floats, 1, shape, &t));
  } else {
    int lin_i = i >= QS_LT_B ? i - QS_LT_B : i;
    int64_t shape[2] = {no[lin_i], ni[lin_i]};
    snprintf(name, sizeof(name), "model.layers.%d.%s.%s", l, lin_name(c, lin_i), i >= QS_LT_B ? "bias" : "weight");
    if (dt == QS_DTYPE_F32 && !qs_ckpt_find(&m->ckpt, name)) { // stored quantized: dequantize on the host
      char prefix[300];
      snprintf(prefix, sizeof(prefix), "model.layers.%d.%s", l, lin_name(c, lin_i));
      QS_TRY(qs_model_load_linear(m, prefix, no[lin_i], ni[lin_i], i >= QS_LT_B, &lin));
      if (i >= QS_LT_B) memcpy(dst, lin.b, (size_t)no[lin_i] * sizeof(float));
      else memcpy(dst, lin.w, (size_t)no[lin_i] * ni[lin_i] * sizeof(float));
      goto fail; // done
    }
    QS_TRY(qs_ckpt_get(&m->ckpt, name, floats, i >= QS_LT_B ? 1 : 2, shape, &t));
  }
  memcpy(dst, t->data, t->end - t->begin);
fail:
  free(lin.w);
  free(lin.b);
  return status;
}

static qs_status slot_fill(const struct qs_model *m, struct qs_hslot *s, int l) {
  qs_status status = QS_OK;
  size_t off = 0;
  s->layer = -1;
  for (int i = 0; i < QS_LT_COUNT; i++) {
    s->t[i].bytes = tensor_bytes(m, l, i, &s->t[i].dt);
    s->t[i].off = off;
    off += QS_CEIL_DIV(s->t[i].bytes, QS_WS_ALIGN) * QS_WS_ALIGN;
  }
  if (off > s->cap) {
    if (s->pinned) QS_CUDA_CHECK(cudaFreeHost(s->pinned));
    s->pinned = NULL;
    s->cap = 0;
    QS_CUDA_CHECK(cudaMallocHost(&s->pinned, off));
    s->cap = off;
  }
  for (int i = 0; i < QS_LT_COUNT; i++)
    if (s->t[i].bytes) QS_TRY(read_tensor(m, l, i, s->t[i].dt, (char *)s->pinned + s->t[i].off));
  s->layer = l;
fail:
  return status;
}

struct reader_arg {
  struct qs_wstream *w;
  int slot, layer;
};
static struct reader_arg g_reader_arg; // one reader at a time per process

static void *reader_main(void *p) {
  struct reader_arg *a = p;
  struct qs_hslot *s = &a->w->slot[a->slot];
  s->status = slot_fill(a->w->m, s, a->layer);
  return NULL;
}

static qs_status reader_join(struct qs_wstream *w) {
  qs_status status = QS_OK;
  if (!w->th_live) return QS_OK;
  w->th_live = 0;
  if (pthread_join(w->th, NULL)) QS_FAIL(QS_ERR_INTERNAL, "pthread_join of the weight reader failed");
  QS_TRY(w->slot[w->th_slot].status);
fail:
  return status;
}

qs_status qs_wstream_init(struct qs_wstream *w, const struct qs_model *m) {
  qs_status status = QS_OK;
  memset(w, 0, sizeof(*w));
  w->m = m;
  for (int i = 0; i < 2; i++) {
    w->slot[i].layer = -1;
    QS_CUDA_CHECK(cudaEventCreateWithFlags(&w->slot[i].uploaded, cudaEventDisableTiming));
  }
fail:
  return status;
}

void qs_wstream_free(struct qs_wstream *w) {
  (void)reader_join(w);
  for (int i = 0; i < 2; i++) {
    if (w->slot[i].pinned) cudaFreeHost(w->slot[i].pinned);
    if (w->slot[i].uploaded) cudaEventDestroy(w->slot[i].uploaded);
  }
  memset(w, 0, sizeof(*w));
}

qs_status qs_wstream_prefetch(struct qs_wstream *w, int l) {
  qs_status status = QS_OK;
  if (l >= w->m->cfg.n_layers) return QS_OK;
  QS_TRY(reader_join(w));
  int slot = w->slot[0].layer == l - 1 ? 1 : 0; // keep the slot of the layer being computed
  QS_CUDA_CHECK(cudaEventSynchronize(w->slot[slot].uploaded)); // its last upload has left the slot
  g_reader_arg = (struct reader_arg){.w = w, .slot = slot, .layer = l};
  w->slot[slot].layer = -1;
  if (pthread_create(&w->th, NULL, reader_main, &g_reader_arg))
    QS_FAIL(QS_ERR_INTERNAL, "could not start the weight reader thread");
  w->th_live = 1;
  w->th_slot = slot;
fail:
  return status;
}

qs_status qs_wstream_get(struct qs_wstream *w, int l, struct qs_hslot **out) {
  qs_status status = QS_OK;
  QS_TRY(reader_join(w));
  for (int i = 0; i < 2; i++)
    if (w->slot[i].layer == l) {
      *out = &w->slot[i];
      return QS_OK;
    }
  QS_TRY(qs_wstream_prefetch(w, l));
  QS_TRY(reader_join(w));
  *out = &w->slot[w->th_slot];
fail:
  return status;
}
