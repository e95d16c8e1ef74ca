"""gguf_reader.py FILE — gguf-py's GGUFReader (llama.cpp's Python reader) reads the known GGUF file that
`test_gguf_io --write FILE` makes with qshard's writer: every KV with its exact type and value, every
tensor's name, type, ne, size and bytes. The values are those of tests/test_gguf_io.c (known_kvs,
k_tensors, known_fill); any difference is a failure."""
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType as T, GGMLQuantizationType as Q

A = T.ARRAY
KVS = {  # key: (types as gguf-py lists them, value)
    "general.architecture": ([T.STRING], "llama"),
    "general.alignment": ([T.UINT32], 64),
    "test.u8": ([T.UINT8], 200),
    "test.i8": ([T.INT8], -100),
    "test.u16": ([T.UINT16], 60000),
    "test.i16": ([T.INT16], -30000),
    "test.u32": ([T.UINT32], 4000000000),
    "test.i32": ([T.INT32], -2000000000),
    "test.u64": ([T.UINT64], 10000000000000000000),
    "test.i64": ([T.INT64], -9000000000000000000),
    "test.f32": ([T.FLOAT32], 0.15625),
    "test.f64": ([T.FLOAT64], -2.5e300),
    "test.bool": ([T.BOOL], True),
    "test.bool_false": ([T.BOOL], False),
    "test.str": ([T.STRING], "h\u00e9llo \u2581 world"),
    "test.empty": ([T.STRING], ""),
    "test.arr.u8": ([A, T.UINT8], [1, 2, 255]),
    "test.arr.i8": ([A, T.INT8], [-1, 127]),
    "test.arr.u16": ([A, T.UINT16], [65535]),
    "test.arr.i16": ([A, T.INT16], [-2]),
    "test.arr.u32": ([A, T.UINT32], [0, 4294967295]),
    "test.arr.i32": ([A, T.INT32], [-7, 0, 7]),
    "test.arr.u64": ([A, T.UINT64], [9223372036854775808]),
    "test.arr.i64": ([A, T.INT64], [-1]),
    "test.arr.f32": ([A, T.FLOAT32], [0.5, -0.25]),
    "test.arr.f64": ([A, T.FLOAT64], [1e-300]),
    "test.arr.bool": ([A, T.BOOL], [True, False, True]),
    "test.arr.empty": ([A], []),  # gguf-py lists no element type for an empty array
    "test.arr.str": ([A, T.STRING], ["a", "", "\u00fc\u2581"]),
}
TENSORS = [  # name, type, ne (innermost first)
    ("t.f32", Q.F32, [3, 2]),
    ("t.q8_0", Q.Q8_0, [64, 2]),
    ("t.q4_k", Q.Q4_K, [256, 1, 1, 2]),
    ("t.i8", Q.I8, [5]),
    ("t.f16", Q.F16, [1, 3]),
    ("t.empty", Q.F32, [0, 4]),
]


def known_bytes(i, qtype, nbytes):
    if qtype == Q.F32:
        return ((np.arange(nbytes // 4, dtype=np.float32) - 2) * 0.5).astype("<f4").tobytes()
    return bytes((i * 31 + j * 7 + 1) & 255 for j in range(nbytes))


def main(path):
    r = GGUFReader(path)
    bad = []
    fields = {k: f for k, f in r.fields.items() if not k.startswith("GGUF.")}
    if list(fields) != list(KVS):
        bad.append(f"keys {list(fields)} != {list(KVS)}")
    for key, (types, value) in KVS.items():
        f = fields.get(key)
        if f is None:
            continue
        if list(f.types) != types:
            bad.append(f"{key}: types {[T(t).name for t in f.types]} != {[t.name for t in types]}")
        got = f.contents()
        if got != value:
            bad.append(f"{key}: {got!r} != {value!r}")
    if r.alignment != 64 or r.data_offset % 64:
        bad.append(f"alignment {r.alignment}, data offset {r.data_offset}")
    if [t.name for t in r.tensors] != [t[0] for t in TENSORS]:
        bad.append(f"tensors {[t.name for t in r.tensors]}")
    for i, (t, (name, qtype, ne)) in enumerate(zip(r.tensors, TENSORS)):
        if t.tensor_type != qtype or t.shape.tolist() != ne:
            bad.append(f"{name}: {t.tensor_type.name} {t.shape.tolist()} != {qtype.name} {ne}")
        if (t.data_offset - r.data_offset) % 64:
            bad.append(f"{name}: offset {t.data_offset} not aligned")
        if t.data.tobytes() != known_bytes(i, qtype, t.n_bytes):
            bad.append(f"{name}: data differs ({t.n_bytes} bytes)")
    for b in bad:
        print("FAIL:", b)
    print(f"gguf_reader: {len(fields)} KVs, {len(r.tensors)} tensors read by gguf-py GGUFReader: "
          f"{'OK' if not bad else f'{len(bad)} difference(s)'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
