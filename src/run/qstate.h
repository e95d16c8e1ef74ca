// qstate.h — the resume state of `qshard quantize` (DESIGN.md "Files: Resume state").
//
// A run always works in OUT.partial/ (renamed to OUT when complete), so a rerun finds it:
//   --resume, OUT.partial/ with a state  -> continues after its last saved layer
//   --resume, no OUT.partial/ (or no state in it yet) -> starts from scratch
//   no --resume, OUT.partial/ exists     -> error naming it (use --resume or --force)
//   --force without --resume             -> OUT.partial/ is discarded
// Layout of OUT.partial/.state/ (removed before the final rename):
//   layer-LLLLL/model.safetensors  rank 0, written when layer L completes: the neutral record of
//                                  each of its modules (quant/record.h: codes, scales, zeros, g_idx,
//                                  grid), in no output format. Every output format is written from
//                                  these files once all layers are done (output.h), so no layer is
//                                  kept in memory and an interrupted run writes the same bytes.
//   x-cC-rankR-of-P.h5             rank R: dataset /x float32 [s1-s0, T, hidden], the residual
//                                  stream of its calibration samples after C completed layers;
//                                  attributes completed, rank, ranks, s0, s1, fingerprint.
//   state.h5                       rank 0: attributes format ("qshard-resume-2"), completed (C),
//                                  n_layers, ranks, fingerprint (compact JSON, sorted keys: a hash
//                                  of the model's and the calibration file's names, sizes and
//                                  sampled content (qstate.c hash_file), every option
//                                  that changes the output, rank count, engine and precision);
//                                  dataset /reports (compound, one row per quantized module of
//                                  layers < C; fields of struct qs_qreport).
// Save protocol (a kill at any instant leaves the old or the new state, both consistent): every
// rank writes its x file under a temporary name and renames it; all ranks agree that every file is
// in place; rank 0 writes state.h5 (temporary name, fsync, rename); all ranks learn it committed
// and remove their x file of the previous save. The x files carry C in their name, so the old
// state's files stay intact until the new state.h5 names the new ones.
// Stages (--stages S > 1, stages.h): each stage saves and restores its own state with the protocol
// above among its ranks, its leader (data rank 0) in the place of rank 0: the layer files of its
// layers, its state file state-stage<s>-of-<S>.h5 (completed = the stage's first layer l0 + layers
// done; l0 alone: only its boundary activations, saved right after the boundary pass), and x files
// named by world rank. The fingerprint holds S, so a state is resumed only by the same grid.
#ifndef QS_QSTATE_H
#define QS_QSTATE_H

#include "base/qs_common.h"
#include "io/safetensors.h"
#include "quant/record.h"

struct qs_qrun;
struct qs_qreport;

struct qs_qstate {
  char *partial;      // OUT.partial
  char *dir;          // OUT.partial/.state
  char *fp;           // fingerprint of this run (compact JSON text, sorted keys)
  int completed;      // layers whose results are in the layer files; the layer loop starts here
                      // (with stages: this stage's layers [l0, completed) are done)
  int saved;          // completed count that state.h5 records (0: none)
  double last_save;   // qs_time_now() of the last save (or of the start)
  int stop_signal;    // the stop signal (stop.h) that ended the layer loop after a save (0: none)
  struct qs_st_writer *writer; // the stage leader's record file of the current layer
  struct qs_qsaver *saver;     // the stage leader's record saver thread (saver.h)
};

// Rank 0, before anything is written: applies the rules above (OUT itself must not exist unless
// force) and creates OUT.partial/.state. *partial receives the malloc'ed path of OUT.partial.
qs_status qs_qstate_begin_dir(const char *out, int force, int resume, char **partial);
// Rank 0, after a failed run: removes OUT.partial unless it holds a saved state (kept for --resume).
void qs_qstate_abort_dir(const char *partial);

// Collective, once the engine holds the calibration samples: the fingerprint of this run; with
// --resume and a saved state, its check (a mismatch is an error saying what differs), then every
// rank's activations and the reports of the completed layers (whose record files are checked).
qs_status qs_qstate_init(struct qs_qstate *st, struct qs_qrun *run);
// The stage leader (data rank 0): opens layer l's record file.
qs_status qs_qstate_layer_begin(struct qs_qstate *st, struct qs_qrun *run, int l);
// The stage leader: a module's record (moved: *rec is emptied) into the current layer's file, by the
// saver thread while the engine goes on.
qs_status qs_qstate_put_record(struct qs_qstate *st, struct qs_qrecord *rec);
// Collective over the stage: layer l's file written (once the saver has every record); the state saved when --state-interval has passed since the
// last save (0: every layer), and after the last layer. A stop signal on any rank of the stage
// (stop.h): the state saved at once, st->stop_signal set and QS_ERR_STOPPED on every rank.
qs_status qs_qstate_layer_end(struct qs_qstate *st, struct qs_qrun *run, int l);
// Collective over the stage, S > 1, once the boundary activations are in the engine: saved as the
// stage's state (completed = l0) when saves come after every layer (--state-interval 0).
qs_status qs_qstate_save_boundary(struct qs_qstate *st, struct qs_qrun *run);
// Layer l's record file, opened (mapped) for reading: the records of its modules (qs_qrecord_load).
qs_status qs_qstate_open_layer(const struct qs_qstate *st, int l, struct qs_st_file *f);
// Every report of layers [from, to) has its record in its layer file (the files are there and
// readable): a resumed or assembled run does not find out at the end.
qs_status qs_qstate_check_layers(const struct qs_qstate *st, const struct qs_qrun *run, int from, int to);
// Rank 0, once every output is written: removes OUT.partial/.state.
qs_status qs_qstate_finish(struct qs_qstate *st);
void qs_qstate_free(struct qs_qstate *st);

// ---- qstate_h5.c: the HDF5 files (every call checked; errors name the file) --------------------
struct qs_qstate_x { // identity of an x file, checked when it is read back
  int completed, rank, ranks;
  long long s0, s1;
  int T, hidden;
  const char *fp;
};
qs_status qs_qstate_h5_write_state(const char *path, int completed, int n_layers, int ranks, const char *fp,
                                   const struct qs_qreport *reports, int n_reports);
// *fp and *reports are malloc'ed. A file of another format is QS_ERR_FORMAT.
qs_status qs_qstate_h5_read_state(const char *path, int *completed, int *ranks, char **fp,
                                  struct qs_qreport **reports, int *n_reports);
qs_status qs_qstate_h5_write_x(const char *path, const struct qs_qstate_x *id, const float *x);
qs_status qs_qstate_h5_read_x(const char *path, const struct qs_qstate_x *id, float *x);

#endif
