// run.c — what the parts of a run share about its formats (contract: run.h).
#include "run/run.h"

#include "comm.h"

struct qs_format_run qs_run_format_run(const struct qs_run_opts *a, const struct qs_model *m, int i, int rank, int ranks) {
  return (struct qs_format_run){.model_dir = a->model, .cfg = &m->cfg, .ckpt = &m->ckpt, .arg = a->format_args[i],
                                .method = a->method->name, .calib = a->calib, .calib_samples = a->samples, .opts = &a->q, .tp = a->tp,
                                .max_shard_bytes = (uint64_t)a->max_shard_mb << 20, .rank = rank, .ranks = ranks,
                                .writer = i % ranks};
}

void qs_run_module_opts(const struct qs_qrun *run, enum qs_lin lin, struct qs_qopts *o) {
  const struct qs_run_opts *a = run->a;
  *o = a->q;
  for (int i = 0; i < a->n_formats; i++) {
    if (!a->formats[i]->module_grid) continue;
    struct qs_format_run fr = qs_run_format_run(a, run->m, i, qs_comm_rank(run->world), qs_comm_size(run->world));
    a->formats[i]->module_grid(&fr, run->layer, (int)lin, &o->grid);
  }
}
