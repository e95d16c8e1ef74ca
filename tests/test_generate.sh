#!/usr/bin/env bash
# test_generate.sh — `qshard generate` on stories260K reproduces transformers' greedy token ids
# (shared data greedy_ids.json) exactly, alone and under `mpirun -np 2`; bad arguments fail cleanly.
# Run: ctest -R test_generate (labels data, mpi).
set -u
: "${QSHARD:?}" "${QS_MPIEXEC:?}"
model="${QS_DATA_DIR:-}/stories260K"
if [ -z "${QS_DATA_DIR:-}" ] || [ ! -f "$model/greedy_ids.json" ]; then
  echo "SKIP: shared data not found (QS_DATA_DIR='${QS_DATA_DIR:-}')"; exit 77
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0

# Prints "same" when the generated_ids of files $1 and $2 are equal, else the first difference.
compare() {
  python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))["generated_ids"]; b = json.load(open(sys.argv[2]))["generated_ids"]
if a == b: print("same")
else:
    i = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    print("differ: lengths %d vs %d, first difference at index %d" % (len(a), len(b), i))' "$1" "$2"
}

check() { # name command...
  local name=$1; shift
  if ! "$@" >"$tmp/$name.json" 2>"$tmp/$name.err"; then
    echo "FAIL $name: exit status non-zero"; cat "$tmp/$name.err"; fail=1; return
  fi
  local r; r=$(compare "$tmp/$name.json" "$model/greedy_ids.json")
  if [ "$r" = same ]; then echo "ok   $name: 256 ids identical to greedy_ids.json"
  else echo "FAIL $name: $r"; fail=1; fi
}

check single "$QSHARD" generate --model "$model" --tokens 255
check mpi2 $QS_MPIEXEC -np 2 "$QSHARD" generate --model "$model" --tokens 255

# A prompt continues as greedy decoding would: the first 11 ids as prompt give the same 256 ids.
prompt=$(python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["generated_ids"][:11])))' "$model/greedy_ids.json")
check prompt "$QSHARD" generate --model "$model" --tokens 245 --prompt-ids "$prompt"

# Generation stops at max_position_embeddings (512): a 505-id prompt gets 7 more ids, not 1000.
long_prompt=$(python3 -c 'print(",".join(["1"] + ["403"] * 504))')
"$QSHARD" generate --model "$model" --tokens 1000 --prompt-ids "$long_prompt" >"$tmp/long.json" 2>/dev/null
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["generated_ids"]))' "$tmp/long.json" 2>/dev/null)
if [ "$n" = 512 ]; then echo "ok   stops at max_position_embeddings"; else echo "FAIL max positions: got '$n' ids"; fail=1; fi

# Bad input: non-zero exit and an error message naming the problem.
expect_error() { # pattern command...
  local pat=$1; shift
  local shown="${*:2}"; shown=${shown:0:100}
  if "$@" >/dev/null 2>"$tmp/err"; then echo "FAIL '$shown' succeeded"; fail=1; return; fi
  if grep -q -- "$pat" "$tmp/err"; then echo "ok   error '$pat' for: $shown"
  else echo "FAIL '$shown': message lacks '$pat':"; cat "$tmp/err"; fail=1; fi
}
expect_error "no such model directory" "$QSHARD" generate --model "$tmp/none" --tokens 3
expect_error "outside the vocabulary" "$QSHARD" generate --model "$model" --tokens 3 --prompt-ids 1,512
expect_error "exceed max_position_embeddings" "$QSHARD" generate --model "$model" --tokens 1 --prompt-ids "$long_prompt$(printf ',1%.0s' 1 2 3 4 5 6 7 8)"
expect_error "--tokens" "$QSHARD" generate --model "$model" --tokens -2
expect_error "not a non-negative integer" "$QSHARD" generate --model "$model" --tokens 3 --prompt-ids 1,,2
expect_error "unknown option" "$QSHARD" generate --model "$model" --tokens 3 --bogus 1
expect_error "required" "$QSHARD" generate --tokens 3
mkdir -p "$tmp/noweights" && cp "$model/config.json" "$tmp/noweights/"
expect_error "model.safetensors" "$QSHARD" generate --model "$tmp/noweights" --tokens 3
"$QSHARD" generate --help | grep -q "KV cache" || { echo "FAIL --help"; fail=1; }

exit $fail
