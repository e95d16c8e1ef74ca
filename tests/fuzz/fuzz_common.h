// fuzz_common.h — what the libFuzzer harnesses of tests/fuzz share: a per-process scratch directory
// (in $TMPDIR, else /dev/shm, else /tmp; removed at exit) where each input is written as the files
// qshard's readers open by path, and the split of one input into several files.
//
// Input layout of the multi-file targets: byte 0 picks a mode (each harness says which), the rest is
// one file, or several separated by QS_FUZZ_SEP (part 0, part 1, ...). tests/fuzz/seed.sh writes
// seeds in this layout.
#ifndef QS_FUZZ_COMMON_H
#define QS_FUZZ_COMMON_H

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QS_FUZZ_SEP "\n--qsfuzz-part--\n"
#define QS_FUZZ_MAX_PARTS 8

// Identity of the x file fuzz_seedgen writes and fuzz_state reads back (qs_qstate_x).
#define QS_FUZZ_X_COMPLETED 2
#define QS_FUZZ_X_S0 0
#define QS_FUZZ_X_S1 2
#define QS_FUZZ_X_T 4
#define QS_FUZZ_X_HIDDEN 8
#define QS_FUZZ_FP "{\"fuzz\":1}"

// stories260K's config.json (the model fuzz_seedgen's imatrix file and fuzz_gguf's imatrix mode use).
#define QS_FUZZ_STORIES_CONFIG                                                                          \
  "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 64, "        \
  "\"intermediate_size\": 172, \"num_hidden_layers\": 5, \"num_attention_heads\": 8, "                   \
  "\"num_key_value_heads\": 4, \"vocab_size\": 512, \"max_position_embeddings\": 512, "                  \
  "\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"tie_word_embeddings\": true, "                    \
  "\"torch_dtype\": \"float32\", \"hidden_act\": \"silu\"}"

static char qs_fuzz_dir_buf[512];

static inline void qs_fuzz_clear(void) {
  DIR *d = opendir(qs_fuzz_dir_buf);
  if (!d) return;
  char p[1024];
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof(p), "%s/%s", qs_fuzz_dir_buf, e->d_name);
    unlink(p);
  }
  closedir(d);
}

static inline void qs_fuzz_cleanup(void) {
  if (!qs_fuzz_dir_buf[0]) return;
  qs_fuzz_clear();
  rmdir(qs_fuzz_dir_buf);
}

// The scratch directory of this process (made on first use).
static inline const char *qs_fuzz_dir(void) {
  if (qs_fuzz_dir_buf[0]) return qs_fuzz_dir_buf;
  const char *base = getenv("TMPDIR");
  if (!base || !base[0]) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(qs_fuzz_dir_buf, sizeof(qs_fuzz_dir_buf), "%s/qsfuzz.XXXXXX", base);
  if (!mkdtemp(qs_fuzz_dir_buf)) {
    perror("qs_fuzz: mkdtemp");
    abort();
  }
  atexit(qs_fuzz_cleanup);
  return qs_fuzz_dir_buf;
}

// "<scratch dir>/name" (malloc'ed).
static inline char *qs_fuzz_path(const char *name) {
  const char *d = qs_fuzz_dir();
  char *p = malloc(strlen(d) + strlen(name) + 2);
  if (!p) abort();
  sprintf(p, "%s/%s", d, name);
  return p;
}

// Writes size bytes to path (truncating it); a failure here is the harness's, so it aborts.
static inline void qs_fuzz_write(const char *path, const uint8_t *data, size_t size) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    perror(path);
    abort();
  }
  for (size_t off = 0; off < size;) {
    ssize_t n = write(fd, data + off, size - off);
    if (n <= 0) {
      perror(path);
      abort();
    }
    off += (size_t)n;
  }
  close(fd);
}

// First occurrence of needle (n bytes) in data, or NULL (memmem without _GNU_SOURCE).
static inline const uint8_t *qs_fuzz_find(const uint8_t *data, size_t size, const char *needle, size_t n) {
  for (size_t i = 0; n && i + n <= size; i++)
    if (data[i] == (uint8_t)needle[0] && !memcmp(data + i, needle, n)) return data + i;
  return NULL;
}

struct qs_fuzz_part {
  const uint8_t *data;
  size_t size;
};

// Splits data at QS_FUZZ_SEP into at most QS_FUZZ_MAX_PARTS parts (the last one keeps the rest).
static inline int qs_fuzz_split(const uint8_t *data, size_t size, struct qs_fuzz_part parts[QS_FUZZ_MAX_PARTS]) {
  const size_t sep = sizeof(QS_FUZZ_SEP) - 1;
  int n = 0;
  while (n < QS_FUZZ_MAX_PARTS - 1) {
    const uint8_t *hit = qs_fuzz_find(data, size, QS_FUZZ_SEP, sep);
    if (!hit) break;
    parts[n].data = data;
    parts[n].size = (size_t)(hit - data);
    n++;
    size -= (size_t)(hit - data) + sep;
    data = hit + sep;
  }
  parts[n].data = data;
  parts[n].size = size;
  return n + 1;
}

// A NUL-terminated copy of data (malloc'ed).
static inline char *qs_fuzz_strndup(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) abort();
  memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

#endif
