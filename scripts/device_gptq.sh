#!/usr/bin/env bash
# scripts/device_gptq.sh — on the GPU machine: build test_gptq_cuda only (Release, CUDA 90a), run its
# checks (directly with 16 OpenBLAS threads, then through ctest as CI runs it), then its benchmarks
# (`--bench`, and the Hessians again with 1024-row bands, which K = 4096 then uses instead of tiles).
#
#   bash scripts/device_gptq.sh [test|bench|all]   # default all; from the repo root (or anywhere)
#
# jansson comes from .devdeps/ as in scripts/device_build.sh (carry .devdeps). Logs go to $OUT (the
# device tool's output folder) or build-gptq-device/logs. The CPU references run with 16 OpenBLAS
# threads here (ctest runs them with one; results do not depend on it). Exit status: the test's.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
build=${QS_DEVICE_BUILD:-build-gptq-device}
what=${1:-all}
logs=${OUT:-$root/$build/logs}
mkdir -p "$logs" "$build"

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$logs/env.txt"
if ! pkg-config --exists jansson 2>/dev/null; then
  prefix=$root/$build/deps
  rm -rf "$prefix"
  for deb in .devdeps/libjansson*.deb; do dpkg -x "$deb" "$prefix"; done
  pcdir=$(dirname "$(find "$prefix" -name jansson.pc | head -n 1)")
  sed -i "s|^prefix=.*|prefix=$prefix/usr|" "$pcdir/jansson.pc"
  export PKG_CONFIG_PATH=$pcdir CMAKE_PREFIX_PATH=$prefix/usr LD_LIBRARY_PATH=$(dirname "$pcdir")
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DQS_WITH_CUDA=ON -DQS_CUDA_ARCHS=90a \
  -DCMAKE_CUDA_ARCHITECTURES=90a -DQS_WERROR=OFF >"$logs/configure.log" 2>&1 || { tail -n 40 "$logs/configure.log"; exit 2; }
t0=$(date +%s)
cmake --build "$build" -j "$(nproc)" --target test_gptq_cuda >"$logs/build.log" 2>&1 || { tail -n 60 "$logs/build.log"; exit 2; }
echo "build: $(( $(date +%s) - t0 )) s"
bin=$build/tests/test_gptq_cuda
rc=0
if [ "$what" != bench ]; then
  t0=$(date +%s)
  OPENBLAS_NUM_THREADS=16 OMP_NUM_THREADS=16 "$bin" >"$logs/test.log" 2>&1 || rc=$?
  echo "test: exit $rc, $(( $(date +%s) - t0 )) s"
  grep -v "^  hessian \[" "$logs/test.log" | tail -n 90
  t0=$(date +%s)
  ctest --test-dir "$build" -R '^test_gptq_cuda$' --output-on-failure >"$logs/ctest.log" 2>&1 || rc=$?
  echo "ctest (OPENBLAS_NUM_THREADS=1): exit $rc, $(( $(date +%s) - t0 )) s"; tail -n 4 "$logs/ctest.log"
fi
if [ "$what" != test ]; then
  "$bin" --bench >"$logs/bench.log" 2>&1 || echo "bench: exit $?"
  QS_HESSIAN_BAND=1024 "$bin" --bench hessian >"$logs/bench_band1024.log" 2>&1 || echo "bench band 1024: exit $?"
  cat "$logs/bench.log"
  echo "== QS_HESSIAN_BAND=1024"
  grep -E "hessian|^llama" "$logs/bench_band1024.log"
fi
exit "$rc"
