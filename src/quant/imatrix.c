// imatrix.c — the importance table (contract: imatrix.h).
#include "quant/imatrix.h"

#include <stdlib.h>
#include <string.h>

qs_status qs_imatrix_add(struct qs_imatrix *m, const char *name, const float *sum2, int64_t K, float count) {
  qs_status status = QS_OK;
  struct qs_imatrix_entry e = {0};
  for (int i = 0; i < m->n; i++)
    if (!strcmp(m->e[i].name, name)) QS_FAIL(QS_ERR_ARG, "imatrix: %s given twice", name);
  if (K <= 0 || !(count > 0.0f)) QS_FAIL(QS_ERR_ARG, "imatrix: %s: %lld columns over %g tokens", name, (long long)K, (double)count);
  if (m->n == m->cap) {
    int cap = m->cap ? 2 * m->cap : 64;
    struct qs_imatrix_entry *p = realloc(m->e, (size_t)cap * sizeof(*p));
    if (!p) QS_FAIL(QS_ERR_OOM, "out of memory");
    m->e = p;
    m->cap = cap;
  }
  if (!(e.name = strdup(name))) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_ALLOC(e.sum2, K);
  QS_ALLOC(e.imp, K);
  memcpy(e.sum2, sum2, (size_t)K * sizeof(float));
  for (int64_t k = 0; k < K; k++) {
    if (!(e.sum2[k] >= 0.0f) || e.sum2[k] > 3.4e38f) QS_FAIL(QS_ERR_ARG, "imatrix: %s[%lld] = %g", name, (long long)k, (double)e.sum2[k]);
    e.imp[k] = e.sum2[k] / count; // llama-quantize's load_imatrix: in_sum2 / counts, in float
  }
  e.K = K;
  e.count = count;
  m->e[m->n++] = e;
  return QS_OK;
fail:
  free(e.name);
  free(e.sum2);
  free(e.imp);
  return status;
}

const float *qs_imatrix_find(const struct qs_imatrix *m, const char *name, int64_t K, qs_status *status) {
  *status = QS_OK;
  if (!m) return NULL;
  for (int i = 0; i < m->n; i++) {
    if (strcmp(m->e[i].name, name)) continue;
    if (m->e[i].K != K) {
      *status = QS_ERR_ARG;
      qs_report(QS_ERR_ARG, __FILE__, __LINE__, __func__, "imatrix: %s has %lld columns, the model's module %lld", name,
                (long long)m->e[i].K, (long long)K);
      return NULL;
    }
    return m->e[i].imp;
  }
  return NULL;
}

void qs_imatrix_free(struct qs_imatrix *m) {
  if (!m) return;
  for (int i = 0; i < m->n; i++) {
    free(m->e[i].name);
    free(m->e[i].sum2);
    free(m->e[i].imp);
  }
  free(m->e);
  free(m->dataset);
  memset(m, 0, sizeof(*m));
}
