#!/usr/bin/env bash
# qshard quantize on numerically hostile variants of stories260K (CPU engine; issue 16). Each case
# is a copy of the model with a few tensors edited (safetensors + numpy, $QS_PYTHON):
#   1. errors, for every method (gptq, rtn, awq, awq+gptq): a NaN weight in a linear, an Inf in a
#      norm, a NaN in the embedding table, and a huge (finite) norm weight whose activations overflow
#      X^T X. Each exits non-zero (1) with a message naming the tensor and element, or the layer and
#      the group input; no OUT is left (OUT.partial may stay).
#   2. zero weight rows and columns, and an input channel that is always 0 (a zero column of the
#      embedding table: a dead input of layer 0's q/k/v, which GPTQ sets to 0 as the reference does);
#      and activations constant over all tokens (every embedding row the same: a rank-1 Hessian, made
#      positive definite by the damping). Each quantizes with every method; every tensor written is
#      finite; zero rows (all methods), zero columns (rtn, awq) and dead input columns (gptq,
#      awq+gptq) dequantize to exactly 0 (GPTQ's error feedback legitimately fills a zero column of
#      a live input); `qshard eval` of the output gives a finite perplexity. One case runs at -np 2.
# The RTN fallback for a Hessian that no damping makes positive definite is tested in test_gptq.c
# (test_damping_fallback): a Hessian 2/n X^T X of finite inputs cannot reach it.
# Run: ctest --test-dir build -R test_hostile --output-on-failure
set -euo pipefail
D=${QS_DATA_DIR:-}
[ -n "$D" ] && [ -d "$D/stories260K" ] || { echo "SKIP: shared data not found (QS_DATA_DIR=$D)"; exit 77; }
[ -n "${QS_PYTHON:-}" ] || { echo "SKIP: QS_PYTHON is empty (the hostile models are made with safetensors + numpy)"; exit 77; }
"$QS_PYTHON" -c "import numpy, safetensors" 2>/dev/null || { echo "SKIP: $QS_PYTHON lacks numpy/safetensors"; exit 77; }
Q=$QSHARD
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
S=$D/stories260K
CAL=(--calib "$S/ptb_valid.tok512.h5" --samples 4 --seqlen 64 --group-size 32)
METHODS=(gptq rtn awq awq+gptq)
fail() { echo "FAIL: $*"; exit 1; }

# The variants, each a directory $T/<name> (config and tokenizer files copied, tensors edited).
"$QS_PYTHON" - "$S" "$T" <<'PY'
import os, shutil, sys
import numpy as np
from safetensors.numpy import load_file, save_file
src, out = sys.argv[1], sys.argv[2]
base = load_file(src + "/model.safetensors")
L = "model.layers.%d."
def variant(name, edit):
    d = os.path.join(out, name)
    os.makedirs(d)
    for f in os.listdir(src):
        if f.endswith(".json") or f.endswith(".bin") and "tok" in f:
            shutil.copy(os.path.join(src, f), d)
    t = {k: v.copy() for k, v in base.items()}
    edit(t)
    save_file(t, d + "/model.safetensors", metadata={"format": "pt"})
def nan_weight(t): t[L % 1 + "mlp.down_proj.weight"][3, 5] = np.nan
def inf_norm(t): t[L % 2 + "post_attention_layernorm.weight"][7] = np.inf
def nan_embed(t): t["model.embed_tokens.weight"][100, 3] = np.nan
def huge_norm(t): t[L % 1 + "input_layernorm.weight"][9] = 1e25    # X^T X overflows: H[9, 9] = inf
def zeros(t):
    t[L % 2 + "self_attn.q_proj.weight"][0, :] = 0                    # a zero row (packed: gptq, awq)
    t[L % 2 + "self_attn.o_proj.weight"][:, 6] = 0                    # a zero column
    t[L % 1 + "mlp.down_proj.weight"][3, :] = 0
    t[L % 1 + "mlp.down_proj.weight"][:, 5] = 0
    t["model.embed_tokens.weight"][:, 7] = 0                          # layer 0 input channel 7 is dead
def constant(t):
    e = t["model.embed_tokens.weight"]
    e[:] = e[40]                                                      # every token the same vector
for name, edit in [("nanw", nan_weight), ("infnorm", inf_norm), ("nanemb", nan_embed), ("hugenorm", huge_norm),
                   ("zeros", zeros), ("const", constant)]:
    variant(name, edit)
PY

echo "== 1. errors: named, exit 1, no output"
bad() { # model method expected-regex tag [mpiexec args]
  local m=$1 meth=$2 want=$3 rc=0 o="$T/out-$1-$2$4"
  shift 4
  ${1:+$QS_MPIEXEC} "$@" "$Q" quantize --model "$T/$m" --method "$meth" "${CAL[@]}" --out "$o" > "$o.log" 2>&1 || rc=$?
  [ $rc -eq 1 ] || { cat "$o.log"; fail "$m/$meth: exit $rc, expected 1"; }
  grep -qE -- "$want" "$o.log" || { cat "$o.log"; fail "$m/$meth: message lacks /$want/"; }
  [ ! -e "$o" ] || fail "$m/$meth: left an output $o"
  echo "$m/$meth: $(grep -m1 -oE -- "$want" "$o.log")"
}
for meth in "${METHODS[@]}"; do
  bad nanw "$meth" "model\.layers\.1\.mlp\.down_proj\.weight\[3, 5\] = nan" ""
  bad hugenorm "$meth" "layer 1, input_layernorm output \(the input of self_attn\.q_proj, self_attn\.k_proj, \
self_attn\.v_proj\): .*channel 9" ""
done
bad infnorm gptq "model\.layers\.2\.post_attention_layernorm\.weight\[7\] = inf" ""
bad infnorm awq "model\.layers\.2\.post_attention_layernorm\.weight\[7\] = inf" ""
bad nanemb rtn "model\.embed_tokens\.weight\[100, 3\] = nan" ""
# every rank finds it (the same layer, the same Hessian): one message naming every rank, exit 1
bad hugenorm gptq "every rank \(2\).*layer 1, input_layernorm output" -np2 -np 2

echo "== 2. zero rows/columns, a dead input channel, constant activations: quantized, finite, zeros kept"
for m in zeros const; do
  for meth in "${METHODS[@]}"; do
    o="$T/out-$m-$meth"
    "$Q" quantize --model "$T/$m" --method "$meth" "${CAL[@]}" --out "$o" > "$o.log" 2>&1 || { cat "$o.log"; fail "$m/$meth"; }
    "$Q" eval --model "$o" --data "$S/tinystories_sample.tok512.h5" --seqlen 128 --eval-windows 4 > "$o.eval" 2>&1 \
      || { cat "$o.eval"; fail "$m/$meth: eval"; }
    ppl=$(grep -E '^ppl ' "$o.eval" | awk '{print $2}')
    python3 -c "import math,sys; sys.exit(0 if math.isfinite(float('$ppl')) else 1)" || fail "$m/$meth: ppl '$ppl'"
    echo "$m/$meth: ppl $ppl"
  done
done
"$QS_PYTHON" - "$T" <<'PY'
# Every tensor finite; the zeros of the `zeros` variant dequantized (GPTQ v1, 4 bits: the default format of
# every method; a module the format keeps dense is read as written).
import json, sys
import numpy as np
from safetensors.numpy import load_file
T = sys.argv[1]
src = load_file(T + "/zeros/model.safetensors")

def weight(t, mod):
    if mod + ".weight" in t:
        return t[mod + ".weight"].astype(np.float32)
    qw, qz, sc = t[mod + ".qweight"], t[mod + ".qzeros"], t[mod + ".scales"].astype(np.float32)
    G, N = sc.shape
    # GPTQ v1, 4 bits: qweight [K/8, N] along K; qzeros [G, N/8] along N, stored zero - 1
    K = qw.shape[0] * 8
    q = np.stack([(qw.astype(np.uint32) >> (4 * i)) & 15 for i in range(8)], axis=1).reshape(K, N)
    z = np.stack([(qz.astype(np.uint32) >> (4 * i)) & 15 for i in range(8)], axis=2).reshape(G, N) + 1
    g = t[mod + ".g_idx"].astype(np.int64)
    return ((q.astype(np.float32) - z[g]) * sc[g]).T

n_checked = 0
for m in ("zeros", "const"):
    for meth in ("gptq", "rtn", "awq", "awq+gptq"):
        o = "%s/out-%s-%s" % (T, m, meth)
        t = load_file(o + "/model.safetensors")
        for k, v in t.items():
            if v.dtype.kind == "f":
                assert np.isfinite(v).all(), "%s: %s has non-finite values" % (o, k)
        rep = json.load(open(o + "/quant_report.json"))
        assert all(x["damp"] >= 0 for x in rep["modules"]), o  # no RTN fallback here
        if m != "zeros":
            continue
        assert rep["formats"][0] == "gptq", rep["formats"]  # the default for every method
        L = "model.layers.%d."
        checks = [(L % 2 + "self_attn.q_proj", "row", 0), (L % 1 + "mlp.down_proj", "row", 3)]
        if meth in ("rtn", "awq"):  # no error feedback: a zero weight stays 0
            checks += [(L % 2 + "self_attn.o_proj", "col", 6), (L % 1 + "mlp.down_proj", "col", 5)]
        if meth in ("gptq", "awq+gptq"):  # dead input (diag H = 0): W[:, 7] := 0 as the reference
            checks += [(L % 0 + p, "col", 7) for p in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")]
        for mod, kind, i in checks:
            w = weight(t, mod)
            x = w[i, :] if kind == "row" else w[:, i]
            assert not np.any(x), "%s: %s %s %d dequantizes to %s" % (o, mod, kind, i, x[np.nonzero(x)][:4])
            n_checked += 1
        if meth in ("gptq", "rtn"):  # the reading itself: 4-bit g32 is ~10 % off the weights (AWQ's are scaled)
            mod = L % 2 + "self_attn.q_proj"
            w, w0 = weight(t, mod), src[mod + ".weight"]
            assert np.linalg.norm(w - w0) < 0.25 * np.linalg.norm(w0), (o, mod)
assert n_checked == 18, n_checked
print("finite outputs; %d zero rows/columns dequantize to 0" % n_checked)
PY
echo "test_hostile: all passed"
