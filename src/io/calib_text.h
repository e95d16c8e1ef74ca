// calib_text.h — calibration and evaluation tokens from text, with the model's tokenizer (tokenizer.h):
// `qshard calib` and `qshard quantize --calib-text / --calib-jsonl`. The semantics are those of
// scripts/make_calib.py:
//   documents  each --text file is one document (read in pieces of QS_CALIB_TEXT_PIECE bytes cut at a
//              line end, each piece encoded on its own); each --jsonl line is one document, its `field`
//              (documents that are empty or only whitespace are skipped); with `lines` every line of a
//              --text file is encoded on its own, without its "\n" or "\r\n", with nothing between lines
//              (llama2.c's convention: the shared stories260K *.tok512.h5 streams are made so);
//   stream     the documents' ids (no special tokens), each followed by EOS when the tokenizer has one
//              (not with `lines`); reading stops once it holds max_tokens (default 8 * samples * seqlen);
//   random     `samples` windows of seqlen ids: BOS (when the tokenizer adds one) then seqlen - 1 (else
//              seqlen) stream ids from offset o_i = qs_calib_offset(seed, i, L - body + 1) (calib.h:
//              splitmix64 of a Weyl sequence; it does not reproduce make_calib's numpy draws);
//   docs       one window per document: the first `samples` documents with at least `body` ids, in
//              order, window i at offset qs_calib_offset(seed, i, len_i - body + 1) inside document i;
//   stream out the 1-D evaluation stream: BOS once (when the tokenizer adds one), then every document,
//              EOS between documents (none after the last; none with `lines`) — as the shared *.h5
//              token streams are.
#ifndef QS_CALIB_TEXT_H
#define QS_CALIB_TEXT_H

#include <stdint.h>

#include "base/qs_common.h"
#include "io/calib.h"
#include "io/tokenizer.h"

#define QS_CALIB_TEXT_PIECE (4u << 20) // bytes of a --text file encoded at once (cut at a line end)

enum qs_calib_text_mode { QS_CALIB_TEXT_RANDOM = 0, QS_CALIB_TEXT_DOCS, QS_CALIB_TEXT_STREAM };

struct qs_calib_text_opts {
  const char *tokenizer;      // model directory or tokenizer file
  const char *const *text;    // --text files, n_text of them (or none)
  int n_text;
  const char *jsonl;          // --jsonl file (or NULL)
  const char *field;          // its text field (NULL: "text")
  int lines;                  // each line of a --text file its own piece, nothing between lines
  int mode;                   // enum qs_calib_text_mode
  int samples, seqlen;        // random and docs
  uint64_t seed;
  int64_t max_tokens;         // random: stop reading at this many stream ids (0: 8 * samples * seqlen)
};

// What was read (for the command's summary line).
struct qs_calib_text_info {
  int64_t stream_tokens, docs, docs_used;
  int32_t bos, eos;           // -1: none (bos: as put first in each window / the stream)
  char tokenizer[512];
  int kind;                   // enum qs_tokenizer_kind
};

// random or docs: [samples, seqlen] windows into out (offsets NULL).
qs_status qs_calib_text_windows(const struct qs_calib_text_opts *o, struct qs_calib *out, struct qs_calib_text_info *info);
// stream: the 1-D stream into out.
qs_status qs_calib_text_stream(const struct qs_calib_text_opts *o, struct qs_ids *out, struct qs_calib_text_info *info);

struct qs_comm;
// qs_calib_text_windows on rank 0 of c, the samples broadcast to every rank (collective; every rank
// returns the same status). Ids are checked against vocab (the model's vocabulary size).
qs_status qs_calib_text_share(struct qs_comm *c, const struct qs_calib_text_opts *o, int vocab, struct qs_calib *out);

#endif
