// pipeline.h — one decoder layer of `qshard quantize`, the same for every engine and method
// (DESIGN.md "Numerics"): the layer's linear groups in the layout's true-sequential order (q/k/v,
// o, gate/up, down; io/layout.h); for each group the forward up to its input and its Hessian (one
// per group, shared by its modules), the method's prep, then each module quantized (rows over the
// ranks) and its record handed to the layer's record file; at the end the layer output from the
// quantized modules. One forward per layer suffices: every group sees the earlier ones quantized.
#ifndef QS_PIPELINE_H
#define QS_PIPELINE_H

#include "run/run.h"

// Collective over the stage: layer l through run->engine with run->a->method.
qs_status qs_pipeline_layer(struct qs_qrun *run, int l);

#endif
