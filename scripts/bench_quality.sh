#!/usr/bin/env bash
# scripts/bench_quality.sh — perplexity and quantize time of a matrix of `qshard quantize` configs on
# one model, printed as a markdown table, one row per (config, eval dataset) as soon as it is done
# (so a run cut off by a time limit still leaves its finished rows in the table file).
#
#   scripts/bench_quality.sh MODEL_DIR CONFIG...
#     CONFIG: fp                                  the unquantized model (qshard eval)
#             METHOD:BITS:GROUP[:act|:actgroup][:asym]   e.g. rtn:3:128  gptq:4:128:act  gptq:8:-1
#             (METHOD: rtn, gptq, awq, awq+gptq; symmetric unless :asym, whatever the method's default)
#             (act: --act-order, static groups; actgroup: --act-order=group, permuted groups)
#
# Environment (defaults in brackets):
#   QSHARD        the qshard binary [build/qshard]
#   QS_NP         MPI ranks [2];  QS_MPIEXEC  [mpirun --oversubscribe --allow-run-as-root]
#   QS_CALIB      calibration token file (.h5); required for every method but rtn
#   QS_SAMPLES    calibration windows [128];  QS_SEQLEN  tokens per window [512]
#   QS_EVALS      space-separated eval files, each FILE.h5 or FILE.h5@N (score only the first N windows)
#   QS_EVAL_SEQLEN  eval window length [QS_SEQLEN]
#   QS_BENCH_OUT  folder for logs, checkpoints (deleted after use) and table.md [a new temp dir]
#   OPENBLAS_NUM_THREADS  set it to 1: the ranks are the parallelism
#
# PPL is that of the quantized model as quantize computed it (`quantize --eval`) for the first eval
# file. For the others, the written checkpoint is scored with `qshard eval` when every module was
# packed (then both are the same numbers: tests/test_quantize.sh checks it); when some modules could
# not be packed (quant_report.json "unpacked", e.g. stories260K's 172-wide MLP, kept dense in the
# checkpoint) quantize is run again with --eval on that file, so every PPL is the fully quantized
# model's. "quantize s" is quantize's own "quantized N layers in X s" (calibration load, embedding,
# all layers; not the eval, not the checkpoint write).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,27p' "$0"; exit 2; }
model=$1
shift
Q=${QSHARD:-build/qshard}
NP=${QS_NP:-2}
read -r -a MPI <<< "${QS_MPIEXEC:-mpirun --oversubscribe --allow-run-as-root}"
SAMPLES=${QS_SAMPLES:-128}
SEQLEN=${QS_SEQLEN:-512}
EVAL_SEQLEN=${QS_EVAL_SEQLEN:-$SEQLEN}
read -r -a EVALS <<< "${QS_EVALS:?QS_EVALS: eval files (FILE.h5[@N] ...)}"
OUTD=${QS_BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/qs_bench.XXXXXX")}
mkdir -p "$OUTD"
table=$OUTD/table.md
mname=$(basename "$model")
dtype=$(sed -nE 's/.*"(torch_)?dtype": *"([a-z0-9]+)".*/\2/p' "$model/config.json" | head -n 1)

die() { echo "bench_quality: $*" >&2; exit 1; }
[ -x "$Q" ] || die "QSHARD '$Q' is not an executable"
[ -f "$model/config.json" ] || die "$model/config.json not found"

# "ppl windows" from a qshard log (its ppl line; quantize prefixes it with "[rank ...] ").
ppl_of() { sed -nE 's/^(\[[^]]*\] )?ppl ([0-9.eE+-]+|inf|nan) nll [^ ]+ windows ([0-9]+) .*/\2 \3/p' "$1" | head -n 1; }
qsec_of() { sed -nE 's/.*quantized [0-9]+ layers in ([0-9.]+) s.*/\1/p' "$1" | head -n 1; }
eval_args() { # FILE[@N] -> --eval-windows option if N given
  local spec=$1
  if [[ $spec == *@* ]]; then echo "--eval-windows ${spec##*@}"; fi
}
eval_file() { echo "${1%@*}"; }

row() { # method bits group act calib eval windows ppl qsec
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$mname" "$1" "$2" "$3" "$4" "$5" \
    "$6" "$7" "$8" "$9" "$NP" | tee -a "$table"
}

{
  echo "<!-- $(date -u +%FT%TZ) $(uname -n) nproc=$(nproc --all) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "     qshard $(git -C "$(dirname "$0")" describe --always --dirty 2>/dev/null || echo '?') ranks=$NP OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-unset} -->"
  echo "| model | method | bits | group | act-order | calib | eval | windows | PPL | quantize s | ranks |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
} | tee -a "$table"

run_fp() {
  local spec f log pw
  for spec in "${EVALS[@]}"; do
    f=$(eval_file "$spec")
    log=$OUTD/fp.$(basename "$f" .h5).log
    # shellcheck disable=SC2046
    "${MPI[@]}" -np "$NP" "$Q" eval --model "$model" --data "$f" --seqlen "$EVAL_SEQLEN" $(eval_args "$spec") \
      > "$log" 2>&1 || { tail -n 5 "$log"; die "fp eval failed (log $log)"; }
    pw=$(ppl_of "$log")
    row fp "$dtype" - - - "$(basename "$f" .h5)" "${pw#* }" "${pw% *}" -
  done
}

# quantize NAME CKPT EVALSPEC OPTS... -> log NAME.log, checkpoint CKPT
quantize() {
  local name=$1 ck=$2 spec=$3
  shift 3
  local f log=$OUTD/$name.log
  f=$(eval_file "$spec")
  # shellcheck disable=SC2046
  "${MPI[@]}" -np "$NP" "$Q" quantize --model "$model" "$@" --eval "$f" --eval-seqlen "$EVAL_SEQLEN" \
    $(eval_args "$spec") --out "$ck" --force > "$log" 2>&1 || { tail -n 5 "$log"; die "quantize $name failed (log $log)"; }
}

run_q() { # METHOD:BITS:GROUP[:act|:actgroup][:asym]
  local cfg=$1 method bits gs act=no sym=--sym _rest
  IFS=: read -r method bits gs _rest <<< "$cfg"
  [[ :$cfg: == *:act:* ]] && act=static
  [[ :$cfg: == *:actgroup:* ]] && act=group
  [[ :$cfg: == *:asym:* ]] && sym=--asym
  local opts=(--method "$method" --bits "$bits" --group-size "$gs" "$sym")
  local calib=-
  [ "$act" = static ] && opts+=(--act-order)
  [ "$act" = group ] && opts+=(--act-order=group)
  if [ "$method" != rtn ]; then # rtn needs no calibration: weights only
    [ -n "${QS_CALIB:-}" ] || die "$cfg: QS_CALIB is required for $method"
    opts+=(--calib "$QS_CALIB" --samples "$SAMPLES" --seqlen "$SEQLEN")
    calib="${SAMPLES}x${SEQLEN} $(basename "$QS_CALIB" .h5)"
  fi
  local tag=${cfg//:/_} spec f log pw qsec first=1 ck=$OUTD/ckpt.${cfg//:/_}
  local label=$method
  [ "$sym" = --asym ] && label="$method asym"
  for spec in "${EVALS[@]}"; do
    f=$(eval_file "$spec")
    local ename
    ename=$(basename "$f" .h5)
    if [ $first = 1 ]; then
      quantize "$tag.$ename" "$ck" "$spec" "${opts[@]}"
      log=$OUTD/$tag.$ename.log
      qsec=$(qsec_of "$log")
    elif grep -q '"unpacked": \[\]' "$ck/quant_report.json"; then
      log=$OUTD/$tag.$ename.log
      # shellcheck disable=SC2046
      "${MPI[@]}" -np "$NP" "$Q" eval --model "$ck" --data "$f" --seqlen "$EVAL_SEQLEN" $(eval_args "$spec") \
        > "$log" 2>&1 || { tail -n 5 "$log"; die "eval of $ck failed (log $log)"; }
    else # some modules kept dense in the checkpoint: score the in-memory quantized model again
      quantize "$tag.$ename" "$ck" "$spec" "${opts[@]}"
      log=$OUTD/$tag.$ename.log
    fi
    first=0
    pw=$(ppl_of "$log")
    [ -n "$pw" ] || die "no ppl line in $log"
    row "$label" "$bits" "$gs" "$act" "$calib" "$ename" "${pw#* }" "${pw% *}" "$qsec"
  done
  rm -rf "$ck"
}

for cfg in "$@"; do
  if [ "$cfg" = fp ]; then run_fp; else run_q "$cfg"; fi
done
echo "bench_quality: table in $table" >&2
