// fuzz_state.c — libFuzzer harness of the resume state files (run/qstate_h5.c). Byte 0 even: a state.h5
// read by qs_qstate_h5_read_state; odd: an x file read by qs_qstate_h5_read_x for the identity
// fuzz_common.h names, into a buffer of exactly [s1 - s0, T, hidden] floats. The rest describes the
// file (fuzz_h5.h): each attribute qshard writes (format, completed, n_layers, ranks, fingerprint; on
// /x completed, rank, ranks, s0, s1, fingerprint) and the dataset (/reports, the compound of struct
// qs_qreport, 2 rows; /x float32 [2, 4, 8]) with its datatype, dataspace, layout and values drawn
// around the expected ones. With QS_FUZZ_H5_RAW=1 the rest is the file itself. An HDF5 object left
// open by a call is a finding.
// Run: build-fuzz/fuzz/fuzz_state CORPUS_DIR (tests/fuzz/run.sh seeds and runs it).
#include "fuzz_common.h"

#include "fuzz_h5.h"

#include "run/qstate.h"
#include "run/run.h"

// struct qs_qreport as qstate_h5.c stores it.
static hid_t report_type(void) {
  hid_t str = H5Tcopy(H5T_C_S1), t = H5Tcreate(H5T_COMPOUND, sizeof(struct qs_qreport));
  H5Tset_size(str, sizeof(((struct qs_qreport *)0)->name));
  H5Tset_strpad(str, H5T_STR_NULLTERM);
#define QS_FIELD(f, ty) H5Tinsert(t, #f, HOFFSET(struct qs_qreport, f), ty)
  QS_FIELD(name, str);
  QS_FIELD(layer, H5T_NATIVE_INT);
  QS_FIELD(n, H5T_NATIVE_INT);
  QS_FIELD(k, H5T_NATIVE_INT);
  QS_FIELD(loss, H5T_NATIVE_DOUBLE);
  QS_FIELD(rel_err, H5T_NATIVE_DOUBLE);
  QS_FIELD(damp, H5T_NATIVE_FLOAT);
  QS_FIELD(damp_raises, H5T_NATIVE_INT);
  QS_FIELD(seconds, H5T_NATIVE_DOUBLE);
  QS_FIELD(packed, H5T_NATIVE_INT);
#undef QS_FIELD
  H5Tclose(str);
  return t;
}

static int write_state(const char *path, struct qs_fuzz_rd *r) {
  struct qs_qreport rep[2] = {{.name = "model.layers.0.self_attn.q_proj", .n = 64, .k = 64, .loss = 1.5},
                              {.name = "model.layers.1.mlp.down_proj", .layer = 1, .n = 64, .k = 172}};
  hsize_t dims[1] = {2};
  hid_t f = qs_fuzz_h5_create(path), t = report_type();
  if (f < 0) return 0;
  qs_fuzz_h5_attr_str(r, f, "format", "qshard-resume-2");
  qs_fuzz_h5_attr_i64(r, f, "completed", 2);
  qs_fuzz_h5_attr_i64(r, f, "n_layers", 5);
  qs_fuzz_h5_attr_i64(r, f, "ranks", 1);
  qs_fuzz_h5_attr_str(r, f, "fingerprint", QS_FUZZ_FP);
  if (qs_fuzz_u8(r) % 16 != 15) qs_fuzz_h5_object(r, f, "/reports", 0, t, 1, dims, rep, sizeof(rep));
  H5Tclose(t);
  H5Fclose(f);
  H5Eclear2(H5E_DEFAULT);
  return 1;
}

static int write_x(const char *path, struct qs_fuzz_rd *r) {
  float x[(QS_FUZZ_X_S1 - QS_FUZZ_X_S0) * QS_FUZZ_X_T * QS_FUZZ_X_HIDDEN];
  hsize_t dims[3] = {QS_FUZZ_X_S1 - QS_FUZZ_X_S0, QS_FUZZ_X_T, QS_FUZZ_X_HIDDEN};
  for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++) x[i] = (float)i * 0.25f - 3.0f;
  hid_t f = qs_fuzz_h5_create(path), ds = -1;
  if (f < 0) return 0;
  if (qs_fuzz_h5_object(r, f, "/x", 0, H5T_IEEE_F32LE, 3, dims, x, sizeof(x)) &&
      (ds = H5Oopen(f, "/x", H5P_DEFAULT)) >= 0) {
    qs_fuzz_h5_attr_i64(r, ds, "completed", QS_FUZZ_X_COMPLETED);
    qs_fuzz_h5_attr_i64(r, ds, "rank", 0);
    qs_fuzz_h5_attr_i64(r, ds, "ranks", 1);
    qs_fuzz_h5_attr_i64(r, ds, "s0", QS_FUZZ_X_S0);
    qs_fuzz_h5_attr_i64(r, ds, "s1", QS_FUZZ_X_S1);
    qs_fuzz_h5_attr_str(r, ds, "fingerprint", QS_FUZZ_FP);
    H5Oclose(ds);
  }
  H5Fclose(f);
  H5Eclear2(H5E_DEFAULT);
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char *path;
  if (size < 1) return 0;
  if (!path) path = qs_fuzz_path("state.h5");
  int x_file = data[0] & 1;
  H5open();
  ssize_t h5_open = qs_fuzz_h5_count();
  if (qs_fuzz_h5_raw()) {
    qs_fuzz_write(path, data + 1, size - 1);
  } else {
    struct qs_fuzz_rd r = {data + 1, size - 1};
    if (!(x_file ? write_x(path, &r) : write_state(path, &r))) return 0;
    qs_fuzz_h5_check(h5_open, "the harness's writer");
  }
  if (!x_file) {
    int completed = 0, ranks = 0, n = 0;
    char *fp = NULL;
    struct qs_qreport *rep = NULL;
    if (qs_qstate_h5_read_state(path, &completed, &ranks, &fp, &rep, &n) == QS_OK) {
      if (!fp || n < 0 || (n > 0 && !rep)) abort();
      (void)strlen(fp);
      for (int i = 0; i < n; i++)
        if (!memchr(rep[i].name, 0, sizeof(rep[i].name))) abort(); // names are printed with %s
      free(fp);
      free(rep);
    }
  } else {
    const struct qs_qstate_x id = {.completed = QS_FUZZ_X_COMPLETED, .rank = 0, .ranks = 1, .s0 = QS_FUZZ_X_S0,
                                   .s1 = QS_FUZZ_X_S1, .T = QS_FUZZ_X_T, .hidden = QS_FUZZ_X_HIDDEN, .fp = QS_FUZZ_FP};
    size_t n = (size_t)(id.s1 - id.s0) * id.T * id.hidden;
    float *x = malloc(n * sizeof(float));
    if (!x) abort();
    (void)qs_qstate_h5_read_x(path, &id, x);
    free(x);
  }
  qs_fuzz_h5_check(h5_open, x_file ? "qs_qstate_h5_read_x" : "qs_qstate_h5_read_state");
  return 0;
}
