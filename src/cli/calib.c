// calib.c — `qshard calib`: calibration windows or an evaluation stream from text, tokenized in C with
// the model's tokenizer (io/calib_text.h has the semantics, io/tokenizer.h the tokenizers). Rank 0 does
// the work under mpirun; the file is written under a temporary name and renamed when complete.
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "comm.h"
#include "io/calib_text.h"
#include "io/tokens.h"

#define MAX_TEXTS 256

static void usage(FILE *out) {
  fprintf(out,
          "usage: qshard calib --model DIR (--text FILE [--text FILE ...] | --jsonl FILE [--field NAME]) --out FILE.h5\n"
          "                    [--samples 128] [--seqlen 2048] [--seed 0] [--mode random|docs] [--stream] [--lines]\n"
          "Tokenizes text with the model's tokenizer (DIR/tokenizer.model: SentencePiece BPE or unigram; else\n"
          "DIR/tokenizer.json: byte-level BPE; else DIR/tok512.bin: llama2.c; or a tokenizer file given as DIR),\n"
          "ids identical to the sentencepiece / tokenizers packages, and writes HDF5 /input_ids int32:\n"
          "  --text FILE        a UTF-8 text file, one document (repeatable: documents in order)\n"
          "  --jsonl FILE       one JSON object per line, one document each (empty ones skipped)\n"
          "  --field NAME       the text field of --jsonl objects (default text)\n"
          "  --mode random      (default) [samples, seqlen]: windows at seeded offsets of the token stream (the\n"
          "                     documents, each followed by EOS), each window BOS first when the tokenizer adds\n"
          "                     one; the stream stops after --max-tokens (default 8*samples*seqlen)\n"
          "  --mode docs        [samples, seqlen]: one window per document, from the first documents long enough\n"
          "  --stream           a 1-D evaluation stream instead (for qshard eval --data): BOS once, the documents\n"
          "                     with EOS between them; --samples/--seqlen/--seed do not apply\n"
          "  --lines            each line of a --text file encoded on its own, nothing between lines (llama2.c's\n"
          "                     convention; the shared stories260K *.tok512.h5 streams are made so)\n"
          "  --seed S           offsets from splitmix64 of a Weyl sequence (io/calib.h; default 0): the same\n"
          "                     inputs and seed give the same bytes, on any machine\n"
          "  --max-tokens N     random: read text until the stream holds N tokens\n"
          "The same windows come from `qshard quantize --calib-text FILE` (or --calib-jsonl) with the same\n"
          "--samples/--seqlen/--seed, without the file.\n");
}


enum { OPT_FIELD = 256, OPT_STREAM, OPT_LINES, OPT_MAX_TOKENS };

// 0 ok, 1 help printed, -1 error (printed).
static int parse_args(int argc, char **argv, struct qs_calib_text_opts *o, const char **texts, const char **out) {
  static const struct option opts[] = {
      {"model", 1, 0, 'm'}, {"text", 1, 0, 't'}, {"jsonl", 1, 0, 'j'}, {"field", 1, 0, OPT_FIELD},
      {"samples", 1, 0, 'n'}, {"seqlen", 1, 0, 'L'}, {"seed", 1, 0, 's'}, {"mode", 1, 0, 'M'},
      {"stream", 0, 0, OPT_STREAM}, {"lines", 0, 0, OPT_LINES}, {"max-tokens", 1, 0, OPT_MAX_TOKENS},
      {"out", 1, 0, 'o'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  long long v;
  int c, stream = 0;
  *o = (struct qs_calib_text_opts){.text = texts, .samples = 128, .seqlen = 2048};
  *out = NULL;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'm': o->tokenizer = optarg; break;
    case 't':
      if (o->n_text == MAX_TEXTS) { qs_cli_err("qshard calib: more than %d --text files\n", MAX_TEXTS); return -1; }
      texts[o->n_text++] = optarg;
      break;
    case 'j': o->jsonl = optarg; break;
    case OPT_FIELD: o->field = optarg; break;
    case 'o': *out = optarg; break;
    case OPT_STREAM: stream = 1; break;
    case OPT_LINES: o->lines = 1; break;
    case 'n': if (qs_cli_parse_num("qshard calib", "--samples", optarg, 1, 1 << 24, &v)) return -1; o->samples = (int)v; break;
    case 'L': if (qs_cli_parse_num("qshard calib", "--seqlen", optarg, 2, 1 << 22, &v)) return -1; o->seqlen = (int)v; break;
    case 's': if (qs_cli_parse_num("qshard calib", "--seed", optarg, 0, 1ll << 62, &v)) return -1; o->seed = (uint64_t)v; break;
    case OPT_MAX_TOKENS: if (qs_cli_parse_num("qshard calib", "--max-tokens", optarg, 1, 1ll << 40, &v)) return -1; o->max_tokens = v; break;
    case 'M':
      if (!strcmp(optarg, "random")) o->mode = QS_CALIB_TEXT_RANDOM;
      else if (!strcmp(optarg, "docs")) o->mode = QS_CALIB_TEXT_DOCS;
      else { qs_cli_err("qshard calib: --mode '%s': expected random or docs\n", optarg); return -1; }
      break;
    case 'h': usage(stdout); return 1;
    default: qs_cli_err("qshard calib: unknown or incomplete option '%s' (see --help)\n", argv[optind - 1]); return -1;
    }
  }
  if (optind < argc) { qs_cli_err("qshard calib: unexpected argument '%s'\n", argv[optind]); return -1; }
  if (!o->tokenizer || !*out) { qs_cli_err("qshard calib: --model and --out are required\n"); return -1; }
  if (!o->n_text == !o->jsonl) { qs_cli_err("qshard calib: give --text FILE(s) or --jsonl FILE (one of them)\n"); return -1; }
  if (o->field && !o->jsonl) { qs_cli_err("qshard calib: --field names the text of --jsonl objects\n"); return -1; }
  if (o->lines && !o->n_text) { qs_cli_err("qshard calib: --lines splits --text files\n"); return -1; }
  if (stream) o->mode = QS_CALIB_TEXT_STREAM;
  return 0;
}

static qs_status run(const struct qs_calib_text_opts *o, const char *out) {
  qs_status status = QS_OK;
  struct qs_calib cal = {0};
  struct qs_ids ids = {0};
  struct qs_calib_text_info info;
  double t0 = qs_time_now();
  if (o->mode == QS_CALIB_TEXT_STREAM) {
    QS_TRY(qs_calib_text_stream(o, &ids, &info));
    QS_TRY(qs_tokens_write(out, NULL, ids.v, 1, (int64_t)ids.n, 1));
    printf("qshard calib: %s: /input_ids int32 [%zu] (a stream) from %lld documents, %s tokenizer %s, BOS %d, EOS %d, "
           "%.2f s\n", out, ids.n, (long long)info.docs, qs_tokenizer_kind_name(info.kind), info.tokenizer, info.bos,
           o->lines ? -1 : info.eos, qs_time_now() - t0);
  } else {
    QS_TRY(qs_calib_text_windows(o, &cal, &info));
    QS_TRY(qs_tokens_write(out, NULL, cal.ids, cal.n, cal.seqlen, 2));
    printf("qshard calib: %s: /input_ids int32 [%d, %d] from %lld tokens of %lld documents (%s, %lld used), %s "
           "tokenizer %s, seed %" PRIu64 ", BOS %d, %.2f s\n", out, cal.n, cal.seqlen, (long long)info.stream_tokens,
           (long long)info.docs, o->mode == QS_CALIB_TEXT_DOCS ? "docs" : "random", (long long)info.docs_used,
           qs_tokenizer_kind_name(info.kind), info.tokenizer, o->seed, info.bos, qs_time_now() - t0);
  }
fail:
  qs_calib_free(&cal);
  qs_ids_free(&ids);
  return status;
}

int qs_cmd_calib(struct qs_comm *world, int argc, char **argv) {
  struct qs_calib_text_opts o;
  const char *texts[MAX_TEXTS], *out;
  qs_cli_set_quiet(qs_comm_rank(world) != 0);
  int pr = parse_args(argc, argv, &o, texts, &out);
  if (pr != 0) return pr > 0 ? 0 : 2;
  if (qs_comm_rank(world) != 0) return 0; // one writer; main.c joins the exit statuses
  return run(&o, out) == QS_OK ? 0 : 1;
}
