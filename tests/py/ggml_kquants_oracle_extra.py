#!/usr/bin/env python3
"""ggml_kquants_oracle_extra.py — more rows for the k-quants (Q2_K..Q6_K) against llama.cpp, beside
ggml_oracle.py (whose loader and ggml_rows driver it reuses).

The k-quant fits compare candidate grids by float error sums, keep the first strictly better one, and
round ratios with nearest_int: a single operation out of order shows only where a comparison or a
rounding is close. These rows make that common: small-integer and half-integer values (exact ties in
the error sums and in the requantization), sub-blocks of one or two levels, constant sub-blocks of
either sign, exact ramps s*l - a (the unit test's constructions), a single value per sub-block; and
importance vectors that are all ones, integer-valued, zero on whole sub-blocks, all zero, tiny, huge.
Plus volume: many random rows of several distributions. Every byte and every dequantized float must
be identical. Exit 0 identical, 1 any difference, 77 without llama_cpp.

usage: ggml_kquants_oracle_extra.py --rows BUILD/tests/ggml_rows [--types Q4_K,...]
"""
import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ggml_oracle as go  # noqa: E402

KQUANTS = {"Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14}


def per_sub(rng, rows, n, sub, make):
    """rows x n, each sub-block of `sub` values from make(rng, sub)."""
    return np.array([np.concatenate([make(rng, sub) for _ in range(n // sub)]) for _ in range(rows)], np.float32)


def cases(rng, n):
    g = lambda *s: rng.standard_normal(s).astype(np.float32)
    ramp = lambda r, s: (r.integers(0, 64) * (np.arange(s) % 16) - r.integers(0, 64)).astype(np.float32)
    two = lambda r, s: r.choice(r.normal(size=2), s).astype(np.float32)
    one = lambda r, s: np.eye(s, dtype=np.float32)[r.integers(0, s)] * np.float32(r.normal())
    const = lambda r, s: np.full(s, r.normal() * 3, np.float32)
    mixed = lambda r, s: [two, one, const, lambda q, k: q.integers(-3, 4, k).astype(np.float32)][r.integers(0, 4)](r, s)
    return [
        ("int_-2..2", rng.integers(-2, 3, (8, n)).astype(np.float32)),
        ("int_0..7", rng.integers(0, 8, (4, n)).astype(np.float32)),
        ("int_-40..40", rng.integers(-40, 41, (4, n)).astype(np.float32)),
        ("halves", (rng.integers(-64, 65, (4, n)) / 2).astype(np.float32)),
        ("ramps16", per_sub(rng, 4, n, 32, ramp)),
        ("two_level16", per_sub(rng, 4, n, 16, two)),
        ("two_level32", per_sub(rng, 4, n, 32, two)),
        ("one_per16", per_sub(rng, 3, n, 16, one)),
        ("const16", per_sub(rng, 3, n, 16, const)),
        ("mixed16", per_sub(rng, 8, n, 16, mixed)),
        ("laplace", rng.laplace(size=(8, n)).astype(np.float32)),
        ("uniform", rng.uniform(-1, 1, (8, n)).astype(np.float32)),
        ("gaussian_many", g(64, n)),
        ("gaussian_offset", g(8, n) + 2),
        ("lognormal", rng.lognormal(0, 2, (4, n)).astype(np.float32) * np.sign(g(4, n))),
    ]


def imps(rng, n):
    zero_sub = rng.lognormal(0, 1, n).astype(np.float32)
    for s in rng.choice(n // 16, max(1, n // 64), replace=False):
        zero_sub[16 * s:16 * s + 16] = 0
    return [
        ("no_imp", None),
        ("imp_ones", np.ones(n, np.float32)),
        ("imp_int", rng.integers(1, 5, n).astype(np.float32)),
        ("imp_lognormal", rng.lognormal(0, 2, n).astype(np.float32)),
        ("imp_zero_subblocks", zero_sub),
        ("imp_all_zero", np.zeros(n, np.float32)),
        ("imp_tiny", (rng.lognormal(0, 1, n) * 1e-30).astype(np.float32)),
        ("imp_huge", (rng.lognormal(0, 1, n) * 1e30).astype(np.float32)),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", required=True, help="the ggml_rows program (build/tests/ggml_rows)")
    ap.add_argument("--types", default=",".join(KQUANTS), help="comma-separated k-quant names")
    a = ap.parse_args()
    lib = go.load_ggml()
    with tempfile.TemporaryDirectory(prefix="qs_kquants_extra.") as tmp:
        rows = go.Rows(a.rows, tmp)
        listed = {name.upper(): (t, blck, bs) for t, name, blck, bs in rows.types()}
        oracle = go.Oracle(lib, rows)
        for tname in (s.strip().upper() for s in a.types.split(",")):
            if tname not in listed:
                oracle.fail(f"{tname}: ggml_rows does not list it")
                continue
            t, blck, bs = listed[tname]
            oracle.stats[tname] = [0, 0, 0, 0, 0]
            rng = np.random.default_rng(4321 + t)
            for n in (256, 1024):
                for case, x in cases(rng, n):
                    for imp_name, imp in imps(rng, n):
                        q = oracle.compare_bytes(tname, t, bs, blck, case, x, imp_name, imp)
                        oracle.compare_dequant(tname, t, q, n, f"{case} {imp_name}")
    print(f"{'type':8} {'rows':>6} {'bytes':>10} {'rows+imp':>9} {'bytes+imp':>10} {'dequant floats':>15}")
    for tname, s in oracle.stats.items():
        print(f"{tname:8} {s[0]:6d} {s[1]:10d} {s[2]:9d} {s[3]:10d} {s[4]:15d}")
    if oracle.failures:
        print(f"k-quant extra oracle: {oracle.failures} differences")
        return 1
    print(f"k-quant extra oracle: {len(oracle.stats)} types byte-identical to llama.cpp's ggml_quantize_chunk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
