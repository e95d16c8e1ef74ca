// comm_mpi.c — struct qs_comm over MPI (host buffers). See comm.h for the contract.
#include "comm.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

struct qs_comm {
  MPI_Comm comm;
  int rank, size, local_rank, local_size;
  int owned;               // communicator created here (freed by qs_comm_free)
  unsigned long long seq;  // operations started on this communicator (named in a timeout report)
};

// Collective waits end after this many seconds (0: never): a rank that died or hangs must not keep
// the others waiting forever (qs_comm_set_timeout). g_side, a duplicate of MPI_COMM_WORLD, carries
// only the timeout reports, so they cannot match a message of the run.
static double g_timeout = 3600;
static MPI_Comm g_side = MPI_COMM_NULL;
// g_fail, another duplicate of MPI_COMM_WORLD: the failed ranks meet there (qs_comm_settle_failure)
// while the others may still wait in a collective of the run.
static MPI_Comm g_fail = MPI_COMM_NULL;
enum { TAG_WAITING = 0x5157 };

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
  if (g_side == MPI_COMM_NULL) {
    QS_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &g_side));
    QS_MPI_CHECK(MPI_Comm_set_errhandler(g_side, MPI_ERRORS_RETURN));
    QS_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &g_fail));
    QS_MPI_CHECK(MPI_Comm_set_errhandler(g_fail, MPI_ERRORS_RETURN));
  }
  const char *env = getenv("QS_COMM_TIMEOUT");
  if (env && *env) {
    char *end = NULL;
    double v = strtod(env, &end);
    if (*end || !(v >= 0)) QS_FAIL(QS_ERR_ARG, "QS_COMM_TIMEOUT='%s': expected seconds >= 0 (0: no timeout)", env);
    g_timeout = v;
  }
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
  if (fin) return;
  if (g_side != MPI_COMM_NULL) MPI_Comm_free(&g_side);
  if (g_fail != MPI_COMM_NULL) MPI_Comm_free(&g_fail);
  MPI_Finalize();
}

void qs_comm_set_timeout(double seconds) { g_timeout = seconds; }
double qs_comm_timeout(void) { return g_timeout; }

// ---- waiting with a timeout -----------------------------------------------------------------------

// World rank of rank r of c.
static int world_rank_of(const struct qs_comm *c, int r) {
  MPI_Group g = MPI_GROUP_NULL, w = MPI_GROUP_NULL;
  int out = r;
  if (MPI_Comm_group(c->comm, &g) == MPI_SUCCESS && MPI_Comm_group(MPI_COMM_WORLD, &w) == MPI_SUCCESS)
    MPI_Group_translate_ranks(g, 1, &r, w, &out);
  if (g != MPI_GROUP_NULL) MPI_Group_free(&g);
  if (w != MPI_GROUP_NULL) MPI_Group_free(&w);
  return out;
}

// The wait of operation `op` (peer: the rank of c it waits on, or -1 for a collective) has lasted past
// the timeout. This rank tells every rank of c that it waits, and hears for a few seconds which of them
// wait too: those that say nothing are the ones that stopped answering (dead, hung, or still busy
// elsewhere). One error line names them, then the whole job ends (MPI_Abort) with QS_EXIT_COMM_TIMEOUT.
static void timeout_abort(struct qs_comm *c, const char *op, int peer, double waited) {
  struct { int world, seq_lo, seq_hi; } me = {0}, msg;
  MPI_Comm_rank(MPI_COMM_WORLD, &me.world);
  me.seq_lo = (int)(c->seq & 0x7fffffff), me.seq_hi = (int)(c->seq >> 31);
  int n = c->size, *heard = calloc((size_t)n, sizeof(int)), *wr = calloc((size_t)n, sizeof(int));
  MPI_Request *reqs = calloc((size_t)n, sizeof(MPI_Request));
  if (!heard || !wr || !reqs) {
    qs_log(QS_LOG_ERROR, "%s waited %.0f s (--comm-timeout); aborting the job", op, waited);
    MPI_Abort(MPI_COMM_WORLD, QS_EXIT_COMM_TIMEOUT);
  }
  for (int r = 0; r < n; r++) {
    wr[r] = world_rank_of(c, r);
    reqs[r] = MPI_REQUEST_NULL;
    if (r != c->rank) MPI_Isend(&me, 3, MPI_INT, wr[r], TAG_WAITING, g_side, &reqs[r]);
  }
  heard[c->rank] = 1;
  // Peers that wait as well reach their own timeout within about the same time; listen that long.
  double grace = QS_MIN(30.0, QS_MAX(2.0, g_timeout / 10)), t0 = qs_time_now();
  while (qs_time_now() - t0 < grace) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_WAITING, g_side, &flag, &st) != MPI_SUCCESS) break;
    if (!flag) { nanosleep(&(struct timespec){0, 10000000}, NULL); continue; }
    MPI_Recv(&msg, 3, MPI_INT, st.MPI_SOURCE, TAG_WAITING, g_side, MPI_STATUS_IGNORE);
    for (int r = 0; r < n; r++) heard[r] |= wr[r] == msg.world;
  }
  char silent[256] = "", waiting[256] = "";
  for (int r = 0; r < n; r++) {
    char *s = heard[r] ? waiting : silent;
    size_t len = strlen(s);
    if (len < sizeof(silent) - 16) snprintf(s + len, sizeof(silent) - len, "%s%d", len ? "," : "", wr[r]);
  }
  char what[64];
  if (peer >= 0) snprintf(what, sizeof(what), "%s %s rank %d", op, strcmp(op, "send") ? "from" : "to", wr[peer]);
  else snprintf(what, sizeof(what), "%s of %d ranks", op, n);
  qs_log(QS_LOG_ERROR, "%s waited %.0f s (timeout: --comm-timeout / QS_COMM_TIMEOUT): rank(s) %s stopped "
         "answering (rank(s) %s wait too); aborting the job", what, waited, *silent ? silent : "none", waiting);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, QS_EXIT_COMM_TIMEOUT);
  exit(QS_EXIT_COMM_TIMEOUT); // not reached
}

// Completes req like MPI_Wait (polling keeps Open MPI's progress and its yield when oversubscribed),
// but gives up after the timeout. idle: sleeps 2 ms between polls (a rank with nothing to do).
static int comm_wait(struct qs_comm *c, MPI_Request *req, const char *op, int peer, int idle) {
  double t0 = qs_time_now();
  for (unsigned long polls = 1;; polls++) {
    int done = 0, rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS || done) return rc;
    if (idle) nanosleep(&(struct timespec){0, 2000000}, NULL);
    if ((idle || polls % 4096 == 0) && g_timeout > 0) {
      double waited = qs_time_now() - t0;
      if (waited > g_timeout) timeout_abort(c, op, peer, waited);
    }
  }
}

// "0-3,5" from a 0/1 list of n ranks.
static void rank_list(const unsigned char *in, int n, char *out, size_t cap) {
  size_t k = 0;
  out[0] = '\0';
  for (int r = 0; r < n && k + 24 < cap; r++) {
    if (!in[r]) continue;
    int e = r;
    while (e + 1 < n && in[e + 1]) e++;
    k += (size_t)snprintf(out + k, cap - k, "%s%d", k ? "," : "", r);
    if (e > r) k += (size_t)snprintf(out + k, cap - k, "-%d", e);
    r = e;
  }
}

enum { FAIL_TEXT = 4096 };

int qs_comm_settle_failure(struct qs_comm *world, int code, double wait_s) {
  char mine[FAIL_TEXT] = {0}, who[96];
  const char *pend = qs_err_pending();
  snprintf(mine, sizeof(mine), "%s", pend);
  MPI_Request req;
  int done = 0;
  const double t0 = MPI_Wtime();
  if (world->size > 1 && g_fail != MPI_COMM_NULL && MPI_Ibarrier(g_fail, &req) == MPI_SUCCESS) {
    while (!done && MPI_Wtime() - t0 < wait_s) {
      if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
      if (!done) usleep(2000);
    }
  }
  if (!done) { // the others are still working, or stopped elsewhere: this rank's report, then the job ends
    snprintf(who, sizeof(who), "rank %d %s", world->rank, qs_log_host());
    qs_err_print(mine, who);
    qs_comm_abort(world, code);
  }
  // Every rank failed: rank 0 prints each distinct report once, naming the ranks that made it.
  char *all = world->rank == 0 ? calloc((size_t)world->size, FAIL_TEXT) : NULL;
  unsigned char *same = world->rank == 0 ? calloc((size_t)world->size, 1) : NULL, *used = same ? calloc((size_t)world->size, 1) : NULL;
  int ok = MPI_Gather(mine, FAIL_TEXT, MPI_CHAR, all, FAIL_TEXT, MPI_CHAR, 0, g_fail) == MPI_SUCCESS;
  if (world->rank == 0) {
    if (!ok || !all || !same || !used) {
      qs_err_print(mine, "rank 0");
    } else {
      for (int r = 0; r < world->size; r++) {
        const char *t = all + (size_t)r * FAIL_TEXT;
        if (used[r] || !t[0]) continue;
        memset(same, 0, (size_t)world->size);
        int n = 0;
        for (int q = r; q < world->size; q++)
          if (!used[q] && !strcmp(t, all + (size_t)q * FAIL_TEXT)) same[q] = used[q] = 1, n++;
        char list[64];
        rank_list(same, world->size, list, sizeof(list));
        if (n == world->size) snprintf(who, sizeof(who), "every rank (%d)", n);
        else snprintf(who, sizeof(who), "rank%s %s", n > 1 ? "s" : "", list);
        qs_err_print(t, who);
      }
    }
  }
  free(all);
  free(same);
  free(used);
  qs_err_clear();
  return code;
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

// Every operation below is started nonblocking and completed by comm_wait (the timeout).
qs_status qs_comm_barrier(struct qs_comm *c) {
  qs_status status = QS_OK;
  MPI_Request req;
  c->seq++;
  QS_MPI_CHECK(MPI_Ibarrier(c->comm, &req));
  QS_MPI_CHECK(comm_wait(c, &req, "barrier", -1, 0));
fail:
  return status;
}

qs_status qs_comm_barrier_idle(struct qs_comm *c) {
  qs_status status = QS_OK;
  MPI_Request req;
  c->seq++;
  QS_MPI_CHECK(MPI_Ibarrier(c->comm, &req));
  QS_MPI_CHECK(comm_wait(c, &req, "barrier", -1, 1)); // 2 ms sleeps: no busy core while waiting
fail:
  return status;
}

qs_status qs_comm_bcast(struct qs_comm *c, void *buf, size_t bytes, int root) {
  qs_status status = QS_OK;
  for (size_t off = 0; off < bytes; off += k_chunk) {
    int n = (int)QS_MIN(k_chunk, bytes - off);
    MPI_Request req;
    c->seq++;
    QS_MPI_CHECK(MPI_Ibcast((char *)buf + off, n, MPI_BYTE, root, c->comm, &req));
    QS_MPI_CHECK(comm_wait(c, &req, "broadcast", -1, 0));
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
    MPI_Request req;
    c->seq++;
    if (send) QS_MPI_CHECK(MPI_Iallgatherv(send, cnt[c->rank], MPI_BYTE, recv, cnt, disp, MPI_BYTE, c->comm, &req));
    else QS_MPI_CHECK(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recv, cnt, disp, MPI_BYTE, c->comm, &req));
    QS_MPI_CHECK(comm_wait(c, &req, "allgather", -1, 0));
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
    MPI_Request req;
    c->seq++;
    QS_MPI_CHECK(MPI_Isend((const char *)buf + off, n, MPI_BYTE, dest, tag, c->comm, &req));
    QS_MPI_CHECK(comm_wait(c, &req, "send", dest, 0));
  }
fail:
  return status;
}

qs_status qs_comm_recv(struct qs_comm *c, void *buf, size_t bytes, int src, int tag) {
  qs_status status = QS_OK;
  for (size_t off = 0; off < bytes; off += k_chunk) {
    int n = (int)QS_MIN(k_chunk, bytes - off);
    MPI_Request req;
    c->seq++;
    QS_MPI_CHECK(MPI_Irecv((char *)buf + off, n, MPI_BYTE, src, tag, c->comm, &req));
    QS_MPI_CHECK(comm_wait(c, &req, "receive", src, 0));
  }
fail:
  return status;
}

qs_status qs_comm_allreduce_and(struct qs_comm *c, int *value) {
  qs_status status = QS_OK;
  int v = *value ? 1 : 0, r = 0;
  MPI_Request req;
  c->seq++;
  QS_MPI_CHECK(MPI_Iallreduce(&v, &r, 1, MPI_INT, MPI_LAND, c->comm, &req));
  QS_MPI_CHECK(comm_wait(c, &req, "allreduce", -1, 0));
  *value = r;
fail:
  return status;
}

qs_status qs_comm_allreduce_max_i64(struct qs_comm *c, long long *value) {
  qs_status status = QS_OK;
  long long r = 0;
  MPI_Request req;
  c->seq++;
  QS_MPI_CHECK(MPI_Iallreduce(value, &r, 1, MPI_LONG_LONG, MPI_MAX, c->comm, &req));
  QS_MPI_CHECK(comm_wait(c, &req, "allreduce", -1, 0));
  *value = r;
fail:
  return status;
}

void qs_comm_split_range(long long n, int size, int part, long long *begin, long long *end) {
  long long base = n / size, rem = n % size;
  *begin = part * base + QS_MIN((long long)part, rem);
  *end = *begin + base + (part < rem ? 1 : 0);
}
