// output.h — the outputs of `qshard quantize`: once every layer is quantized, each format the run
// chose (--format, formats/format.h) is written from the records in the layer files of the resume
// state (qstate.h) — the same records whatever the engine, rank count or stage layout, so the same
// bytes. Places: the first format that writes a model directory goes to OUT itself, every other
// format to OUT/<name> (TensorRT-LLM rank files: OUT/trtllm). Single-writer formats are written by
// rank i % P (the i-th format), the TensorRT-LLM rank files by their writer ranks, all at once.
#ifndef QS_OUTPUT_H
#define QS_OUTPUT_H

#include "run/run.h"

// The directory format i of the run writes to under the output directory `top` (malloc'ed).
char *qs_output_dir(const struct qs_run_opts *a, int i, const char *top);
// Collective over world, after the last layer (and the stages' join): every format written into
// tmp (OUT.partial); the reports of the modules the first format kept dense get packed = 0 (rank 0).
qs_status qs_output_write(struct qs_qrun *run, const char *tmp);

#endif
