#!/usr/bin/env bash
# tests/fuzz/run.sh BUILD_DIR DATA_DIR SECONDS — runs every libFuzzer harness of a QS_FUZZ build:
#   1. replays tests/fuzz/regress/<target>/* (inputs that once crashed; each must now pass);
#   2. seeds BUILD_DIR/fuzz/seeds/ from DATA_DIR (tests/fuzz/seed.sh) and fuzzes each target for
#      SECONDS (-max_total_time) from its corpus BUILD_DIR/fuzz/corpus/<target> (kept between runs) and
#      the seeds, with -rss_limit_mb=2048 -timeout=10.
# Fails when any replay or harness crashes (ASan / UBSan report, leak, timeout, out-of-memory, abort);
# the crashing input is in BUILD_DIR/fuzz/artifacts/, the log in BUILD_DIR/fuzz/logs/<target>.log.
# Prints the executions per target (libFuzzer's stat::number_of_executed_units).
# Environment: QS_FUZZ_TARGETS (default: all eight), QS_FUZZ_JOBS (targets run at once; default 1).
# Build: CC=clang cmake -S . -B build-fuzz -DQS_FUZZ=ON -DQS_WITH_CUDA=OFF && cmake --build build-fuzz
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: $0 BUILD_DIR DATA_DIR SECONDS" >&2; exit 2; }
BUILD=$(cd "$1" && pwd) DATA=$2 SECONDS_EACH=$3
HERE=$(cd "$(dirname "$0")" && pwd)
TARGETS=${QS_FUZZ_TARGETS:-safetensors config hdf5 gguf vocab state tokenizer manifest}
JOBS=${QS_FUZZ_JOBS:-1}
F=$BUILD/fuzz
for t in $TARGETS; do
  [ -x "$F/fuzz_$t" ] || { echo "run.sh: $F/fuzz_$t missing: configure with -DQS_FUZZ=ON and build" >&2; exit 2; }
done
mkdir -p "$F/logs" "$F/artifacts" "$F/tmp"
# the harnesses' scratch files: in memory when /dev/shm is there (the HDF5 harnesses write a file per
# input: ~1.5x the executions per second of a disk)
if [ -d /dev/shm ] && [ -w /dev/shm ] && shm=$(mktemp -d /dev/shm/qs_fuzz.XXXXXX); then
  export TMPDIR=$shm
  trap 'rm -rf "$shm"' EXIT
else
  export TMPDIR=$F/tmp
fi
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$HERE/lsan.supp:print_suppressions=0}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
failed=0

# ASAN_OPTIONS of a target: in the HDF5 ones a failed malloc returns NULL, as glibc's does, since
# libhdf5 allocates sizes it reads from the file (a heap of 400 GB) and fails cleanly on NULL.
asan_opts() {
  case $1 in
  hdf5 | state) echo "${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1" ;;
  *) echo "${ASAN_OPTIONS:-}" ;;
  esac
}

# ---- 1. regressions --------------------------------------------------------------------------------
for t in $TARGETS; do
  files=("$HERE/regress/$t"/*)
  [ -e "${files[0]}" ] || continue
  if ASAN_OPTIONS=$(asan_opts "$t") "$F/fuzz_$t" -rss_limit_mb=2048 -timeout=10 "${files[@]}" > "$F/logs/$t-regress.log" 2>&1; then
    echo "run.sh: $t: ${#files[@]} regression inputs pass"
  else
    echo "run.sh: $t: a regression input fails (log: $F/logs/$t-regress.log):"
    grep -E "ERROR|runtime error|Running:|SUMMARY" "$F/logs/$t-regress.log" | head -n 20
    failed=1
  fi
done

# ---- 2. fuzzing ------------------------------------------------------------------------------------
rm -rf "$F/seeds"
bash "$HERE/seed.sh" "$DATA" "$F/seeds" "$BUILD" || { echo "run.sh: seed.sh failed" >&2; exit 1; }

fuzz_one() {
  local t=$1
  mkdir -p "$F/corpus/$t"
  local t0=$(date +%s)
  ASAN_OPTIONS=$(asan_opts "$t") "$F/fuzz_$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -close_fd_mask=3 -artifact_prefix="$F/artifacts/$t-" "$F/corpus/$t" "$F/seeds/$t" > "$F/logs/$t.log" 2>&1
  echo $? > "$F/logs/$t.rc"
  echo $(($(date +%s) - t0)) > "$F/logs/$t.secs"
}

running=0
for t in $TARGETS; do
  fuzz_one "$t" &
  running=$((running + 1))
  if [ $running -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait

printf '%-12s %12s %8s %10s  %s\n' target executions seconds exec/s result
for t in $TARGETS; do
  log=$F/logs/$t.log rc=$(cat "$F/logs/$t.rc" 2>/dev/null || echo 1)
  execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+$' || true)
  secs=$(cat "$F/logs/$t.secs" 2>/dev/null || echo 0)
  rate=$([ -n "$execs" ] && [ "$secs" -gt 0 ] && echo $((execs / secs)) || echo "?")
  result=ok
  if [ "$rc" != 0 ]; then
    result="FAILED (rc $rc): $(grep -m1 -E '^==[0-9]+==ERROR|runtime error|ERROR: libFuzzer' "$log" | cut -c1-120)"
    failed=1
  fi
  printf '%-12s %12s %8s %10s  %s\n' "$t" "${execs:-?}" "$secs" "$rate" "$result"
done
if [ $failed -ne 0 ]; then
  echo "run.sh: FAILED — crashing inputs in $F/artifacts/, logs in $F/logs/" >&2
  exit 1
fi
echo "run.sh: all harnesses ran without a finding"
