#!/usr/bin/env bash
# scripts/bench_peer.sh — one GPU-machine call: qshard's seconds per decoder layer
# (scripts/bench_gpu_layers.sh) and llm-compressor's own GPTQ on the same synthetic layer shapes and
# calibration size (scripts/bench_peer_gptq.py), then both side by side with the ratio.
#
#   bash scripts/bench_peer.sh            # after scripts/device_build.sh built build-device/qshard
#
# llm-compressor, compressed-tensors and their small pure-Python needs travel as wheels in .whl/
# (git-ignored; carry ".whl"): installed with --no-deps into /tmp/site and put on PYTHONPATH.
# qshard runs with EXTRA="--asym" by default (bench_gpu_layers.sh's EXTRA), the grid that
# llm-compressor's W4A16 asymmetric g128 uses; its --act-order (static groups) is like-for-like with
# llm-compressor's actorder "static". The jansson that device_build.sh unpacked next to the build is
# put on LD_LIBRARY_PATH.
# Env: QSHARD (default build-device/qshard), PEER_SHAPES (default "llama-3-8b:3 llama-3-70b:2"),
# EXTRA (default --asym; set EXTRA= for qshard's symmetric default), SKIP_QSHARD=1 (only the
# llm-compressor part; QSHARD_LOG=FILE then names an earlier log to compare with), PEER_ARGS (more
# bench_peer_gptq.py options), PYTHON (default python3), SAMPLES / SEQLEN (both parts; 128 / 2048).
# Writes qshard_layers.log, peer.log and env.txt to ${OUT:-/tmp/peer}. Exit status: that of the
# llm-compressor part (a failed qshard shape is reported and left out of the comparison).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
root=$PWD
out=${OUT:-/tmp/peer}
mkdir -p "$out"
Q=${QSHARD:-build-device/qshard}
PY=${PYTHON:-python3}
read -r -a shapes <<< "${PEER_SHAPES:-llama-3-8b:3 llama-3-70b:2}"
export SAMPLES=${SAMPLES:-128} SEQLEN=${SEQLEN:-2048} EXTRA=${EXTRA---asym}

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 || true
  echo "python: $(command -v "$PY") $("$PY" --version 2>&1)"
  git -C "$root" log -1 --format='qshard %h %s' 2>/dev/null || true
  ls -la .whl/*.whl 2>/dev/null || echo "no .whl/*.whl"
} > "$out/env.txt"
cat "$out/env.txt"

# ---- the carried wheels --------------------------------------------------------------------------
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || { echo "bench_peer: installing .whl/*.whl failed" >&2; exit 2; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
else
  echo "bench_peer: no .whl/*.whl here: llmcompressor must already be importable" >&2
fi

# ---- qshard --------------------------------------------------------------------------------------
qlog=${QSHARD_LOG:-$out/qshard_layers.log}
have_qlog=0
if [ "${SKIP_QSHARD:-0}" = 1 ]; then
  [ -s "$qlog" ] && have_qlog=1
elif [ ! -x "$Q" ]; then
  echo "bench_peer: no qshard at $Q (build it with scripts/device_build.sh); llm-compressor only" | tee "$qlog"
else
  libdir=$(cd "$(dirname "$Q")" && pwd)/deps/usr/lib/x86_64-linux-gnu
  [ -d "$libdir" ] && export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "== qshard: QSHARD=$Q EXTRA=\"$EXTRA\" bash scripts/bench_gpu_layers.sh ${shapes[*]}"
  t0=$(date +%s)
  QSHARD=$Q bash scripts/bench_gpu_layers.sh "${shapes[@]}" 2>&1 | tee "$qlog" \
    || echo "bench_peer: bench_gpu_layers.sh failed (see $qlog); shapes without phase lines are not compared" >&2
  grep -q "phases (s, rank 0)" "$qlog" && have_qlog=1
  echo "== qshard part: $(( $(date +%s) - t0 )) s"
fi

# ---- llm-compressor ------------------------------------------------------------------------------
names=()
for s in "${shapes[@]}"; do names+=("${s%%:*}"); done
peer_shapes=$(IFS=,; echo "${names[*]}")
args=(--shapes "$peer_shapes" --samples "$SAMPLES" --seqlen "$SEQLEN" --check)
[ "$have_qlog" = 1 ] && args+=(--qshard-log "$qlog")
# shellcheck disable=SC2206
[ -n "${PEER_ARGS:-}" ] && args+=(${PEER_ARGS})
echo "== llm-compressor: $PY scripts/bench_peer_gptq.py ${args[*]}"
t0=$(date +%s)
PYTHONUNBUFFERED=1 "$PY" scripts/bench_peer_gptq.py "${args[@]}" 2>&1 | tee "$out/peer.log"
rc=${PIPESTATUS[0]}
echo "== llm-compressor part: $(( $(date +%s) - t0 )) s, exit $rc; logs in $out"
exit "$rc"
