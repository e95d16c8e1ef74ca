// stop.h — graceful stop on the scheduler's signals.
//
// Slurm sends SIGTERM (or the signal of `#SBATCH --signal=...`, e.g. USR1) before it kills a job;
// Kubernetes sends SIGTERM and waits its grace period; a user presses Ctrl-C. A long command
// installs the handlers (qs_stop_install); the first SIGTERM, SIGUSR1, SIGUSR2 or SIGINT only
// records the signal and prints one line; the work loop asks qs_stop_requested() at its safe points
// (quantize: at each layer end, agreed over the ranks, qstate.h) and stops there. A second SIGINT
// (Ctrl-C) ends the process at once (the default action); a second SIGTERM does not (mpirun forwards
// the scheduler's SIGTERM, and the scheduler may signal the ranks too).
#ifndef QS_STOP_H
#define QS_STOP_H

// Installs the handlers; `what` names the work in the printed line ("finishing the current layer").
void qs_stop_install(const char *what);
// The default actions back: once the work that can stop at a safe point is over (a failed run's
// ranks may then be ended by the launcher with SIGTERM, which must not announce a save).
void qs_stop_uninstall(void);
// The first stop signal received (0: none).
int qs_stop_requested(void);
// Name of a signal number ("SIGTERM"); "signal" for others.
const char *qs_stop_signal_name(int sig);

#endif
