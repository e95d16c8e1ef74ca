// plan.c — the memory, disk and time model of `qshard plan` (contract: plan.h): the constants, then
// the GPU and host memory of a rank, the seconds of a layer's phases, the run end to end.
#include "run/plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "comm.h"
#include "model/device.h"
#include "run/saver.h"
#include "run/stages.h"

#ifdef QS_USE_CUDA
#include "run/engine_cuda.h"
_Static_assert(QS_HESSIAN_LEAVES == 16 && QS_GPTQ_CUDA_ROW_TILE == 2048 && QS_CUDA_REC_SLOTS == QS_QSAVER_DEPTH + 1,
               "plan.c mirrors engine_cuda.h's leaves, row tile and record slots");
#endif
enum { PLAN_LEAVES = 16, PLAN_ROW_TILE = 2048, PLAN_REC_SLOTS = QS_QSAVER_DEPTH + 1 }; // engine_cuda.h

// Keep the down_proj inputs (-1: when they fit, 0: never, 1: always): the run's own tunable
// (engine_cuda.c reserve_act), read here the same way so that the plan follows it.
QS_PARAM(plan_store_act, "QS_CUDA_STORE_ACT", -1)

#define GIB 1073741824.0
#define GB 1e9
#define TF 1e12

// ---- the constants ---------------------------------------------------------------------------------
// [h100 run]: the h100 machine of BENCHMARKS.md (one H100 80GB HBM3, 16 cores), tree 28418f2,
// 2026-12-08 — scripts/bench_gpu_layers.sh's commands: `qshard synth --config C --layers N --tokens
// 262145 --out M`, then `qshard quantize --device cuda --model M --calib M/tokens.h5 --samples S --seqlen
// 2048 --bits 4 --group-size 128 --act-order --out O`, the host memory sampled from /proc/PID/status.
// The last layer's phases (s), the log's peak device memory, the maximum RSS (GiB), the wall (s):
//                 load  forward hessian factor solve gather record  layer | device  VmHWM   wall
//   8B x3, 128    0.009  0.271  0.205  0.139  0.164  0.001  0.004  0.793 |  16.84   9.20   17.0
//   8B x3, 64     0.008  0.147  0.101  0.139  0.162  0.001  0.004  0.561 |  10.34   9.20   14.3
//   70B x2, 128   0.032  0.877  0.593  0.618  0.746  0.002  0.016  2.884 |  36.77  20.16   36.1
//   70B x2, 64    0.031  0.477  0.299  0.623  0.750  0.002  0.017  2.198 |  23.77  19.94   26.6
//   405B x2, 128  0.115  4.376  1.960  3.105  4.145  0.003  0.060 13.764 |  57.69  51.17   86.9
// Forward and Hessian: least squares over the five rows (two constants each; within 7 % and 2.2 % of
// every row); factor and solve: three constants each through the three shapes. BENCHMARKS.md §6
// (07cd317, before the record redesign) measured the 8B and 70B layers 16 % and 9 % slower. NOT MEASURED
// marks the nominal ones a multi-GPU or cluster run has to measure (no multi-GPU machine yet).
enum {
  PC_GPU_MEM, PC_GPU_CTX, PC_GEMM, PC_EW, PC_ATT, PC_HESS, PC_HESS_SAMPLE, PC_FACTOR_A, PC_FACTOR_P, PC_FACTOR_GROUP,
  PC_FACTOR_F64, PC_SOLVE, PC_SOLVE_W, PC_SOLVE_MODULE, PC_PCIE, PC_PAGECOPY, PC_GATHER_1, PC_GEMM_F32, PC_TF32,
  PC_NVLINK, PC_P2P, PC_NET, PC_OPEN, PC_EMBED, PC_START, PC_WRITE, PC_SHA, PC_READ, PC_HOST_BASE, PC_CPU_GFLOPS,
  PC_CPU_MEMBW, PC_MPI, PC_COUNT
};
static const struct qs_plan_const k_plan_consts[PC_COUNT] = {
    [PC_GPU_MEM] = {"gpu_memory", "GiB", 79.2, "[h100 run] the log's device line 'NVIDIA H100 80GB HBM3, 79.2 GiB' "
                    "(cudaMemGetInfo's total, what reserve_act compares against)"},
    [PC_GPU_CTX] = {"gpu_context", "GiB", 1.33, "§6 and [h100 run] peak device memory 16.8 / 36.8 / 57.7 GiB (8B / "
                    "70B / 405B) less this model's allocations at the phase ends: 1.27 / 1.35 / 1.35; the 405B log's "
                    "'53.1 GiB free' at reserve_act (CUDA context, cuBLAS, cuSOLVER, NCCL at one rank)"},
    [PC_GEMM] = {"forward_gemm", "TFLOP/s", 662, "[h100 run] forward, with forward_elementwise: bf16 GEMMs of one "
                 "sequence (M = seqlen), 2 x layer params x tokens (gate/up twice when act is not kept)"},
    [PC_EW] = {"forward_elementwise", "GB/s", 1622, "[h100 run] forward (as forward_gemm): norms, converts, "
               "residual adds, RoPE, SwiGLU, the down_proj input copy, in bytes moved"},
    [PC_ATT] = {"attention", "TFLOP/s", 147, "§4 causal GQA attention, bf16, T 2048, head_dim 128, B = 1 "
                "(test_kernels_fwd_cuda --bench): 4 B H T^2 D / 2 FLOPs"},
    [PC_HESS] = {"hessian", "TFLOP/s", 505, "[h100 run] Hessian, with hessian_sample: upper triangles, K^2 x tokens "
                 "per group"},
    [PC_HESS_SAMPLE] = {"hessian_sample", "us", 131.9, "[h100 run] Hessian (as hessian): per sample and group, the "
                        "stream synchronizations at the forward/Hessian phase marks and launch gaps"},
    [PC_FACTOR_A] = {"factor_a", "s", 6.032e-13, "[h100 run] factor 0.139 / 0.621 / 3.105 s (8B / 70B / 405B): "
                     "a K^p + c per group (potrf + trsm-block inverse, fp32)"},
    [PC_FACTOR_P] = {"factor_p", "", 2.677, "[h100 run] factor (as factor_a)"},
    [PC_FACTOR_GROUP] = {"factor_group", "s", 0.0124, "[h100 run] factor (as factor_a): per group (allocations, "
                         "the diagonal and the permutation on the host)"},
    [PC_FACTOR_F64] = {"factor_fp64", "x", 1.2, "§4 fp64 / fp32 factor 17/13, 192/158, 922/777 ms (K 4096, 14336, 28672)"},
    [PC_SOLVE] = {"solve_lazy", "TFLOP/s", 27.7, "[h100 run] solve 0.163 / 0.748 / 4.145 s, with solve_weight and "
                  "solve_module: N K^2 per module (lazy-update sgemms, bandwidth-bound at K = 128)"},
    [PC_SOLVE_W] = {"solve_weight", "ns", 0.333, "[h100 run] solve (as solve_lazy): per weight (the fused per-block "
                    "kernel, converts, the output-error tiles)"},
    [PC_SOLVE_MODULE] = {"solve_module", "s", 0.00521, "[h100 run] solve (as solve_lazy): per module (its buffers' "
                         "allocations)"},
    [PC_PCIE] = {"pcie", "GB/s", 53, "[h100 run] load 0.009 / 0.032 / 0.115 s for layers of 0.44 / 1.71 / 6.37 GB "
                 "(pinned, host to device: 48-55 GB/s); record 0.004 / 0.016 / 0.060 s back"},
    [PC_PAGECOPY] = {"reader_copy", "GB/s", 8.0, "§6 and [h100 run] layer 0's load 0.79-0.84 s for 6.4 GB (405B): "
                     "the weight reader's copy from the page cache into a pinned slot, nothing to hide it behind"},
    [PC_GATHER_1] = {"gather_one_rank", "s", 0.002, "[h100 run] gather phase at one rank: 0.001-0.003 s per layer"},
    [PC_GEMM_F32] = {"gemm_fp32", "TFLOP/s", 45, "NOT MEASURED: --precision fp32 (no TF32), ~2/3 of the H100's "
                     "67 TFLOP/s fp32 peak"},
    [PC_TF32] = {"gemm_tf32", "TFLOP/s", 300, "NOT MEASURED: the output-error GEMMs of a solve without GPTQ (RTN), TF32"},
    [PC_NVLINK] = {"nvlink_collective", "GB/s", 300, "NOT MEASURED: NCCL all-gather / broadcast bus bandwidth "
                   "inside an 8-GPU H100 node"},
    [PC_P2P] = {"nvlink_p2p", "GB/s", 150, "NOT MEASURED: NCCL send/recv between two GPUs of a node (the "
                "Hessian's running sum)"},
    [PC_NET] = {"network", "GB/s", 40, "NOT MEASURED: per GPU between nodes (a 400 Gb/s NIC per GPU)"},
    [PC_OPEN] = {"open_convert", "GB/s", 2.06, "[h100 run] wall less the layers, the output and the saves, fitted "
                 "with calibration_embed and start: the model open's embeddings and lm_head, read and made fp32 (§5: "
                 "1.3-1.6 GB/s on the vm); the CPU engine's layers"},
    [PC_EMBED] = {"calibration_embed", "s/GiB", 1.46, "[h100 run] (as open_convert): per GiB of the rank's x, the "
                  "calibration embedding (a pinned buffer allocated per sample) and layer 0's first-use costs"},
    [PC_START] = {"start", "s", 3.64, "[h100 run] (as open_convert): MPI, CUDA, cuBLAS and NCCL start-up, the rest of "
                  "layer 0's first-use costs"},
    [PC_WRITE] = {"output_write", "GB/s", 1.0, "[h100 run] \"wrote 1 format(s) ... in 2.35 / 5.17 / 13.19 s\" for "
                  "2.4 / 5.1 / 11.7 GB of GPTQ output, packing included (default of --write-gbs)"},
    [PC_SHA] = {"sha256", "GB/s", 1.0, "[h100 run] \"state: ... saved in 0.32 / 0.86 / 3.10 s\": the manifests "
                "(SHA-256) of 0.33 / 0.86 / 3.2 GB of layer records; the outputs' manifest at the same rate"},
    [PC_READ] = {"checkpoint_read", "GB/s", 2.0, "NOT MEASURED: cold read of the checkpoint's filesystem "
                 "(default of --read-gbs; a page-cached checkpoint reads at reader_copy)"},
    [PC_HOST_BASE] = {"host_base", "GiB", 1.1, "[h100 run] 8B x3: the largest anonymous memory 5.15 GiB less the fp32 "
                      "embeddings and lm_head (3.91) and the layer file (0.14): the process (CUDA runtime, libraries, "
                      "MPI); with it the maximum RSS comes within 1.2 / 1.4 / 3.4 % (8B / 70B / 405B)"},
    [PC_CPU_GFLOPS] = {"cpu_gemm", "GFLOP/s", 95, "§1 llama-3-8b layer, one OpenBLAS thread (vm, 92 % of "
                       "sgemm peak), per thread"},
    [PC_CPU_MEMBW] = {"cpu_memory", "GB/s", 10, "NOT MEASURED: per OpenBLAS thread, the CPU engine's "
                      "output-error ssymv (reads H per row)"},
    [PC_MPI] = {"mpi_host", "GB/s", 10, "NOT MEASURED: MPI between ranks of the CPU engine"},
};

const struct qs_plan_const *qs_plan_consts(int *n) {
  *n = PC_COUNT;
  return k_plan_consts;
}

static double K_(int id) { return k_plan_consts[id].value; }

const char *const qs_plan_phase_names[QS_PLAN_PH_COUNT] = {"load", "forward", "hessian", "factor", "solve", "gather",
                                                            "record"};

static void warn(struct qs_plan *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct qs_plan *p, const char *fmt, ...) {
  va_list ap;
  if (p->n_warn == QS_PLAN_MAX_WARN) return;
  va_start(ap, fmt);
  vsnprintf(p->warn[p->n_warn++], sizeof(p->warn[0]), fmt, ap);
  va_end(ap);
}

// ---- the rank grid ---------------------------------------------------------------------------------

// What a rank of a stage holds: samples (cuda: whole leaves, engine_cuda.h; cpu: a contiguous split),
// leaves, and the rows of a module of N rows it solves.
struct rank_share {
  long long B, leaves;
};

static struct rank_share share_of(long long n, int cuda, int D, int r) {
  struct rank_share s = {0, 0};
  long long a, b, x, y;
  if (n <= 0) return s;
  if (!cuda) {
    qs_comm_split_range(n, D, r, &a, &b);
    s.B = b - a;
    return s;
  }
  long long V = QS_MIN((long long)PLAN_LEAVES, n);
  qs_comm_split_range(V, D, r, &a, &b);
  s.leaves = b - a;
  if (s.leaves <= 0) return s;
  qs_comm_split_range(n, (int)V, (int)a, &x, &y);
  long long first = x;
  qs_comm_split_range(n, (int)V, (int)b - 1, &x, &y);
  s.B = y - first;
  return s;
}

// Rows of an N-row module that rank r of D solves (cuda: whole 2048-row tiles, engine_module_cuda.c).
static double rows_of(int N, int cuda, int D, int r) {
  long long a, b;
  if (!cuda) {
    qs_comm_split_range(N, D, r, &a, &b);
    return (double)(b - a);
  }
  qs_comm_split_range(QS_CEIL_DIV(N, PLAN_ROW_TILE), D, r, &a, &b);
  return (double)(QS_MIN((long long)N, b * PLAN_ROW_TILE) - QS_MIN((long long)N, a * PLAN_ROW_TILE));
}

static int group_K(const struct qs_plan_shape *s, int g) { return s->n_in[qs_layout_of(&s->cfg)->group[g].first]; }
static int lin_group(const struct qs_plan_shape *s, int lin) { return (int)qs_layout_of(&s->cfg)->lin_group[lin]; }
static double lin_G(const struct qs_run_opts *a, int K) { return (double)qs_grid_n_groups(&a->q.grid, K); }

// ---- GPU memory of one rank ------------------------------------------------------------------------

struct gpu_mem {
  double ctx, x, att, act, seq, layer, persistent, hessian, factor, solve, scratch, peak, sampled;
  const char *phase;
  int act_stored;
};

// engine_cuda.c reserve_act: the down_proj inputs stay when, after them, the free memory still holds
// about two fp32 layers, three K x K fp32 buffers of the widest Hessian and 2 GiB.
static int act_fits(const struct qs_plan_shape *s, double act, double free_bytes) {
  double layer32 = 0, kmax = QS_MAX(s->cfg.intermediate, s->cfg.hidden);
  for (int i = 0; i < QS_LIN_COUNT; i++) layer32 += (double)s->n_out[i] * s->n_in[i] * 4;
  long long mode = qs_param_plan_store_act();
  return mode > 0 || (mode < 0 && act + 2 * layer32 + 3 * kmax * kmax * 4 + 2 * GIB <= free_bytes);
}

// The module's device buffers (struct dmod) and the solve's / output error's scratch.
static void dmod_bytes(const struct qs_plan_shape *s, const struct qs_run_opts *a, int lin, double rows, int calib,
                       double *held, double *scratch) {
  const double N = s->n_out[lin], K = s->n_in[lin], G = lin_G(a, (int)K), RT = PLAN_ROW_TILE;
  const int gptq = (a->method->needs & QS_METHOD_HESSIAN) != 0;
  *held = N * K + N * G * 5 + N * 20 + QS_MAX(rows, 1.0) * K * 4 + RT * K * 4;
  double ldp = (double)QS_CEIL_DIV((long long)K, 128) * 128, lde = (double)QS_CEIL_DIV((long long)QS_MAX(rows, 1.0), 64) * 64;
  double solve = gptq ? rows * ldp * 5 + lde * 128 * 4 + 8 * rows : 0; // gptq_solve.cu qs_gs_work_init
  double qe = calib ? 3 * QS_MIN(RT, rows) * K * 4 : 0;                // quant_error.cu: D, DH, WH of a tile
  *scratch = rows > 0 ? QS_MAX(solve, qe) : 0;
}

static void gpu_memory(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan_site *site,
                       long long n, int T, int D, int r, struct gpu_mem *m) {
  const struct qs_config *c = &s->cfg;
  const double e = a->precision_f32 ? 4 : 2, h = c->hidden, I = c->intermediate;
  const double qd = (double)c->n_heads * c->head_dim, kvd = (double)c->n_kv_heads * c->head_dim;
  const int gptq = (a->method->needs & QS_METHOD_HESSIAN) != 0, calib = n > 0;
  struct rank_share sh = share_of(n, 1, D, r);
  memset(m, 0, sizeof(*m));
  m->ctx = K_(PC_GPU_CTX) * GIB;
  m->x = (double)sh.B * T * h * 4;
  m->att = (double)sh.B * T * qd * e;
  m->seq = calib ? T * (h * 4 + h * e + qd * e + 2 * kvd * e + qd * e + 2 * I * e + h * e) : 0; // qs_dseq_init
  for (int i = 0; i < QS_LIN_COUNT; i++) { // raw as stored, plus the compute-dtype copy when they differ
    double w = (double)s->n_out[i] * s->n_in[i];
    m->layer += w * s->wsize + (s->wsize != e ? w * e : 0) + (s->bias[i] ? s->n_out[i] * e : 0);
  }
  m->layer += 2 * h * 4;
  double act = (double)sh.B * T * I * e;
  m->act_stored = calib && act_fits(s, act, site->gpu_bytes - (m->ctx + m->x + m->att + m->seq));
  m->act = m->act_stored ? act : 0;
  m->persistent = m->ctx + m->x + m->att + m->act + m->seq + m->layer;
  // rank 0 folds as its leaves come (sum + one leaf); a rank r > 0 keeps every own leaf until the
  // running sum arrives (engine_cuda.c group_hessian)
  const double units = !calib ? 0 : r == 0 ? (sh.leaves > 1 ? 2 : 1) : 1 + (double)sh.leaves;
  for (int g = 0; g < QS_GROUP_COUNT; g++) {
    const double K2 = (double)group_K(s, g) * group_K(s, g) * 4;
    const double H = calib ? K2 : 0, U = gptq && calib ? K2 : 0, f64 = gptq && calib && a->q.factor_f64 ? 2 * K2 : 0;
    double hess = units * K2, held = 0, scr = 0, solve = 0, solve_scr = 0;
    for (int i = 0; i < QS_LIN_COUNT; i++) {
      if (lin_group(s, i) != g) continue;
      dmod_bytes(s, a, i, rows_of(s->n_out[i], 1, D, r), calib, &held, &scr);
      solve = QS_MAX(solve, H + U + held);
      solve_scr = QS_MAX(solve_scr, H + U + held + scr);
    }
    const double peaks[3] = {hess, H + U + f64, solve_scr};
    static const char *const names[3] = {"hessian", "factor", "solve"};
    for (int k = 0; k < 3; k++)
      if (!m->phase || m->persistent + peaks[k] > m->peak) m->peak = m->persistent + peaks[k], m->phase = names[k];
    m->hessian = QS_MAX(m->hessian, hess);
    m->factor = QS_MAX(m->factor, H + U + f64);
    m->solve = QS_MAX(m->solve, solve);
    m->scratch = QS_MAX(m->scratch, solve_scr - solve);
    m->sampled = QS_MAX(m->sampled, m->persistent + QS_MAX(hess, QS_MAX(H + U, solve)));
  }
}

// ---- GPU seconds of one layer on rank 0 ------------------------------------------------------------

// Bytes the forward's elementwise kernels move per sequence (model/forward_cuda.c): four RMSNorms
// (five when gate/up run again) reading x fp32 and writing xf fp32 and xn; two residual adds; RoPE on
// q and k; SwiGLU (twice when recomputed); the copy of the down_proj input.
static double fwd_elementwise(const struct qs_config *c, int T, double e, int act) {
  const double h = c->hidden, I = c->intermediate;
  const double qd = (double)c->n_heads * c->head_dim, kvd = (double)c->n_kv_heads * c->head_dim;
  return T * ((act ? 4 : 5) * (12 + e) * h + 2 * (8 + e) * h + 2 * e * (qd + kvd) + (act ? 1 : 2) * 3 * e * I +
              (act ? 2 * e * I : 0));
}

// Seconds per byte of a stage of D ranks with G per node: a collective (all-gather, broadcast: bound by
// the network once the stage spans nodes), and the Hessian's running sum passed along the D - 1 hops
// of the chain (rank r to r + 1; a hop crosses nodes once per node boundary).
static void links(int D, int G, double *coll, double *chain) {
  const int cross = QS_CEIL_DIV(D, G) - 1;
  *coll = 1.0 / ((cross ? K_(PC_NET) : K_(PC_NVLINK)) * GB);
  *chain = (D - 1 - cross) / (K_(PC_P2P) * GB) + cross / (K_(PC_NET) * GB);
}

static void gpu_layer(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan_site *site,
                      long long n, int T, int D, int act, double *ph) {
  const struct qs_config *c = &s->cfg;
  const int gptq = (a->method->needs & QS_METHOD_HESSIAN) != 0, f32 = a->precision_f32;
  const double e = f32 ? 4 : 2, B = (double)share_of(n, 1, D, 0).B, tok = B * T;
  const double gemm = (f32 ? K_(PC_GEMM_F32) : K_(PC_GEMM)) * TF, ew = K_(PC_EW) * GB;
  double coll, chain, params = 0, record = 0, gather = 0;
  links(D, site->gpus_per_node, &coll, &chain);
  for (int i = 0; i < QS_LIN_COUNT; i++) params += (double)s->n_out[i] * s->n_in[i];
  memset(ph, 0, sizeof(double) * QS_PLAN_PH_COUNT);
  ph[QS_PLAN_PH_LOAD] = s->layer_bytes / (K_(PC_PCIE) * GB);
  if (n > 0) {
    double gemm_flops = 2 * tok * (params + (act ? 0 : 2.0 * c->intermediate * c->hidden));
    double att_flops = 2 * B * c->n_heads * (double)T * T * c->head_dim;
    ph[QS_PLAN_PH_FORWARD] = gemm_flops / gemm + att_flops / (f32 ? gemm : K_(PC_ATT) * TF) +
                             B * fwd_elementwise(c, T, e, act) / ew;
    for (int g = 0; g < QS_GROUP_COUNT; g++) {
      const double K2 = (double)group_K(s, g) * group_K(s, g);
      ph[QS_PLAN_PH_HESSIAN] += K2 * tok / (f32 ? gemm : K_(PC_HESS) * TF) + B * K_(PC_HESS_SAMPLE) * 1e-6;
      if (D > 1) // the running sum passed along the ranks (and added), then broadcast; finalize
        ph[QS_PLAN_PH_HESSIAN] += 4 * K2 * chain + (D - 1) * 12 * K2 / ew + 4 * K2 * coll + 8 * K2 / ew;
      if (gptq) ph[QS_PLAN_PH_FACTOR] += (K_(PC_FACTOR_A) * pow(group_K(s, g), K_(PC_FACTOR_P)) + K_(PC_FACTOR_GROUP)) *
                                         (a->q.factor_f64 ? K_(PC_FACTOR_F64) : 1.0);
    }
  }
  for (int i = 0; i < QS_LIN_COUNT; i++) {
    const double N = s->n_out[i], K = s->n_in[i], G = lin_G(a, (int)K), rows = rows_of((int)N, 1, D, 0);
    if (gptq)
      ph[QS_PLAN_PH_SOLVE] += rows * K * K / (K_(PC_SOLVE) * TF) + rows * K * K_(PC_SOLVE_W) * 1e-9 + K_(PC_SOLVE_MODULE);
    else ph[QS_PLAN_PH_SOLVE] += rows * K * (s->wsize + 9) / ew + (n > 0 ? 4 * rows * K * K / (K_(PC_TF32) * TF) : 0);
    gather += N * K * (e + 1) + N * G * 5 + N * 20;
    record += N * K + N * G * 5;
  }
  ph[QS_PLAN_PH_GATHER] = D > 1 ? gather * (D - 1) / D * coll : K_(PC_GATHER_1);
  ph[QS_PLAN_PH_RECORD] = record / (K_(PC_PCIE) * GB);
}

// ---- the CPU engine --------------------------------------------------------------------------------

struct cpu_mem {
  double x, fwd, layer, hessian, module;
};

static void cpu_memory(const struct qs_plan_shape *s, const struct qs_run_opts *a, long long n, int T, int D,
                       struct cpu_mem *m) {
  const struct qs_config *c = &s->cfg;
  const double h = c->hidden, qd = (double)c->n_heads * c->head_dim, kvd = (double)c->n_kv_heads * c->head_dim;
  const double B = (double)share_of(n, 0, D, 0).B;
  memset(m, 0, sizeof(*m));
  m->x = B * T * h * 4;
  m->fwd = n > 0 ? B * T * (2 * h + 2 * qd + 2 * kvd + 2.0 * c->intermediate) * 4 + T * 4 : 0; // qs_fwd_init
  m->layer = (double)s->layer_params * 4;
  // comm_treesum.c: one left operand per level of the tree over the samples, the leaf, the result
  const double depth = n > 1 ? ceil(log2((double)n)) : 0;
  for (int g = 0; g < QS_GROUP_COUNT && n > 0; g++) {
    const double K2 = (double)group_K(s, g) * group_K(s, g) * 4;
    m->hessian = QS_MAX(m->hessian, (depth + 2) * K2);
  }
  for (int i = 0; i < QS_LIN_COUNT; i++) { // H, U and the module's buffers (engine_cpu.c qmod_init)
    const double N = s->n_out[i], K = s->n_in[i], G = lin_G(a, (int)K), K2 = n > 0 ? 2 * K * K * 4 : 0;
    m->module = QS_MAX(m->module, K2 + N * K + N * G * 5 + N * 20 + rows_of((int)N, 0, D, 0) * K * 4);
  }
}

static void cpu_layer(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan_site *site,
                      long long n, int T, int D, double *ph) {
  const struct qs_config *c = &s->cfg;
  const int rpn = QS_MAX(1, QS_MIN(site->gpus_per_node, site->np));
  const double threads = QS_MAX(1.0, (double)site->cores_per_node / rpn), R = K_(PC_CPU_GFLOPS) * 1e9 * threads;
  const double B = (double)share_of(n, 0, D, 0).B, tok = B * T, mpi = K_(PC_MPI) * GB;
  const int gptq = (a->method->needs & QS_METHOD_HESSIAN) != 0;
  memset(ph, 0, sizeof(double) * QS_PLAN_PH_COUNT);
  ph[QS_PLAN_PH_LOAD] = s->layer_bytes / (K_(PC_OPEN) * GB); // qs_model_load_layer: read and convert to fp32
  if (n > 0) {
    ph[QS_PLAN_PH_FORWARD] = (2 * tok * s->layer_params + 2 * B * c->n_heads * (double)T * T * c->head_dim) / R;
    for (int g = 0; g < QS_GROUP_COUNT; g++) {
      const double K = group_K(s, g);
      ph[QS_PLAN_PH_HESSIAN] += K * K * tok / R + (D > 1 ? K * K * 4 * ceil(log2((double)D)) / mpi : 0);
      if (gptq) ph[QS_PLAN_PH_FACTOR] += 2.0 / 3 * K * K * K / R;
    }
  }
  for (int i = 0; i < QS_LIN_COUNT; i++) {
    const double N = s->n_out[i], K = s->n_in[i], rows = rows_of((int)N, 0, D, 0);
    ph[QS_PLAN_PH_SOLVE] += (gptq ? rows * K * K / R : 0) + (n > 0 ? rows * K * K * 8 / (K_(PC_CPU_MEMBW) * GB * threads) : 0);
    ph[QS_PLAN_PH_GATHER] += D > 1 ? N * K * 5 * (D - 1) / D / mpi : 0;
  }
}

// ---- host memory -----------------------------------------------------------------------------------

// The stage leader's record path: the pinned (cuda) or malloc'ed (cpu) records the saver may hold
// (QS_QSAVER_DEPTH waiting + one in hand), and the layer's record file, held whole until the layer
// ends (qstate.c: one file per layer, no shard limit), plus the packed codes of one module being added.
static void leader_bytes(const struct qs_plan_shape *s, const struct qs_run_opts *a, double *records, double *writer) {
  double rec_max = 0, packed_max = 0, file = 0;
  *records = *writer = 0;
  for (int l = 0; l < s->cfg.n_layers; l++) {
    double f = 0;
    for (int i = 0; i < QS_LIN_COUNT; i++) {
      double un = 0, b = qs_plan_record_bytes(s, a, l, i, &un);
      f += b;
      rec_max = QS_MAX(rec_max, un + 512);
      packed_max = QS_MAX(packed_max, b);
    }
    file = QS_MAX(file, f);
  }
  *records = PLAN_REC_SLOTS * rec_max;
  *writer = file + packed_max;
}

// The end of the run (output.c): each model-directory writer holds up to one shard of packed tensors
// (the TensorRT-LLM writer one whole rank file), plus one record read back with its codes unpacked.
static double output_bytes(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan *p) {
  double held = 0, un_max = 0, un;
  for (int i = 0; i < QS_LIN_COUNT; i++) {
    qs_plan_record_bytes(s, a, 0, i, &un);
    un_max = QS_MAX(un_max, un);
  }
  for (int i = 0; i < a->n_formats; i++) {
    double packed = p->disk.out[i] - s->embed_bytes - s->head_bytes - s->other_bytes;
    if (!strcmp(a->formats[i]->name, "trtllm")) held += packed / QS_MAX(a->tp, 1);
    else if (a->formats[i]->model_dir) held += QS_MIN(packed, (double)a->max_shard_mb * 1048576.0);
  }
  return held + 2 * un_max;
}

static void host_memory(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan_site *site,
                        struct qs_plan *p) {
  const struct qs_config *c = &s->cfg;
  double records, writer;
  leader_bytes(s, a, &records, &writer);
  p->host.base = K_(PC_HOST_BASE) * GIB + (double)p->n_samples * p->T * 4; // + the calibration ids
  // embeddings and lm_head are read in place from the checkpoint's mapping (model.h): in host.mapped,
  // no fp32 copy (there was one per rank until 2026-12-08; the [h100 run] figures below include it)
  p->host.embed = 0;
  p->host.records = records;
  p->host.writer = writer;
  p->host.output = output_bytes(s, a, p);
  p->host.mapped = QS_MIN(s->in_bytes, s->embed_bytes + s->head_bytes + s->other_bytes +
                                           (p->layers + 1.0) * s->layer_bytes); // the reader prefetches one more
  double loop;
  if (p->cuda) {
    p->host.slots = (c->n_layers > 1 ? 2 : 1) * s->layer_bytes; // wstream_cuda.c: two pinned slots
    p->host.xsave = p->t.n_saves > 0 ? p->gpu.x : 0;            // qstate.c x_transfer's copy
    loop = p->host.slots + records + writer + p->host.xsave;
  } else {
    p->host.xsave = p->t.n_saves > 0 ? p->host.x : 0;
    loop = p->host.x + p->host.fwd + p->host.layer + QS_MAX(QS_MAX(p->host.hessian, p->host.module) + records + writer,
                                                            p->host.xsave);
  }
  p->host.peak = p->host.base + p->host.embed + QS_MAX(loop, p->host.output);
  // the mapped pages stay resident only while the node has room for them beside its ranks' own memory
  const int rpn = QS_MAX(1, QS_MIN(site->gpus_per_node, site->np));
  p->host.mapped = QS_MAX(0.0, QS_MIN(p->host.mapped, site->host_bytes - rpn * p->host.peak));
}

// ---- disk ------------------------------------------------------------------------------------------

static void disk(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan_site *site,
                 struct qs_plan *p) {
  const double outside = s->embed_bytes + s->head_bytes + s->other_bytes;
  const int stages_per_node = QS_MAX(1, QS_MIN(p->S, site->gpus_per_node / QS_MAX(p->D, 1)));
  p->disk.in = s->in_bytes;
  p->disk.read_node = QS_MIN(s->in_bytes, outside + (s->in_bytes - outside) * stages_per_node / p->S);
  p->disk.out_total = 0;
  for (int i = 0; i < a->n_formats; i++) {
    p->disk.out[i] = qs_plan_format_bytes(s, a, i);
    p->disk.out_total += p->disk.out[i];
  }
  p->disk.state_layers = 0;
  for (int l = 0; l < s->cfg.n_layers; l++)
    for (int i = 0; i < QS_LIN_COUNT; i++) p->disk.state_layers += qs_plan_record_bytes(s, a, l, i, NULL) + 64;
  p->disk.free = site->out_free;
}

// Once the saves are known: the x files of every rank (a save writes the new ones before it removes
// the old), and the most OUT.partial holds (the outputs are written before .state is removed).
static void disk_state(const struct qs_plan_shape *s, struct qs_plan *p) {
  p->disk.state_x = p->t.n_saves > 0 ? 2.0 * p->n_samples * p->T * s->cfg.hidden * 4 * p->S : 0;
  p->disk.peak = p->disk.state_layers + p->disk.state_x + p->disk.out_total;
}

// ---- end to end ------------------------------------------------------------------------------------

static void end_to_end(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan_site *site,
                       struct qs_plan *p) {
  const int rpn = QS_MAX(1, QS_MIN(site->gpus_per_node, site->np));
  const double read_bps = QS_MIN(site->read_bps, K_(PC_PAGECOPY) * GB), write = site->write_bps;
  double compute = 0;
  for (int k = 0; k < QS_PLAN_PH_COUNT; k++) compute += k == QS_PLAN_PH_LOAD ? 0 : p->t.ph[k];
  // The reader fetches layer l+1 while layer l computes (every stage of the node reads its own layer;
  // the ranks of a stage share the page cache); the load phase waits for what the compute did not hide.
  const int stages_per_node = QS_MAX(1, QS_MIN(p->S, site->gpus_per_node / QS_MAX(p->D, 1)));
  p->t.read_layer = s->layer_bytes * stages_per_node / read_bps;
  if (p->cuda) p->t.ph[QS_PLAN_PH_LOAD] += QS_MAX(0.0, p->t.read_layer - compute);
  p->t.layer = compute + p->t.ph[QS_PLAN_PH_LOAD];
  p->t.layers = p->layers * p->t.layer;
  // start-up: the open (embeddings and lm_head made fp32 when PC_OPEN was fitted; now read in place, so
  // this term is an upper bound until re-measured), and on the GPU the calibration embedding, the
  // first layer's read (nothing to hide it behind) and layer 0's first-use costs
  p->t.start = (s->embed_bytes + s->head_bytes) / QS_MIN(K_(PC_OPEN) * GB, site->read_bps) +
               (p->cuda ? K_(PC_START) + p->gpu.x / GIB * K_(PC_EMBED) + s->layer_bytes / read_bps : 1.0);
  // Resume-state saves (qstate.c): after every layer at --state-interval 0 (the CPU's default), else when
  // the interval has passed; the activations are not saved after the last layer.
  long long interval = a->state_interval >= 0 ? a->state_interval : p->cuda ? 600 : 0;
  p->t.n_saves = p->n_samples <= 0 ? 0 : interval == 0 ? p->layers - 1 : (int)floor((p->layers - 1) * p->t.layer / (double)interval);
  p->t.n_saves = QS_MAX(p->t.n_saves, 0);
  double x = p->cuda ? p->gpu.x : p->host.x;
  // each save writes and hashes x; the saves (the last one after the last layer) hash every layer file once
  p->t.saves = p->t.n_saves * (x * rpn / write + x / (K_(PC_SHA) * GB) + (p->cuda ? x / (K_(PC_PCIE) * GB) : 0)) +
               p->disk.state_layers / (K_(PC_SHA) * GB);
  // --stages S > 1: the pipelined full-precision pass brings the last stage its input
  p->t.boundary = p->S > 1 ? (s->cfg.n_layers - p->layers) * p->t.ph[QS_PLAN_PH_FORWARD] : 0;
  // outputs: formats on different ranks are written at once (writer rank i % P), then the manifest
  double out = 0, sum = 0;
  for (int i = 0; i < a->n_formats; i++) out = QS_MAX(out, p->disk.out[i] / write), sum += p->disk.out[i] / write;
  p->t.output = (site->np >= a->n_formats ? out : sum) + p->disk.out_total / (K_(PC_SHA) * GB);
  p->t.total = p->t.start + p->t.boundary + p->t.layers + p->t.saves + p->t.output;
}

// ---- the plan --------------------------------------------------------------------------------------

// "1, 4-16": the data-rank counts in [1, n] at which fits[d] holds.
static void ranges(const int *fits, int n, char *buf, size_t cap) {
  size_t k = 0;
  buf[0] = '\0';
  for (int d = 1; d <= n && k < cap; d++) {
    if (!fits[d] || (d > 1 && fits[d - 1])) continue;
    int e = d;
    while (e < n && fits[e + 1]) e++;
    k += (size_t)snprintf(buf + k, cap - k, k ? ", %d" : "%d", d);
    if (e > d && k < cap) k += (size_t)snprintf(buf + k, cap - k, "-%d", e);
  }
}

// What quantize would refuse before any work, as warnings (stages.c, engine_cuda.c, quantize.c).
static void refusals(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan_site *site,
                     struct qs_plan *p) {
  const struct qs_config *c = &s->cfg;
  if (site->np % p->S) warn(p, "quantize refuses: --np %d is not a multiple of --stages %d", site->np, p->S);
  if (p->S > c->n_layers) warn(p, "quantize refuses: --stages %d, more stages than the %d layers", p->S, c->n_layers);
  if (p->cuda && p->S > 1)
    warn(p, "quantize refuses --stages %d with --device cuda: stages run on the CPU engine only for now", p->S);
  if (p->cuda && p->n_samples > 0 && p->D > QS_MIN(PLAN_LEAVES, p->n_samples))
    warn(p, "quantize refuses: %d data ranks per stage but the Hessian is summed over %lld fixed leaves "
         "(min(16, samples)); use at most %lld ranks per stage", p->D, QS_MIN((long long)PLAN_LEAVES, p->n_samples),
         QS_MIN((long long)PLAN_LEAVES, p->n_samples));
  if (a->method->needs & QS_METHOD_SCALES) // not a refusal: the model lacks AWQ's phases
    warn(p, "--method %s: the figures below are the GPTQ path's; the scale search, the fold and (awq) the "
         "full-precision pass are not in this model yet", a->method->name);
  for (int i = 0; i < a->n_formats && p->cuda; i++)
    if (a->formats[i]->module_grid)
      warn(p, "quantize refuses --device cuda with --format %s: llama.cpp's block quantizers run on the CPU engine",
           a->formats[i]->name);
  if (p->cuda && a->q.block_size > 0 && a->q.block_size != 128)
    warn(p, "quantize refuses --block %d with --device cuda (the GPU solve is built for 128)", a->q.block_size);
  if (!p->cuda && p->n_samples > 0) { // quantize.c check_sizes, against the node's memory per rank
    const int rpn = QS_MAX(1, QS_MIN(site->gpus_per_node, site->np));
    double need = (double)QS_CEIL_DIV(p->n_samples, p->D) * p->T * (2.0 * c->hidden + c->intermediate) * 4;
    if (need > site->host_bytes / rpn)
      warn(p, "quantize refuses where a rank has less than %.1f GiB available for its calibration activations "
           "(--samples x --seqlen per rank)", need / GIB);
  }
  const int b = a->q.grid.bits;
  if (a->q.grid.kind == QS_GRID_INT && b != 2 && b != 3 && b != 4 && b != 8)
    warn(p, "quantize refuses --bits %d: expected 2, 3, 4 or 8", b);
  if (!a->allow_long && c->max_pos > 0 && p->T > c->max_pos)
    warn(p, "quantize refuses --seqlen %d: longer than the model's %d positions (--allow-long)", p->T, c->max_pos);
}

// Whether the configuration fits the card, the node and the disk; what would.
static void fits(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan_site *site,
                 struct qs_plan *p) {
  const int rpn = QS_MAX(1, QS_MIN(site->gpus_per_node, site->np));
  if (p->cuda && p->gpu.peak > site->gpu_bytes) {
    int ok[PLAN_LEAVES + 1] = {0}, nmax = (int)QS_MIN((long long)PLAN_LEAVES, QS_MAX(p->n_samples, 1LL));
    char list[96];
    for (int d = 1; d <= nmax; d++) {
      struct gpu_mem m0, m1;
      gpu_memory(s, a, site, p->n_samples, p->T, d, 0, &m0);
      gpu_memory(s, a, site, p->n_samples, p->T, d, 1, &m1);
      ok[d] = QS_MAX(m0.peak, d > 1 ? m1.peak : 0) <= site->gpu_bytes;
    }
    ranges(ok, nmax, list, sizeof(list));
    warn(p, "GPU memory: needs %.1f GiB per rank (data rank %d, %s), the card has %.1f GiB: %s%s%s", p->gpu.peak / GIB,
         p->gpu.rank, p->gpu.peak_phase, site->gpu_bytes / GIB, list[0] ? "it fits with data ranks per stage = " : "no rank count fits: "
         "use fewer --samples or a shorter --seqlen", list, list[0] ? " (--np x --stages)" : "");
  }
  if (p->host.peak * rpn > site->host_bytes)
    warn(p, "host memory: needs %.1f GiB per node (%d ranks x %.1f GiB), the node has %.1f GiB%s", p->host.peak * rpn / GIB,
         rpn, p->host.peak / GIB, site->host_bytes / GIB, p->cuda ? "" : ": add nodes or fewer --samples per rank");
  if (p->disk.free >= 0 && p->disk.peak > p->disk.free)
    warn(p, "disk: OUT.partial holds up to %.1f GiB (outputs %.1f, layer records %.1f, activations %.1f), %s has %.1f "
         "GiB free", p->disk.peak / GIB, p->disk.out_total / GIB, p->disk.state_layers / GIB, p->disk.state_x / GIB,
         a->out ? a->out : "--out", p->disk.free / GIB);
  if (p->cuda && p->n_samples > 0 && !p->act_stored)
    warn(p, "note: the down_proj inputs (%.1f GiB) do not fit next to the rest: gate/up are computed twice per layer",
         (double)share_of(p->n_samples, 1, p->D, 0).B * p->T * s->cfg.intermediate * (a->precision_f32 ? 4 : 2) / GIB);
  if (p->cuda && p->t.ph[QS_PLAN_PH_LOAD] > 2 * s->layer_bytes / (K_(PC_PCIE) * GB))
    warn(p, "note: disk-bound: the weight reader needs %.2f s per layer at %.2f GB/s, more than the GPU's %.2f s",
         p->t.read_layer, site->read_bps / GB, p->t.layer - p->t.ph[QS_PLAN_PH_LOAD]);
  if (a->eval_data) warn(p, "note: --eval's scoring of the written checkpoint is not in these figures");
  if (p->t.n_saves > 0)
    warn(p, "note: %d resume-state saves of %.1f GiB of activations per rank (--state-interval)", p->t.n_saves,
         (p->cuda ? p->gpu.x : p->host.x) / GIB);
}

qs_status qs_plan_compute(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan_site *site,
                          struct qs_plan *p) {
  qs_status status = QS_OK;
  memset(p, 0, sizeof(*p));
  if (site->np < 1 || a->stages < 1 || site->gpus_per_node < 1)
    QS_FAIL(QS_ERR_ARG, "--np %d, --stages %d, --gpus-per-node %d must be positive", site->np, a->stages,
            site->gpus_per_node);
  p->cuda = a->device == QS_DEVICE_KIND_CUDA;
  p->P = site->np;
  p->S = a->stages;
  p->D = QS_MAX(1, site->np / a->stages);
  p->nodes = QS_CEIL_DIV(site->np, site->gpus_per_node);
  p->T = a->seqlen > 0 ? a->seqlen : QS_MIN(2048, s->cfg.max_pos > 0 ? s->cfg.max_pos : 2048);
  p->n_samples = a->calib ? a->samples : 0;
  p->B = share_of(p->n_samples, p->cuda, p->D, 0).B;
  int bounds[4096 + 1];
  if (p->S > 1 && p->S <= s->cfg.n_layers && p->S <= 4096) { // the largest stage
    qs_stages_split_layers(s->params, s->cfg.n_layers, p->S, bounds);
    for (int k = 0; k < p->S; k++) p->layers = QS_MAX(p->layers, bounds[k + 1] - bounds[k]);
  } else {
    p->layers = s->cfg.n_layers;
  }
  refusals(s, a, site, p);
  if (p->cuda) {
    struct gpu_mem m0, m1;
    gpu_memory(s, a, site, p->n_samples, p->T, p->D, 0, &m0);
    if (p->D > 1) gpu_memory(s, a, site, p->n_samples, p->T, p->D, 1, &m1);
    const struct gpu_mem *m = p->D > 1 && m1.peak > m0.peak ? &m1 : &m0;
    p->gpu.ctx = m->ctx, p->gpu.x = m->x, p->gpu.att = m->att, p->gpu.act = m->act, p->gpu.seq = m->seq;
    p->gpu.layer = m->layer, p->gpu.persistent = m->persistent, p->gpu.hessian = m->hessian;
    p->gpu.factor = m->factor, p->gpu.solve = m->solve, p->gpu.scratch = m->scratch, p->gpu.peak = m->peak;
    p->gpu.sampled = QS_MAX(m0.sampled, p->D > 1 ? m1.sampled : 0);
    p->gpu.peak_phase = m->phase;
    p->gpu.rank = m == &m0 ? 0 : 1;
    p->act_stored = m0.act_stored;
    gpu_layer(s, a, site, p->n_samples, p->T, p->D, p->act_stored, p->t.ph);
  } else {
    struct cpu_mem m;
    cpu_memory(s, a, p->n_samples, p->T, p->D, &m);
    p->host.x = m.x, p->host.fwd = m.fwd, p->host.layer = m.layer, p->host.hessian = m.hessian;
    p->host.module = m.module;
    cpu_layer(s, a, site, p->n_samples, p->T, p->D, p->t.ph);
  }
  disk(s, a, site, p);
  end_to_end(s, a, site, p);
  disk_state(s, p);
  host_memory(s, a, site, p);
  fits(s, a, site, p);
fail:
  return status;
}

// ---- JSON ------------------------------------------------------------------------------------------

static json_t *gib_obj(int n, const char *const *names, const double *v) {
  json_t *o = json_object();
  for (int i = 0; i < n; i++) json_object_set_new(o, names[i], json_real(v[i] / GIB));
  return o;
}

json_t *qs_plan_json(const struct qs_plan_shape *s, const struct qs_run_opts *a, const struct qs_plan_site *site,
                     const struct qs_plan *p) {
  static const char *const gn[] = {"context", "x", "att", "act", "sequence", "layer", "persistent", "hessian",
                                   "factor", "solve", "scratch", "peak", "peak_phase_ends"};
  const double gv[] = {p->gpu.ctx, p->gpu.x, p->gpu.att, p->gpu.act, p->gpu.seq, p->gpu.layer, p->gpu.persistent,
                       p->gpu.hessian, p->gpu.factor, p->gpu.solve, p->gpu.scratch, p->gpu.peak, p->gpu.sampled};
  static const char *const hn[] = {"base", "embeddings", "reader_slots", "record_slots", "layer_file", "x_save", "x",
                                   "forward", "layer", "hessian", "module", "output", "peak", "mapped_checkpoint"};
  const double hv[] = {p->host.base, p->host.embed, p->host.slots, p->host.records, p->host.writer, p->host.xsave,
                       p->host.x, p->host.fwd, p->host.layer, p->host.hessian, p->host.module, p->host.output,
                       p->host.peak, p->host.mapped};
  json_t *j = json_object(), *ph = json_object(), *w = json_array(), *out = json_object(), *k = json_array();
  for (int i = 0; i < QS_PLAN_PH_COUNT; i++) json_object_set_new(ph, qs_plan_phase_names[i], json_real(p->t.ph[i]));
  for (int i = 0; i < p->n_warn; i++) json_array_append_new(w, json_string(p->warn[i]));
  for (int i = 0; i < a->n_formats; i++) json_object_set_new(out, a->formats[i]->name, json_real(p->disk.out[i] / GIB));
  for (int i = 0; i < PC_COUNT; i++)
    json_array_append_new(k, json_pack("{s:s, s:f, s:s, s:s}", "name", k_plan_consts[i].name, "value",
                                       k_plan_consts[i].value, "unit", k_plan_consts[i].unit, "source",
                                       k_plan_consts[i].source));
  json_object_set_new(j, "model", json_pack("{s:s, s:i, s:i, s:i, s:I, s:f}", "name", s->name, "layers", s->cfg.n_layers,
                                           "hidden", s->cfg.hidden, "intermediate", s->cfg.intermediate, "params",
                                           (json_int_t)qs_config_param_count(&s->cfg), "checkpoint_gib", s->in_bytes / GIB));
  json_object_set_new(j, "run", json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:i, s:i}", "device",
                                         p->cuda ? "cuda" : "cpu", "method", a->method->name, "samples",
                                         (json_int_t)p->n_samples, "seqlen", p->T, "np", p->P, "stages", p->S,
                                         "data_ranks", p->D, "nodes", p->nodes, "gpus_per_node", site->gpus_per_node,
                                         "samples_rank0", (json_int_t)p->B, "layers_stage", p->layers,
                                         "act_stored", p->act_stored));
  if (p->cuda) {
    json_t *g = gib_obj((int)(sizeof(gn) / sizeof(gn[0])), gn, gv);
    json_object_set_new(g, "peak_phase", json_string(p->gpu.peak_phase ? p->gpu.peak_phase : ""));
    json_object_set_new(g, "peak_rank", json_integer(p->gpu.rank));
    json_object_set_new(g, "card", json_real(site->gpu_bytes / GIB));
    json_object_set_new(j, "gpu_gib", g);
  }
  json_t *h = gib_obj((int)(sizeof(hn) / sizeof(hn[0])), hn, hv);
  json_object_set_new(h, "node", json_real(site->host_bytes / GIB));
  json_object_set_new(h, "rss", json_real((p->host.peak + p->host.mapped) / GIB));
  json_object_set_new(j, "host_gib", h);
  json_object_set_new(j, "disk_gib", json_pack("{s:f, s:f, s:o, s:f, s:f, s:f, s:f, s:f}", "checkpoint", p->disk.in / GIB,
                                              "read_per_node", p->disk.read_node / GIB, "outputs", out, "outputs_total",
                                              p->disk.out_total / GIB, "state_layers", p->disk.state_layers / GIB,
                                              "state_x", p->disk.state_x / GIB, "peak", p->disk.peak / GIB, "free",
                                              p->disk.free < 0 ? -1.0 : p->disk.free / GIB));
  json_object_set_new(j, "seconds", json_pack("{s:o, s:f, s:f, s:f, s:f, s:f, s:i, s:f, s:f, s:f}", "phases", ph,
                                             "layer", p->t.layer, "read_layer", p->t.read_layer, "start", p->t.start,
                                             "layers", p->t.layers, "saves", p->t.saves, "n_saves", p->t.n_saves,
                                             "boundary", p->t.boundary, "output", p->t.output, "total", p->t.total));
  json_object_set_new(j, "warnings", w);
  json_object_set_new(j, "constants", k);
  return j;
}
