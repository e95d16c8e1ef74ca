// main.c — qshard command line: `qshard <command> [options]`, under mpirun or alone.
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "comm.h"
#include "cli/commands.h"

static const struct {
  const char *name;
  int (*run)(struct qs_comm *, int, char **);
  const char *help;
} k_commands[] = {
    {"inspect", qs_cmd_inspect, "FILE|DIR            tensors, dtypes, shapes, bytes of safetensors / HDF5"},
    {"generate", qs_cmd_generate, "--model DIR --tokens N   greedy decoding from BOS"},
    {"eval", qs_cmd_eval, "--model DIR --data F.h5 [--seqlen 512]   perplexity"},
    {"quantize", qs_cmd_quantize, "--model DIR --calib F.h5 --out DIR [--method gptq|rtn --bits 4 ...]"},
    {"report", qs_cmd_report, "OUT [--out-dir D]   report.svg + report.md from OUT/quant_report.json"},
    {"plan", qs_cmd_plan, "--model DIR|--config NAME [quantize options] --np P   memory, disk, time before a run"},
    {"verify", qs_cmd_verify, "OUT [--quiet]       every file of OUT against its SHA-256 manifest"},
    {"calib", qs_cmd_calib, "--model DIR --text F|--jsonl F --out F.h5 [--samples N --seqlen L]   tokens from text"},
    {"synth", qs_cmd_synth, "--config NAME [--layers N] [--seed S] --out DIR   random weights, real shapes"},
};
enum { N_COMMANDS = sizeof(k_commands) / sizeof(k_commands[0]) };

static void usage(FILE *out) {
  fprintf(out, "usage: qshard <command> [options]   (qshard <command> --help for details)\n\ncommands:\n");
  for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-9s %s\n", k_commands[i].name, k_commands[i].help);
  fprintf(out, "\nqshard --version: the version and the build's options (CUDA, NCCL, archs)\n");
  fprintf(out, "--debug (with any command): the source call chain under each error (also QS_BACKTRACE=1)\n");
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "--version")) {
    printf("qshard %s (%s; Open MPI, HDF5 %d.%d.%d, OpenBLAS)\n", QS_VERSION, QS_BUILD_INFO, H5_VERS_MAJOR,
           H5_VERS_MINOR, H5_VERS_RELEASE);
    return 0;
  }
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  // --debug, anywhere after the command: the source call chain under errors (common.c qs_trace).
  for (int i = 2; i < argc; i++)
    if (!strcmp(argv[i], "--debug")) {
      qs_log_set_debug(1);
      memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof(char *)); // argv[argc] (NULL) moves too
      argc--, i--;
    }
  int idx = -1;
  for (int i = 0; i < N_COMMANDS; i++)
    if (!strcmp(argv[1], k_commands[i].name)) idx = i;
  if (idx < 0) {
    fprintf(stderr, "qshard: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
  }
  // A file over the size limit (RLIMIT_FSIZE) fails its write with EFBIG, which is reported with the
  // path like any write error, instead of killing the process by SIGXFSZ mid-file.
  signal(SIGXFSZ, SIG_IGN);
  struct qs_comm *world = NULL;
  if (qs_comm_init(&argc, &argv, &world) != QS_OK) return 1;
  // Several ranks: errors are printed once, after the command, by qs_comm_settle_failure.
  if (qs_comm_size(world) > 1) qs_err_defer(1);
  int rc = k_commands[idx].run(world, argc - 1, argv + 1);
  if (qs_comm_size(world) > 1) {
    // A failed rank meets the other failed ranks for 10 s (ranks that find the same bad input fail
    // within moments of each other), else ends the job: a rank that failed alone must not leave its
    // peers blocked in a collective. A stop by a signal (QS_EXIT_STOPPED) is no failure: every rank
    // of the stage saved its state and returns it.
    if (rc != 0 && rc != QS_EXIT_STOPPED) {
      rc = qs_comm_settle_failure(world, rc, 10.0);
    } else {
      int ok = rc == 0;
      if (qs_comm_allreduce_and(world, &ok) == QS_OK && !ok && rc == 0) rc = 1;
    }
  }
  qs_comm_finalize(world);
  return rc;
}
