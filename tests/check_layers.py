"""check_layers.py SRC_ROOT — the layers of src/ (CMakeLists.txt) are respected by every #include:
  base < io < quant < formats < model < run < cli   (a file includes headers of its own layer or below)
  comm/ includes base/ only; kernels/ include base/ and the numeric headers of quant/ (grids, method
  options, the GPTQ schedule) and nothing above; only comm/ includes mpi.h or nccl.h.
and there are no include circles: no header reaches itself through headers, and no two modules
(file stems: x.c, x.h, x_cuda.c, ...) include each other's headers.
Exit 0 when clean; prints every violation otherwise."""
import os
import re
import sys

root = sys.argv[1]
ORDER = ["base", "io", "quant", "formats", "model", "run", "cli"]
KERNEL_OK = {"quant/grid.h", "quant/grid_int.h", "quant/method.h", "quant/damp.h"}
INC = re.compile(r'^\s*#\s*include\s+([<"])([^">]+)[">]', re.M)
bad = []


def files():
    for top in ["src", "kernels", "comm"]:
        for d, _, names in os.walk(os.path.join(root, top)):
            for n in names:
                if n.endswith((".c", ".h", ".cu", ".cuh")):
                    yield os.path.relpath(os.path.join(d, n), root)


def layer(path):  # "src/run/x.c" -> "run"; kernels/comm files -> their folder
    parts = path.split("/")
    return parts[1] if parts[0] == "src" else parts[0]


graph = {}
for f in files():
    text = open(os.path.join(root, f), encoding="utf-8").read()
    incs = [(k, h) for k, h in INC.findall(text)]
    me = layer(f)
    graph[f] = []
    for kind, h in incs:
        if kind == "<":
            if h in ("mpi.h", "nccl.h") and me != "comm":
                bad.append(f"{f}: includes <{h}> (only comm/ talks to MPI or NCCL)")
            continue
        if "/" in h:
            target = "src/" + h
            hl = h.split("/")[0]
        elif os.path.exists(os.path.join(root, "kernels", h)):
            target, hl = "kernels/" + h, "kernels"
        elif os.path.exists(os.path.join(root, "comm", h)):
            target, hl = "comm/" + h, "comm"
        elif os.path.exists(os.path.join(root, os.path.dirname(f), h)):
            target, hl = os.path.join(os.path.dirname(f), h), me
        else:
            bad.append(f"{f}: includes \"{h}\", which is not in src/<layer>/, kernels/ or comm/")
            continue
        graph[f].append(target)
        if me == "comm":
            ok = hl in ("comm", "base")
        elif me == "kernels":
            ok = hl in ("kernels", "base") or h in KERNEL_OK
        elif hl in ("comm", "kernels"):
            ok = True  # below every src/ layer above base (base includes neither)
            ok = me != "base"
        else:
            ok = ORDER.index(hl) <= ORDER.index(me)
        if not ok:
            bad.append(f"{f} ({me}) includes {h} ({hl}): a higher layer")

# header cycles
state = {}


def dfs(n, stack):
    state[n] = 1
    for m in graph.get(n, []):
        if not m.endswith((".h", ".cuh")):
            continue
        if state.get(m) == 1:
            bad.append("include circle: " + " -> ".join(stack[stack.index(m):] + [m]) if m in stack else m)
        elif not state.get(m):
            dfs(m, stack + [m])
    state[n] = 2


for f in list(graph):
    if f.endswith((".h", ".cuh")) and not state.get(f):
        dfs(f, [f])


# module pairs that include each other (x.c includes y.h and y.c includes x.h)
def stem(p):
    s = os.path.splitext(p)[0]
    return re.sub(r"_(cuda|ref)$", "", s)


uses = {}
for f, ts in graph.items():
    for t in ts:
        if stem(t) != stem(f):
            uses.setdefault(stem(f), set()).add(stem(t))
for a, bs in uses.items():
    for b in bs:
        if a < b and a in uses.get(b, ()):
            bad.append(f"modules {a} and {b} include each other")

for b in bad:
    print("FAIL:", b)
print(f"check_layers: {len(graph)} files, {sum(len(v) for v in graph.values())} includes, {len(bad)} violations")
sys.exit(1 if bad else 0)
