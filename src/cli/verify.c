// verify.c — `qshard verify OUT [--quiet]`: every file of a qshard output checked against the SHA-256
// manifest that quantize wrote last (io/manifest.h) — after copying a checkpoint between
// filesystems, before serving it. Exit 0 when every file is there with its size and hash and nothing
// else is, 1 with one line per problem (MISSING, SIZE, CHANGED, EXTRA), 2 for usage. Runs on rank 0
// only (other ranks return at once).
#include <stdio.h>
#include <string.h>

#include "comm.h"
#include "cli/commands.h"
#include "io/manifest.h"

static void verify_usage(FILE *out) {
  fprintf(out, "usage: qshard verify OUT [--quiet]\n\n"
               "Checks every file of OUT against OUT/" QS_MANIFEST_NAME " (written by qshard quantize as\n"
               "its last step): its size and SHA-256, and that OUT holds no file the manifest does not list.\n"
               "Prints one line per file (only the problems with --quiet) and a summary; exit status 0 when\n"
               "all match, 1 otherwise.\n");
}

int qs_cmd_verify(struct qs_comm *world, int argc, char **argv) {
  const char *dir = NULL;
  int quiet = 0, bad = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      if (qs_comm_rank(world) == 0) verify_usage(stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--quiet")) quiet = 1;
    else if (argv[i][0] == '-' || dir) {
      if (qs_comm_rank(world) == 0) {
        fprintf(stderr, "qshard verify: unexpected argument '%s'\n", argv[i]);
        verify_usage(stderr);
      }
      return 2;
    } else {
      dir = argv[i];
    }
  }
  if (!dir) {
    if (qs_comm_rank(world) == 0) verify_usage(stderr);
    return 2;
  }
  if (qs_comm_rank(world) != 0) return 0;
  if (qs_manifest_verify(dir, quiet, &bad) != QS_OK) return 1;
  if (bad) {
    printf("verify: %s: %d problem(s) against its manifest\n", dir, bad);
    return 1;
  }
  printf("verify: %s: every file matches its manifest\n", dir);
  return 0;
}
