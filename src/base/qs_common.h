// qs_common.h — status codes, two-tier error reporting, logging, run-time parameters, file helpers.
//
// Library code returns a qs_status and leaves through one `fail:` label:
//
//   qs_status qs_thing_do(...) {
//     qs_status status = QS_OK;
//     float *tmp = NULL;
//     if (n <= 0) QS_FAIL(QS_ERR_ARG, "%s: n = %d must be positive", path, n);
//     QS_TRY(qs_other_do(...));          // on error adds one backtrace line and jumps to fail
//   fail:
//     free(tmp);
//     return status;
//   }
//
// QS_FAIL prints "qshard: error [rank R host] file:line func: message" once, where the problem is
// found; QS_TRY prints "  from file:line func" at each level it passes. Messages about bad input
// name the file and the problem.
#ifndef QS_COMMON_H
#define QS_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// C linkage also when included from CUDA (.cu, compiled as C++).
#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  QS_OK = 0,
  QS_ERR_ARG,         // bad command line or argument
  QS_ERR_IO,          // open/read/write/rename failed
  QS_ERR_FORMAT,      // malformed input file (safetensors, json, hdf5, gguf)
  QS_ERR_UNSUPPORTED, // well-formed but not supported (architecture, dtype, shape)
  QS_ERR_OOM,
  QS_ERR_NUMERIC,     // e.g. Cholesky failed after all damping steps
  QS_ERR_COMM,        // MPI / NCCL
  QS_ERR_CUDA,
  QS_ERR_INTERNAL,
  QS_ERR_STOPPED,     // not an error: a stop signal (stop.h) ended the run after saving its state
} qs_status;

// Exit statuses besides 0 (success), 1 (error) and 2 (usage); 128-255 so that a Kubeflow MPIJob with
// restartPolicy ExitCode retries them (1-127 count as permanent failures there).
enum {
  QS_EXIT_STOPPED = 200,      // a stop signal (SIGTERM, SIGUSR1, SIGINT): state saved, rerun with --resume
  QS_EXIT_COMM_TIMEOUT = 201, // a rank stopped answering (comm.h qs_comm_set_timeout): the job aborted
};

const char *qs_status_str(qs_status s);

// ---- logging ------------------------------------------------------------------------------------
enum { QS_LOG_ERROR = 0, QS_LOG_WARN = 1, QS_LOG_INFO = 2, QS_LOG_DEBUG = 3 };
void qs_log_set_rank(int rank, int size); // called by comm init; prefixes messages when size > 1
int qs_log_rank(void);
const char *qs_log_host(void);
void qs_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// rank 0 only (the "rank-0 view" progress lines); others are silent
void qs_log0(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// on: qs_log/qs_log0 print one JSON object per line, {"event": "log", "ts", "level", "rank", "host",
// "msg"} (quantize --log-json); error reports (qs_report, qs_trace) stay text on stderr.
void qs_log_set_json(int on);

qs_status qs_report(qs_status st, const char *file, int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
qs_status qs_trace(qs_status st, const char *file, int line, const char *func);
// Errors once in a job of several ranks: with qs_err_defer(1) (cli/main.c, when there are several
// ranks) qs_report and qs_trace keep their lines in memory instead of printing them; once a command
// has failed, the ranks settle who prints what (comm.h qs_comm_settle_failure) with qs_err_print:
// each line of text as "qshard: error [who] line" ("  from" lines as they are).
void qs_err_defer(int on);
const char *qs_err_pending(void); // the kept lines, "" if none
void qs_err_clear(void);
void qs_err_print(const char *text, const char *who);
// --debug (every command): qs_trace prints the call chain under each error (also QS_BACKTRACE=1).
void qs_log_set_debug(int on);

#define QS_FAIL(st, ...)                                                                \
  do {                                                                                  \
    status = qs_report((st), __FILE__, __LINE__, __func__, __VA_ARGS__);                \
    goto fail;                                                                          \
  } while (0)

#define QS_TRY(call)                                                                    \
  do {                                                                                  \
    qs_status st_ = (call);                                                             \
    if (st_ != QS_OK) {                                                                 \
      status = qs_trace(st_, __FILE__, __LINE__, __func__);                             \
      goto fail;                                                                        \
    }                                                                                   \
  } while (0)

// Allocation that reports (and jumps to fail) on failure: QS_ALLOC(p, n_elems).
#define QS_ALLOC(ptr, n)                                                                \
  do {                                                                                  \
    size_t n_ = (size_t)(n);                                                            \
    (ptr) = calloc(n_ ? n_ : 1, sizeof(*(ptr)));                                        \
    if (!(ptr)) QS_FAIL(QS_ERR_OOM, "out of memory allocating %zu x %zu bytes", n_,     \
                        sizeof(*(ptr)));                                                \
  } while (0)

// ---- run-time tunables: one cached getter per name ----------------------------------------------
// QS_PARAM(name, "QS_ENV", default) defines `static int64_t qs_param_name(void)` that reads the
// environment variable once.
int64_t qs_param_read(const char *env, int64_t def);
#define QS_PARAM(name, env, def)                                                        \
  static int64_t qs_param_##name(void) {                                                \
    static int64_t cached_ = INT64_MIN;                                                 \
    if (cached_ == INT64_MIN) cached_ = qs_param_read(env, def);                        \
    return cached_;                                                                     \
  }

// ---- files ----------------------------------------------------------------------------------------
// A file written under "<path>.tmp.<pid>" and renamed over <path> only when complete, so a reader
// never sees a partial file: open, write to .fd (qs_write_full), then commit (fsync, close,
// rename); on any failure abort (close, unlink; a no-op after commit).
struct qs_tmpfile {
  int fd;
  char tmp[4096];
  const char *path;
};
qs_status qs_tmpfile_open(struct qs_tmpfile *f, const char *path);
qs_status qs_tmpfile_commit(struct qs_tmpfile *f);
void qs_tmpfile_abort(struct qs_tmpfile *f);
qs_status qs_file_read_all(const char *path, char **data, size_t *size); // NUL-terminated copy
qs_status qs_file_write_all(const char *path, const void *data, size_t size); // tmp + rename
qs_status qs_file_copy(const char *src, const char *dst);                  // tmp + rename
qs_status qs_dir_make(const char *path);                                   // mkdir -p
qs_status qs_dir_remove_tree(const char *path);                            // rm -rf (own outputs)
int qs_path_exists(const char *path);
int qs_str_has_suffix(const char *s, const char *suffix); // s ends with suffix
int qs_path_is_dir(const char *path);
// "dir/name" into a malloc'ed string (NULL on OOM)
char *qs_path_join(const char *dir, const char *name);
// Writes `size` bytes fully (loops over short writes); reports errno with the path.
qs_status qs_write_full(int fd, const void *buf, size_t size, const char *path);

double qs_time_now(void); // monotonic seconds
size_t qs_peak_rss_bytes(void);
double qs_mem_available_bytes(void); // /proc/meminfo MemAvailable (0: unknown)

// splitmix64 finalizer (Steele, Lea, Flood 2014): a bijective 64-bit mix. Applied to a Weyl sequence
// seed + i * 0x9E3779B97F4A7C15 it is the counter-based generator behind calibration offsets, synthetic
// weights and tokens, and test inputs: any element can be drawn independently, on any rank.
#define QS_WEYL 0x9E3779B97F4A7C15ull
static inline uint64_t qs_mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// Next uniform double in (0, 1) of the stream `state` (53 random bits, never 0 or 1).
static inline double qs_rand_open01(uint64_t *state) {
  return ((double)(qs_mix64(*state += QS_WEYL) >> 11) + 0.5) * 0x1p-53;
}

#define QS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define QS_MAX(a, b) ((a) > (b) ? (a) : (b))
#define QS_CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

#ifdef __cplusplus
}
#endif
#endif
