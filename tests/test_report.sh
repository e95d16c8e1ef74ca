#!/usr/bin/env bash
# `qshard report OUT [--out-dir D]` (src/cli/report.c, src/run/report_doc.h) on stories260K quantize
# outputs: GPTQ (every module has a relative output error: 7 polylines, linear y) and RTN without
# calibration (no error: no polyline, a note); crafted copies of the GPTQ report: errors spanning three
# decades (log y), the v modules without a value (6 polylines), a model name that needs XML escaping,
# loss only; and bad inputs (no report, not JSON, a missing field), each one error line, exit 1, nothing
# written. With QS_PYTHON the SVG is parsed (xml.etree): polylines = module kinds with a value, every
# coordinate finite and inside the viewBox; else grep checks. Run: ctest -R test_report (needs QS_DATA_DIR).
set -uo pipefail
D=${QS_DATA_DIR:-}/stories260K
[ -n "${QS_DATA_DIR:-}" ] && [ -f "$D/config.json" ] || { echo "SKIP: shared data not found"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/qs_report.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
PY=${QS_PYTHON:-}

"$QSHARD" quantize --model "$D" --calib "$D/ptb_valid.tok512.h5" --samples 4 --seqlen 64 --out "$T/gptq" \
  >"$T/q1.log" 2>&1 || { cat "$T/q1.log"; echo "FAIL: quantize gptq"; exit 1; }
"$QSHARD" quantize --model "$D" --method rtn --out "$T/rtn" >"$T/q2.log" 2>&1 \
  || { cat "$T/q2.log"; echo "FAIL: quantize rtn"; exit 1; }

# report_ok OUT DIR: report succeeds, writes DIR/report.{svg,md} and no temporary files.
report_ok() {
  local out=$1 dir=$2; shift 2
  "$QSHARD" report "$out" "$@" >"$T/out" 2>"$T/err" || { fail "report $out: rc $?"; cat "$T/err"; return; }
  [ -s "$dir/report.svg" ] && [ -s "$dir/report.md" ] || fail "report $out: $dir/report.svg or report.md missing"
  ! ls "$dir" | grep -q '\.tmp\.' || fail "report $out: temporary files left in $dir"
  [ ! -s "$T/err" ] || { fail "report $out: wrote to stderr"; cat "$T/err"; }
}

# check_svg DIR POLYLINES [LOG]: grep checks, then (QS_PYTHON) the XML checks. POLYLINES is also the
# number of module kinds with a value in DIR/../quant_report.json as the Python check counts them.
check_svg() {
  local svg=$1/report.svg n=$2 log=${3:-linear}
  head -c 200 "$svg" | grep -q '<svg ' || fail "$svg: no <svg> element"
  tail -n1 "$svg" | grep -q '^</svg>$' || fail "$svg: does not end with </svg>"
  [ "$(grep -c '<polyline' "$svg")" = "$n" ] || fail "$svg: $(grep -c '<polyline' "$svg") polylines, expected $n"
  if [ "$log" = log ]; then grep -q '(log scale)</text>' "$svg" || fail "$svg: y axis not log"
  else ! grep -q '(log scale)' "$svg" || fail "$svg: y axis log, expected linear"; fi
  [ -n "$PY" ] || return 0
  "$PY" - "$svg" "$n" <<'PY' || fail "$svg: XML checks"
import math, sys, xml.etree.ElementTree as ET
svg, n = sys.argv[1], int(sys.argv[2])
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(svg).getroot()
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
x0, y0, w, h = map(float, root.get("viewBox").split())
def inside(x, y, what):
    assert math.isfinite(x) and math.isfinite(y) and x0 <= x <= x0 + w and y0 <= y <= y0 + h, (what, x, y)
lines = root.findall(".//s:polyline", ns)
assert len(lines) == n, (len(lines), n)
npts = 0
for pl in lines:
    pts = [tuple(map(float, p.split(","))) for p in pl.get("points").split()]
    assert pts, "empty polyline"
    for x, y in pts: inside(x, y, "polyline")
    xs = [x for x, _ in pts]
    assert xs == sorted(xs), ("points not in layer order", xs)
    npts += len(pts)
for c in root.iter("{http://www.w3.org/2000/svg}circle"):
    inside(float(c.get("cx")), float(c.get("cy")), "circle")
markers = [c for g in root.findall(".//s:g[@class='kind']", ns) for c in g.findall("s:circle", ns) if c.find("s:title", ns) is not None]
assert len(markers) == npts, ("one marker per point", len(markers), npts)
text = "".join(root.itertext())
if n == 0: assert "No per-module error" in text, "no note"
else:
    for k in ["q", "k", "o", "gate", "up", "down"]: assert f"kind-{k}" in [g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")], k
PY
}

# check_md DIR LAYERS: one per-layer row per layer, the image link, the worst-module table.
check_md() {
  local md=$1/report.md nl=$2
  [ "$(awk '/^## Per layer/{on=1;next} on&&/^## /{on=0} on' "$md" | grep -cE '^\| [0-9]+ \| [0-9]+ \| ')" = "$nl" ] \
    || { fail "$md: per-layer rows != $nl"; cat "$md"; }
  grep -qF '![per-module error](report.svg)' "$md" || fail "$md: no image link"
  grep -q '^| method | ' "$md" && grep -q '^| calibration | ' "$md" || fail "$md: settings table"
  grep -q '^- linear modules: ' "$md" && grep -q '^- quantize time: ' "$md" || fail "$md: totals"
}

# --- GPTQ: in OUT itself
report_ok "$T/gptq" "$T/gptq"
check_svg "$T/gptq" 7
check_md "$T/gptq" 5
grep -q '^| method | gptq |$' "$T/gptq/report.md" || fail "gptq: method row"
grep -qE '^- gptq in .*bits per parameter\)$' "$T/gptq/report.md" || fail "gptq: size line"
[ "$(awk '/^## Worst/{on=1;next} on&&/^## /{on=0} on' "$T/gptq/report.md" | grep -cE '^\| [0-9]+ \| model')" = 10 ] \
  || fail "gptq: worst-module table does not have 10 rows"
if [ -n "$PY" ]; then
  "$PY" - "$T/gptq" <<'PY' || fail "gptq: Markdown figures against quant_report.json"
import json, re, sys
d = sys.argv[1]
r = json.load(open(d + "/quant_report.json"))
md = open(d + "/report.md").read()
worst = sorted(r["modules"], key=lambda m: -m["rel_output_error"])[:10]
rows = re.findall(r"^\| (\d+) \| (model\S+) \| \d+ × \d+ \| ([0-9.e+-]+) \|", md, re.M)
assert [m.replace("\\_", "_") for _, m, _ in rows] == [m["name"] for m in worst], rows
assert all(abs(float(v) / m["rel_output_error"] - 1) < 1e-3 for (_, _, v), m in zip(rows, worst))
for l in range(5):
    mods = [m for m in r["modules"] if m["layer"] == l]
    row = re.search(rf"^\| {l} \| {len(mods)} \| ([0-9.e+-]+) \| ([0-9.e+-]+) \| (\S+) \|$", md, re.M)
    assert row, l
    mean = sum(m["rel_output_error"] for m in mods) / len(mods)
    w = max(mods, key=lambda m: m["rel_output_error"])
    assert abs(float(row.group(1)) / mean - 1) < 1e-3 and abs(float(row.group(2)) / w["rel_output_error"] - 1) < 1e-3, row.groups()
    assert row.group(3).replace("\\_", "_") == w["name"], row.group(3)
assert f"{len(r['unpacked'])} kept dense" in md or not r["unpacked"]
PY
fi

# --- RTN without calibration: no error in the report; --out-dir elsewhere (created), OUT untouched
report_ok "$T/rtn" "$T/rtn-report/sub" --out-dir "$T/rtn-report/sub"
[ ! -e "$T/rtn/report.svg" ] && [ ! -e "$T/rtn/report.md" ] || fail "rtn: --out-dir wrote into OUT"
check_svg "$T/rtn-report/sub" 0
check_md "$T/rtn-report/sub" 5
grep -q 'holds no per-module error' "$T/rtn-report/sub/report.md" || fail "rtn: no note in the Markdown"

# --- crafted copies of the GPTQ report (python rewrites the JSON; skipped without it)
if [ -n "$PY" ]; then
  for c in log loss; do mkdir -p "$T/$c"; done
  "$PY" - "$T/gptq/quant_report.json" "$T" <<'PY' || fail "crafting reports"
import json, sys
r = json.load(open(sys.argv[1]))
r["model"] = "/nonexistent/a<b&c\"d'"   # XML-hostile, and no checkpoint there (sizes before not shown)
for i, m in enumerate(r["modules"]):
    m["rel_output_error"] = None if m["name"].endswith("v_proj") else 10.0 ** -(i % 4) * 0.5
json.dump(r, open(sys.argv[2] + "/log/quant_report.json", "w"))
for m in r["modules"]: m["rel_output_error"] = None
json.dump(r, open(sys.argv[2] + "/loss/quant_report.json", "w"))
PY
  report_ok "$T/log" "$T/log"
  check_svg "$T/log" 6 log
  grep -q 'a&lt;b&amp;c&quot;d&apos;' "$T/log/report.svg" || fail "log: model name not escaped"
  grep -q 'original checkpoint: not found at' "$T/log/report.md" || fail "log: missing model not reported"
  report_ok "$T/loss" "$T/loss"
  check_svg "$T/loss" 7 log # losses span more than a decade
  grep -q 'per-module loss of the method' "$T/loss/report.svg" || fail "loss: subtitle"
  grep -q '^## Worst modules by loss$' "$T/loss/report.md" || fail "loss: worst table not by loss"
fi

# --- bad inputs: exit 1, one error line naming the file and the problem, nothing written
# report_bad DIR PATTERN
report_bad() {
  local dir=$1 pat=$2
  "$QSHARD" report "$dir" >"$T/out" 2>"$T/err"
  local rc=$?
  [ $rc -eq 1 ] || fail "report $dir: rc $rc, expected 1"
  [ "$(wc -l <"$T/err")" = 1 ] || { fail "report $dir: $(wc -l <"$T/err") error lines, expected 1"; cat "$T/err"; }
  grep -qE -- "$pat" "$T/err" || { fail "report $dir: message does not match '$pat'"; cat "$T/err"; }
  [ ! -e "$dir/report.svg" ] && [ ! -e "$dir/report.md" ] || fail "report $dir: wrote files on error"
  echo "ok (rc $rc): $(cat "$T/err")"
}
mkdir -p "$T/none" "$T/notjson" "$T/nofield" "$T/nolayer"
report_bad "$T/none" "$T/none/quant_report.json: cannot open"
report_bad "$T/missing-dir" "$T/missing-dir: no such directory"
printf '{"model": "x", "method": ' >"$T/notjson/quant_report.json"
report_bad "$T/notjson" "$T/notjson/quant_report.json: not JSON"
sed 's/"bits": *4,//' "$T/gptq/quant_report.json" >"$T/nofield/quant_report.json"
report_bad "$T/nofield" "$T/nofield/quant_report.json: missing field \"bits\""
# the third module's "layer" removed (rewritten by python: the error must name the module's index)
if [ -n "$PY" ]; then
  "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); del r["modules"][2]["layer"]; json.dump(r, open(sys.argv[2], "w"))' \
    "$T/gptq/quant_report.json" "$T/nolayer/quant_report.json"
  report_bad "$T/nolayer" "quant_report.json: missing field \"modules\[2\]\.layer\""
fi
"$QSHARD" report >/dev/null 2>&1; [ $? -eq 2 ] || fail "report without OUT: expected exit 2"
"$QSHARD" report --help | grep -q '^usage: qshard report OUT' || fail "--help"

[ $fails -eq 0 ] || { echo "test_report: $fails failure(s)"; exit 1; }
echo "test_report: ok"
