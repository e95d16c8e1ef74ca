# tests/qs_mpi.sh — sourced by the shell tests that signal one rank of a running `mpirun` (stops,
# hangs, kills): Open MPI starts the ranks as children (or grandchildren, under its daemon) of
# mpirun and puts each one's world rank in its environment.

# descendants PID: every process below PID.
descendants() { local c; for c in $(ps -o pid= --ppid "$1"); do echo "$c"; descendants "$c"; done; }

# rank_pid N: the qshard process of world rank N of the mpirun $RUN_PID (empty when none).
rank_pid() {
  local p
  for p in $(descendants "$RUN_PID"); do
    [ "$(ps -o comm= -p "$p" 2>/dev/null)" = qshard ] &&
      tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" && { echo "$p"; return; }
  done
}

# stop_after_save LOG LAYERS: once LOG says a layer's state is saved ("state: k/LAYERS layers saved"),
# SIGTERM to rank 1 of $RUN_PID, as Slurm or Kubernetes would signal a rank; the run must end with
# status 200 (every rank finishes the layer, saves, stops). Fails (fail) otherwise.
stop_after_save() {
  local log=$1 layers=$2 victim rc=0
  for _ in $(seq 1 600); do
    grep -qE "state: [0-9]+/$layers layers saved" "$log" && break
    kill -0 "$RUN_PID" 2>/dev/null || break
    sleep 0.05
  done
  victim=$(rank_pid 1)
  [ -n "$victim" ] || { cat "$log"; fail "rank 1 of mpirun $RUN_PID not found (finished already?)"; }
  kill -TERM "$victim"
  wait "$RUN_PID" || rc=$?
  RUN_PID=
  [ $rc -eq 200 ] || { cat "$log"; fail "exit status $rc after SIGTERM, want 200 (stopped at a layer end)"; }
}
