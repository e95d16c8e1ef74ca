// cli_util.c — shared command-line helpers (cli_util.h).
#include "cli/cli_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int g_quiet;

void qs_cli_set_quiet(int quiet) { g_quiet = quiet; }

void qs_cli_err(const char *fmt, ...) {
  va_list ap;
  if (g_quiet) return;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
}

int qs_cli_parse_num(const char *cmd, const char *opt, const char *v, long long lo, long long hi, long long *out) {
  char *end = NULL;
  long long x = strtoll(v, &end, 10);
  if (!*v || *end || x < lo || x > hi) {
    qs_cli_err("%s: %s '%s': expected an integer in [%lld, %lld]\n", cmd, opt, v, lo, hi);
    return -1;
  }
  *out = x;
  return 0;
}
