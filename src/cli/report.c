// report.c — `qshard report OUT [--out-dir D]`: OUT/quant_report.json (any finished `qshard quantize`
// output) rendered as D/report.svg (the per-module error per layer) and D/report.md (settings,
// totals, the worst modules, one row per layer), D = OUT by default. Each file is written under a
// temporary name and renamed when complete. Runs on rank 0 only (other ranks return at once; main()
// combines the exit codes). The rendering is run/report_doc.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "cli/commands.h"
#include "run/report_doc.h"

#define REPORT_SVG "report.svg"
#define REPORT_MD "report.md"

static void report_usage(FILE *out) {
  fprintf(out,
          "usage: qshard report OUT [--out-dir D]\n\n"
          "Reads OUT/quant_report.json (written by every qshard quantize) and writes, into D (default\n"
          "OUT; created when missing):\n"
          "  " REPORT_SVG "  the relative output error of every module per decoder layer, one line per module\n"
          "              kind (q, k, v, o, gate, up, down), log scale when the errors span more than a\n"
          "              decade (the method's loss when the report holds no error; a note when it holds\n"
          "              neither, as RTN without --calib)\n"
          "  " REPORT_MD "   settings, totals (sizes before and after, bits per parameter, perplexity and KLD\n"
          "              with --eval, modules kept dense, damping raises, time), the 10 worst modules,\n"
          "              one row per layer (mean and max error, worst module), the chart\n"
          "The sizes before come from the original model (quant_report.json \"model\") when it is still\n"
          "there. A missing, non-JSON or incomplete quant_report.json is an error naming the file.\n");
}

static qs_status report_write(const char *dir, const char *name, const char *text, size_t len) {
  qs_status status = QS_OK;
  char *path = qs_path_join(dir, name);
  if (!path) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(qs_file_write_all(path, text, len));
fail:
  free(path);
  return status;
}

// Both renderings are made before either file is written: an unreadable report leaves D untouched.
static qs_status report_run(const char *out, const char *dir) {
  qs_status status = QS_OK;
  struct qs_report_doc d = {0};
  char *svg = NULL, *md = NULL;
  size_t n_svg = 0, n_md = 0;
  QS_TRY(qs_report_doc_load(&d, out));
  QS_TRY(qs_report_doc_svg(&d, &svg, &n_svg));
  QS_TRY(qs_report_doc_markdown(&d, REPORT_SVG, &md, &n_md));
  QS_TRY(qs_dir_make(dir));
  QS_TRY(report_write(dir, REPORT_SVG, svg, n_svg));
  QS_TRY(report_write(dir, REPORT_MD, md, n_md));
  printf("wrote %s/" REPORT_SVG " and %s/" REPORT_MD " (%d modules, %d layers%s)\n", dir, dir, d.n_mods, d.n_layers,
         d.metric == QS_REPORT_METRIC_NONE ? ", no per-module error in the report" : "");
fail:
  qs_report_doc_free(&d);
  free(svg);
  free(md);
  return status;
}

int qs_cmd_report(struct qs_comm *world, int argc, char **argv) {
  const int r0 = qs_comm_rank(world) == 0;
  const char *out = NULL, *dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      if (r0) report_usage(stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--out-dir")) {
      if (i + 1 == argc) {
        if (r0) fprintf(stderr, "qshard report: --out-dir needs a directory\n");
        return 2;
      }
      dir = argv[++i];
      continue;
    }
    if (argv[i][0] == '-' || out) {
      if (r0) {
        fprintf(stderr, "qshard report: unexpected argument '%s'\n", argv[i]);
        report_usage(stderr);
      }
      return 2;
    }
    out = argv[i];
  }
  if (!out) {
    if (r0) report_usage(stderr);
    return 2;
  }
  if (!r0) return 0; // the files are written once
  if (report_run(out, dir ? dir : out) != QS_OK) return 1;
  fflush(stdout);
  return ferror(stdout) ? 1 : 0;
}
