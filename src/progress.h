// progress.h — what `qshard quantize` tells the operator while it runs: rank 0's progress lines
// (text, or with --log-json one JSON object per line: {"event": ..., "ts": unix seconds, ...}) and
// the Prometheus text file of --metrics-file (node-exporter textfile collector), rewritten
// atomically after every layer:
//   qshard_layers_done, qshard_layers_total, qshard_seconds_per_layer, qshard_eta_seconds,
//   qshard_peak_host_bytes, qshard_peak_device_bytes (GPU runs only), each a gauge labelled
//   {out="<--out>"} so that several runs on one node stay distinct series.
// Layers done count those restored by --resume; seconds per layer is the mean wall time of the layers
// this run quantized (state saves included); peaks are the maxima over the ranks.
#ifndef QS_PROGRESS_H
#define QS_PROGRESS_H

#include <jansson.h>

#include "qs_common.h"

struct qs_qrun;

struct qs_progress {
  int n_layers;   // layers of the model
  int first;      // layers already done when this run started (--resume)
  double t0;      // qs_time_now() at init: the start of this run's first layer
  int warned;     // the metrics file could not be rewritten (warned once, the run goes on)
};

// Collective: writes the metrics file a first time, so that a bad path fails before any work.
qs_status qs_progress_init(struct qs_progress *p, const struct qs_qrun *run, int first);
// Collective, after layer run->layer: its modules' lines (reports [first_report, n_reports)) and the
// layer line with layers done, seconds per layer, ETA and peak memory; the metrics file.
qs_status qs_progress_layer(struct qs_progress *p, const struct qs_qrun *run, int first_report, double seconds);
// Rank 0: one progress line: printf-style text, or with --log-json {"event": event, "ts": ..., fields...}.
// fields (an object, may be NULL) is stolen on every rank.
void qs_progress_note(const struct qs_qrun *run, const char *event, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// A JSON number, or null for NaN/inf (which JSON cannot carry).
json_t *qs_json_num(double v);

#endif
