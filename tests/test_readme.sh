#!/usr/bin/env bash
# The README's command sessions run as written (so the README cannot drift from the tool): the shell
# blocks of "A complete quantize → eval session" (gutenberg28M: eval, GPTQ quantize with --eval,
# inspect, report, eval --reference; the GGUF block) are extracted and run with bash -e, with fewer
# calibration samples and windows (--samples 2, --eval-windows 2), the shared data's path for D, a
# temporary directory for /tmp and this build's qshard. The eval of the written checkpoint must print
# the ppl line that quantize --eval printed.
set -euo pipefail
D=${QS_DATA_DIR:-}/gutenberg28M
[ -n "${QS_DATA_DIR:-}" ] && [ -f "$D/config.json" ] || { echo "SKIP: shared data not found"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/qs_readme.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# the ```sh blocks between the session's heading and the next "## " heading
awk '/^## A complete quantize/ { on = 1; next } on && /^## / { exit } on && /^```sh/ { code = 1; next }
     on && /^```/ { code = 0; next } on && code' "$QS_SRC/README.md" > "$T/session.sh"
grep -q 'build/qshard quantize' "$T/session.sh" || fail "no session commands found in README.md"
# (/tmp first: D or T may themselves lie under /tmp)
sed -i -e "s|/tmp/|$T/|g" -e "s|--samples [0-9]*|--samples 2|g" -e "s|--eval-windows [0-9]*|--eval-windows 2|g" \
  -e "s|build/qshard|$QSHARD|g" "$T/session.sh"
sed -i -e "s|^D=.*|D=$D|" "$T/session.sh"
echo "== the README session ($(grep -c "qshard" "$T/session.sh") qshard commands)"
(cd "$T" && bash -e "$T/session.sh") > "$T/out.log" 2>&1 || { cat "$T/out.log"; fail "a README command failed"; }
# ppl lines (under mpirun quantize's log lines carry a "[rank 0/2 host] " prefix): 1 the FP eval,
# 2 quantize --eval, 3 the eval of OUT
sed 's/^\[rank [^]]*\] //' "$T/out.log" | grep -E '^ppl ' | sed -n 2,3p > "$T/ppl.txt"
[ "$(sed -n 1p "$T/ppl.txt" | cut -d' ' -f1-12)" = "$(sed -n 2p "$T/ppl.txt" | cut -d' ' -f1-12)" ] \
  || { cat "$T/out.log"; fail "eval of the checkpoint != quantize --eval: $(cat "$T/ppl.txt")"; }
grep -qE '^reference ppl .* kld ' "$T/out.log" || fail "no --reference line"
for f in g28m-gptq4/config.json g28m-gptq4/report.svg g28m-gptq4/report.md g28m-q4km/gutenberg28M-Q4_K_M.gguf \
         g28m-q4km-imat/imatrix.gguf g28m-q4km-gptq/gutenberg28M-Q4_K_M.gguf; do
  [ -f "$T/$f" ] || fail "the session did not write $f"
done
echo "test_readme: the README's commands ran: $(sed -n 2p "$T/ppl.txt")"
