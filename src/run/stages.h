// stages.h — the stage × data grid of `qshard quantize --stages S` (DESIGN.md "Parallel decomposition").
//
// Rank mapping: the P world ranks form S stages of D = P/S data ranks; world rank r is data rank
// d = r % D of stage s = r / D, so stage s holds world ranks [s*D, (s+1)*D). Launchers number the
// ranks of one node consecutively (Slurm's default block distribution, mpirun --map-by slot), so
// with D = ranks per node a stage is a node: the heavy collectives (Hessian tree sums, row
// all-gathers) stay inside it, and only boundary activations cross nodes, point to point from
// world rank s*D + d to (s+1)*D + d.
// Layers: stage s owns the contiguous decoder layers [bounds[s], bounds[s+1]), balanced by parameter
// count (qs_stages_split_layers, from the checkpoint's tensor shapes).
//
// S = 1 is exact GPTQ: one stage of every rank and layer, run->data is the world and nothing here
// runs; the checkpoint is byte-identical for any P.
// S > 1 (CPU engine): every stage quantizes its layers concurrently from the FULL-PRECISION model's
// activations at its first layer, which a pipelined FP forward computes first (qs_stages_boundary):
// so only the stage boundaries differ from exact GPTQ (BENCHMARKS.md has the perplexity cost). Inside
// a stage the D ranks split the samples exactly as at S = 1, so the checkpoint does not depend on D.
// Every stage leader (data rank 0) writes its layers' files under OUT.partial/.state/ (qstate.h);
// once every stage is done (qs_stages_join) world rank 0 assembles the checkpoint from them, so the
// output directory must be on a filesystem that every stage leader sees (as for --eval and --tp).
// --resume: each stage saves and restores its own state (boundary activations included).
#ifndef QS_STAGES_H
#define QS_STAGES_H

#include "run/run.h"

struct qs_comm;
struct qs_calib;

// struct qs_stages (the grid of this run): run.h.

// Before any work, on every rank (the same verdict everywhere; rank 0 prints the message):
// QS_ERR_ARG unless S divides the rank count, S <= the decoder layers, and (S > 1) the CPU engine runs.
qs_status qs_stages_check(struct qs_comm *world, const struct qs_run_opts *a, const struct qs_model *m);
// Contiguous split of n layers with params[l] parameters into S >= 1 non-empty stages: bounds[0] = 0,
// bounds[S] = n, and bounds[s] the boundary whose parameter prefix sum is nearest to s/S of the total
// (ties to the lower layer; every stage keeps at least one layer). Equal layers: near-equal counts.
void qs_stages_split_layers(const long long *params, int n, int S, int *bounds);
// Collective over world: the grid of a->stages stages and this rank's data communicator.
qs_status qs_stages_init(struct qs_stages *g, struct qs_comm *world, int S, const struct qs_model *m);
void qs_stages_free(struct qs_stages *g);
// The grid for quant_report.json: [{"stage": s, "layers": [first, last], "ranks": [first, last]}, ...].
json_t *qs_stages_json(const struct qs_stages *g);

// Collective over world, S > 1 with calibration data, after qs_qstate_init: the pipelined FP forward.
// Stage 0 embeds its samples, runs its layers unquantized and sends each micro-batch (QS_STAGE_MICROBATCH
// samples, default 1) to the same data rank of stage 1, which runs its layers and forwards, and so on;
// a stage whose --resume state holds its activations skips the pass's result. Then each stage that
// took it saves it as its first state (qs_qstate_save_boundary). Memory: the stage's layers in fp32
// during the pass (the model's 1/S), plus one copy of the activations.
qs_status qs_stages_boundary(struct qs_qrun *run, const struct qs_calib *cal);
// Collective over world, after this stage's last layer (a no-op when S = 1): waits without spinning
// for the other stages (qs_comm_barrier_idle), then every rank holds every module's report (in layer
// order), and world rank 0 has checked every stage's record files, from which the outputs are
// written (output.h) in layer order: the bytes of S = 1 given the same records.
qs_status qs_stages_join(struct qs_qrun *run);

#endif
