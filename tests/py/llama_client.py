#!/usr/bin/env python3
"""llama.cpp itself (llama-cpp-python) and gguf-py read qshard's GGUF files.

  same   --ref F32.gguf --ours X.gguf --ftype N [--imatrix imatrix.gguf]
         llama.cpp's own quantizer (llama_model_quantize, i.e. llama-quantize) turns qshard's F32 file
         into file type N; every tensor of qshard's X.gguf must have the same name, type, shape and
         bytes, and every key the same value. With --imatrix, llama-quantize gets the imatrix (in_sum2 /
         counts, as its tool loads it) when this llama-cpp-python exposes it, else the case is skipped
         with a note (the per-row bytes with importance are proven by tests/py/ggml_oracle.py).
  ppl    --model X.gguf --data F.h5 --seqlen L --windows W --expect P --rtol R
         llama.cpp runs the file (CPU) and scores the first W windows of L tokens as `qshard eval` does
         (window i = tokens [i*L, (i+1)*L), tokens 1.. predicted); its perplexity must be P within R.
  greedy --model X.gguf --ids greedy_ids.json --n N
         llama.cpp's greedy decoding from BOS reproduces the first N golden ids.
"""
import argparse
import ctypes
import json
import math
import os
import sys
import tempfile

import numpy as np

import gguf


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def fields(r):
    out = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        out[k] = (tuple(int(t) for t in f.types), [bytes(f.parts[i]) for i in f.data])
    return out


def imatrix_entries(path):
    """(name, in_sum2 / counts) per weight, as llama-quantize's tool loads an imatrix GGUF."""
    r = gguf.GGUFReader(path)
    by = {t.name: t for t in r.tensors}
    out = []
    for name, t in sorted(by.items()):
        if name.endswith(".in_sum2"):
            w = name[: -len(".in_sum2")]
            count = np.float32(np.asarray(by[w + ".counts"].data).reshape(-1)[0])
            out.append((w.encode(), (np.asarray(t.data, dtype=np.float32).reshape(-1) / count).astype(np.float32)))
    return out


def cmd_same(a):
    import llama_cpp

    out = os.path.join(tempfile.mkdtemp(), "llama-quantize.gguf")
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = a.ftype
    p.nthread = 2
    keep = []
    if a.imatrix:
        if not hasattr(llama_cpp, "llama_model_imatrix_data"):
            print(f"SKIP imatrix case: llama-cpp-python {llama_cpp.__version__} passes no imatrix through its C API")
            return
        keep = imatrix_entries(a.imatrix)
        arr = (llama_cpp.llama_model_imatrix_data * (len(keep) + 1))()
        for i, (n, v) in enumerate(keep):
            arr[i].name = n
            arr[i].data = v.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            arr[i].size = v.size
        p.imatrix = ctypes.cast(arr, type(p.imatrix))
    rc = llama_cpp.llama_model_quantize(a.ref.encode(), out.encode(), ctypes.byref(p))
    if rc != 0:
        fail(f"llama_model_quantize({a.ref}, ftype {a.ftype}) returned {rc}")
    theirs, ours = gguf.GGUFReader(out), gguf.GGUFReader(a.ours)
    ft, fo = fields(theirs), fields(ours)
    if set(ft) != set(fo):
        fail(f"keys differ: only llama-quantize {sorted(set(ft) - set(fo))}, only qshard {sorted(set(fo) - set(ft))}")
    for k in ft:
        if ft[k] != fo[k]:
            fail(f"key {k}: llama-quantize {ft[k][1][:4]} != qshard {fo[k][1][:4]}")
    tt = {t.name: t for t in theirs.tensors}
    to = {t.name: t for t in ours.tensors}
    if set(tt) != set(to):
        fail(f"tensors differ: {sorted(set(tt) ^ set(to))}")
    n_bytes, types = 0, {}
    for name, t in tt.items():
        o = to[name]
        if t.tensor_type != o.tensor_type or list(t.shape) != list(o.shape):
            fail(f"{name}: llama-quantize {t.tensor_type.name} {list(t.shape)} != qshard {o.tensor_type.name} {list(o.shape)}")
        bt, bo = np.asarray(t.data).tobytes(), np.asarray(o.data).tobytes()
        if bt != bo:
            d = next(i for i in range(min(len(bt), len(bo))) if bt[i] != bo[i]) if len(bt) == len(bo) else -1
            fail(f"{name} ({t.tensor_type.name}): bytes differ (first at byte {d} of {len(bt)})")
        n_bytes += len(bt)
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    print(f"same as llama-quantize: {len(tt)} tensors, {n_bytes} bytes identical, types {types}, {len(ft)} keys"
          + (f" (imatrix: {len(keep)} entries)" if a.imatrix else ""))


def load(model, n_ctx):
    import llama_cpp

    # fp32 K/V cache (GGML_TYPE_F32 = 0; llama.cpp's default is fp16): the only differences left from
    # `qshard eval` are summation order and, for quantized weights, the 8-bit activations of its matmuls
    return llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_batch=n_ctx, n_threads=2, logits_all=True,
                           verbose=False, seed=0, type_k=0, type_v=0)


def cmd_ppl(a):
    import h5py

    ids = np.asarray(h5py.File(a.data, "r")["input_ids"][: a.seqlen * a.windows], dtype=np.int64)
    llm = load(a.model, a.seqlen)
    nll, n = 0.0, 0
    for w in range(a.windows):
        toks = ids[w * a.seqlen:(w + 1) * a.seqlen].tolist()
        llm.reset()
        llm.eval(toks)
        logits = np.asarray(llm.scores[: len(toks)], dtype=np.float64)
        m = logits.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
        for i in range(len(toks) - 1):
            nll += lse[i] - logits[i, toks[i + 1]]
            n += 1
    ppl = math.exp(nll / n)
    rel = abs(ppl - a.expect) / a.expect
    print(f"llama.cpp ppl {ppl:.6f} over {n} predictions; qshard eval {a.expect:.6f}; rel diff {rel:.2e} (tol {a.rtol})")
    if not rel <= a.rtol:
        fail(f"{a.model}: llama.cpp ppl {ppl} vs qshard {a.expect}")


def cmd_greedy(a):
    gold = json.load(open(a.ids))
    gold = gold["generated_ids"] if isinstance(gold, dict) else gold
    llm = load(a.model, 512)
    toks = [gold[0]]
    llm.reset()
    llm.eval(toks)
    while len(toks) < a.n:
        nxt = int(np.argmax(np.asarray(llm.scores[len(toks) - 1])))
        toks.append(nxt)
        llm.eval([nxt])
    if toks != list(gold[: a.n]):
        d = next(i for i in range(a.n) if toks[i] != gold[i])
        fail(f"greedy ids differ from the golden ones at position {d}: {toks[d:d + 8]} vs {gold[d:d + 8]}")
    print(f"llama.cpp greedy decoding reproduces the first {a.n} golden ids")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("same")
    s.add_argument("--ref", required=True)
    s.add_argument("--ours", required=True)
    s.add_argument("--ftype", type=int, required=True)
    s.add_argument("--imatrix")
    p = sub.add_parser("ppl")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--seqlen", type=int, required=True)
    p.add_argument("--windows", type=int, required=True)
    p.add_argument("--expect", type=float, required=True)
    p.add_argument("--rtol", type=float, required=True)
    g = sub.add_parser("greedy")
    g.add_argument("--model", required=True)
    g.add_argument("--ids", required=True)
    g.add_argument("--n", type=int, required=True)
    a = ap.parse_args()
    {"same": cmd_same, "ppl": cmd_ppl, "greedy": cmd_greedy}[a.cmd](a)


if __name__ == "__main__":
    main()
