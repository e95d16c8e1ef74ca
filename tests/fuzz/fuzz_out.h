// fuzz_out.h — the small qshard output directory that fuzz_manifest checks each manifest against, and
// that fuzz_seedgen writes (with the manifest qshard writes of it, a seed). Two formats as qshard
// quantize lays them out, an empty file, and hidden files (resume state, a temporary file) that a
// qshard manifest leaves out (io/manifest.h).
#ifndef QS_FUZZ_OUT_H
#define QS_FUZZ_OUT_H

#include <sys/stat.h>

#include "fuzz_common.h"

// Paths relative to the directory, '/'-separated.
static const struct {
  const char *path, *text;
} qs_fuzz_out_files[] = {
    {"config.json", "{\"model_type\": \"llama\", \"quantization_config\": {\"bits\": 4}}\n"},
    {"model.safetensors", "the safetensors file of the fuzz output\n"},
    {"quant_report.json", "{\"layers\": []}\n"},
    {"empty.bin", ""},
    {"compressed-tensors/config.json", "{\"quantization_config\": {\"format\": \"pack-quantized\"}}\n"},
    {"compressed-tensors/model.safetensors", "the compressed-tensors file\n"},
    {".state/layer-00000/model.safetensors", "a saved layer\n"},
    {".config.json.tmp.1", "a temporary file\n"},
};
#define QS_FUZZ_OUT_FILES ((int)(sizeof(qs_fuzz_out_files) / sizeof(qs_fuzz_out_files[0])))

// 1 when a qshard manifest lists the file (no path component begins with '.').
static inline int qs_fuzz_out_listed(int i) {
  const char *p = qs_fuzz_out_files[i].path;
  return p[0] != '.' && !strstr(p, "/.");
}

// Writes the files under dir (made, with the folders of the paths; a failure aborts).
static inline void qs_fuzz_out_write(const char *dir) {
  char p[4096];
  if (mkdir(dir, 0700) != 0 && access(dir, F_OK) != 0) {
    perror(dir);
    abort();
  }
  for (int i = 0; i < QS_FUZZ_OUT_FILES; i++) {
    snprintf(p, sizeof(p), "%s/%s", dir, qs_fuzz_out_files[i].path);
    for (char *s = p + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
      *s = '\0';
      if (mkdir(p, 0700) != 0 && access(p, F_OK) != 0) {
        perror(p);
        abort();
      }
      *s = '/';
    }
    qs_fuzz_write(p, (const uint8_t *)qs_fuzz_out_files[i].text, strlen(qs_fuzz_out_files[i].text));
  }
}

// Removes what qs_fuzz_out_write made, and dir/extra (a file) when given.
static inline void qs_fuzz_out_remove(const char *dir, const char *extra) {
  char p[4096];
  if (extra) {
    snprintf(p, sizeof(p), "%s/%s", dir, extra);
    unlink(p);
  }
  for (int i = QS_FUZZ_OUT_FILES - 1; i >= 0; i--) {
    snprintf(p, sizeof(p), "%s/%s", dir, qs_fuzz_out_files[i].path);
    unlink(p);
    for (char *s; (s = strrchr(p + strlen(dir), '/')) && s > p + strlen(dir);) {
      *s = '\0';
      rmdir(p); // fails while another file is in it
    }
  }
  rmdir(dir);
}

#endif
