"""make_ct_reference.py --model DIR --out OUT --scheme w4g128sym|w4g128asym|w3g128asym|w8ch [--dtype bfloat16|float32]

Writes a compressed-tensors "pack-quantized" reference checkpoint of a dense HF Llama model using
ONLY compressed-tensors' own public API (no llm-compressor), so that qshard's C writer can be
compared with what the library itself produces:

  1. load DIR with transformers (CPU, --dtype, default bfloat16 = the model's own dtype);
  2. build a QuantizationConfig (targets ["Linear"], ignore ["lm_head"]) and attach it with
     compressed_tensors.quantization.apply_quantization_config (registers weight_scale /
     weight_zero_point parameters of the model dtype on every targeted nn.Linear);
  3. round-to-nearest "calibration": per group / per output row min and max of the weight, turned
     into scale and zero point by compressed_tensors.quantization.utils.calculate_qparams (the same
     function llm-compressor's min-max observer ends in), status FROZEN;
  4. ModelCompressor.from_pretrained_model(model, "pack-quantized").compress_model(model), then
     model.save_pretrained(OUT) and compressor.update_config(OUT) (the documented save lifecycle
     in compressed_tensors/compressors/model_compressors/model_compressor.py).

Then prints every tensor (name, dtype, shape) of OUT and its quantization_config. This is a
developer tool (run by hand, see /work/notes/ct_findings.md), not part of the test suite: it needs
torch, transformers and compressed-tensors.
"""
import argparse
import json
import os

import torch
from compressed_tensors.compressors import ModelCompressor
from compressed_tensors.quantization import (
    QuantizationArgs,
    QuantizationConfig,
    QuantizationScheme,
    QuantizationStatus,
    apply_quantization_config,
)
from compressed_tensors.quantization.utils import calculate_qparams
from compressed_tensors.quantization.utils.helpers import is_module_quantized
from safetensors import safe_open
from transformers import AutoModelForCausalLM

SCHEMES = {
    # W4A16 preset: int4, group 128, symmetric, static weights, no activation quantization
    "w4g128sym": dict(num_bits=4, type="int", strategy="group", group_size=128, symmetric=True, dynamic=False),
    # W4A16_ASYM preset
    "w4g128asym": dict(num_bits=4, type="int", strategy="group", group_size=128, symmetric=False, dynamic=False),
    # 3-bit asymmetric group 128: shows the dense cross-word packing of pack_to_int32
    "w3g128asym": dict(num_bits=3, type="int", strategy="group", group_size=128, symmetric=False, dynamic=False),
    # int8 per output channel (the compressed-tensors 0.20 W8A16 *preset* is group 128, not channel)
    "w8ch": dict(num_bits=8, type="int", strategy="channel", symmetric=True, dynamic=False),
}


def minmax_qparams(module):
    """RTN qparams from the weight's own range: min/max per (row, group) or per row."""
    args = module.quantization_scheme.weights
    w = module.weight.detach()
    if args.strategy == "group":
        g = w.unflatten(-1, (w.shape[-1] // args.group_size, args.group_size))  # [N, G, gs]
        mn, mx = g.amin(dim=-1), g.amax(dim=-1)  # [N, G]
    elif args.strategy == "channel":
        mn, mx = w.amin(dim=-1, keepdim=True), w.amax(dim=-1, keepdim=True)  # [N, 1]
    else:
        raise SystemExit(f"strategy {args.strategy} not handled here")
    return calculate_qparams(mn, mx, args)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--scheme", required=True, choices=sorted(SCHEMES))
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
    a = ap.parse_args()

    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=getattr(torch, a.dtype))
    scheme = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(**SCHEMES[a.scheme]))
    qcfg = QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"])
    apply_quantization_config(model, qcfg)

    n = 0
    with torch.no_grad():
        for name, m in model.named_modules():
            if not is_module_quantized(m):
                continue
            scale, zp = minmax_qparams(m)
            m.weight_scale.data.copy_(scale.to(m.weight_scale.dtype))
            if hasattr(m, "weight_zero_point"):
                m.weight_zero_point.data.copy_(zp.to(m.weight_zero_point.dtype))
            m.quantization_status = QuantizationStatus.FROZEN
            n += 1
    print(f"calibrated {n} linears")

    compressor = ModelCompressor.from_pretrained_model(model, quantization_format="pack-quantized")
    compressor.compress_model(model)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out)
    compressor.update_config(a.out)

    # report
    files = sorted(f for f in os.listdir(a.out) if f.endswith(".safetensors"))
    for fn in files:
        with safe_open(os.path.join(a.out, fn), framework="pt") as f:
            print(f"# {fn} metadata={f.metadata()}")
            for k in sorted(f.keys()):
                sl = f.get_slice(k)
                print(f"{k}\t{sl.get_dtype()}\t{sl.get_shape()}")
    with open(os.path.join(a.out, "config.json")) as fh:
        print(json.dumps(json.load(fh)["quantization_config"], indent=2))


if __name__ == "__main__":
    main()
