// quantize_emit.c — what happens to a quantized module once every rank holds all its rows, for
// every engine (CPU, CUDA): its report line and its packed tensors handed to the checkpoint writer.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "run/quantize.h"
#include "run/stages.h"
#include "formats/trtllm.h"

const char *const qs_group_modules[QS_GROUP_COUNT][3] = {
    [QS_GROUP_QKV] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
    [QS_GROUP_O] = {"self_attn.o_proj"},
    [QS_GROUP_GATE_UP] = {"mlp.gate_proj", "mlp.up_proj"},
    [QS_GROUP_DOWN] = {"mlp.down_proj"},
};

int qs_group_size(enum qs_group g) { return g == QS_GROUP_QKV ? 3 : g == QS_GROUP_GATE_UP ? 2 : 1; }

void qs_qreport_init(struct qs_qreport *rep, const struct qs_qrun *run, const char *module, int n, int k) {
  *rep = (struct qs_qreport){.layer = run->layer, .n = n, .k = k, .loss = NAN, .rel_err = NAN};
  snprintf(rep->name, sizeof(rep->name), "model.layers.%d.%s", run->layer, module);
}

// The stage leader writes its layers' files (qstate.h), from which world rank 0 assembles the GPTQ
// checkpoint; with --tp and one stage, ranks 0..T-1 also write TensorRT-LLM shards as modules come
// (with stages they read every module back from the layer files once all stages are done).
static int live_tp(const struct qs_qrun *run) { return run->a->tp && run->grid->S == 1; }

int qs_quantize_wants_packed(const struct qs_qrun *run) {
  return qs_comm_rank(run->data) == 0 || (live_tp(run) && qs_trtllm_is_writer(run));
}

static qs_status report_push(struct qs_qrun *run, const struct qs_qreport *r) {
  qs_status status = QS_OK;
  if (run->n_reports == run->cap_reports) {
    int cap = run->cap_reports ? 2 * run->cap_reports : 64;
    struct qs_qreport *p = realloc(run->reports, (size_t)cap * sizeof(*p));
    if (!p) QS_FAIL(QS_ERR_OOM, "out of memory");
    run->reports = p;
    run->cap_reports = cap;
  }
  run->reports[run->n_reports++] = *r;
fail:
  return status;
}

qs_status qs_quantize_emit(struct qs_qrun *run, const struct qs_qreport *rep, const struct qs_qpacked *p) {
  qs_status status = QS_OK;
  if (p && qs_comm_rank(run->data) == 0) QS_TRY(qs_gptq_ckpt_add_module(run, rep->name, p));
  if (live_tp(run)) QS_TRY(qs_trtllm_add_module(run, rep->name, p));
  QS_TRY(report_push(run, rep));
fail:
  return status;
}

qs_status qs_quantize_refuse(struct qs_comm *world, const char *opt, int value, const char *fmt, ...) {
  if (qs_comm_rank(world) == 0) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qshard quantize: %s %d: ", opt, value);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
  }
  return QS_ERR_ARG;
}
