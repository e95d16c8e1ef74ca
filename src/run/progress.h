// progress.h — what `qshard quantize` tells the operator while it runs: rank 0's progress lines
// (text, or with --log-json one JSON object per line: {"event": ..., "ts": unix seconds, ...}) and
// the Prometheus text file of --metrics-file (node-exporter textfile collector), rewritten
// atomically after every layer:
//   qshard_layers_done, qshard_layers_total, qshard_seconds_per_layer, qshard_eta_seconds,
//   qshard_peak_host_bytes, qshard_peak_device_bytes (GPU runs only), each a gauge labelled
//   {out="<--out>"} so that several runs on one node stay distinct series.
// Layers done count those restored by --resume; seconds per layer is the mean wall time of the layers
// this run quantized (state saves included); peaks are the maxima over the ranks.
// With --stages S > 1 (stages.h) the stages progress independently: each stage's leader prints its
// own module and layer lines (text prefixed "stage s/S:", JSON with "stage": s), the figures count the
// stage's layers and ranks, and the metrics go to one file per stage, FILE with ".stage<s>" inserted
// before a trailing ".prom" (appended otherwise), its gauges labelled {out="...", stage="s"}: a stage
// is a node, whose node-exporter collects its own file.
#ifndef QS_PROGRESS_H
#define QS_PROGRESS_H

#include <jansson.h>

#include "base/qs_common.h"

struct qs_qrun;

struct qs_progress {
  int n_layers;   // layers of the model (of this rank's stage)
  int first;      // layers already done when this run started (--resume), counted from the stage's first
  double t0;      // qs_time_now() at init: the start of this run's first layer
  int warned;     // the metrics file could not be rewritten (warned once, the run goes on)
};

// Collective over the stage: writes the metrics file a first time, so that a bad path fails before any
// layer. first: the first layer this run quantizes (the layers before it in the stage are done).
qs_status qs_progress_init(struct qs_progress *p, const struct qs_qrun *run, int first);
// Collective over the stage, after layer run->layer: its modules' lines (reports [first_report,
// n_reports)) and the layer line with layers done, seconds per layer, ETA and peak memory; the metrics.
qs_status qs_progress_layer(struct qs_progress *p, const struct qs_qrun *run, int first_report, double seconds);
// Rank 0: one progress line: printf-style text, or with --log-json {"event": event, "ts": ..., fields...}.
// fields (an object, may be NULL) is stolen on every rank.
void qs_progress_note(const struct qs_qrun *run, const char *event, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// The same for a line about this rank's stage: printed by every stage leader (data rank 0) when
// S > 1, text prefixed "stage s/S: ", JSON with "stage": s; exactly qs_progress_note when S = 1.
void qs_progress_stage_note(const struct qs_qrun *run, const char *event, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// A JSON number, or null for NaN/inf (which JSON cannot carry).
json_t *qs_json_num(double v);

#endif
