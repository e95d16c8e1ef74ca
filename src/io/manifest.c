// manifest.c — SHA-256 manifests of output directories (contract: manifest.h).
#include "io/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/parallel.h"

#ifdef QS_USE_OPENSSL
#include <openssl/evp.h>
#endif

int qs_manifest_available(void) {
#ifdef QS_USE_OPENSSL
  return 1;
#else
  return 0;
#endif
}

qs_status qs_sha256_file(const char *path, char hex[65], uint64_t *bytes) {
  qs_status status = QS_OK;
#ifdef QS_USE_OPENSSL
  enum { CHUNK = 8 << 20 };
  unsigned char *buf = NULL, md[32];
  unsigned int mdlen = 0;
  EVP_MD_CTX *ctx = NULL;
  int fd = open(path, O_RDONLY);
  uint64_t n = 0;
  if (fd < 0) QS_FAIL(QS_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  QS_ALLOC(buf, CHUNK);
  if (!(ctx = EVP_MD_CTX_new()) || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
    QS_FAIL(QS_ERR_INTERNAL, "OpenSSL: SHA-256 unavailable");
  for (;;) {
    ssize_t r = read(fd, buf, CHUNK);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) QS_FAIL(QS_ERR_IO, "reading %s: %s", path, strerror(errno));
    if (r == 0) break;
    if (EVP_DigestUpdate(ctx, buf, (size_t)r) != 1) QS_FAIL(QS_ERR_INTERNAL, "OpenSSL: SHA-256 update failed");
    n += (uint64_t)r;
  }
  if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) QS_FAIL(QS_ERR_INTERNAL, "OpenSSL: SHA-256 final failed");
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  *bytes = n;
fail:
  if (ctx) EVP_MD_CTX_free(ctx);
  if (fd >= 0) close(fd);
  free(buf);
#else
  (void)hex, (void)bytes;
  QS_FAIL(QS_ERR_UNSUPPORTED, "%s: SHA-256 needs a build with OpenSSL (libssl-dev)", path);
fail:
#endif
  return status;
}

// ---- the file list ----------------------------------------------------------------------------------

struct flist {
  char **path; // relative to the root, '/'-separated
  int n, cap;
};

static void flist_free(struct flist *f) {
  for (int i = 0; i < f->n; i++) free(f->path[i]);
  free(f->path);
}

static qs_status flist_add(struct flist *f, const char *rel) {
  qs_status status = QS_OK;
  if (f->n == f->cap) {
    int cap = f->cap ? 2 * f->cap : 64;
    char **p = realloc(f->path, (size_t)cap * sizeof(*p));
    if (!p) QS_FAIL(QS_ERR_OOM, "out of memory");
    f->path = p, f->cap = cap;
  }
  if (!(f->path[f->n] = strdup(rel))) QS_FAIL(QS_ERR_OOM, "out of memory");
  f->n++;
fail:
  return status;
}

// Regular files under root/rel, recursively, skipping names that begin with '.' and the manifest.
static qs_status walk(const char *root, const char *rel, struct flist *f) {
  qs_status status = QS_OK;
  char dir[4096], sub[4096], full[8192];
  snprintf(dir, sizeof(dir), "%s%s%s", root, rel[0] ? "/" : "", rel);
  DIR *d = opendir(dir);
  if (!d) QS_FAIL(QS_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    struct stat st;
    if (e->d_name[0] == '.') continue;
    if (!rel[0] && !strcmp(e->d_name, QS_MANIFEST_NAME)) continue;
    snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
    snprintf(full, sizeof(full), "%s/%s", root, sub);
    if (lstat(full, &st) != 0) QS_FAIL(QS_ERR_IO, "cannot stat %s: %s", full, strerror(errno));
    if (S_ISDIR(st.st_mode)) QS_TRY(walk(root, sub, f));
    else if (S_ISREG(st.st_mode)) QS_TRY(flist_add(f, sub));
  }
fail:
  if (d) closedir(d);
  return status;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// The files' hashes, on the host's threads.
struct hash_job {
  const char *root;
  char *const *path;
  char (*hex)[65];
  uint64_t *bytes;
  qs_status *st;
};

static void hash_range(void *arg, int64_t i0, int64_t i1) {
  struct hash_job *j = arg;
  char full[8192];
  for (int64_t i = i0; i < i1; i++) {
    snprintf(full, sizeof(full), "%s/%s", j->root, j->path[i]);
    j->st[i] = qs_sha256_file(full, j->hex[i], &j->bytes[i]);
  }
}

static qs_status hash_all(const char *root, const struct flist *f, char (**hex)[65], uint64_t **bytes) {
  qs_status status = QS_OK, *st = NULL;
  QS_ALLOC(*hex, f->n);
  QS_ALLOC(*bytes, f->n);
  QS_ALLOC(st, f->n);
  struct hash_job job = {.root = root, .path = f->path, .hex = *hex, .bytes = *bytes, .st = st};
  qs_parallel_for(f->n, 1, hash_range, &job);
  for (int i = 0; i < f->n; i++) QS_TRY(st[i]);
fail:
  free(st);
  return status;
}

qs_status qs_manifest_write(const char *dir) {
  qs_status status = QS_OK;
  struct flist f = {0};
  char(*hex)[65] = NULL, path[4096];
  uint64_t *bytes = NULL;
  char *text = NULL;
  json_t *files = json_array(), *root = NULL;
  if (!qs_manifest_available()) {
    qs_log(QS_LOG_WARN, "%s: no SHA-256 manifest (this qshard was built without OpenSSL)", dir);
    json_decref(files);
    return QS_OK;
  }
  if (!files) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(walk(dir, "", &f));
  qsort(f.path, (size_t)f.n, sizeof(*f.path), cmp_str);
  QS_TRY(hash_all(dir, &f, &hex, &bytes));
  for (int i = 0; i < f.n; i++)
    if (json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "path", f.path[i], "bytes", (json_int_t)bytes[i],
                                               "sha256", hex[i])))
      QS_FAIL(QS_ERR_OOM, "out of memory");
  root = json_pack("{s:s, s:s, s:O}", "format", "qshard-manifest-1", "algorithm", "sha256", "files", files);
  if (!root || !(text = json_dumps(root, JSON_INDENT(1)))) QS_FAIL(QS_ERR_OOM, "out of memory");
  snprintf(path, sizeof(path), "%s/%s", dir, QS_MANIFEST_NAME);
  QS_TRY(qs_file_write_all(path, text, strlen(text)));
fail:
  free(text);
  json_decref(root);
  json_decref(files);
  free(hex);
  free(bytes);
  flist_free(&f);
  return status;
}

qs_status qs_manifest_verify(const char *dir, int quiet, int *n_bad) {
  qs_status status = QS_OK;
  struct flist want = {0}, have = {0};
  char(*hex)[65] = NULL, path[4096];
  uint64_t *bytes = NULL, *want_bytes = NULL;
  const char **want_hex = NULL;
  json_error_t err;
  json_t *root = NULL;
  *n_bad = 0;
  if (!qs_manifest_available()) QS_FAIL(QS_ERR_UNSUPPORTED, "qshard verify needs a build with OpenSSL (libssl-dev)");
  snprintf(path, sizeof(path), "%s/%s", dir, QS_MANIFEST_NAME);
  if (!(root = json_load_file(path, 0, &err)))
    QS_FAIL(access(path, F_OK) ? QS_ERR_IO : QS_ERR_FORMAT, "%s: %s", path,
            access(path, F_OK) ? "no manifest (qshard quantize writes it as its last step; outputs of older versions have none)" : err.text);
  const char *fmt = json_string_value(json_object_get(root, "format"));
  json_t *files = json_object_get(root, "files");
  if (!fmt || strcmp(fmt, "qshard-manifest-1") || !json_is_array(files))
    QS_FAIL(QS_ERR_FORMAT, "%s: not a qshard-manifest-1 file list", path);
  const int n = (int)json_array_size(files);
  QS_ALLOC(want_bytes, n);
  QS_ALLOC(want_hex, n);
  for (int i = 0; i < n; i++) {
    json_t *e = json_array_get(files, (size_t)i);
    const char *p = json_string_value(json_object_get(e, "path")), *h = json_string_value(json_object_get(e, "sha256"));
    json_t *b = json_object_get(e, "bytes");
    if (!p || !h || strlen(h) != 64 || !json_is_integer(b) || json_integer_value(b) < 0 || !p[0] || p[0] == '/' ||
        strstr(p, ".."))
      QS_FAIL(QS_ERR_FORMAT, "%s: entry %d is not {path, bytes, sha256} of a file inside the directory", path, i);
    QS_TRY(flist_add(&want, p));
    want_bytes[i] = (uint64_t)json_integer_value(b);
    want_hex[i] = h;
  }
  // present files first (hashing only those that exist), then what the directory holds beyond them
  struct flist present = {0};
  int *idx = NULL;
  QS_ALLOC(idx, n ? n : 1);
  for (int i = 0; i < n; i++) {
    struct stat st;
    // a path past PATH_MAX names no file (cut, it could name another one, which hash_all would not open)
    if (snprintf(path, sizeof(path), "%s/%s", dir, want.path[i]) >= (int)sizeof(path) || stat(path, &st) != 0 ||
        !S_ISREG(st.st_mode)) {
      printf("MISSING  %s\n", want.path[i]);
      (*n_bad)++;
    } else if ((uint64_t)st.st_size != want_bytes[i]) {
      printf("SIZE     %s: %lld bytes, the manifest says %llu\n", want.path[i], (long long)st.st_size,
             (unsigned long long)want_bytes[i]);
      (*n_bad)++;
    } else {
      idx[present.n] = i;
      if ((status = flist_add(&present, want.path[i])) != QS_OK) break;
    }
  }
  if (status == QS_OK) status = hash_all(dir, &present, &hex, &bytes);
  for (int j = 0; status == QS_OK && j < present.n; j++) {
    const int i = idx[j];
    if (strcmp(hex[j], want_hex[i])) {
      printf("CHANGED  %s: sha256 %s, the manifest says %s\n", want.path[i], hex[j], want_hex[i]);
      (*n_bad)++;
    } else if (!quiet) {
      printf("ok       %s\n", want.path[i]);
    }
  }
  free(idx);
  flist_free(&present);
  QS_TRY(status);
  QS_TRY(walk(dir, "", &have));
  for (int i = 0; i < have.n; i++) {
    int listed = 0;
    for (int k = 0; k < want.n && !listed; k++) listed = !strcmp(have.path[i], want.path[k]);
    if (!listed) {
      printf("EXTRA    %s: not in the manifest\n", have.path[i]);
      (*n_bad)++;
    }
  }
fail:
  json_decref(root);
  flist_free(&want);
  flist_free(&have);
  free(want_bytes);
  free(want_hex);
  free(hex);
  free(bytes);
  return status;
}
