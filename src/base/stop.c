// stop.c — see stop.h. The handler is async-signal-safe: it stores the number and write(2)s a
// message prepared at install time.
#include "stop.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "qs_common.h"

static volatile sig_atomic_t g_sig;
static char g_msg[4][256];
static const int k_signals[4] = {SIGTERM, SIGUSR1, SIGUSR2, SIGINT};

const char *qs_stop_signal_name(int sig) {
  switch (sig) {
  case SIGTERM: return "SIGTERM";
  case SIGUSR1: return "SIGUSR1";
  case SIGUSR2: return "SIGUSR2";
  case SIGINT: return "SIGINT";
  default: return "signal";
  }
}

static void on_signal(int sig) {
  if (g_sig && sig == SIGINT) { // Ctrl-C twice: go now (a scheduler may send SIGTERM twice: mpirun and itself)
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  if (!g_sig) g_sig = sig;
  for (int i = 0; i < 4; i++)
    if (k_signals[i] == sig) {
      ssize_t rc = write(STDERR_FILENO, g_msg[i], strlen(g_msg[i]));
      (void)rc;
    }
}

void qs_stop_install(const char *what) {
  char host[64];
  snprintf(host, sizeof(host), "%s", qs_log_host());
  for (int i = 0; i < 4; i++) {
    snprintf(g_msg[i], sizeof(g_msg[i]), "qshard: [rank %d %s] %s: %s, then saving the resume state and exiting "
             "(status %d; rerun with --resume)%s\n", qs_log_rank(), host, qs_stop_signal_name(k_signals[i]), what,
             QS_EXIT_STOPPED, k_signals[i] == SIGINT ? "; Ctrl-C again to quit at once" : "");
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(k_signals[i], &sa, NULL);
  }
}

void qs_stop_uninstall(void) {
  for (int i = 0; i < 4; i++) signal(k_signals[i], SIG_DFL);
}

int qs_stop_requested(void) { return (int)g_sig; }
