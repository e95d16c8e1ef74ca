// generate.c — `qshard generate`: greedy decoding with the float32 CPU forward, to check the forward
// pass against a reference (e.g. stories260K/greedy_ids.json from transformers).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "cli/commands.h"
#include "model/model.h"

struct gen_opts {
  const char *model;
  long tokens;
  int32_t *prompt;  // NULL: [BOS]
  int n_prompt;
};

static void gen_usage(FILE *out) {
  fprintf(out,
          "usage: qshard generate --model DIR --tokens N [--prompt-ids ID,ID,...]\n"
          "  Greedy decoding (argmax of the logits, the lowest id on ties) in float32 on the CPU.\n"
          "  The sequence starts with --prompt-ids as given (default: the config's bos_token_id, or 1),\n"
          "  then N tokens are appended; decoding stops early at max_position_embeddings (EOS does not\n"
          "  stop it). Prints {\"generated_ids\": [...]} (the start ids first) on stdout, from rank 0.\n"
          "  No KV cache: every step recomputes the whole prefix (O(n^2) tokens; meant for small models).\n");
}

static qs_status parse_long(const char *s, long lo, long hi, long *out, const char *what) {
  qs_status status = QS_OK;
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    QS_FAIL(QS_ERR_ARG, "generate: %s '%s' must be an integer in [%ld, %ld]", what, s, lo, hi);
  *out = v;
fail:
  return status;
}

// "ID,ID,..." -> o->prompt; every entry must be a non-negative integer (no empty entries).
static qs_status parse_prompt(const char *s, struct gen_opts *o) {
  qs_status status = QS_OK;
  int n = 1;
  for (const char *p = s; *p; p++) n += *p == ',';
  QS_ALLOC(o->prompt, n);
  const char *p = s;
  for (int i = 0; i < n; i++) {
    char *end = NULL;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (errno || end == p || (*end && *end != ',') || v < 0 || v > 0x7fffffff)
      QS_FAIL(QS_ERR_ARG, "generate: --prompt-ids '%s': entry %d is not a non-negative integer", s, i + 1);
    o->prompt[i] = (int32_t)v;
    p = end + 1;
  }
  o->n_prompt = n;
fail:
  return status;
}

// Returns QS_OK with o->model == NULL after printing --help.
static qs_status parse_args(int argc, char **argv, struct gen_opts *o) {
  qs_status status = QS_OK;
  memset(o, 0, sizeof(*o));
  o->tokens = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      gen_usage(stdout);
      o->model = NULL;
      return QS_OK;
    }
    if (i + 1 >= argc) QS_FAIL(QS_ERR_ARG, "generate: unknown option or missing value: '%s' (see --help)", a);
    if (!strcmp(a, "--model")) o->model = argv[++i];
    else if (!strcmp(a, "--tokens")) QS_TRY(parse_long(argv[++i], 0, 1L << 30, &o->tokens, "--tokens"));
    else if (!strcmp(a, "--prompt-ids")) QS_TRY(parse_prompt(argv[++i], o));
    else QS_FAIL(QS_ERR_ARG, "generate: unknown option '%s' (see --help)", a);
  }
  if (!o->model || o->tokens < 0) QS_FAIL(QS_ERR_ARG, "generate: --model DIR and --tokens N are required");
fail:
  return status;
}

// Lowest index of the maximum (ties go to the lowest id, as torch.argmax does on CPU).
static int argmax(const float *v, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[best]) best = i;
  return best;
}

static qs_status check_start(const struct qs_model *m, const struct gen_opts *o, int32_t *ids, int *n) {
  qs_status status = QS_OK;
  const struct qs_config *c = &m->cfg;
  if (!o->prompt) {
    ids[0] = c->bos_id >= 0 ? c->bos_id : 1;
    *n = 1;
  } else {
    if (o->n_prompt > c->max_pos)
      QS_FAIL(QS_ERR_ARG, "generate: %d prompt ids exceed max_position_embeddings %d of %s", o->n_prompt,
              c->max_pos, m->dir);
    memcpy(ids, o->prompt, (size_t)o->n_prompt * sizeof(*ids));
    *n = o->n_prompt;
  }
  for (int i = 0; i < *n; i++)
    if (ids[i] < 0 || ids[i] >= c->vocab)
      QS_FAIL(QS_ERR_ARG, "generate: start id %d at position %d is outside the vocabulary [0, %d) of %s",
              ids[i], i, c->vocab, m->dir);
fail:
  return status;
}

static qs_status print_ids(const int32_t *ids, int n) {
  qs_status status = QS_OK;
  printf("{\"generated_ids\": [");
  for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
  printf("]}\n");
  if (fflush(stdout) != 0 || ferror(stdout)) QS_FAIL(QS_ERR_IO, "generate: cannot write the ids to stdout");
fail:
  return status;
}

// Greedy decoding of `o` on `m` (layers loaded); prints the ids.
static qs_status decode(struct qs_model *m, const struct gen_opts *o) {
  qs_status status = QS_OK;
  const struct qs_config *c = &m->cfg;
  int32_t *ids = NULL;
  float *x = NULL, *logits = NULL;
  struct qs_fwd ws = {0};
  int n = 0;
  QS_ALLOC(ids, c->max_pos);
  QS_TRY(check_start(m, o, ids, &n));
  const int total = (int)QS_MIN((long)n + o->tokens, (long)c->max_pos);
  QS_ALLOC(x, (size_t)total * c->hidden);
  QS_ALLOC(logits, c->vocab);
  QS_TRY(qs_fwd_init(&ws, c, 1, total));
  for (; n < total; n++) {
    qs_model_embed(m, ids, n, x);
    QS_TRY(qs_model_forward_layers(m, x, n, &ws));
    QS_TRY(qs_model_logits(m, x + (size_t)(n - 1) * c->hidden, logits, 1, ws.xn));  // last position only
    ids[n] = argmax(logits, c->vocab);
  }
  QS_TRY(print_ids(ids, n));
fail:
  qs_fwd_free(&ws);
  free(ids);
  free(x);
  free(logits);
  return status;
}

static qs_status generate_rank0(const struct gen_opts *o) {
  qs_status status = QS_OK;
  struct qs_model m = {0};
  QS_TRY(qs_model_open(&m, o->model));
  QS_TRY(qs_model_load_layers(&m));
  QS_TRY(decode(&m, o));
fail:
  qs_model_close(&m);
  return status;
}

int qs_cmd_generate(struct qs_comm *world, int argc, char **argv) {
  qs_status status = QS_OK;
  struct gen_opts o;
  QS_TRY(parse_args(argc, argv, &o));  // same argv on every rank: all fail or none
  if (o.model && qs_comm_rank(world) == 0) status = generate_rank0(&o);
  // Decoding is one sequential chain, run by rank 0; the others wait without spinning a core.
  if (o.model && qs_comm_size(world) > 1 && qs_comm_barrier_idle(world) != QS_OK && status == QS_OK)
    status = QS_ERR_COMM;
fail:
  free(o.prompt);
  return status == QS_OK ? 0 : 1;
}
