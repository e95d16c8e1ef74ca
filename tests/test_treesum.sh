#!/usr/bin/env bash
# The tree sum is bit-identical for 1, 2, 3 and 4 ranks (digest lines compared), also when there
# are fewer leaves than ranks.
set -euo pipefail
bin="$QS_BUILD/tests/test_treesum"
for leaves in 37 3; do
  ref=""
  for np in 1 2 3 4; do
    out=$($QS_MPIEXEC -np $np "$bin" $leaves)
    echo "$out"
    d=$(echo "$out" | grep '^digest' | awk '{print $2}')
    [ -n "$d" ] || { echo "no digest for np=$np"; exit 1; }
    if [ -z "$ref" ]; then ref=$d; elif [ "$d" != "$ref" ]; then echo "FAIL: np=$np digest $d != $ref"; exit 1; fi
  done
done
echo "treesum: identical for np 1..4"
