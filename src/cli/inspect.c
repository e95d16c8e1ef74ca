// inspect.c — `qshard inspect FILE|DIR`: a summary of a safetensors file, a checkpoint directory
// (model.safetensors or index + shards), an HDF5 file or a GGUF file. Runs on rank 0 only (other
// ranks return at once; main() combines the exit codes). Every tensor is listed, then totals and
// metadata (GGUF: the KVs first, arrays summarized).
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "cli/commands.h"
#include "io/ggml_types.h"
#include "io/gguf.h"
#include "io/safetensors.h"

static void inspect_usage(FILE *out) {
  fprintf(out,
          "usage: qshard inspect FILE|DIR\n\n"
          "Lists every tensor of a safetensors file or checkpoint directory (name, dtype, shape,\n"
          "bytes, and the shard file for sharded checkpoints), then the totals (tensors, parameters,\n"
          "bytes, bytes per dtype) and the __metadata__; for an HDF5 file lists every dataset (type,\n"
          "shape, bytes); for a GGUF file lists every metadata key (type and value; arrays as\n"
          "type, count and first values), every tensor (name, ggml type, ne innermost first, offset\n"
          "in the data section, bytes) and the totals. The input is validated as qshard reads it\n"
          "(GGUF: as llama.cpp does): a malformed file is an error.\n");
}

// ---- file kind -----------------------------------------------------------------------------------

enum inspect_kind { INSPECT_CKPT, INSPECT_HDF5, INSPECT_GGUF };

// HDF5 superblock signature; it sits at byte 0, 512, 1024, 2048, ... (after an optional user block).
static const unsigned char k_hdf5_sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

static qs_status inspect_detect(const char *path, enum inspect_kind *kind) {
  qs_status status = QS_OK;
  unsigned char buf[8];
  int fd = -1;
  *kind = INSPECT_CKPT;
  if (qs_path_is_dir(path)) return QS_OK;
  fd = open(path, O_RDONLY);
  if (fd < 0) QS_FAIL(QS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  for (off_t off = 0; off <= ((off_t)1 << 30); off = off ? 2 * off : 512) {
    ssize_t r = pread(fd, buf, 8, off);
    if (r < 0) QS_FAIL(QS_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    if (r < 8) break;
    if (!memcmp(buf, k_hdf5_sig, 8)) { *kind = INSPECT_HDF5; break; }
    if (off == 0 && !memcmp(buf, "GGUF", 4)) { *kind = INSPECT_GGUF; break; }
  }
fail:
  if (fd >= 0) close(fd);
  return status;
}

// ---- safetensors ---------------------------------------------------------------------------------

static void format_shape(char *buf, size_t cap, const struct qs_st_tensor *t) {
  size_t k = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < t->ndim && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, i ? ", " : "", t->shape[i]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static void print_tensors(const struct qs_ckpt *c) {
  int wname = 4;
  for (size_t i = 0; i < c->n_tensors; i++) wname = QS_MAX(wname, (int)strlen(c->by_name[i]->name));
  printf("%-*s  %-7s  %-18s  %14s%s\n", wname, "name", "dtype", "shape", "bytes", c->n_files > 1 ? "  file" : "");
  for (size_t i = 0; i < c->n_tensors; i++) {
    const struct qs_st_tensor *t = c->by_name[i];
    char shape[160];
    format_shape(shape, sizeof(shape), t);
    printf("%-*s  %-7s  %-18s  %14" PRIu64 "%s%s\n", wname, t->name, qs_dtype_name(t->dtype), shape,
           t->end - t->begin, c->n_files > 1 ? "  " : "", c->n_files > 1 ? base_name(t->file) : "");
  }
}

// Bits per weight of a quantized checkpoint directory (config.json's quantization_config: GPTQ/AWQ
// "bits", compressed-tensors' first config group's weights.num_bits); 0: not quantized or unknown.
static int quant_bits(const char *path) {
  char *cfg = qs_path_is_dir(path) ? qs_path_join(path, "config.json") : NULL;
  json_t *root = cfg ? json_load_file(cfg, 0, NULL) : NULL;
  const json_t *qc = json_object_get(root, "quantization_config"), *g;
  int bits = (int)json_integer_value(json_object_get(qc, "bits"));
  const char *k;
  json_object_foreach((json_t *)json_object_get(qc, "config_groups"), k, g) {
    if (!bits) bits = (int)json_integer_value(json_object_get(json_object_get(g, "weights"), "num_bits"));
  }
  json_decref(root);
  free(cfg);
  return bits > 0 && bits <= 32 ? bits : 0;
}

// Parameters count the model's weights: a packed quantized weight (GPTQ/AWQ .qweight, compressed-tensors
// .weight_packed: int32 words of 32/bits codes) counts its codes; its scales, zero points and group
// maps are quantization metadata, counted apart.
static void print_totals(const struct qs_ckpt *c, const char *path) {
  static const char *const packed[] = {".qweight", ".weight_packed"};
  static const char *const meta[] = {".scales", ".qzeros", ".g_idx", ".weight_scale", ".weight_zero_point",
                                     ".weight_g_idx", ".weight_shape"};
  uint64_t params = 0, qmeta = 0, bytes = 0, by_dtype[QS_DTYPE_COUNT] = {0};
  const int bits = quant_bits(path);
  for (size_t i = 0; i < c->n_tensors; i++) {
    const struct qs_st_tensor *t = c->by_name[i];
    uint64_t n = (uint64_t)qs_st_numel(t);
    int is_packed = 0, is_meta = 0;
    for (size_t k = 0; k < 2; k++) is_packed |= bits && t->dtype == QS_DTYPE_I32 && qs_str_has_suffix(t->name, packed[k]);
    for (size_t k = 0; k < sizeof(meta) / sizeof(meta[0]); k++) is_meta |= bits && qs_str_has_suffix(t->name, meta[k]);
    const struct qs_st_tensor *shape = NULL;
    if (is_packed && qs_str_has_suffix(t->name, ".weight_packed")) { // its true [N, K]: the packed rows may be padded
      char name[512];
      snprintf(name, sizeof(name), "%.*s.weight_shape", (int)(strlen(t->name) - strlen(".weight_packed")), t->name);
      shape = qs_ckpt_find(c, name);
      if (shape && (shape->dtype != QS_DTYPE_I64 || qs_st_numel(shape) != 2)) shape = NULL;
    }
    if (shape) {
      int64_t nk[2];
      memcpy(nk, shape->data, sizeof(nk));
      params += nk[0] > 0 && nk[1] > 0 ? (uint64_t)nk[0] * (uint64_t)nk[1] : 0;
    } else if (is_packed) {
      params += n * 32 / (uint64_t)bits; // 3-bit streams: 32 codes per 3 words
    }
    else if (is_meta) qmeta += n;
    else params += n;
    bytes += t->end - t->begin;
    by_dtype[t->dtype] += t->end - t->begin;
  }
  printf("\ntensors: %zu\nparameters: %" PRIu64, c->n_tensors, params);
  if (bits) printf(" (%d-bit packed weights counted as their codes; quantization scales, zero points and group maps: %" PRIu64 " values)", bits, qmeta);
  printf("\nbytes: %" PRIu64 " (%.2f MiB)\nbytes by dtype:", bytes, (double)bytes / (1024.0 * 1024.0));
  for (int d = 0; d < QS_DTYPE_COUNT; d++)
    if (by_dtype[d]) printf(" %s=%" PRIu64, qs_dtype_name((qs_dtype)d), by_dtype[d]);
  printf("\n");
}

static void print_metadata(const struct qs_ckpt *c) {
  for (size_t i = 0; i < c->n_files; i++) {
    const struct qs_st_file *f = &c->files[i];
    if (c->n_files > 1) printf("metadata (%s):", base_name(f->path));
    else printf("metadata:");
    if (f->n_meta == 0) printf(" (none)");
    for (size_t k = 0; k < f->n_meta; k++) printf(" %s=%s", f->meta_keys[k], f->meta_values[k]);
    printf("\n");
  }
}

static qs_status inspect_ckpt(const char *path) {
  qs_status status = QS_OK;
  struct qs_ckpt c;
  QS_TRY(qs_ckpt_open(&c, path));
  printf("checkpoint: %s (%zu file%s)\n", path, c.n_files, c.n_files == 1 ? "" : "s");
  print_tensors(&c);
  print_totals(&c, path);
  print_metadata(&c);
  qs_ckpt_close(&c);
fail:
  return status;
}

// ---- HDF5 ----------------------------------------------------------------------------------------

struct h5_visit {
  size_t n_datasets;
  uint64_t bytes;
  int failed;
};

// "int32", "uint8", "float32", "string", ... for a dataset's type.
static void h5_type_name(hid_t type, char *buf, size_t cap) {
  H5T_class_t cls = H5Tget_class(type);
  size_t bits = 8 * H5Tget_size(type);
  switch (cls) {
  case H5T_INTEGER: snprintf(buf, cap, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits); break;
  case H5T_FLOAT: snprintf(buf, cap, "float%zu", bits); break;
  case H5T_STRING: snprintf(buf, cap, "string"); break;
  case H5T_COMPOUND: snprintf(buf, cap, "compound"); break;
  case H5T_ENUM: snprintf(buf, cap, "enum"); break;
  case H5T_ARRAY: snprintf(buf, cap, "array"); break;
  case H5T_OPAQUE: snprintf(buf, cap, "opaque"); break;
  default: snprintf(buf, cap, "class%d", (int)cls); break;
  }
}

// One dataset line: "/name  int32  [n, m]  bytes".
static int h5_print_dataset(hid_t loc, const char *name, struct h5_visit *v) {
  hid_t ds = -1, type = -1, space = -1;
  hsize_t dims[H5S_MAX_RANK];
  char tname[32], shape[256];
  int ok = 0;
  if ((ds = H5Dopen2(loc, name, H5P_DEFAULT)) < 0 || (type = H5Dget_type(ds)) < 0 || (space = H5Dget_space(ds)) < 0) goto done;
  int nd = H5Sget_simple_extent_ndims(space);
  if (nd < 0 || H5Sget_simple_extent_dims(space, dims, NULL) < 0) goto done;
  uint64_t n = 1;
  size_t k = (size_t)snprintf(shape, sizeof(shape), "[");
  for (int i = 0; i < nd && k < sizeof(shape); i++) {
    n *= dims[i];
    k += (size_t)snprintf(shape + k, sizeof(shape) - k, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
  }
  if (k < sizeof(shape)) snprintf(shape + k, sizeof(shape) - k, "]");
  h5_type_name(type, tname, sizeof(tname));
  uint64_t bytes = n * H5Tget_size(type);
  printf("/%-30s  %-8s  %-18s  %14" PRIu64 "\n", name, tname, shape, bytes);
  v->n_datasets++;
  v->bytes += bytes;
  ok = 1;
done:
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  if (ds >= 0) H5Dclose(ds);
  return ok;
}

#if H5_VERSION_GE(1, 12, 0)
typedef H5O_info2_t qs_h5_oinfo;
#define QS_H5_VISIT(f, cb, data) H5Ovisit3((f), H5_INDEX_NAME, H5_ITER_INC, (cb), (data), H5O_INFO_BASIC)
#else
typedef H5O_info_t qs_h5_oinfo;
#define QS_H5_VISIT(f, cb, data) H5Ovisit2((f), H5_INDEX_NAME, H5_ITER_INC, (cb), (data), H5O_INFO_BASIC)
#endif

static herr_t h5_visit_cb(hid_t loc, const char *name, const qs_h5_oinfo *info, void *data) {
  struct h5_visit *v = data;
  if (info->type == H5O_TYPE_GROUP && strcmp(name, ".")) printf("/%s/  (group)\n", name);
  if (info->type != H5O_TYPE_DATASET) return 0;
  if (!h5_print_dataset(loc, name, v)) {
    v->failed = 1;
    return -1; // stops the walk; reported by the caller with the file name
  }
  return 0;
}

static qs_status inspect_hdf5(const char *path) {
  qs_status status = QS_OK;
  struct h5_visit v = {0};
  hid_t f = -1;
  if (H5Eset_auto2(H5E_DEFAULT, NULL, NULL) < 0) // our messages name the file; HDF5's stack dump does not
    QS_FAIL(QS_ERR_INTERNAL, "H5Eset_auto2 failed");
  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) QS_FAIL(QS_ERR_FORMAT, "%s: HDF5 signature found but the file cannot be opened as HDF5", path);
  printf("hdf5: %s\n%-31s  %-8s  %-18s  %14s\n", path, "dataset", "type", "shape", "bytes");
  if (QS_H5_VISIT(f, h5_visit_cb, &v) < 0 || v.failed)
    QS_FAIL(QS_ERR_FORMAT, "%s: cannot read the object tree (dataset %zu)", path, v.n_datasets + 1);
  printf("\ndatasets: %zu\nbytes: %" PRIu64 " (%.2f MiB)\n", v.n_datasets, v.bytes, (double)v.bytes / (1024.0 * 1024.0));
fail:
  if (f >= 0 && H5Fclose(f) < 0 && status == QS_OK)
    status = qs_report(QS_ERR_IO, __FILE__, __LINE__, __func__, "%s: H5Fclose failed", path);
  return status;
}

// ---- GGUF ----------------------------------------------------------------------------------------

// A string value quoted, control bytes escaped, cut after `max` bytes (at a UTF-8 boundary).
static void gguf_print_str(const char *s, uint64_t len, size_t max) {
  size_t n = len > max ? max : (size_t)len;
  while (n < len && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c == '\n') printf("\\n");
    else if (c == '\t') printf("\\t");
    else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
    else putchar(c);
  }
  putchar('"');
  if (n < len) printf("... (%" PRIu64 " bytes)", len);
}

// The shortest %g form that reads back as the same float (f32) or double.
static void print_shortest(double x, int is_f32) {
  char buf[40];
  for (int prec = is_f32 ? 6 : 15; prec <= 17; prec++) {
    snprintf(buf, sizeof(buf), "%.*g", prec, x);
    double back = strtod(buf, NULL);
    if (is_f32 ? (float)back == (float)x : back == x) break;
  }
  printf("%s", buf);
}

// Element i of a KV's values.
static void gguf_print_value(const struct qs_gguf_kv *kv, uint64_t i, size_t max_str) {
  const void *d = kv->data;
  switch (kv->elem) {
  case QS_GGUF_U8: printf("%u", ((const uint8_t *)d)[i]); break;
  case QS_GGUF_I8: printf("%d", ((const int8_t *)d)[i]); break;
  case QS_GGUF_U16: printf("%u", ((const uint16_t *)d)[i]); break;
  case QS_GGUF_I16: printf("%d", ((const int16_t *)d)[i]); break;
  case QS_GGUF_U32: printf("%" PRIu32, ((const uint32_t *)d)[i]); break;
  case QS_GGUF_I32: printf("%" PRId32, ((const int32_t *)d)[i]); break;
  case QS_GGUF_U64: printf("%" PRIu64, ((const uint64_t *)d)[i]); break;
  case QS_GGUF_I64: printf("%" PRId64, ((const int64_t *)d)[i]); break;
  case QS_GGUF_F32: print_shortest(((const float *)d)[i], 1); break;
  case QS_GGUF_F64: print_shortest(((const double *)d)[i], 0); break;
  case QS_GGUF_BOOL: printf("%s", ((const uint8_t *)d)[i] ? "true" : "false"); break;
  case QS_GGUF_STRING: gguf_print_str(((char *const *)d)[i], kv->lens[i], max_str); break;
  default: printf("?"); break;
  }
}

// One line per KV: "key  type  value"; arrays "arr[type,count]  [first 5 values, ...]".
static void gguf_print_kvs(const struct qs_gguf_file *f) {
  int wkey = 3;
  for (size_t i = 0; i < f->n_kv; i++) wkey = QS_MAX(wkey, (int)QS_MIN(strlen(f->kv[i].key), 48));
  printf("\n%-*s  %-16s  %s\n", wkey, "key", "type", "value");
  for (size_t i = 0; i < f->n_kv; i++) {
    const struct qs_gguf_kv *kv = &f->kv[i];
    char type[40];
    if (kv->type == QS_GGUF_ARRAY)
      snprintf(type, sizeof(type), "arr[%s,%" PRIu64 "]", qs_gguf_type_name(kv->elem), kv->n);
    else snprintf(type, sizeof(type), "%s", qs_gguf_type_name(kv->type));
    printf("%-*s  %-16s  ", wkey, kv->key, type);
    if (kv->type != QS_GGUF_ARRAY) {
      gguf_print_value(kv, 0, 120);
    } else {
      putchar('[');
      for (uint64_t j = 0; j < kv->n && j < 5; j++) {
        if (j) printf(", ");
        gguf_print_value(kv, j, 40);
      }
      printf("%s]", kv->n > 5 ? ", ..." : "");
    }
    putchar('\n');
  }
}

static void gguf_print_tensors(const struct qs_gguf_file *f) {
  uint64_t params = 0, bytes = 0, by_type[QS_GGML_TYPE_MAX] = {0};
  int wname = 4;
  for (size_t i = 0; i < f->n_tensors; i++) wname = QS_MAX(wname, (int)strlen(f->tensors[i].name));
  if (f->n_tensors) printf("\n%-*s  %-7s  %-24s  %14s  %14s\n", wname, "name", "type", "ne", "offset", "bytes");
  else printf("\n(no tensors: a vocabulary-only file)\n");
  for (size_t i = 0; i < f->n_tensors; i++) {
    const struct qs_gguf_tensor *t = &f->tensors[i];
    char ne[96];
    size_t k = (size_t)snprintf(ne, sizeof(ne), "[");
    for (int d = 0; d < t->n_dims && k < sizeof(ne); d++)
      k += (size_t)snprintf(ne + k, sizeof(ne) - k, "%s%" PRId64, d ? ", " : "", t->ne[d]);
    if (k < sizeof(ne)) snprintf(ne + k, sizeof(ne) - k, "]");
    printf("%-*s  %-7s  %-24s  %14" PRIu64 "  %14" PRIu64 "\n", wname, t->name, qs_ggml_type_name(t->type), ne,
           t->offset, t->nbytes);
    params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    bytes += t->nbytes;
    by_type[t->type] += t->nbytes;
  }
  printf("\ntensors: %zu\nparameters: %" PRIu64 "\nbytes: %" PRIu64 " (%.2f MiB)\nbytes by type:", f->n_tensors, params,
         bytes, (double)bytes / (1024.0 * 1024.0));
  for (int t = 0; t < QS_GGML_TYPE_MAX; t++)
    if (by_type[t]) printf(" %s=%" PRIu64, qs_ggml_type_name(t), by_type[t]);
  printf("%s\n", bytes ? "" : " (none)");
  if (params) printf("bits per weight: %.4f\n", 8.0 * (double)bytes / (double)params);
}

static qs_status inspect_gguf(const char *path) {
  qs_status status = QS_OK;
  struct qs_gguf_file f;
  QS_TRY(qs_gguf_open(&f, path));
  printf("gguf: %s (version %" PRIu32 ", %zu KVs, %zu tensors, alignment %" PRIu64 ", data at byte %" PRIu64
         ", %" PRIu64 " bytes)\n", path, f.version, f.n_kv, f.n_tensors, f.alignment, f.data_offset, f.file_size);
  gguf_print_kvs(&f);
  gguf_print_tensors(&f);
  qs_gguf_close(&f);
fail:
  return status;
}

// ---- command -------------------------------------------------------------------------------------

static int inspect_run(const char *path) {
  enum inspect_kind kind;
  if (inspect_detect(path, &kind) != QS_OK) return 1;
  qs_status st = QS_OK;
  switch (kind) {
  case INSPECT_HDF5: st = inspect_hdf5(path); break;
  case INSPECT_GGUF: st = inspect_gguf(path); break;
  case INSPECT_CKPT: st = inspect_ckpt(path); break;
  }
  if (st != QS_OK) {
    fprintf(stderr, "qshard inspect: cannot inspect %s (%s); expected a .safetensors file, a checkpoint "
            "directory, an HDF5 file or a GGUF file\n", path, qs_status_str(st));
    return 1;
  }
  fflush(stdout);
  return ferror(stdout) ? 1 : 0;
}

int qs_cmd_inspect(struct qs_comm *world, int argc, char **argv) {
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      if (qs_comm_rank(world) == 0) inspect_usage(stdout);
      return 0;
    }
    if (argv[i][0] == '-' || path) {
      if (qs_comm_rank(world) == 0) {
        fprintf(stderr, "qshard inspect: unexpected argument '%s'\n", argv[i]);
        inspect_usage(stderr);
      }
      return 2;
    }
    path = argv[i];
  }
  if (!path) {
    if (qs_comm_rank(world) == 0) inspect_usage(stderr);
    return 2;
  }
  if (qs_comm_rank(world) != 0) return 0; // the summary is printed once
  return inspect_run(path);
}
