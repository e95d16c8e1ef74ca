"""st_client.py DIR — checks with the PyPI `safetensors` package (Rust reader) that the files written by
`test_safetensors --write DIR` load with the expected dtypes, shapes, values and metadata, and that
the sharded index maps every tensor to the shard holding it. Then writes DIR/py/model.safetensors with
safetensors.numpy.save_file for the reverse check (qshard inspect reads it; see st_client.sh).
The value formulas are those of known_fill() / sharded_fill() in tests/test_safetensors.c.
Exit 0 = all checks passed; 1 = a failure (printed)."""
import json
import os
import sys

import numpy as np
import safetensors
import safetensors.numpy as stnp
from safetensors import safe_open

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def bf16_bits(values):
    """float32 -> bfloat16 bits, round to nearest even (values here are exact in bf16)."""
    u = np.asarray(values, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def known_expected():
    """name -> (dtype string, shape, numpy array (BF16 as uint16 bits, F8 as uint8 bits) or None)."""
    i = lambda n: np.arange(n, dtype=np.float64)
    return {
        "f32": ("F32", [3, 4], ((i(12) - 5) * 0.25).astype(np.float32).reshape(3, 4)),
        "f16": ("F16", [2, 3], ((i(6) - 2) * 0.5).astype(np.float16).reshape(2, 3)),
        "bf16": ("BF16", [4, 2], bf16_bits((i(8) - 3) * 0.125).reshape(4, 2)),
        "i32": ("I32", [5], (np.arange(5, dtype=np.int32) * 100000 - 7)),
        "i64": ("I64", [2, 2], ((np.arange(4, dtype=np.int64) + 1) * (1 << 40) - 3).reshape(2, 2)),
        "i8": ("I8", [6], (np.arange(6, dtype=np.int32) * 40 - 100).astype(np.int8)),
        "u8": ("U8", [7], (np.arange(7, dtype=np.int32) * 37).astype(np.uint8)),
        # float8_e4m3fn bits of -2, -1, 0, 1, 2 (no numpy dtype: compared as bytes)
        "fp8": ("F8_E4M3", [5], np.array([0xC0, 0xB8, 0x00, 0x38, 0x40], dtype=np.uint8)),
        "scalar": ("F32", [], np.array(3.5, dtype=np.float32)),
        "empty": ("BF16", [0, 4], np.zeros((0, 4), dtype=np.uint16)),
    }


def raw_tensors(path):
    """All tensors of a file through the Rust deserializer: name -> (dtype, shape, bytes)."""
    with open(path, "rb") as f:
        return {name: (t["dtype"], list(t["shape"]), bytes(t["data"]))
                for name, t in safetensors.deserialize(f.read())}


def check_single(d):
    path = os.path.join(d, "single", "model.safetensors")
    check(not os.path.exists(os.path.join(d, "single", "model.safetensors.index.json")), "single: no index")
    want = known_expected()
    with safe_open(path, framework="numpy") as f:
        check(f.metadata() == {"format": "pt"}, f"single: metadata {f.metadata()}")
        check(sorted(f.keys()) == sorted(want), f"single: keys {sorted(f.keys())}")
        for name, (dt, shape, _) in want.items():
            s = f.get_slice(name)
            check(s.get_dtype() == dt and list(s.get_shape()) == shape,
                  f"single: {name} is {s.get_dtype()} {s.get_shape()}, want {dt} {shape}")
    # Every tensor's bytes through the Rust deserializer (numpy has no BF16 / F8 dtype, so
    # load_file would reject the file); the numpy-native ones also through get_tensor below.
    raw = raw_tensors(path)
    for name, (dt, shape, arr) in want.items():
        check(raw[name][2] == np.ascontiguousarray(arr).tobytes(), f"single: {name} bytes differ")
    with safe_open(path, framework="numpy") as f:
        for name in ("f32", "f16", "i32", "i64", "i8", "u8", "scalar"):
            got, exp = f.get_tensor(name), want[name][2]
            check(got.dtype == exp.dtype and got.shape == exp.shape and np.array_equal(got, exp),
                  f"single: get_tensor({name}) = {got!r}, want {exp!r}")
    # Alignment: every tensor starts at a multiple of its element size in the file.
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    check((8 + n) % 8 == 0, f"single: header length {n} not padded to 8")
    size = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "I64": 8, "I8": 1, "U8": 1, "F8_E4M3": 1}
    for name, e in header.items():
        if name != "__metadata__":
            check(e["data_offsets"][0] % size[e["dtype"]] == 0, f"single: {name} misaligned")


def check_sharded(d):
    sd = os.path.join(d, "sharded")
    with open(os.path.join(sd, "model.safetensors.index.json")) as fh:
        index = json.load(fh)
    wm = index["weight_map"]
    shards = sorted(x for x in os.listdir(sd) if x.endswith(".safetensors"))
    check(len(shards) == 6 and shards[0] == "model-00001-of-00006.safetensors", f"sharded: files {shards}")
    check(list(wm) == sorted(wm), "sharded: weight_map keys not sorted")
    seen, total = {}, 0
    for shard in shards:
        with safe_open(os.path.join(sd, shard), framework="numpy") as f:
            check(f.metadata() == {"format": "pt"}, f"{shard}: metadata {f.metadata()}")
            for name in f.keys():
                check(name not in seen, f"{name} in two shards")
                seen[name] = shard
        for name, (dt, shape, data) in raw_tensors(os.path.join(sd, shard)).items():
            total += len(data)
    check(seen == wm, f"sharded: weight_map {wm} != tensors found {seen}")
    check(index["metadata"]["total_size"] == total, f"sharded: total_size {index['metadata']} != {total}")
    for layer in range(12):
        name = f"model.layers.{layer}.weight"
        with safe_open(os.path.join(sd, wm[name]), framework="numpy") as f:
            t = f.get_tensor(name)  # not load_file: shard 6 also holds BF16 lm_head
        exp = (layer * 1000 + np.arange(256, dtype=np.float32)).reshape(16, 16)
        check(t.dtype == np.float32 and np.array_equal(t, exp), f"sharded: {name} values")
    lm = raw_tensors(os.path.join(sd, wm["lm_head.weight"]))["lm_head.weight"]
    check(lm[0] == "BF16" and lm[1] == [8, 8] and lm[2] == bf16_bits(np.arange(64) * 0.5).tobytes(),
          "sharded: lm_head.weight")


def write_reverse(d):
    """A file from the reference writer, for `qshard inspect` in st_client.sh."""
    os.makedirs(os.path.join(d, "py"), exist_ok=True)
    stnp.save_file({"a.f16": np.ones((3, 5), np.float16), "b.i64": np.arange(7, dtype=np.int64),
                    "c.u8": np.zeros((2, 2, 2), np.uint8), "d.scalar": np.array(1.0, np.float32)},
                   os.path.join(d, "py", "model.safetensors"), metadata={"format": "pt", "origin": "numpy"})


def main():
    d = sys.argv[1]
    print("safetensors", safetensors.__version__, "numpy", np.__version__)
    check_single(d)
    check_sharded(d)
    write_reverse(d)
    print(f"st_client: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
