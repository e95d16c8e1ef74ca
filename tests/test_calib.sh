#!/usr/bin/env bash
# test_calib.sh TEST_TOKENIZER — `qshard calib` and `qshard quantize --calib-text` (tests/tok.cmake):
#  1. the shared token streams rebuilt from the shared text, id for id: stories260K's *.tok512.h5 (llama2.c
#     tok512.bin, --stream --lines) and gutenberg28M/wikitext2_test.h5 (SentencePiece, --stream);
#  2. random windows: shape, BOS first, the same bytes for the same seed and other ids for another seed;
#     --mode docs from --jsonl (reading stops once enough documents are long enough); bad inputs fail once with a message naming the file, leaving no output;
#  3. the output appears only complete: a write that fails (file size limit) leaves the previous file
#     as it was and no temporary file;
#  4. quantize --calib-text under mpirun -np 2 == quantize --calib of the file `qshard calib` wrote with
#     the same options (-np 1), byte for byte.
set -euo pipefail
TT=$1
D=${QS_DATA_DIR:-}
[ -n "$D" ] && [ -f "$D/stories260K/tok512.bin" ] || { echo "SKIP: shared data not found"; exit 77; }
Q=$QSHARD S=$D/stories260K G=$D/gutenberg28M X=$D/text
T=$(mktemp -d "${TMPDIR:-/tmp}/qs_calib.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

echo "== 1. the shared streams, rebuilt"
for p in wikitext2_test:wiki.test.raw ptb_valid:ptb.valid.txt tinystories_sample:tinystories_sample.txt; do
  "$Q" calib --model "$S" --text "$X/${p#*:}" --stream --lines --out "$T/s.h5" > "$T/log" || { cat "$T/log"; fail "calib ${p#*:}"; }
  "$TT" h5cmp "$T/s.h5" "$S/${p%%:*}.tok512.h5" || fail "stories260K ${p%%:*}.tok512.h5 not reproduced"
done
"$Q" calib --model "$G" --text "$X/wiki.test.raw" --stream --out "$T/g.h5" > "$T/log"
"$TT" h5cmp "$T/g.h5" "$G/wikitext2_test.h5" || fail "gutenberg28M wikitext2_test.h5 not reproduced"
echo "ok: 4 streams identical to the shared files"

echo "== 2. windows"
c=(calib --model "$G" --text "$X/ptb.valid.txt" --samples 8 --seqlen 256)
"$Q" "${c[@]}" --seed 5 --out "$T/a.h5" > "$T/log"
"$Q" "${c[@]}" --seed 5 --out "$T/b.h5" > "$T/log"
"$Q" "${c[@]}" --seed 6 --out "$T/c.h5" > "$T/log"
[ "$("$TT" h5show "$T/a.h5")" = "2 8 256 1" ] || fail "shape / BOS: $("$TT" h5show "$T/a.h5")"
"$TT" h5cmp "$T/a.h5" "$T/b.h5" || fail "same seed, different ids"
! "$TT" h5cmp "$T/a.h5" "$T/c.h5" 2>/dev/null || fail "another seed gave the same windows"
ls "$T" | grep -q '\.tmp\.' && fail "a temporary file was left"
for i in $(seq 1 12); do printf '{"text": "Document %d. %s", "id": %d}\n' "$i" "$(head -c $((i * 400)) "$X/tinystories_sample.txt" | tr -d '\r\n"\\')" "$i"; done > "$T/docs.jsonl"
"$Q" calib --model "$S" --jsonl "$T/docs.jsonl" --mode docs --samples 4 --seqlen 128 --out "$T/d.h5" > "$T/log" \
  || { cat "$T/log"; fail "--mode docs"; }
[ "$("$TT" h5show "$T/d.h5")" = "2 4 128 1" ] || fail "docs shape: $("$TT" h5show "$T/d.h5")"
grep -q "of 4 documents (docs, 4 used)" "$T/log" || { cat "$T/log"; fail "docs summary"; }
bad() { # expected-message args...: fails with exit 1 or 2, one message, no output file
  local want=$1; shift
  if "$Q" "$@" --out "$T/bad.h5" > "$T/bad.log" 2>&1; then fail "accepted: $*"; fi
  grep -q -- "$want" "$T/bad.log" || { cat "$T/bad.log"; fail "message for '$*' lacks '$want'"; }
  [ "$(grep -c 'error' "$T/bad.log")" -le 1 ] || { cat "$T/bad.log"; fail "more than one error message"; }
  [ ! -e "$T/bad.h5" ] || fail "an output was written for: $*"
}
bad "give --text" calib --model "$S"
bad "nope.txt: cannot open" calib --model "$S" --text "$T/nope.txt"
bad "a window of --seqlen 100000 needs" calib --model "$S" --text "$X/tinystories_sample.txt" --seqlen 100000
printf '{"text": "ok"}\n{"text": 5}\n' > "$T/bad.jsonl"
bad "bad.jsonl:2: no string field" calib --model "$S" --jsonl "$T/bad.jsonl"
printf '{"body": "short"}\n{"body": "  "}\n{"body": "%s"}\n' "$(head -c 2000 "$X/tinystories_sample.txt" | tr -d '\r\n"\\')" > "$T/short.jsonl"
bad "only 1 of 2 documents" calib --model "$S" --jsonl "$T/short.jsonl" --field body --mode docs --samples 2 --seqlen 64
echo "ok: shape, BOS, seeds, docs, bad inputs"

echo "== 3. complete or nothing"
cp "$T/a.h5" "$T/keep.h5"
rc=0 # RLIMIT_FSIZE 4 MiB (what MPI's start needs) < the 4.9 MB of 1200 windows of 1024 ids
(ulimit -f 4096; "$Q" calib --model "$G" --text "$X/ptb.valid.txt" --samples 1200 --seqlen 1024 --out "$T/keep.h5") \
  > "$T/big.log" 2>&1 || rc=$?
[ $rc -eq 1 ] || { cat "$T/big.log"; fail "a write over the file size limit gave exit status $rc, expected 1"; }
grep -q "keep.h5.tmp.[0-9]*: write failed: File too large" "$T/big.log" || { cat "$T/big.log"; fail "no message naming the file and errno"; }
cmp -s "$T/a.h5" "$T/keep.h5" || fail "the previous output was touched by a failed write"
ls "$T" | grep -q '\.tmp\.' && fail "a failed write left its temporary file"
echo "ok: $(grep -o 'keep.h5.tmp.*' "$T/big.log")"

echo "== 4. quantize --calib-text == --calib of qshard calib's file"
o=(--samples 4 --seqlen 64 --seed 3)
"$Q" calib --model "$S" --text "$X/ptb.valid.txt" "${o[@]}" --out "$T/q.h5" > "$T/log"
"$Q" quantize --model "$S" --calib "$T/q.h5" "${o[@]}" --group-size 32 --out "$T/qa" > "$T/qa.log" 2>&1 || { cat "$T/qa.log"; fail "quantize --calib"; }
$QS_MPIEXEC -np 2 "$Q" quantize --model "$S" --calib-text "$X/ptb.valid.txt" "${o[@]}" --group-size 32 --out "$T/qb" \
  > "$T/qb.log" 2>&1 || { cat "$T/qb.log"; fail "quantize --calib-text"; }
for f in model.safetensors config.json quantize_config.json; do
  cmp "$T/qa/$f" "$T/qb/$f" || fail "$f differs between --calib FILE.h5 and --calib-text"
done
grep -q "calibration text: .* 4 windows of 64, BOS 1" "$T/qb.log" || { cat "$T/qb.log"; fail "no calibration text line"; }
if "$Q" quantize --model "$S" --calib "$T/q.h5" --calib-text "$X/ptb.valid.txt" --out "$T/qc" > "$T/qc.log" 2>&1; then
  fail "--calib with --calib-text accepted"
fi
grep -q "one of --calib, --calib-text" "$T/qc.log" || fail "no message for --calib with --calib-text"
echo "ok: identical checkpoints ($(sha256sum "$T/qa/model.safetensors" | cut -c1-16))"
echo "test_calib: passed"
