// fuzz_h5.h — what fuzz_hdf5 and fuzz_state share: HDF5 files written from a fuzz input, and the check
// that qshard leaves no HDF5 object open.
//
// Why the files are written, not mutated: libhdf5 1.10.8 crashes by itself on byte-mutated files (a
// NULL memcpy in H5F__accum_read, mallocs of sizes read from the file), so a byte-level harness only
// finds HDF5's bugs, and every run stops at the first. These harnesses instead read the input as a
// description of a valid HDF5 file — which objects exist, their datatype (integer of any size, sign and
// byte order, float, fixed or variable string, compound, array, bitfield, opaque), dataspace (scalar,
// null, rank 1-4; dimensions small, off by a few, or huge with no data stored), layout (contiguous,
// compact, chunked, deflated), values — write it with HDF5, and give it to qshard: what qshard does
// with whatever HDF5 returns. Byte value 0 picks the expected choice everywhere, so a short or zero
// input is a well-formed file. QS_FUZZ_H5_RAW=1 in the environment makes the input the file's bytes
// instead (for hunting libhdf5's own bugs; tests/fuzz/run.sh does not use it).
//
// The check: after each call as many HDF5 files and objects in them are open as before it. A leaked
// identifier keeps the file open inside HDF5 (the next open of the same path gets the old file back);
// LeakSanitizer cannot see it (the identifier table still points at it).
#ifndef QS_FUZZ_H5_H
#define QS_FUZZ_H5_H

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline ssize_t qs_fuzz_h5_count(void) {
  ssize_t n = H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
  if (n < 0) abort();
  return n;
}

// Aborts when more files or objects are open than `before`.
static inline void qs_fuzz_h5_check(ssize_t before, const char *what) {
  ssize_t now = qs_fuzz_h5_count();
  if (now > before) {
    fprintf(stderr, "fuzz: %s left %zd HDF5 file(s) or object(s) open\n", what, now - before);
    abort();
  }
}

static inline int qs_fuzz_h5_raw(void) {
  const char *e = getenv("QS_FUZZ_H5_RAW");
  return e && e[0] == '1';
}

// ---- the input as a stream of choices (0 once it is used up) -----------------------------------------
struct qs_fuzz_rd {
  const uint8_t *p;
  size_t n;
};

static inline unsigned qs_fuzz_u8(struct qs_fuzz_rd *r) {
  if (!r->n) return 0;
  r->n--;
  return *r->p++;
}

static inline void qs_fuzz_bytes(struct qs_fuzz_rd *r, void *dst, size_t n) {
  size_t k = n < r->n ? n : r->n;
  memcpy(dst, r->p, k);
  memset((char *)dst + k, 0, n - k);
  r->p += k;
  r->n -= k;
}

// A datatype: choice 0 is a copy of `def`.
static inline hid_t qs_fuzz_h5_type(struct qs_fuzz_rd *r, hid_t def) {
  static const hid_t *const ints[] = {&H5T_STD_I64LE_g, &H5T_STD_U32LE_g, &H5T_STD_U64LE_g, &H5T_STD_I16BE_g,
                                      &H5T_STD_U8LE_g,  &H5T_STD_I8LE_g,  &H5T_IEEE_F32LE_g, &H5T_IEEE_F64BE_g,
                                      &H5T_STD_I32BE_g, &H5T_STD_I32LE_g, &H5T_STD_B8LE_g};
  unsigned c = qs_fuzz_u8(r) % 16;
  hid_t t = -1, a = -1;
  hsize_t two = 2;
  if (c == 0) return H5Tcopy(def);
  if (c <= 11) return H5Tcopy(*ints[c - 1]);
  switch (c) {
  case 12: // fixed-length string of 1..32 bytes, any padding
  case 13: // variable-length string
    t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, c == 13 ? H5T_VARIABLE : 1 + qs_fuzz_u8(r) % 32);
    H5Tset_strpad(t, (H5T_str_t)(qs_fuzz_u8(r) % 3));
    return t;
  case 14:
    t = H5Tcreate(H5T_COMPOUND, 8);
    H5Tinsert(t, "a", 0, H5T_STD_I32LE);
    H5Tinsert(t, "b", 4, H5T_IEEE_F32LE);
    return t;
  default:
    if (qs_fuzz_u8(r) & 1) return H5Tcreate(H5T_OPAQUE, 4);
    a = H5Tarray_create2(H5T_STD_I32LE, 1, &two);
    return a;
  }
}

// A dataspace: choice 0 is `def` (rank 0 = scalar). Huge dimensions (*big = 1) only where allowed.
static inline hid_t qs_fuzz_h5_space(struct qs_fuzz_rd *r, int rank_def, const hsize_t *dims_def, int allow_big,
                                     int *big) {
  hsize_t dims[4] = {0, 0, 0, 0};
  unsigned c = qs_fuzz_u8(r) % 8;
  int rank = rank_def;
  *big = 0;
  if (c == 1) return H5Screate(H5S_SCALAR);
  if (c == 2) return H5Screate(H5S_NULL);
  if (c >= 3 && c <= 6) rank = (int)c - 2;
  if (rank == 0) return H5Screate(H5S_SCALAR);
  for (int i = 0; i < rank; i++) {
    dims[i] = i < rank_def ? dims_def[i] : 1;
    if (c == 0) continue;
    unsigned b = qs_fuzz_u8(r);
    if (c == 7) dims[i] += (hsize_t)(int8_t)b; // off by a few (or wrapped: huge)
    else if (b < 0xc0 || !allow_big) dims[i] = b % 24;
    else dims[i] = 1ull << (16 + (b & 0x3f) % 44);
    if (dims[i] > (1ull << 20)) *big = 1;
  }
  if (*big && !allow_big) return H5Screate(H5S_SCALAR);
  hsize_t maxd[4] = {H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED, H5S_UNLIMITED};
  return H5Screate_simple(rank, dims, maxd);
}

// n elements of type t from the input (variable-length strings: pointers into `pool`, freed by the
// caller); def (n_def bytes) instead when `use_def` and the sizes match.
static inline void *qs_fuzz_h5_data(struct qs_fuzz_rd *r, hid_t t, size_t n, const void *def, size_t n_def,
                                    int use_def, char **pool) {
  size_t es = H5Tget_size(t);
  int vlen = H5Tis_variable_str(t) > 0;
  void *buf = calloc(n ? n : 1, vlen ? sizeof(char *) : es);
  if (!buf) abort();
  *pool = NULL;
  if (vlen) {
    *pool = calloc(n ? n : 1, 9);
    if (!*pool) abort();
    for (size_t i = 0; i < n; i++) {
      qs_fuzz_bytes(r, *pool + 9 * i, 1 + qs_fuzz_u8(r) % 8);
      ((char **)buf)[i] = *pool + 9 * i;
    }
  } else if (use_def && def && n * es == n_def) {
    memcpy(buf, def, n_def);
  } else {
    qs_fuzz_bytes(r, buf, n * es);
  }
  return buf;
}

// Object `name` in loc — a dataset, or an attribute when `attr` — with a datatype, dataspace and values
// drawn from r around the expected ones (def_type, rank and dims, def values of n_def bytes). Failures
// (a combination HDF5 refuses) leave the object out. 1 when made.
static inline int qs_fuzz_h5_object(struct qs_fuzz_rd *r, hid_t loc, const char *name, int attr, hid_t def_type,
                                    int rank_def, const hsize_t *dims_def, const void *def, size_t n_def) {
  int big = 0, made = 0;
  hid_t t = qs_fuzz_h5_type(r, def_type), dcpl = -1, obj = -1;
  hid_t s = qs_fuzz_h5_space(r, rank_def, dims_def, !attr, &big);
  unsigned layout = qs_fuzz_u8(r);
  char *pool = NULL;
  void *buf = NULL;
  hssize_t np = H5Sget_simple_extent_npoints(s);
  size_t n = np > 0 ? (size_t)np : 0;
  if (t < 0 || s < 0) goto done;
  if (big || n > (1u << 16)) layout = 2; // nothing written: chunked, its values the fill value
  if (!attr) {
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int rank = H5Sget_simple_extent_ndims(s);
    if (layout % 4 >= 2 && rank > 0) { // chunked (deflated when 3)
      hsize_t chunk[4] = {1, 1, 1, 1}, dims[4];
      H5Sget_simple_extent_dims(s, dims, NULL);
      for (int i = 0; i < rank; i++) chunk[i] = dims[i] > 0 && dims[i] < 16 ? dims[i] : 16;
      H5Pset_chunk(dcpl, rank, chunk);
      if (layout % 4 == 3 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) H5Pset_deflate(dcpl, 1);
    } else if (layout % 4 == 1 && n * H5Tget_size(t) < 32768) {
      hsize_t dims[4];
      H5Sget_simple_extent_dims(s, dims, NULL);
      H5Sset_extent_simple(s, rank, dims, NULL); // compact needs fixed dimensions
      H5Pset_layout(dcpl, H5D_COMPACT);
    } else if (rank > 0) {
      hsize_t dims[4];
      H5Sget_simple_extent_dims(s, dims, NULL);
      H5Sset_extent_simple(s, rank, dims, NULL); // contiguous needs fixed dimensions
    }
    obj = H5Dcreate2(loc, name, t, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  } else {
    int rank = H5Sget_simple_extent_ndims(s);
    hsize_t dims[4];
    if (rank > 0 && H5Sget_simple_extent_dims(s, dims, NULL) >= 0)
      H5Sset_extent_simple(s, rank, dims, NULL); // attributes have fixed dimensions
    obj = H5Acreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  }
  if (obj < 0) goto done;
  made = 1;
  if (big || n > (1u << 16) || n == 0) goto done;
  buf = qs_fuzz_h5_data(r, t, n, def, n_def, (layout & 0x80) == 0, &pool);
  if (attr) H5Awrite(obj, t, buf);
  else H5Dwrite(obj, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
done:
  free(buf);
  free(pool);
  if (obj >= 0) attr ? H5Aclose(obj) : H5Dclose(obj);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (s >= 0) H5Sclose(s);
  if (t >= 0) H5Tclose(t);
  H5Eclear2(H5E_DEFAULT);
  return made;
}

// An attribute, left out when its choice byte says so (1 in 16).
static inline void qs_fuzz_h5_attr(struct qs_fuzz_rd *r, hid_t loc, const char *name, hid_t def_type,
                                   const void *def, size_t n_def) {
  if (qs_fuzz_u8(r) % 16 == 15) return;
  qs_fuzz_h5_object(r, loc, name, 1, def_type, 0, NULL, def, n_def);
}

static inline void qs_fuzz_h5_attr_i64(struct qs_fuzz_rd *r, hid_t loc, const char *name, long long v) {
  qs_fuzz_h5_attr(r, loc, name, H5T_STD_I64LE, &v, sizeof(v));
}

// A fixed-length NUL-terminated string attribute, as qshard writes them.
static inline void qs_fuzz_h5_attr_str(struct qs_fuzz_rd *r, hid_t loc, const char *name, const char *v) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(v) + 1);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  qs_fuzz_h5_attr(r, loc, name, t, v, strlen(v) + 1);
  H5Tclose(t);
}

// Creates `path` (truncated); -1 when HDF5 cannot.
static inline hid_t qs_fuzz_h5_create(const char *path) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  return H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
}

#endif
