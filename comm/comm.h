// comm.h — collectives for qshard. The only header of the project whose implementation sees MPI
// (comm_mpi.c) or NCCL (comm_nccl.c); everything else talks to struct qs_comm.
//
// Determinism contract: nothing here performs floating-point reduction. Callers that need a sum
// over ranks gather the pieces (allgatherv) and add them in a fixed order, so results do not
// depend on the number of ranks.
#ifndef QS_COMM_H
#define QS_COMM_H

#include <stddef.h>

#include "base/qs_common.h"

struct qs_comm; // opaque: wraps an MPI communicator

// MPI_Init (thread level FUNNELED), world communicator, log prefix. Safe to call once per process.
qs_status qs_comm_init(int *argc, char ***argv, struct qs_comm **world);
void qs_comm_finalize(struct qs_comm *world);
// Ends every rank of the job; for a rank that cannot continue (a peer would wait forever).
void qs_comm_abort(struct qs_comm *c, int code) __attribute__((noreturn));
// After a command failed on this rank with exit status `code` (errors deferred: qs_err_defer): if
// every rank of world arrives here within wait_s seconds, rank 0 prints each distinct deferred report
// once, naming the ranks that made it, and every rank returns `code` (the job ends without MPI_Abort
// and its banner); otherwise (some ranks still work or wait in a collective) this rank prints its
// own report and ends the job with MPI_Abort(code).
int qs_comm_settle_failure(struct qs_comm *world, int code, double wait_s);

// Every wait below gives up after `seconds` (0: waits forever; default 3600, or QS_COMM_TIMEOUT from
// the environment at qs_comm_init): the ranks that wait tell each other so, one error line names the
// ranks that never joined (dead, hung or busy elsewhere), and the job ends with QS_EXIT_COMM_TIMEOUT.
void qs_comm_set_timeout(double seconds);
double qs_comm_timeout(void);

int qs_comm_rank(const struct qs_comm *c);
int qs_comm_size(const struct qs_comm *c);
// Rank within the node (for the GPU choice) and the node's rank count.
int qs_comm_local_rank(const struct qs_comm *c);
int qs_comm_local_size(const struct qs_comm *c);

// New communicator of the ranks with the same color, ordered by key (MPI_Comm_split).
qs_status qs_comm_split(struct qs_comm *c, int color, int key, struct qs_comm **out);
void qs_comm_free(struct qs_comm *c);

qs_status qs_comm_barrier(struct qs_comm *c);
// Barrier that sleeps between polls instead of spinning a core (for ranks that finish early).
qs_status qs_comm_barrier_idle(struct qs_comm *c);
qs_status qs_comm_bcast(struct qs_comm *c, void *buf, size_t bytes, int root);
// Rank r contributes send[0..counts[r]) bytes; every rank receives all pieces back to back in rank
// order into recv (sum(counts) bytes). Any size (pieces over 2 GiB are moved in parts).
// send == NULL: in place, this rank's piece already sits at its offset in recv.
qs_status qs_comm_allgatherv(struct qs_comm *c, const void *send, void *recv, const size_t *counts);
// Same, to `root` only (recv used on root only).
qs_status qs_comm_gatherv(struct qs_comm *c, const void *send, void *recv, const size_t *counts, int root);
qs_status qs_comm_send(struct qs_comm *c, const void *buf, size_t bytes, int dest, int tag);
qs_status qs_comm_recv(struct qs_comm *c, void *buf, size_t bytes, int src, int tag);
// Logical AND / MAX of an int over ranks (for "did every rank succeed" decisions).
qs_status qs_comm_allreduce_and(struct qs_comm *c, int *value);
qs_status qs_comm_allreduce_max_i64(struct qs_comm *c, long long *value);

// Ordered tree sum, bit-identical for any number of ranks. The n leaves (e.g. calibration samples)
// are summed in one fixed binary tree: node [lo, hi) = [lo, mid) + [mid, hi), mid = lo + (hi-lo)/2,
// each addition element-wise in index order. Leaves are spread over the ranks contiguously
// (qs_comm_split_range); rank r computes its leaves with leaf_fn(ctx, leaf, out[len]) and the
// partial sums it owns; a node whose right half belongs to another rank receives it from there.
// The root (owned by rank 0) is broadcast: on return `result` (len floats) holds the same bits on
// every rank, equal to what one rank alone computes (ranks beyond n just receive it). Memory: up to log2(n/size)+2 buffers of len.
typedef qs_status (*qs_leaf_fn)(void *ctx, long long leaf, float *out);
qs_status qs_comm_treesum_f32(struct qs_comm *c, long long n, size_t len, qs_leaf_fn leaf_fn,
                              void *ctx, float *result);

// Contiguous balanced split of n items over `size` parts: part p gets [*begin, *end).
void qs_comm_split_range(long long n, int size, int part, long long *begin, long long *end);

#endif
