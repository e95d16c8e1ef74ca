// common.c — error reporting, logging, tunables and small file helpers (see qs_common.h).
#include "base/qs_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int g_rank = 0, g_size = 1;
static char g_host[64];

const char *qs_status_str(qs_status s) {
  static const char *names[] = {
      [QS_OK] = "ok", [QS_ERR_ARG] = "bad argument", [QS_ERR_IO] = "I/O error",
      [QS_ERR_FORMAT] = "malformed input", [QS_ERR_UNSUPPORTED] = "unsupported",
      [QS_ERR_OOM] = "out of memory", [QS_ERR_NUMERIC] = "numerical failure",
      [QS_ERR_COMM] = "communication error", [QS_ERR_CUDA] = "CUDA error",
      [QS_ERR_INTERNAL] = "internal error", [QS_ERR_STOPPED] = "stopped by a signal"};
  if ((unsigned)s >= sizeof(names) / sizeof(names[0]) || !names[s]) return "unknown";
  return names[s];
}

void qs_log_set_rank(int rank, int size) { g_rank = rank; g_size = size; }
int qs_log_rank(void) { return g_rank; }

const char *qs_log_host(void) {
  if (!g_host[0] && gethostname(g_host, sizeof(g_host) - 1) != 0) strcpy(g_host, "?");
  return g_host;
}

static int g_json = 0;
void qs_log_set_json(int on) { g_json = on; }

// s as the body of a JSON string: ", \ and control characters escaped (bytes >= 0x80 pass: UTF-8).
static void json_escape(const char *s, char *out, size_t cap) {
  size_t k = 0;
  for (; *s && k + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') { out[k++] = '\\'; out[k++] = (char)c; }
    else if (c < 0x20) k += (size_t)snprintf(out + k, cap - k, "\\u%04x", c);
    else out[k++] = (char)c;
  }
  out[k] = '\0';
}

// One JSON object per line: {"event": "log", "ts", "level", "rank", "host", "msg"}.
static void vlog_json(FILE *out, int level, const char *msg) {
  static const char *names[] = {"error", "warning", "info", "debug"};
  char body[4 * 2048 + 8], host[256];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  json_escape(msg, body, sizeof(body));
  json_escape(qs_log_host(), host, sizeof(host));
  fprintf(out, "{\"event\":\"log\",\"ts\":%.6f,\"level\":\"%s\",\"rank\":%d,\"host\":\"%s\",\"msg\":\"%s\"}\n",
          (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec, names[level < 0 ? 0 : level > 3 ? 3 : level], g_rank,
          host, body);
}

static void vlog(FILE *out, int level, const char *prefix, const char *fmt, va_list ap) {
  char msg[2048];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  if (g_json) vlog_json(out, level, msg);
  else if (g_size > 1) fprintf(out, "%s[rank %d/%d %s] %s\n", prefix, g_rank, g_size, qs_log_host(), msg);
  else fprintf(out, "%s%s\n", prefix, msg);
  fflush(out);
}

void qs_log(int level, const char *fmt, ...) {
  static int max_level = -1;
  if (max_level < 0) max_level = (int)qs_param_read("QS_LOG_LEVEL", QS_LOG_INFO);
  if (level > max_level) return;
  va_list ap;
  va_start(ap, fmt);
  vlog(level <= QS_LOG_WARN ? stderr : stdout, level, level == QS_LOG_WARN ? "qshard: warning: " : "", fmt, ap);
  va_end(ap);
}

void qs_log0(const char *fmt, ...) {
  if (g_rank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  vlog(stdout, QS_LOG_INFO, "", fmt, ap);
  va_end(ap);
}

// Deferred error reports (qs_err_defer): the lines "file:line func: msg" and "  from ..." in order.
static int g_defer;
static char g_errbuf[8192];
static size_t g_errlen;

void qs_err_defer(int on) { g_defer = on; }
const char *qs_err_pending(void) { return g_errbuf; }
void qs_err_clear(void) { g_errlen = 0, g_errbuf[0] = '\0'; }

static void err_append(const char *line) {
  size_t n = strlen(line);
  if (g_errlen + n + 2 > sizeof(g_errbuf)) return; // the first errors are the ones that matter
  memcpy(g_errbuf + g_errlen, line, n);
  g_errlen += n;
  g_errbuf[g_errlen++] = '\n';
  g_errbuf[g_errlen] = '\0';
}

void qs_err_print(const char *text, const char *who) {
  for (const char *p = text; *p;) {
    const char *e = strchr(p, '\n');
    int n = (int)(e ? e - p : (ptrdiff_t)strlen(p));
    if (n >= 2 && p[0] == ' ' && p[1] == ' ') fprintf(stderr, "%.*s\n", n, p);
    else if (n > 0) fprintf(stderr, "qshard: error [%s] %.*s\n", who, n, p);
    p += n + (e ? 1 : 0);
  }
  fflush(stderr);
}

qs_status qs_report(qs_status st, const char *file, int line, const char *func, const char *fmt, ...) {
  char msg[2048], buf[2300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  const char *base = strrchr(file, '/');
  if (g_defer) {
    snprintf(buf, sizeof(buf), "%s:%d %s: %s", base ? base + 1 : file, line, func, msg);
    err_append(buf);
    return st;
  }
  fprintf(stderr, "qshard: error [rank %d %s] %s:%d %s: %s\n", g_rank, qs_log_host(),
          base ? base + 1 : file, line, func, msg);
  fflush(stderr);
  return st;
}

static int g_debug;
void qs_log_set_debug(int on) { g_debug = on; }

// The call chain under an error ("  from file:line func") only with --debug or QS_BACKTRACE=1: the
// error line itself says what failed and where.
qs_status qs_trace(qs_status st, const char *file, int line, const char *func) {
  static int verbose = -1;
  if (verbose < 0) verbose = (int)qs_param_read("QS_BACKTRACE", 0);
  verbose |= g_debug;
  if (verbose && st != QS_ERR_STOPPED) { // a stop unwinds quietly: it is reported once, where it is handled
    const char *base = strrchr(file, '/');
    char buf[512];
    snprintf(buf, sizeof(buf), "  from %s:%d %s", base ? base + 1 : file, line, func);
    if (g_defer) err_append(buf);
    else fprintf(stderr, "%s\n", buf);
  }
  return st;
}

int64_t qs_param_read(const char *env, int64_t def) {
  const char *v = getenv(env);
  if (!v || !*v) return def;
  char *end = NULL;
  long long x = strtoll(v, &end, 0);
  return (end && *end == '\0') ? (int64_t)x : def;
}

double qs_time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int qs_str_has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

double qs_mem_available_bytes(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  char line[256];
  double kb = 0;
  if (!f) return 0;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
  fclose(f);
  return kb * 1024.0;
}

size_t qs_peak_rss_bytes(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (size_t)ru.ru_maxrss * 1024u; // Linux reports KiB
}

int qs_path_exists(const char *path) { struct stat st; return stat(path, &st) == 0; }
int qs_path_is_dir(const char *path) { struct stat st; return stat(path, &st) == 0 && S_ISDIR(st.st_mode); }

char *qs_path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  size_t k = a;
  if (a && dir[a - 1] != '/') p[k++] = '/';
  memcpy(p + k, name, b + 1);
  return p;
}

qs_status qs_file_read_all(const char *path, char **data, size_t *size) {
  qs_status status = QS_OK;
  char *buf = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) QS_FAIL(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0) QS_FAIL(QS_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
  long n = ftell(f);
  if (n < 0 || fseek(f, 0, SEEK_SET) != 0) QS_FAIL(QS_ERR_IO, "%s: cannot size: %s", path, strerror(errno));
  QS_ALLOC(buf, (size_t)n + 1);
  if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) QS_FAIL(QS_ERR_IO, "%s: short read", path);
  buf[n] = '\0';
  *data = buf;
  if (size) *size = (size_t)n;
  buf = NULL;
fail:
  if (f) fclose(f);
  free(buf);
  return status;
}

qs_status qs_write_full(int fd, const void *buf, size_t size, const char *path) {
  qs_status status = QS_OK;
  const char *p = buf;
  while (size > 0) {
    ssize_t w = write(fd, p, size > (1u << 30) ? (1u << 30) : size);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) QS_FAIL(QS_ERR_IO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "no progress");
    p += w;
    size -= (size_t)w;
  }
fail:
  return status;
}

qs_status qs_tmpfile_open(struct qs_tmpfile *f, const char *path) {
  qs_status status = QS_OK;
  f->fd = -1;
  f->path = path;
  if ((size_t)snprintf(f->tmp, sizeof(f->tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(f->tmp))
    QS_FAIL(QS_ERR_ARG, "%s: path too long", path);
  f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (f->fd < 0) QS_FAIL(QS_ERR_IO, "%s: cannot create: %s", f->tmp, strerror(errno));
fail:
  return status;
}

qs_status qs_tmpfile_commit(struct qs_tmpfile *f) {
  qs_status status = QS_OK;
  if (fsync(f->fd) != 0) QS_FAIL(QS_ERR_IO, "%s: fsync failed: %s", f->tmp, strerror(errno));
  int rc = close(f->fd);
  f->fd = -1;
  if (rc != 0) QS_FAIL(QS_ERR_IO, "%s: close failed: %s", f->tmp, strerror(errno));
  if (rename(f->tmp, f->path) != 0)
    QS_FAIL(QS_ERR_IO, "rename %s -> %s failed: %s", f->tmp, f->path, strerror(errno));
  f->tmp[0] = '\0'; // committed: nothing left to remove
fail:
  return status;
}

void qs_tmpfile_abort(struct qs_tmpfile *f) {
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  if (f->tmp[0]) unlink(f->tmp);
  f->tmp[0] = '\0';
}

qs_status qs_file_write_all(const char *path, const void *data, size_t size) {
  qs_status status = QS_OK;
  struct qs_tmpfile f = {.fd = -1};
  QS_TRY(qs_tmpfile_open(&f, path));
  QS_TRY(qs_write_full(f.fd, data, size, f.tmp));
  QS_TRY(qs_tmpfile_commit(&f));
fail:
  qs_tmpfile_abort(&f);
  return status;
}

qs_status qs_file_copy(const char *src, const char *dst) {
  qs_status status = QS_OK;
  char *data = NULL;
  size_t n = 0;
  QS_TRY(qs_file_read_all(src, &data, &n));
  QS_TRY(qs_file_write_all(dst, data, n));
fail:
  free(data);
  return status;
}

qs_status qs_dir_make(const char *path) {
  qs_status status = QS_OK;
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof(buf)) QS_FAIL(QS_ERR_ARG, "bad directory path '%s'", path);
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char c = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      QS_FAIL(QS_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
    buf[i] = c;
  }
  if (!qs_path_is_dir(path)) QS_FAIL(QS_ERR_IO, "%s exists and is not a directory", path);
fail:
  return status;
}

qs_status qs_dir_remove_tree(const char *path) {
  qs_status status = QS_OK;
  DIR *d = opendir(path);
  if (!d) {
    if (errno == ENOENT) return QS_OK;
    if (unlink(path) == 0) return QS_OK;
    QS_FAIL(QS_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char *child = qs_path_join(path, e->d_name);
    if (!child) QS_FAIL(QS_ERR_OOM, "out of memory");
    qs_status st = qs_path_is_dir(child) ? qs_dir_remove_tree(child)
                                         : (unlink(child) == 0 ? QS_OK : QS_ERR_IO);
    if (st != QS_OK) { free(child); QS_FAIL(st, "cannot remove %s/%s", path, e->d_name); }
    free(child);
  }
  if (rmdir(path) != 0) QS_FAIL(QS_ERR_IO, "cannot remove directory %s: %s", path, strerror(errno));
fail:
  if (d) closedir(d);
  return status;
}
