// gguf.h — what the GGUF format's files share (formats/gguf.c writes and reads model files,
// formats/gguf_imatrix.c llama.cpp's importance-matrix files): llama.cpp's file types and their
// per-tensor type rules (llama-quantize's mixes), and the tensor names between Hugging Face and
// GGUF (FORMATS.md §5.3–5.4, §5.8).
#ifndef QS_FORMATS_GGUF_H
#define QS_FORMATS_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/qs_common.h"
#include "io/config.h"
#include "quant/imatrix.h"

// A llama.cpp file type (llama.h LLAMA_FTYPE_*), as `--format gguf:NAME` names it.
struct qs_gguf_ftype {
  const char *name; // "Q4_K_M"
  int ftype;        // general.file_type
  int type;         // default tensor type (llama_ftype_get_default_type)
};

// The file type named `name` (case-insensitive; Q3_K/Q4_K/Q5_K stand for their _M mix, as in
// llama-quantize), or NULL.
const struct qs_gguf_ftype *qs_gguf_ftype_find(const char *name);
// "F32|F16|BF16|Q8_0|...", for messages.
const char *qs_gguf_ftype_names(void);

// What a tensor is to the type rules (llama-quant.cpp tensor_category).
enum qs_gguf_cat {
  QS_GGUF_CAT_TOKEN_EMBD,
  QS_GGUF_CAT_OUTPUT,
  QS_GGUF_CAT_Q,
  QS_GGUF_CAT_K,
  QS_GGUF_CAT_V,
  QS_GGUF_CAT_O,
  QS_GGUF_CAT_GATE,
  QS_GGUF_CAT_UP,
  QS_GGUF_CAT_DOWN,
  QS_GGUF_CAT_OTHER, // norms, biases, rope_freqs: kept in F32
};

// The ggml type llama-quantize gives a 2-D weight of category `cat` in decoder layer `layer` (-1
// for none) with rows of ne0 values, for file type ft of model c: the mix's rule (more bits for
// some attn_v / ffn_down / output tensors), then the fallback when ne0 is not whole blocks.
// has_imatrix: an importance matrix is used (changes the Q4_0/Q5_0/IQ4_NL rules). Returns -1 with
// a message in msg where llama-quantize has no fallback and stops (e.g. Q8_0 rows of 172 values).
int qs_gguf_tensor_type(const struct qs_gguf_ftype *ft, const struct qs_config *c, enum qs_gguf_cat cat, int layer,
                        int64_t ne0, int has_imatrix, char *msg, size_t cap);

// The GGUF name of Hugging Face tensor `hf` ("model.layers.3.self_attn.q_proj.weight" →
// "blk.3.attn_q.weight"); its category, layer (-1 outside the layers) and, for q/k weights and biases
// of the llama architecture, the head count of the row permutation (§5.4; 0: none). 0 on success,
// -1 for a name that has no GGUF tensor (lm_head of a tied model is the caller's decision).
int qs_gguf_name_of(const struct qs_config *c, const char *hf, char *out, size_t cap, enum qs_gguf_cat *cat,
                    int *layer, int *perm_heads);
// The Hugging Face name of GGUF tensor `name` in a model of config c; -1 when unknown.
int qs_gguf_hf_name_of(const struct qs_config *c, const char *name, char *out, size_t cap);
// The architecture string of the model (general.architecture): "llama" (llama, mistral) or "qwen2".
const char *qs_gguf_arch(const struct qs_config *c);

// Rows of a [N, row_bytes] matrix between the Hugging Face and the GGUF order of q/k (§5.4):
// dst row h*hd + 2*j + s = src row h*hd + s*hd/2 + j (inverse = 1 reverses it), hd = N / heads.
void qs_gguf_permute_rows(const void *src, void *dst, int64_t N, size_t row_bytes, int heads, int inverse);

// llama.cpp's imatrix GGUF (general.type "imatrix": <gguf name>.in_sum2 [K, 1] and .counts [1, 1]
// F32 per tensor, imatrix.datasets / chunk_count / chunk_size): read into `m` keyed by Hugging Face
// module path (gguf_imatrix.c); entries of tensors the model does not have are refused.
qs_status qs_gguf_imatrix_read(const char *path, const struct qs_config *c, struct qs_imatrix *m);
// Written under a temporary name and renamed (entries in name order, as llama-imatrix writes them).
qs_status qs_gguf_imatrix_write(const char *path, const struct qs_config *c, const struct qs_imatrix *m);

#endif
