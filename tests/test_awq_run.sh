#!/usr/bin/env bash
# qshard quantize --method awq / awq+gptq (CPU engine) on stories260K:
#   1. the checkpoints (AWQ GEMM and compressed-tensors from one run) are byte-identical for
#      mpirun -np 1, 2, 4; the AWQ config is AutoAWQ's (4-bit, zero_point, gemm); the folded norms
#      are written in place of the input's; `qshard eval` reads the AWQ output;
#   2. quality, 4-bit and 3-bit g32 (tinystories_sample): AWQ beats RTN on perplexity and on the KL
#      divergence from the float32 model (the MLP's 172-wide modules stay dense in GPTQ v1, written
#      with the scales folded in, full precision, for every method alike);
#   3. --resume: a run stopped by SIGTERM after its first layer, resumed, writes the same bytes;
#   4. refusals: --format awq with 3 bits, awq options it does not take, awq without --calib.
# (transformers + gptqmodel load the AWQ output in tests/py/hf_client.sh; BENCHMARKS.md has the
# full-size quality tables.)
set -euo pipefail
D=${QS_DATA_DIR:-}
[ -n "$D" ] && [ -d "$D/stories260K" ] || { echo "SKIP: shared data not found (QS_DATA_DIR=$D)"; exit 77; }
Q=$QSHARD S=$D/stories260K
T=$(mktemp -d)
RUN_PID=
cleanup() {
  [ -n "$RUN_PID" ] && kill -9 "$RUN_PID" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
. "$QS_SRC/tests/qs_mpi.sh"
E=$S/tinystories_sample.tok512.h5

echo "== 1. -np 1, 2, 4: identical AWQ and compressed-tensors checkpoints"
args=(quantize --model "$S" --calib "$S/ptb_valid.tok512.h5" --samples 8 --seqlen 128 --method awq --group-size -1
  --format awq,compressed-tensors)
for np in 1 2 4; do
  $QS_MPIEXEC -np $np "$Q" "${args[@]}" --out "$T/np$np" > "$T/np$np.log" 2>&1 || { cat "$T/np$np.log"; fail "np=$np"; }
done
for np in 2 4; do
  for f in model.safetensors config.json compressed-tensors/model.safetensors; do
    cmp "$T/np1/$f" "$T/np$np/$f" || fail "$f differs between -np 1 and -np $np"
  done
done
echo "identical: $(sha256sum "$T/np1/model.safetensors" | cut -c1-16)"
if [ -n "${QS_PYTHON:-}" ]; then
  "$QS_PYTHON" - "$T/np1" "$S" <<'PY'
import json, sys
import numpy as np
from safetensors.numpy import load_file
out, src = sys.argv[1], sys.argv[2]
qc = json.load(open(out + "/config.json"))["quantization_config"]
want = {"quant_method": "awq", "zero_point": True, "group_size": -1, "bits": 4, "version": "gemm"}
assert all(qc[k] == v for k, v in want.items()), qc
# gate/up have 172 outputs (not a multiple of 8): dense, and named for the loaders
assert qc["modules_to_not_convert"] == ["mlp.gate_proj", "mlp.up_proj"], qc
a, b = load_file(out + "/model.safetensors"), load_file(src + "/model.safetensors")
q = "model.layers.0.self_attn.q_proj"
assert a[q + ".qweight"].shape == (64, 8) and a[q + ".qzeros"].shape == (1, 8) and a[q + ".scales"].dtype == np.float16
# folded norms written in place of the input's; a group whose search keeps alpha = 0 (s = 1: round-
# to-nearest was best, as layer 4's q/k/v input here) leaves its norm as it was
folded = [f"model.layers.{l}.{n}.weight" for l in range(5) for n in ("input_layernorm", "post_attention_layernorm")]
folded = [k for k in folded if not np.array_equal(a[k], b[k])]
assert len(folded) >= 8, "only these norms were folded: %s" % folded
# the dense up_proj is the input's with the scales applied: its rows feed down_proj (divided by
# down's scales), its columns read post_attention_layernorm (multiplied by gate/up's)
k = "model.layers.0.mlp.up_proj.weight"
assert a[k].shape == b[k].shape and not np.array_equal(a[k], b[k])
print("awq config, folded norms and dense modules: ok")
PY
fi
"$Q" eval --model "$T/np1" --data "$E" --seqlen 256 --eval-windows 8 > "$T/eval_awq.log" 2>&1 || { cat "$T/eval_awq.log"; fail "eval of the AWQ output"; }
grep -E '^ppl ' "$T/eval_awq.log"

echo "== 2. quality: AWQ vs RTN, 4 and 3 bits g32 (tinystories_sample, seqlen 256)"
q() { # name method bits
  "$Q" quantize --model "$S" --calib "$S/ptb_valid.tok512.h5" --samples 32 --seqlen 256 --method "$2" --asym \
    --bits "$3" --group-size 32 --eval "$E" --eval-seqlen 256 --out "$T/$1" > "$T/$1.log" 2>&1 ||
    { cat "$T/$1.log"; fail "$1"; }
}
for b in 4 3; do
  q rtn$b rtn $b
  q awq$b awq $b
  python3 - "$T/rtn$b/quant_report.json" "$T/awq$b/quant_report.json" "$b" <<'PY'
import json, sys
r, a = (json.load(open(p))["eval"] for p in sys.argv[1:3])
kr, ka = r["reference"]["kld_mean"], a["reference"]["kld_mean"]
print("%s-bit: RTN PPL %.4f KLD %.5f | AWQ PPL %.4f KLD %.5f" % (sys.argv[3], r["ppl"], kr, a["ppl"], ka))
assert a["ppl"] < r["ppl"] and ka < kr, "AWQ does not beat RTN"
PY
done

echo "== 3. --resume after SIGTERM"
rargs=(quantize --model "$S" --calib "$S/ptb_valid.tok512.h5" --samples 64 --seqlen 256 --method awq+gptq --group-size 32)
$QS_MPIEXEC -np 2 "$Q" "${rargs[@]}" --out "$T/rref" > "$T/rref.log" 2>&1 || { cat "$T/rref.log"; fail "reference"; }
$QS_MPIEXEC -np 2 "$Q" "${rargs[@]}" --out "$T/rs" > "$T/rs.log" 2>&1 &
RUN_PID=$!
stop_after_save "$T/rs.log" 5
$QS_MPIEXEC -np 2 "$Q" "${rargs[@]}" --out "$T/rs" --resume > "$T/rs2.log" 2>&1 || { cat "$T/rs2.log"; fail "resume"; }
grep -qE 'resuming from .*: [0-9]+/5 layers done' "$T/rs2.log" || { cat "$T/rs2.log"; fail "the rerun did not resume"; }
for f in model.safetensors config.json; do cmp "$T/rref/$f" "$T/rs/$f" || fail "$f differs after --resume"; done
echo "resumed: same bytes ($(grep -m1 -oE 'state: [0-9]+/5 layers saved' "$T/rs.log"))"

echo "== 4. refusals"
refused() { # name expected-substring args...
  local name=$1 want=$2 rc=0
  shift 2
  "$Q" "$@" --out "$T/$name" > "$T/$name.log" 2>&1 || rc=$?
  [ $rc -ne 0 ] || { cat "$T/$name.log"; fail "$name: exit 0"; }
  grep -q -- "$want" "$T/$name.log" || { cat "$T/$name.log"; fail "$name: message lacks '$want'"; }
  [ ! -e "$T/$name" ] && [ ! -e "$T/$name.partial" ] || fail "$name: left an output behind"
  echo "$name: $(grep -m1 -- "$want" "$T/$name.log")"
}
refused bits3 "4-bit" quantize --model "$S" --calib "$S/ptb_valid.tok512.h5" --method awq --bits 3 --format awq
refused actord "not an option of --method awq" quantize --model "$S" --calib "$S/ptb_valid.tok512.h5" --method awq --act-order
refused nocalib "awq needs --calib" quantize --model "$S" --method awq
echo "test_awq_run: all passed"
