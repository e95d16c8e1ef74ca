// saver.c — the record saver thread (contract: saver.h). One worker, a FIFO of QS_QSAVER_DEPTH
// slots, a mutex and two condition variables (work arrived / a slot freed); every pthread call is
// checked.
#include "run/saver.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct job {
  struct qs_st_writer *w;
  struct qs_qrecord rec;
};

struct qs_qsaver {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t work, room;
  struct job q[QS_QSAVER_DEPTH];
  int head, n;      // FIFO of n jobs from head
  int busy;         // the worker holds a job (not in the FIFO any more)
  int stop;
  qs_status status; // the first failure since the last drain
  int started, mu_ok, work_ok, room_ok;
};

static void *worker(void *arg) {
  struct qs_qsaver *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->n && !s->stop) pthread_cond_wait(&s->work, &s->mu);
    if (!s->n && s->stop) break;
    struct job j = s->q[s->head];
    s->head = (s->head + 1) % QS_QSAVER_DEPTH;
    s->n--;
    s->busy = 1;
    pthread_mutex_unlock(&s->mu);
    // After a failure, or when the run is being torn down, records are dropped, not written.
    qs_status st = s->status == QS_OK && !s->stop ? qs_qrecord_save(j.w, &j.rec) : QS_OK;
    qs_qrecord_free(&j.rec);
    pthread_mutex_lock(&s->mu);
    if (st != QS_OK && s->status == QS_OK) s->status = st;
    s->busy = 0;
    pthread_cond_broadcast(&s->room);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

qs_status qs_qsaver_init(struct qs_qsaver **out) {
  qs_status status = QS_OK;
  struct qs_qsaver *s = NULL;
  int e;
  QS_ALLOC(s, 1);
  if ((e = pthread_mutex_init(&s->mu, NULL))) QS_FAIL(QS_ERR_INTERNAL, "pthread_mutex_init: %s", strerror(e));
  s->mu_ok = 1;
  if ((e = pthread_cond_init(&s->work, NULL))) QS_FAIL(QS_ERR_INTERNAL, "pthread_cond_init: %s", strerror(e));
  s->work_ok = 1;
  if ((e = pthread_cond_init(&s->room, NULL))) QS_FAIL(QS_ERR_INTERNAL, "pthread_cond_init: %s", strerror(e));
  s->room_ok = 1;
  if ((e = pthread_create(&s->thread, NULL, worker, s))) QS_FAIL(QS_ERR_INTERNAL, "pthread_create: %s", strerror(e));
  s->started = 1;
  *out = s;
  return QS_OK;
fail:
  qs_qsaver_free(s);
  *out = NULL;
  return status;
}

qs_status qs_qsaver_submit(struct qs_qsaver *s, struct qs_st_writer *w, struct qs_qrecord *rec) {
  pthread_mutex_lock(&s->mu);
  while (s->n == QS_QSAVER_DEPTH) pthread_cond_wait(&s->room, &s->mu);
  struct job *j = &s->q[(s->head + s->n) % QS_QSAVER_DEPTH];
  j->w = w;
  j->rec = *rec;
  memset(rec, 0, sizeof(*rec));
  s->n++;
  pthread_cond_signal(&s->work);
  pthread_mutex_unlock(&s->mu);
  return QS_OK;
}

qs_status qs_qsaver_drain(struct qs_qsaver *s) {
  pthread_mutex_lock(&s->mu);
  while (s->n || s->busy) pthread_cond_wait(&s->room, &s->mu);
  qs_status st = s->status;
  s->status = QS_OK;
  pthread_mutex_unlock(&s->mu);
  return st;
}

void qs_qsaver_free(struct qs_qsaver *s) {
  if (!s) return;
  if (s->started) {
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL); // the worker frees what is left in the FIFO without writing it
  }
  if (s->room_ok) pthread_cond_destroy(&s->room);
  if (s->work_ok) pthread_cond_destroy(&s->work);
  if (s->mu_ok) pthread_mutex_destroy(&s->mu);
  free(s);
}
