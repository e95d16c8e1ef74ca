// engine_cuda.h — internals of the cuda engine of `qshard quantize` (engine.h; engine_cuda.c:
// samples, layer loads, group inputs and Hessians; engine_module_cuda.c: one module's rows through the
// method's GPU entries, the gather, the record). engine_cuda.c calls engine_module_cuda.c, never
// the other way round.
//
// All collectives run over run->data, the ranks of this stage (stages.h; the world when S = 1).
// Exactness for any rank count (the house rule, as the CPU engine):
//  - Samples: the calibration set is cut into V = min(QS_HESSIAN_LEAVES (16), n) fixed "leaves" of
//    contiguous samples (split_range(n, V, v)); rank r owns leaves split_range(V, P, r). Every GEMM
//    of the forward runs on one sample (M = T rows), so a sample's activations do not depend on P.
//  - Hessian: leaf v = sum over its samples, in order, of XᵀX (one accumulating GEMM per sample,
//    always the same shapes); H = ((L0 + L1) + L2) + ... in leaf order: rank 0 folds its leaves,
//    passes the running sum to rank 1, which adds its own (computed meanwhile), and so on; the last
//    rank broadcasts H. The same additions in the same order for every P. Memory: the running sum
//    and one leaf per own leaf beyond the first on ranks > 0 (two K x K buffers on one rank).
//  - Rows: a module's rows are grouped in tiles of QS_GPTQ_CUDA_ROW_TILE rows aligned to row 0 (the
//    last may be shorter); rank r solves tiles split_range(n_tiles, P, r) in one call whose lazy-update
//    GEMMs run per tile (method.h, qs_method_cuda.rows), so a row's update always comes from a call of
//    the same shape; the kernels treat rows independently. The rows are all-gathered (NCCL).
//  - The method's prep is computed from the same H bits by every rank, identically.
#ifndef QS_ENGINE_CUDA_H
#define QS_ENGINE_CUDA_H

#include <pthread.h>

#include "comm_dev.h"
#include "model/forward_cuda.h"
#include "qs_cuda.h"
#include "run/engine.h"
#include "run/saver.h"

#define QS_HESSIAN_LEAVES 16
#define QS_GPTQ_CUDA_ROW_TILE 2048

// Seconds per phase of the current layer (host clock, the stream synchronized at phase ends);
// "record": the stage leader's copy of each module's record to the host.
// "search": AWQ's scale search and fold (engine_scales_cuda.c).
enum { QS_PH_LOAD, QS_PH_FORWARD, QS_PH_HESSIAN, QS_PH_SEARCH, QS_PH_FACTOR, QS_PH_SOLVE, QS_PH_GATHER, QS_PH_RECORD,
       QS_PH_COUNT };

// Pinned host staging of the stage leader's records: the record of a module is copied from the
// device into a slot at PCIe speed and lent to the record, which the saver thread (run/saver.h)
// writes into the layer file while the GPU goes on; the saver's release of the record frees the
// slot. QS_QSAVER_DEPTH + 1 slots: as many as the saver can hold, so the engine waits for a slot
// only when the saver is behind.
#define QS_CUDA_REC_SLOTS (QS_QSAVER_DEPTH + 1)
struct qs_cuda_recslot {
  void *buf;  // pinned
  size_t cap;
  int busy;   // lent to a record
};

struct qs_cuda_engine {
  struct qs_qengine base;
  struct qs_dctx ctx;
  struct qs_cuda_ctx cctx;   // the method entries' view of ctx (handles, stream)
  struct qs_dcomm *dcomm;
  struct qs_wstream ws;
  struct qs_dlayer L;
  struct qs_dseq seq;
  float *x;          // [B, T, hidden] residual stream of this rank's samples (device)
  void *att;         // [B, T, H*D] attention outputs (dt), kept between the O Hessian and o_proj
  void *act;         // [B, T, inter] down_proj inputs (dt) kept between its Hessian and its apply,
                     // when they fit (else NULL: gate/up are recomputed for the layer output)
  float *xs;         // [T, hidden] fp32 scratch of the full-precision statistics pass (stats): the
                     // residual of one sample plus its attention output, x left untouched; else NULL
  float *out_scale[QS_LIN_COUNT]; // host [n_out]: the scales folded into this module's rows this
                                  // layer (its bias, read from the checkpoint for the record, is
                                  // divided by them as the forward's was), else NULL
  int x_done;        // x is already this layer's output (stats with advance: engine.h)
  int B, T;
  long long leaf0, leaf1, n_leaves; // this rank's leaves [leaf0, leaf1) of n_leaves
  double ph[QS_PH_COUNT], t_mark;
  struct qs_cuda_recslot slot[QS_CUDA_REC_SLOTS];
  pthread_mutex_t slot_mu;        // slot[].busy, shared with the saver thread's releases
  pthread_cond_t slot_free;
  int slot_sync;                  // slot_mu and slot_free initialized
};

// Marks the end of a phase: synchronizes the stream and adds the time since the last mark.
static inline qs_status qs_cuda_phase(struct qs_cuda_engine *e, int phase) {
  qs_status status = QS_OK;
  QS_CUDA_CHECK(cudaStreamSynchronize(e->ctx.stream));
  double now = qs_time_now();
  e->ph[phase] += now - e->t_mark;
  e->t_mark = now;
  qs_dctx_sample_memory(&e->ctx);
fail:
  return status;
}

// Module `lin` of the uploaded layer through the method's GPU rows entry with the group's state and
// Hessian H (device [K, K], both triangles; NULL without calibration data): rows solved in tiles
// over the ranks, gathered, L.w[lin] replaced by the quantized weights in dt; the report's loss and
// output error; on the stage leader the record copied to the host (engine.h, module()).
// AWQ's scale search and fold on the GPU (engine.h scale_error / fold; engine_scales_cuda.c).
qs_status qs_cuda_scale_error(struct qs_qengine *base, struct qs_qrun *run, enum qs_group g, const struct qs_qopts *o,
                              const float *H, const float *S, int n, double *err);
qs_status qs_cuda_fold(struct qs_qengine *base, struct qs_qrun *run, enum qs_group g, const float *s,
                       qs_dtype norm_dtype, float *norm_out, float *H);

qs_status qs_cuda_quantize_module(struct qs_cuda_engine *e, struct qs_qrun *run, const struct qs_qopts *o,
                                  const void *state, const float *H, enum qs_lin lin, struct qs_qreport *rep,
                                  struct qs_qrecord *rec);

#endif
