// forward_cuda.h — the Llama decoder layer on one GPU, for the cuda engine of `qshard quantize`
// (run/engine_cuda.c) and for `qshard eval --device cuda` (eval_cuda.c).
//
// Numerics (DESIGN.md "Numerics"): the residual stream x is fp32; RMSNorm in fp32; the inputs of
// every GEMM, the attention and SwiGLU are of the compute dtype `dt` — BF16 by default (products
// exact in fp32, fp32 accumulation in cuBLAS), or F32 for the all-fp32 path (no TF32) that matches
// the CPU forward up to summation order. Every GEMM runs on one sequence (M = T rows): a sequence's
// bits never depend on which other sequences share the rank, so results do not depend on the rank
// count (cuBLAS is deterministic for a fixed shape on one GPU type).
//
// Weights are streamed: a background thread reads layer l+1 from the mmapped checkpoint into pinned
// host memory (two slots: host memory stays within two layers) while layer l computes; the upload
// to the device is an async copy (+ an on-device dtype conversion where needed).
#ifndef QS_FORWARD_CUDA_H
#define QS_FORWARD_CUDA_H

#include <pthread.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include "base/dtype.h"
#include "model/model.h"

// Tensors of a decoder layer, in a fixed order: the linears' weights (enum qs_lin, io/layout.h),
// their biases, the two norms.
enum { QS_LT_W = 0, QS_LT_B = QS_LIN_COUNT, QS_LT_ATTN_NORM = 2 * QS_LIN_COUNT, QS_LT_MLP_NORM, QS_LT_COUNT };

struct qs_dctx {
  const struct qs_config *cfg;
  qs_dtype dt;                // compute dtype: BF16 or F32
  cudaStream_t stream;
  cublasHandle_t blas;        // bound to stream; default math (no TF32)
  cusolverDnHandle_t solver;  // bound to stream
  float *inv_freq;            // device [head_dim / 2]
  long long peak;             // peak device bytes in use seen by qs_dctx_sample_memory
};
qs_status qs_dctx_init(struct qs_dctx *c, const struct qs_model *m, qs_dtype dt);
void qs_dctx_free(struct qs_dctx *c);
// Updates c->peak from cudaMemGetInfo (whole-device use, this process and others).
void qs_dctx_sample_memory(struct qs_dctx *c);

// ---- host side: a layer read from the checkpoint into pinned memory --------------------------------
struct qs_hslot {
  void *pinned;
  size_t cap;
  int layer;                       // -1: empty
  struct {
    qs_dtype dt;                   // as stored; F32 when stored GPTQ-quantized (dequantized on read)
    size_t off, bytes;             // in pinned; bytes 0: absent (no bias)
  } t[QS_LT_COUNT];
  cudaEvent_t uploaded;            // the slot may be overwritten once this has completed
  qs_status status;
};
struct qs_wstream {
  const struct qs_model *m;
  struct qs_hslot slot[2];
  pthread_t th;
  int th_live, th_slot;
};
qs_status qs_wstream_init(struct qs_wstream *w, const struct qs_model *m);
void qs_wstream_free(struct qs_wstream *w);
// Starts reading layer l in the background (into the slot not holding l - 1); no-op past the end.
qs_status qs_wstream_prefetch(struct qs_wstream *w, int l);
// The slot holding layer l, read now if it was not prefetched (waits for the reader otherwise).
qs_status qs_wstream_get(struct qs_wstream *w, int l, struct qs_hslot **out);

// ---- device side -----------------------------------------------------------------------------------
struct qs_dlayer {
  void *raw[QS_LIN_COUNT];          // linear weights as stored [n_out, n_in] (raw_dt)
  qs_dtype raw_dt[QS_LIN_COUNT];
  void *w[QS_LIN_COUNT];            // in dt (== raw when raw_dt == dt)
  void *b[QS_LIN_COUNT];            // biases [n_out] in dt, or NULL
  float *attn_norm, *mlp_norm;     // [hidden] fp32
  int n_out[QS_LIN_COUNT], n_in[QS_LIN_COUNT];
  size_t cap_raw[QS_LIN_COUNT], cap_w[QS_LIN_COUNT]; // allocated bytes (reused across layers)
};
// Uploads the slot's layer (async on c->stream; records slot->uploaded), (re)allocating as needed.
qs_status qs_dlayer_upload(struct qs_dctx *c, struct qs_hslot *s, struct qs_dlayer *L);
void qs_dlayer_free(struct qs_dlayer *L);
// Shapes of the 7 linears of the config.
void qs_dlayer_shapes(const struct qs_config *cfg, int *n_out, int *n_in);

// Workspace of one sequence of T tokens (all dt unless noted).
struct qs_dseq {
  int T;
  float *xf;       // [T, hidden] fp32 (normed input before rounding to dt)
  void *xn;        // [T, hidden]
  void *q;         // [T, H*D]
  void *k, *v;     // [T, Hkv*D]
  void *att;       // [T, H*D]
  void *gate, *up; // [T, inter]; gate becomes silu(gate) * up, the input of down_proj
  void *tmp;       // [T, hidden]
};
qs_status qs_dseq_init(struct qs_dseq *s, const struct qs_dctx *c, int T);
void qs_dseq_free(struct qs_dseq *s);

// The steps of a layer on one sequence; x: [T, hidden] fp32 device residual, in/out.
qs_status qs_dfwd_norm(struct qs_dctx *c, const float *x, const float *w, struct qs_dseq *s); // s->xn
qs_status qs_dfwd_attention(struct qs_dctx *c, const struct qs_dlayer *L, struct qs_dseq *s, void *att); // xn -> att
qs_status qs_dfwd_attn_out(struct qs_dctx *c, const struct qs_dlayer *L, const void *att, float *x, struct qs_dseq *s);
qs_status qs_dfwd_mlp_act(struct qs_dctx *c, const struct qs_dlayer *L, struct qs_dseq *s); // xn -> gate (act)
qs_status qs_dfwd_mlp_out(struct qs_dctx *c, const struct qs_dlayer *L, const void *act, float *x, struct qs_dseq *s);
// The whole layer on one sequence.
qs_status qs_dfwd_layer(struct qs_dctx *c, const struct qs_dlayer *L, float *x, struct qs_dseq *s);
// x [T, hidden] fp32 = embed[ids] (host ids, checked < vocab by the caller; the table is read from
// the model's host fp32 embeddings).
qs_status qs_dfwd_embed(struct qs_dctx *c, const struct qs_model *m, const int32_t *ids, int T, float *x);

#endif
