#!/usr/bin/env bash
# qshard quantize progress reporting (src/run/progress.h) on a synthetic 4-layer model:
#   1. --log-json under mpirun -np 2: every stdout line is one JSON object with "event" and "ts";
#      one "layer" event per layer (layers done 1..4 of 4, seconds per layer, ETA 0 at the end, peak
#      host bytes, no device on the CPU), one "module" event per linear, --state-interval longer than
#      the run: a single "state_saved" event, after the last layer;
#   2. --metrics-file: Prometheus text exposition format, parsed strictly (HELP and TYPE before each
#      sample, metric names, the escaped out="..." label, float values), the final figures, no
#      temporary file left; text mode prints the per-layer line;
#   3. a --metrics-file that cannot be written fails before any work, naming the option.
set -euo pipefail
Q=$QSHARD
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$Q" synth --config tiny --seed 3 --tokens 40000 --out "$T/tiny" > /dev/null
args=(quantize --model "$T/tiny" --calib "$T/tiny/tokens.h5" --samples 4 --seqlen 128 --bits 4)

echo "== 1. --log-json, -np 2"
$QS_MPIEXEC -np 2 "$Q" "${args[@]}" --log-json --state-interval 100000 --eval "$T/tiny/tokens.h5" --eval-windows 2 \
  --out "$T/j" > "$T/j.out" 2> "$T/j.err" || { cat "$T/j.out" "$T/j.err"; fail "--log-json run"; }
python3 - "$T/j.out" <<'PY'
import json, math, sys
ev = []
for i, line in enumerate(open(sys.argv[1]), 1):
    o = json.loads(line)  # raises on any line that is not JSON
    assert isinstance(o, dict) and isinstance(o.get("event"), str) and isinstance(o.get("ts"), float), (i, line)
    ev.append(o)
count = lambda e: sum(1 for o in ev if o["event"] == e)
layers = [o for o in ev if o["event"] == "layer"]
assert [o["layers_done"] for o in layers] == [1, 2, 3, 4] and all(o["layers_total"] == 4 for o in layers), layers
assert all(o["seconds_per_layer"] > 0 and o["eta_seconds"] >= 0 for o in layers)
assert layers[-1]["eta_seconds"] == 0
assert all(o["peak_host_bytes"] > 1 << 20 and o["peak_device_bytes"] is None for o in layers)
assert count("module") == 4 * 7 and count("calibration") == 1 and count("quantized") == 1, ev
assert count("eval") == 1 and count("wrote") == 1
s = [o for o in ev if o["event"] == "summary"]  # the end-of-run summary, one event
assert len(s) == 1 and s[0]["modules"] == 28 and s[0]["kept_dense"] == 0 and s[0]["eval_ppl"] > 1, s
assert s[0]["formats"][0]["format"] == "gptq" and 0 < s[0]["formats"][0]["bytes"] < s[0]["bytes_in"], s
saves = [o for o in ev if o["event"] == "state_saved"]
assert len(saves) == 1 and saves[0]["layers_done"] == 4, saves
print("%d JSON lines: %s" % (len(ev), ", ".join(sorted(set(o["event"] for o in ev)))))
PY

echo "== 2. --metrics-file (text mode, an --out whose name needs escaping)"
out="$T/q\"x"
mkdir "$T/m"
"$Q" "${args[@]}" --metrics-file "$T/m/qshard.prom" --out "$out" > "$T/t.out" 2>&1 || { cat "$T/t.out"; fail "metrics run"; }
grep -qE '^layer 4/4 quantized in [0-9.]+ s; 4/4 done, [0-9.]+ s/layer, ETA 0 s; peak memory \(max over ranks\): host [0-9.]+ GiB$' \
  "$T/t.out" || { cat "$T/t.out"; fail "no per-layer progress line"; }
[ "$(ls -A "$T/m")" = qshard.prom ] || fail "metrics dir holds $(ls -A "$T/m")"
python3 - "$T/m/qshard.prom" "$out" <<'PY'
import math, re, sys
text, out = open(sys.argv[1]).read(), sys.argv[2]
assert text.endswith("\n")
name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
sample_re = re.compile(r"^(%s)\{out=\"((?:[^\"\\\n]|\\[\\\"n])*)\"\} (\S+)$" % name_re)
help_seen, type_seen, vals = set(), {}, {}
for line in text.splitlines():
    if line.startswith("# HELP "):
        n = line.split(" ", 3)[2]
        assert re.fullmatch(name_re, n) and n not in help_seen, line
        help_seen.add(n)
    elif line.startswith("# TYPE "):
        _, _, n, t = line.split(" ")
        assert n in help_seen and t == "gauge" and n not in type_seen, line
        type_seen[n] = t
    else:
        m = sample_re.match(line)
        assert m, "not a sample line: %r" % line
        n, label, v = m.groups()
        assert n in type_seen and n not in vals, line
        label = re.sub(r"\\(.)", lambda g: "\n" if g.group(1) == "n" else g.group(1), label)
        assert label == out, (label, out)
        vals[n] = float(v)
want = {"qshard_layers_done", "qshard_layers_total", "qshard_seconds_per_layer", "qshard_eta_seconds",
        "qshard_peak_host_bytes"}  # qshard_peak_device_bytes only on GPU runs
assert set(vals) == want, vals
assert vals["qshard_layers_done"] == vals["qshard_layers_total"] == 4 and vals["qshard_eta_seconds"] == 0, vals
assert vals["qshard_seconds_per_layer"] > 0 and vals["qshard_peak_host_bytes"] > 1 << 20, vals
print("metrics: " + ", ".join("%s %g" % kv for kv in sorted(vals.items())))
PY

echo "== 3. an unwritable --metrics-file fails before any work"
rc=0
"$Q" "${args[@]}" --metrics-file "$T/nodir/x.prom" --out "$T/bad" > "$T/bad.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] || { cat "$T/bad.out"; fail "exit $rc"; }
grep -q -- "--metrics-file" "$T/bad.out" || { cat "$T/bad.out"; fail "message lacks --metrics-file"; }
! grep -q "quantized in" "$T/bad.out" || fail "layers were quantized before the metrics file failed"
[ ! -e "$T/bad" ] && [ ! -e "$T/bad.partial" ] || fail "left $T/bad*"
echo "test_progress: all passed"
