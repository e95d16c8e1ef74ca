// comm_dev_host.c — comm_dev.h without NCCL (built only with CUDA and QS_WITH_NCCL off): each call
// synchronizes the stream, copies the device buffer to pinned host memory, runs the MPI collective
// of comm.h, and copies back. Correct for any rank count, but every byte crosses PCIe twice.
#include <stdlib.h>

#include "comm_dev.h"

struct qs_dcomm {
  struct qs_comm *c;
  void *host;       // pinned staging buffer
  size_t host_bytes;
};

#define QS_DCUDA_CHECK(call)                                                            \
  do {                                                                                  \
    cudaError_t e_ = (call);                                                            \
    if (e_ != cudaSuccess) QS_FAIL(QS_ERR_CUDA, "%s -> %s", #call, cudaGetErrorString(e_)); \
  } while (0)

qs_status qs_dcomm_init(struct qs_comm *c, struct qs_dcomm **out) {
  qs_status status = QS_OK;
  struct qs_dcomm *d = NULL;
  QS_ALLOC(d, 1);
  d->c = c;
  *out = d;
fail:
  return status;
}

void qs_dcomm_free(struct qs_dcomm *d) {
  if (!d) return;
  if (d->host) cudaFreeHost(d->host);
  free(d);
}

const char *qs_dcomm_backend(const struct qs_dcomm *d) {
  (void)d;
  return "mpi (host staging)";
}

static qs_status stage(struct qs_dcomm *d, size_t bytes) {
  qs_status status = QS_OK;
  if (bytes <= d->host_bytes) return QS_OK;
  if (d->host) QS_DCUDA_CHECK(cudaFreeHost(d->host));
  d->host = NULL;
  d->host_bytes = 0;
  QS_DCUDA_CHECK(cudaMallocHost(&d->host, bytes));
  d->host_bytes = bytes;
fail:
  return status;
}

qs_status qs_dcomm_bcast(struct qs_dcomm *d, void *buf, size_t bytes, int root, cudaStream_t stream) {
  qs_status status = QS_OK;
  QS_TRY(stage(d, bytes));
  QS_DCUDA_CHECK(cudaStreamSynchronize(stream));
  if (qs_comm_rank(d->c) == root) QS_DCUDA_CHECK(cudaMemcpy(d->host, buf, bytes, cudaMemcpyDeviceToHost));
  QS_TRY(qs_comm_bcast(d->c, d->host, bytes, root));
  QS_DCUDA_CHECK(cudaMemcpy(buf, d->host, bytes, cudaMemcpyHostToDevice));
fail:
  return status;
}

qs_status qs_dcomm_allgatherv(struct qs_dcomm *d, void *buf, const size_t *counts, cudaStream_t stream) {
  qs_status status = QS_OK;
  size_t total = 0, off = 0;
  int rank = qs_comm_rank(d->c);
  for (int r = 0; r < qs_comm_size(d->c); r++) {
    if (r < rank) off += counts[r];
    total += counts[r];
  }
  QS_TRY(stage(d, total));
  QS_DCUDA_CHECK(cudaStreamSynchronize(stream));
  QS_DCUDA_CHECK(cudaMemcpy((char *)d->host + off, (char *)buf + off, counts[rank], cudaMemcpyDeviceToHost));
  QS_TRY(qs_comm_allgatherv(d->c, NULL, d->host, counts));
  QS_DCUDA_CHECK(cudaMemcpy(buf, d->host, total, cudaMemcpyHostToDevice));
fail:
  return status;
}

qs_status qs_dcomm_send(struct qs_dcomm *d, const void *buf, size_t bytes, int peer, cudaStream_t stream) {
  qs_status status = QS_OK;
  QS_TRY(stage(d, bytes));
  QS_DCUDA_CHECK(cudaStreamSynchronize(stream));
  QS_DCUDA_CHECK(cudaMemcpy(d->host, buf, bytes, cudaMemcpyDeviceToHost));
  QS_TRY(qs_comm_send(d->c, d->host, bytes, peer, 7301));
fail:
  return status;
}

qs_status qs_dcomm_recv(struct qs_dcomm *d, void *buf, size_t bytes, int peer, cudaStream_t stream) {
  qs_status status = QS_OK;
  QS_TRY(stage(d, bytes));
  QS_DCUDA_CHECK(cudaStreamSynchronize(stream));
  QS_TRY(qs_comm_recv(d->c, d->host, bytes, peer, 7301));
  QS_DCUDA_CHECK(cudaMemcpy(buf, d->host, bytes, cudaMemcpyHostToDevice));
fail:
  return status;
}
