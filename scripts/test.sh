#!/usr/bin/env bash
# scripts/test.sh — installs what is missing, builds, runs the tests (.ci/run calls exactly this). Runs from a fresh clone
# with ../shared beside it (tests find ../shared/data), non-interactively, on 2 cores, no GPU.
#   1. build-ci   CPU-only (-DQS_WITH_CUDA=OFF -DQS_WERROR=ON): every test except label gpu
#   2. build-asan ASan + UBSan: the unit tests
#   3. build-fuzz clang, -DQS_FUZZ=ON: the libFuzzer harnesses, regression inputs and 5 s per parser
#   4. build-cuda -DQS_WITH_CUDA=ON -DQS_WITH_NCCL=ON: compile and link only (skipped without nvcc)
# Every stage runs even when an earlier one failed; the summary lists each, and the exit status is
# non-zero when any failed. Environment: QS_CI_JOBS (ctest parallelism, default 1),
# QS_CI_SKIP_ASAN=1 / QS_CI_SKIP_FUZZ=1 / QS_CI_SKIP_CUDA=1 to leave a stage out locally.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
export CI=${CI:-true}
export DEBIAN_FRONTEND=noninteractive
jobs=$(nproc 2>/dev/null || echo 2)
ctest_jobs=${QS_CI_JOBS:-1}

# Open MPI under CI: containers run as root, have fewer cores than the tests' -np, and often forbid
# the cross-memory-attach (ptrace) single-copy path of the shared-memory transport.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

declare -a summary=()
failed=0
t_start=$SECONDS
say() { printf '\n==== %s\n' "$*"; }
# stage NAME FUNCTION: runs FUNCTION, records ok / FAILED / skipped (return 77) and the seconds.
stage() {
  local name=$1 fn=$2 t0=$SECONDS rc=0
  say "$name"
  "$fn" || rc=$?
  local dt=$((SECONDS - t0)) verdict
  case $rc in
    0) verdict=ok ;;
    77) verdict=skipped ;;
    *) verdict="FAILED (exit $rc)"; failed=1 ;;
  esac
  summary+=("$(printf '%-34s %-18s %5ds' "$name" "$verdict" "$dt")")
}

# ---- dependencies ---------------------------------------------------------------------------------
deps() { bash "$root/scripts/deps.sh"; }

# Python with safetensors, numpy, h5py, gguf for the python-labelled tests, plus the real clients
# (transformers, compressed-tensors, gptqmodel: tests/py/requirements-*.txt, pinned); QS_PYTHON stays
# empty (those tests skip) when pip or the network is unavailable. pip's cache keeps the wheels (torch
# is ~3.5 GB with its CUDA libraries), so only the first run downloads them. llama-cpp-python
# (requirements-llama.txt: llama.cpp's own quantizer, the oracle of test_ggml_oracle) is an sdist: pip
# builds llama.cpp with CMake (~9 min on 2 cores, first run only: the built wheel is cached), with the
# library and ggml alone (no tools, examples, tests, server, mtmd) and no -march=native.
QS_PYTHON=""
# The venv itself is cached too, beside pip's cache, keyed by the Python version and the pinned
# requirements (a fresh clone then reuses it instead of unpacking ~4 GB of wheels again): .venv is a
# link to it. QS_VENV names another directory; an existing .venv of the checkout is used as it is.
venv_dir() {
  local key
  key=$({ python3 -c 'import sys; print(sys.version_info[:2])'; echo "safetensors numpy h5py gguf pyyaml";
          echo "$llama_cmake_args"; for f in "$root"/tests/py/requirements-*.txt; do
            # requirements-tok.txt (sentencepiece, a few MB) is installed into the cached venv by clients()
            # instead of keying a new venv of ~4 GB of wheels
            [ "$(basename "$f")" = requirements-tok.txt ] || cat "$f"; done; } | sha256sum | cut -c1-12)
  echo "${QS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/qshard/venv-$key}"
}
pyenv_check() { "$1" -c 'import safetensors, numpy, h5py, gguf' >/dev/null 2>&1; }
clients_check() { "$1" -c 'import torch, transformers, compressed_tensors, optimum, gptqmodel, llama_cpp, sentencepiece, tokenizers' >/dev/null 2>&1; }
tok_check() { "$1" -c 'import sentencepiece, tokenizers' >/dev/null 2>&1; }
llama_cmake_args="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DGGML_CCACHE=OFF"
clients() {
  local py=$root/.venv/bin/python pip=(--no-input --disable-pip-version-check --timeout 60)
  # the tokenizer packages of test_tokenizer_ids (requirements-tok.txt, not in the venv key): seconds
  tok_check "$py" || "$py" -m pip install -q "${pip[@]}" -r "$root/tests/py/requirements-tok.txt" \
    || echo "pip install of requirements-tok.txt failed: test_tokenizer_ids will fail"
  if clients_check "$py"; then echo "reusing the client packages"; return 0; fi
  "$py" -m pip install -q "${pip[@]}" -r "$root/tests/py/requirements-clients.txt" &&
    "$py" -m pip install -q "${pip[@]}" --no-deps -r "$root/tests/py/requirements-gptqmodel.txt" \
    || { echo "pip install of the clients failed (offline?): test_hf_client will skip"; return 77; }
  CMAKE_ARGS=$llama_cmake_args CMAKE_BUILD_PARALLEL_LEVEL=$jobs \
    "$py" -m pip install -q "${pip[@]}" -r "$root/tests/py/requirements-llama.txt" \
    || { echo "pip install of llama-cpp-python failed: test_ggml_oracle will skip"; return 77; }
  clients_check "$py" || { echo "the client packages do not import: test_hf_client will skip"; return 77; }
}
venv() {
  local py=$root/.venv/bin/python dir
  if [ ! -e "$root/.venv" ]; then
    dir=$(venv_dir)
    if mkdir -p "$(dirname "$dir")" 2>/dev/null && [ -w "$(dirname "$dir")" ] &&
       { [ -x "$dir/bin/python" ] || python3 -m venv "$dir"; }; then
      ln -s "$dir" "$root/.venv"
      echo ".venv -> $dir"
    fi
  fi
  if [ -x "$py" ] && pyenv_check "$py"; then QS_PYTHON=$py; echo "reusing .venv"; return 0; fi
  if [ ! -x "$py" ] && ! python3 -m venv "$root/.venv"; then
    echo "python3 -m venv failed: python tests will skip"
    return 77
  fi
  if ! "$py" -m pip install -q --no-input --disable-pip-version-check --timeout 60 \
       safetensors numpy h5py gguf pyyaml; then
    echo "pip install failed (offline?): python tests will skip"
    return 77
  fi
  pyenv_check "$py" || { echo "venv lacks the modules after pip: python tests will skip"; return 77; }
  QS_PYTHON=$py
  "$py" -m pip list --format=freeze 2>/dev/null | grep -iE '^(safetensors|numpy|h5py|gguf)=' || true
}

# ---- builds ---------------------------------------------------------------------------------------
# ccache (when installed; deps.sh installs it) keeps compiled objects between runs on a machine, keyed
# by the preprocessed source and the flags, as pip's cache keeps wheels: a fresh clone at another path
# hits it (CCACHE_BASEDIR makes paths relative, CCACHE_NOHASHDIR leaves the build directory out of the
# key), so only changed files compile — the four builds below took ~4 of CI's 20 minutes uncached.
launcher=()
use_ccache() { # sets launcher (after the dependencies stage: ccache may have just been installed)
  launcher=()
  command -v ccache >/dev/null 2>&1 || return 0
  export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=1 CCACHE_DIR=${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qshard/ccache}
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
}
configure_build() { # DIR cmake-args...
  local dir=$1
  shift
  use_ccache
  mkdir -p "$root/$dir"
  cmake -S "$root" -B "$root/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQS_PYTHON="$QS_PYTHON" "${launcher[@]}" "$@" \
    >"$root/$dir/configure.log" 2>&1 || { cat "$root/$dir/configure.log"; return 1; }
  grep -E "qshard:|CMake Warning" "$root/$dir/configure.log" || true
  cmake --build "$root/$dir" -j "$jobs" && return 0
  # Keep going past the first broken target so that the tests of everything else still run (the
  # stage stays FAILED; tests whose program is missing show as "Not Run").
  echo "build failed: building the remaining targets (make -k) so the other tests can run"
  local keep=(-k)
  grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$root/$dir/CMakeCache.txt" && keep=(-k 0)
  cmake --build "$root/$dir" -j "$jobs" -- "${keep[@]}" >/dev/null 2>&1
  return 1
}

cpu_build() { configure_build build-ci -DQS_WITH_CUDA=OFF -DQS_WERROR=ON; }
cpu_test() {
  [ -d ../shared/data ] || echo "note: ../shared/data is absent: data tests will skip"
  # QS_SYNTH_TEST_BIG=0: test_synth's llama-3-8b-shaped checkpoint (2.5 GB written for its shapes) is
  # left to a run by hand; the tiny checkpoints go through the same code.
  QS_SYNTH_TEST_BIG=0 ctest --test-dir build-ci -LE gpu --output-on-failure -j "$ctest_jobs" --timeout 600
}

asan_build() {
  [ "${QS_CI_SKIP_ASAN:-0}" = 1 ] && return 77
  configure_build build-asan -DQS_WITH_CUDA=OFF -DQS_WERROR=ON -DQS_SANITIZE=address,undefined
}
asan_test() {
  [ "${QS_CI_SKIP_ASAN:-0}" = 1 ] && return 77
  # Leak checking stays on for our code; .ci/lsan.supp silences the allocations that Open MPI and
  # its plugins (hwloc, pmix, libevent) keep until exit by design — MPI_Init runs in every qshard
  # process, so without it every test would report them. Those libraries are built without frame
  # pointers: the default fast unwinder stops inside them and the suppressions cannot match, so
  # allocations are unwound with the (slower, DWARF) unwinder. QS_SYNTH_TEST_BIG=0: test_synth's
  # 2.5 GB llama-3-8b run (same code as its tiny runs) takes minutes under ASan.
  ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:strict_string_checks=1:detect_stack_use_after_return=1 \
  LSAN_OPTIONS=suppressions=$root/.ci/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 QS_SYNTH_TEST_BIG=0 \
    ctest --test-dir build-asan -L unit --output-on-failure -j "$ctest_jobs" --timeout 900
}

# libFuzzer harnesses (tests/fuzz, -DQS_FUZZ=ON, clang): only their targets (and qshard, which writes
# seeds) are built; run.sh replays the inputs that once crashed, then fuzzes each parser for
# QS_CI_FUZZ_SECONDS (5) from the shared data's seeds. Long runs: tests/fuzz/run.sh by hand (BENCHMARKS.md).
fuzz_build() {
  [ "${QS_CI_SKIP_FUZZ:-0}" = 1 ] && return 77
  command -v clang >/dev/null 2>&1 || { echo "clang not found: the fuzz harnesses are not built"; return 77; }
  mkdir -p "$root/build-fuzz"
  use_ccache
  CC=clang cmake -S "$root" -B "$root/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQS_FUZZ=ON -DQS_WITH_CUDA=OFF "${launcher[@]}" \
    >"$root/build-fuzz/configure.log" 2>&1 || { cat "$root/build-fuzz/configure.log"; return 1; }
  cmake --build "$root/build-fuzz" -j "$jobs" --target fuzz_safetensors fuzz_config fuzz_hdf5 fuzz_gguf fuzz_vocab fuzz_tokenizer \
    fuzz_state fuzz_manifest fuzz_seedgen qshard
}
fuzz_test() {
  [ "${QS_CI_SKIP_FUZZ:-0}" = 1 ] && return 77
  [ -d ../shared/data ] || { echo "../shared/data is absent: no seeds, fuzzing skipped"; return 77; }
  QS_FUZZ_JOBS=$jobs bash "$root/tests/fuzz/run.sh" "$root/build-fuzz" "$(cd .. && pwd)/shared/data" \
    "${QS_CI_FUZZ_SECONDS:-5}"
}

cuda_build() {
  [ "${QS_CI_SKIP_CUDA:-0}" = 1 ] && return 77
  if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=/usr/local/cuda/bin:$PATH
  fi
  if ! command -v nvcc >/dev/null 2>&1; then
    echo "nvcc not found: the CUDA configuration is not built on this machine"
    return 77
  fi
  nvcc --version | tail -n 1
  # Compile and link only: CI machines have no GPU (the gpu tests run through scripts/device_build.sh).
  configure_build build-cuda -DQS_WITH_CUDA=ON -DQS_WITH_NCCL=ON -DQS_WERROR=ON
}

stage "dependencies (apt)" deps
stage "python venv" venv
[ -n "$QS_PYTHON" ] && stage "python real clients" clients
stage "CPU build (build-ci)" cpu_build
# Tests run whenever configure succeeded (a partly failed build still tests what was built).
if [ -f build-ci/CTestTestfile.cmake ]; then stage "CPU tests (all but gpu)" cpu_test; fi
stage "ASan+UBSan build (build-asan)" asan_build
if [ -f build-asan/CTestTestfile.cmake ] || [ "${QS_CI_SKIP_ASAN:-0}" = 1 ]; then
  stage "ASan+UBSan unit tests" asan_test
fi
stage "fuzz build (build-fuzz, clang)" fuzz_build
if [ -x build-fuzz/fuzz/fuzz_state ]; then stage "fuzz (5 s per parser)" fuzz_test; fi
stage "CUDA build (build-cuda)" cuda_build

data_dir="$(cd .. && pwd)/shared/data"
[ -d "$data_dir" ] || data_dir="$data_dir (absent: data tests skipped)"
say "summary ($((SECONDS - t_start)) s; QS_PYTHON=${QS_PYTHON:-none, python tests skipped}; data: $data_dir)"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then echo "CI: FAILED"; exit 1; fi
echo "CI: passed"
