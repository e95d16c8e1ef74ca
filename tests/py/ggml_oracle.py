#!/usr/bin/env python3
"""ggml_oracle.py — llama.cpp's own quantizer proves qshard's ggml references byte for byte.

For every type that `ggml_rows types` lists (tests/ggml_rows.c: the types qshard writes), adversarial
float32 rows are quantized twice: by ggml_quantize_chunk of the libggml inside the pinned
llama-cpp-python (tests/py/requirements-llama.txt), without and with importance vectors, and by
qshard's reference (ggml_rows quantize, one call per row). The bytes must be identical; the
dequantized floats too (ggml's type traits to_float against ggml_rows dequant), also on random block
bytes. A mismatch prints the type, case, row and first differing block. Exit 0 all identical, 1 any
difference, 77 (skip) without llama_cpp.

usage: ggml_oracle.py --rows BUILD/tests/ggml_rows [--quick]
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy does not import")
    sys.exit(77)

SIZES = (256, 512, 4096)  # n_per_row: one 256-block, two, a real row length
K_IQ4NL = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.float32)
K_E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], np.float32)


class TypeTraits(ctypes.Structure):  # ggml.h struct ggml_type_traits
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p), ("from_float_ref", ctypes.c_void_p)]


TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


def load_ggml():
    """libggml-base of the installed llama_cpp: ggml_quantize_chunk and the type traits live there."""
    try:
        import llama_cpp
    except ImportError as e:
        print(f"SKIP: llama_cpp does not import ({e}); pip install -r tests/py/requirements-llama.txt")
        sys.exit(77)
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    path = next((os.path.join(libdir, n) for n in ("libggml-base.so", "libggml.so", "libggml-base.dylib")
                 if os.path.exists(os.path.join(libdir, n))), None)
    if path is None:
        print(f"SKIP: no libggml in {libdir}")
        sys.exit(77)
    lib = ctypes.CDLL(path)
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    lib.ggml_row_size.restype = ctypes.c_size_t
    lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
    lib.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
    lib.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
    lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
    lib.ggml_commit.restype = ctypes.c_char_p
    print(f"llama-cpp-python {llama_cpp.__version__}, ggml commit {lib.ggml_commit().decode()}: {path}")
    return lib


def ggml_quantize(lib, t, x, imp):
    x = np.ascontiguousarray(x, np.float32)
    rows, n = x.shape
    out = np.zeros(rows * lib.ggml_row_size(t, n), np.uint8)
    impp = None if imp is None else np.ascontiguousarray(imp, np.float32)
    lib.ggml_quantize_chunk(t, x.ctypes.data, out.ctypes.data, 0, rows, n,
                            None if impp is None else impp.ctypes.data)
    return out.reshape(rows, -1)


def ggml_dequant(lib, t, q, n):
    q = np.ascontiguousarray(q, np.uint8)
    y = np.zeros(q.shape[0] * n, np.float32)
    TO_FLOAT(lib.ggml_get_type_traits(t).contents.to_float)(q.ctypes.data, y.ctypes.data, y.size)
    return y.reshape(q.shape[0], n)


class Rows:
    """tests/ggml_rows.c through files in a scratch directory."""

    def __init__(self, exe, tmp):
        self.exe, self.tmp = exe, tmp

    def run(self, *args):
        r = subprocess.run([self.exe, *map(str, args)], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"ggml_rows {' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr}")
        return r.stdout

    def types(self):
        return [(int(a), b, int(c), int(d)) for a, b, c, d in (l.split() for l in self.run("types").splitlines())]

    def quantize(self, t, x, imp):
        p = lambda s: os.path.join(self.tmp, s)
        np.ascontiguousarray(x, "<f4").tofile(p("x.f32"))
        args = ["quantize", t, x.shape[1], p("x.f32"), p("q.bin")]
        if imp is not None:
            np.ascontiguousarray(imp, "<f4").tofile(p("imp.f32"))
            args.append(p("imp.f32"))
        self.run(*args)
        return np.fromfile(p("q.bin"), np.uint8).reshape(x.shape[0], -1)

    def dequant(self, t, q, n):
        p = lambda s: os.path.join(self.tmp, s)
        np.ascontiguousarray(q, np.uint8).tofile(p("q.bin"))
        self.run("dequant", t, n, p("q.bin"), p("y.f32"))
        return np.fromfile(p("y.f32"), "<f4").reshape(q.shape[0], n)


def tie_rows(rng, n, rows):
    """Blocks of 32 whose values sit on the rounding midpoints of each grid once its scale is fixed by
    a planted extreme (the first element): Q4_0/Q5_0 (max -8/-16: d = 1, halves), Q8_0 (absmax 127:
    d = 1, halves), Q4_1/Q5_1 (min 0, max 15/31: d = 1, halves), IQ4_NL (midpoints of its grid),
    MXFP4 (absmax 6: midpoints of the E2M1 values)."""
    mid_nl = (K_IQ4NL[1:] + K_IQ4NL[:-1]) / 2
    mid_e2m1 = np.concatenate([(K_E2M1[1:] + K_E2M1[:-1]) / 2, -(K_E2M1[1:] + K_E2M1[:-1]) / 2])
    kinds = [
        lambda: np.r_[-8, rng.integers(-16, 17, 31) / 2],
        lambda: np.r_[-16, rng.integers(-32, 33, 31) / 2],
        lambda: np.r_[127, rng.integers(-254, 255, 31) / 2],
        lambda: np.r_[0, 15, rng.integers(0, 31, 30) / 2],
        lambda: np.r_[0, 31, rng.integers(0, 63, 30) / 2],
        lambda: np.r_[-127, rng.choice(mid_nl, 31)],
        lambda: np.r_[6, rng.choice(mid_e2m1, 31)],
        lambda: np.r_[-0.5, rng.integers(-2, 3, 31) / 4],  # nearest_int ties for the k-quants' scales
    ]
    out = []
    for r in range(rows):
        blocks = [kinds[(r * 3 + b) % len(kinds)]() for b in range(n // 32)]
        out.append(np.concatenate(blocks) * (2.0 ** (r % 3 - 1)))  # power-of-2 scales keep the ties exact
    return np.array(out, np.float32)


def block_cases(rng, n, blck):
    """(name, rows x n float32) adversarial inputs for the block types."""
    g = lambda *s: rng.standard_normal(s).astype(np.float32)
    outlier = g(3, n) * 0.02
    outlier[0, n // 3], outlier[1, 7], outlier[2, n - 1] = 10.0, -10.0, 3e3
    one_block = np.zeros((2, n), np.float32)
    one_block[:, 64:96] = g(2, 32)
    sparse = g(2, n) * (rng.random((2, n)) < 0.1)
    blockscale = g(3, n) * (10.0 ** rng.uniform(-3, 3, (3, n // 32, 1))).repeat(32, 1).reshape(3, n)
    single_tiny = np.zeros((1, n), np.float32)
    single_tiny[0, ::32] = 1e-40
    cases = [
        ("gaussian", g(4, n)),
        ("gaussian_0.02", g(4, n) * 0.02),
        ("student_t2", rng.standard_t(2, (3, n)).astype(np.float32)),
        ("cauchy_0.01", (rng.standard_cauchy((2, n)) * 0.01).astype(np.float32)),
        ("zero", np.zeros((2, n), np.float32)),
        ("constant", np.array([[0.37] * n, [-1.25] * n, [1e-3] * n], np.float32)),
        ("tiny_1e-30", g(2, n) * 1e-30),
        ("subnormal_1e-39", g(2, n) * 1e-39),
        ("single_subnormal", single_tiny),
        ("huge_1e4", g(2, n) * 1e4),
        ("huge_1e6", g(1, n) * 1e6),
        ("outlier", outlier),
        ("ties", tie_rows(rng, n, 6)),
        ("negative_only", -np.abs(g(2, n)) - 0.1),
        ("max_negative", -np.abs(g(1, n)) * 0.02),
        ("positive_only", np.abs(g(2, n)) + 0.1),
        ("block_scales", blockscale),
        ("sparse", sparse),
        ("one_block", one_block),
    ]
    if n == 4096:  # bulk: near-ties of the searches' float sums are rare, so many ordinary blocks
        cases.append(("bulk_gaussian", g(256, n) * (0.02 * 2.0 ** rng.uniform(-4, 4, (256, 1)))))
    if blck <= 32:
        # Non-finite input is outside llama-quantize's contract (it validates its tensors), but the
        # 32-block references mirror what ggml's build does with it (NaN-skipping maxima, the casts of
        # NaN/inf to int8), so they are held to it too.
        nf = g(4, n)
        nf[0, 5], nf[1, 40], nf[2, 70], nf[3, ::7] = np.nan, np.inf, -np.inf, np.nan
        cases.append(("nonfinite", nf))
    return [(name, np.ascontiguousarray(x, np.float32)) for name, x in cases]


def float_specials(rng):
    """Every F16 and BF16 value, the midpoints between neighbours (ties) and one float32 ulp either
    side, float32 subnormals, infinities, NaNs with payloads, random bit patterns."""
    h = np.arange(65536, dtype=np.uint32)
    f16 = h.astype(np.uint16).view(np.float16).astype(np.float32)
    fin = np.sort(f16[np.isfinite(f16)])
    mid16 = ((fin[1:].astype(np.float64) + fin[:-1]) / 2).astype(np.float32)
    bf = (h << 16).view(np.float32)
    mid_bf = ((h << 16) | 0x8000).view(np.float32)
    sets = [f16, mid16, np.nextafter(mid16, np.float32(np.inf)), np.nextafter(mid16, np.float32(-np.inf)),
            bf, mid_bf, ((h << 16) | 0x7FFF).view(np.float32), ((h << 16) | 0x8001).view(np.float32),
            np.array([65504, 65519.996, 65520, 65536, 1e-45, -1e-45, 5.96e-8, 2.98e-8, 2.9802326e-8,
                      3.4e38, -3.4e38, np.inf, -np.inf, np.nan, -0.0], np.float32),
            rng.integers(0, 2**32, 1 << 18, dtype=np.uint64).astype(np.uint32).view(np.float32)]
    x = np.concatenate(sets)
    return np.concatenate([x, np.zeros(-len(x) % 4096, np.float32)])


def imp_vectors(rng, n):
    """(name, n float32) importance rows: random positive, with zeros, spiky."""
    rand = rng.lognormal(0, 1.5, n).astype(np.float32)
    zeros = rand * (rng.random(n) < 0.7)
    zeros[:32] = 0  # one whole block without weight
    spiky = np.full(n, 1e-6, np.float32)
    spiky[rng.integers(0, n, n // 64)] = 1e3
    return [("imp_random", rand), ("imp_zeros", zeros.astype(np.float32)), ("imp_spiky", spiky)]


def same_floats(a, b, nan_any):
    """Bitwise identical; with nan_any, NaN payloads aside (random bytes decode NaN scales, whose
    payload a product keeps from whichever operand the compiler put first)."""
    same = a.view(np.uint32) == b.view(np.uint32)
    if nan_any:
        same |= np.isnan(a) & np.isnan(b)
    return same


class Oracle:
    def __init__(self, lib, rows):
        self.lib, self.rows = lib, rows
        self.failures = 0
        self.stats = {}  # type name -> [rows, bytes, rows with imp, bytes with imp, floats dequantized]

    def fail(self, msg):
        self.failures += 1
        if self.failures <= 20:
            print("FAIL " + msg)

    def compare_bytes(self, tname, t, bs, blck, case, x, imp_name, imp):
        want = ggml_quantize(self.lib, t, x, imp)
        got = self.rows.quantize(t, x, imp)
        st = self.stats[tname]
        st[0 if imp is None else 2] += x.shape[0]
        st[1 if imp is None else 3] += want.size
        if got.shape != want.shape:
            self.fail(f"{tname} {case}: ggml_rows wrote {got.shape}, ggml {want.shape}")
            return want
        for r in np.nonzero((got != want).any(axis=1))[0]:
            b = int(np.nonzero(got[r] != want[r])[0][0]) // bs
            xs = x[r, b * blck:(b + 1) * blck]
            self.fail(f"{tname} {case} n={x.shape[1]} row {r} {imp_name}: block {b} differs\n"
                      f"  ggml   {want[r, b * bs:(b + 1) * bs].tobytes().hex()}\n"
                      f"  qshard {got[r, b * bs:(b + 1) * bs].tobytes().hex()}\n"
                      f"  x[:8]  {np.array2string(xs[:8], precision=9)}")
        return want

    def compare_dequant(self, tname, t, q, n, case, nan_any=False):
        want = ggml_dequant(self.lib, t, q, n)
        got = self.rows.dequant(t, q, n)
        self.stats[tname][4] += want.size
        bad = ~same_floats(got, want, nan_any)
        if bad.any():
            r, i = map(int, np.argwhere(bad)[0])
            self.fail(f"{tname} dequant {case} n={n}: row {r} elem {i}: ggml {want[r, i]!r} "
                      f"(0x{want[r, i:i + 1].view(np.uint32)[0]:08x}) qshard {got[r, i]!r} "
                      f"(0x{got[r, i:i + 1].view(np.uint32)[0]:08x}); {int(bad.sum())} differ")

    def check_type(self, t, tname, blck, bs, rng, sizes):
        self.stats[tname] = [0, 0, 0, 0, 0]
        tr = self.lib.ggml_get_type_traits(t).contents
        if (tr.blck_size, tr.type_size) != (blck, bs):
            self.fail(f"{tname}: qshard's block is {blck} elems / {bs} bytes, ggml's {tr.blck_size} / {tr.type_size}")
            return
        for n in sizes:
            cases = block_cases(rng, n, blck)
            if blck == 1:  # F16, BF16: every representable value and tie as well
                cases.append(("float_specials", float_specials(rng).reshape(-1, n)))
            imps = [("no_imp", None)] + imp_vectors(rng, n)
            if self.lib.ggml_quantize_requires_imatrix(t):
                imps = imps[1:]
            for case, x in cases:
                for imp_name, imp in imps:
                    q = self.compare_bytes(tname, t, bs, blck, case, x, imp_name, imp)
                    self.compare_dequant(tname, t, q, n, f"{case} {imp_name}")
            # Arbitrary block bytes (scales may decode to inf/NaN): dequant only.
            q = rng.integers(0, 256, (4, n // blck * bs), dtype=np.uint8)
            self.compare_dequant(tname, t, q, n, "random bytes", nan_any=True)
        if blck == 1 and tname == "F16":  # every half, NaN payloads included, bitwise
            self.compare_dequant(tname, t, np.arange(65536, dtype=np.uint16).view(np.uint8).reshape(16, -1),
                                 4096, "all halves")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", required=True, help="the ggml_rows program (build/tests/ggml_rows)")
    ap.add_argument("--quick", action="store_true", help="n_per_row 256 only")
    ap.add_argument("--types", help="comma-separated type names to check (default: all qshard lists)")
    a = ap.parse_args()
    lib = load_ggml()
    with tempfile.TemporaryDirectory(prefix="qs_ggml_oracle.") as tmp:
        rows = Rows(a.rows, tmp)
        types = rows.types()
        if a.types:
            want = {s.strip().upper() for s in a.types.split(",")}
            types = [t for t in types if t[1].upper() in want]
        oracle = Oracle(lib, rows)
        for t, tname, blck, bs in types:
            if t == 0:  # F32: a copy, not a quantizer
                continue
            oracle.check_type(t, tname, blck, bs, np.random.default_rng(1234 + t), (256,) if a.quick else SIZES)
    print(f"{'type':8} {'rows':>6} {'bytes':>10} {'rows+imp':>9} {'bytes+imp':>10} {'dequant floats':>15}")
    for tname, s in oracle.stats.items():
        print(f"{tname:8} {s[0]:6d} {s[1]:10d} {s[2]:9d} {s[3]:10d} {s[4]:15d}")
    if oracle.failures:
        print(f"ggml oracle: {oracle.failures} differences")
        return 1
    print(f"ggml oracle: {len(oracle.stats)} types byte-identical to llama.cpp's ggml_quantize_chunk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
