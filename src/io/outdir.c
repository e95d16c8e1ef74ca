// outdir.c — temporary output directory, commit by rename, auxiliary files (see outdir.h).
#include "io/outdir.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

qs_status qs_outdir_begin(const char *out, int force, char **tmp) {
  qs_status status = QS_OK;
  char buf[4096];
  *tmp = NULL;
  if (qs_path_exists(out) && !force)
    QS_FAIL(QS_ERR_ARG, "output %s already exists (use --force to replace it)", out);
  snprintf(buf, sizeof(buf), "%s.tmp.%ld", out, (long)getpid());
  QS_TRY(qs_dir_remove_tree(buf));
  QS_TRY(qs_dir_make(buf));
  *tmp = strdup(buf);
  if (!*tmp) QS_FAIL(QS_ERR_OOM, "out of memory");
fail:
  return status;
}

qs_status qs_outdir_commit(const char *tmp, const char *out, int force) {
  qs_status status = QS_OK;
  char old[4096];
  old[0] = '\0';
  if (qs_path_exists(out)) {
    if (!force) QS_FAIL(QS_ERR_IO, "output %s appeared during the run; result left in %s", out, tmp);
    snprintf(old, sizeof(old), "%s.old.%ld", out, (long)getpid());
    if (rename(out, old) != 0) QS_FAIL(QS_ERR_IO, "cannot move old %s aside: %s", out, strerror(errno));
  }
  if (rename(tmp, out) != 0) QS_FAIL(QS_ERR_IO, "rename %s -> %s failed: %s", tmp, out, strerror(errno));
  if (old[0]) QS_TRY(qs_dir_remove_tree(old));
fail:
  return status;
}

void qs_outdir_abort(const char *tmp) {
  if (tmp && qs_path_exists(tmp)) qs_dir_remove_tree(tmp);
}

// Files that HF loaders read beside the weights.
static const char *k_aux_patterns[] = {
    "tokenizer*", "special_tokens_map.json", "added_tokens.json", "generation_config.json",
    "vocab.json", "merges.txt", "chat_template*", "*.tiktoken", "LICENSE*", "README*", "NOTICE*",
    "USE_POLICY*", "preprocessor_config.json"};

static int aux_wanted(const char *name) {
  for (size_t i = 0; i < sizeof(k_aux_patterns) / sizeof(k_aux_patterns[0]); i++)
    if (fnmatch(k_aux_patterns[i], name, 0) == 0) return 1;
  return 0;
}

qs_status qs_outdir_copy_aux(const char *model_dir, const char *dir) {
  qs_status status = QS_OK;
  char *src = NULL, *dst = NULL;
  DIR *d = opendir(model_dir);
  if (!d) QS_FAIL(QS_ERR_IO, "cannot list %s: %s", model_dir, strerror(errno));
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!aux_wanted(e->d_name)) continue;
    src = qs_path_join(model_dir, e->d_name);
    dst = qs_path_join(dir, e->d_name);
    if (!src || !dst) QS_FAIL(QS_ERR_OOM, "out of memory");
    struct stat st;
    if (stat(src, &st) == 0 && S_ISREG(st.st_mode)) QS_TRY(qs_file_copy(src, dst));
    free(src);
    free(dst);
    src = dst = NULL;
  }
fail:
  if (d) closedir(d);
  free(src);
  free(dst);
  return status;
}

qs_status qs_json_write_file(const char *path, json_t *value, size_t flags) {
  qs_status status = QS_OK;
  char *text = json_dumps(value, flags), *buf = NULL;
  if (!text) QS_FAIL(QS_ERR_OOM, "%s: out of memory serializing JSON", path);
  size_t n = strlen(text);
  QS_ALLOC(buf, n + 1);
  memcpy(buf, text, n);
  buf[n] = '\n'; // trailing newline, as HF writers do
  QS_TRY(qs_file_write_all(path, buf, n + 1));
fail:
  free(text);
  free(buf);
  return status;
}

qs_status qs_outdir_write_json(const char *dir, const char *name, json_t *value) {
  qs_status status = QS_OK;
  char *path = qs_path_join(dir, name);
  if (!path) QS_FAIL(QS_ERR_OOM, "out of memory");
  // 15 significant digits print 1e-05 and 500000.0 as written, not 1.0000000000000001e-05.
  QS_TRY(qs_json_write_file(path, value, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)));
fail:
  free(path);
  return status;
}

qs_status qs_outdir_write_config(const char *model_dir, const char *dir, const char *key, json_t *value) {
  qs_status status = QS_OK;
  json_error_t err;
  char *path = qs_path_join(model_dir, "config.json");
  json_t *cfg = NULL;
  if (!path) QS_FAIL(QS_ERR_OOM, "out of memory");
  cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
  if (!cfg || !json_is_object(cfg))
    QS_FAIL(QS_ERR_FORMAT, "%s: not a JSON object (line %d: %s)", path, err.line, err.text);
  if (key && value && json_object_set(cfg, key, value) != 0) QS_FAIL(QS_ERR_OOM, "out of memory");
  QS_TRY(qs_outdir_write_json(dir, "config.json", cfg));
fail:
  json_decref(cfg);
  free(path);
  return status;
}
