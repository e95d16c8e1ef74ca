#!/usr/bin/env bash
# scripts/deps.sh — installs the Debian packages qshard needs when any is missing (no-op otherwise).
# Used by scripts/quickstart.sh and scripts/test.sh. The CUDA toolkit is optional and not installed;
# protobuf-c (SentencePiece tokenizer.model for GGUF) is optional to the build but installed here;
# PCRE2 (the pre-tokenizer regex of byte-level BPE tokenizers, for qshard calib / --calib-text) likewise;
# clang (with its libFuzzer runtime) builds the fuzz harnesses of tests/fuzz.
set -euo pipefail
pkgs=(build-essential libopenmpi-dev openmpi-bin libhdf5-dev libopenblas-dev liblapacke-dev libjansson-dev libssl-dev
      pkg-config cmake python3-venv libprotobuf-c-dev protobuf-c-compiler libpcre2-dev clang ccache)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then echo "deps: all Debian packages present"; exit 0; fi
echo "deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo -n"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
