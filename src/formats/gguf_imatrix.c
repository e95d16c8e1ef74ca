// gguf_imatrix.c — llama.cpp's importance-matrix file (llama-imatrix's GGUF output, read by
// llama-quantize --imatrix): general.type "imatrix"; imatrix.datasets (array of strings),
// imatrix.chunk_count and imatrix.chunk_size (u32); per weight W (GGUF name, e.g.
// blk.3.attn_q.weight) the tensors "W.in_sum2" F32 {K, 1} (sum of x_k² over the tokens) and
// "W.counts" F32 {1, 1} (tokens), optionally "W.in_sum" (sum of x_k, not used for quantizing).
// Entries are sorted by name, as llama-imatrix writes them. Contract: formats/gguf.h.
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "io/ggml_types.h"
#include "io/gguf.h"

qs_status qs_gguf_imatrix_read(const char *path, const struct qs_config *c, struct qs_imatrix *m) {
  qs_status status = QS_OK;
  struct qs_gguf_file f = {0};
  int opened = 0;
  float *sum2 = NULL;
  QS_TRY(qs_gguf_open(&f, path));
  opened = 1;
  const struct qs_gguf_kv *kt = qs_gguf_find_kv(&f, "general.type");
  if (kt) {
    const char *t = NULL;
    QS_TRY(qs_gguf_get_string(&f, "general.type", &t));
    if (strcmp(t, "imatrix")) QS_FAIL(QS_ERR_FORMAT, "%s: general.type is '%s', not an imatrix file", path, t);
  }
  for (size_t i = 0; i < f.n_tensors; i++) {
    const struct qs_gguf_tensor *t = &f.tensors[i];
    char w[QS_GGUF_MAX_NAME + 1], cname[QS_GGUF_MAX_NAME + 8], hf[192];
    if (!qs_str_has_suffix(t->name, ".in_sum2")) continue;
    snprintf(w, sizeof(w), "%.*s", (int)(strlen(t->name) - strlen(".in_sum2")), t->name);
    snprintf(cname, sizeof(cname), "%s.counts", w);
    const struct qs_gguf_tensor *ct = qs_gguf_find_tensor(&f, cname);
    if (!ct) QS_FAIL(QS_ERR_FORMAT, "%s: %s has no %s", path, t->name, cname);
    if (t->type != QS_GGML_F32 || ct->type != QS_GGML_F32 || ct->ne[0] != 1)
      QS_FAIL(QS_ERR_FORMAT, "%s: %s / %s are not F32 sums and one count per matrix", path, t->name, cname);
    if (t->ne[1] != 1 || ct->ne[1] != 1)
      QS_FAIL(QS_ERR_UNSUPPORTED, "%s: %s holds %lld matrices (mixture-of-experts imatrix): not for these models",
              path, w, (long long)t->ne[1]);
    if (qs_gguf_hf_name_of(c, w, hf, sizeof(hf)) || !qs_str_has_suffix(hf, ".weight"))
      QS_FAIL(QS_ERR_FORMAT, "%s: %s is not a weight of this model (a %s model of %d layers)", path, w,
              qs_gguf_arch(c), c->n_layers);
    hf[strlen(hf) - strlen(".weight")] = '\0'; // the module path: model.layers.3.self_attn.q_proj, lm_head
    float count;
    QS_ALLOC(sum2, t->ne[0]);
    QS_TRY(qs_gguf_read_tensor(&f, t, sum2, (uint64_t)t->ne[0] * sizeof(float)));
    QS_TRY(qs_gguf_read_tensor(&f, ct, &count, sizeof(count)));
    QS_TRY(qs_imatrix_add(m, hf, sum2, t->ne[0], count));
    free(sum2);
    sum2 = NULL;
  }
  if (!m->n) QS_FAIL(QS_ERR_FORMAT, "%s: no <weight>.in_sum2 tensors: not an imatrix GGUF", path);
fail:
  free(sum2);
  if (opened) qs_gguf_close(&f);
  return status;
}

struct named { char gname[QS_GGUF_MAX_NAME + 1]; int e; };

static int by_name(const void *a, const void *b) { return strcmp(((const struct named *)a)->gname, ((const struct named *)b)->gname); }

qs_status qs_gguf_imatrix_write(const char *path, const struct qs_config *c, const struct qs_imatrix *m) {
  qs_status status = QS_OK;
  struct qs_gguf_writer *g = NULL;
  struct named *order = NULL;
  size_t *idx = NULL;
  QS_ALLOC(order, m->n);
  QS_ALLOC(idx, 2 * (size_t)m->n);
  for (int i = 0; i < m->n; i++) {
    char hf[192];
    enum qs_gguf_cat cat;
    int layer, ph;
    snprintf(hf, sizeof(hf), "%s.weight", m->e[i].name);
    if (qs_gguf_name_of(c, hf, order[i].gname, sizeof(order[i].gname), &cat, &layer, &ph))
      QS_FAIL(QS_ERR_INTERNAL, "imatrix entry %s has no GGUF name", m->e[i].name);
    order[i].e = i;
  }
  qsort(order, (size_t)m->n, sizeof(*order), by_name);
  QS_TRY(qs_gguf_writer_init(&g));
  QS_TRY(qs_gguf_writer_set_string(g, "general.type", "imatrix"));
  const char *ds = m->dataset ? m->dataset : "";
  QS_TRY(qs_gguf_writer_set_array_string(g, "imatrix.datasets", &ds, m->dataset ? 1 : 0));
  QS_TRY(qs_gguf_writer_set_u32(g, "imatrix.chunk_count", m->chunk_count));
  QS_TRY(qs_gguf_writer_set_u32(g, "imatrix.chunk_size", m->chunk_size));
  for (int i = 0; i < m->n; i++) {
    char name[QS_GGUF_MAX_NAME + 16];
    const struct qs_imatrix_entry *e = &m->e[order[i].e];
    int64_t ne_s[2] = {e->K, 1}, ne_c[2] = {1, 1};
    snprintf(name, sizeof(name), "%s.in_sum2", order[i].gname);
    QS_TRY(qs_gguf_writer_add_tensor(g, name, QS_GGML_F32, 2, ne_s, &idx[2 * i]));
    snprintf(name, sizeof(name), "%s.counts", order[i].gname);
    QS_TRY(qs_gguf_writer_add_tensor(g, name, QS_GGML_F32, 2, ne_c, &idx[2 * i + 1]));
  }
  QS_TRY(qs_gguf_writer_open(g, path));
  for (int i = 0; i < m->n; i++) {
    const struct qs_imatrix_entry *e = &m->e[order[i].e];
    QS_TRY(qs_gguf_writer_write_tensor(g, idx[2 * i], e->sum2, (uint64_t)e->K * sizeof(float)));
    QS_TRY(qs_gguf_writer_write_tensor(g, idx[2 * i + 1], &e->count, sizeof(float)));
  }
  QS_TRY(qs_gguf_writer_commit(g));
fail:
  qs_gguf_writer_free(g);
  free(order);
  free(idx);
  return status;
}
