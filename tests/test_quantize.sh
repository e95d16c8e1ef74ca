#!/usr/bin/env bash
# qshard quantize (GPTQ / RTN, CPU) on the shared models:
#   1. the checkpoint is byte-identical for mpirun -np 1, 2, 4 (stories260K, 4-bit g32 act-order);
#   2. stories260K: GPTQ 4-bit g32 beats RTN 4-bit g32; GPTQ 8-bit within 0.5 % of float32;
#      the report lists the modules the format cannot pack (172-wide MLP);
#   3. gutenberg28M (all shapes pack): GPTQ 3-bit g128 beats RTN 3-bit g128 on wikitext2 and imdb,
#      and `qshard eval` of the written checkpoint gives exactly the PPL of `quantize --eval`;
#   2b. compressed-tensors output of stories260K: every linear quantized (the packed dimension padded);
#   4. bad input (also unknown or impossible formats, method options): clear message, non-zero exit,
#      no output directory left behind.
# CI calibrates on fewer windows and scores the first windows only (BENCHMARKS.md has full runs).
set -euo pipefail
D=${QS_DATA_DIR:-}
[ -n "$D" ] && [ -d "$D/stories260K" ] && [ -d "$D/gutenberg28M" ] || { echo "SKIP: shared data not found (QS_DATA_DIR=$D)"; exit 77; }
Q=$QSHARD
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
S=$D/stories260K G=$D/gutenberg28M
fail() { echo "FAIL: $*"; exit 1; }
ppl_of() { grep -E '^ppl ' "$1" | head -n1 | awk '{print $2}'; }
# lt A B: A < B as floats
lt() { python3 -c "import sys; sys.exit(0 if float('$1') < float('$2') else 1)"; }

echo "== 1. identical checkpoints for -np 1, 2, 4"
args=(quantize --model "$S" --calib "$S/ptb_valid.tok512.h5" --samples 16 --seqlen 512 --bits 4 --group-size 32 --act-order)
for np in 1 2 4; do
  $QS_MPIEXEC -np $np "$Q" "${args[@]}" --out "$T/np$np" > "$T/np$np.log" 2>&1 || { cat "$T/np$np.log"; fail "np=$np"; }
done
for np in 2 4; do
  for f in model.safetensors config.json quantize_config.json; do
    cmp "$T/np1/$f" "$T/np$np/$f" || fail "$f differs between -np 1 and -np $np"
  done
done
echo "identical: $(sha256sum "$T/np1/model.safetensors" | cut -c1-16)"
python3 - "$T/np1/quant_report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
unp = r["unpacked"]
assert any(n.endswith("mlp.down_proj") for n in unp), unp            # K = 172 is not a multiple of 8
assert not any("self_attn" in n for n in unp), unp
assert all(m["rel_output_error"] is not None and m["rel_output_error"] < 0.5 for m in r["modules"])
print("report: %d modules, %d kept dense" % (len(r["modules"]), len(unp)))
PY

echo "== 2. stories260K: GPTQ vs RTN vs float32 (tinystories_sample, seqlen 512)"
E=$S/tinystories_sample.tok512.h5
"$Q" eval --model "$S" --data "$E" --seqlen 512 > "$T/fp.log"
q() { # name method bits group
  "$Q" quantize --model "$S" --calib "$S/ptb_valid.tok512.h5" --samples 32 --seqlen 512 --method "$2" --bits "$3" \
    --group-size "$4" --eval "$E" --out "$T/$1" > "$T/$1.log" 2>&1 || { cat "$T/$1.log"; fail "$1"; }
}
q g4 gptq 4 32; q r4 rtn 4 32; q g8 gptq 8 -1
fp=$(ppl_of "$T/fp.log") g4=$(ppl_of "$T/g4.log") r4=$(ppl_of "$T/r4.log") g8=$(ppl_of "$T/g8.log")
echo "fp32 $fp  gptq4/g32 $g4  rtn4/g32 $r4  gptq8 $g8"
lt "$g4" "$r4" || fail "GPTQ 4-bit ($g4) does not beat RTN 4-bit ($r4)"
lt "$g8" "$(python3 -c "print($fp * 1.005)")" || fail "GPTQ 8-bit ($g8) not within 0.5 % of fp32 ($fp)"

echo "== 2b. compressed-tensors pads the packed dimension: every stories260K linear is written quantized"
# (GPTQ v1 keeps the 172-wide MLP dense, section 1); per-channel groups, since 172 is no multiple of 32.
"$Q" quantize --model "$S" --calib "$S/ptb_valid.tok512.h5" --samples 16 --seqlen 256 --group-size -1 --asym \
  --format compressed-tensors --eval "$E" --out "$T/ct" > "$T/ct.log" 2>&1 || { cat "$T/ct.log"; fail "ct"; }
n=$("$Q" inspect "$T/ct" | grep -c "weight_packed") || true
[ "$n" = 35 ] || fail "compressed-tensors: $n of 35 linears written quantized"
a=$(grep -E '^ppl ' "$T/ct.log" | awk '{print $2, $3, $4}')
b=$("$Q" eval --model "$T/ct" --data "$E" --seqlen 256 | grep -E '^ppl ' | awk '{print $2, $3, $4}')
[ -n "$a" ] && [ "$a" = "$b" ] || fail "compressed-tensors: quantize --eval '$a' != eval of the checkpoint '$b'"
echo "compressed-tensors: 35/35 linears quantized, eval $b"

echo "== 3. gutenberg28M: GPTQ vs RTN at 3-bit g128; checkpoint eval == quantize --eval"
W=$G/wikitext2_test.h5 I=$G/imdb_sample.h5
qg() { # name method
  "$Q" quantize --model "$G" --calib "$G/gutenberg_val.h5" --samples 8 --seqlen 1024 --method "$2" --bits 3 \
    --group-size 128 --eval "$W" --eval-seqlen 1024 --eval-windows 4 --out "$T/$1" > "$T/$1.log" 2>&1 \
    || { cat "$T/$1.log"; fail "$1"; }
  "$Q" eval --model "$T/$1" --data "$W" --seqlen 1024 --eval-windows 4 > "$T/$1.w.log"
  "$Q" eval --model "$T/$1" --data "$I" --seqlen 1024 --eval-windows 4 > "$T/$1.i.log"
}
qg gg gptq; qg gr rtn
for n in gg gr; do
  a=$(grep -E '^ppl ' "$T/$n.log" | awk '{print $2, $3, $4, $5, $6, $7}')
  b=$(grep -E '^ppl ' "$T/$n.w.log" | awk '{print $2, $3, $4, $5, $6, $7}')
  [ "$a" = "$b" ] || fail "$n: quantize --eval '$a' != eval of the checkpoint '$b'"
done
gw=$(ppl_of "$T/gg.w.log") rw=$(ppl_of "$T/gr.w.log") gi=$(ppl_of "$T/gg.i.log") ri=$(ppl_of "$T/gr.i.log")
echo "wikitext2: gptq3 $gw rtn3 $rw   imdb: gptq3 $gi rtn3 $ri"
lt "$gw" "$rw" || fail "wikitext2: GPTQ 3-bit ($gw) does not beat RTN ($rw)"
lt "$gi" "$ri" || fail "imdb: GPTQ 3-bit ($gi) does not beat RTN ($ri)"

echo "== 3b. synthetic llama-3-shaped model (every shape packs): checkpoint eval == quantize --eval"
"$Q" synth --config tiny --seed 3 --tokens 40000 --out "$T/tiny" > /dev/null
"$Q" quantize --model "$T/tiny" --calib "$T/tiny/tokens.h5" --samples 8 --seqlen 256 --bits 4 --group-size 128 \
  --act-order --eval "$T/tiny/tokens.h5" --eval-windows 6 --out "$T/tq" > "$T/tq.log" 2>&1 || { cat "$T/tq.log"; fail tiny; }
$QS_MPIEXEC -np 2 "$Q" eval --model "$T/tq" --data "$T/tiny/tokens.h5" --seqlen 256 --eval-windows 6 > "$T/tq.e.log"
a=$(grep -E '^ppl ' "$T/tq.log" | awk '{print $2, $3, $4, $5, $6, $7}')
b=$(grep -E '^ppl ' "$T/tq.e.log" | awk '{print $2, $3, $4, $5, $6, $7}')
[ -n "$a" ] && [ "$a" = "$b" ] || fail "tiny: quantize --eval '$a' != eval of the checkpoint '$b'"
python3 -c "import json,sys; r=json.load(open('$T/tq/quant_report.json')); sys.exit(1 if r['unpacked'] else 0)" \
  || fail "tiny: modules left unpacked"
grep -qE "^summary: $T/tq — [0-9]+ linear modules quantized \(none kept dense\)" "$T/tq.log" \
  && grep -qE "^  gptq +$T/tq: [0-9.]+ MB \(from [0-9.]+ MB, [0-9.]+ bits per parameter\)" "$T/tq.log" \
  && grep -qE "^    load: vLLM: vllm serve $T/tq" "$T/tq.log" && grep -qE "^  perplexity of the written checkpoint" "$T/tq.log" \
  || { cat "$T/tq.log"; fail "tiny: no end-of-run summary"; }
# inspect counts the quantized model's parameters as the original's (packed words as their codes)
p0=$("$Q" inspect "$T/tiny" | awk '/^parameters:/{print $2}') p1=$("$Q" inspect "$T/tq" | awk '/^parameters:/{print $2}')
[ -n "$p0" ] && [ "$p0" = "$p1" ] || fail "inspect: $p1 parameters in the 4-bit checkpoint, $p0 in the original"
echo "tiny: $a"

echo "== 4. bad input"
bad() { # name expected-substring args...
  local name=$1 want=$2 rc=0
  shift 2
  "$Q" "$@" > "$T/$name.out" 2>&1 || rc=$?
  [ $rc -ne 0 ] && [ $rc -lt 128 ] || { cat "$T/$name.out"; fail "$name: exit $rc"; }
  grep -q -- "$want" "$T/$name.out" || { cat "$T/$name.out"; fail "$name: message lacks '$want'"; }
  ! ls -d "$T/bad"* >/dev/null 2>&1 || fail "$name: left $(ls -d "$T"/bad*)"
}
"$QS_BUILD/tests/test_tokens" --write-bad "$T/ids-bad.h5" 512
bad ids "ids-bad.h5" quantize --model "$S" --calib "$T/ids-bad.h5" --samples 2 --seqlen 64 --out "$T/bad1"
bad nocalib "nope.h5" quantize --model "$S" --calib "$T/nope.h5" --out "$T/bad2"
bad exists "already exists" quantize --model "$S" --calib "$S/ptb_valid.tok512.h5" --samples 2 --seqlen 64 --out "$T/np1"
bad bits "--bits" quantize --model "$S" --calib "$S/ptb_valid.tok512.h5" --bits 5 --out "$T/bad3"
bad needcalib "needs --calib" quantize --model "$S" --out "$T/bad4"
bad format "expected a list of" quantize --model "$S" --method rtn --format gptq,onnx --out "$T/bad6"
bad ctgroup "compressed-tensors and vLLM no longer accept permuted groups" quantize --model "$G" --calib "$G/gutenberg_val.h5" \
  --samples 2 --seqlen 64 --act-order=group --format compressed-tensors --out "$T/bad7"
bad ctragged "not a multiple of it" quantize --model "$S" --method rtn --group-size 32 --format compressed-tensors --out "$T/bad8"
bad trtnotp "needs --tp" quantize --model "$G" --method rtn --format trtllm --out "$T/bad9"
bad rtnact "is not an option of --method rtn" quantize --model "$S" --method rtn --act-order --out "$T/bad10"
bad toolong "shorter than" quantize --model "$S" --calib "$S/tinystories_sample.tok512.h5" --samples 2 --seqlen 100000 \
  --allow-long --out "$T/bad5"
# checked from the config alone, before any data is read (a calibration file that does not exist is never opened)
bad positions "longer than the model's 512 positions" quantize --model "$S" --calib "$T/nope.h5" --seqlen 1024 --out "$T/bad11"
bad evalpos "--eval-seqlen 1024 is longer" quantize --model "$S" --calib "$T/nope.h5" --eval "$T/nope.h5" --eval-seqlen 1024 --out "$T/bad12"
bad memory "available per rank" quantize --model "$S" --calib "$T/nope.h5" --samples 10000000 --seqlen 512 --out "$T/bad13"
bad gs0 "--group-size 0: expected" quantize --model "$S" --calib "$T/nope.h5" --group-size 0 --out "$T/bad14"
# under mpirun the command-line error is printed once (rank 0), not by every rank
$QS_MPIEXEC -np 3 "$Q" quantize --model "$S" --out "$T/bad15" --group-size 0 > "$T/once.out" 2>&1 || true
[ "$(grep -c -- "--group-size 0: expected" "$T/once.out")" = 1 ] || { cat "$T/once.out"; fail "the error is not printed once under -np 3"; }
# a run-time error every rank finds (a calibration file that is not HDF5): one line from rank 0 naming
# every rank, the same exit status everywhere, no MPI_Abort (its banner), no "interrupted" notice
echo "not hdf5" > "$T/junk.h5"
rc=0
$QS_MPIEXEC -np 3 "$Q" quantize --model "$S" --calib "$T/junk.h5" --samples 3 --seqlen 64 --out "$T/bad16" > "$T/once2.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && [ "$(grep -c "qshard: error" "$T/once2.out")" = 1 ] && grep -q "qshard: error \[every rank (3)\] .*junk.h5" "$T/once2.out" &&
  ! grep -qiE "MPI_ABORT|SIGTERM" "$T/once2.out" || { cat "$T/once2.out"; fail "a run-time error of every rank: rc $rc, not printed once"; }
[ ! -e "$T/bad16" ] || fail "bad16: left an output"
"$Q" --version | grep -qE '^qshard [0-9]+\.[0-9]+\.[0-9]+ \(CUDA (ON|OFF).*NCCL (ON|OFF)' || fail "--version: $("$Q" --version)"
echo "test_quantize: all passed"
