"""hf_client.py — a real Hugging Face client for qshard checkpoints: it loads DIR with
transformers.AutoModelForCausalLM.from_pretrained on the CPU (compressed-tensors checkpoints
through the compressed-tensors package, GPTQ checkpoints through optimum + gptqmodel's pure-torch
kernel `TorchLinear`, dense checkpoints as they are) and checks that

  1. the checkpoint was loaded for real, not silently dense or half-initialised: transformers'
     loading info has no missing, unexpected or mismatched key and no error, no load-report /
     "newly initialized" / "not used" warning was logged, and every tensor stored in DIR's
     safetensors files is found in the model with the stored value (cast to the model tensor's
     dtype); the one documented exception is GPTQ `qzeros`, which gptqmodel rewrites in place
     from the v1 ("zero - 1") to its internal v2 layout at load time;
     and, because transformers <= 5.22 silently lets a quantized model's checkpoint tensor replace
     its placeholder whatever its shape, the names / shapes / dtypes stored for every decoder Linear
     are compared with what the backend library itself allocates or writes for that Linear
     (gptqmodel: a fresh TorchLinear's buffers; compressed-tensors: its own pack-quantized
     compressor run on a zero weight of the Linear's shape); scales may be F16, BF16 or F32;
  2. the quantization config was recognised by the intended backend: the model's hf_quantizer is
     that backend's quantizer, every Linear of the decoder layers is quantized by it (GPTQ: a
     gptqmodel TorchLinear with the config's bits / group size; compressed-tensors: an nn.Linear
     carrying a compressed-tensors QuantizationScheme with the config's weights args, status
     "compressed", holding weight_packed / weight_scale / weight_shape [/ weight_zero_point] and no
     dense `weight`; after the first forward pass compressed-tensors' decompression hook must have
     run, status "decompressed") and lm_head is not quantized; a dense checkpoint must have no
     quantizer and plain nn.Linear layers;
  3. then computes perplexity exactly as `qshard eval` does: HDF5 dataset /input_ids (a 1-D int
     stream of n tokens) cut into n // L non-overlapping windows (tail dropped), the first N
     windows, each window run alone from position 0, every token after the first predicted
     (L - 1 predictions per window), per-token NLL = logsumexp(logits) - logit[target] in
     float64, summed in token order within a window and in window order over windows,
     PPL = exp(sum / (N * (L - 1))).

Output: one line `ppl <P> nll <NLL sum> windows <N> predicted <N*(L-1)>` (note: `qshard eval`
prints the *mean* NLL after `nll`; its --json has `nll_sum`), exit 0. Any failed check prints
`FAIL: ...` lines on stderr and exits 1. With --expect-ppl P --rtol R it also fails when
|ppl / P - 1| > R (tolerances measured on gutenberg28M, 4 windows of 1024, vs `qshard eval` fp32:
fp32 load 1e-5 for dense and compressed-tensors, 2e-4 for GPTQ through gptqmodel, whose
TorchLinear rounds every dequantized weight to fp16; bfloat16 load 5e-3).

Usage:
  hf_client.py --model DIR --data TOKENS.h5 --seqlen L --windows N [--dtype float32|bfloat16]
               [--expect-format gptq|compressed-tensors|dense] [--expect-ppl P --rtol R]
               [--json FILE]

Tested with (python 3.11, CPU):
  torch==2.15.0 (PyPI wheel), transformers==5.22.2, compressed-tensors==0.20.1, optimum==2.3.0,
  gptqmodel==7.6.0 installed with --no-deps plus pypcre logbar device-smi tokenicer defuser
  (--no-deps) and accelerate threadpoolctl pillow requests, h5py, safetensors, numpy.
  transformers >= 5.23 refuses asymmetric compressed-tensors checkpoints (zero-point size
  mismatch: compressed-tensors 0.20.1 builds its load-time placeholder unpacked); GPTQ and
  symmetric compressed-tensors load with 5.17 - 5.25.
Runs on the CPU only; TORCHDYNAMO_DISABLE=1 is set (unless already set) so gptqmodel's
torch.compile of its dequantizer becomes a no-op: same math, ~20 s less start-up on 2 cores.
"""
import os

# Must happen before torch is imported (torch reads it when torch._dynamo loads).
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
# Never reach for a hub: the model is a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402

failures = []

# A log record or Python warning matching this means the load was not clean (transformers 5 logs a
# "<Model> LOAD REPORT" table for missing/unexpected/mismatched keys; older versions logged
# "Some weights of ... were not initialized / were not used").
BAD_LOAD_MSG = re.compile(
    r"LOAD REPORT|missing|unexpected|mismatch|newly initiali[sz]ed|not initiali[sz]ed|were not used|"
    r"not used when initiali[sz]ing|Reinit",
    re.IGNORECASE,
)
DECODER_LINEAR = re.compile(r"^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)$")


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


class Capture(logging.Handler):
    """Collects WARNING+ records of the transformers / optimum / compressed-tensors loggers."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        try:
            self.records.append(f"{record.name}: {record.getMessage()}")
        except Exception:  # a badly formatted record is still worth reporting
            self.records.append(f"{record.name}: {record.msg!r}")


# ---- files ---------------------------------------------------------------------------------------
def read_config(d):
    with open(os.path.join(d, "config.json")) as fh:
        return json.load(fh)


def checkpoint_files(d):
    """The safetensors files transformers loads for d: model.safetensors, else the index's shards."""
    single = os.path.join(d, "model.safetensors")
    if os.path.exists(single):
        return [single]
    with open(os.path.join(d, "model.safetensors.index.json")) as fh:
        wm = json.load(fh)["weight_map"]
    return [os.path.join(d, f) for f in sorted(set(wm.values()))]


def read_tokens(path, seqlen, n_windows):
    with h5py.File(path, "r") as f:
        ds = f["/input_ids"]
        if ds.ndim != 1:
            raise SystemExit(f"{path}: /input_ids has shape {ds.shape}; this client handles 1-D streams only")
        n = ds.shape[0]
        avail = n // seqlen
        if n_windows > avail:
            raise SystemExit(f"{path}: {n} tokens give {avail} windows of {seqlen}, {n_windows} asked")
        ids = np.asarray(ds[: n_windows * seqlen], dtype=np.int64)
    return ids.reshape(n_windows, seqlen)


# ---- load ----------------------------------------------------------------------------------------
def load(a, qc):
    from transformers import AutoModelForCausalLM

    kwargs = dict(dtype=getattr(torch, a.dtype), output_loading_info=True)
    if a.expect_format == "gptq":
        # Pick gptqmodel's pure-torch kernel. Left to itself gptqmodel 7.6 picks TorchAtenLinear on
        # the CPU, which runs every matmul in bf16 (aten::_weight_int4pack_mm_for_cpu) even for an
        # fp32 model, and only handles 4 bits.
        from transformers import GPTQConfig

        kwargs["quantization_config"] = GPTQConfig(bits=qc["bits"], backend="torch")
    elif a.expect_format == "awq":
        # gptqmodel's pure-torch AWQ kernel (left to itself it picks TorchAtenAwqLinear, bf16 matmuls)
        from transformers import AwqConfig

        kwargs["quantization_config"] = AwqConfig(bits=qc["bits"], group_size=qc["group_size"],
                                                  zero_point=qc.get("zero_point", True), version="gemm",
                                                  backend="torch_awq",
                                                  modules_to_not_convert=qc.get("modules_to_not_convert"))

    cap = Capture()
    # gptqmodel prints a banner and INFO lines on stdout: send fd 1 to stderr while loading so
    # stdout carries only the result line.
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    loggers = [logging.getLogger(n) for n in ("transformers", "optimum", "compressed_tensors", "accelerate")]
    for lg in loggers:
        lg.addHandler(cap)
    with warnings.catch_warnings(record=True) as pywarn:
        warnings.simplefilter("always")
        try:
            model, info = AutoModelForCausalLM.from_pretrained(a.model, **kwargs)
        except Exception as e:  # e.g. transformers raises on a size mismatch after its report
            for r in cap.records:
                print("  log:", r[:2000], file=sys.stderr)
            fail(f"from_pretrained raised {type(e).__name__}: {e}")
            return None
        finally:
            for lg in loggers:
                lg.removeHandler(cap)
            sys.stdout.flush()
            os.dup2(saved_stdout, 1)
            os.close(saved_stdout)
    model.eval()

    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        v = info.get(k)
        check(not v, f"loading info {k}: {sorted(map(str, v))[:10] if v else v}")
    for r in cap.records + [f"{w.category.__name__}: {w.message}" for w in pywarn]:
        if BAD_LOAD_MSG.search(r):
            fail(f"load warning: {r[:2000]}")
        else:
            print(f"  (load warning, not a key problem: {r.splitlines()[0][:200]})", file=sys.stderr)
    return model


def compare_stored_tensors(model, d, skip=()):
    """Every tensor stored in d is in the model with the stored value (cast to the model's dtype)."""
    state = model.state_dict()
    n = 0
    for path in checkpoint_files(d):
        with safe_open(path, framework="pt") as f:
            for name in f.keys():
                if name.rsplit(".", 1)[-1] in skip:
                    continue
                if not check(name in state, f"{name}: stored in {os.path.basename(path)} but not in the model"):
                    continue
                want, got = f.get_tensor(name), state[name]
                if not check(tuple(want.shape) == tuple(got.shape), f"{name}: shape {tuple(got.shape)} in the "
                             f"model, {tuple(want.shape)} stored"):
                    continue
                check(torch.equal(got, want.to(got.dtype)), f"{name}: the model's value is not the stored one")
                n += 1
    return n


# ---- stored layout vs what the backend library itself would write ---------------------------------
ST_DTYPE = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
            "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8}


def stored_layout(d):
    """name -> (shape tuple, torch dtype) of every tensor stored in d, from the safetensors headers."""
    out = {}
    for path in checkpoint_files(d):
        with safe_open(path, framework="pt") as f:
            for name in f.keys():
                sl = f.get_slice(name)
                out[name] = (tuple(sl.get_shape()), ST_DTYPE.get(sl.get_dtype(), sl.get_dtype()))
    return out


def gptq_reference_layout(qc, in_f, out_f):
    """Persistent buffers (shape, dtype) of a freshly built gptqmodel TorchLinear for this Linear: the
    layout gptqmodel allocates before loading (§2.1 of FORMATS.md)."""
    from gptqmodel.nn_modules.qlinear.torch import TorchLinear

    ref = TorchLinear(bits=qc["bits"], group_size=qc["group_size"], sym=qc.get("sym", True),
                      desc_act=qc.get("desc_act", False), in_features=in_f, out_features=out_f, bias=False,
                      pack_dtype=torch.int32, register_buffers=True)
    keep = ("qweight", "qzeros", "scales", "g_idx")
    return {n: (tuple(b.shape), b.dtype) for n, b in ref.named_buffers() if n in keep}


def ct_reference_layout(scheme, fmt, in_f, out_f):
    """What compressed-tensors' own compressor writes for an [out_f, in_f] weight under this scheme:
    its compress() run on a zero weight (on the CPU, not meta: the meta path of compressed-tensors
    0.20.1 does not pack zero points)."""
    from compressed_tensors.compressors import BaseCompressor

    w = scheme.weights
    if w.strategy == "group":
        G = math.ceil(in_f / w.group_size)
    elif w.strategy == "channel":
        G = 1
    else:
        raise SystemExit(f"weights strategy {w.strategy} not handled by this client")
    sd = {"weight": torch.zeros(out_f, in_f), "weight_scale": torch.ones(out_f, G),
          "weight_zero_point": torch.zeros(out_f, G, dtype=w.zp_dtype)}
    comp = BaseCompressor.get_value_from_registry(scheme.format or fmt)
    return {k: (tuple(v.shape), v.dtype) for k, v in comp.compress(sd, scheme).items()}


def check_stored_layout(stored, module_name, want):
    """The tensors stored under module_name. are exactly `want` (name -> (shape, dtype)); a float
    `*scale*` (or a tensor whose wanted dtype is None) may be any of F16/BF16/F32: compressed-tensors
    writes scales in the model dtype and the loaders cast them to the model's parameter dtype."""
    got = {k[len(module_name) + 1:]: v for k, v in stored.items() if k.startswith(module_name + ".")}
    check(set(got) == set(want), f"{module_name}: stored {sorted(got)}, the backend writes {sorted(want)}")
    for k in set(got) & set(want):
        (gs, gd), (ws, wd) = got[k], want[k]
        check(gs == ws, f"{module_name}.{k}: stored shape {list(gs)}, the backend writes {list(ws)}")
        if wd is None or ("scale" in k and wd.is_floating_point):
            check(gd in (torch.float16, torch.bfloat16, torch.float32), f"{module_name}.{k}: stored dtype {gd}")
        else:
            check(gd == wd, f"{module_name}.{k}: stored dtype {gd}, the backend writes {wd}")


# ---- backend checks ------------------------------------------------------------------------------
def decoder_linears(model):
    return [(n, m) for n, m in model.named_modules() if DECODER_LINEAR.match(n)]


def check_dense(model):
    hq = getattr(model, "hf_quantizer", None)
    check(hq is None, f"dense model has a quantizer {type(hq).__name__}")
    lin = decoder_linears(model)
    check(len(lin) > 0, "no decoder Linear found")
    for n, m in lin:
        check(type(m) is torch.nn.Linear, f"{n}: {type(m).__name__}, want nn.Linear")


def check_gptq_modules(model, qc, stored):
    from gptqmodel.nn_modules.qlinear.torch import TorchLinear
    from transformers.quantizers.quantizer_gptq import GptqHfQuantizer

    check(isinstance(getattr(model, "hf_quantizer", None), GptqHfQuantizer),
          f"hf_quantizer {type(getattr(model, 'hf_quantizer', None)).__name__}, want GptqHfQuantizer")
    lin = decoder_linears(model)
    check(len(lin) > 0, "no decoder Linear found")
    layouts = {}
    for n, m in lin:
        if not check(type(m) is TorchLinear, f"{n}: {type(m).__module__}.{type(m).__name__}, want gptqmodel "
                     "TorchLinear (the pure-torch kernel)"):
            continue
        check(m.bits == qc["bits"] and m.group_size == qc["group_size"],
              f"{n}: bits {m.bits} group {m.group_size}, config {qc['bits']} / {qc['group_size']}")
        key = (m.in_features, m.out_features)
        if key not in layouts:
            layouts[key] = gptq_reference_layout(qc, *key)
        check_stored_layout(stored, n, layouts[key])
    check(type(model.lm_head) is torch.nn.Linear, f"lm_head is {type(model.lm_head).__name__}")


AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


def awq_unpack_like_vllm(qweight, qzeros, scales, group_size, dtype):
    """W^T [K, N] (float32) from AWQ GEMM tensors, unpacked as vLLM's AWQ dequantization does
    (awq_triton.py awq_dequantize_torch): shift out the eight nibbles of each int32 in order, undo the
    interleave by AWQ_REVERSE_ORDER within each group of 8 output columns, mask to 4 bits, repeat the
    group rows of zeros and scales group_size times along K, (w - z) * s with the scales in the
    model's dtype (as vLLM loads them), rounded to that dtype. Written here from that description
    (FORMATS.md §3), independently of qshard's reader and of gptqmodel's."""
    shifts = torch.arange(0, 32, 4, dtype=torch.int32)

    def unpack(t):
        u = torch.bitwise_right_shift(t[:, :, None], shifts[None, None, :]).reshape(t.shape[0], -1)
        order = torch.arange(u.shape[1]).view(-1, 8)[:, AWQ_REVERSE_ORDER].reshape(-1)
        return torch.bitwise_and(u[:, order], 0xF)

    iw, iz = unpack(qweight), unpack(qzeros)
    K = iw.shape[0]
    gs = K if group_size <= 0 else group_size
    iz = iz.repeat_interleave(gs, dim=0)
    s = scales.to(dtype).to(torch.float32).repeat_interleave(gs, dim=0)
    # an integer of at most 4 bits times a 16-bit float is exact in float32: one rounding, as in dtype
    return ((iw - iz).to(torch.float32) * s).to(dtype)


def check_awq_modules(model, qc, stored, d):
    """transformers' AwqQuantizer chose gptqmodel's pure-torch AWQ kernel for every decoder Linear not
    in modules_to_not_convert, with the stored layout that kernel allocates; and each module's weight
    as gptqmodel dequantizes it equals vLLM's unpacking of the stored tensors."""
    from gptqmodel.nn_modules.qlinear.torch_awq import AwqTorchLinear
    from gptqmodel.quantization.awq.utils.packing_utils import dequantize_gemm
    from transformers.quantizers.quantizer_awq import AwqQuantizer

    check(isinstance(getattr(model, "hf_quantizer", None), AwqQuantizer),
          f"hf_quantizer {type(getattr(model, 'hf_quantizer', None)).__name__}, want AwqQuantizer")
    skip = qc.get("modules_to_not_convert") or []
    lin = decoder_linears(model)
    check(len(lin) > 0, "no decoder Linear found")
    tensors = {}
    for path in checkpoint_files(d):
        with safe_open(path, framework="pt") as f:
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    layouts, n_quant = {}, 0
    for n, m in lin:
        if any(s in n for s in skip):
            check(type(m) is torch.nn.Linear, f"{n}: in modules_to_not_convert but {type(m).__name__}")
            continue
        if not check(type(m) is AwqTorchLinear, f"{n}: {type(m).__module__}.{type(m).__name__}, want gptqmodel "
                     "AwqTorchLinear (the pure-torch AWQ kernel)"):
            continue
        n_quant += 1
        check(m.bits == qc["bits"] and m.group_size == (qc["group_size"] if qc["group_size"] > 0 else m.in_features),
              f"{n}: bits {m.bits} group {m.group_size}, config {qc['bits']} / {qc['group_size']}")
        key = (m.in_features, m.out_features)
        if key not in layouts:
            ref = AwqTorchLinear(bits=qc["bits"], group_size=qc["group_size"], sym=False, desc_act=False,
                                 in_features=key[0], out_features=key[1], bias=False, register_buffers=True)
            layouts[key] = {b: (tuple(t.shape), t.dtype) for b, t in ref.named_buffers()
                            if b in ("qweight", "qzeros", "scales")}
        check_stored_layout(stored, n, layouts[key])
        want = awq_unpack_like_vllm(tensors[n + ".qweight"], tensors[n + ".qzeros"], tensors[n + ".scales"],
                                    qc["group_size"], m.scales.dtype)
        got = dequantize_gemm(m.qweight, m.qzeros, m.scales, m.bits, m.group_size)
        check(got.dtype == want.dtype and torch.equal(got, want), f"{n}: gptqmodel's dequantized weight differs from vLLM's "
              f"unpacking of the stored tensors (max {float((got.float() - want).abs().max()):.3g})")
    check(n_quant > 0, "no decoder Linear is AWQ-quantized")
    check(type(model.lm_head) is torch.nn.Linear, f"lm_head is {type(model.lm_head).__name__}")


def ct_state(model):
    """(name, module) of every module compressed-tensors quantized."""
    from compressed_tensors.quantization.utils.helpers import is_module_quantized

    return [(n, m) for n, m in model.named_modules() if is_module_quantized(m)]


def check_ct_modules(model, qc, stored):
    from compressed_tensors.quantization import QuantizationStatus
    from transformers.quantizers.quantizer_compressed_tensors import CompressedTensorsHfQuantizer

    check(isinstance(getattr(model, "hf_quantizer", None), CompressedTensorsHfQuantizer),
          f"hf_quantizer {type(getattr(model, 'hf_quantizer', None)).__name__}, want CompressedTensorsHfQuantizer")
    # the config's single weights scheme (qshard writes one config group)
    groups = list(qc["config_groups"].values())
    check(len(groups) == 1, f"{len(groups)} config groups, this client expects 1")
    want_w = groups[0]["weights"]
    quant = dict(ct_state(model))
    lin = decoder_linears(model)
    check(len(lin) > 0, "no decoder Linear found")
    for n, m in lin:
        if not check(n in quant, f"{n}: not quantized by compressed-tensors"):
            continue
        w = m.quantization_scheme.weights
        for k in ("num_bits", "strategy", "group_size", "symmetric", "type"):
            got = getattr(w, k)
            got = got.value if hasattr(got, "value") else got
            check(got == want_w.get(k, got), f"{n}: scheme weights.{k} = {got!r}, config {want_w.get(k)!r}")
        check(m.quantization_status == QuantizationStatus.COMPRESSED,
              f"{n}: status {m.quantization_status} before the first forward, want compressed")
        params = {p for p, _ in m.named_parameters(recurse=False)}
        want = {"weight_packed", "weight_scale", "weight_shape"} | (set() if w.symmetric else {"weight_zero_point"})
        check(params == want, f"{n}: parameters {sorted(params)}, want {sorted(want)}")
        check_stored_layout(stored, n, ct_reference_layout(m.quantization_scheme, qc.get("format"),
                                                           m.in_features, m.out_features))
    extra = sorted(set(quant) - {n for n, _ in lin})
    check(not extra, f"quantized modules outside the decoder Linears: {extra[:5]}")
    check("lm_head" not in quant, "lm_head was quantized")


def check_ct_after_forward(model):
    from compressed_tensors.quantization import QuantizationStatus

    for n, m in ct_state(model):
        check(m.quantization_status == QuantizationStatus.DECOMPRESSED,
              f"{n}: status {m.quantization_status} after the first forward, want decompressed")
        check(isinstance(getattr(m, "weight", None), torch.Tensor) and "weight_packed" not in dict(
            m.named_parameters(recurse=False)), f"{n}: not decompressed to a dense weight")


# ---- perplexity ----------------------------------------------------------------------------------
@torch.no_grad()
def window_nll(model, ids):
    """NLL sum (float64, token order) of one window [L]: L - 1 predictions."""
    x = torch.from_numpy(ids).unsqueeze(0)
    logits = model(input_ids=x, use_cache=False).logits[0, :-1].to(torch.float64)  # [L-1, V]
    tgt = x[0, 1:]
    nll = torch.logsumexp(logits, dim=-1) - logits.gather(1, tgt.unsqueeze(1)).squeeze(1)
    s = 0.0
    for v in nll.tolist():  # sequential, as qshard adds them
        s += v
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--seqlen", type=int, required=True)
    ap.add_argument("--windows", type=int, required=True)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--expect-format", choices=["gptq", "compressed-tensors", "awq", "dense"],
                    help="what DIR must be (default: what its config.json says)")
    ap.add_argument("--expect-ppl", type=float, help="reference perplexity (e.g. `qshard eval` fp32)")
    ap.add_argument("--rtol", type=float, default=1e-5, help="allowed |ppl / expect-ppl - 1| (default 1e-5)")
    ap.add_argument("--json", help="also write {ppl, nll_sum, windows, predicted, seconds...} here")
    a = ap.parse_args()
    torch.manual_seed(0)

    cfg = read_config(a.model)
    qc = cfg.get("quantization_config")
    fmt = "dense" if qc is None else qc.get("quant_method")
    if a.expect_format is None:
        a.expect_format = fmt
    if not check(fmt == a.expect_format, f"config.json quant_method {fmt!r}, expected {a.expect_format!r}"):
        return 1
    if fmt not in ("gptq", "compressed-tensors", "awq", "dense"):
        fail(f"quant_method {fmt!r} is not handled by this client")
        return 1

    t0 = time.time()
    model = load(a, qc)
    if model is None:
        return 1
    t_load = time.time() - t0

    # transformers <= 5.22 silently accepts any shape for a quantized model's tensors (the checkpoint
    # tensor replaces the placeholder), so the stored layout is checked here against what the
    # backend library itself allocates / writes, independently of the loader's own checks.
    stored = stored_layout(a.model)
    skip = ()
    if fmt == "dense":
        check_dense(model)
        for n, m in decoder_linears(model):
            check_stored_layout(stored, n, {"weight": ((m.out_features, m.in_features), None)})
    elif fmt == "gptq":
        check_gptq_modules(model, qc, stored)
        skip = ("qzeros",)  # rewritten v1 -> v2 in place by gptqmodel (its kernels need v2)
    elif fmt == "awq":
        check_awq_modules(model, qc, stored, a.model)
    else:
        check_ct_modules(model, qc, stored)
    n_cmp = compare_stored_tensors(model, a.model, skip=skip)
    if failures:
        return 1

    ids = read_tokens(a.data, a.seqlen, a.windows)
    t1 = time.time()
    total = 0.0
    for w in range(a.windows):
        nll = window_nll(model, ids[w])
        if not check(math.isfinite(nll), f"window {w}: NLL {nll}"):
            return 1
        total += nll
        if w == 0 and fmt == "compressed-tensors":
            check_ct_after_forward(model)
    t_eval = time.time() - t1
    pred = a.windows * (a.seqlen - 1)
    ppl = math.exp(total / pred)
    print(f"  loaded {fmt} ({a.dtype}) in {t_load:.1f} s, {n_cmp} stored tensors checked, "
          f"{a.windows} windows in {t_eval:.1f} s", file=sys.stderr)
    if a.expect_ppl is not None:
        rel = ppl / a.expect_ppl - 1
        check(abs(rel) <= a.rtol, f"ppl {ppl:.9g} vs expected {a.expect_ppl:.9g}: relative {rel:+.3e}, "
              f"tolerance {a.rtol:g}")
    if failures:
        return 1
    print(f"ppl {ppl:.9g} nll {total:.17g} windows {a.windows} predicted {pred}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"ppl": ppl, "nll_sum": total, "nll": total / pred, "windows": a.windows, "predicted": pred,
                       "seqlen": a.seqlen, "dtype": a.dtype, "format": fmt, "load_s": t_load, "eval_s": t_eval},
                      fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
