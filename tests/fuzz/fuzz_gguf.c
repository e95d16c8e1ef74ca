// fuzz_gguf.c — libFuzzer harness of the GGUF readers: byte 0 picks the reader, the rest is the file.
//   0: io/gguf.c qs_gguf_open, every KV through its typed getter, every tensor read (pread) and mapped;
//   1: formats/gguf_imatrix.c qs_gguf_imatrix_read for stories260K's config;
//   2: formats/gguf.c's model reader (qshard eval of a .gguf: config from the KVs, tensors dequantized).
// Run: build-fuzz/fuzz/fuzz_gguf CORPUS_DIR (tests/fuzz/run.sh seeds and runs it).
#include "fuzz_common.h"

#include <jansson.h>

#include "formats/format.h"
#include "formats/gguf.h"
#include "io/gguf.h"

static void read_kvs(const struct qs_gguf_file *f) {
  for (size_t i = 0; i < f->n_kv; i++) {
    const struct qs_gguf_kv *kv = &f->kv[i];
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; uint64_t u64; int64_t i64;
            float f32; double f64; int b; } v;
    const char *s;
    const void *arr;
    const char *const *sarr;
    uint64_t n;
    switch (kv->type) {
    case QS_GGUF_U8: (void)qs_gguf_get_u8(f, kv->key, &v.u8); break;
    case QS_GGUF_I8: (void)qs_gguf_get_i8(f, kv->key, &v.i8); break;
    case QS_GGUF_U16: (void)qs_gguf_get_u16(f, kv->key, &v.u16); break;
    case QS_GGUF_I16: (void)qs_gguf_get_i16(f, kv->key, &v.i16); break;
    case QS_GGUF_U32: (void)qs_gguf_get_u32(f, kv->key, &v.u32); break;
    case QS_GGUF_I32: (void)qs_gguf_get_i32(f, kv->key, &v.i32); break;
    case QS_GGUF_U64: (void)qs_gguf_get_u64(f, kv->key, &v.u64); break;
    case QS_GGUF_I64: (void)qs_gguf_get_i64(f, kv->key, &v.i64); break;
    case QS_GGUF_F32: (void)qs_gguf_get_f32(f, kv->key, &v.f32); break;
    case QS_GGUF_F64: (void)qs_gguf_get_f64(f, kv->key, &v.f64); break;
    case QS_GGUF_BOOL: (void)qs_gguf_get_bool(f, kv->key, &v.b); break;
    case QS_GGUF_STRING:
      if (qs_gguf_get_string(f, kv->key, &s) == QS_OK) (void)strlen(s);
      break;
    case QS_GGUF_ARRAY:
      if (kv->elem == QS_GGUF_STRING) {
        if (qs_gguf_get_array_string(f, kv->key, &sarr, &n) == QS_OK)
          for (uint64_t j = 0; j < n; j++) (void)strlen(sarr[j]);
      } else if (qs_gguf_get_array(f, kv->key, (enum qs_gguf_type)kv->elem, &arr, &n) == QS_OK && n) {
        volatile uint8_t last = ((const uint8_t *)arr)[n * qs_gguf_type_size(kv->elem) - 1];
        (void)last;
      }
      break;
    default: abort(); // the reader refuses unknown types
    }
  }
}

static void read_tensors(struct qs_gguf_file *f) {
  for (size_t i = 0; i < f->n_tensors; i++) {
    const struct qs_gguf_tensor *t = &f->tensors[i];
    if (qs_gguf_find_tensor(f, t->name) != t) abort(); // names are unique
    void *buf = malloc(t->nbytes ? t->nbytes : 1);
    if (!buf) abort();
    if (qs_gguf_read_tensor(f, t, buf, t->nbytes) != QS_OK) abort(); // within the file: checked at open
    free(buf);
    const void *p;
    if (t->nbytes && qs_gguf_map_tensor(f, t, &p) == QS_OK) {
      volatile uint8_t a = ((const uint8_t *)p)[0], b = ((const uint8_t *)p)[t->nbytes - 1];
      (void)a, (void)b;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char *path;
  static struct qs_config cfg;
  if (size < 1) return 0;
  if (!path) {
    path = qs_fuzz_path("model.gguf");
    if (qs_config_parse(&cfg, QS_FUZZ_STORIES_CONFIG, "stories260K config") != QS_OK) abort();
  }
  qs_fuzz_write(path, data + 1, size - 1);
  int mode = data[0] % 3;
  if (mode == 0) {
    struct qs_gguf_file f;
    if (qs_gguf_open(&f, path) == QS_OK) {
      read_kvs(&f);
      read_tensors(&f);
      qs_gguf_close(&f);
    }
  } else if (mode == 1) {
    struct qs_imatrix m = {0};
    (void)qs_gguf_imatrix_read(path, &cfg, &m);
    qs_imatrix_free(&m);
  } else {
    const struct qs_format *fmt = qs_format_find("gguf");
    struct qs_config c;
    struct qs_ckpt ck;
    json_t *qc = NULL;
    if (!fmt || !fmt->open_dir) abort();
    if (fmt->open_dir(path, &c, &ck, &qc) == QS_OK) {
      qs_ckpt_close(&ck);
      json_decref(qc);
    }
  }
  return 0;
}
