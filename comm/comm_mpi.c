// comm_mpi.c — struct qs_comm over MPI (host buffers). See comm.h for the contract.
#include "comm.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct qs_comm {
  MPI_Comm comm;
  int rank, size, local_rank, local_size;
  int owned; // communicator created here (freed by qs_comm_free)
};

// Leaf wrapper: prints rank, host, file:line and the failing call with MPI's error string.
#define QS_MPI_CHECK(call)                                                              \
  do {                                                                                  \
    int rc_ = (call);                                                                   \
    if (rc_ != MPI_SUCCESS) {                                                           \
      char es_[MPI_MAX_ERROR_STRING];                                                   \
      int len_ = 0;                                                                     \
      MPI_Error_string(rc_, es_, &len_);                                                \
      QS_FAIL(QS_ERR_COMM, "%s -> %s", #call, es_);                                     \
    }                                                                                   \
  } while (0)

// Largest piece moved by one MPI call (counts are int).
static const size_t k_chunk = (size_t)1 << 30;

static qs_status comm_fill(struct qs_comm *c) {
  qs_status status = QS_OK;
  MPI_Comm node = MPI_COMM_NULL;
  QS_MPI_CHECK(MPI_Comm_rank(c->comm, &c->rank));
  QS_MPI_CHECK(MPI_Comm_size(c->comm, &c->size));
  QS_MPI_CHECK(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
  QS_MPI_CHECK(MPI_Comm_rank(node, &c->local_rank));
  QS_MPI_CHECK(MPI_Comm_size(node, &c->local_size));
fail:
  if (node != MPI_COMM_NULL) MPI_Comm_free(&node);
  return status;
}

qs_status qs_comm_init(int *argc, char ***argv, struct qs_comm **world) {
  qs_status status = QS_OK;
  struct qs_comm *c = NULL;
  int inited = 0, provided = 0;
  QS_MPI_CHECK(MPI_Initialized(&inited));
  if (!inited) QS_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  // Errors come back as codes so that each call site can report itself.
  QS_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  QS_ALLOC(c, 1);
  c->comm = MPI_COMM_WORLD;
  QS_TRY(comm_fill(c));
  qs_log_set_rank(c->rank, c->size);
  *world = c;
  return QS_OK;
fail:
  free(c);
  return status;
}

void qs_comm_finalize(struct qs_comm *world) {
  free(world);
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}

void qs_comm_abort(struct qs_comm *c, int code) {
  fflush(stdout);
  fflush(stderr);
  MPI_Abort(c ? c->comm : MPI_COMM_WORLD, code);
  exit(code); // not reached
}

int qs_comm_rank(const struct qs_comm *c) { return c->rank; }
int qs_comm_size(const struct qs_comm *c) { return c->size; }
int qs_comm_local_rank(const struct qs_comm *c) { return c->local_rank; }
int qs_comm_local_size(const struct qs_comm *c) { return c->local_size; }

qs_status qs_comm_split(struct qs_comm *c, int color, int key, struct qs_comm **out) {
  qs_status status = QS_OK;
  struct qs_comm *n = NULL;
  QS_ALLOC(n, 1);
  QS_MPI_CHECK(MPI_Comm_split(c->comm, color, key, &n->comm));
  QS_MPI_CHECK(MPI_Comm_set_errhandler(n->comm, MPI_ERRORS_RETURN));
  n->owned = 1;
  QS_TRY(comm_fill(n));
  *out = n;
  return QS_OK;
fail:
  if (n && n->owned) MPI_Comm_free(&n->comm);
  free(n);
  return status;
}

void qs_comm_free(struct qs_comm *c) {
  if (!c) return;
  if (c->owned) MPI_Comm_free(&c->comm);
  free(c);
}

qs_status qs_comm_barrier(struct qs_comm *c) {
  qs_status status = QS_OK;
  QS_MPI_CHECK(MPI_Barrier(c->comm));
fail:
  return status;
}

qs_status qs_comm_barrier_idle(struct qs_comm *c) {
  qs_status status = QS_OK;
  MPI_Request req;
  int done = 0;
  QS_MPI_CHECK(MPI_Ibarrier(c->comm, &req));
  while (!done) {
    QS_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (!done) nanosleep(&(struct timespec){0, 2000000}, NULL); // 2 ms: no busy core while waiting
  }
fail:
  return status;
}

qs_status qs_comm_bcast(struct qs_comm *c, void *buf, size_t bytes, int root) {
  qs_status status = QS_OK;
  for (size_t off = 0; off < bytes; off += k_chunk) {
    int n = (int)QS_MIN(k_chunk, bytes - off);
    QS_MPI_CHECK(MPI_Bcast((char *)buf + off, n, MPI_BYTE, root, c->comm));
  }
fail:
  return status;
}

// Pieces under 2 GiB go through one MPI_Allgatherv; larger ones are broadcast from their owner.
qs_status qs_comm_allgatherv(struct qs_comm *c, const void *send, void *recv, const size_t *counts) {
  qs_status status = QS_OK;
  int *cnt = NULL, *disp = NULL;
  size_t total = 0, maxc = 0;
  for (int r = 0; r < c->size; r++) { total += counts[r]; maxc = QS_MAX(maxc, counts[r]); }
  if (total < (size_t)INT_MAX) {
    QS_ALLOC(cnt, c->size);
    QS_ALLOC(disp, c->size);
    for (int r = 0, off = 0; r < c->size; r++) { cnt[r] = (int)counts[r]; disp[r] = off; off += cnt[r]; }
    if (send) QS_MPI_CHECK(MPI_Allgatherv(send, cnt[c->rank], MPI_BYTE, recv, cnt, disp, MPI_BYTE, c->comm));
    else QS_MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recv, cnt, disp, MPI_BYTE, c->comm));
  } else {
    size_t off = 0;
    for (int r = 0; r < c->size; r++) {
      if (r == c->rank && counts[r] && send) memmove((char *)recv + off, send, counts[r]);
      QS_TRY(qs_comm_bcast(c, (char *)recv + off, counts[r], r));
      off += counts[r];
    }
  }
fail:
  free(cnt);
  free(disp);
  return status;
}

qs_status qs_comm_gatherv(struct qs_comm *c, const void *send, void *recv, const size_t *counts, int root) {
  qs_status status = QS_OK;
  if (c->rank == root) {
    size_t off = 0;
    for (int r = 0; r < c->size; r++) {
      if (r == root) memmove((char *)recv + off, send, counts[r]);
      else QS_TRY(qs_comm_recv(c, (char *)recv + off, counts[r], r, 7001));
      off += counts[r];
    }
  } else {
    QS_TRY(qs_comm_send(c, send, counts[c->rank], root, 7001));
  }
fail:
  return status;
}

qs_status qs_comm_send(struct qs_comm *c, const void *buf, size_t bytes, int dest, int tag) {
  qs_status status = QS_OK;
  for (size_t off = 0; off < bytes; off += k_chunk) {
    int n = (int)QS_MIN(k_chunk, bytes - off);
    QS_MPI_CHECK(MPI_Send((const char *)buf + off, n, MPI_BYTE, dest, tag, c->comm));
  }
fail:
  return status;
}

qs_status qs_comm_recv(struct qs_comm *c, void *buf, size_t bytes, int src, int tag) {
  qs_status status = QS_OK;
  for (size_t off = 0; off < bytes; off += k_chunk) {
    int n = (int)QS_MIN(k_chunk, bytes - off);
    QS_MPI_CHECK(MPI_Recv((char *)buf + off, n, MPI_BYTE, src, tag, c->comm, MPI_STATUS_IGNORE));
  }
fail:
  return status;
}

qs_status qs_comm_allreduce_and(struct qs_comm *c, int *value) {
  qs_status status = QS_OK;
  int v = *value ? 1 : 0, r = 0;
  QS_MPI_CHECK(MPI_Allreduce(&v, &r, 1, MPI_INT, MPI_LAND, c->comm));
  *value = r;
fail:
  return status;
}

qs_status qs_comm_allreduce_max_i64(struct qs_comm *c, long long *value) {
  qs_status status = QS_OK;
  long long r = 0;
  QS_MPI_CHECK(MPI_Allreduce(value, &r, 1, MPI_LONG_LONG, MPI_MAX, c->comm));
  *value = r;
fail:
  return status;
}

void qs_comm_split_range(long long n, int size, int part, long long *begin, long long *end) {
  long long base = n / size, rem = n % size;
  *begin = part * base + QS_MIN((long long)part, rem);
  *end = *begin + base + (part < rem ? 1 : 0);
}
