// fuzz_manifest.c — libFuzzer harness of the output manifest reader (io/manifest.c qs_manifest_verify:
// `qshard verify OUT`, and --resume's check of each saved layer): the whole input is
// OUT/qshard_manifest.json, and OUT is the small output directory of fuzz_out.h (written once; verify
// only reads it). Quiet (as --resume calls it) when the input's size is odd.
// Beside memory errors, the verdict is checked against the harness's own reading of the manifest:
//   - verify accepts exactly the manifests manifest.h describes ("format" "qshard-manifest-1", a
//     "files" array of {path: a non-empty relative string without "..", bytes: an integer >= 0,
//     sha256: 64 characters}) and refuses the others with QS_ERR_FORMAT;
//   - for one it accepts, *n_bad = one problem per entry whose path is no regular file, or one of
//     another size, or another SHA-256, plus one per file of OUT (hidden ones aside) that no entry
//     names exactly; so *n_bad == 0 (the run verifies) only when every file is listed and matches.
// Run: build-fuzz/fuzz/fuzz_manifest CORPUS_DIR (tests/fuzz/run.sh seeds and runs it).
#include "fuzz_common.h"

#include <jansson.h>

#include "fuzz_out.h"
#include "io/manifest.h"

// OUT's path is padded to this length, so that an input naming paths around PATH_MAX (4096 bytes with
// OUT's) acts the same in every scratch directory.
#define OUT_PATH_LEN 100

static char *out_dir, *manifest;
static struct {
  dev_t dev;
  ino_t ino;
  uint64_t bytes;
  char hex[65];
} known[QS_FUZZ_OUT_FILES];

static void remove_out(void) { qs_fuzz_out_remove(out_dir, QS_MANIFEST_NAME); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  setenv("QS_THREADS", "1", 0); // hash on the fuzzer's thread (no thread started per input)
  out_dir = qs_fuzz_path("out");
  size_t n = strlen(out_dir);
  if (n < OUT_PATH_LEN) {
    if (!(out_dir = realloc(out_dir, OUT_PATH_LEN + 1))) abort();
    memset(out_dir + n, '-', OUT_PATH_LEN - n);
    out_dir[OUT_PATH_LEN] = '\0';
  }
  if (!(manifest = malloc(strlen(out_dir) + sizeof("/" QS_MANIFEST_NAME)))) abort();
  sprintf(manifest, "%s/%s", out_dir, QS_MANIFEST_NAME);
  qs_fuzz_out_write(out_dir);
  atexit(remove_out); // registered after qs_fuzz_dir's cleanup, so it runs before it
  for (int i = 0; i < QS_FUZZ_OUT_FILES && qs_manifest_available(); i++) {
    char *p = malloc(strlen(out_dir) + strlen(qs_fuzz_out_files[i].path) + 2);
    struct stat st;
    if (!p) abort();
    sprintf(p, "%s/%s", out_dir, qs_fuzz_out_files[i].path);
    if (stat(p, &st) != 0 || qs_sha256_file(p, known[i].hex, &known[i].bytes) != QS_OK) abort();
    known[i].dev = st.st_dev, known[i].ino = st.st_ino;
    free(p);
  }
  return 0;
}

// Whether OUT/path is a regular file of `bytes` bytes whose SHA-256 is `hex`.
static int matches(const char *path, uint64_t bytes, const char *hex) {
  char *full = malloc(strlen(out_dir) + strlen(path) + 2), h[65];
  uint64_t n = 0;
  struct stat st;
  if (!full) abort();
  sprintf(full, "%s/%s", out_dir, path);
  int ok = stat(full, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == bytes;
  if (ok) {
    int i = 0;
    while (i < QS_FUZZ_OUT_FILES && !(known[i].dev == st.st_dev && known[i].ino == st.st_ino)) i++;
    if (i < QS_FUZZ_OUT_FILES) ok = !strcmp(known[i].hex, hex);
    else ok = qs_sha256_file(full, h, &n) == QS_OK && !strcmp(h, hex); // the manifest itself
  }
  free(full);
  return ok;
}

// The problems verify must count in the manifest file, or -1 when it must refuse it.
static int expected_problems(void) {
  json_t *root = json_load_file(manifest, 0, NULL), *files = json_object_get(root, "files"), *e;
  const char *fmt = json_string_value(json_object_get(root, "format"));
  int bad = -1;
  size_t i;
  if (!fmt || strcmp(fmt, "qshard-manifest-1") || !json_is_array(files)) goto done;
  json_array_foreach(files, i, e) {
    const char *p = json_string_value(json_object_get(e, "path")), *h = json_string_value(json_object_get(e, "sha256"));
    json_t *b = json_object_get(e, "bytes");
    if (!p || !p[0] || p[0] == '/' || strstr(p, "..") || !h || strlen(h) != 64 || !json_is_integer(b) ||
        json_integer_value(b) < 0)
      goto done;
  }
  bad = 0;
  json_array_foreach(files, i, e) {
    json_int_t b = json_integer_value(json_object_get(e, "bytes"));
    bad += !matches(json_string_value(json_object_get(e, "path")), (uint64_t)b,
                    json_string_value(json_object_get(e, "sha256")));
  }
  for (int k = 0; k < QS_FUZZ_OUT_FILES; k++) { // the files of OUT that no entry names exactly
    if (!qs_fuzz_out_listed(k)) continue;
    int named = 0;
    json_array_foreach(files, i, e) {
      named |= !strcmp(json_string_value(json_object_get(e, "path")), qs_fuzz_out_files[k].path);
    }
    bad += !named;
  }
done:
  json_decref(root);
  return bad;
}

static void finding(const char *what, qs_status st, int n_bad, int want) {
  fprintf(stderr, "fuzz_manifest: %s (status %d, n_bad %d, expected %d)\n", what, (int)st, n_bad, want);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int n_bad = -1;
  qs_fuzz_write(manifest, data, size);
  qs_status st = qs_manifest_verify(out_dir, (int)(size & 1), &n_bad);
  fflush(stdout); // verify's lines, before a finding's report
  if (!qs_manifest_available()) { // a build without OpenSSL: nothing to check
    if (st != QS_ERR_UNSUPPORTED) finding("verify without OpenSSL", st, n_bad, -1);
    return 0;
  }
  int want = expected_problems();
  // the manifest is there: only its contents can be wrong
  if (st != QS_OK && st != QS_ERR_FORMAT) finding("neither QS_OK nor QS_ERR_FORMAT", st, n_bad, want);
  if ((st == QS_OK) != (want >= 0))
    finding(st == QS_OK ? "accepted a malformed manifest" : "refused a well-formed manifest", st, n_bad, want);
  if (st == QS_OK && n_bad != want) finding("wrong count of problems", st, n_bad, want);
  return 0;
}
