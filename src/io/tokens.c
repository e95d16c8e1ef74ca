// tokens.c — token id streams in HDF5 (contract in tokens.h). Every HDF5 call is checked (< 0 is
// an error) and HDF5's own error-stack printing is turned off: the user sees one message naming
// the file, the dataset and the problem (with HDF5's innermost reason when there is one).
#include "io/tokens.h"

#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QS_TOKENS_DEFAULT_DATASET "/input_ids"

static void qs_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static herr_t qs_h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
  if (n == 0 && e->desc) snprintf((char *)data, 256, "%s", e->desc);
  return 0;
}

// The innermost entry of HDF5's error stack (where the problem was first seen), then clears it.
static const char *qs_h5_reason(char buf[256]) {
  buf[0] = '\0';
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, qs_h5_walk_cb, buf);
  H5Eclear2(H5E_DEFAULT);
  return buf[0] ? buf : "unknown HDF5 error";
}

// Cleanup after an error has been reported (their own failures add nothing the user needs).
static void qs_h5_close_all(hid_t ds, hid_t file) {
  if (ds >= 0) H5Dclose(ds);
  if (file >= 0) H5Fclose(file);
  H5Eclear2(H5E_DEFAULT);
}

// Opens `path` read-only and its dataset `dset`; a missing file or dataset is an error naming both.
static qs_status qs_tokens_open(const char *path, const char *dset, hid_t *file, hid_t *ds) {
  qs_status status = QS_OK;
  char why[256];
  if (access(path, R_OK) != 0) QS_FAIL(QS_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
  *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (*file < 0) QS_FAIL(QS_ERR_FORMAT, "%s: not a readable HDF5 file (%s)", path, qs_h5_reason(why));
  htri_t exists = H5Lexists(*file, dset, H5P_DEFAULT);
  if (exists <= 0) {
    H5Eclear2(H5E_DEFAULT);
    QS_FAIL(QS_ERR_FORMAT, "%s: no dataset '%s'", path, dset);
  }
  *ds = H5Dopen2(*file, dset, H5P_DEFAULT);
  if (*ds < 0) QS_FAIL(QS_ERR_FORMAT, "%s: '%s' is not a dataset (%s)", path, dset, qs_h5_reason(why));
fail:
  return status;
}

static const char *qs_h5_class_name(H5T_class_t c) {
  switch (c) {
  case H5T_FLOAT: return "float";
  case H5T_STRING: return "string";
  case H5T_COMPOUND: return "compound";
  case H5T_ENUM: return "enum";
  case H5T_ARRAY: return "array";
  case H5T_VLEN: return "variable-length";
  default: return "non-integer";
  }
}

// Shape of an integer dataset of rank 1 or 2: dims[0..ndim).
static qs_status qs_tokens_read_shape(hid_t ds, const char *path, const char *dset, hsize_t dims[2],
                                      int *ndim) {
  qs_status status = QS_OK;
  char why[256];
  hid_t type = -1, space = -1;
  type = H5Dget_type(ds);
  if (type < 0) QS_FAIL(QS_ERR_FORMAT, "%s: %s: cannot read the datatype (%s)", path, dset, qs_h5_reason(why));
  H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_INTEGER)
    QS_FAIL(QS_ERR_FORMAT, "%s: %s: token ids must be integers, not %s", path, dset,
            qs_h5_class_name(cls));
  space = H5Dget_space(ds);
  if (space < 0) QS_FAIL(QS_ERR_FORMAT, "%s: %s: cannot read the dataspace (%s)", path, dset, qs_h5_reason(why));
  *ndim = H5Sget_simple_extent_ndims(space);
  if (*ndim < 0) QS_FAIL(QS_ERR_FORMAT, "%s: %s: cannot read the rank (%s)", path, dset, qs_h5_reason(why));
  if (*ndim < 1 || *ndim > 2)
    QS_FAIL(QS_ERR_UNSUPPORTED, "%s: %s: rank %d; token ids are 1-D [n] or 2-D [rows, seqlen]", path,
            dset, *ndim);
  if (H5Sget_simple_extent_dims(space, dims, NULL) < 0)
    QS_FAIL(QS_ERR_FORMAT, "%s: %s: cannot read the dimensions (%s)", path, dset, qs_h5_reason(why));
  // rows * cols int32 ids must be addressable (dimensions are 64-bit: a product can wrap).
  uint64_t bytes;
  if (__builtin_mul_overflow((uint64_t)dims[0], *ndim == 2 ? (uint64_t)dims[1] : 1, &bytes) ||
      __builtin_mul_overflow(bytes, (uint64_t)sizeof(int32_t), &bytes) || bytes > (uint64_t)PTRDIFF_MAX)
    QS_FAIL(QS_ERR_FORMAT, "%s: %s: %llu x %llu ids do not fit in memory", path, dset,
            (unsigned long long)dims[0], (unsigned long long)(*ndim == 2 ? dims[1] : 1));
fail:
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  return status;
}

// A dataset with unwritten parts (chunks never written, or storage never allocated) reads back as
// HDF5's fill value, not token ids; refused before allocating what its dimensions claim (such a file
// of a few KB can declare 10^12 ids).
static qs_status qs_tokens_check_stored(hid_t ds, const char *path, const char *dset) {
  qs_status status = QS_OK;
  char why[256];
  H5D_space_status_t st;
  if (H5Dget_space_status(ds, &st) < 0)
    QS_FAIL(QS_ERR_FORMAT, "%s: %s: cannot read the storage status (%s)", path, dset, qs_h5_reason(why));
  if (st != H5D_SPACE_STATUS_ALLOCATED)
    QS_FAIL(QS_ERR_FORMAT, "%s: %s: the dataset is not fully written (its ids would be HDF5 fill values)", path,
            dset);
fail:
  return status;
}

// Conversion-exception handler: a stored value outside int32 aborts the read (instead of HDF5's
// default of clipping it silently) and is recorded for the message.
struct qs_tokens_conv {
  int hit;
  char value[32];
};

static H5T_conv_ret_t qs_tokens_conv_cb(H5T_conv_except_t kind, hid_t src, hid_t dst, void *sbuf,
                                        void *dbuf, void *ctx) {
  struct qs_tokens_conv *cv = ctx;
  if (kind != H5T_CONV_EXCEPT_RANGE_HI && kind != H5T_CONV_EXCEPT_RANGE_LOW) return H5T_CONV_UNHANDLED;
  size_t size = H5Tget_size(src);
  H5T_sign_t sign = H5Tget_sign(src);
  cv->hit = 1;
  snprintf(cv->value, sizeof(cv->value), "?");
  if (size == 8 && sign == H5T_SGN_2) snprintf(cv->value, sizeof(cv->value), "%" PRId64, *(int64_t *)sbuf);
  else if (size == 8) snprintf(cv->value, sizeof(cv->value), "%" PRIu64, *(uint64_t *)sbuf);
  else if (size == 4 && sign == H5T_SGN_NONE) snprintf(cv->value, sizeof(cv->value), "%" PRIu32, *(uint32_t *)sbuf);
  return H5T_CONV_ABORT;
}

// Reads the whole dataset as native int32 into ids (n elements already allocated).
static qs_status qs_tokens_read_ids(hid_t ds, const char *path, const char *dset, int32_t *ids, size_t n) {
  qs_status status = QS_OK;
  char why[256];
  struct qs_tokens_conv cv = {0};
  hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
  if (xfer < 0) QS_FAIL(QS_ERR_INTERNAL, "H5Pcreate(DATASET_XFER) failed (%s)", qs_h5_reason(why));
  if (H5Pset_type_conv_cb(xfer, qs_tokens_conv_cb, &cv) < 0)
    QS_FAIL(QS_ERR_INTERNAL, "H5Pset_type_conv_cb failed (%s)", qs_h5_reason(why));
  if (n > 0 && H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, xfer, ids) < 0) {
    if (cv.hit) {
      H5Eclear2(H5E_DEFAULT);
      QS_FAIL(QS_ERR_FORMAT, "%s: %s: value %s does not fit int32", path, dset, cv.value);
    }
    QS_FAIL(QS_ERR_FORMAT, "%s: %s: read failed (%s)", path, dset, qs_h5_reason(why));
  }
fail:
  if (xfer >= 0) H5Pclose(xfer);
  return status;
}

qs_status qs_tokens_read(const char *path, const char *dataset, struct qs_tokens *t) {
  qs_status status = QS_OK;
  const char *dset = dataset ? dataset : QS_TOKENS_DEFAULT_DATASET;
  hid_t file = -1, ds = -1;
  hsize_t dims[2] = {0, 0};
  int ndim = 0;
  char why[256];
  memset(t, 0, sizeof(*t));
  qs_h5_quiet();
  QS_TRY(qs_tokens_open(path, dset, &file, &ds));
  QS_TRY(qs_tokens_read_shape(ds, path, dset, dims, &ndim));
  t->ndim = ndim;
  t->rows = ndim == 1 ? 1 : (int64_t)dims[0];
  t->cols = ndim == 1 ? (int64_t)dims[0] : (int64_t)dims[1];
  size_t n = (size_t)t->rows * (size_t)t->cols;
  if (n > 0) QS_TRY(qs_tokens_check_stored(ds, path, dset));
  QS_ALLOC(t->ids, n);
  QS_TRY(qs_tokens_read_ids(ds, path, dset, t->ids, n));
  herr_t ds_closed = H5Dclose(ds), file_closed = H5Fclose(file);
  ds = file = -1;
  if (ds_closed < 0 || file_closed < 0) QS_FAIL(QS_ERR_IO, "%s: close failed (%s)", path, qs_h5_reason(why));
  return QS_OK;
fail:
  qs_h5_close_all(ds, file);
  qs_tokens_free(t);
  return status;
}

qs_status qs_tokens_check(const struct qs_tokens *t, int vocab, const char *path) {
  qs_status status = QS_OK;
  size_t n = (size_t)t->rows * (size_t)t->cols, bad = 0, first = 0;
  for (size_t i = 0; i < n; i++) {
    if (t->ids[i] >= 0 && t->ids[i] < vocab) continue;
    if (bad++ == 0) first = i;
  }
  if (bad == 0) return QS_OK;
  if (t->ndim == 2)
    QS_FAIL(QS_ERR_FORMAT, "%s: token id %d at position %zu (row %zu, column %zu) is outside the vocabulary "
            "[0, %d) (%zu bad ids in all)", path, (int)t->ids[first], first, first / (size_t)t->cols,
            first % (size_t)t->cols, vocab, bad);
  QS_FAIL(QS_ERR_FORMAT, "%s: token id %d at position %zu is outside the vocabulary [0, %d) (%zu bad ids in all)",
          path, (int)t->ids[first], first, vocab, bad);
fail:
  return status;
}

void qs_tokens_free(struct qs_tokens *t) {
  if (!t) return;
  free(t->ids);
  memset(t, 0, sizeof(*t));
}

// Creates dataset `dset` (int32 little-endian, parent groups made as needed) in `file` and writes ids.
static qs_status qs_tokens_write_dataset(hid_t file, const char *tmp, const char *dset, const int32_t *ids,
                                         const hsize_t *dims, int ndim) {
  qs_status status = QS_OK;
  char why[256];
  hid_t lcpl = -1, space = -1, ds = -1;
  lcpl = H5Pcreate(H5P_LINK_CREATE);
  if (lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0)
    QS_FAIL(QS_ERR_INTERNAL, "%s: link property list failed (%s)", tmp, qs_h5_reason(why));
  space = H5Screate_simple(ndim, dims, NULL);
  if (space < 0) QS_FAIL(QS_ERR_INTERNAL, "%s: H5Screate_simple failed (%s)", tmp, qs_h5_reason(why));
  ds = H5Dcreate2(file, dset, H5T_STD_I32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (ds < 0) QS_FAIL(QS_ERR_IO, "%s: cannot create dataset '%s' (%s)", tmp, dset, qs_h5_reason(why));
  if (dims[0] > 0 && (ndim == 1 || dims[1] > 0) &&
      H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) < 0)
    QS_FAIL(QS_ERR_IO, "%s: %s: write failed (%s)", tmp, dset, qs_h5_reason(why));
  if (H5Dclose(ds) < 0) { ds = -1; QS_FAIL(QS_ERR_IO, "%s: %s: close failed (%s)", tmp, dset, qs_h5_reason(why)); }
  ds = -1;
fail:
  if (ds >= 0) H5Dclose(ds);
  if (space >= 0) H5Sclose(space);
  if (lcpl >= 0) H5Pclose(lcpl);
  return status;
}

// The file is built in memory (HDF5's core driver, no backing store) and written by qs_file_write_all
// (temporary name, fsync, rename): a failed write (disk full, EFBIG) is reported with its errno and leaves
// neither a partial file nor HDF5 holding a half-flushed file it crashes on at exit.
qs_status qs_tokens_write(const char *path, const char *dataset, const int32_t *ids, int64_t rows,
                          int64_t cols, int ndim) {
  qs_status status = QS_OK;
  const char *dset = dataset ? dataset : QS_TOKENS_DEFAULT_DATASET;
  char why[256];
  hid_t file = -1, fapl = -1;
  char *image = NULL;
  qs_h5_quiet();
  if (ndim != 1 && ndim != 2) QS_FAIL(QS_ERR_ARG, "%s: ndim %d must be 1 or 2", path, ndim);
  if (rows < 0 || cols < 0 || (ndim == 1 && rows != 1))
    QS_FAIL(QS_ERR_ARG, "%s: bad shape rows %" PRId64 " cols %" PRId64 " for ndim %d", path, rows, cols, ndim);
  hsize_t dims[2] = {(hsize_t)(ndim == 1 ? cols : rows), (hsize_t)cols};
  fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 20, 0) < 0)
    QS_FAIL(QS_ERR_INTERNAL, "%s: in-memory HDF5 file properties failed (%s)", path, qs_h5_reason(why));
  file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl); // in memory: nothing is written at path
  if (file < 0) QS_FAIL(QS_ERR_IO, "%s: cannot create HDF5 file (%s)", path, qs_h5_reason(why));
  QS_TRY(qs_tokens_write_dataset(file, path, dset, ids, dims, ndim));
  if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) QS_FAIL(QS_ERR_IO, "%s: flush failed (%s)", path, qs_h5_reason(why));
  ssize_t size = H5Fget_file_image(file, NULL, 0);
  if (size <= 0) QS_FAIL(QS_ERR_INTERNAL, "%s: HDF5 file image size failed (%s)", path, qs_h5_reason(why));
  QS_ALLOC(image, (size_t)size);
  if (H5Fget_file_image(file, image, (size_t)size) != size)
    QS_FAIL(QS_ERR_INTERNAL, "%s: HDF5 file image failed (%s)", path, qs_h5_reason(why));
  herr_t closed = H5Fclose(file);
  file = -1;
  if (closed < 0) QS_FAIL(QS_ERR_IO, "%s: close failed (%s)", path, qs_h5_reason(why));
  QS_TRY(qs_file_write_all(path, image, (size_t)size));
fail:
  if (file >= 0) H5Fclose(file);
  if (fapl >= 0) H5Pclose(fapl);
  H5Eclear2(H5E_DEFAULT);
  free(image);
  return status;
}
