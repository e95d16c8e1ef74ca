// gptq_pack.cu — GPTQ v1 packing on the GPU (FORMATS.md §2.1-2.3), bit-exact with qs_gptq_pack.
// Test and benchmark: tests/test_gptq_cuda.c (label gpu).
//
// The rule for every width: field i of a stream occupies stream bits [b*i, b*i + b), stream bit s
// being bit s%32 of word s/32 (for 3 bits fields 10 and 21 of each 3-word run straddle words).
// Each thread builds whole output words, so no atomics: word w holds the fields that overlap bits
// [32w, 32w + 32), the first one shifted right when it began in the previous word.
// qweight runs along K for each column n: a block stages 32 rows of codes x 128 columns (a whole
// number of words for every width, coalesced loads) in shared memory and writes 32 columns of
// qweight per word row (coalesced stores).
#include "gptq_pack.h"
#include "qs_cuda.h"

constexpr int QS_GP_TN = 32;   // columns n per block
constexpr int QS_GP_TK = 128;  // codes along K per block: 4*bits words

// Word of the stream whose fields come from field(f) for f in the word's range; b0 = 32*word.
template <typename F>
__device__ __forceinline__ uint32_t qs_gp_word(int64_t b0, int bits, F field) {
  uint32_t v = 0;
  for (int64_t f = b0 / bits; f <= (b0 + 31) / bits; f++) {
    int64_t sh = f * bits - b0;
    uint32_t c = field(f);
    v |= sh >= 0 ? c << sh : c >> (-sh);
  }
  return v;
}

__global__ void qs_gp_qweight_kernel(const uint8_t *codes, int bits, int64_t N, int64_t K, uint32_t *qw) {
  __shared__ uint8_t s[QS_GP_TN][QS_GP_TK + 4]; // +4 bytes: rows start in different banks
  int64_t n0 = (int64_t)blockIdx.x * QS_GP_TN, k0 = (int64_t)blockIdx.y * QS_GP_TK;
  for (int r = threadIdx.y; r < QS_GP_TN; r += blockDim.y)
    for (int c = threadIdx.x; c < QS_GP_TK; c += blockDim.x) {
      int64_t n = n0 + r, k = k0 + c;
      s[r][c] = (n < N && k < K) ? codes[n * K + k] : 0;
    }
  __syncthreads();
  int64_t n = n0 + threadIdx.x, words = K * bits / 32, w0 = k0 * bits / 32;
  if (n >= N) return;
  const uint8_t *sr = s[threadIdx.x];
  for (int wi = threadIdx.y; wi < QS_GP_TK * bits / 32 && w0 + wi < words; wi += blockDim.y)
    qw[(w0 + wi) * N + n] = qs_gp_word(32 * (int64_t)wi, bits, [&](int64_t f) { return (uint32_t)sr[f]; });
}

// qzeros [G, N*bits/32]: word (g, w) along N, v1 stored zero (z - 1) & mask.
__global__ void qs_gp_qzeros_kernel(const uint8_t *zeros, int bits, int64_t N, int64_t G, uint32_t *qz) {
  int64_t zw = N * bits / 32, t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= G * zw) return;
  int64_t g = t / zw, w = t % zw;
  uint32_t mask = (1u << bits) - 1u;
  qz[t] = qs_gp_word(32 * w, bits, [&](int64_t f) { return ((uint32_t)zeros[f * G + g] - 1u) & mask; });
}

// scales_out[g, n] = scales[n, g]; counts zeros of 0 and finds the first (g-major, as the CPU
// loop) zero that does not fit.
__global__ void qs_gp_scales_kernel(const uint16_t *scales, const uint8_t *zeros, int bits, int64_t N, int64_t G,
                                    uint16_t *scales_out, unsigned long long *counts) {
  int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= G * N) return;
  int64_t g = t / N, n = t % N;
  scales_out[t] = scales[n * G + g];
  uint32_t z = zeros[n * G + g];
  if (z == 0) atomicAdd(&counts[0], 1ull);
  if (z > (1u << bits) - 1u) atomicMin(&counts[1], (unsigned long long)t);
}

static qs_status qs_gp_check(int bits, int64_t N, int64_t K, int64_t G) {
  qs_status status = QS_OK;
  if ((bits != 2 && bits != 3 && bits != 4 && bits != 8) || N <= 0 || K <= 0 || G <= 0 || (K * bits) % 32 ||
      (N * bits) % 32)
    QS_FAIL(QS_ERR_UNSUPPORTED, "gptq pack: %d-bit [N %lld, K %lld] with %lld groups cannot be packed "
            "(needs K*bits and N*bits multiples of 32)", bits, (long long)N, (long long)K, (long long)G);
  if (K > (int64_t)65535 * QS_GP_TK) QS_FAIL(QS_ERR_UNSUPPORTED, "gptq pack: K = %lld too large", (long long)K);
fail:
  return status;
}

static unsigned qs_gp_blocks(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

extern "C" qs_status qs_gptq_pack_cuda(const uint8_t *codes, const uint16_t *scales, const uint8_t *zeros, int bits,
                                       int64_t N, int64_t K, int64_t G, int32_t *qweight, int32_t *qzeros,
                                       uint16_t *scales_out, int64_t *n_wrapped, cudaStream_t stream) {
  qs_status status = QS_OK;
  unsigned long long *counts_d = NULL, counts[2] = {0ull, ~0ull};
  QS_TRY(qs_gp_check(bits, N, K, G));
  QS_CUDA_CHECK(cudaMallocAsync((void **)&counts_d, sizeof(counts), stream));
  QS_CUDA_CHECK(cudaMemcpyAsync(counts_d, counts, sizeof(counts), cudaMemcpyHostToDevice, stream));
  qs_gp_qweight_kernel<<<dim3(qs_gp_blocks(N, QS_GP_TN), qs_gp_blocks(K, QS_GP_TK)), dim3(QS_GP_TN, 8), 0, stream>>>(
      codes, bits, N, K, (uint32_t *)qweight);
  QS_CUDA_CHECK(cudaGetLastError());
  qs_gp_qzeros_kernel<<<qs_gp_blocks(G * (N * bits / 32), 256), 256, 0, stream>>>(zeros, bits, N, G, (uint32_t *)qzeros);
  QS_CUDA_CHECK(cudaGetLastError());
  qs_gp_scales_kernel<<<qs_gp_blocks(G * N, 256), 256, 0, stream>>>(scales, zeros, bits, N, G, scales_out, counts_d);
  QS_CUDA_CHECK(cudaGetLastError());
  QS_CUDA_CHECK(cudaMemcpyAsync(counts, counts_d, sizeof(counts), cudaMemcpyDeviceToHost, stream));
  QS_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (counts[1] != ~0ull)
    QS_FAIL(QS_ERR_ARG, "gptq pack: zero of row %lld (group %lld) does not fit %d bits",
            (long long)(counts[1] % (unsigned long long)N), (long long)(counts[1] / (unsigned long long)N), bits);
  if (n_wrapped) *n_wrapped = (int64_t)counts[0];
fail:
  if (counts_d) cudaFreeAsync(counts_d, stream);
  return status;
}
