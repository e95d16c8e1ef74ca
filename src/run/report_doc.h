// report_doc.h — `qshard report`: a finished run's OUT/quant_report.json (written by quantize.c
// report_json) read back and rendered as a Markdown summary (report_doc.c) and a self-contained SVG
// chart of the per-module error per layer (report_svg.c). Rendering only reads the parsed document;
// the command (cli/report.c) decides where the text goes.
//
// Required fields of quant_report.json (a missing or mistyped one is an error naming the file and the
// field): model, method (strings), bits, group_size, samples, seqlen (integers), seconds (number),
// modules (array of objects: name (string), layer (integer >= 0), out_features, in_features,
// damp_raises (integers), loss, rel_output_error (number or null), packed (boolean)). Optional, shown
// when present: formats, act_order, sym, scale_dtype, damp, ranks, eval {data, ppl, windows,
// reference {ppl, kld_mean, kld_p99, top1_agreement}}.
#ifndef QS_REPORT_DOC_H
#define QS_REPORT_DOC_H

#include <jansson.h>

#include "base/qs_common.h"

#define QS_REPORT_MAX_KINDS 16 // module kinds plotted apart (q, k, v, o, gate, up, down, ...); more share "other"
#define QS_REPORT_MAX_OUTS 8   // output formats whose sizes are shown

// What the chart and the tables rank modules by: the relative output error ||WX - QX|| / ||WX|| when
// any module has one, else the method's loss, else nothing (RTN without --calib records neither).
enum qs_report_metric { QS_REPORT_METRIC_REL_ERR, QS_REPORT_METRIC_LOSS, QS_REPORT_METRIC_NONE };

struct qs_report_module {
  const char *name;     // HF module path, e.g. model.layers.3.mlp.down_proj (owned by the document's JSON)
  int layer, kind;      // kind: index into qs_report_doc.kinds
  long long n, k;       // out_features, in_features
  double loss, rel_err; // NAN where the report holds null
  double damp;          // NAN when absent
  int damp_raises, packed;
};

struct qs_report_out {
  const char *format;   // its --format name
  char *dir;            // where quantize wrote it (OUT or OUT/<format>)
  double bytes;         // its weight files (.safetensors, .gguf), 0 when none were found
};

struct qs_report_doc {
  char *file;           // the quant_report.json read (named in messages)
  json_t *root;         // the parsed file; the strings below point into it
  const char *model, *method;
  const char *act_order, *scale_dtype; // NULL when absent (older reports)
  int bits, group_size, sym;           // sym: 1 symmetric, 0 asymmetric, -1 unknown
  int samples, seqlen, ranks;          // ranks 0: unknown
  double seconds, damp;                // layers' quantize time (wall); damp NAN when absent
  struct qs_report_module *mods;       // in file order
  int n_mods, n_layers;                // n_layers: max layer + 1 (0 without modules)
  char kinds[QS_REPORT_MAX_KINDS][24]; // "q", "k", ..., in order of first appearance
  int n_kinds;
  enum qs_report_metric metric;
  // --eval (NAN / NULL when absent)
  const char *eval_data;
  double ppl, fp_ppl, kld, kld_p99, top1;
  long long eval_windows;
  // sizes: the original checkpoint (NAN when it is not found at `model`) and each output format
  double params, bytes_in;
  struct qs_report_out outs[QS_REPORT_MAX_OUTS];
  int n_outs;
};

// Reads out_dir/quant_report.json (out_dir: a `qshard quantize --out` directory) and, for the
// sizes, the weight files of each format's directory and the original checkpoint at `model` when
// it is still there. QS_ERR_IO (no such file), QS_ERR_FORMAT (not JSON, a field missing or of the
// wrong type): one error line naming the file. On error *d is freed; on success free it with
// qs_report_doc_free.
qs_status qs_report_doc_load(struct qs_report_doc *d, const char *out_dir);
void qs_report_doc_free(struct qs_report_doc *d);

// The plotted value of module m (rel_err or loss per d->metric; NAN when it has none).
double qs_report_doc_value(const struct qs_report_doc *d, const struct qs_report_module *m);
// The metric's name for axis labels and table headers ("relative output error", "loss").
const char *qs_report_doc_metric_name(const struct qs_report_doc *d);

// The renderings, malloc'ed, NUL-terminated text (*len bytes without the NUL); QS_ERR_OOM on failure.
// Markdown: settings, totals, the 10 worst modules, one row per layer, and an image link to svg_name.
qs_status qs_report_doc_markdown(const struct qs_report_doc *d, const char *svg_name, char **text, size_t *len);
// SVG 1.1, no external references: one polyline (+ circle markers) per module kind with a value,
// a legend, ticked axes (log y when the values span more than a decade), a title with the settings;
// without any value a note saying so.
qs_status qs_report_doc_svg(const struct qs_report_doc *d, char **text, size_t *len);

#endif
