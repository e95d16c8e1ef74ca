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
# 8 layers of ~2 s each at -np 4 on two cores: room to kill the run between its first and last layer.
# --max-shard-size 8: several output shards, so the index and the shard split are compared too.
base=(quantize --model "$G" --calib "$G/gutenberg_val.h5" --samples 8 --seqlen 512 --group-size 128
  --act-order --static-groups --max-shard-size 8)
args=("${base[@]}" --bits 4 --tp 2)
mpi() { $QS_MPIEXEC -np "$1" "$Q" "${@:2}"; }

echo "== reference: uninterrupted run"
mpi 4 "${args[@]}" --out "$T/ref" > "$T/ref.log" 2>&1 || { cat "$T/ref.log"; fail "reference run"; }
[ ! -e "$T/ref.partial" ] || fail "reference: $T/ref.partial left behind"

echo "== 1. kill -9 of one rank after >= 1 saved layer"
$QS_MPIEXEC -np 4 "$Q" "${args[@]}" --out "$T/out" > "$T/killed.log" 2>&1 & # $! = mpirun itself
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
descendants() { local c; for c in $(ps -o pid= --ppid "$1"); do echo "$c"; descendants "$c"; done; }
ranks=$(for p in $(descendants "$RUN_PID"); do [ "$(ps -o comm= -p "$p")" = qshard ] && echo "$p"; done || true)
[ "$(echo "$ranks" | wc -w)" -eq 4 ] || fail "expected 4 qshard rank processes under mpirun $RUN_PID, found: $ranks"
victim=$(echo "$ranks" | sed -n 3p)
kill -9 "$victim"
echo "after '$saved': killed rank process $victim"
rc=0
wait "$RUN_PID" || rc=$?
RUN_PID=
[ $rc -ne 0 ] || { cat "$T/killed.log"; fail "mpirun exited 0 although a rank was killed (finished first?)"; }
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
for f in $(cat "$T/ref.files"); do
  [ "$f" = ./quant_report.json ] && continue
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
echo "test_resume: all passed"
