// method.c — the method table (method.h) and the options every method shares.
#include "quant/method.h"

#include <stdio.h>
#include <string.h>

// One row per method; a method is its own file(s) plus its row here.
extern const struct qs_method qs_method_gptq, qs_method_rtn, qs_method_awq, qs_method_awq_gptq;
static const struct qs_method *const k_methods[] = {&qs_method_gptq, &qs_method_rtn, &qs_method_awq,
                                                    &qs_method_awq_gptq};
#define QS_N_METHODS (sizeof(k_methods) / sizeof(k_methods[0]))

const struct qs_method *qs_method_find(const char *name) {
  for (size_t i = 0; i < QS_N_METHODS; i++)
    if (!strcmp(k_methods[i]->name, name)) return k_methods[i];
  return NULL;
}

const char *qs_method_names(void) {
  static char buf[128];
  if (!buf[0])
    for (size_t i = 0; i < QS_N_METHODS; i++) {
      size_t n = strlen(buf);
      snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "|" : "", k_methods[i]->name);
    }
  return buf;
}

struct qs_qopts qs_qopts_default(void) {
  return (struct qs_qopts){.grid = qs_grid_default(), .act_order = QS_ACT_ORDER_NONE, .damp = 0.01f,
                           .block_size = 128};
}

int qs_qopts_same(const struct qs_qopts *a, const struct qs_qopts *b) {
  const struct qs_grid *x = &a->grid, *y = &b->grid;
  return x->kind == y->kind && x->bits == y->bits && x->sym == y->sym && x->group_size == y->group_size &&
         x->min_zero == y->min_zero && x->scale_dtype == y->scale_dtype && x->ggml_type == y->ggml_type &&
         a->importance == b->importance && a->imatrix == b->imatrix && a->imp_count == b->imp_count &&
         a->act_order == b->act_order && a->damp == b->damp && a->block_size == b->block_size &&
         a->factor_f64 == b->factor_f64;
}

qs_status qs_qopts_check(const struct qs_qopts *o, int64_t K, const char *what) {
  qs_status status = QS_OK;
  QS_TRY(qs_grid_check(&o->grid, K, what));
  if (!(o->damp >= 0.0f && o->damp < 1.0f))
    QS_FAIL(QS_ERR_ARG, "%s: damp %g, expected 0 <= damp < 1", what, (double)o->damp);
  if (o->act_order < QS_ACT_ORDER_NONE || o->act_order > QS_ACT_ORDER_GROUP)
    QS_FAIL(QS_ERR_ARG, "%s: act-order mode %d", what, o->act_order);
fail:
  return status;
}
