"""check_trtllm.py --out OUT --model IN --tp T — reads the TensorRT-LLM checkpoint that
`qshard quantize --tp T` wrote to OUT/trtllm with the PyPI `safetensors` package and numpy only, and
checks it against the GPTQ checkpoint in OUT and FORMATS.md §6.1 (the layout src/formats/trtllm.c documents):
  - OUT/trtllm holds exactly config.json and rank0..rank{T-1}.safetensors;
  - config.json: architecture, dtype, sizes from IN/config.json, mapping {world_size: T, tp_size: T,
    pp_size: 1}, quantization {quant_algo W4A16_GPTQ, group_size, has_zero_point, pre_quant_scale,
    kv_cache_quant_algo, exclude_modules};
  - every rank file has exactly the §6.1 names, with the dtypes and per-rank shapes of the split;
  - re-assembled — q/k/v cut out of the fused qkv (duplicated KV heads identical across the ranks
    that share them), column shards concatenated on N (qzeros on packed words), row shards on K
    (g_idx shifted back by each shard's first group), lm_head's vocab rows concatenated and the
    zero padding dropped — every qweight, qzeros, scales (weights_scaling_factor), g_idx and dense
    tensor equals the GPTQ checkpoint's byte for byte, and every GPTQ tensor is used;
  - `zero` equals fp16((7 - qz) * scale), TensorRT-LLM's GPTQ import formula, bit for bit.
Exit 0 = all checks passed; 1 = failures (each printed)."""
import argparse
import json
import os
import sys

import numpy as np
import safetensors
from safetensors import safe_open

failures = []
NP_DTYPE = {"F16": np.uint16, "BF16": np.uint16, "F32": np.float32, "I32": np.int32}  # F16 as bits: exact compare


def check(cond, what):
    if not cond:
        failures.append(what)
        if len(failures) <= 30:
            print("FAIL:", what)
    return cond


def load_json(path):
    with open(path) as fh:
        return json.load(fh)


def read_file(path):
    """name -> (dtype, numpy array) through the Rust deserializer (which validates the header)."""
    with safe_open(path, framework="numpy") as f:
        md = f.metadata()
        check(md is not None and md.get("format") == "pt", f"{path}: __metadata__ {md}")
    out = {}
    with open(path, "rb") as fh:
        for name, t in safetensors.deserialize(fh.read()):
            dt = t["dtype"]
            if not check(dt in NP_DTYPE, f"{path}: {name}: dtype {dt}"):
                continue
            out[name] = (dt, np.frombuffer(bytes(t["data"]), dtype=NP_DTYPE[dt]).reshape(t["shape"]))
    return out


def read_hf(d):
    single = os.path.join(d, "model.safetensors")
    if os.path.exists(single):
        return read_file(single)
    idx = load_json(os.path.join(d, "model.safetensors.index.json"))
    out = {}
    for f in sorted(set(idx["weight_map"].values())):
        out.update(read_file(os.path.join(d, f)))
    return out


def check_config(cfg, hf, tp, gs):
    torch_dtype = hf.get("torch_dtype", hf.get("dtype"))
    want = {
        "architecture": "LlamaForCausalLM",
        "dtype": torch_dtype,
        "vocab_size": hf["vocab_size"],
        "hidden_size": hf["hidden_size"],
        "num_hidden_layers": hf["num_hidden_layers"],
        "num_attention_heads": hf["num_attention_heads"],
        "num_key_value_heads": hf.get("num_key_value_heads", hf["num_attention_heads"]),
        "intermediate_size": hf["intermediate_size"],
        "max_position_embeddings": hf["max_position_embeddings"],
        "hidden_act": "silu",
        "position_embedding_type": "rope_gpt_neox",
        "tie_word_embeddings": hf.get("tie_word_embeddings", False),
        "mapping": {"world_size": tp, "tp_size": tp, "pp_size": 1},
    }
    for k, v in want.items():
        check(cfg.get(k) == v, f"config.json {k} = {cfg.get(k)!r}, want {v!r}")
    check(abs(cfg.get("norm_epsilon", 0) - hf["rms_norm_eps"]) <= 1e-12, f"norm_epsilon {cfg.get('norm_epsilon')}")
    check(cfg.get("rotary_base") == float(hf.get("rope_theta", 10000.0)), f"rotary_base {cfg.get('rotary_base')}")
    q = cfg.get("quantization", {})
    wantq = {"quant_algo": "W4A16_GPTQ", "group_size": gs, "has_zero_point": True, "pre_quant_scale": False,
             "kv_cache_quant_algo": None, "exclude_modules": None}
    for k, v in wantq.items():
        check(k in q and q[k] == v, f"config.json quantization.{k} = {q.get(k, '(absent)')!r}, want {v!r}")


def unpack4(words):
    """[R, C] int32 -> [R, 8C] codes, value j of a word in bits [4j, 4j+4) (FORMATS §2.2)."""
    w = words.astype(np.uint32)
    return np.stack([(w >> (4 * j)) & 0xF for j in range(8)], axis=-1).reshape(w.shape[0], -1)


def check_zero(rank_t, prefix):
    qz = unpack4(rank_t[prefix + ".qzeros"][1]).astype(np.float32)
    s = rank_t[prefix + ".weights_scaling_factor"][1].view(np.float16).astype(np.float32)
    want = ((7.0 - qz) * s).astype(np.float16).view(np.uint16)  # exact in fp32, one rounding (RNE)
    got = rank_t[prefix + ".zero"][1]
    check(got.shape == want.shape and np.array_equal(got, want), f"{prefix}.zero != fp16((7 - qz) * scale)")


class Assembler:
    """A [rows, cols] array filled from shards; a column range written twice must match (dup KV)."""

    def __init__(self, rows, cols, dtype, what):
        self.a = np.zeros((rows, cols), dtype=dtype)
        self.seen = np.zeros(cols, dtype=bool)
        self.what = what

    def put(self, c0, piece):
        w = piece.shape[1]
        if not check(piece.shape[0] == self.a.shape[0] and c0 + w <= self.a.shape[1],
                     f"{self.what}: piece {piece.shape} at column {c0}"):
            return
        old = self.a[:, c0:c0 + w]
        if self.seen[c0:c0 + w].any():
            check(np.array_equal(old, piece), f"{self.what}: duplicated KV head columns {c0}.. differ between ranks")
        self.a[:, c0:c0 + w] = piece
        self.seen[c0:c0 + w] = True

    def result(self):
        check(self.seen.all(), f"{self.what}: columns never written")
        return self.a


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tp", type=int, required=True)
    args = ap.parse_args()
    T, d = args.tp, os.path.join(args.out, "trtllm")
    hfc = load_json(os.path.join(args.model, "config.json"))
    qc = load_json(os.path.join(args.out, "config.json"))["quantization_config"]
    gs = qc["group_size"]
    want_files = sorted(["config.json"] + [f"rank{t}.safetensors" for t in range(T)])
    check(sorted(os.listdir(d)) == want_files, f"{d}: {sorted(os.listdir(d))}, want {want_files}")
    check_config(load_json(os.path.join(d, "config.json")), hfc, T, gs)

    hf = read_hf(args.out)
    ranks = [read_file(os.path.join(d, f"rank{t}.safetensors")) for t in range(T)]
    used = set()
    H, I, L = hfc["hidden_size"], hfc["intermediate_size"], hfc["num_hidden_layers"]
    nh = hfc["num_attention_heads"]
    nkv = hfc.get("num_key_value_heads", nh)
    hd = hfc.get("head_dim") or H // nh
    qw, kw = nh // T * hd, max(nkv // T, 1) * hd
    expected = [set() for _ in range(T)]

    def get(t, name, dtype, shape):
        expected[t].add(name)
        if not check(name in ranks[t], f"rank{t}: {name} missing"):
            return None
        dt, a = ranks[t][name]
        check(dt == dtype and list(a.shape) == list(shape), f"rank{t}: {name} {dt} {list(a.shape)}, want {dtype} {shape}")
        return a

    def hf_t(name):
        used.add(name)
        if not check(name in hf, f"GPTQ checkpoint lacks {name}"):
            return None
        return hf[name]

    def same(a, hfname, what):
        ref = hf_t(hfname)
        if a is not None and ref is not None:
            check(a.dtype == ref[1].dtype and a.shape == ref[1].shape and np.array_equal(a, ref[1]),
                  f"{what} != {hfname}")

    def linear_tensors(t, p, K, G, N):
        return {"qweight": get(t, p + ".qweight", "I32", [K // 8, N]), "qzeros": get(t, p + ".qzeros", "I32", [G, N // 8]),
                "scales": get(t, p + ".weights_scaling_factor", "F16", [G, N]), "zero": get(t, p + ".zero", "F16", [G, N]),
                "g_idx": get(t, p + ".g_idx", "I32", [K])}

    def column(layer, trt, hfmods, K, N_parts):
        """Column-parallel (qkv: several modules fused). hfmods: [(hf module, N, cols(t) -> (c0, w, d0))]."""
        G = K // gs
        Nt = sum(N_parts)
        asm = {m: {k: Assembler(r, c, dt, f"layer {layer} {m}.{k}") for k, (r, c, dt) in
                   {"qweight": (K // 8, n, np.int32), "qzeros": (G, n // 8, np.int32), "scales": (G, n, np.uint16)}.items()}
               for m, n, _ in hfmods}
        for t in range(T):
            p = f"transformer.layers.{layer}.{trt}"
            x = linear_tensors(t, p, K, G, Nt)
            if any(v is None for v in x.values()):
                continue
            check_zero(ranks[t], p)
            for m, n, cols in hfmods:
                c0, w, d0 = cols(t)
                asm[m]["qweight"].put(c0, x["qweight"][:, d0:d0 + w])
                asm[m]["qzeros"].put(c0 // 8, x["qzeros"][:, d0 // 8:(d0 + w) // 8])
                asm[m]["scales"].put(c0, x["scales"][:, d0:d0 + w])
                same(x["g_idx"], f"model.layers.{layer}.{m}.g_idx", f"rank{t} {p}.g_idx")
        for m, n, _ in hfmods:
            for k, hk in (("qweight", "qweight"), ("qzeros", "qzeros"), ("scales", "scales")):
                same(asm[m][k].result(), f"model.layers.{layer}.{m}.{hk}", f"re-assembled {trt} ({m}) {k}")

    def row(layer, trt, m, K, N):
        Kt = K // T
        Gt = Kt // gs
        parts = {k: [] for k in ("qweight", "qzeros", "scales", "g_idx")}
        for t in range(T):
            p = f"transformer.layers.{layer}.{trt}"
            x = linear_tensors(t, p, Kt, Gt, N)
            if any(v is None for v in x.values()):
                return
            check_zero(ranks[t], p)
            check(np.array_equal(x["g_idx"], np.arange(Kt) // gs), f"rank{t} {p}.g_idx is not shard-local k // {gs}")
            for k in ("qweight", "qzeros", "scales"):
                parts[k].append(x[k])
            parts["g_idx"].append(x["g_idx"] + t * Gt)
        for k in ("qweight", "qzeros", "scales", "g_idx"):
            same(np.concatenate(parts[k], axis=0), f"model.layers.{layer}.{m}.{k}", f"re-assembled {trt} {k}")

    for layer in range(L):
        def qkv_cols(part):
            def f(t):
                if part == 0:
                    return t * qw, qw, 0
                h0 = t * nkv // T
                return h0 * hd, kw, qw if part == 1 else qw + kw
            return f
        column(layer, "attention.qkv", [("self_attn.q_proj", nh * hd, qkv_cols(0)),
                                        ("self_attn.k_proj", nkv * hd, qkv_cols(1)),
                                        ("self_attn.v_proj", nkv * hd, qkv_cols(2))], H, [qw, kw, kw])
        for trt, m in (("mlp.fc", "mlp.gate_proj"), ("mlp.gate", "mlp.up_proj")):  # §6: fc = gate, gate = up
            column(layer, trt, [(m, I, lambda t: (t * (I // T), I // T, 0))], H, [I // T])
        row(layer, "attention.dense", "self_attn.o_proj", nh * hd, H)
        row(layer, "mlp.proj", "mlp.down_proj", I, H)
        for trt, m in (("input_layernorm", "input_layernorm"), ("post_layernorm", "post_attention_layernorm")):
            for t in range(T):
                ref = hf.get(f"model.layers.{layer}.{m}.weight")
                a = get(t, f"transformer.layers.{layer}.{trt}.weight", ref[0] if ref else "?", [H])
                same(a, f"model.layers.{layer}.{m}.weight", f"rank{t} {trt}")

    emb = hf.get("model.embed_tokens.weight")
    for t in range(T):
        same(get(t, "transformer.vocab_embedding.weight", emb[0], list(emb[1].shape)), "model.embed_tokens.weight",
             f"rank{t} vocab_embedding")
        same(get(t, "transformer.ln_f.weight", hf["model.norm.weight"][0], [H]), "model.norm.weight", f"rank{t} ln_f")
    head = "lm_head.weight" if "lm_head.weight" in hf else "model.embed_tokens.weight"
    V = hf[head][1].shape[0]
    per = -(-V // T)
    pieces = [get(t, "lm_head.weight", hf[head][0], [per, H]) for t in range(T)]
    if all(p is not None for p in pieces):
        full = np.concatenate(pieces, axis=0)
        check(not full[V:].any(), "lm_head padding rows are not zero")
        same(np.ascontiguousarray(full[:V]), head, "re-assembled lm_head")

    for t in range(T):
        extra = sorted(set(ranks[t]) - expected[t])
        check(not extra, f"rank{t}: unexpected tensors {extra[:5]}")
    unused = sorted(set(hf) - used)
    check(not unused, f"GPTQ tensors not in any rank file: {unused[:5]}")
    n = sum(len(r) for r in ranks)
    if failures:
        print(f"check_trtllm: {len(failures)} failures")
        return 1
    print(f"check_trtllm: tp {T}: {n} tensors in {T} rank files re-assemble to the {len(hf)} GPTQ tensors exactly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
