#!/usr/bin/env bash
# scripts/device_build.sh — build the CUDA configuration ON the GPU machine and run the gpu tests.
#
#   bash scripts/device_build.sh        # from the repo root (or anywhere: it cds there)
#
# Writes env.txt, configure.log, build.log, ctest.log (and LastTest.log) to $OUT (the device tool's
# output folder), or to build-device/logs when OUT is unset. Exit status: ctest's.
#
# That machine (Ubuntu 24.04, CUDA 13, Open MPI, serial HDF5, OpenBLAS/LAPACKE, CMake 4) has no
# jansson headers and no package registry: the Debian packages libjansson-dev and libjansson4,
# downloaded beforehand into .devdeps/ (git-ignored; `cd .devdeps && apt-get download
# libjansson-dev libjansson4`) and carried along, are unpacked with dpkg -x into a local prefix.
#
# Environment: QS_CUDA_ARCHS (default 90a: Hopper, wgmma/setmaxnreg allowed), QS_DEVICE_BUILD
# (build dir, default build-device), QS_WERROR (default OFF: a newer compiler's new warnings in
# host code must not hide the GPU results; CI builds with -Werror), QS_CTEST_LABEL (default gpu),
# QS_DATA_DIR (the shared data; on the device a carried subset, e.g. $PWD/.devdata).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
build=${QS_DEVICE_BUILD:-build-device}
archs=${QS_CUDA_ARCHS:-90a}
label=${QS_CTEST_LABEL:-gpu}
logs=${OUT:-$root/$build/logs}
jobs=$(nproc 2>/dev/null || echo 4)
mkdir -p "$logs" "$build"

step() { printf '\n== %s\n' "$*"; }

step "environment"
{
  date -u
  uname -a
  grep PRETTY_NAME /etc/os-release || true
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || echo "nvidia-smi failed"
  nvcc --version | tail -n 2 || echo "no nvcc"
  cmake --version | head -n 1
  mpirun --version 2>&1 | head -n 1 || echo "no mpirun"
  gcc --version | head -n 1
} 2>&1 | tee "$logs/env.txt"

# ---- jansson from .devdeps when the system lacks it ----------------------------------------------
if pkg-config --exists jansson 2>/dev/null; then
  echo "jansson: system $(pkg-config --modversion jansson)"
else
  step "jansson from .devdeps"
  shopt -s nullglob
  debs=(.devdeps/libjansson*.deb)
  shopt -u nullglob
  if [ ${#debs[@]} -lt 2 ]; then
    echo "device_build: no jansson on this machine and no .devdeps/libjansson{4,-dev}*.deb to unpack" >&2
    echo "  here: mkdir -p .devdeps && cd .devdeps && apt-get download libjansson-dev libjansson4" >&2
    exit 2
  fi
  prefix=$root/$build/deps
  rm -rf "$prefix"
  for deb in "${debs[@]}"; do dpkg -x "$deb" "$prefix"; done
  pcdir=$(dirname "$(find "$prefix" -name jansson.pc | head -n 1)")
  # The .pc says prefix=/usr: point it at the unpacked tree.
  sed -i "s|^prefix=.*|prefix=$prefix/usr|" "$pcdir/jansson.pc"
  export PKG_CONFIG_PATH=$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  export CMAKE_PREFIX_PATH=$prefix/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export LD_LIBRARY_PATH=$(dirname "$pcdir")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "jansson: $(pkg-config --modversion jansson) from $prefix ($(pkg-config --cflags --libs jansson))"
  test -f "$(pkg-config --variable=includedir jansson)/jansson.h"
fi

# ---- configure, build, test ---------------------------------------------------------------------
step "configure (CUDA archs $archs)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQS_WITH_CUDA=ON \
  -DQS_DATA_DIR="${QS_DATA_DIR:-$root/../shared/data}" \
  -DQS_CUDA_ARCHS="$archs" -DCMAKE_CUDA_ARCHITECTURES="$archs" -DQS_WERROR="${QS_WERROR:-OFF}" \
  2>&1 | tee "$logs/configure.log"

step "build (-j$jobs)"
if ! cmake --build "$build" -j "$jobs" 2>&1 | tee "$logs/build.log"; then
  # Code outside the kernels may be mid-change: still build what the gpu tests need.
  # The tests of the label are C test programs whose target name is the test name.
  targets=$(ctest --test-dir "$build" -N -L "$label" | awk '/Test +#[0-9]+:/ { print $3 }')
  echo "device_build: full build failed (see build.log); building the $label tests only:" $targets | tee -a "$logs/build.log"
  [ -n "$targets" ] || exit 1
  # shellcheck disable=SC2086
  cmake --build "$build" -j "$jobs" --target $targets 2>&1 | tee -a "$logs/build.log"
fi

step "ctest -L $label"
rc=0
ctest --test-dir "$build" -L "$label" --output-on-failure --timeout 300 2>&1 | tee "$logs/ctest.log" || rc=$?
# ctest returns 0 when every test was skipped: say so loudly.
if grep -q "No tests were found" "$logs/ctest.log"; then echo "device_build: no $label tests found" >&2; rc=1; fi
if grep -q "\*\*\*Skipped" "$logs/ctest.log"; then echo "device_build: a $label test SKIPPED on the GPU machine (no device seen?)" >&2; rc=1; fi
cp "$build/Testing/Temporary/LastTest.log" "$logs/LastTest.log" 2>/dev/null || true
echo "device_build: ctest exit $rc; logs in $logs"
exit "$rc"
