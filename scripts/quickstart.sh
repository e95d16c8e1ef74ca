#!/usr/bin/env bash
# scripts/quickstart.sh — the main job on a built-in default, from a fresh Debian 12 machine:
# installs what is missing, builds build/qshard, makes a seeded synthetic Llama-3-shaped model
# (`tiny`) with a seeded token stream, quantizes it with GPTQ 4-bit g128 act-order under
# mpirun -np 2, and evaluates the FP and the quantized model. Outputs in $QS_WORK (build/quickstart).
# Runs on the CPU (QS_DEVICE=cpu: two ranks cannot share one GPU through NCCL); on a machine with
# GPUs, QS_DEVICE=cuda QS_NP=<number of GPUs> bash scripts/quickstart.sh runs the same job there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > build.configure.log 2>&1 || { cat build.configure.log; exit 1; }
grep -E "qshard:" build.configure.log || true
rm -f build.configure.log
cmake --build build -j "$(nproc)" --target qshard
W=${QS_WORK:-build/quickstart}
rm -rf "$W"
mkdir -p "$W"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export QS_DEVICE=${QS_DEVICE:-cpu}
mpi=(mpirun --oversubscribe -np "${QS_NP:-2}")
set -x
build/qshard synth --config tiny --seed 1 --tokens 100000 --out "$W/tiny"
"${mpi[@]}" build/qshard eval --model "$W/tiny" --data "$W/tiny/tokens.h5" --seqlen 512 --eval-windows 16
"${mpi[@]}" build/qshard quantize --model "$W/tiny" --calib "$W/tiny/tokens.h5" --samples 32 --seqlen 512 \
  --method gptq --bits 4 --group-size 128 --act-order --out "$W/tiny-gptq4" \
  --eval "$W/tiny/tokens.h5" --eval-windows 16
build/qshard inspect "$W/tiny-gptq4" | tail -n 8
"${mpi[@]}" build/qshard eval --model "$W/tiny-gptq4" --data "$W/tiny/tokens.h5" --seqlen 512 --eval-windows 16
set +x
echo "quickstart: synthetic model in $W/tiny, GPTQ checkpoint in $W/tiny-gptq4 (report: quant_report.json)"
