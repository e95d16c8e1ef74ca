#!/usr/bin/env bash
# The cuda engine against the CPU engine on the shared models (label gpu; one rank, one GPU — the
# NCCL code path runs with one rank: ranks cannot share a GPU in an NCCL communicator, so the
# multi-rank tests stay on the CPU in CI):
#   1. eval: `qshard eval --device cuda --precision fp32` of the FP models = the CPU's PPL within 1e-4
#      relative (same fp32 math, only summation orders differ); bf16 within 2 %.
#   2. stories260K GPTQ 4-bit g32, --precision fp32: >= 99.9 % identical integer codes in every
#      quantized tensor (ckpt_codes_cmp) and perplexity of the written checkpoint within 0.1 % of the
#      CPU engine's; the default bf16 path within 2 %.
#      gutenberg28M GPTQ 4-bit g128 act-order: GPTQ amplifies any fp32 rounding difference through
#      its error feedback, act-order's column order and the next layers' Hessians — the CPU engine
#      run with 1 and with 2 OpenBLAS threads (only summation orders differ) keeps ~69 % identical
#      codes in its worst tensor and its perplexity moves by ~0.8 % (BENCHMARKS.md §4). So the cuda
#      engine is held to the CPU's own spread: layer 0's q/k/v (identical inputs up to rounding)
#      >= 99.5 % identical, the worst tensor within 5 points of the CPU-vs-CPU worst, and the
#      perplexity within max(0.1 %, 2 x the CPU-vs-CPU difference) of the CPU's.
#   3. RTN 4-bit g128 without calibration: byte-identical safetensors in both formats (GPTQ v1 and
#      compressed-tensors): the GPU's RTN kernel runs the grid code of the CPU reference
#      (quant/grid_int.h), and both formats are written on the host from the same records.
#   4. eval --reference on cuda (section 2's stories260K checkpoint against its original): the CPU
#      engine's statistics within the bounds stated there; each perplexity exactly that of a plain
#      `eval --device cuda` of the model; the same lines under mpirun -np 2 (two ranks on one GPU:
#      eval's collectives are host MPI, no NCCL); quantize --eval on cuda reports the same KLD.
set -euo pipefail
. "$QS_SRC/tests/qs_cuda_check.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

echo "== 1. eval of the FP models: cuda fp32 / bf16 vs cpu"
for m in S G; do
  dir=${!m}
  if [ $m = S ]; then data=$S/tinystories_sample.tok512.h5; extra=(--seqlen 512); else data=$G/wikitext2_test.h5; extra=(--seqlen 512 --eval-windows 40); fi
  "$Q" eval --device cpu --model "$dir" --data "$data" "${extra[@]}" > "$T/e_cpu_$m.log" 2>&1 || { cat "$T/e_cpu_$m.log"; fail "eval cpu $m"; }
  "$Q" eval --device cuda --precision fp32 --model "$dir" --data "$data" "${extra[@]}" > "$T/e_f32_$m.log" 2>&1 || { cat "$T/e_f32_$m.log"; fail "eval cuda fp32 $m"; }
  "$Q" eval --device cuda --model "$dir" --data "$data" "${extra[@]}" > "$T/e_bf16_$m.log" 2>&1 || { cat "$T/e_bf16_$m.log"; fail "eval cuda bf16 $m"; }
  echo " $m fp32:"; within "$(ppl_log "$T/e_f32_$m.log")" "$(ppl_log "$T/e_cpu_$m.log")" 1e-4 || fail "eval cuda fp32 $m"
  echo " $m bf16:"; within "$(ppl_log "$T/e_bf16_$m.log")" "$(ppl_log "$T/e_cpu_$m.log")" 2e-2 || fail "eval cuda bf16 $m"
done

echo "== 2. GPTQ: cuda (fp32 and bf16) vs cpu"
gptq() { # name model calib eval [options...]
  local name=$1 dir=$2 calib=$3 ev=$4
  shift 4
  "$Q" quantize --model "$dir" --calib "$calib" --samples 32 --seqlen 512 --eval "$ev" --eval-seqlen 512 \
    --eval-windows 40 "$@" --out "$T/$name" > "$T/$name.log" 2>&1 || { cat "$T/$name.log"; fail "quantize $name"; }
}
worst() { "$QS_CODES_CMP" "$1" "$2" 0 | tail -n 1 | awk '{print $6}'; }
# stories260K: the strict agreement
a=(--bits 4 --group-size 32)
gptq q_cpu_S "$S" "$S/ptb_valid.tok512.h5" "$S/tinystories_sample.tok512.h5" "${a[@]}" --device cpu
gptq q_f32_S "$S" "$S/ptb_valid.tok512.h5" "$S/tinystories_sample.tok512.h5" "${a[@]}" --device cuda --precision fp32
gptq q_bf16_S "$S" "$S/ptb_valid.tok512.h5" "$S/tinystories_sample.tok512.h5" "${a[@]}" --device cuda
echo " S codes, cuda fp32 vs cpu:"
"$QS_CODES_CMP" "$T/q_cpu_S" "$T/q_f32_S" 0.999 | tail -n 1 || fail "S: codes differ beyond 0.1 %"
"$QS_CODES_CMP" "$T/q_cpu_S" "$T/q_f32_S" 0.999 > /dev/null || fail "S: codes differ beyond 0.1 %"
echo " S perplexity of the written checkpoint, cuda fp32 vs cpu:"
within "$(ppl_rep "$T/q_f32_S")" "$(ppl_rep "$T/q_cpu_S")" 1e-3 || fail "S: perplexity beyond 0.1 %"
echo " S perplexity, cuda bf16 vs cpu:"
within "$(ppl_rep "$T/q_bf16_S")" "$(ppl_rep "$T/q_cpu_S")" 2e-2 || fail "S: bf16 perplexity beyond 2 %"
# gutenberg28M: against the CPU's own spread
a=(--bits 4 --group-size 128 --act-order)
OPENBLAS_NUM_THREADS=1 gptq q_cpu1_G "$G" "$G/gutenberg_val.h5" "$G/wikitext2_test.h5" "${a[@]}" --device cpu
OPENBLAS_NUM_THREADS=2 gptq q_cpu2_G "$G" "$G/gutenberg_val.h5" "$G/wikitext2_test.h5" "${a[@]}" --device cpu
gptq q_f32_G "$G" "$G/gutenberg_val.h5" "$G/wikitext2_test.h5" "${a[@]}" --device cuda --precision fp32
gptq q_bf16_G "$G" "$G/gutenberg_val.h5" "$G/wikitext2_test.h5" "${a[@]}" --device cuda
grep -E "phases" "$T/q_f32_G.log" | head -n 2 || true
"$QS_CODES_CMP" "$T/q_cpu1_G" "$T/q_f32_G" 0 > "$T/cmp_gpu.txt"
grep -E "layers\.0\.self_attn\.[qkv]_proj" "$T/cmp_gpu.txt"
for m in q k v; do
  f=$(grep -E "layers\.0\.self_attn\.${m}_proj" "$T/cmp_gpu.txt" | awk '{print $(NF)}')
  python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= 0.995 else 1)" "$f" || fail "G layer 0 ${m}_proj: $f identical (< 99.5 %)"
done
wc=$(worst "$T/q_cpu1_G" "$T/q_cpu2_G") wg=$(worst "$T/q_cpu1_G" "$T/q_f32_G") wb=$(worst "$T/q_cpu1_G" "$T/q_bf16_G")
echo " G worst identical fraction: cpu(1 thread) vs cpu(2 threads) $wc, cuda fp32 vs cpu $wg, cuda bf16 vs cpu $wb"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) - 0.05 else 1)" "$wg" "$wc" || fail "G: cuda agreement $wg far below the CPU's own $wc"
p1=$(ppl_rep "$T/q_cpu1_G") p2=$(ppl_rep "$T/q_cpu2_G") pg=$(ppl_rep "$T/q_f32_G") pb=$(ppl_rep "$T/q_bf16_G")
lim=$(python3 -c "import sys; a,b=map(float,sys.argv[1:]); print(max(1e-3, 2*abs(a/b-1)))" "$p2" "$p1")
echo " G perplexity: cpu(1) $p1 cpu(2) $p2 cuda fp32 $pg cuda bf16 $pb; limit $lim"
within "$pg" "$p1" "$lim" || fail "G: cuda fp32 perplexity outside the CPU's spread"
within "$pb" "$p1" 2e-2 || fail "G: cuda bf16 perplexity beyond 2 %"

echo "== 3. RTN without calibration: identical bytes"
for dev in cpu cuda; do
  "$Q" quantize --device $dev --model "$G" --method rtn --bits 4 --group-size 128 --asym \
    --format gptq,compressed-tensors --out "$T/rtn_$dev" > "$T/rtn_$dev.log" 2>&1 || { cat "$T/rtn_$dev.log"; fail "rtn $dev"; }
done
for f in "$T"/rtn_cpu/*.safetensors "$T"/rtn_cpu/compressed-tensors/*.safetensors; do
  cmp "$f" "${f/rtn_cpu/rtn_cuda}" || fail "RTN ${f#$T/} differs between cpu and cuda"
done
echo "RTN checkpoints identical"

echo "== 4. eval --reference on cuda vs cpu; perplexities of the plain evals; -np 1 vs 2"
# The windows section 2's --eval scored (30 of 512 tokens), q_f32_S against the FP model. Bounds:
# - cuda --precision fp32 vs cpu: the same fp32 forward up to summation order (section 1: PPL within
#   1e-4 relative, i.e. a mean NLL within 1e-4). A token's KL moves with the logits at first order by
#   sum_i P_i (d_i - kld) dr_i + sum_i (Q_i - P_i) dq_i (d_i = log P_i - log Q_i): about as much as its
#   NLL does (both weights have l1 norms ~ 2 TV + E|d| < 2 at kld 0.04) — kld_mean within 1e-4
#   absolute (2.5e-3 relative at kld 0.04); the p99 token likewise, within 1e-3 relative of its value.
#   The argmax moves only on near-ties: top-1 agreement within 0.1 points (15 of 15330 tokens).
# - cuda bf16 vs cpu: PPL within 2 % (section 1). bf16 activations move every logit by ~2^-8
#   relative, differently in the two models, which moves KL at first order by ~ (2 TV + E|d|) 2^-8 |logit|
#   per token, averaging out over tokens: kld_mean within 10 % relative, top-1 within 1 point.
# - exact: the FP model against itself gives 0 and 100 % (identical logits); the cuda ppl line is the
#   plain cuda eval's of the checkpoint and the reference ppl the plain cuda eval's of the FP model (the
#   same per-window NLL sums, kernels/tok_cmp.h); -np 2 prints the same ppl and reference lines;
#   quant_report.json's eval.reference (section 2, cuda fp32) is this eval's.
ev=(--data "$S/tinystories_sample.tok512.h5" --seqlen 512 --eval-windows 40)
evr() { # name device np [options...]: eval --reference of q_f32_S against S, --json $T/r_name.json
  local name=$1 dev=$2 np=$3
  shift 3
  local pre=()
  [ "$np" -gt 1 ] && read -r -a pre <<<"${QS_MPIEXEC:?} -np $np"
  ${pre[@]+"${pre[@]}"} "$Q" eval --device "$dev" --model "$T/q_f32_S" --reference "$S" "${ev[@]}" "$@" --json "$T/r_$name.json" \
    > "$T/r_$name.log" 2>&1 || { cat "$T/r_$name.log"; fail "eval --reference $name"; }
  grep -E '^(ppl|reference) ' "$T/r_$name.log" > "$T/r_$name.lines"
}
"$Q" eval --device cuda --model "$S" --reference "$S" "${ev[@]}" > "$T/r_self.log" 2>&1 || { cat "$T/r_self.log"; fail "eval --reference self"; }
grep -qx 'reference ppl [0-9.]* (+0.00 %) kld 0.000000 p99 0.000000 max 0.000000 top1 100.00 % dp +0.000000' \
  "$T/r_self.log" || { cat "$T/r_self.log"; fail "eval --reference cuda of the model itself: not exactly 0"; }
evr cpu cpu 1
evr f32 cuda 1 --precision fp32
evr bf16 cuda 1
evr bf16_np2 cuda 2
sed 's/^/  /' "$T/r_cpu.lines" "$T/r_f32.lines" "$T/r_bf16.lines"
cmp "$T/r_bf16.lines" "$T/r_bf16_np2.lines" || { cat "$T/r_bf16_np2.lines"; fail "eval --reference cuda: -np 1 and 2 differ"; }
for m in q_f32_S S; do
  dir=$T/$m; [ $m = S ] && dir=$S
  "$Q" eval --device cuda --model "$dir" "${ev[@]}" --json "$T/p_$m.json" > "$T/p_$m.log" 2>&1 || { cat "$T/p_$m.log"; fail "eval cuda $m"; }
done
grep -qxF "$(grep '^ppl ' "$T/p_q_f32_S.log")" "$T/r_bf16.lines" || fail "eval --reference cuda: ppl line != the plain cuda eval's"
python3 - "$T" <<'PY' || fail "eval --reference cuda: outside the bounds above"
import json, sys
T = sys.argv[1]
j = lambda n: json.load(open(f"{T}/{n}.json"))
cpu, f32, bf16 = j("r_cpu"), j("r_f32"), j("r_bf16")
ok = True
def check(what, a, b, rel=None, ab=None):
    global ok
    d = abs(a - b)
    good = (rel is not None and d <= rel * abs(b)) or (ab is not None and d <= ab)
    print("  %-30s %.9g vs %.9g: |diff| %.3g %s" % (what, a, b, d, "ok" if good else "OUTSIDE"))
    ok &= good
bounds = {"fp32": (f32, dict(ppl=1e-4, kld_abs=1e-4, p99=1e-3, top=1e-3)),
          "bf16": (bf16, dict(ppl=2e-2, kld_rel=0.1, p99=0.1, top=1e-2))}
for name, (r, b) in bounds.items():
    c, g = cpu["reference"], r["reference"]
    check(name + " ppl", r["ppl"], cpu["ppl"], rel=b["ppl"])
    check(name + " reference ppl", g["ppl"], c["ppl"], rel=b["ppl"])
    check(name + " kld_mean", g["kld_mean"], c["kld_mean"], rel=b.get("kld_rel"), ab=b.get("kld_abs"))
    check(name + " kld_p99", g["kld_p99"], c["kld_p99"], rel=b["p99"])
    check(name + " top1_agreement", g["top1_agreement"], c["top1_agreement"], ab=b["top"])
# exact: the plain cuda evals' perplexities (bf16), the report of section 2's cuda fp32 --eval
check("bf16 ppl = plain eval", bf16["ppl"], j("p_q_f32_S")["ppl"], ab=0.0)
check("bf16 reference ppl = plain eval", bf16["reference"]["ppl"], j("p_S")["ppl"], ab=0.0)
rep = json.load(open(f"{T}/q_f32_S/quant_report.json"))["eval"]
check("report kld_mean (15 digits)", rep["reference"]["kld_mean"], f32["reference"]["kld_mean"], rel=1e-13)
check("report ppl (15 digits)", rep["ppl"], f32["ppl"], rel=1e-13)
sys.exit(0 if ok else 1)
PY
echo "PASS"
