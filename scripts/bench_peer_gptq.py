#!/usr/bin/env python3
"""bench_peer_gptq.py — llm-compressor's own GPTQ timed on qshard's benchmark layers (the peer baseline).

Times the GPTQ pieces of llm-compressor (>= 0.14: `llmcompressor.modifiers.gptq.gptq_quantize.
quantize_weight` with its registered Triton block update, and `helpers.accumulate_hessian` /
`make_empty_hessian`) on one synthetic decoder layer of the shapes that scripts/bench_gpu_layers.sh
quantizes with `qshard quantize --device cuda`: the seven linear modules (q, k, v, o, gate, up, down)
with the real Llama shapes in bf16, 128 calibration samples x 2048 tokens of random bf16 activations
per distinct module input (generated one sample at a time, outside the timed region), W4A16
asymmetric group 128 (QuantizationArgs num_bits=4, type int, symmetric False, strategy group,
group_size 128), actorder static and none, GPTQModifier's defaults (block_size 128, dampening_frac
0.01, batched_quantization "auto"). Every timed region ends with torch.cuda.synchronize() and is
read with time.perf_counter(); each phase runs once untimed first (warm-up: cuBLAS/cuSOLVER handles,
the Triton kernel's compilation).

Phases:
  hessian      accumulate_hessian over the 128 samples for each of the 4 distinct inputs
               (qkv, o, gate/up, down), into make_empty_hessian accumulators
  hessian/mod  the same as llm-compressor's forward hooks run it: one Hessian per module, i.e.
               qkv x3 + o + gate/up x2 + down (derived from the measured per-input times)
  solve        per module as GPTQModifier.compress_module_list does it: the weight observer's
               qparams (memoryless_minmax), helpers.prepare_batch (stack, H / n), quantize_weight
               (factorization + block sweep); "batched" groups same-shape modules as its default
               batched_quantization="auto" does (helpers.assign_batches: q+o, k+v, gate+up, down),
               "per module" calls it once per module. Writing the results back to the module
               (update_batch_qparams) is not timed.
  layer        hessian + solve (batched), for each actorder

With --qshard-log LOG (the log of scripts/bench_gpu_layers.sh, or one `qshard quantize` log) it
also reads qshard's per-layer lines "layer N phases (s, rank 0): load .., forward .., hessian ..,
factor .., solve .., ..." (the last layer of each shape: layer 0 carries first-use costs) and prints
llm-compressor / qshard per phase: hessian vs hessian, solve vs factor+solve, layer (hessian +
solve) vs hessian+factor+solve. qshard runs act-order, so "static" is the like-for-like row.

  python3 bench_peer_gptq.py [--shapes llama-3-8b,llama-3-70b] [--samples 128] [--seqlen 2048]
                             [--qshard-log LOG] [--device cuda|cpu] [--tiny] [--batching auto,none]
  --tiny: a small layer (hidden 256, 4 heads) and 4 x 64 tokens, to exercise the code on a CPU.

Imports: `import llmcompressor` pulls in datasets, auto-round and more that the GPU machine lacks;
when the package import fails, the GPTQ module files (modifiers/gptq/helpers.py, gptq_quantize.py,
observers/min_max.py) are loaded directly under stub parent packages, so only compressed-tensors,
pydantic and loguru are needed. --import package|direct forces one route. The route, versions and
the Triton backend in use are printed.
"""
import argparse
import gc
import importlib
import importlib.machinery
import importlib.util
import math
import os
import re
import sys
import time
import types

SHAPES = {
    # hidden, intermediate, heads, kv heads, head_dim
    "llama-3-8b": (4096, 14336, 32, 8, 128),
    "llama-3-70b": (8192, 28672, 64, 8, 128),
    "llama-3.1-405b": (16384, 53248, 128, 8, 128),
    "tiny": (256, 512, 4, 2, 64),
}
# the seven linear modules of a decoder layer and the distinct input each one reads
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
INPUT_OF = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "o_proj": "o", "gate_proj": "gateup",
            "up_proj": "gateup", "down_proj": "down"}
INPUTS = ("qkv", "o", "gateup", "down")
HOOKS_PER_INPUT = {"qkv": 3, "o": 1, "gateup": 2, "down": 1}  # llm-compressor: one Hessian per module


def module_shapes(shape):
    h, inter, nh, nkv, hd = SHAPES[shape]
    return {"q_proj": (nh * hd, h), "k_proj": (nkv * hd, h), "v_proj": (nkv * hd, h), "o_proj": (h, nh * hd),
            "gate_proj": (inter, h), "up_proj": (inter, h), "down_proj": (h, inter)}


def log(*a):
    print(*a, flush=True)


# ---- imports ------------------------------------------------------------------------------------

def _stub_package(name):
    """An empty package `name` whose submodules load from the installed package's folder."""
    if name in sys.modules:
        return sys.modules[name]
    parent, _, child = name.rpartition(".")
    if parent:
        pkg = _stub_package(parent)
        locations = [os.path.join(p, child) for p in pkg.__path__]
    else:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"{name} is not installed")
        locations = list(spec.submodule_search_locations)
    m = types.ModuleType(name)
    m.__path__ = locations
    m.__package__ = name
    m.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    m.__spec__.submodule_search_locations = locations
    sys.modules[name] = m
    if parent:
        setattr(sys.modules[parent], child, m)
    return m


def import_llmc(route):
    """Returns (gptq_quantize, helpers, observer_factory, info)."""
    info = {}
    mods = None
    if route in ("auto", "package"):
        try:
            from llmcompressor.modifiers.gptq import gptq_quantize as gq  # noqa: E402
            from llmcompressor.modifiers.gptq import helpers as gh
            mods = (gq, gh)
            info["route"] = "package (import llmcompressor)"
        except Exception as e:  # ImportError for a missing dependency, or anything its __init__ raises
            if route == "package":
                raise
            info["package_import_error"] = f"{type(e).__name__}: {e}"
    if mods is None:
        # A failed package import leaves 'llmcompressor' out of sys.modules (its __init__ failed) but
        # may keep submodules that loaded; a module loaded twice would register its ImplBackend
        # functions twice (ValueError), so reuse those, and load the rest under stub parents.
        _stub_package("llmcompressor.modifiers.gptq")
        gh = importlib.import_module("llmcompressor.modifiers.gptq.helpers")
        gq = importlib.import_module("llmcompressor.modifiers.gptq.gptq_quantize")
        mods = (gq, gh)
        info.setdefault("route", "direct (module files under stub parent packages)")
    gq, gh = mods
    observer = None
    try:
        if "llmcompressor.observers" not in sys.modules and info["route"].startswith("direct"):
            _stub_package("llmcompressor.observers")
        mm = importlib.import_module("llmcompressor.observers.min_max")
        observer = lambda args: mm.MemorylessMinMaxObserver(base_name="weight", args=args)  # noqa: E731
        info["observer"] = "llmcompressor MemorylessMinMaxObserver (GPTQModifier's default for weights)"
    except Exception as e:
        info["observer"] = f"compressed_tensors calculate_qparams on group min/max ({type(e).__name__}: {e})"
    return gq, gh, observer, info


def versions():
    out = []
    for name in ("torch", "triton", "transformers", "llmcompressor", "compressed-tensors", "pydantic", "loguru"):
        try:
            from importlib.metadata import version
            out.append(f"{name} {version(name)}")
        except Exception:
            out.append(f"{name} -")
    return ", ".join(out)


# ---- qshard log ---------------------------------------------------------------------------------

PH_RE = re.compile(r"layer (\d+) phases \(s, rank 0\): (.*?); sum ([0-9.]+)")
SHAPE_RE = re.compile(r"^== (\S+), (\d+) layer")


def read_qshard_log(path, default_shape):
    """{shape: {"layer": N, phase: seconds, ..., "sum": s}} — the last layer of each shape."""
    res = {}
    shape = default_shape
    with open(path, errors="replace") as f:
        for line in f:
            m = SHAPE_RE.match(line.strip())
            if m:
                shape = m.group(1)
                continue
            m = PH_RE.search(line)
            if not m or shape is None:
                continue
            d = {"layer": int(m.group(1)), "sum": float(m.group(3))}
            for part in m.group(2).split(","):
                k, _, v = part.strip().rpartition(" ")
                try:
                    d[k] = float(v)
                except ValueError:
                    pass
            res[shape] = d  # later layers replace earlier ones
    return res


# ---- the benchmark ------------------------------------------------------------------------------

class Bench:
    def __init__(self, torch, gq, gh, observer, args):
        self.torch, self.gq, self.gh, self.observer, self.a = torch, gq, gh, observer, args
        self.dev = torch.device(args.device)
        from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
        self.QuantizationScheme = QuantizationScheme
        self.qargs = {}
        for ao in args.actorders:
            self.qargs[ao] = QuantizationArgs(num_bits=4, type="int", symmetric=False, strategy="group",
                                              group_size=128, actorder=None if ao == "none" else ao)

    def sync(self):
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize(self.dev)

    def free(self):
        gc.collect()
        if self.dev.type == "cuda":
            self.torch.cuda.empty_cache()

    def build_layer(self, shape):
        torch = self.torch
        g = torch.Generator(device=self.dev).manual_seed(1234)
        mods = {}
        for name, (out_f, in_f) in module_shapes(shape).items():
            lin = torch.nn.Linear(in_f, out_f, bias=False, device="meta")
            w = torch.empty((out_f, in_f), device=self.dev, dtype=torch.bfloat16)
            w.normal_(0.0, 1.0 / math.sqrt(in_f), generator=g)  # ~ kaiming scale, like trained projections
            lin.weight = torch.nn.Parameter(w, requires_grad=False)
            mods[name] = lin
        return mods

    def sample(self, buf, g):
        buf.normal_(0.0, 1.0, generator=g)
        return buf

    def hessians(self, mods, samples, seqlen):
        """Per distinct input: (H, n, seconds). One sample is generated, then accumulated (timed)."""
        torch, gh = self.torch, self.gh
        out = {}
        g = torch.Generator(device=self.dev).manual_seed(42)
        rep = {"qkv": "q_proj", "o": "o_proj", "gateup": "gate_proj", "down": "down_proj"}
        for inp in INPUTS:
            m = mods[rep[inp]]
            in_f = m.weight.shape[1]
            buf = torch.empty((1, seqlen, in_f), device=self.dev, dtype=torch.bfloat16)
            # warm-up (untimed): one sample into a scratch accumulator
            Hw = gh.make_empty_hessian(m, device=self.dev)
            nw = torch.zeros((), device=self.dev)
            gh.accumulate_hessian(self.sample(buf, g), m, Hw, nw)
            del Hw, nw
            H = gh.make_empty_hessian(m, device=self.dev)
            n = torch.zeros((), device=self.dev)
            t = 0.0
            for _ in range(samples):
                self.sample(buf, g)
                self.sync()
                t0 = time.perf_counter()
                H, n = gh.accumulate_hessian(buf, m, H, n)
                self.sync()
                t += time.perf_counter() - t0
            del buf
            out[inp] = (H, n, t)
            log(f"    hessian {inp:<6} {in_f:>6} x {in_f:<6} {samples} x {seqlen} tokens: {t:8.3f} s")
        return out

    def qparams(self, module, qargs):
        if self.observer is not None:
            obs = self.observer(qargs)
            obs(module.weight)
            return obs.get_qparams()
        from compressed_tensors.quantization.utils import calculate_qparams
        w = module.weight.unflatten(-1, (-1, qargs.group_size))
        scale, zp = calculate_qparams(w.amin(dim=-1), w.amax(dim=-1), qargs)
        return {"scale": scale, "zero_point": zp, "global_scale": None}

    def solve_batch(self, batch, qargs, hess):
        """What compress_module_list does for one batch (minus the write-back). Returns (Q, losses, rtn)."""
        gh, gq = self.gh, self.gq
        batch_qparams = [self.qparams(m, qargs) for m in batch]
        hd = {m: hess[m][0] for m in batch}
        nd = {m: hess[m][1] for m in batch}
        weights, hessians, scales, zps, gscales = gh.prepare_batch(batch, batch_qparams, hd, nd)
        return gq.quantize_weight(weights=weights, hessians=hessians, scale=scales, zero_point=zps,
                                  global_scale=gscales, quant_args=qargs, blocksize=self.a.block_size,
                                  percdamp=self.a.damp)

    def batches(self, mods, qargs, batching):
        order = [mods[n] for n in MODULES]
        for m in order:  # what QuantizationMixin attaches; assign_batches keys on it
            m.quantization_scheme = self.QuantizationScheme(targets=["Linear"], weights=qargs)
        return self.gh.assign_batches(order, None if batching == "none" else "auto", self.a.block_size)

    def solve(self, mods, hess_by_mod, qargs, batching, names, check=None):
        """Seconds for every batch; per batch (module names joined by +) its seconds. With a dict
        `check`, fills it per module with check()'s figures (outside the timed region)."""
        torch = self.torch
        total, per, rtn = 0.0, {}, 0
        for batch in self.batches(mods, qargs, batching):
            self.sync()
            t0 = time.perf_counter()
            with torch.no_grad():
                q, losses, fallback = self.solve_batch(batch, qargs, hess_by_mod)
            self.sync()
            dt = time.perf_counter() - t0
            total += dt
            rtn += int(fallback.sum().item())
            key = "+".join(names[m] for m in batch)
            per[key] = dt
            if check is not None:
                for i, m in enumerate(batch):
                    check[names[m]] = self.check(m, q[i], qargs, hess_by_mod[m])
            del q, losses, fallback
        return total, per, rtn

    def check(self, module, q, qargs, hn):
        """Sanity of one result (untimed): at most 2^bits distinct values per row and group, and the
        proxy loss tr(D H D^T) / tr(W H W^T) of GPTQ against round-to-nearest with the same qparams."""
        torch = self.torch
        with torch.no_grad():
            H = hn[0] / hn[1]
            W = module.weight.float()
            g = qargs.group_size
            srt = q.float().unflatten(-1, (-1, g)).sort(dim=-1).values
            distinct = int(((srt[..., 1:] != srt[..., :-1]).sum(-1) + 1).max().item())
            qp = self.qparams(module, qargs)
            s = qp["scale"].float().repeat_interleave(g, dim=-1)
            z = qp["zero_point"].float().repeat_interleave(g, dim=-1)
            from compressed_tensors.quantization.utils import calculate_range
            lo, hi = (float(v) for v in calculate_range(qargs, W.device))  # int4 asym: [-8, 7]
            rtn = ((torch.round(W / s) + z).clamp(lo, hi) - z) * s
            loss = lambda D: float(((D @ H) * D).sum().item())  # noqa: E731
            base = loss(W)
            return distinct, loss(q.float() - W) / base, loss(rtn - W) / base

    def run_shape(self, shape, samples, seqlen):
        torch = self.torch
        res = {}
        mods = self.build_layer(shape)
        names = {m: n for n, m in mods.items()}
        sh = module_shapes(shape)
        log(f"  {shape}: " + ", ".join(f"{n} {o}x{i}" for n, (o, i) in sh.items()))
        with torch.no_grad():
            hs = self.hessians(mods, samples, seqlen)
        res["hessian"] = sum(t for (_, _, t) in hs.values())
        res["hessian/mod"] = sum(hs[i][2] * HOOKS_PER_INPUT[i] for i in INPUTS)
        hess_by_mod = {m: (hs[INPUT_OF[n]][0], hs[INPUT_OF[n]][1]) for n, m in mods.items()}
        # warm-up (untimed): the smallest module through every actorder (Triton compiles per scheme),
        # counting the fused Triton block updates it makes (the timed runs use the unwrapped function)
        fused = getattr(self.gq, "fused_gptq_block_update", None)
        calls = [0]

        def counted(*a, **k):
            calls[0] += 1
            return fused(*a, **k)
        if fused is not None:
            self.gq.fused_gptq_block_update = counted
        try:
            for ao, qargs in self.qargs.items():
                for batch in self.batches(mods, qargs, "auto"):
                    if names[batch[0]] in ("k_proj", "v_proj"):
                        with torch.no_grad():
                            self.solve_batch(batch, qargs, hess_by_mod)
                        break
            self.sync()
        finally:
            if fused is not None:
                self.gq.fused_gptq_block_update = fused
        used = f"Triton, {calls[0]} fused calls" if calls[0] else "eager torch"
        log(f"    block update in the warm-up: {used}")
        for ao, qargs in self.qargs.items():
            for j, batching in enumerate(self.a.batching):
                chk = {} if self.a.check and j == 0 else None
                t, per, rtn = self.solve(mods, hess_by_mod, qargs, batching, names, chk)
                res[f"solve {ao} {batching}"] = t
                log(f"    solve {ao:<6} batching {batching:<4}: {t:8.3f} s  ("
                    + ", ".join(f"{k} {v:.3f}" for k, v in per.items())
                    + (f"; {rtn} module(s) fell back to RTN" if rtn else "") + ")")
                if chk:
                    log("      check (distinct values per row-group, rel. proxy loss GPTQ / RTN): " + ", ".join(
                        f"{n} {d} {lg:.4f}/{lr:.4f}" for n, (d, lg, lr) in chk.items()))
                    bad = [n for n, (d, lg, lr) in chk.items() if d > 2**4 or not lg < lr]
                    if bad:
                        log(f"      CHECK FAILED for {', '.join(bad)}: more than 16 values in a group or GPTQ "
                            "loss not below RTN")
                        res["check failed"] = True
                self.free()
        del hs, hess_by_mod, mods
        self.free()
        return res


def fmt_table(rows, headers):
    w = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]

    def line(r):
        return "  ".join(str(c).ljust(w[i]) if i < 2 else str(c).rjust(w[i]) for i, c in enumerate(r))
    return "\n".join([line(headers), line(["-" * x for x in w])] + [line(r) for r in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="llama-3-8b,llama-3-70b", help="comma-separated: " + ", ".join(SHAPES))
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="shape 'tiny', 4 samples x 64 tokens (a CPU smoke run)")
    ap.add_argument("--actorder", default="static,none", help="comma-separated: static, weight, none")
    ap.add_argument("--batching", default="auto,none", help="comma-separated: auto (GPTQModifier's default), none")
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--damp", type=float, default=0.01)
    ap.add_argument("--qshard-log", help="log with qshard's 'layer N phases' lines (scripts/bench_gpu_layers.sh)")
    ap.add_argument("--check", action="store_true",
                    help="untimed sanity of the results: <= 16 values per group, GPTQ proxy loss below RTN's")
    ap.add_argument("--import", dest="route", choices=("auto", "package", "direct"), default="auto")
    a = ap.parse_args()
    if a.tiny:
        a.shapes, a.samples, a.seqlen = "tiny", 4, 64
    a.actorders = [s for s in a.actorder.split(",") if s]
    a.batching = [s for s in a.batching.split(",") if s]
    shapes = [s for s in a.shapes.split(",") if s]
    for s in shapes:
        if s not in SHAPES:
            ap.error(f"unknown shape {s}")

    import torch
    t0 = time.perf_counter()
    gq, gh, observer, info = import_llmc(a.route)
    log(f"llm-compressor GPTQ: {info['route']} in {time.perf_counter() - t0:.1f} s")
    if "package_import_error" in info:
        log(f"  (package import failed: {info['package_import_error']})")
    log(f"  quantize_weight from {gq.__file__}")
    log(f"  weight qparams: {info['observer']}")
    log(f"  versions: {versions()}")
    from compressed_tensors.utils.triton import HAS_TRITON
    dev = torch.device(a.device)
    triton_on = (HAS_TRITON and dev.type == "cuda"
                 and os.environ.get("LLMCOMPRESSOR_DISABLE_GPTQ_TRITON", "0") != "1")
    backend = "Triton (_gptq_block_update_triton)" if triton_on else "eager torch (gptq_block_update)"
    log(f"  block update: {backend}"
        f"; fp32 matmul TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'} (torch default)")
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        log(f"  device: {p.name}, {p.total_memory / 2**30:.1f} GiB")
    log(f"  W4A16 asym g128, actorder {a.actorder}, block_size {a.block_size}, dampening {a.damp}, "
        f"batching {','.join(a.batching)}; {a.samples} samples x {a.seqlen} tokens")

    b = Bench(torch, gq, gh, observer, a)
    results = {}
    for s in shapes:
        try:
            results[s] = b.run_shape(s, a.samples, a.seqlen)
        except torch.cuda.OutOfMemoryError as e:
            log(f"  {s}: out of device memory, skipped ({str(e).splitlines()[0]})")
        except RuntimeError as e:
            if "out of memory" not in str(e).lower():
                raise
            log(f"  {s}: out of memory, skipped ({str(e).splitlines()[0]})")
        b.free()
        if dev.type == "cuda" and s in results:
            results[s]["peak GiB"] = torch.cuda.max_memory_allocated(dev) / 2**30
            torch.cuda.reset_peak_memory_stats(dev)

    # ---- tables ----
    rows = []
    for s, r in results.items():
        rows.append([s, "hessian (4 inputs)", f"{r['hessian']:.3f}"])
        rows.append([s, "hessian (per module, as its hooks run)", f"{r['hessian/mod']:.3f}"])
        for ao in a.actorders:
            for bt in a.batching:
                rows.append([s, f"solve {ao} ({'batched' if bt == 'auto' else 'per module'})",
                             f"{r[f'solve {ao} {bt}']:.3f}"])
        bt = a.batching[0]
        for ao in a.actorders:
            rows.append([s, f"layer total {ao} = hessian + solve", f"{r['hessian'] + r[f'solve {ao} {bt}']:.3f}"])
        for ao in a.actorders:
            rows.append([s, f"layer total {ao}, per-module hessians",
                         f"{r['hessian/mod'] + r[f'solve {ao} {bt}']:.3f}"])
        if "peak GiB" in r:
            rows.append([s, "peak device memory (GiB)", f"{r['peak GiB']:.2f}"])
    log("\nllm-compressor GPTQ, seconds per decoder layer (solve rows in the layer totals: "
        f"{'batched' if a.batching[0] == 'auto' else 'per module'})")
    log(fmt_table(rows, ["shape", "phase", "seconds"]))

    if a.qshard_log:
        q = read_qshard_log(a.qshard_log, shapes[0] if len(shapes) == 1 else None)
        bt = a.batching[0]
        rows = []
        for s, r in results.items():
            if s not in q:
                log(f"  (no qshard phases for {s} in {a.qshard_log})")
                continue
            d = q[s]
            qh = d.get("hessian", float("nan"))
            qs = d.get("factor", 0.0) + d.get("solve", 0.0)
            ratio = lambda x, y: f"{x / y:.1f}x" if y > 0 else "-"  # noqa: E731
            rows.append([s, "hessian", f"{r['hessian']:.3f}", f"{qh:.3f}", ratio(r["hessian"], qh)])
            rows.append([s, "hessian, per-module (llmc hooks)", f"{r['hessian/mod']:.3f}", f"{qh:.3f}",
                         ratio(r["hessian/mod"], qh)])
            for ao in a.actorders:
                ls = r[f"solve {ao} {bt}"]
                rows.append([s, f"solve {ao} vs factor+solve", f"{ls:.3f}", f"{qs:.3f}", ratio(ls, qs)])
            for ao in a.actorders:
                lt = r["hessian"] + r[f"solve {ao} {bt}"]
                rows.append([s, f"layer {ao} vs hessian+factor+solve", f"{lt:.3f}", f"{qh + qs:.3f}",
                             ratio(lt, qh + qs)])
            rows.append([s, f"(qshard whole layer {d['layer']}, incl. load/forward)", "", f"{d['sum']:.3f}", ""])
        if rows:
            log(f"\nllm-compressor vs qshard (qshard: last layer of each shape in {a.qshard_log}, act-order; "
                "ratio = llm-compressor s / qshard s)")
            log(fmt_table(rows, ["shape", "phase", "llmc s", "qshard s", "ratio"]))
    return 0 if results and not any(r.get("check failed") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
