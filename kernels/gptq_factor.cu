// gptq_factor.cu — the GPTQ inverse-Hessian factor U = J L^-1 J on the GPU (cuSOLVER potrf + trtri,
// fp32 or fp64) and the prepared factor of qs_gptq_prep_cuda_init. Test and benchmark:
// tests/test_gptq_cuda.c (label gpu).
//
// Why J L^-1 J: with J the reversal and J A J = L Lᵀ, A^-1 = (J L^-1 J)ᵀ (J L^-1 J) and J L^-1 J is
// upper triangular with a positive diagonal, i.e. THE Cholesky factor of A^-1 (src/quant/gptq.c derives
// it): one factorization and one triangular inverse instead of the reference's chol -> inverse ->
// chol. On a row-major buffer J A J is the buffer read backwards, and cuSOLVER's column-major
// 'upper' view of a row-major buffer is its row-major lower triangle, so: reverse (or gather the
// reversed, permuted, damped H directly), potrf 'U', trtri 'U', reverse with the lower part zeroed.
// Host side (tiny): the diagonal, dead columns, the act-order sort and the damping loop, copied from
// src/quant/gptq.c so that both paths choose the same permutation and damping for the same H.
// Measured (H100 SXM, fp32, prep total / potrf / trtri): K 4096 13 / 4.4 / 8.5 ms, K 14336
// 158 / 42 / 113 ms, K 28672 777 / 244 / 523 ms; fp64 prep 17, 192, 922 ms. cusolverDnXtrtri is
// two thirds of the time at 2.7-15 TFLOP/s: a blocked inverse through cuBLAS trsm/trmm is the next
// step if the factor matters.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>

#include "gptq_factor.h"
#include "qs_cuda.h"

// Triangular inverse: diagonal blocks up to this size go to cusolverDnXtrtri, larger ones are split
// in two and joined with two cuBLAS trsm (qs_gf_trinv). cuSOLVER's trtri alone was two thirds of
// the factor time at K = 28672 and allocates a K-sized workspace (it failed for K = 53248 next to a
// 405B layer); the split does the same n^3/3 flops as GEMM-shaped trsm calls, in place.
constexpr int64_t QS_GF_TRINV_LEAF = 512;

// ---- kernels ------------------------------------------------------------------------------------

// A[t] <-> A[n-1-t]: J A J of a row-major square buffer of n elements.
__global__ void qs_gf_reverse_kernel(float *A, int64_t n) {
  int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= n / 2) return;
  float a = A[t];
  A[t] = A[n - 1 - t];
  A[n - 1 - t] = a;
}

// Ad[t] = A[n-1-t] in fp64 (J A J, converted).
__global__ void qs_gf_reverse_f64_kernel(const float *A, double *Ad, int64_t n) {
  int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t < n) Ad[t] = (double)A[n - 1 - t];
}

// Lower triangle (j <= i, all that potrf reads) of J·Hp·J + damp·I, Hp = H[perm][:, perm] with dead
// diagonals 1: exactly qs_gptq_prep_gather's values (the diagonal sum is rounded in fp32 first,
// so the fp64 path factorizes the same matrix).
template <typename T>
__global__ void qs_gf_gather_kernel(const float *H, const int32_t *perm, const uint8_t *dead, T *A, int64_t K,
                                    float damp) {
  int64_t i = blockIdx.y, j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (j > i || i >= K) return;
  int64_t pi = perm[K - 1 - i];
  if (j == i) {
    A[i * K + i] = (T)((dead[pi] ? 1.0f : H[pi * K + pi]) + damp);
  } else {
    A[i * K + j] = (T)H[pi * K + perm[K - 1 - j]];
  }
}

// In place: U = reverse(L^-1 buffer) with the strict lower triangle zeroed (it holds the reversed
// upper part of L^-1's buffer, which trtri leaves untouched). Thread t owns elements t and n-1-t.
__global__ void qs_gf_finish_f32_kernel(float *A, int64_t K) {
  int64_t n = K * K, t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, m = n - 1 - t;
  if (t > m) return;
  float at = A[t], am = A[m];
  A[t] = (t % K >= t / K) ? am : 0.0f;
  A[m] = (m % K >= m / K) ? at : 0.0f;
}

__global__ void qs_gf_finish_f64_kernel(const double *Ad, float *U, int64_t K) {
  int64_t n = K * K, t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t < n) U[t] = (t % K >= t / K) ? (float)Ad[n - 1 - t] : 0.0f;
}

// bad = smallest index of a non-finite entry (or stays ULLONG_MAX).
__global__ void qs_gf_finite_kernel(const float *H, int64_t n, unsigned long long *bad) {
  int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t < n && !isfinite(H[t])) atomicMin(bad, (unsigned long long)t);
}

// QS_ALLOC for C++ (calloc's void * needs a cast there).
#define QS_GF_ALLOC(ptr, n)                                                                           \
  do {                                                                                              \
    (ptr) = (decltype(ptr))calloc((n) ? (size_t)(n) : 1, sizeof(*(ptr)));                           \
    if (!(ptr)) QS_FAIL(QS_ERR_OOM, "out of memory allocating %zu elements", (size_t)(n));          \
  } while (0)

static unsigned qs_gf_blocks(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

// ---- cuSOLVER: potrf 'U' + trtri 'U' on a (reversed) row-major buffer ----------------------------------

struct qs_gf_work {
  cusolverDnParams_t params;
  void *dwork, *hwork;
  size_t dsize, hsize;
  int *dinfo;
};

static void qs_gf_work_free(struct qs_gf_work *w) {
  if (w->params) cusolverDnDestroyParams(w->params);
  cudaFree(w->dwork);
  cudaFree(w->dinfo);
  free(w->hwork);
  memset(w, 0, sizeof(*w));
}

// Workspace for both calls on a K x K buffer of type t (sizes do not depend on the contents).
static qs_status qs_gf_work_init(struct qs_gf_work *w, void *A, int64_t K, cudaDataType_t t,
                                 cusolverDnHandle_t solver) {
  qs_status status = QS_OK;
  size_t d1 = 0, h1 = 0, d2 = 0, h2 = 0;
  memset(w, 0, sizeof(*w));
  QS_CUSOLVER_CHECK(cusolverDnCreateParams(&w->params));
  QS_CUSOLVER_CHECK(cusolverDnXpotrf_bufferSize(solver, w->params, CUBLAS_FILL_MODE_UPPER, K, t, A, K, t, &d1, &h1));
  QS_CUSOLVER_CHECK(cusolverDnXtrtri_bufferSize(solver, CUBLAS_FILL_MODE_UPPER, CUBLAS_DIAG_NON_UNIT,
                                                QS_MIN(K, QS_GF_TRINV_LEAF), t, A, K, &d2, &h2));
  w->dsize = QS_MAX(d1, d2);
  w->hsize = QS_MAX(h1, h2);
  QS_CUDA_CHECK(cudaMalloc(&w->dwork, w->dsize ? w->dsize : 1));
  QS_CUDA_CHECK(cudaMalloc((void **)&w->dinfo, sizeof(int)));
  if (w->hsize && !(w->hwork = malloc(w->hsize)))
    QS_FAIL(QS_ERR_OOM, "out of memory allocating %zu bytes of cuSOLVER host workspace", w->hsize);
fail:
  return status;
}

static qs_status qs_gf_read_info(const struct qs_gf_work *w, int *info, cudaStream_t stream) {
  qs_status status = QS_OK;
  QS_CUDA_CHECK(cudaMemcpyAsync(info, w->dinfo, sizeof(int), cudaMemcpyDeviceToHost, stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(stream));
fail:
  return status;
}

// One cuBLAS handle per process for the trsm calls (bound to the caller's stream at each use).
static qs_status qs_gf_blas(cublasHandle_t *out, cudaStream_t stream) {
  qs_status status = QS_OK;
  static cublasHandle_t h = NULL;
  if (!h) QS_CUBLAS_CHECK(cublasCreate(&h));
  QS_CUBLAS_CHECK(cublasSetStream(h, stream));
  QS_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH)); // no TF32
  *out = h;
fail:
  return status;
}

// In place, column-major upper triangular U [n, n] (leading dimension ld) -> U^-1. With
// U = [A B; 0 C]: U^-1 = [A^-1, -A^-1 B C^-1; 0, C^-1], so B := -A^-1 B, B := B C^-1 (two trsm with
// the original A and C), then A and C are inverted the same way. *info: LAPACK's (0 = ok).
static qs_status qs_gf_trinv(void *U, int64_t n, int64_t ld, cudaDataType_t t, struct qs_gf_work *w, int *info,
                             cusolverDnHandle_t solver, cublasHandle_t blas, cudaStream_t stream) {
  qs_status status = QS_OK;
  const int64_t n1 = QS_CEIL_DIV(n / 2, QS_GF_TRINV_LEAF) * QS_GF_TRINV_LEAF, n2 = n - n1;
  const size_t es = t == CUDA_R_64F ? 8 : 4;
  char *A = (char *)U, *B = A + (size_t)(n1 * ld) * es, *C = B + (size_t)n1 * es;
  if (n <= QS_GF_TRINV_LEAF) {
    QS_CUSOLVER_CHECK(cusolverDnXtrtri(solver, CUBLAS_FILL_MODE_UPPER, CUBLAS_DIAG_NON_UNIT, n, t, U, ld, w->dwork,
                                       w->dsize, w->hwork, w->hsize, w->dinfo));
    return qs_gf_read_info(w, info, stream);
  }
  if (t == CUDA_R_64F) {
    const double m1 = -1.0, p1 = 1.0;
    QS_CUBLAS_CHECK(cublasDtrsm(blas, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT,
                                (int)n1, (int)n2, &m1, (double *)A, (int)ld, (double *)B, (int)ld));
    QS_CUBLAS_CHECK(cublasDtrsm(blas, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT,
                                (int)n1, (int)n2, &p1, (double *)C, (int)ld, (double *)B, (int)ld));
  } else {
    const float m1 = -1.0f, p1 = 1.0f;
    QS_CUBLAS_CHECK(cublasStrsm(blas, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT,
                                (int)n1, (int)n2, &m1, (float *)A, (int)ld, (float *)B, (int)ld));
    QS_CUBLAS_CHECK(cublasStrsm(blas, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT,
                                (int)n1, (int)n2, &p1, (float *)C, (int)ld, (float *)B, (int)ld));
  }
  QS_TRY(qs_gf_trinv(A, n1, ld, t, w, info, solver, blas, stream));
  if (*info != 0) return QS_OK;
  QS_TRY(qs_gf_trinv(C, n2, ld, t, w, info, solver, blas, stream));
  if (*info > 0) *info += (int)n1;
fail:
  return status;
}

// Row-major A (lower triangle read) -> L^-1 in its lower triangle; *info as LAPACK's.
static qs_status qs_gf_chol_inverse(void *A, int64_t K, cudaDataType_t t, struct qs_gf_work *w, int *info,
                                    cusolverDnHandle_t solver, cudaStream_t stream) {
  qs_status status = QS_OK;
  cublasHandle_t blas = NULL;
  QS_CUSOLVER_CHECK(cusolverDnXpotrf(solver, w->params, CUBLAS_FILL_MODE_UPPER, K, t, A, K, t, w->dwork, w->dsize,
                                     w->hwork, w->hsize, w->dinfo));
  QS_TRY(qs_gf_read_info(w, info, stream));
  if (*info != 0) return QS_OK;
  QS_TRY(qs_gf_blas(&blas, stream));
  QS_TRY(qs_gf_trinv(A, K, K, t, w, info, solver, blas, stream));
fail:
  return status;
}

// L^-1 buffer (fp32 in place, or fp64 Ad) -> U in A.
static qs_status qs_gf_finish_launch(float *A, const double *Ad, int64_t K, cudaStream_t stream) {
  qs_status status = QS_OK;
  int64_t n = K * K;
  if (Ad)
    qs_gf_finish_f64_kernel<<<qs_gf_blocks(n, 256), 256, 0, stream>>>(Ad, A, K);
  else
    qs_gf_finish_f32_kernel<<<qs_gf_blocks((n + 1) / 2, 256), 256, 0, stream>>>(A, K);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

extern "C" qs_status qs_gptq_inverse_factor_cuda(float *A, int64_t K, int f64, int *info,
                                                 cusolverDnHandle_t solver, cudaStream_t stream) {
  qs_status status = QS_OK;
  struct qs_gf_work w = {};
  double *Ad = NULL;
  int64_t n = K * K;
  *info = 0;
  if (K <= 0) QS_FAIL(QS_ERR_ARG, "gptq factor: K = %lld", (long long)K);
  QS_CUSOLVER_CHECK(cusolverDnSetStream(solver, stream));
  if (f64) {
    QS_CUDA_CHECK(cudaMalloc((void **)&Ad, sizeof(double) * (size_t)n));
    qs_gf_reverse_f64_kernel<<<qs_gf_blocks(n, 256), 256, 0, stream>>>(A, Ad, n);
  } else {
    qs_gf_reverse_kernel<<<qs_gf_blocks(n / 2, 256), 256, 0, stream>>>(A, n);
  }
  QS_CUDA_CHECK(cudaGetLastError());
  QS_TRY(qs_gf_work_init(&w, f64 ? (void *)Ad : (void *)A, K, f64 ? CUDA_R_64F : CUDA_R_32F, solver));
  QS_TRY(qs_gf_chol_inverse(f64 ? (void *)Ad : (void *)A, K, f64 ? CUDA_R_64F : CUDA_R_32F, &w, info, solver, stream));
  if (*info == 0) QS_TRY(qs_gf_finish_launch(A, Ad, K, stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(stream));
fail:
  qs_gf_work_free(&w);
  cudaFree(Ad);
  return status;
}

// ---- prepare: host order and damping, device gather + factor ---------------------------------------------

struct qs_gf_key {
  float d;
  int32_t k;
};

// Decreasing diag, ties by increasing column: src/quant/gptq.c's qs_gptq_diag_cmp (a total order).
static int qs_gf_key_cmp(const void *a, const void *b) {
  const struct qs_gf_key *x = (const struct qs_gf_key *)a, *y = (const struct qs_gf_key *)b;
  if (x->d != y->d) return x->d > y->d ? -1 : 1;
  return (x->k > y->k) - (x->k < y->k);
}

// qs_qopts_check's rules (kernels/ cannot call src/ code: the quant library links this one).
static qs_status qs_gf_opts_check(const struct qs_qopts *o, int64_t K, const char *name) {
  qs_status status = QS_OK;
  if (o->grid.bits != 2 && o->grid.bits != 3 && o->grid.bits != 4 && o->grid.bits != 8)
    QS_FAIL(QS_ERR_ARG, "%s: bits = %d, expected 2, 3, 4 or 8", name, o->grid.bits);
  if (o->grid.group_size == 0 || o->grid.group_size < -1)
    QS_FAIL(QS_ERR_ARG, "%s: group size %d, expected -1 or a positive number", name, o->grid.group_size);
  if (!(o->damp >= 0.0f && o->damp < 1.0f)) QS_FAIL(QS_ERR_ARG, "%s: damp %g, expected 0 <= damp < 1", name, (double)o->damp);
  if (K <= 0 || K > INT32_MAX) QS_FAIL(QS_ERR_ARG, "%s: %lld input columns", name, (long long)K);
fail:
  return status;
}

// diag(H) -> dead, perm (host and device) and the mean diagonal (dead counted as 1).
static qs_status qs_gf_prep_order(struct qs_gptq_prep_cuda *p, const float *H, float *mean, cudaStream_t stream) {
  qs_status status = QS_OK;
  int64_t K = p->K;
  float *diag = NULL;
  struct qs_gf_key *keys = NULL;
  double sum = 0.0;
  QS_GF_ALLOC(diag, K);
  QS_GF_ALLOC(keys, K);
  QS_CUDA_CHECK(cudaMemcpy2DAsync(diag, sizeof(float), H, sizeof(float) * (size_t)(K + 1), sizeof(float), (size_t)K,
                                  cudaMemcpyDeviceToHost, stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (int64_t k = 0; k < K; k++) {
    p->dead_host[k] = diag[k] == 0.0f;
    p->n_dead += p->dead_host[k];
    keys[k].d = p->dead_host[k] ? 1.0f : diag[k];
    keys[k].k = (int32_t)k;
    sum += p->dead_host[k] ? 1.0 : (double)diag[k];
  }
  if (p->opts.act_order != QS_ACT_ORDER_NONE) qsort(keys, (size_t)K, sizeof(*keys), qs_gf_key_cmp);
  for (int64_t q = 0; q < K; q++) p->perm_host[q] = keys[q].k;
  *mean = (float)(sum / (double)K);
  QS_CUDA_CHECK(cudaMemcpyAsync(p->perm, p->perm_host, sizeof(int32_t) * (size_t)K, cudaMemcpyHostToDevice, stream));
  QS_CUDA_CHECK(cudaMemcpyAsync(p->dead, p->dead_host, (size_t)K, cudaMemcpyHostToDevice, stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(stream));
fail:
  free(diag);
  free(keys);
  return status;
}

static qs_status qs_gf_gather_launch(const struct qs_gptq_prep_cuda *p, const float *H, double *Ad, float damp,
                                     cudaStream_t stream) {
  qs_status status = QS_OK;
  dim3 grid(qs_gf_blocks(p->K, 256), (unsigned)p->K);
  if (Ad)
    qs_gf_gather_kernel<double><<<grid, 256, 0, stream>>>(H, p->perm, p->dead, Ad, p->K, damp);
  else
    qs_gf_gather_kernel<float><<<grid, 256, 0, stream>>>(H, p->perm, p->dead, p->U, p->K, damp);
  QS_CUDA_CHECK(cudaGetLastError());
fail:
  return status;
}

// The damping loop of qs_gptq_prep_factor: frac, then x10 (from 1e-3 when 0) up to three times.
static qs_status qs_gf_prep_factor(struct qs_gptq_prep_cuda *p, const float *H, float mean, double *Ad,
                                   struct qs_gf_work *w, const char *name, cusolverDnHandle_t solver,
                                   cudaStream_t stream) {
  qs_status status = QS_OK;
  float frac = p->opts.damp;
  for (int attempt = 0;; attempt++) {
    int info = 0;
    QS_TRY(qs_gf_gather_launch(p, H, Ad, frac * mean, stream));
    QS_TRY(qs_gf_chol_inverse(Ad ? (void *)Ad : (void *)p->U, p->K, Ad ? CUDA_R_64F : CUDA_R_32F, w, &info,
                              solver, stream));
    if (info < 0) QS_FAIL(QS_ERR_INTERNAL, "%s: cuSOLVER argument %d invalid", name, -info);
    if (info == 0) break;
    float next = qs_gptq_damp_next(frac);
    if (attempt == QS_GPTQ_DAMP_RAISES)
      QS_FAIL(QS_ERR_NUMERIC, "%s: Hessian not positive definite even with damp %g of mean diag %g "
              "(leading minor %d); more calibration data is needed", name, (double)frac, (double)mean, info);
    qs_log(QS_LOG_WARN, "%s: Cholesky failed with damp %g (leading minor %d); retrying with damp %g", name,
           (double)frac, info, (double)next);
    frac = next;
    p->damp_raises++;
  }
  p->damp_used = frac;
  QS_TRY(qs_gf_finish_launch(p->U, Ad, p->K, stream));
fail:
  return status;
}

// Every U[k,k] finite and positive (as the CPU path checks).
static qs_status qs_gf_check_diag(const struct qs_gptq_prep_cuda *p, const char *name, cudaStream_t stream) {
  qs_status status = QS_OK;
  int64_t K = p->K;
  float *d = NULL;
  QS_GF_ALLOC(d, K);
  QS_CUDA_CHECK(cudaMemcpy2DAsync(d, sizeof(float), p->U, sizeof(float) * (size_t)(K + 1), sizeof(float), (size_t)K,
                                  cudaMemcpyDeviceToHost, stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (int64_t k = 0; k < K; k++)
    if (!(isfinite(d[k]) && d[k] > 0.0f))
      QS_FAIL(QS_ERR_NUMERIC, "%s: inverse Hessian factor U[%lld,%lld] = %g", name, (long long)k, (long long)k,
              (double)d[k]);
fail:
  free(d);
  return status;
}

static qs_status qs_gf_check_finite(const float *H, int64_t K, const char *name, cudaStream_t stream) {
  qs_status status = QS_OK;
  unsigned long long *bad_d = NULL, bad = ~0ull;
  int64_t n = K * K;
  QS_CUDA_CHECK(cudaMalloc((void **)&bad_d, sizeof(bad)));
  QS_CUDA_CHECK(cudaMemcpyAsync(bad_d, &bad, sizeof(bad), cudaMemcpyHostToDevice, stream));
  qs_gf_finite_kernel<<<qs_gf_blocks(n, 256), 256, 0, stream>>>(H, n, bad_d);
  QS_CUDA_CHECK(cudaGetLastError());
  QS_CUDA_CHECK(cudaMemcpyAsync(&bad, bad_d, sizeof(bad), cudaMemcpyDeviceToHost, stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (bad != ~0ull) QS_FAIL(QS_ERR_NUMERIC, "%s: Hessian entry %llu is not finite", name, bad);
fail:
  cudaFree(bad_d);
  return status;
}

extern "C" qs_status qs_gptq_prep_cuda_init(struct qs_gptq_prep_cuda *p, const float *H, int64_t K,
                                            const struct qs_qopts *opts, int f64, const char *name,
                                            cusolverDnHandle_t solver, cudaStream_t stream) {
  qs_status status = QS_OK;
  struct qs_gf_work w = {};
  double *Ad = NULL;
  float mean = 0.0f;
  memset(p, 0, sizeof(*p));
  QS_TRY(qs_gf_opts_check(opts, K, name));
  p->K = K;
  p->opts = *opts;
  if (p->opts.block_size <= 0) p->opts.block_size = 128;
  p->f64 = f64 != 0;
  QS_CUSOLVER_CHECK(cusolverDnSetStream(solver, stream));
  QS_TRY(qs_gf_check_finite(H, K, name, stream));
  QS_GF_ALLOC(p->perm_host, K);
  QS_GF_ALLOC(p->dead_host, K);
  QS_CUDA_CHECK(cudaMalloc((void **)&p->U, sizeof(float) * (size_t)(K * K)));
  QS_CUDA_CHECK(cudaMalloc((void **)&p->perm, sizeof(int32_t) * (size_t)K));
  QS_CUDA_CHECK(cudaMalloc((void **)&p->dead, (size_t)K));
  if (p->f64) QS_CUDA_CHECK(cudaMalloc((void **)&Ad, sizeof(double) * (size_t)(K * K)));
  QS_TRY(qs_gf_prep_order(p, H, &mean, stream));
  QS_TRY(qs_gf_work_init(&w, Ad ? (void *)Ad : (void *)p->U, K, Ad ? CUDA_R_64F : CUDA_R_32F, solver));
  QS_TRY(qs_gf_prep_factor(p, H, mean, Ad, &w, name, solver, stream));
  QS_TRY(qs_gf_check_diag(p, name, stream));
fail:
  qs_gf_work_free(&w);
  cudaFree(Ad);
  if (status != QS_OK) qs_gptq_prep_cuda_free(p);
  return status;
}

extern "C" void qs_gptq_prep_cuda_free(struct qs_gptq_prep_cuda *p) {
  cudaFree(p->U);
  cudaFree(p->perm);
  cudaFree(p->dead);
  free(p->perm_host);
  free(p->dead_host);
  memset(p, 0, sizeof(*p));
}
