// quantize_cuda.h — internals of the cuda engine of `qshard quantize` (quantize_cuda.c: samples,
// layer phases, Hessians; quantize_module_cuda.c: one module's GPTQ/RTN, gather, packing).
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
//    sgemms run per tile (qs_gptq_quantize_tiled_cuda), so a row's update always comes from a call of
//    the same shape; the fused kernels treat rows independently. The rows are all-gathered (NCCL).
//  - The factor is computed from the same H bits by every rank, identically.
#ifndef QS_QUANTIZE_CUDA_H
#define QS_QUANTIZE_CUDA_H

#include "comm_dev.h"
#include "model/forward_cuda.h"
#include "gptq_factor.h"
#include "run/quantize.h"

#define QS_HESSIAN_LEAVES 16
#define QS_GPTQ_CUDA_ROW_TILE 2048

// Seconds per phase of the current layer (host clock, the stream synchronized at phase ends).
enum { QS_PH_LOAD, QS_PH_FORWARD, QS_PH_HESSIAN, QS_PH_FACTOR, QS_PH_SOLVE, QS_PH_GATHER, QS_PH_PACK, QS_PH_COUNT };

struct qs_cuda_engine {
  struct qs_qengine base;
  struct qs_dctx ctx;
  struct qs_dcomm *dcomm;
  struct qs_wstream ws;
  struct qs_dlayer L;
  struct qs_dseq seq;
  float *x;          // [B, T, hidden] residual stream of this rank's samples (device)
  void *att;         // [B, T, H*D] attention outputs (dt), kept between the O Hessian and o_proj
  void *act;         // [B, T, inter] down_proj inputs (dt) kept between its Hessian and its apply,
                     // when they fit (else NULL: gate/up are recomputed for the layer output)
  void *pin;         // pinned host staging of one module's packed tensors
  size_t pin_cap;
  int B, T;
  long long leaf0, leaf1, n_leaves; // this rank's leaves [leaf0, leaf1) of n_leaves
  double ph[QS_PH_COUNT], t_mark;
};

// Marks the end of a phase: synchronizes the stream and adds the time since the last mark.
qs_status qs_cuda_phase(struct qs_cuda_engine *e, int phase);
// Quantizes module i (QS_LW_*) of the uploaded layer with the group's Hessian H (device [K, K],
// both triangles; NULL without calibration data), GPTQ (prep) or RTN (prep NULL): rows solved in
// tiles over the ranks, gathered, L.w[i] replaced by the quantized weights in dt, report + emit.
qs_status qs_cuda_quantize_module(struct qs_cuda_engine *e, struct qs_qrun *run, int i,
                                  const struct qs_gptq_prep_cuda *prep, const float *H);
// The identity factor: GPTQ with U = I, no permutation is exactly RTN (no error feedback; the
// grids come from the original weights). Used for --method rtn on the GPU.
qs_status qs_cuda_prep_identity(struct qs_gptq_prep_cuda *prep, int64_t K, const struct qs_quant_opts *o,
                                cudaStream_t stream);

#endif
