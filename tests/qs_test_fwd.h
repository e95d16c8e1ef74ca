// qs_test_fwd.h — helpers shared by the forward-kernel GPU tests (test_kernels_fwd_cuda.c,
// test_kernels_fwd2_cuda.c): seeded inputs rounded to a dtype, elementwise checks against a bound
// with a summary line, device copies. The including file defines `static uint64_t g_rng` (its seed)
// before including this header.
#ifndef QS_TEST_FWD_H
#define QS_TEST_FWD_H

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "base/dtype.h"
#include "model/ops.h"
#include "qs_test.h"

static double test_uniform(double lo, double hi) { // splitmix64 -> [lo, hi)
  return lo + (hi - lo) * (double)(qs_mix64(g_rng += QS_WEYL) >> 11) * 0x1p-53;
}

#define TEST_ALLOC(...)                                                                 \
  do {                                                                                  \
    void *ptrs_[] = {__VA_ARGS__};                                                      \
    for (size_t i_ = 0; i_ < sizeof(ptrs_) / sizeof(ptrs_[0]); i_++)                    \
      if (!ptrs_[i_]) {                                                                 \
        fprintf(stderr, "FAIL %s:%d: out of host memory\n", __FILE__, __LINE__);        \
        qs_test_failures++;                                                             \
        goto done;                                                                      \
      }                                                                                 \
  } while (0)

static double test_unit_roundoff(qs_dtype dt) {
  return dt == QS_DTYPE_BF16 ? 0x1p-8 : dt == QS_DTYPE_F16 ? 0x1p-11 : 0.0;
}
static double test_atol(qs_dtype dt) { return dt == QS_DTYPE_F16 ? 0x1p-25 : FLT_MIN; }

// x[i] <- U(lo, hi) rounded to dt; h receives the dt encoding (NULL: fp32 values only).
static void test_fill(float *x, void *h, size_t n, double lo, double hi, qs_dtype dt) {
  for (size_t i = 0; i < n; i++) x[i] = (float)test_uniform(lo, hi);
  if (h) {
    qs_convert_from_f32(x, dt, h, n);
    qs_convert_to_f32(h, dt, x, n);
  }
}

// Elementwise comparison state: bad count, worst |err| / limit, max |err|.
struct test_stat {
  char name[96];
  size_t bad, n;
  double worst, max_err;
};

static void test_stat_add(struct test_stat *s, size_t i, double got, double ref, double lim) {
  const double err = fabs(got - ref);
  if (!(err <= lim)) {
    if (s->bad < 5) fprintf(stderr, "  %s: [%zu] gpu %.17g ref %.17g |diff| %.3g > %.3g\n", s->name, i, got, ref, err, lim);
    s->bad++;
  }
  if (!(err <= s->max_err)) s->max_err = err; // NaN sticks
  if (!(err / lim <= s->worst)) s->worst = err / lim;
  s->n++;
}

static void test_stat_end(const struct test_stat *s) {
  printf("%-56s %zu of %zu outside tolerance, max |err| %.3g, worst err/limit %.3g\n", s->name, s->bad, s->n,
         s->max_err, s->worst);
  CHECK_EQ_INT(s->bad, 0);
}

// Device buffer of `bytes` holding a copy of h (h NULL: filled with the byte `poison`).
static cudaError_t test_dev(void **d, const void *h, size_t bytes, int poison) {
  cudaError_t e = cudaMalloc(d, bytes);
  if (e != cudaSuccess) return e;
  return h ? cudaMemcpy(*d, h, bytes, cudaMemcpyHostToDevice) : cudaMemset(*d, poison, bytes);
}


// ---- attention references (both attention tests) ----------------------------------------------
// A per query row: scale * |q_t,h| * max_j |k_j,kvh| >= scale * sum_d |q_d k_jd| (Cauchy-Schwarz).
static void test_attention_amax(const float *q, const float *k, float *amax, int B, int T, int H, int Hkv, int D) {
  const double scale = 1.0 / sqrt((double)D);
  for (int b = 0; b < B; b++)
    for (int hk = 0; hk < Hkv; hk++) {
      double kmax = 0;
      for (int t = 0; t < T; t++) {
        const float *kr = k + (((size_t)b * T + t) * Hkv + hk) * D;
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)kr[d] * kr[d];
        kmax = sqrt(s) > kmax ? sqrt(s) : kmax;
      }
      for (int t = 0; t < T; t++)
        for (int h = hk * (H / Hkv); h < (hk + 1) * (H / Hkv); h++) {
          const float *qr = q + (((size_t)b * T + t) * H + h) * D;
          double s = 0;
          for (int d = 0; d < D; d++) s += (double)qr[d] * qr[d];
          amax[((size_t)b * T + t) * H + h] = (float)(scale * sqrt(s) * kmax);
        }
    }
}

// Reference out and W (attention over |v|) for each sequence of the batch.
static void test_attention_ref(const float *q, const float *k, const float *v, float *vabs, float *ref, float *w,
                               float *scratch, int B, int T, int H, int Hkv, int D) {
  const size_t qs = (size_t)T * H * D, kvs = (size_t)T * Hkv * D;
  for (size_t i = 0; i < (size_t)B * kvs; i++) vabs[i] = fabsf(v[i]);
  for (int b = 0; b < B; b++) {
    qs_attention_ref(q + b * qs, k + b * kvs, v + b * kvs, ref + b * qs, T, H, Hkv, D, scratch);
    qs_attention_ref(q + b * qs, k + b * kvs, vabs + b * kvs, w + b * qs, T, H, Hkv, D, scratch);
  }
}

#endif
