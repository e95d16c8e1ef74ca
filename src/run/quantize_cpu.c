// quantize_cpu.c — the CPU layer engine of `qshard quantize` (quantize.h): the residual stream of
// this rank's calibration samples in host memory, one fp32 forward per layer with the GPTQ group
// hook (quantize_layer.c). Samples are split contiguously over the ranks of this rank's stage
// (run->data, stages.h); every step is exact under MPI (see quantize_layer.c), so the checkpoint
// does not depend on the rank count.
#include <stdlib.h>
#include <string.h>

#include "io/calib.h"
#include "comm.h"
#include "run/quantize.h"

struct cpu_engine {
  struct qs_qengine base;
  float *x;          // [s1 - s0, T, hidden], NULL without calibration data
  struct qs_fwd ws;
};

static qs_status cpu_layer(struct qs_qengine *e, struct qs_qrun *run, int l) {
  qs_status status = QS_OK;
  struct cpu_engine *c = (struct cpu_engine *)e;
  struct qs_layer L = {0};
  QS_TRY(qs_model_load_layer(run->m, l, &L));
  if (c->x)
    QS_TRY(qs_layer_forward(&run->m->cfg, run->m->rope_inv_freq, &L, c->x, (int)(run->s1 - run->s0), run->T,
                            &c->ws, qs_quantize_group, run));
  else QS_TRY(qs_quantize_layer_weights_only(run, &L));
fail:
  qs_layer_free(&L);
  return status;
}

static size_t cpu_x_floats(const struct qs_qrun *run) {
  return (size_t)(run->s1 - run->s0) * (size_t)run->T * (size_t)run->m->cfg.hidden;
}

static qs_status cpu_get_x(struct qs_qengine *e, const struct qs_qrun *run, float *x) {
  struct cpu_engine *c = (struct cpu_engine *)e;
  if (c->x) memcpy(x, c->x, cpu_x_floats(run) * sizeof(float));
  return QS_OK;
}

static qs_status cpu_set_x(struct qs_qengine *e, const struct qs_qrun *run, const float *x) {
  struct cpu_engine *c = (struct cpu_engine *)e;
  if (c->x) memcpy(c->x, x, cpu_x_floats(run) * sizeof(float));
  return QS_OK;
}

static long long cpu_device_peak(struct qs_qengine *e) {
  (void)e;
  return -1;
}

static void cpu_free(struct qs_qengine *e) {
  struct cpu_engine *c = (struct cpu_engine *)e;
  if (!c) return;
  qs_fwd_free(&c->ws);
  free(c->x);
  free(c);
}

qs_status qs_qengine_cpu_init(struct qs_qrun *run, const struct qs_calib *cal, struct qs_qengine **out) {
  qs_status status = QS_OK;
  struct cpu_engine *c = NULL;
  int P = qs_comm_size(run->data), hidden = run->m->cfg.hidden;
  QS_ALLOC(c, 1);
  c->base = (struct qs_qengine){.name = "cpu", .layer = cpu_layer, .get_x = cpu_get_x, .set_x = cpu_set_x,
                                .device_peak = cpu_device_peak, .free = cpu_free};
  if (cal) {
    if (cal->n < P)
      QS_FAIL(QS_ERR_ARG, "%d calibration samples for %d (data) ranks: need at least one per rank", cal->n, P);
    run->n_samples = cal->n;
    run->T = cal->seqlen;
    qs_comm_split_range(cal->n, P, qs_comm_rank(run->data), &run->s0, &run->s1);
    long long B = run->s1 - run->s0;
    QS_ALLOC(c->x, (size_t)B * (size_t)cal->seqlen * (size_t)hidden);
    for (long long b = 0; b < B; b++)
      qs_model_embed(run->m, cal->ids + (size_t)(run->s0 + b) * cal->seqlen, cal->seqlen,
                     c->x + (size_t)b * cal->seqlen * hidden);
    QS_TRY(qs_fwd_init(&c->ws, &run->m->cfg, (int)B, run->T));
  }
  *out = &c->base;
  return QS_OK;
fail:
  if (c) cpu_free(&c->base);
  return status;
}
