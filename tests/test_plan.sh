#!/usr/bin/env bash
# `qshard plan` (src/cli/plan.c, src/run/plan.h): the plans of the llama-3-8b / 70b / 3.1-405b shapes
# print every section; GPU memory grows with --samples; the time per layer drops with --np 2; the
# measured runs behind plan.c's constants come back (per-layer seconds, the log's peak device memory); a 405B
# single-GPU plan that cannot fit warns, and so does the 405B --np 2 plan (the Hessian chain);
# refusals of quantize come back as warnings; --json and --constants; `--config tiny` agrees with a
# synth'd tiny directory; a stories260K model directory (QS_DATA_DIR) plans on cuda and cpu. A few
# seconds. Run: ctest -R test_plan.
set -uo pipefail
Q=${QSHARD:?QSHARD: the qshard binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/qs_plan.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
HOST="--host-mem 2048" # a large node: host-memory warnings only where a test asks for them

# plan NAME ARGS...: starts qshard plan in the background (each process spends most of its time in
# MPI's start-up, so the plans run at once), output in $T/NAME.out, its exit status in $T/NAME.rc;
# ran NAME...: waits for them and fails on a non-zero exit.
plan() {
  local name=$1; shift
  ( "$Q" plan "$@" > "$T/$name.out" 2> "$T/$name.err"; echo $? > "$T/$name.rc" ) &
}
ran() {
  wait
  for n in "$@"; do [ "$(cat "$T/$n.rc")" = 0 ] || { fail "plan $n: exit $(cat "$T/$n.rc")"; cat "$T/$n.err"; }; done
}
# field NAME ROW COLUMN: the number in column COLUMN of the first line of NAME's output starting with "  ROW".
field() { awk -v r="  $2" -v c="$3" 'index($0, r) == 1 { print $c; exit }' "$T/$1.out"; }
# less A B: A < B (floats)
less() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }
# near A B TOL: |A - B| <= TOL
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

"$Q" synth --config tiny --out "$T/tiny" > "$T/synth.log" 2>&1 &
for c in llama-3-8b llama-3-70b llama-3.1-405b; do plan "$c" --config "$c" --np 1 --device cuda --act-order $HOST; done
plan s64 --config llama-3-8b --samples 64 $HOST
plan s128 --config llama-3-8b --samples 128 $HOST
plan np2 --config llama-3-70b --np 2 $HOST
plan w405 --config llama-3.1-405b --np 1 --samples 256 $HOST
plan w405np2 --config llama-3.1-405b --np 2 $HOST
plan host --config llama-3-70b --np 8 --host-mem 32
plan leaves --config llama-3-8b --np 32 $HOST
plan stages --config llama-3-8b --np 4 --stages 2 $HOST
plan disk --config llama-3-70b --out "$T/out" --write-gbs 1 $HOST
plan json --config llama-3-70b --np 8 --json - $HOST
plan consts --constants
plan tiny_c --config tiny --samples 32 --seqlen 256 $HOST
ran llama-3-8b llama-3-70b llama-3.1-405b s64 s128 np2 w405 w405np2 host leaves stages disk json consts tiny_c
[ -f "$T/tiny/config.json" ] || { cat "$T/synth.log"; fail "synth tiny"; }
plan tiny_m --model "$T/tiny" --samples 32 --seqlen 256 $HOST
D=${QS_DATA_DIR:-}/stories260K
data=0
if [ -n "${QS_DATA_DIR:-}" ] && [ -f "$D/config.json" ]; then
  data=1
  plan st_cuda --model "$D" --samples 16 --seqlen 256 --group-size 32 --format gptq,compressed-tensors $HOST
  plan st_cpu --model "$D" --device cpu --np 2 --samples 16 --seqlen 256 --group-size 32 $HOST
fi
"$Q" plan --np 2 > /dev/null 2> "$T/e1" && fail "no model: exit 0"
"$Q" plan --config llama-9 2> "$T/e2" > /dev/null && fail "unknown --config: exit 0"
ran tiny_m
[ $data = 0 ] || ran st_cuda st_cpu

echo "== the three Llama shapes on one GPU: every section"
for c in llama-3-8b llama-3-70b llama-3.1-405b; do
  for f in "GPU memory per rank" "host memory per rank" "disk" "  checkpoint" "  output gptq" \
           "  resume state: layer records" "  OUT.partial at most" "  per layer" "  end to end"; do
    grep -q "^$f" "$T/$c.out" || fail "$c: no '$f' line"
  done
  for p in load forward hessian factor solve gather record; do
    grep "^  per layer" "$T/$c.out" | grep -q " $p [0-9]" || fail "$c: no $p phase"
  done
done

echo "== the measured runs of src/run/plan.c's table (H100, 128 x 2048, GPTQ 4-bit g128 act-order)"
# seconds per layer 0.793 / 2.884 / 13.764; the log's peak device memory 16.84 / 36.77 / 57.69 GiB
for c in llama-3-8b:0.793 llama-3-70b:2.884 llama-3.1-405b:13.764; do
  got=$(field "${c%%:*}" "per layer" 3)
  near "$got" "${c##*:}" "$(awk -v m="${c##*:}" 'BEGIN { print 0.03 * m }')" || fail "${c%%:*}: $got s per layer, measured ${c##*:}"
done
for c in llama-3-8b:16.84 llama-3-70b:36.77 llama-3.1-405b:57.69; do
  got=$(grep -o '[0-9.]* at phase ends' "$T/${c%%:*}.out" | cut -d' ' -f1)
  near "$got" "${c##*:}" 0.3 || fail "${c%%:*}: $got GiB at phase ends, measured ${c##*:}"
done
grep -q "gate/up are computed twice" "$T/llama-3.1-405b.out" || fail "405B: down_proj inputs should not fit (§6)"
! grep -q "^warning: GPU" "$T/llama-3.1-405b.out" || fail "405B, 128 samples, one H100: fits (57.7 GiB measured)"

echo "== GPU memory grows with --samples, time per layer drops with --np 2"
less "$(field s64 peak 2)" "$(field s128 peak 2)" || fail "GPU peak $(field s64 peak 2) (64 samples) !< $(field s128 peak 2) (128)"
less "$(field s64 x 2)" "$(field s128 x 2)" || fail "x does not grow with --samples"
less "$(field np2 "per layer" 3)" "$(field llama-3-70b "per layer" 3)" ||
  fail "70B per layer: --np 2 $(field np2 "per layer" 3) s !< --np 1 $(field llama-3-70b "per layer" 3) s"
grep -q "data rank 0 holds 64 samples" "$T/np2.out" || fail "--np 2: rank 0 should hold 64 samples"

echo "== warnings: what does not fit, what quantize refuses"
grep -q "^warning: GPU memory: needs .* the card has 79\.[0-9] GiB" "$T/w405.out" || fail "405B, 256 samples, 1 GPU: no GPU warning"
grep -q "^warning: GPU memory: .*(data rank 1, hessian).*fits with data ranks per stage = 1, 4" "$T/w405np2.out" ||
  fail "405B --np 2: no Hessian-chain warning"
grep -q "^warning: host memory: needs" "$T/host.out" || fail "no host-memory warning at 32 GiB per node"
grep -q "^warning: quantize refuses: 32 data ranks" "$T/leaves.out" || fail "no 16-leaf refusal"
grep -q "^warning: quantize refuses --stages 2 with --device cuda" "$T/stages.out" || fail "no --stages refusal on cuda"
grep -q "free at --out" "$T/disk.out" || fail "--out: no free space"
grep -q "^warning: disk: OUT.partial holds up to" "$T/disk.out" ||
  [ "$(df -Pk "$T" | awk 'NR == 2 { print $4 }')" -gt 80000000 ] || fail "70B to a small disk: no disk warning"

echo "== --json, --constants, bad arguments"
for k in '"gpu_gib"' '"host_gib"' '"disk_gib"' '"seconds"' '"phases"' '"warnings"' '"constants"' '"peak_phase_ends"'; do
  grep -q "$k" "$T/json.out" || fail "--json: no $k"
done
if [ -n "${QS_PYTHON:-}" ]; then
  "$QS_PYTHON" -c 'import json, sys; j = json.load(open(sys.argv[1])); assert j["run"]["data_ranks"] == 8 and j["seconds"]["layer"] > 0' \
    "$T/json.out" || fail "--json: not the plan"
fi
grep -q "forward_gemm .*\[h100 run\] forward" "$T/consts.out" || fail "--constants: no forward_gemm with its benchmark"
grep -q "NOT MEASURED" "$T/consts.out" || fail "--constants: the nominal ones are not marked"
grep -q "give one of --model DIR and --config NAME" "$T/e1" || fail "no model: $(cat "$T/e1")"
grep -q "llama-3-8b" "$T/e2" || fail "unknown --config: $(cat "$T/e2")"

echo "== --config tiny agrees with a synth'd tiny directory"
for r in peak "per layer" "output gptq" "resume state: layer records"; do
  [ "$(field tiny_c "$r" 2)" = "$(field tiny_m "$r" 2)" ] || fail "tiny: '$r' $(field tiny_c "$r" 2) (--config) vs $(field tiny_m "$r" 2) (--model)"
done

if [ $data = 0 ]; then
  echo "SKIP: stories260K (QS_DATA_DIR) not found"
  [ $fails -eq 0 ] && exit 77
else
  echo "== stories260K (fp32, tied embeddings) on cuda and cpu"
  for f in "  peak" "  per layer" "  end to end" "  output compressed-tensors"; do
    grep -q "^$f" "$T/st_cuda.out" || fail "stories260K cuda: no '$f'"
  done
  grep -q "^  Hessian tree sum" "$T/st_cpu.out" || fail "stories260K cpu: no Hessian line"
  ! grep -q "^GPU memory" "$T/st_cpu.out" || fail "stories260K cpu: a GPU section"
  grep -q "heads 8/4 x 8, vocab 512, F32" "$T/st_cuda.out" || fail "stories260K: shapes $(head -1 "$T/st_cuda.out")"
fi
[ $fails -eq 0 ] || { echo "test_plan: $fails failure(s)"; exit 1; }
echo "test_plan: ok"
