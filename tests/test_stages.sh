#!/usr/bin/env bash
# qshard quantize --stages S (src/run/stages.h) on the CPU:
#   1. stories260K, GPTQ 4-bit g32 under mpirun -np 4 with --stages 1, 2 and 4: every run completes
#      and `qshard eval` loads its checkpoint; S = 1 is byte-identical to -np 1; S = 2 is identical
#      for -np 2 and -np 4 (D = 1 vs 2 data ranks per stage); the report lists all 35 modules in layer
#      order and the stage layout; PPLs of S = 1, 2, 4 (tinystories_sample) printed — each must still
#      beat RTN 4-bit g32 (a stage boundary costs less than GPTQ gains over RTN);
#   2. RTN (no calibration data, so stages change no input): --stages 4 -np 4 byte-identical to -np 1,
#      which proves the split, the per-stage layer files and the assembly complete and in order;
#   3. bad input: --stages 3 with -np 4, --stages 6 for 5 layers: one clear message, non-zero exit,
#      no output or OUT.partial left;
#   4. gutenberg28M, --stages 2 --tp 2 under -np 2 and -np 4 (TP writer rank 1 sits in stage 1, then
#      in stage 0): GPTQ checkpoint and TensorRT-LLM rank files identical, and (with QS_PYTHON)
#      tests/py/check_trtllm.py finds every module of the GPTQ checkpoint in the rank files;
#   5. --resume with stages: a run with one rank process killed (kill -9) after stage 0 saved a layer,
#      resumed, writes the same bytes as the uninterrupted -np 4 run of 4.; the same when one stage's
#      state is gone (that stage takes the boundary pass again while the other resumes); --resume with
#      another --stages is refused and keeps the state.
set -euo pipefail
D=${QS_DATA_DIR:-}
[ -n "$D" ] && [ -d "$D/stories260K" ] && [ -d "$D/gutenberg28M" ] || { echo "SKIP: shared data not found (QS_DATA_DIR=$D)"; exit 77; }
Q=$QSHARD S=$D/stories260K G=$D/gutenberg28M
T=$(mktemp -d)
RUN_PID=
cleanup() {
  [ -n "$RUN_PID" ] && kill -9 "$RUN_PID" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
mpi() { $QS_MPIEXEC -np "$1" "$Q" "${@:2}"; }
run() { # name np args... (quantize into $T/name)
  local name=$1 np=$2
  shift 2
  mpi "$np" quantize --device cpu "$@" --out "$T/$name" > "$T/$name.log" 2>&1 || { cat "$T/$name.log"; fail "$name"; }
}
same() { # dirA dirB files...
  local a=$1 b=$2 f
  shift 2
  for f in "$@"; do cmp "$a/$f" "$b/$f" || fail "$f differs between $a and $b"; done
}
E=$S/tinystories_sample.tok512.h5
ppl() { "$Q" eval --model "$1" --data "$E" --seqlen 512 | grep -E '^ppl ' | awk '{print $2}'; }
lt() { python3 -c "import sys; sys.exit(0 if float('$1') < float('$2') else 1)"; }

echo "== 1. stories260K GPTQ 4-bit g32: --stages 1, 2, 4"
args=(--model "$S" --calib "$S/ptb_valid.tok512.h5" --samples 8 --seqlen 512 --bits 4 --group-size 32)
run s1np1 1 "${args[@]}"
run s1np4 4 "${args[@]}" --stages 1
run s2np4 4 "${args[@]}" --stages 2
run s2np2 2 "${args[@]}" --stages 2
run s4np4 4 "${args[@]}" --stages 4
files=(model.safetensors config.json quantize_config.json)
same "$T/s1np1" "$T/s1np4" "${files[@]}"
same "$T/s2np2" "$T/s2np4" "${files[@]}"
cmp -s "$T/s1np1/model.safetensors" "$T/s2np4/model.safetensors" && fail "S = 2 gave the bytes of S = 1: no stage boundary?"
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
mods = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
        "mlp.up_proj", "mlp.down_proj"]
want = ["model.layers.%d.%s" % (l, m) for l in range(5) for m in mods]
layouts = {"s1np1": None, "s2np4": [[0, 1], [2, 4]], "s4np4": [[0, 0], [1, 1], [2, 3], [4, 4]]}
for name, layers in layouts.items():
    r = json.load(open("%s/%s/quant_report.json" % (t, name)))
    got = [m["name"] for m in r["modules"]]
    assert got == want, (name, got)
    assert all(m["rel_output_error"] is not None for m in r["modules"]), name
    st = r.get("stages")
    assert (st is None) == (layers is None), (name, st)
    if layers:  # 5 equal layers: nearest-to-s/S boundaries, ties to the lower layer; ranks s*D .. s*D+D-1
        assert [s["layers"] for s in st] == layers, (name, st)
        D = 4 // len(layers)
        assert [s["ranks"] for s in st] == [[s * D, s * D + D - 1] for s in range(len(layers))], (name, st)
print("reports: 35 modules in layer order; stage layouts %s" % {k: v for k, v in layouts.items() if v})
PY

echo "== 2. RTN: --stages 4 -np 4 == -np 1 (no calibration data: stages change no input)"
run rtn1 1 --model "$S" --method rtn --bits 4 --group-size 32
run rtn4 4 --model "$S" --method rtn --bits 4 --group-size 32 --stages 4
same "$T/rtn1" "$T/rtn4" "${files[@]}"
p1=$(ppl "$T/s1np1") p2=$(ppl "$T/s2np4") p4=$(ppl "$T/s4np4") pr=$(ppl "$T/rtn1")
[ -n "$p1" ] && [ -n "$p2" ] && [ -n "$p4" ] && [ -n "$pr" ] || fail "qshard eval of a checkpoint gave no PPL"
python3 -c "
p1, p2, p4, pr = $p1, $p2, $p4, $pr
d = lambda p: 100 * (p / p1 - 1)
print('PPL tinystories_sample (checkpoints, GPTQ 4-bit g32, calibration 32 x 512): S=1 %.6f  S=2 %.6f (%+.2f %%)  S=4 %.6f (%+.2f %%)  RTN %.6f'
      % (p1, p2, d(p2), p4, d(p4), pr))"
for p in "$p1" "$p2" "$p4"; do lt "$p" "$pr" || fail "GPTQ with stages (PPL $p) does not beat RTN ($pr)"; done

echo "== 3. bad input"
bad() { # name np expected-substring args...
  local name=$1 np=$2 want=$3 rc=0
  shift 3
  mpi "$np" quantize --device cpu "${args[@]}" "$@" --out "$T/bad" > "$T/$name.out" 2>&1 || rc=$?
  [ $rc -ne 0 ] || { cat "$T/$name.out"; fail "$name: exit 0"; }
  grep -q -- "$want" "$T/$name.out" || { cat "$T/$name.out"; fail "$name: message lacks '$want'"; }
  [ "$(grep -c -- "$want" "$T/$name.out")" -eq 1 ] || { cat "$T/$name.out"; fail "$name: message not printed once"; }
  ! ls -d "$T/bad"* >/dev/null 2>&1 || fail "$name: left $(ls -d "$T"/bad*)"
  echo "$name: $(grep -m1 -o -- "--stages.*" "$T/$name.out")"
}
bad stages3 4 "4 MPI ranks do not form 3 stages" --stages 3
bad stages6 6 "has 5 decoder layers: at most one stage per layer" --stages 6

echo "== 4. gutenberg28M --stages 2 --tp 2: -np 2 == -np 4"
# 8 samples x 512 tokens: ~1.5 s per layer at -np 4 on two cores, room for the kill of 5.
gbase=(--model "$G" --calib "$G/gutenberg_val.h5" --samples 8 --seqlen 512 --bits 4 --group-size 128 --act-order
  --static-groups --max-shard-size 8 --tp 2)
gargs=("${gbase[@]}" --stages 2)
run gnp4 4 "${gargs[@]}"
run gnp2 2 "${gargs[@]}"
# (quant_report.json holds timings, and the manifest its hash)
(cd "$T/gnp4" && find . -type f ! -name quant_report.json ! -name qshard_manifest.json | sort) > "$T/g.files"
grep -q trtllm/rank1.safetensors "$T/g.files" || fail "no --tp output"
same "$T/gnp4" "$T/gnp2" $(cat "$T/g.files")
if [ -n "${QS_PYTHON:-}" ]; then
  "$QS_PYTHON" "$QS_SRC/tests/py/check_trtllm.py" --out "$T/gnp2" --model "$G" --tp 2 || fail "check_trtllm"
else
  echo "(QS_PYTHON not set: check_trtllm.py skipped)"
fi
echo "identical: $(wc -l < "$T/g.files") files"

echo "== 5. --resume with stages"
$QS_MPIEXEC -np 4 "$Q" quantize --device cpu "${gargs[@]}" --out "$T/out" > "$T/killed.log" 2>&1 &
RUN_PID=$!
saved=
for _ in $(seq 1 600); do # 60 s
  saved=$(grep -oE 'stage 0/2:   state: [1-3]/4 layers saved' "$T/killed.log" | head -n1 || true)
  [ -n "$saved" ] && break
  kill -0 "$RUN_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$saved" ] || { cat "$T/killed.log"; fail "no layer state saved"; }
descendants() { local c; for c in $(ps -o pid= --ppid "$1"); do echo "$c"; descendants "$c"; done; }
ranks=$(for p in $(descendants "$RUN_PID"); do [ "$(ps -o comm= -p "$p")" = qshard ] && echo "$p"; done || true)
[ "$(echo "$ranks" | wc -w)" -eq 4 ] || fail "expected 4 qshard rank processes under mpirun $RUN_PID, found: $ranks"
kill -9 "$(echo "$ranks" | sed -n 4p)"
rc=0
wait "$RUN_PID" || rc=$?
RUN_PID=
[ $rc -ne 0 ] || { cat "$T/killed.log"; fail "mpirun exited 0 although a rank was killed (finished first?)"; }
echo "after '$saved': killed a rank process"
ls "$T/out.partial/.state/"state-stage0-of-2.h5 > /dev/null || fail "no stage 0 state after the kill"
cp -a "$T/out.partial" "$T/out2.partial"
rm -f "$T/out2.partial/.state/state-stage1-of-2.h5" # stage 1 lost its state: it must start over

rc=0
mpi 4 quantize --device cpu "${gbase[@]}" --stages 1 --resume --out "$T/out" > "$T/s1.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q -- "--stages: 2 in the state, 1 now" "$T/s1.log" || { cat "$T/s1.log"; fail "--resume --stages 1 not refused"; }
[ -f "$T/out.partial/.state/state-stage0-of-2.h5" ] && [ ! -e "$T/out" ] || fail "the refusal lost the state or wrote OUT"
echo "refused: $(grep -m1 -o -- "--stages: 2 in the state, 1 now" "$T/s1.log")"

for o in out out2; do
  run "$o" 4 "${gargs[@]}" --resume
  grep -q "resuming from" "$T/$o.log" || { cat "$T/$o.log"; fail "$o: did not resume"; }
  [ ! -e "$T/$o.partial" ] || fail "$o: OUT.partial left"
  same "$T/gnp4" "$T/$o" $(cat "$T/g.files")
done
grep -q "stage 1/2: no saved state of this stage" "$T/out2.log" && grep -q "stage 1/2: layers 4..7: full-precision boundary pass" \
  "$T/out2.log" || { cat "$T/out2.log"; fail "out2: stage 1 did not take the boundary pass again"; }
echo "resumed: identical to the uninterrupted run ($(grep -m1 -oE 'stage 1/2: resuming from .*: [0-9]+/4 layers done' "$T/out.log" | grep -oE '[0-9]+/4 layers done' || echo '?') of stage 1 restored)"
echo "test_stages: all passed"
