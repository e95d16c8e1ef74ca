// fuzz_hdf5.c — libFuzzer harness of the HDF5 token files (io/tokens.c qs_tokens_read / check, io/calib.c
// qs_calib_load). Byte 0 picks the calibration request (samples = b & 7, 0 = every row of a 2-D file;
// seqlen = (b >> 3) * 4); the rest describes the .h5 file (fuzz_h5.h): byte 1 where /input_ids is
// (a dataset; a group; a soft link to a dataset at /data, or dangling; absent), byte 2 its expected
// shape (1-D [100] or 2-D [4, 16]), then its datatype, dataspace, layout and ids. With
// QS_FUZZ_H5_RAW=1 the rest is the file itself. An HDF5 object left open by a call is a finding.
// Run: build-fuzz/fuzz/fuzz_hdf5 CORPUS_DIR (tests/fuzz/run.sh seeds and runs it).
#include "fuzz_common.h"

#include "fuzz_h5.h"

#include "io/calib.h"
#include "io/tokens.h"

#define QS_FUZZ_VOCAB 8192 // gutenberg28M's; stories260K's 512 ids are below it

// The file described by r; 0 when HDF5 could not create it.
static int write_tokens(const char *path, struct qs_fuzz_rd *r) {
  int32_t ids[100];
  hsize_t d1[1] = {100}, d2[2] = {4, 16};
  for (int i = 0; i < 100; i++) ids[i] = i == 0 ? 1 : (i * 37) % 512;
  hid_t f = qs_fuzz_h5_create(path), g = -1;
  if (f < 0) return 0;
  unsigned where = qs_fuzz_u8(r) % 16, two_d = qs_fuzz_u8(r) & 1;
  const char *name = where < 11 ? "/input_ids" : "/data";
  if (where == 11) g = H5Gcreate2(f, "/input_ids", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (where == 12 || where == 13) H5Lcreate_soft(where == 12 ? "/data" : "/nowhere", f, "/input_ids", H5P_DEFAULT, H5P_DEFAULT);
  if (where == 14) H5Lcreate_external("missing.h5", "/input_ids", f, "/input_ids", H5P_DEFAULT, H5P_DEFAULT);
  qs_fuzz_h5_object(r, f, name, 0, H5T_STD_I32LE, two_d ? 2 : 1, two_d ? d2 : d1, ids,
                    (two_d ? 64 : 100) * sizeof(int32_t));
  if (g >= 0) H5Gclose(g);
  H5Fclose(f);
  H5Eclear2(H5E_DEFAULT);
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char *path;
  if (size < 1) return 0;
  if (!path) path = qs_fuzz_path("tokens.h5");
  int samples = data[0] & 7, seqlen = (data[0] >> 3) * 4;
  H5open();
  ssize_t h5_open = qs_fuzz_h5_count();
  if (qs_fuzz_h5_raw()) {
    qs_fuzz_write(path, data + 1, size - 1);
  } else {
    struct qs_fuzz_rd r = {data + 1, size - 1};
    if (!write_tokens(path, &r)) return 0;
    qs_fuzz_h5_check(h5_open, "the harness's writer");
  }
  struct qs_tokens t;
  if (qs_tokens_read(path, NULL, &t) == QS_OK) {
    if ((t.ndim != 1 && t.ndim != 2) || t.rows < 0 || t.cols < 0 || (t.ndim == 1 && t.rows != 1)) abort();
    // Every id is readable (ASan checks the buffer holds rows * cols).
    volatile uint32_t sum = 0;
    for (int64_t i = 0; i < t.rows * t.cols; i++) sum += (uint32_t)t.ids[i];
    (void)sum;
    (void)qs_tokens_check(&t, QS_FUZZ_VOCAB, path);
    qs_tokens_free(&t);
  }
  qs_fuzz_h5_check(h5_open, "qs_tokens_read");
  struct qs_calib cal;
  if (qs_calib_load(path, samples, seqlen, 1234, QS_FUZZ_VOCAB, &cal) == QS_OK) {
    volatile uint32_t sum = 0;
    for (int64_t i = 0; i < (int64_t)cal.n * cal.seqlen; i++) sum += (uint32_t)cal.ids[i];
    (void)sum;
    qs_calib_free(&cal);
  }
  qs_fuzz_h5_check(h5_open, "qs_calib_load");
  return 0;
}
