// report.c — the module reports of a run (run.h): one line per quantized linear, printed by the
// progress lines, saved in the resume state and written to quant_report.json (quantize.c); and
// the one-message refusal of an option.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "run/run.h"

void qs_qreport_init(struct qs_qreport *rep, const struct qs_qrun *run, enum qs_lin lin) {
  *rep = (struct qs_qreport){.layer = run->layer, .loss = NAN, .rel_err = NAN, .packed = 1};
  qs_layout_shape(&run->m->cfg, lin, &rep->n, &rep->k, &(int){0});
  qs_layout_module_path(qs_layout_of(&run->m->cfg), run->layer, lin, rep->name, sizeof(rep->name));
}

qs_status qs_qreport_push(struct qs_qrun *run, const struct qs_qreport *r) {
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
