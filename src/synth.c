// synth.c — PLACEHOLDER until its owner lands the real implementation.
#include <stdio.h>
#include "commands.h"
int qs_cmd_synth(struct qs_comm *world, int argc, char **argv) {
  (void)world; (void)argc; (void)argv;
  fprintf(stderr, "qshard synth: not built yet\n");
  return 1;
}
