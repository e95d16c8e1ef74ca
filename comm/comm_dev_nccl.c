// comm_dev_nccl.c — comm_dev.h over NCCL: the unique id is made by rank 0 and broadcast over MPI
// (qs_comm_bcast), then ncclCommInitRank on each rank's current device. Variable-size gathers are
// grouped broadcasts (one per rank, in place), which NCCL runs as one fused operation.
#include <stdio.h>
#include <stdlib.h>

#include <nccl.h>

#include "comm_dev.h"

struct qs_dcomm {
  ncclComm_t nccl;
  int rank, size;
  char backend[48];
};

// Leaf wrapper: the failing call, NCCL's error string and its last detailed message.
#define QS_NCCL_CHECK(call)                                                             \
  do {                                                                                  \
    ncclResult_t r_ = (call);                                                           \
    if (r_ != ncclSuccess) {                                                            \
      QS_FAIL(QS_ERR_COMM, "%s -> %s (%s)", #call, ncclGetErrorString(r_),              \
              ncclGetLastError(NULL));                                                  \
    }                                                                                   \
  } while (0)

qs_status qs_dcomm_init(struct qs_comm *c, struct qs_dcomm **out) {
  qs_status status = QS_OK;
  struct qs_dcomm *d = NULL;
  ncclUniqueId id;
  int version = 0;
  QS_ALLOC(d, 1);
  d->rank = qs_comm_rank(c);
  d->size = qs_comm_size(c);
  if (d->rank == 0) QS_NCCL_CHECK(ncclGetUniqueId(&id));
  QS_TRY(qs_comm_bcast(c, &id, sizeof(id), 0));
  QS_NCCL_CHECK(ncclCommInitRank(&d->nccl, d->size, id, d->rank));
  QS_NCCL_CHECK(ncclGetVersion(&version));
  snprintf(d->backend, sizeof(d->backend), "nccl %d.%d.%d", version / 10000, version / 100 % 100, version % 100);
  *out = d;
  return QS_OK;
fail:
  free(d);
  return status;
}

void qs_dcomm_free(struct qs_dcomm *d) {
  if (!d) return;
  ncclCommDestroy(d->nccl);
  free(d);
}

const char *qs_dcomm_backend(const struct qs_dcomm *d) { return d->backend; }

qs_status qs_dcomm_bcast(struct qs_dcomm *d, void *buf, size_t bytes, int root, cudaStream_t stream) {
  qs_status status = QS_OK;
  QS_NCCL_CHECK(ncclBroadcast(buf, buf, bytes, ncclUint8, root, d->nccl, stream));
fail:
  return status;
}

qs_status qs_dcomm_allgatherv(struct qs_dcomm *d, void *buf, const size_t *counts, cudaStream_t stream) {
  qs_status status = QS_OK;
  size_t off = 0;
  int grouped = 0;
  QS_NCCL_CHECK(ncclGroupStart());
  grouped = 1;
  for (int r = 0; r < d->size; r++) {
    char *p = (char *)buf + off;
    if (counts[r]) QS_NCCL_CHECK(ncclBroadcast(p, p, counts[r], ncclUint8, r, d->nccl, stream));
    off += counts[r];
  }
  grouped = 0;
  QS_NCCL_CHECK(ncclGroupEnd());
fail:
  if (grouped) ncclGroupEnd();
  return status;
}

qs_status qs_dcomm_send(struct qs_dcomm *d, const void *buf, size_t bytes, int peer, cudaStream_t stream) {
  qs_status status = QS_OK;
  QS_NCCL_CHECK(ncclSend(buf, bytes, ncclUint8, peer, d->nccl, stream));
fail:
  return status;
}

qs_status qs_dcomm_recv(struct qs_dcomm *d, void *buf, size_t bytes, int peer, cudaStream_t stream) {
  qs_status status = QS_OK;
  QS_NCCL_CHECK(ncclRecv(buf, bytes, ncclUint8, peer, d->nccl, stream));
fail:
  return status;
}
