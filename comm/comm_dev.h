// comm_dev.h — collectives on device (CUDA) buffers for the GPU pipeline: NCCL when qshard is built
// with it (comm_dev_nccl.c: one communicator per struct qs_comm, its unique id broadcast over MPI),
// else MPI through pinned host staging (comm_dev_host.c). Only comm/ sees mpi.h and nccl.h.
//
// Contract as comm.h: no floating-point reduction happens here (callers that sum over ranks move
// the pieces and add them in a fixed order), so results do not depend on the rank count. Every call
// is enqueued on `stream`; the host-staging backend synchronizes it.
#ifndef QS_COMM_DEV_H
#define QS_COMM_DEV_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "comm.h"

struct qs_dcomm; // opaque

// Collective over the ranks of c; each rank must have selected its CUDA device already.
qs_status qs_dcomm_init(struct qs_comm *c, struct qs_dcomm **out);
void qs_dcomm_free(struct qs_dcomm *d);
// "nccl <version>" or "mpi (host staging)".
const char *qs_dcomm_backend(const struct qs_dcomm *d);

// buf (device) of `bytes` bytes from root to every rank.
qs_status qs_dcomm_bcast(struct qs_dcomm *d, void *buf, size_t bytes, int root, cudaStream_t stream);
// In place: rank r's counts[r] bytes already sit at offset counts[0] + ... + counts[r-1] of buf
// (device); on return every rank holds every piece.
qs_status qs_dcomm_allgatherv(struct qs_dcomm *d, void *buf, const size_t *counts, cudaStream_t stream);
// Point to point (device buffers); a send must be matched by a recv of the same size on `peer`.
qs_status qs_dcomm_send(struct qs_dcomm *d, const void *buf, size_t bytes, int peer, cudaStream_t stream);
qs_status qs_dcomm_recv(struct qs_dcomm *d, void *buf, size_t bytes, int peer, cudaStream_t stream);

#endif
