// fuzz_seedgen.c — writes the seed files no shared data file provides, with qshard's own writers:
// state.h5 and x.h5 (resume state; the x file has the identity fuzz_state reads back), tokens-1d.h5
// and tokens-2d.h5 (small token files), imatrix.gguf (an importance matrix of stories260K), model.gguf
// (a 10 KB llama model of one layer, tensors of several ggml types, KVs of several value types: the
// real GGUF files at hand are hundreds of KB, too slow to mutate), manifest-out/ (fuzz_manifest's
// output directory, fuzz_out.h, with the qshard_manifest.json qshard writes of it; none in a build
// without OpenSSL).
// Usage: fuzz_seedgen OUT_DIR (called by tests/fuzz/seed.sh).
#include "fuzz_common.h"
#include "fuzz_out.h"

#include "formats/gguf.h"
#include "io/config.h"
#include "io/ggml_types.h"
#include "io/gguf.h"
#include "io/manifest.h"
#include "io/tokens.h"
#include "run/qstate.h"
#include "run/run.h"

static char *join(const char *dir, const char *name) {
  char *p = qs_path_join(dir, name);
  if (!p) abort();
  return p;
}

static qs_status write_state(const char *dir) {
  qs_status status = QS_OK;
  struct qs_qreport r[2] = {{.name = "model.layers.0.self_attn.q_proj", .layer = 0, .n = 64, .k = 64, .loss = 1.5,
                             .rel_err = 0.01, .damp = 0.01f, .seconds = 0.1, .packed = 1},
                            {.name = "model.layers.1.mlp.down_proj", .layer = 1, .n = 64, .k = 172, .loss = 2.5,
                             .rel_err = 0.02, .damp = 0.01f, .damp_raises = 1, .seconds = 0.2}};
  const struct qs_qstate_x id = {.completed = QS_FUZZ_X_COMPLETED, .rank = 0, .ranks = 1, .s0 = QS_FUZZ_X_S0,
                                 .s1 = QS_FUZZ_X_S1, .T = QS_FUZZ_X_T, .hidden = QS_FUZZ_X_HIDDEN, .fp = QS_FUZZ_FP};
  float x[(QS_FUZZ_X_S1 - QS_FUZZ_X_S0) * QS_FUZZ_X_T * QS_FUZZ_X_HIDDEN];
  for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++) x[i] = (float)i * 0.25f - 3.0f;
  char *p = join(dir, "state.h5"), *q = join(dir, "x.h5");
  QS_TRY(qs_qstate_h5_write_state(p, 2, 5, 1, QS_FUZZ_FP, r, 2));
  QS_TRY(qs_qstate_h5_write_x(q, &id, x));
fail:
  free(p);
  free(q);
  return status;
}

static qs_status write_tokens(const char *dir) {
  qs_status status = QS_OK;
  int32_t ids[100];
  for (int i = 0; i < 100; i++) ids[i] = i == 0 ? 1 : (i * 37) % 512;
  char *p = join(dir, "tokens-1d.h5"), *q = join(dir, "tokens-2d.h5");
  QS_TRY(qs_tokens_write(p, NULL, ids, 1, 100, 1));
  QS_TRY(qs_tokens_write(q, NULL, ids, 4, 16, 2));
fail:
  free(p);
  free(q);
  return status;
}

static qs_status write_imatrix(const char *dir) {
  qs_status status = QS_OK;
  struct qs_config c;
  struct qs_imatrix m = {.chunk_count = 3, .chunk_size = 64};
  float s[172];
  char *p = join(dir, "imatrix.gguf");
  for (int i = 0; i < 172; i++) s[i] = 1.0f + (float)i / 64.0f;
  QS_TRY(qs_config_parse(&c, QS_FUZZ_STORIES_CONFIG, "stories260K config"));
  if (!(m.dataset = strdup("fuzz-seed"))) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(qs_imatrix_add(&m, "model.layers.0.self_attn.q_proj", s, 64, 128.0f));
  QS_TRY(qs_imatrix_add(&m, "model.layers.4.mlp.down_proj", s, 172, 128.0f));
  QS_TRY(qs_gguf_imatrix_write(p, &c, &m));
fail:
  qs_imatrix_free(&m);
  free(p);
  return status;
}

// hidden 32, 4 heads of 8, 2 kv heads, ffn 256, vocab 8; bytes of a fixed pattern.
static qs_status write_gguf_model(const char *dir) {
  qs_status status = QS_OK;
  struct qs_gguf_writer *g = NULL;
  static const struct { const char *name; int type, n_dims; int64_t ne[2]; } t[] = {
      {"token_embd.weight", QS_GGML_F16, 2, {32, 8}},      {"output_norm.weight", QS_GGML_F32, 1, {32, 1}},
      {"blk.0.attn_norm.weight", QS_GGML_F32, 1, {32, 1}}, {"blk.0.attn_q.weight", QS_GGML_Q8_0, 2, {32, 32}},
      {"blk.0.attn_k.weight", QS_GGML_Q4_0, 2, {32, 16}},  {"blk.0.attn_v.weight", QS_GGML_Q5_1, 2, {32, 16}},
      {"blk.0.attn_output.weight", QS_GGML_IQ4_NL, 2, {32, 32}}, {"blk.0.ffn_norm.weight", QS_GGML_BF16, 1, {32, 1}},
      {"blk.0.ffn_gate.weight", QS_GGML_Q4_1, 2, {32, 256}}, {"blk.0.ffn_up.weight", QS_GGML_Q5_0, 2, {32, 256}},
      {"blk.0.ffn_down.weight", QS_GGML_Q4_K, 2, {256, 32}},
  };
  enum { NT = sizeof(t) / sizeof(t[0]) };
  const char *tokens[8] = {"<unk>", "<s>", "</s>", "a", "b", "\xe2\x96\x81\x61", "ab", "<0x0A>"};
  float scores[8] = {0, 0, 0, -1, -2, -3, -4, -5};
  int32_t types[8] = {2, 3, 3, 1, 1, 1, 1, 6};
  unsigned char *buf = NULL;
  char *p = join(dir, "model.gguf");
  QS_TRY(qs_gguf_writer_init(&g));
  QS_TRY(qs_gguf_writer_set_string(g, "general.architecture", "llama"));
  QS_TRY(qs_gguf_writer_set_string(g, "general.name", "fuzz seed"));
  QS_TRY(qs_gguf_writer_set_u32(g, "general.alignment", 32));
  QS_TRY(qs_gguf_writer_set_u32(g, "llama.block_count", 1));
  QS_TRY(qs_gguf_writer_set_u32(g, "llama.context_length", 64));
  QS_TRY(qs_gguf_writer_set_u32(g, "llama.embedding_length", 32));
  QS_TRY(qs_gguf_writer_set_u32(g, "llama.feed_forward_length", 256));
  QS_TRY(qs_gguf_writer_set_u32(g, "llama.attention.head_count", 4));
  QS_TRY(qs_gguf_writer_set_u32(g, "llama.attention.head_count_kv", 2));
  QS_TRY(qs_gguf_writer_set_f32(g, "llama.rope.freq_base", 10000.0f));
  QS_TRY(qs_gguf_writer_set_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f));
  QS_TRY(qs_gguf_writer_set_u8(g, "fuzz.u8", 7));
  QS_TRY(qs_gguf_writer_set_i16(g, "fuzz.i16", -7));
  QS_TRY(qs_gguf_writer_set_i64(g, "fuzz.i64", -70000000000ll));
  QS_TRY(qs_gguf_writer_set_f64(g, "fuzz.f64", 0.5));
  QS_TRY(qs_gguf_writer_set_bool(g, "tokenizer.ggml.add_bos_token", 1));
  QS_TRY(qs_gguf_writer_set_string(g, "tokenizer.ggml.model", "llama"));
  QS_TRY(qs_gguf_writer_set_array_string(g, "tokenizer.ggml.tokens", tokens, 8));
  QS_TRY(qs_gguf_writer_set_array(g, "tokenizer.ggml.scores", QS_GGUF_F32, scores, 8));
  QS_TRY(qs_gguf_writer_set_array(g, "tokenizer.ggml.token_type", QS_GGUF_I32, types, 8));
  for (int i = 0; i < NT; i++) QS_TRY(qs_gguf_writer_add_tensor(g, t[i].name, t[i].type, t[i].n_dims, t[i].ne, NULL));
  QS_TRY(qs_gguf_writer_open(g, p));
  for (int i = 0; i < NT; i++) {
    uint64_t n = qs_gguf_writer_tensor_bytes(g, (size_t)i);
    QS_ALLOC(buf, n);
    // Small values: fp16 / bf16 / f32 scales stay finite (0x3c00 is 1.0 in fp16).
    for (uint64_t j = 0; j < n; j++) buf[j] = (unsigned char)((j * 37 + (uint64_t)i) & 0x3f);
    QS_TRY(qs_gguf_writer_write_tensor(g, (size_t)i, buf, n));
    free(buf);
    buf = NULL;
  }
  QS_TRY(qs_gguf_writer_commit(g));
fail:
  free(buf);
  qs_gguf_writer_free(g);
  free(p);
  return status;
}

static qs_status write_manifest(const char *dir) {
  char *p = join(dir, "manifest-out");
  qs_fuzz_out_write(p);
  qs_status status = qs_manifest_write(p);
  free(p);
  return status;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  if (qs_dir_make(argv[1]) != QS_OK || write_state(argv[1]) != QS_OK || write_tokens(argv[1]) != QS_OK ||
      write_imatrix(argv[1]) != QS_OK || write_gguf_model(argv[1]) != QS_OK || write_manifest(argv[1]) != QS_OK)
    return 1;
  return 0;
}
