// qstate_h5.c — the HDF5 files of the resume state (layout: qstate.h). Serial HDF5, one file per
// writer; each file is written under "<path>.tmp.<pid>", fsynced and renamed, so a reader sees the
// old file or the new one. Every HDF5 call is checked (< 0 is an error) and HDF5's own error-stack
// printing is off: the message names the file and HDF5's innermost reason.
#include "run/qstate.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run/run.h"

#define QS_QSTATE_FORMAT "qshard-resume-2" // 2: layer files hold records (quant/record.h)

static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
  if (n == 0 && e->desc) snprintf((char *)data, 256, "%s", e->desc);
  return 0;
}

// The innermost entry of HDF5's error stack, then clears it (one process, one thread: static buffer).
static const char *h5_reason(void) {
  static char buf[256];
  buf[0] = '\0';
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_cb, buf);
  H5Eclear2(H5E_DEFAULT);
  return buf[0] ? buf : "unknown HDF5 error";
}

// An HDF5 call returning < 0 on failure: reported with the file, the call and HDF5's reason.
#define QS_H5(st, call, path)                                                                   \
  do {                                                                                          \
    if ((call) < 0) QS_FAIL(st, "%s: %s failed (%s)", path, #call, h5_reason());                \
  } while (0)

static void h5_close(hid_t *id, herr_t (*fn)(hid_t)) {
  if (*id >= 0) fn(*id);
  *id = -1;
  H5Eclear2(H5E_DEFAULT);
}

// ---- attributes ----------------------------------------------------------------------------------

static qs_status attr_write_i64(hid_t obj, const char *name, long long v, const char *path) {
  qs_status status = QS_OK;
  hid_t sp = -1, at = -1;
  QS_H5(QS_ERR_IO, sp = H5Screate(H5S_SCALAR), path);
  QS_H5(QS_ERR_IO, at = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT), path);
  QS_H5(QS_ERR_IO, H5Awrite(at, H5T_NATIVE_LLONG, &v), path);
fail:
  h5_close(&at, H5Aclose);
  h5_close(&sp, H5Sclose);
  return status;
}

// Opens attribute `name` of obj into *at (closed by the caller, also on failure). It must hold exactly
// one value: H5Aread writes every element of the attribute's dataspace into the one-value buffer.
static qs_status attr_open_one(hid_t obj, const char *name, hid_t *at, const char *path) {
  qs_status status = QS_OK;
  hid_t sp = -1;
  if (H5Aexists(obj, name) <= 0) QS_FAIL(QS_ERR_FORMAT, "%s: attribute '%s' missing (%s)", path, name, h5_reason());
  QS_H5(QS_ERR_FORMAT, *at = H5Aopen(obj, name, H5P_DEFAULT), path);
  QS_H5(QS_ERR_FORMAT, sp = H5Aget_space(*at), path);
  hssize_t n = H5Sget_simple_extent_npoints(sp);
  if (n != 1) QS_FAIL(QS_ERR_FORMAT, "%s: attribute '%s' holds %lld values, not one", path, name, (long long)n);
fail:
  h5_close(&sp, H5Sclose);
  return status;
}

static qs_status attr_read_i64(hid_t obj, const char *name, long long *v, const char *path) {
  qs_status status = QS_OK;
  hid_t at = -1;
  QS_TRY(attr_open_one(obj, name, &at, path));
  QS_H5(QS_ERR_FORMAT, H5Aread(at, H5T_NATIVE_LLONG, v), path);
fail:
  h5_close(&at, H5Aclose);
  return status;
}

// Fixed-length NUL-terminated string attribute.
static qs_status attr_write_str(hid_t obj, const char *name, const char *s, const char *path) {
  qs_status status = QS_OK;
  hid_t sp = -1, ty = -1, at = -1;
  QS_H5(QS_ERR_IO, ty = H5Tcopy(H5T_C_S1), path);
  QS_H5(QS_ERR_IO, H5Tset_size(ty, strlen(s) + 1), path);
  QS_H5(QS_ERR_IO, H5Tset_strpad(ty, H5T_STR_NULLTERM), path);
  QS_H5(QS_ERR_IO, sp = H5Screate(H5S_SCALAR), path);
  QS_H5(QS_ERR_IO, at = H5Acreate2(obj, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT), path);
  QS_H5(QS_ERR_IO, H5Awrite(at, ty, s), path);
fail:
  h5_close(&at, H5Aclose);
  h5_close(&sp, H5Sclose);
  h5_close(&ty, H5Tclose);
  return status;
}

static qs_status attr_read_str(hid_t obj, const char *name, char **s, const char *path) {
  qs_status status = QS_OK;
  hid_t at = -1, ty = -1, mem = -1;
  *s = NULL;
  QS_TRY(attr_open_one(obj, name, &at, path));
  QS_H5(QS_ERR_FORMAT, ty = H5Aget_type(at), path);
  if (H5Tget_class(ty) != H5T_STRING || H5Tis_variable_str(ty) != 0)
    QS_FAIL(QS_ERR_FORMAT, "%s: attribute '%s' is not a fixed-length string", path, name);
  size_t n = H5Tget_size(ty);
  if (n == 0) QS_FAIL(QS_ERR_FORMAT, "%s: attribute '%s' has size 0", path, name);
  QS_H5(QS_ERR_FORMAT, mem = H5Tcopy(H5T_C_S1), path);
  QS_H5(QS_ERR_FORMAT, H5Tset_size(mem, n + 1), path); // room for the NUL whatever the file's padding
  QS_H5(QS_ERR_FORMAT, H5Tset_strpad(mem, H5T_STR_NULLTERM), path);
  QS_ALLOC(*s, n + 1);
  QS_H5(QS_ERR_FORMAT, H5Aread(at, mem, *s), path);
fail:
  if (status != QS_OK) { free(*s); *s = NULL; }
  h5_close(&mem, H5Tclose);
  h5_close(&ty, H5Tclose);
  h5_close(&at, H5Aclose);
  return status;
}

// ---- files: create under a temporary name, commit by fsync + rename ------------------------------

static qs_status file_create(const char *path, char tmp[4096], hid_t *f) {
  qs_status status = QS_OK;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if ((size_t)snprintf(tmp, 4096, "%s.tmp.%ld", path, (long)getpid()) >= 4096) QS_FAIL(QS_ERR_ARG, "%s: path too long", path);
  QS_H5(QS_ERR_IO, *f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), tmp);
fail:
  return status;
}

static qs_status file_commit(hid_t *f, const char *tmp, const char *path) {
  qs_status status = QS_OK;
  herr_t closed = H5Fclose(*f);
  *f = -1;
  if (closed < 0) QS_FAIL(QS_ERR_IO, "%s: close failed (%s)", tmp, h5_reason());
  int fd = open(tmp, O_RDONLY);
  if (fd < 0) QS_FAIL(QS_ERR_IO, "%s: cannot reopen for fsync: %s", tmp, strerror(errno));
  int synced = fsync(fd), err = errno;
  close(fd);
  if (synced != 0) QS_FAIL(QS_ERR_IO, "%s: fsync failed: %s", tmp, strerror(err));
  if (rename(tmp, path) != 0) QS_FAIL(QS_ERR_IO, "rename %s -> %s failed: %s", tmp, path, strerror(errno));
fail:
  return status;
}

static void file_abort(hid_t *f, const char *tmp) {
  h5_close(f, H5Fclose);
  if (tmp[0]) unlink(tmp);
}

static qs_status file_open(const char *path, hid_t *f) {
  qs_status status = QS_OK;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (access(path, R_OK) != 0) QS_FAIL(QS_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
  QS_H5(QS_ERR_FORMAT, *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), path);
fail:
  return status;
}

// ---- state.h5 ------------------------------------------------------------------------------------

// struct qs_qreport as an HDF5 compound (native layout; h5py reads it as a record array).
static qs_status report_type(hid_t *out, const char *path) {
  qs_status status = QS_OK;
  hid_t str = -1, t = -1;
  QS_H5(QS_ERR_INTERNAL, str = H5Tcopy(H5T_C_S1), path);
  QS_H5(QS_ERR_INTERNAL, H5Tset_size(str, sizeof(((struct qs_qreport *)0)->name)), path);
  QS_H5(QS_ERR_INTERNAL, H5Tset_strpad(str, H5T_STR_NULLTERM), path);
  QS_H5(QS_ERR_INTERNAL, t = H5Tcreate(H5T_COMPOUND, sizeof(struct qs_qreport)), path);
#define QS_H5_FIELD(f, ty) QS_H5(QS_ERR_INTERNAL, H5Tinsert(t, #f, HOFFSET(struct qs_qreport, f), ty), path)
  QS_H5_FIELD(name, str);
  QS_H5_FIELD(layer, H5T_NATIVE_INT);
  QS_H5_FIELD(n, H5T_NATIVE_INT);
  QS_H5_FIELD(k, H5T_NATIVE_INT);
  QS_H5_FIELD(loss, H5T_NATIVE_DOUBLE);
  QS_H5_FIELD(rel_err, H5T_NATIVE_DOUBLE);
  QS_H5_FIELD(damp, H5T_NATIVE_FLOAT);
  QS_H5_FIELD(damp_raises, H5T_NATIVE_INT);
  QS_H5_FIELD(seconds, H5T_NATIVE_DOUBLE);
  QS_H5_FIELD(packed, H5T_NATIVE_INT);
#undef QS_H5_FIELD
  *out = t;
  t = -1;
fail:
  h5_close(&t, H5Tclose);
  h5_close(&str, H5Tclose);
  return status;
}

static qs_status write_reports(hid_t f, const struct qs_qreport *r, int n, const char *path) {
  qs_status status = QS_OK;
  hid_t ty = -1, sp = -1, ds = -1;
  hsize_t dims[1] = {(hsize_t)n};
  QS_TRY(report_type(&ty, path));
  QS_H5(QS_ERR_IO, sp = H5Screate_simple(1, dims, NULL), path);
  QS_H5(QS_ERR_IO, ds = H5Dcreate2(f, "/reports", ty, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path);
  if (n > 0) QS_H5(QS_ERR_IO, H5Dwrite(ds, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, r), path);
fail:
  h5_close(&ds, H5Dclose);
  h5_close(&sp, H5Sclose);
  h5_close(&ty, H5Tclose);
  return status;
}

// max_rows: the most report rows the state can hold (its completed layers' modules): a file claiming
// more is refused before anything is allocated for it.
static qs_status read_reports(hid_t f, struct qs_qreport **r, int *n, long long max_rows, const char *path) {
  qs_status status = QS_OK;
  hid_t ty = -1, sp = -1, ds = -1;
  hsize_t dims[1] = {0};
  *r = NULL;
  QS_TRY(report_type(&ty, path));
  QS_H5(QS_ERR_FORMAT, ds = H5Dopen2(f, "/reports", H5P_DEFAULT), path);
  QS_H5(QS_ERR_FORMAT, sp = H5Dget_space(ds), path);
  if (H5Sget_simple_extent_ndims(sp) != 1) QS_FAIL(QS_ERR_FORMAT, "%s: /reports is not 1-D", path);
  QS_H5(QS_ERR_FORMAT, H5Sget_simple_extent_dims(sp, dims, NULL), path);
  if (dims[0] > (hsize_t)max_rows)
    QS_FAIL(QS_ERR_FORMAT, "%s: /reports has %llu rows, more than the %lld modules of the completed layers", path,
            (unsigned long long)dims[0], max_rows);
  QS_ALLOC(*r, dims[0]);
  if (dims[0] > 0) QS_H5(QS_ERR_FORMAT, H5Dread(ds, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, *r), path);
  // A file's NULLTERM string may fill its whole width without the NUL (HDF5 copies it as stored).
  for (hsize_t i = 0; i < dims[0]; i++) (*r)[i].name[sizeof((*r)[i].name) - 1] = '\0';
  *n = (int)dims[0];
fail:
  if (status != QS_OK) { free(*r); *r = NULL; }
  h5_close(&ds, H5Dclose);
  h5_close(&sp, H5Sclose);
  h5_close(&ty, H5Tclose);
  return status;
}

qs_status qs_qstate_h5_write_state(const char *path, int completed, int n_layers, int ranks, const char *fp,
                                   const struct qs_qreport *reports, int n_reports) {
  qs_status status = QS_OK;
  char tmp[4096] = "";
  hid_t f = -1;
  QS_TRY(file_create(path, tmp, &f));
  QS_TRY(attr_write_str(f, "format", QS_QSTATE_FORMAT, tmp));
  QS_TRY(attr_write_i64(f, "completed", completed, tmp));
  QS_TRY(attr_write_i64(f, "n_layers", n_layers, tmp));
  QS_TRY(attr_write_i64(f, "ranks", ranks, tmp));
  QS_TRY(attr_write_str(f, "fingerprint", fp, tmp));
  QS_TRY(write_reports(f, reports, n_reports, tmp));
  QS_TRY(file_commit(&f, tmp, path));
  return QS_OK;
fail:
  file_abort(&f, tmp);
  return status;
}

qs_status qs_qstate_h5_read_state(const char *path, int *completed, int *ranks, char **fp,
                                  struct qs_qreport **reports, int *n_reports) {
  qs_status status = QS_OK;
  hid_t f = -1;
  char *format = NULL;
  long long c = 0, r = 0;
  *fp = NULL;
  *reports = NULL;
  QS_TRY(file_open(path, &f));
  QS_TRY(attr_read_str(f, "format", &format, path));
  if (strcmp(format, QS_QSTATE_FORMAT))
    QS_FAIL(QS_ERR_FORMAT, "%s: state format '%s', this qshard reads '%s'", path, format, QS_QSTATE_FORMAT);
  QS_TRY(attr_read_i64(f, "completed", &c, path));
  QS_TRY(attr_read_i64(f, "ranks", &r, path));
  QS_TRY(attr_read_str(f, "fingerprint", fp, path));
  if (c < 0 || c > (1 << 20)) QS_FAIL(QS_ERR_FORMAT, "%s: %lld completed layers", path, c);
  QS_TRY(read_reports(f, reports, n_reports, c * QS_LIN_COUNT, path));
  *completed = (int)c;
  *ranks = (int)r;
fail:
  if (status != QS_OK) { free(*fp); *fp = NULL; }
  free(format);
  h5_close(&f, H5Fclose);
  return status;
}

// ---- x files -------------------------------------------------------------------------------------

// Selects sample b ([1, T, hidden]) of the file space; sample by sample keeps each transfer far
// below HDF5's 2 GiB-per-call limits whatever the total (405B: 128 MiB per 2048-token sample).
static qs_status select_sample(hid_t fsp, long long b, const struct qs_qstate_x *id, const char *path) {
  qs_status status = QS_OK;
  hsize_t start[3] = {(hsize_t)b, 0, 0}, count[3] = {1, (hsize_t)id->T, (hsize_t)id->hidden};
  QS_H5(QS_ERR_IO, H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL), path);
fail:
  return status;
}

static qs_status write_x_attrs(hid_t ds, const struct qs_qstate_x *id, const char *path) {
  qs_status status = QS_OK;
  QS_TRY(attr_write_i64(ds, "completed", id->completed, path));
  QS_TRY(attr_write_i64(ds, "rank", id->rank, path));
  QS_TRY(attr_write_i64(ds, "ranks", id->ranks, path));
  QS_TRY(attr_write_i64(ds, "s0", id->s0, path));
  QS_TRY(attr_write_i64(ds, "s1", id->s1, path));
  QS_TRY(attr_write_str(ds, "fingerprint", id->fp, path));
fail:
  return status;
}

qs_status qs_qstate_h5_write_x(const char *path, const struct qs_qstate_x *id, const float *x) {
  qs_status status = QS_OK;
  char tmp[4096] = "";
  hid_t f = -1, fsp = -1, msp = -1, ds = -1;
  long long B = id->s1 - id->s0;
  hsize_t dims[3] = {(hsize_t)B, (hsize_t)id->T, (hsize_t)id->hidden}, row = (hsize_t)id->T * (hsize_t)id->hidden;
  QS_TRY(file_create(path, tmp, &f));
  QS_H5(QS_ERR_IO, fsp = H5Screate_simple(3, dims, NULL), tmp);
  QS_H5(QS_ERR_IO, msp = H5Screate_simple(1, &row, NULL), tmp);
  QS_H5(QS_ERR_IO, ds = H5Dcreate2(f, "/x", H5T_IEEE_F32LE, fsp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), tmp);
  for (long long b = 0; b < B; b++) {
    QS_TRY(select_sample(fsp, b, id, tmp));
    QS_H5(QS_ERR_IO, H5Dwrite(ds, H5T_NATIVE_FLOAT, msp, fsp, H5P_DEFAULT, x + (size_t)b * row), tmp);
  }
  QS_TRY(write_x_attrs(ds, id, tmp));
  herr_t closed = H5Dclose(ds);
  ds = -1;
  if (closed < 0) QS_FAIL(QS_ERR_IO, "%s: /x: close failed (%s)", tmp, h5_reason());
  h5_close(&msp, H5Sclose);
  h5_close(&fsp, H5Sclose);
  QS_TRY(file_commit(&f, tmp, path));
  return QS_OK;
fail:
  h5_close(&ds, H5Dclose);
  h5_close(&msp, H5Sclose);
  h5_close(&fsp, H5Sclose);
  file_abort(&f, tmp);
  return status;
}

// The file must be the one this rank wrote for this state: same count, samples, shape, fingerprint.
static qs_status check_x(hid_t ds, hid_t fsp, const struct qs_qstate_x *id, const char *path) {
  qs_status status = QS_OK;
  hsize_t dims[3] = {0, 0, 0};
  long long c = -1, s0 = -1, s1 = -1;
  char *fp = NULL;
  if (H5Sget_simple_extent_ndims(fsp) != 3) QS_FAIL(QS_ERR_FORMAT, "%s: /x is not 3-D", path);
  QS_H5(QS_ERR_FORMAT, H5Sget_simple_extent_dims(fsp, dims, NULL), path);
  if (dims[0] != (hsize_t)(id->s1 - id->s0) || dims[1] != (hsize_t)id->T || dims[2] != (hsize_t)id->hidden)
    QS_FAIL(QS_ERR_FORMAT, "%s: /x is [%llu, %llu, %llu], this rank expects [%lld, %d, %d]", path,
            (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
            id->s1 - id->s0, id->T, id->hidden);
  QS_TRY(attr_read_i64(ds, "completed", &c, path));
  QS_TRY(attr_read_i64(ds, "s0", &s0, path));
  QS_TRY(attr_read_i64(ds, "s1", &s1, path));
  QS_TRY(attr_read_str(ds, "fingerprint", &fp, path));
  if (c != id->completed || s0 != id->s0 || s1 != id->s1 || strcmp(fp, id->fp))
    QS_FAIL(QS_ERR_FORMAT, "%s: written for %lld layers and samples [%lld, %lld) of another run, not %d layers "
            "and [%lld, %lld) of this one", path, c, s0, s1, id->completed, id->s0, id->s1);
fail:
  free(fp);
  return status;
}

qs_status qs_qstate_h5_read_x(const char *path, const struct qs_qstate_x *id, float *x) {
  qs_status status = QS_OK;
  hid_t f = -1, fsp = -1, msp = -1, ds = -1;
  hsize_t row = (hsize_t)id->T * (hsize_t)id->hidden;
  QS_TRY(file_open(path, &f));
  QS_H5(QS_ERR_FORMAT, ds = H5Dopen2(f, "/x", H5P_DEFAULT), path);
  QS_H5(QS_ERR_FORMAT, fsp = H5Dget_space(ds), path);
  QS_TRY(check_x(ds, fsp, id, path));
  QS_H5(QS_ERR_FORMAT, msp = H5Screate_simple(1, &row, NULL), path);
  for (long long b = 0; b < id->s1 - id->s0; b++) {
    QS_TRY(select_sample(fsp, b, id, path));
    QS_H5(QS_ERR_FORMAT, H5Dread(ds, H5T_NATIVE_FLOAT, msp, fsp, H5P_DEFAULT, x + (size_t)b * row), path);
  }
fail:
  h5_close(&ds, H5Dclose);
  h5_close(&msp, H5Sclose);
  h5_close(&fsp, H5Sclose);
  h5_close(&f, H5Fclose);
  return status;
}
