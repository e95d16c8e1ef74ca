# tests/qs_cuda_check.sh — sourced by the GPU shell tests that hold the cuda engine against the CPU
# engine (test_quantize_cuda.sh, test_awq_cuda_run.sh): the skip rules and the comparisons.
D=${QS_DATA_DIR:-}
[ -n "$D" ] && [ -d "$D/stories260K" ] && [ -d "$D/gutenberg28M" ] || { echo "SKIP: shared data not found (QS_DATA_DIR=$D)"; exit 77; }
nvidia-smi -L > /dev/null 2>&1 || { echo "SKIP: no GPU (nvidia-smi -L failed)"; exit 77; }
Q=$QSHARD
S=$D/stories260K G=$D/gutenberg28M
fail() { echo "FAIL: $*"; exit 1; }
ppl_log() { grep -E '^ppl ' "$1" | head -n1 | awk '{print $2}'; }
ppl_rep() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['eval']['ppl'])" "$1/quant_report.json"; }
# within A B REL: |A/B - 1| <= REL
within() { python3 -c "import sys; a,b,r=map(float,sys.argv[1:]); d=abs(a/b-1); print('  %.6f vs %.6f: rel diff %.2e (limit %.0e)' % (a,b,d,r)); sys.exit(0 if d <= r else 1)" "$1" "$2" "$3"; }
