// plan.h — `qshard plan`: what a `qshard quantize` run will need before it runs — GPU and host memory
// per rank, disk (input read, outputs written, resume state), seconds per layer and end to end — from
// the model's shapes (a built-in shape name or a model directory's config.json and safetensors
// headers) and the constants measured on the card (plan.c k_plan_consts: one table, each constant
// with the benchmark that produced it).
//
// The model follows the program, not a rule of thumb (file references are to src/run/ unless
// named):
//  - GPU (engine_cuda.c, engine_module_cuda.c, model/forward_cuda.c, kernels/gptq_*.cu): the residual
//    stream x fp32 [B, T, hidden] of the rank's samples (B from engine_cuda.h's 16-leaf split), att
//    [B, T, H*D] and, when reserve_act's rule finds room, act [B, T, inter] in the compute dtype, one
//    sequence's workspace (qs_dseq), the layer (as stored, plus a copy in the compute dtype when they
//    differ); per linear group the Hessian buffers (rank 0: sum + one leaf; rank r > 0: sum + one per
//    own leaf), the factor (H + U, + an fp64 copy with --factor-precision fp64), then per module the
//    row buffers (struct dmod) and the solve's or the output error's stream-ordered scratch.
//  - Host: the embeddings and lm_head as fp32 (every rank), the weight reader's two pinned layer
//    slots, on the stage leader the pinned record slots and the layer's record file, a copy of x
//    during a resume-state save; at the end the writers' shards. Mapped checkpoint pages are page
//    cache: counted in RSS, reclaimable, shown apart.
//  - Time per layer: phases as engine_cuda.c logs them (load, forward, hessian, factor, solve,
//    gather, record) from FLOP and byte counts at the measured rates, on the slowest rank (rank 0
//    holds the most leaves and row tiles); the Hessian's chain over the ranks and the all-gathers at
//    interconnect rates.
#ifndef QS_PLAN_H
#define QS_PLAN_H

#include <jansson.h>

#include "run/run.h"

// One constant of the model: value in `unit`, and where it comes from (the benchmark, command and
// section; "NOT MEASURED" for the nominal ones a GPU run must still measure).
struct qs_plan_const {
  const char *name, *unit;
  double value;
  const char *source;
};
const struct qs_plan_const *qs_plan_consts(int *n);

// The model's shapes and stored sizes.
struct qs_plan_shape {
  struct qs_config cfg;
  char name[256];           // the shape name or the directory
  int n_out[QS_LIN_COUNT], n_in[QS_LIN_COUNT], bias[QS_LIN_COUNT];
  double layer_bytes;       // the largest decoder layer as the weight reader holds it (stored dtypes;
                            // fp32 for a linear stored quantized)
  double embed_bytes, head_bytes, other_bytes; // embed_tokens, lm_head (0 when tied), the rest outside layers
  double in_bytes;          // the checkpoint's files
  double wsize;             // bytes per weight of the linears as stored (4 for a quantized input)
  long long layer_params;   // parameters of one decoder layer
  long long *params;        // [n_layers] parameters per layer (the stages' split)
  struct qs_ckpt ckpt;      // --model: the checkpoint's headers (its data is never read); empty otherwise
};
// "tiny|llama-3-8b|llama-3-70b|llama-3.1-405b": the shapes `qshard synth --config` writes (bf16).
const char *qs_plan_shape_names(void);
qs_status qs_plan_shape_preset(struct qs_plan_shape *s, const char *name);
// From DIR/config.json and the safetensors headers of DIR's checkpoint (no tensor data is read).
qs_status qs_plan_shape_dir(struct qs_plan_shape *s, const char *dir);
void qs_plan_shape_free(struct qs_plan_shape *s);

// The machine the run goes to, and the rates of its disk (bytes, bytes per second).
struct qs_plan_site {
  int np, gpus_per_node;   // --np P, --gpus-per-node G (ranks per node; for --device cpu too)
  double gpu_bytes;        // memory of one card
  double host_bytes;       // memory of one node
  int cores_per_node;      // --device cpu: OpenBLAS threads of a node
  double read_bps, write_bps; // checkpoint read (cold), output write
  double out_free;         // free bytes at --out's filesystem, -1 when unknown
};

enum { QS_PLAN_PH_LOAD, QS_PLAN_PH_FORWARD, QS_PLAN_PH_HESSIAN, QS_PLAN_PH_FACTOR, QS_PLAN_PH_SOLVE,
       QS_PLAN_PH_GATHER, QS_PLAN_PH_RECORD, QS_PLAN_PH_COUNT };
extern const char *const qs_plan_phase_names[QS_PLAN_PH_COUNT];

#define QS_PLAN_MAX_WARN 16

struct qs_plan {
  int cuda, P, S, D, nodes;      // engine; ranks, stages, data ranks per stage, nodes
  int layers;                    // layers of the largest stage
  long long B, n_samples;        // samples on rank 0 (the most) of n; 0 without calibration
  int T;                         // sequence length
  int act_stored;                // cuda: the down_proj inputs stay on the device (reserve_act's rule)
  // GPU, per rank (bytes): the worst rank of a stage; peak = persistent + the largest phase.
  struct {
    double ctx, x, att, act, seq, layer, persistent; // persistent: their sum
    double hessian, factor, solve, scratch;          // the phases' extra at their largest group
    double peak, sampled; // peak: every allocation; sampled: at phase ends, what the log's
                          // "peak device memory" sees (stream-ordered scratch is freed by then)
    const char *peak_phase; // "hessian", "factor" or "solve"
    int rank;               // the data rank it is on (0: most samples; 1: most Hessian leaves held)
  } gpu;
  // Host, per rank (bytes).
  struct {
    double base, embed, slots, records, writer, xsave; // cuda (stage leader: records, writer)
    double x, fwd, layer, hessian, module;            // cpu engine
    double output, peak, mapped;                      // output: the writers at the end; mapped: page cache
  } host;
  // Disk (bytes).
  struct {
    double in, read_node;            // the checkpoint; read per node (every rank maps all of it)
    double out[QS_MAX_FORMATS], out_total, packed;
    double state_layers, state_x;    // OUT.partial/.state: every layer's records; x of every rank (x2 at a save)
    double peak, free;               // the most OUT.partial holds at once; free at --out (-1 unknown)
  } disk;
  // Seconds.
  struct {
    double ph[QS_PLAN_PH_COUNT], layer, read_layer; // per layer (slowest rank); the reader's cold read
    double start, layers, saves, boundary, output, total;
    int n_saves;
  } t;
  char warn[QS_PLAN_MAX_WARN][320];
  int n_warn;
};

// The plan of `qshard quantize` with options a (as cli/quantize.c parses them; device cpu or cuda)
// on the machine `site`. Options the run would refuse are warnings, not errors.
qs_status qs_plan_compute(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan_site *site,
                          struct qs_plan *p);
json_t *qs_plan_json(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan_site *site,
                     const struct qs_plan *p);

// plan_shape.c: the formats settled as the run settles them (--tp adds trtllm; the scale dtype; each
// format's grid constraint; a format's refusal is written into warn, "" when none); the bytes of
// format i's output; the bytes of the record of module `lin` of layer l in its layer file, and
// (*unpacked) as the engine holds it (a code per byte).
qs_status qs_plan_settle_formats(const struct qs_plan_shape *s, struct qs_run_opts *a, char *warn, size_t cap);
double qs_plan_format_bytes(const struct qs_plan_shape *s, const struct qs_run_opts *a, int i);
double qs_plan_record_bytes(const struct qs_plan_shape *s, const struct qs_run_opts *a, int l, int lin,
                            double *unpacked);

#endif
