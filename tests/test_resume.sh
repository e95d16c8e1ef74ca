#!/usr/bin/env bash
# qshard quantize --resume (src/run/qstate.h) on gutenberg28M, mpirun -np 4 on the CPU:
#   1. a run whose rank process is killed (kill -9) once >= 1 layer's state is saved, rerun with
#      --resume, writes byte-identical files to an uninterrupted run — the GPTQ checkpoint and the
#      --tp 2 TensorRT-LLM shards (quant_report.json: same modules, losses and errors; only timings
#      differ) — and leaves no OUT.partial behind;
#   2. the interrupted state is refused, non-zero exit and OUT.partial kept, by a run without
#      --resume, by --resume with another --bits and with another rank count (each message says so);
#   3. --resume with no OUT.partial starts from scratch; --force discards an OUT.partial;
#   4. --state-interval longer than the run: the state is saved once, after the last layer.
# Faults (issue "reliability"), each followed by a --resume that must write the reference bytes:
#   5. SIGTERM to one rank mid-layer: every rank finishes that layer, the state is saved, exit status
#      200 with one message saying how to continue, no OUT;
#   6. a rank that hangs (SIGSTOP): the others give up after --comm-timeout with status 201 and name
#      it; the kill -9 of section 1 ends the job well within its --comm-timeout;
#   7. a full disk (RLIMIT_FSIZE: the output shards exceed it): the run fails naming the file and the
#      errno, no OUT, OUT.partial (every layer done) resumable.
set -euo pipefail
D=${QS_DATA_DIR:-}
[ -n "$D" ] && [ -d "$D/gutenberg28M" ] || { echo "SKIP: shared data not found (QS_DATA_DIR=$D)"; exit 77; }
Q=$QSHARD G=$D/gutenberg28M
T=$(mktemp -d)
RUN_PID=
cleanup() {
  [ -n "$RUN_PID" ] && kill -9 "$RUN_PID" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
. "$QS_SRC/tests/qs_mpi.sh" # descendants, rank_pid
# 8 layers of ~1 s each at -np 4 on two cores: room to kill or stop the run between its first and last layer.
# --max-shard-size 8: several output shards, so the index and the shard split are compared too.
base=(quantize --model "$G" --calib "$G/gutenberg_val.h5" --samples 4 --seqlen 512 --group-size 128
  --act-order --static-groups --max-shard-size 8)
args=("${base[@]}" --bits 4 --tp 2)
mpi() { $QS_MPIEXEC -np "$1" "$Q" "${@:2}"; }

echo "== reference: uninterrupted run"
mpi 4 "${args[@]}" --out "$T/ref" > "$T/ref.log" 2>&1 || { cat "$T/ref.log"; fail "reference run"; }
[ ! -e "$T/ref.partial" ] || fail "reference: $T/ref.partial left behind"

echo "== 1. kill -9 of one rank after >= 1 saved layer"
$QS_MPIEXEC -np 4 "$Q" "${args[@]}" --comm-timeout 60 --out "$T/out" > "$T/killed.log" 2>&1 & # $! = mpirun itself
RUN_PID=$!
saved=
for _ in $(seq 1 600); do # 60 s
  saved=$(grep -oE 'state: [0-9]+/8 layers saved' "$T/killed.log" | head -n1 || true)
  [ -n "$saved" ] && break
  kill -0 "$RUN_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$saved" ] || { cat "$T/killed.log"; fail "no layer state saved"; }
[ -f "$T/out.partial/.state/state.h5" ] || fail "log says '$saved' but $T/out.partial/.state/state.h5 is missing"
# The rank processes: qshard processes descending from this mpirun (its children, or grandchildren
# under a launcher daemon).
ranks=$(for p in $(descendants "$RUN_PID"); do [ "$(ps -o comm= -p "$p")" = qshard ] && echo "$p"; done || true)
[ "$(echo "$ranks" | wc -w)" -eq 4 ] || fail "expected 4 qshard rank processes under mpirun $RUN_PID, found: $ranks"
victim=$(echo "$ranks" | sed -n 3p)
kill -9 "$victim"
t_kill=$SECONDS
echo "after '$saved': killed rank process $victim"
rc=0
wait "$RUN_PID" || rc=$?
RUN_PID=
[ $rc -ne 0 ] || { cat "$T/killed.log"; fail "mpirun exited 0 although a rank was killed (finished first?)"; }
[ $((SECONDS - t_kill)) -lt 60 ] || fail "the others took $((SECONDS - t_kill)) s to end after the kill (--comm-timeout 60)"
[ ! -e "$T/out" ] || fail "a killed run left $T/out"
[ -f "$T/out.partial/.state/state.h5" ] || fail "no state after the kill"

echo "== 2. refusals keep the state"
refused() { # name expected-substring np args...
  local name=$1 want=$2 np=$3 rc=0
  shift 3
  mpi "$np" "$@" > "$T/$name.log" 2>&1 || rc=$?
  [ $rc -ne 0 ] || { cat "$T/$name.log"; fail "$name: exit 0"; }
  grep -q -- "$want" "$T/$name.log" || { cat "$T/$name.log"; fail "$name: message lacks '$want'"; }
  [ -f "$T/out.partial/.state/state.h5" ] || fail "$name: the state is gone"
  [ ! -e "$T/out" ] || fail "$name: wrote $T/out"
  echo "$name: refused ($(grep -m1 -o -- "$want" "$T/$name.log"))"
}
refused noresume "use --resume to continue it or --force" 4 "${args[@]}" --out "$T/out"
refused bits "--bits: 4 in the state, 3 now" 4 "${base[@]}" --bits 3 --resume --out "$T/out"
refused ranks "the MPI rank count: 4 in the state, 2 now" 2 "${args[@]}" --resume --out "$T/out"

echo "== 1b. --resume continues and writes the same bytes"
mpi 4 "${args[@]}" --resume --out "$T/out" > "$T/resumed.log" 2>&1 || { cat "$T/resumed.log"; fail "resume"; }
done_before=$(grep -oE 'resuming from .*: [0-9]+/8 layers done' "$T/resumed.log" | grep -oE '[0-9]+/8' || true)
[ -n "$done_before" ] && [ "${done_before%/8}" -ge 1 ] || { cat "$T/resumed.log"; fail "the rerun did not resume"; }
echo "resumed at $done_before"
[ ! -e "$T/out.partial" ] || fail "OUT.partial left after a complete run"
[ ! -e "$T/out/.state" ] || fail ".state left in the output"
(cd "$T/ref" && find . -type f | sort) > "$T/ref.files"
(cd "$T/out" && find . -type f | sort) > "$T/out.files"
grep -q trtllm/rank1.safetensors "$T/ref.files" || fail "no --tp output"
cmp "$T/ref.files" "$T/out.files" || { diff "$T/ref.files" "$T/out.files"; fail "file lists differ"; }
n=0
# (the manifest lists quant_report.json's hash, and the report its timings: both differ by design;
# `qshard verify` checks the manifest against the files instead)
for f in $(cat "$T/ref.files"); do
  [ "$f" = ./quant_report.json ] || [ "$f" = ./qshard_manifest.json ] && continue
  cmp "$T/ref/$f" "$T/out/$f" || fail "$f differs between the uninterrupted and the resumed run"
  n=$((n + 1))
done
python3 - "$T/ref/quant_report.json" "$T/out/quant_report.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
strip = lambda r: [{k: v for k, v in m.items() if k != "seconds"} for m in r["modules"]]
assert len(a["modules"]) == 56 and strip(a) == strip(b), "reports differ"
for k in a:
    assert k in ("seconds", "modules") or a[k] == b[k], k
PY
echo "identical: $n files + quant_report.json modules ($(sha256sum "$T/out/model-00001-of-00004.safetensors" | cut -c1-16))"

echo "== 3. --resume without OUT.partial starts from scratch; --force discards one"
mkdir -p "$T/f.partial/.state"
echo junk > "$T/f.partial/.state/state.h5"
mpi 4 "${args[@]}" --force --out "$T/f" > "$T/force.log" 2>&1 || { cat "$T/force.log"; fail "--force over an OUT.partial"; }
cmp "$T/ref/model-00001-of-00004.safetensors" "$T/f/model-00001-of-00004.safetensors" || fail "--force: output differs"
rm -rf "$T/f"

echo "== 4. --state-interval longer than the run: one save, after the last layer (and --resume from scratch)"
mpi 4 "${args[@]}" --resume --state-interval 100000 --out "$T/si" > "$T/si.log" 2>&1 || { cat "$T/si.log"; fail "interval run"; }
grep -q "no saved state in .*, starting from the first layer" "$T/si.log" || { cat "$T/si.log"; fail "--resume without OUT.partial"; }
saves=$(grep -cE 'state: [0-9]+/8 layers saved' "$T/si.log" || true)
grep -qE 'state: 8/8 layers saved' "$T/si.log" && [ "$saves" -eq 1 ] || { cat "$T/si.log"; fail "$saves saves with --state-interval 100000"; }
cmp "$T/ref/model-00001-of-00004.safetensors" "$T/si/model-00001-of-00004.safetensors" || fail "--state-interval: output differs"
# ---- faults ------------------------------------------------------------------------------------------
# same_as_ref DIR: every file of DIR but the report equals the reference run's.
same_as_ref() {
  (cd "$1" && find . -type f | sort) > "$T/cmp.files"
  cmp -s "$T/ref.files" "$T/cmp.files" || { diff "$T/ref.files" "$T/cmp.files"; fail "$1: file list differs"; }
  for f in $(cat "$T/ref.files"); do
    [ "$f" = ./quant_report.json ] || [ "$f" = ./qshard_manifest.json ] || cmp "$T/ref/$f" "$1/$f" ||
      fail "$f differs from the uninterrupted run"
  done
}
# start NAME args...: the run in the background; returns once layer 2 of 8 is saved
start() {
  local name=$1
  shift
  $QS_MPIEXEC -np 4 "$Q" "$@" > "$T/$name.log" 2>&1 &
  RUN_PID=$!
  for _ in $(seq 1 600); do
    grep -q 'state: 2/8 layers saved' "$T/$name.log" && return
    kill -0 "$RUN_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$T/$name.log"
  fail "$name: layer 2 never saved"
}
resume_same() { # NAME OUT: --resume completes and writes the reference bytes
  mpi 4 "${args[@]}" --resume --out "$2" > "$T/$1.resumed.log" 2>&1 || { cat "$T/$1.resumed.log"; fail "$1: --resume"; }
  grep -E 'resuming from .*: [0-9]+/8 layers done' "$T/$1.resumed.log" || { cat "$T/$1.resumed.log"; fail "$1: did not resume"; }
  same_as_ref "$2"
  "$Q" verify "$2" --quiet > /dev/null || fail "$1: qshard verify of the resumed output"
  [ ! -e "$2.partial" ] || fail "$1: OUT.partial left after the resumed run"
  echo "$1: the resumed run wrote the reference bytes"
}

echo "== 5. SIGTERM to one rank mid-layer: all save and stop (status 200), then --resume"
start stop "${args[@]}" --out "$T/st"
victim=$(rank_pid 2)
[ -n "$victim" ] || fail "rank 2 of mpirun $RUN_PID not found"
kill -TERM "$victim"
rc=0
wait "$RUN_PID" || rc=$?
RUN_PID=
[ $rc -eq 200 ] || { cat "$T/stop.log"; fail "a stop signal gave exit status $rc, expected 200"; }
grep -q 'SIGTERM: finishing the current layer' "$T/stop.log" || fail "no line acknowledging the signal"
[ "$(grep -c 'stopped by SIGTERM with [0-9]* of 8 layers done: the resume state is in .* --resume' "$T/stop.log")" = 1 ] \
  || { cat "$T/stop.log"; fail "not exactly one 'stopped by SIGTERM ... --resume' message"; }
n=$(grep -oE 'stopped by SIGTERM with [0-9]+' "$T/stop.log" | grep -oE '[0-9]+$')
grep -qE "state: $n/8 layers saved" "$T/stop.log" || { cat "$T/stop.log"; fail "the state of the $n layers done was not saved"; }
[ ! -e "$T/st" ] || fail "a stopped run wrote OUT"
echo "stopped with $n/8 layers done"
resume_same stop "$T/st"

echo "== 6. a hung rank (SIGSTOP): the others give up after --comm-timeout 3 (status 201) naming it"
start hang "${args[@]}" --comm-timeout 3 --out "$T/hg"
victim=$(rank_pid 1)
[ -n "$victim" ] || fail "rank 1 of mpirun $RUN_PID not found"
kill -STOP "$victim"
t_stop=$SECONDS
rc=0
wait "$RUN_PID" || rc=$?
RUN_PID=
kill -9 "$victim" 2>/dev/null || true
[ $rc -eq 201 ] || { cat "$T/hang.log"; fail "a hung rank gave exit status $rc, expected 201"; }
[ $((SECONDS - t_stop)) -lt 30 ] || fail "the others took $((SECONDS - t_stop)) s to give up (timeout 3 s)"
grep -qE 'waited [0-9]+ s \(timeout: --comm-timeout / QS_COMM_TIMEOUT\): rank\(s\) 1 stopped answering' "$T/hang.log" \
  || { cat "$T/hang.log"; fail "no message naming rank 1"; }
[ ! -e "$T/hg" ] || fail "a timed-out run wrote OUT"
echo "gave up after $((SECONDS - t_stop)) s: $(grep -m1 -oE '\[rank [^]]*\] [a-z]+ .*stopped answering' "$T/hang.log")"
resume_same hang "$T/hg"

echo "== 7. the disk fills up (RLIMIT_FSIZE 4 MiB < an 8 MB output shard): path and errno, OUT.partial kept"
rc=0
(ulimit -f 4096; mpi 4 "${args[@]}" --out "$T/df" > "$T/full.log" 2>&1) || rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] || { cat "$T/full.log"; fail "a full disk gave exit status $rc"; }
grep -qE "error .*: $T/df.partial/[^ ]*: write failed: File too large" "$T/full.log" \
  || { cat "$T/full.log"; fail "no error naming the file and the errno"; }
[ ! -e "$T/df" ] || fail "a failed run wrote OUT"
[ -f "$T/df.partial/.state/state.h5" ] || fail "the state is gone after the write error"
ls "$T/df.partial" | grep -q 'tmp\.' && fail "a temporary file was left in OUT.partial: $(ls "$T/df.partial")"
echo "failed as expected: $(grep -m1 -oE 'df.partial/[^ ]*: write failed: File too large' "$T/full.log")"
resume_same full "$T/df"

echo "test_resume: all passed"
