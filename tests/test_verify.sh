#!/usr/bin/env bash
# Verified outputs (io/manifest.h, `qshard verify`) and verified resume state (run/qstate.c):
#   1. quantize writes OUT/qshard_manifest.json last: every file of OUT (formats in subdirectories
#      too) with its size and SHA-256 (checked against sha256sum), and `qshard verify OUT` passes;
#   2. a copy with a changed byte, a grown file, a missing file and an extra file: verify exits 1 and
#      names each (CHANGED, SIZE, MISSING, EXTRA); no manifest: exit 1 with one error line;
#   3. --resume checks what it reuses: a stopped run's layer record file or a rank's activations
#      changed on disk are refused naming the file; the untouched state resumes and verifies.
set -euo pipefail
D=${QS_DATA_DIR:-}
[ -n "$D" ] && [ -d "$D/stories260K" ] || { echo "SKIP: shared data not found (QS_DATA_DIR=$D)"; exit 77; }
Q=$QSHARD S=$D/stories260K
T=$(mktemp -d)
RUN_PID=
cleanup() {
  [ -n "$RUN_PID" ] && kill -9 "$RUN_PID" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
. "$QS_SRC/tests/qs_mpi.sh"
"$Q" --version | grep -q "OpenSSL ON" || { echo "SKIP: built without OpenSSL (no manifests)"; exit 77; }

echo "== 1. the manifest of a two-format output"
"$Q" quantize --model "$S" --method rtn --group-size -1 --format gptq,compressed-tensors --out "$T/o" > "$T/o.log" 2>&1 ||
  { cat "$T/o.log"; fail "quantize"; }
M=$T/o/qshard_manifest.json
[ -f "$M" ] || fail "no $M"
n=0
for f in model.safetensors config.json quant_report.json compressed-tensors/model.safetensors compressed-tensors/config.json; do
  sum=$(sha256sum "$T/o/$f" | cut -d' ' -f1)
  size=$(stat -c %s "$T/o/$f")
  grep -A2 "\"path\": \"$f\"" "$M" | grep -q "\"bytes\": $size" || fail "$f: size $size not in the manifest"
  grep -A3 "\"path\": \"$f\"" "$M" | grep -q "\"sha256\": \"$sum\"" || fail "$f: sha256 $sum not in the manifest"
  n=$((n + 1))
done
listed=$(grep -c '"path"' "$M")
actual=$(cd "$T/o" && find . -type f ! -name qshard_manifest.json | wc -l)
[ "$listed" -eq "$actual" ] || fail "the manifest lists $listed files, OUT holds $actual"
"$Q" verify "$T/o" > "$T/v.log" || { cat "$T/v.log"; fail "verify of a fresh output"; }
grep -q "every file matches" "$T/v.log" || fail "verify: no summary"
echo "manifest: $listed files, $n checked against sha256sum; verify: ok"

echo "== 2. a damaged copy"
cp -r "$T/o" "$T/c"
printf 'x' | dd of="$T/c/compressed-tensors/model.safetensors" bs=1 seek=1000 conv=notrunc 2>/dev/null
echo " " >> "$T/c/quant_report.json"
rm "$T/c/config.json"
touch "$T/c/stray.bin"
rc=0
"$Q" verify "$T/c" --quiet > "$T/c.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || { cat "$T/c.log"; fail "verify of a damaged copy: exit $rc"; }
for want in "CHANGED  compressed-tensors/model.safetensors" "SIZE     quant_report.json" "MISSING  config.json" \
  "EXTRA    stray.bin" "4 problem"; do
  grep -q "$want" "$T/c.log" || { cat "$T/c.log"; fail "verify: no '$want'"; }
done
! grep -q "^ok " "$T/c.log" || fail "--quiet printed the files that match"
rm "$T/c/qshard_manifest.json"
rc=0
"$Q" verify "$T/c" > "$T/c2.log" 2>&1 || rc=$?
[ $rc -eq 1 ] && [ "$(grep -c "qshard: error" "$T/c2.log")" = 1 ] && grep -q "no manifest" "$T/c2.log" ||
  { cat "$T/c2.log"; fail "verify without a manifest: exit $rc"; }
echo "damaged copy: 4 problems named; no manifest: one error"

echo "== 3. --resume refuses changed state files"
args=(quantize --model "$S" --calib "$S/ptb_valid.tok512.h5" --samples 32 --seqlen 256 --group-size 32)
$QS_MPIEXEC -np 2 "$Q" "${args[@]}" --out "$T/ref" > "$T/ref.log" 2>&1 || { cat "$T/ref.log"; fail "reference"; }
$QS_MPIEXEC -np 2 "$Q" "${args[@]}" --out "$T/s" > "$T/s.log" 2>&1 &
RUN_PID=$!
stop_after_save "$T/s.log" 5
[ -f "$T/s.partial/.state/layer-00000/qshard_manifest.json" ] || fail "no manifest of the saved layer 0"
damaged() { # name file-under-.state want
  rm -rf "$T/$1.partial"
  cp -r "$T/s.partial" "$T/$1.partial"
  printf 'x' | dd of="$T/$1.partial/.state/$2" bs=1 seek=2000 conv=notrunc 2>/dev/null
  local rc=0
  $QS_MPIEXEC -np 2 "$Q" "${args[@]}" --out "$T/$1" --resume > "$T/$1.log" 2>&1 || rc=$?
  [ $rc -ne 0 ] && grep -q -- "$3" "$T/$1.log" && [ ! -e "$T/$1" ] || { cat "$T/$1.log"; fail "$1: exit $rc"; }
  echo "$1: refused ($(grep -m1 -o -- "$3" "$T/$1.log"))"
}
damaged layer layer-00000/model.safetensors "layer-00000: the saved layer's file changed"
x=$(cd "$T/s.partial/.state" && ls x-c*-rank1-of-2.h5 | head -n1)
damaged x "$x" "$x: its SHA-256 is"
$QS_MPIEXEC -np 2 "$Q" "${args[@]}" --out "$T/s" --resume > "$T/s2.log" 2>&1 || { cat "$T/s2.log"; fail "resume"; }
grep -qE 'resuming from .*: [0-9]+/5 layers done' "$T/s2.log" || { cat "$T/s2.log"; fail "did not resume"; }
cmp "$T/ref/model.safetensors" "$T/s/model.safetensors" || fail "the resumed run differs from the reference"
"$Q" verify "$T/s" --quiet > /dev/null || fail "verify of the resumed output"
echo "test_verify: all passed"
