// engine.h — layer engines of `qshard quantize`: where the calibration activations live and how each
// step of the pipeline (pipeline.h) runs — on the CPU (engine_cpu.c) or on a GPU (engine_cuda.c).
// The pipeline decides what happens in which order (the layout's groups, one Hessian per group, the
// method's prep and rows, the records); an engine supplies the steps for its memory and device.
//
// An engine owns this rank's calibration samples [s0, s1) (it sets run->s0/s1/n_samples/T) as the
// residual stream x [s1 - s0, T, hidden] fp32. Without calibration data x is empty and the steps
// that need it are skipped (hessian() returns NULL). Exactness for any rank count is each engine's
// contract: the Hessian summed in a fixed order, rows split so that a row's bits do not depend on
// the split, the rows all-gathered (engine_cpu.c, engine_cuda.h).
#ifndef QS_ENGINE_H
#define QS_ENGINE_H

#include "run/run.h"

struct qs_calib;

struct qs_qengine {
  const char *name; // "cpu" or "cuda"
  // Layer l's weights in.
  qs_status (*load)(struct qs_qengine *e, struct qs_qrun *run, int l);
  // The forward up to group g's input (the groups before g applied as quantized), then the group's
  // Hessian 2/n·XᵀX over every rank's samples, finalized (both triangles) and identical on every rank
  // of the stage, in engine memory (host or device) — or *H = NULL without calibration data.
  qs_status (*hessian)(struct qs_qengine *e, struct qs_qrun *run, enum qs_group g, float **H);
  void (*hessian_free)(struct qs_qengine *e, float *H);
  // The method's state from H for modules quantized with options o (its CPU or GPU entry): once per
  // group, again for a module whose options differ (a format's per-module grid, qs_run_module_opts).
  qs_status (*prep)(struct qs_qengine *e, struct qs_qrun *run, const struct qs_qopts *o, const float *H, int64_t K,
                    const char *name, void **state, struct qs_qprep_info *info);
  void (*prep_free)(struct qs_qengine *e, struct qs_qrun *run, void *state);
  // Module `lin` quantized on options o with the state prep made for them: rows split over the stage's ranks and gathered;
  // its weights replaced by the quantized values for the rest of the forward; rep->loss and
  // rep->rel_err filled; on the stage leader (data rank 0) *rec = the complete record (host), on
  // the other ranks *rec is left empty.
  qs_status (*module)(struct qs_qengine *e, struct qs_qrun *run, const struct qs_qopts *o, const void *state,
                      const float *H, enum qs_lin lin, struct qs_qreport *rep, struct qs_qrecord *rec);
  // Methods with per-input-channel scales (method.h QS_METHOD_SCALES: AWQ); NULL in an engine
  // without them. stats: the full-precision forward of the whole layer before any module is
  // quantized: per group g its Hessian H[g] (as hessian() gives it, engine memory) and xabs[g] [K]
  // (host) = mean |x| per input channel over every rank's tokens, both fixed-order tree sums
  // (identical on every rank); advance 0: x is left as it was; advance 1 (QS_METHOD_FP_INPUTS): x
  // becomes the full-precision layer's output, and finish() only closes the layer.
  qs_status (*stats)(struct qs_qengine *e, struct qs_qrun *run, float *H[QS_GROUP_COUNT], float *xabs[QS_GROUP_COUNT],
                     int advance);
  // err[a], a < n: the output error Σ d H dᵀ over the rows of group g's modules quantized on o's grid
  // after scaling by S + a·K (quant/awq.h qs_awq_scaled_error_ref), identical on every rank.
  qs_status (*scale_error)(struct qs_qengine *e, struct qs_qrun *run, enum qs_group g, const struct qs_qopts *o,
                           const float *H, const float *S, int n, double *err);
  // The columns of group g's modules multiplied by s [K], the op producing their input divided by s:
  // the rows (and bias) of the layout's prev_lin, or its prev_norm weight, which is then rounded to
  // norm_dtype (how the checkpoint stores it) and copied to norm_out [K] (host). H (engine memory,
  // or NULL): the group's Hessian from stats, made that of the divided input: H_ij / s_i / s_j.
  qs_status (*fold)(struct qs_qengine *e, struct qs_qrun *run, enum qs_group g, const float *s, qs_dtype norm_dtype,
                    float *norm_out, float *H);
  // The layer's output from its quantized modules: x becomes the next layer's input (unless
  // stats(advance 1) made it the full-precision layer's output already).
  qs_status (*finish)(struct qs_qengine *e, struct qs_qrun *run, int l);
  // x copied out to / in from host memory (resume state), [s1 - s0, T, hidden] fp32.
  qs_status (*get_x)(struct qs_qengine *e, const struct qs_qrun *run, float *x);
  qs_status (*set_x)(struct qs_qengine *e, const struct qs_qrun *run, const float *x);
  // Peak device memory in bytes since the engine started (-1 on the CPU).
  long long (*device_peak)(struct qs_qengine *e);
  void (*free)(struct qs_qengine *e);
};

// The scale search's split for scale_error, shared by the engines (run/pipeline.c): tiles of `tile`
// rows of each module of group g, numbered over the group (tile_start[m]: module m's first tile,
// count + 1 entries); returns the number of tiles. Rank r computes tiles split_range(n_tiles, P, r)
// into all [n_tiles * n] (candidate fastest); qs_scale_tiles_reduce gathers them and adds them in
// tile order: err[a] = Σ_t all[t * n + a], the same bits for any rank count.
long long qs_scale_tiles(const struct qs_config *cfg, enum qs_group g, int tile, long long tile_start[QS_LIN_COUNT + 1]);
qs_status qs_scale_tiles_reduce(struct qs_comm *c, long long n_tiles, int n, double *all, double *err);

// cal may be NULL (no calibration data). Collective over run->data (this rank's stage).
qs_status qs_qengine_cpu_init(struct qs_qrun *run, const struct qs_calib *cal, struct qs_qengine **out);
qs_status qs_qengine_cuda_init(struct qs_qrun *run, const struct qs_calib *cal, struct qs_qengine **out);

#endif
