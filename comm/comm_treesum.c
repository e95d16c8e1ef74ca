// comm_treesum.c — the ordered tree sum of comm.h (qs_comm_treesum_f32).
//
// Why a tree over leaves and not "each rank sums its share, then add the shares": float addition
// is not associative, so the second way gives different bits for 1, 2 or 4 ranks. Fixing the
// tree over leaves (independent of the rank count) fixes every addition; ranks only decide who
// performs which addition. Messages follow the tree's post-order on every rank (left subtree,
// right subtree, then the node) and always go from a higher rank to a lower one, so blocking
// send/receive pairs cannot deadlock: each rank walks a subsequence of one global order.
#include <stdlib.h>
#include <string.h>

#include "comm.h"

struct treesum {
  struct qs_comm *c;
  long long n;
  size_t len;
  qs_leaf_fn leaf_fn;
  void *ctx;
  long long my_lo, my_hi; // leaves of this rank: [my_lo, my_hi)
};

enum { QS_TREESUM_TAG = 7100 };

// Rank that owns leaf i under qs_comm_split_range.
static int treesum_owner(const struct treesum *t, long long i) {
  int lo = 0, hi = qs_comm_size(t->c) - 1;
  while (lo < hi) { // first rank whose range ends after i
    int mid = (lo + hi) / 2;
    long long b, e;
    qs_comm_split_range(t->n, qs_comm_size(t->c), mid, &b, &e);
    if (e > i) hi = mid; else lo = mid + 1;
  }
  return lo;
}

static void treesum_add(float *dst, const float *src, size_t len) {
  for (size_t i = 0; i < len; i++) dst[i] += src[i];
}

// Visits node [lo, hi), which holds at least one leaf of this rank. Returns (in *out) the node's
// value when this rank owns leaf lo (the node's owner), else NULL after sending what it owes.
static qs_status treesum_visit(struct treesum *t, long long lo, long long hi, float **out) {
  qs_status status = QS_OK;
  float *left = NULL, *right = NULL;
  int me = qs_comm_rank(t->c);
  *out = NULL;
  if (hi - lo == 1) {
    QS_ALLOC(left, t->len);
    QS_TRY(t->leaf_fn(t->ctx, lo, left));
    *out = left;
    return QS_OK;
  }
  long long mid = lo + (hi - lo) / 2;
  if (t->my_lo < mid && t->my_hi > lo) QS_TRY(treesum_visit(t, lo, mid, &left));
  if (t->my_lo < hi && t->my_hi > mid) QS_TRY(treesum_visit(t, mid, hi, &right));
  int owner = treesum_owner(t, lo), right_owner = treesum_owner(t, mid);
  if (owner == me) {
    if (right_owner != me) {
      QS_ALLOC(right, t->len);
      QS_TRY(qs_comm_recv(t->c, right, t->len * sizeof(float), right_owner, QS_TREESUM_TAG));
    }
    treesum_add(left, right, t->len);
    *out = left;
    left = NULL;
  } else if (right_owner == me) {
    QS_TRY(qs_comm_send(t->c, right, t->len * sizeof(float), owner, QS_TREESUM_TAG));
  }
fail:
  free(left);
  free(right);
  return status;
}

qs_status qs_comm_treesum_f32(struct qs_comm *c, long long n, size_t len, qs_leaf_fn leaf_fn,
                              void *ctx, float *result) {
  qs_status status = QS_OK;
  float *root = NULL;
  struct treesum t = {.c = c, .n = n, .len = len, .leaf_fn = leaf_fn, .ctx = ctx};
  if (n <= 0) QS_FAIL(QS_ERR_ARG, "tree sum over %lld leaves", n);
  qs_comm_split_range(n, qs_comm_size(c), qs_comm_rank(c), &t.my_lo, &t.my_hi);
  if (t.my_hi > t.my_lo) QS_TRY(treesum_visit(&t, 0, n, &root)); // ranks beyond n hold no leaf
  if (qs_comm_rank(c) == 0) memcpy(result, root, len * sizeof(float));
  QS_TRY(qs_comm_bcast(c, result, len * sizeof(float), 0));
fail:
  free(root);
  return status;
}
