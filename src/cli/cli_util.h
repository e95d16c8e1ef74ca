// cli_util.h — what the command-line parsers share. Every rank parses the same command line, so a
// parse error is printed by one rank alone: qs_cli_set_quiet(rank != 0) before parsing.
#ifndef QS_CLI_UTIL_H
#define QS_CLI_UTIL_H

void qs_cli_set_quiet(int quiet);
// fprintf(stderr, ...) unless quiet.
void qs_cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// *out = the integer v of option opt if it lies in [lo, hi]; else "<cmd>: <opt> '<v>': expected an
// integer in [lo, hi]" (once) and -1.
int qs_cli_parse_num(const char *cmd, const char *opt, const char *v, long long lo, long long hi, long long *out);

#endif
