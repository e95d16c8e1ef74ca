// trtllm.h — `qshard quantize --tp T`: a TensorRT-LLM per-rank checkpoint (FORMATS.md §6) written
// beside the GPTQ v1 checkpoint, in OUT/trtllm/: config.json and rank{t}.safetensors for t < T
// (mapping world_size = tp_size = T, pp_size = 1, so file t is TP rank t).
//
// Tensors of rank file t (names: TensorRT-LLM models/llama/convert.py, FORMATS §6.1):
//   transformer.vocab_embedding.weight       [V, H]     embed_tokens, replicated (as stored)
//   transformer.ln_f.weight                  [H]        model.norm, replicated
//   transformer.layers.L.input_layernorm.weight  [H]    replicated
//   transformer.layers.L.post_layernorm.weight   [H]    post_attention_layernorm, replicated
//   lm_head.weight                           [Vp/T, H]  lm_head (embed_tokens when tied), vocab rows
//                                                       split, zero-padded to Vp = ceil(V/T)*T
//   per quantized linear X of layer L (prefix transformer.layers.L.X):
//     X = attention.qkv   q, k, v fused: each split on its output columns, [q_t | k_t | v_t]
//                         (K/V heads duplicated first when num_key_value_heads < T: rank t holds
//                         KV head t*nkv/T, TensorRT-LLM's dup_kv_weight)
//         attention.dense o_proj,    row-parallel: input rows split
//         mlp.fc          gate_proj, column-parallel (sic: fc = gate, §6)
//         mlp.gate        up_proj,   column-parallel
//         mlp.proj        down_proj, row-parallel
//     .qweight                I32 [K_t/8, N_t]  GPTQ v1 packing of the shard (bit-identical slice of
//                                               the HF checkpoint's qweight; see "weight" below)
//     .qzeros                 I32 [G_t, N_t/8]  GPTQ v1 zeros (stored z - 1) of the shard
//     .weights_scaling_factor F16 [G_t, N_t]    = the GPTQ scales of the shard (TRT-LLM's name/layout)
//     .zero                   F16 [G_t, N_t]    fp16((8 - 1 - qz) * scale): TRT-LLM's GPTQ import,
//                                               whose dequantization (q - 8)*s + zero = (q - z)*s
//     .g_idx                  I32 [K_t]         shard-local group index (= k_local / group_size)
//   K_t = K/T for row-parallel modules (K_t % group_size == 0: groups never straddle shards), K
//   otherwise; N_t = N/T for column-parallel ones; G_t = K_t / group_size.
// "weight": TensorRT-LLM's own W4A16_GPTQ `weight` is qweight re-packed by its CUDA-arch-specific
// preprocess_weights_for_mixed_gemm (§6: "exact packing is version dependent [UNCONFIRMED]", §8
// open); qshard does not reproduce it and writes the arch-independent source under `qweight`
// instead, so an engine build without that step fails on a missing `weight` rather than loading
// mis-packed data. Everything else (names, splits, fusing, scales, zero, config) is TRT-LLM's.
//
// Parallel writing: shard t is assembled and written by rank t % P (P = MPI ranks) from the whole
// module every rank holds after the all-gather (qs_quantize_emit), each file under a temporary name
// and renamed; rank 0 writes config.json. The temporary output directory must be visible to every
// writer rank (a shared filesystem across nodes), as for --eval.
#ifndef QS_TRTLLM_H
#define QS_TRTLLM_H

#include "run/quantize.h"

struct qs_comm;
struct qs_trtllm;

// Before any work, on every rank (the same verdict everywhere; the message printed by rank 0):
// QS_ERR_ARG unless the run can be written for TensorRT-LLM with a->tp ranks — 4-bit (W4A16_GPTQ),
// group size > 0 dividing every K and every row-parallel K/T, no act-order without static groups
// (the GPTQ import ignores g_idx), heads and widths divisible by T, a Llama/Mistral model without
// biases, every input tensor with a §6 name.
qs_status qs_trtllm_check(struct qs_comm *world, const struct qs_qargs *a, const struct qs_model *m);
// Collective, after rank 0 created its temporary output directory `tmp` (ignored on other ranks):
// shares the path, creates tmp/trtllm and this rank's shard writers (run->trtllm).
qs_status qs_trtllm_init(struct qs_qrun *run, const char *tmp);
// 1 when this rank writes at least one shard (needs the packed tensors of every module).
int qs_trtllm_is_writer(const struct qs_qrun *run);
// Writer ranks: the slices of module `name` (model.layers.L.<module>) for their shards (copied).
qs_status qs_trtllm_add_module(struct qs_qrun *run, const char *name, const struct qs_qpacked *p);
// Collective, after the last layer: dense tensors from the input checkpoint, rank files written,
// config.json (rank 0); fails on every rank if any rank failed.
qs_status qs_trtllm_finish(struct qs_qrun *run);
void qs_trtllm_free(struct qs_trtllm *t);

#endif
