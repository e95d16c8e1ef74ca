"""gptq_client.py --model IN --out OUT --method gptq|rtn --bits B --group-size G [--act-order] [--asym]
[--sharded] — loads the GPTQ v1 checkpoint that `qshard quantize` wrote to OUT the way vLLM and
transformers do (config.json quantization_config, quantize_config.json, the safetensors index when
sharded, then the tensors) with the PyPI `safetensors` package and numpy only, and checks it against
the input model IN and FORMATS.md §2:
  - configs: the keys/values §2.5 recommends; every key of IN/config.json kept unchanged;
  - every decoder Linear of IN became exactly qweight I32 [K*bits/32, N], qzeros I32 [G, N*bits/32],
    scales F16 [G, N], g_idx I32 [K] (§2.1) and its `.weight` is gone; every other tensor is
    byte-identical to IN, and nothing else is there;
  - unpacking (our own bit-string implementation of §2.2, 3-bit included) and the v1 zero+1
    convention (§2.3): sym zeros are 2^(bits-1) (4-bit words 0x77777777), asym zeros never wrap;
  - g_idx (§2.4): k // gs without act-order, a valid grouping with it (and not k // gs somewhere);
  - numerics: W = scale[g_idx] * (q - (z+1)) is close to IN's bf16 weights (bound derived in
    rtn_worst_bound); for --method rtn the codes, zeros and fp16 scales equal, bit for bit, the §2.3
    quantizer run here on IN's weights (that check sees any single corrupted byte of a Linear).
Exit 0 = all checks passed; 1 = failures (each printed)."""
import argparse
import json
import os
import re
import sys

import numpy as np
import safetensors
from safetensors import safe_open

failures = []
LINEAR = re.compile(r"^(model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj))\.weight$")
NP_DTYPE = {"F16": np.float16, "BF16": np.uint16, "F32": np.float32, "I32": np.int32, "I64": np.int64,
            "U8": np.uint8, "I8": np.int8}


def check(cond, what):
    if not cond:
        failures.append(what)
        if len(failures) <= 30:
            print("FAIL:", what)
    return cond


def load_json(path):
    with open(path) as fh:
        return json.load(fh)


# ---- files, as the loaders find them ----------------------------------------------------------------
def shard_files(d):
    """The safetensors files of d and the index's weight_map (None when single-file), as transformers
    resolves them: model.safetensors, else model.safetensors.index.json (FORMATS §1.4)."""
    single = os.path.join(d, "model.safetensors")
    index = os.path.join(d, "model.safetensors.index.json")
    if not os.path.exists(index):
        return ["model.safetensors"], None
    # transformers loads model.safetensors first when both exist: a stale one would shadow the shards.
    check(not os.path.exists(single), f"{d}: both model.safetensors and an index")
    idx = load_json(index)
    wm = idx["weight_map"]
    files = sorted(set(wm.values()))
    n = len(files)
    want = [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    check(files == want, f"{d}: shard names {files}, want {want}")
    check(n > 1, f"{d}: an index for a single shard")
    return files, idx


def load_tensors(d):
    """name -> (dtype string, shape list, raw bytes), read through the Rust deserializer (it validates
    the header: offsets, no holes, sizes). Also checks __metadata__ and the index."""
    files, idx = shard_files(d)
    tensors, where = {}, {}
    for fname in files:
        path = os.path.join(d, fname)
        with safe_open(path, framework="numpy") as f:
            md = f.metadata()
            # transformers rejects files whose metadata format is not pt/tf/flax/mlx (FORMATS §1.3).
            check(md is not None and md.get("format") == "pt", f"{path}: __metadata__ {md}")
        with open(path, "rb") as fh:
            for name, t in safetensors.deserialize(fh.read()):
                check(name not in tensors, f"{name} in two shards")
                tensors[name] = (t["dtype"], list(t["shape"]), bytes(t["data"]))
                where[name] = fname
    if idx is not None:
        check(idx["weight_map"] == where, f"{d}: weight_map does not match the shards' contents")
        total = sum(len(t[2]) for t in tensors.values())
        check(idx.get("metadata", {}).get("total_size") == total,
              f"{d}: index total_size {idx.get('metadata')} != {total}")
    return tensors


def as_array(t):
    dt, shape, data = t
    a = np.frombuffer(data, dtype=np.dtype(NP_DTYPE[dt]).newbyteorder("<")).reshape(shape)
    if dt == "BF16":  # bf16 bits are the high half of an fp32
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a


# ---- FORMATS §2.2: unpacking -------------------------------------------------------------------------
def unpack_axis0(words, bits):
    """words [R, C] int32 -> values [R*32/bits, C] int64. The words of a column, in row order, are
    read as one little-endian bit string (word r holds bits [32r, 32r+32)); value i is bits
    [bits*i, bits*i + bits). For bits 2/4/8 this is §2.2's per-word shift; for 3 bits it is the
    96-bit / 32-value scheme (values 10 and 21 straddle words). No shifts by hand: numpy's
    unpackbits on the little-endian bytes gives the bit string directly."""
    R, C = words.shape
    w = np.ascontiguousarray(words.T).astype("<u4", copy=False).view(np.uint8)  # [C, 4R] LE bytes
    bitstr = np.unpackbits(w, axis=1, bitorder="little")  # [C, 32R]
    n = 32 * R // bits
    weights = 1 << np.arange(bits, dtype=np.int64)
    return (bitstr.reshape(C, n, bits).astype(np.int64) @ weights).T  # [n, C]


# ---- FORMATS §2.3: the quantizer (AutoGPTQ find_params, perchannel, no MSE), float32 like qshard -----
def grid(xmin_raw, xmax_raw, bits, sym):
    """Per-group scale (float32 value of the fp16 scale), fp16 bits, and integer zero."""
    maxq = np.float32(2 ** bits - 1)
    xmin = np.minimum(xmin_raw, np.float32(0))
    xmax = np.maximum(xmax_raw, np.float32(0))
    if sym:
        xmax = np.maximum(np.abs(xmin), xmax)
        xmin = np.where(xmin < 0, -xmax, xmin)
    both0 = (xmin == 0) & (xmax == 0)
    xmin = np.where(both0, np.float32(-1), xmin).astype(np.float32)
    xmax = np.where(both0, np.float32(1), xmax).astype(np.float32)
    with np.errstate(over="ignore"):
        s16 = ((xmax - xmin) / maxq).astype(np.float16)
    # A zero fp16 scale becomes the smallest subnormal, an overflow the largest finite (quant/grid_int.h).
    s16 = np.where(s16 == 0, np.float16(2.0 ** -24), s16)
    s16 = np.where(np.isinf(s16), np.float16(65504), s16).astype(np.float16)
    s = s16.astype(np.float32)
    if sym:
        zero = np.full(s.shape, (maxq + 1) / 2, dtype=np.float32)
    else:  # v1 checkpoints: zero >= 1 so that the stored zero - 1 never wraps (quant/grid.h min_zero)
        zero = np.clip(np.rint(-xmin / s), 1, maxq).astype(np.float32)
    return s, s16.view(np.uint16), zero


def group_minmax(W, g_idx, G):
    """Column-group min and max of W [N, K] over the columns k with g_idx[k] == g: two [N, G]."""
    mn = np.stack([W[:, g_idx == g].min(axis=1) for g in range(G)], axis=1)
    mx = np.stack([W[:, g_idx == g].max(axis=1) for g in range(G)], axis=1)
    return mn.astype(np.float32), mx.astype(np.float32)


def rtn_worst_bound(W, g_idx, G, bits, sym):
    """Relative Frobenius error bound of round-to-nearest on W with this grouping. The grid step of
    group (n, g) is s = range/maxq (the §2.3 quantizer on IN's weights); rounding to the nearest
    grid point misses by at most s/2 per element (the grid covers [xmin, xmax], so no clamping), so
    ||W_rtn - W||_F <= sqrt(sum_nk (s[n, g_idx k]/2)^2). GPTQ feeds each column's rounding error
    into the not-yet-quantized columns, so its own codes are not nearest-rounded and single
    elements can move further; it minimizes the OUTPUT error, and in weight space its total error
    stays close to RTN's (typically 1.0-1.5x the RTN error, itself ~1/sqrt(3) of this worst case
    for uniform rounding errors). The tests allow 2x this worst-case bound for GPTQ: a wrong
    unpacking, zero convention, scale row or g_idx gives errors of the order of ||W|| (>> bound)."""
    mn, mx = group_minmax(W, g_idx, G)
    s, _, _ = grid(mn, mx, bits, sym)
    per_elem = (s[:, g_idx] / 2).astype(np.float64)  # [N, K]
    return float(np.sqrt((per_elem ** 2).sum()) / np.linalg.norm(W.astype(np.float64)))


# ---- checks ---------------------------------------------------------------------------------------
def check_configs(a, cfg_in, cfg_out, qcfg_file):
    qc = cfg_out.get("quantization_config")
    if not check(isinstance(qc, dict), "config.json has no quantization_config"):
        return
    for k, v in cfg_in.items():
        check(cfg_out.get(k) == v, f"config.json: {k} = {cfg_out.get(k)!r}, input had {v!r}")
    # Static act-order groups store the layout of no act-order: desc_act false (FORMATS §2.4).
    want = {"quant_method": "gptq", "bits": a.bits, "group_size": a.group_size, "desc_act": a.act_order == "group",
            "sym": not a.asym, "checkpoint_format": "gptq", "static_groups": a.act_order == "static"}
    for k, v in want.items():
        check(qc.get(k) == v and type(qc.get(k)) is type(v),
              f"quantization_config.{k} = {qc.get(k)!r}, want {v!r}")
        check(qcfg_file.get(k) == v and type(qcfg_file.get(k)) is type(v),
              f"quantize_config.json {k} = {qcfg_file.get(k)!r}, want {v!r}")
    for src, c in (("quantization_config", qc), ("quantize_config.json", qcfg_file)):
        dp = c.get("damp_percent")
        check(isinstance(dp, float) and 0 < dp < 1, f"{src}.damp_percent = {dp!r}, want in (0, 1)")
    if "format" in qc:  # GPTQModel's canonical key: must agree with checkpoint_format
        check(qc["format"] == "gptq", f"quantization_config.format = {qc['format']!r}")


def check_g_idx(a, name, g_idx, K, G):
    if a.act_order != "group" or a.group_size == -1:
        gs = a.group_size if a.group_size > 0 else K
        return check(np.array_equal(g_idx, np.arange(K) // gs), f"{name}: g_idx is not k // {gs}")
    # act-order: groups over permuted positions, so any assignment with G groups of gs columns
    # (the last possibly fewer) is valid; scales row g = g-th group in quantization order.
    if not check(g_idx.min() >= 0 and g_idx.max() < G, f"{name}: g_idx outside [0, {G})"):
        return False
    counts = np.bincount(g_idx, minlength=G)
    full = counts == a.group_size
    return check(full.sum() >= G - 1 and counts.sum() == K and (counts > 0).all(),
                 f"{name}: act-order group sizes {sorted(set(counts.tolist()))}, want {a.group_size}")


def check_rtn_exact(name, W, q, z, s16_bits, g_idx, G, bits, sym):
    """RTN: the checkpoint holds exactly the §2.3 quantizer's output on IN's weights (float32, round
    half to even, fp16 scales rounded before the codes are computed): zero tolerance."""
    mn, mx = group_minmax(W, g_idx, G)
    s, s_bits, zero = grid(mn, mx, bits, sym)  # [N, G]
    check(np.array_equal(s_bits.T, s16_bits), f"{name}: fp16 scales differ from the §2.3 grid "
          f"({int((s_bits.T != s16_bits).sum())} of {s_bits.size})")
    check(np.array_equal(zero.T.astype(np.int64), z + 1), f"{name}: zeros differ from the §2.3 grid")
    maxq = np.float32(2 ** bits - 1)
    codes = np.clip(np.rint(W / s[:, g_idx]) + zero[:, g_idx], 0, maxq).astype(np.int64)  # [N, K]
    bad = int((codes != q.T).sum())
    check(bad == 0, f"{name}: {bad} of {codes.size} codes differ from round-to-nearest")


def check_linear(a, name, tin, tout, stats):
    N, K = tin[1]
    bits = a.bits
    G = 1 if a.group_size == -1 else -(-K // a.group_size)
    want = {"qweight": ("I32", [K * bits // 32, N]), "qzeros": ("I32", [G, N * bits // 32]),
            "scales": ("F16", [G, N]), "g_idx": ("I32", [K])}
    for suffix, (dt, shape) in want.items():
        t = tout.get(f"{name}.{suffix}")
        if not check(t is not None, f"{name}.{suffix} missing"):
            return
        if not check(t[0] == dt and t[1] == shape, f"{name}.{suffix} is {t[0]} {t[1]}, want {dt} {shape}"):
            return
    check(f"{name}.weight" not in tout, f"{name}.weight still present")
    qweight, qzeros, scales, g_idx = (as_array(tout[f"{name}.{s}"]) for s in want)
    q = unpack_axis0(qweight, bits)  # [K, N] codes
    z = unpack_axis0(np.ascontiguousarray(qzeros.T), bits).T  # [G, N] stored zeros (zero - 1)
    maxq = 2 ** bits - 1
    if not a.asym:
        check((z == 2 ** (bits - 1) - 1).all(), f"{name}: sym stored zeros are not 2^(bits-1) - 1")
        word = {2: 0x55555555, 4: 0x77777777, 8: 0x7F7F7F7F}.get(bits)
        if word is not None:
            check((qzeros.view(np.uint32) == word).all(), f"{name}: sym qzeros words are not {word:#010x}")
    else:  # a true zero of 0 would be stored as -1, i.e. maxq, and load as maxq + 1 (v1 wrap)
        check((z < maxq).all(), f"{name}: {int((z == maxq).sum())} stored zeros wrapped (== maxq)")
    sc = scales.astype(np.float32)
    check(np.isfinite(sc).all() and (sc > 0).all(), f"{name}: scales not finite and positive")
    if not check_g_idx(a, name, g_idx, K, G):
        return
    stats["act_order_moved"] |= not np.array_equal(g_idx, np.arange(K) // max(a.group_size, 1))
    W = as_array(tin)  # [N, K] original (bf16 -> f32 exactly)
    Wq = sc[g_idx, :].T * (q.T - (z[g_idx, :].T + 1)).astype(np.float32)  # [N, K], v1: zero = z + 1
    rel = float(np.linalg.norm((Wq - W).astype(np.float64)) / np.linalg.norm(W.astype(np.float64)))
    bound = rtn_worst_bound(W, g_idx, G, bits, not a.asym)
    factor = 2.0 if a.method == "gptq" else 1.0  # see rtn_worst_bound
    check(rel < factor * bound, f"{name}: relative error {rel:.4g} >= {factor} x RTN bound {bound:.4g}")
    if a.method == "rtn":
        check_rtn_exact(name, W, q, z, scales.view(np.uint16), g_idx, G, bits, not a.asym)
    stats["ratio"].append(rel / bound)
    stats["rel"].append(rel)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--method", choices=("gptq", "rtn"), required=True)
    p.add_argument("--bits", type=int, required=True)
    p.add_argument("--group-size", type=int, required=True)
    p.add_argument("--act-order", choices=("static", "group"), default=None,
                   help="static: groups on contiguous columns (g_idx = k // gs, desc_act false); group: permuted")
    p.add_argument("--asym", action="store_true")
    p.add_argument("--sharded", action="store_true", help="expect an index and several shards")
    a = p.parse_args()
    cfg_in = load_json(os.path.join(a.model, "config.json"))
    cfg_out = load_json(os.path.join(a.out, "config.json"))
    check_configs(a, cfg_in, cfg_out, load_json(os.path.join(a.out, "quantize_config.json")))
    check(os.path.exists(os.path.join(a.out, "model.safetensors.index.json")) == a.sharded,
          f"{a.out}: index present != expected ({a.sharded})")
    for f in ("tokenizer.model", "generation_config.json"):
        if os.path.exists(os.path.join(a.model, f)):
            with open(os.path.join(a.model, f), "rb") as x, open(os.path.join(a.out, f), "rb") as y:
                check(x.read() == y.read(), f"{f} not copied unchanged")
    # Every shape of this model packs (K % 32 == 0, N * bits % 32 == 0): nothing may be kept dense.
    unpacked = load_json(os.path.join(a.out, "quant_report.json")).get("unpacked")
    check(unpacked == [], f"quant_report.json lists modules kept dense: {unpacked}")
    tin, tout = load_tensors(a.model), load_tensors(a.out)
    linears = sorted(m.group(1) for m in map(LINEAR.match, tin) if m)
    check(len(linears) == 7 * cfg_in["num_hidden_layers"], f"found {len(linears)} decoder linears")
    stats = {"ratio": [], "rel": [], "act_order_moved": False}
    expected = set()
    for name in linears:
        check_linear(a, name, tin[f"{name}.weight"], tout, stats)
        expected |= {f"{name}.{s}" for s in ("qweight", "qzeros", "scales", "g_idx")}
    for name, t in tin.items():
        if LINEAR.match(name) is None:
            expected.add(name)
            check(tout.get(name) == t, f"{name}: not byte-identical to the input")
    check(set(tout) == expected, f"unexpected tensors {sorted(set(tout) - expected)[:5]}, "
          f"missing {sorted(expected - set(tout))[:5]}")
    if a.act_order == "group" and a.group_size != -1:
        check(stats["act_order_moved"], "act-order=group: every g_idx is k // gs (no column was reordered)")
    if stats["rel"]:
        print(f"gptq_client: {a.method} {a.bits}-bit g{a.group_size}{' act-order=' + a.act_order if a.act_order else ''}"
              f"{' asym' if a.asym else ' sym'}: {len(linears)} linears, rel. weight error "
              f"{min(stats['rel']):.4f}..{max(stats['rel']):.4f}, / RTN worst-case bound "
              f"{min(stats['ratio']):.3f}..{max(stats['ratio']):.3f}")
    print(f"gptq_client: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
