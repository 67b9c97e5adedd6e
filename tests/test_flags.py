"""Per-key flags packed in bytes (cachesim/policies/flags.py), against a plain list: random
sequences of sets, clears and puts, inside numba kernels and read back for inspection."""
import numba
import numpy as np
from hypothesis import given, strategies as st

from cachesim.policies.flags import (bit_clear, bit_get, bit_set, bit_values, bits, pair_get,
                                     pair_put, pair_values, pairs)


@numba.njit
def _apply_bits(b, ks, ops, got):
    for i in range(ks.shape[0]):
        if ops[i] == 0:
            bit_set(b, ks[i])
        elif ops[i] == 1:
            bit_clear(b, ks[i])
        got[i] = bit_get(b, ks[i])


@numba.njit
def _apply_pairs(b, ks, vs, got):
    for i in range(ks.shape[0]):
        if vs[i] >= 0:
            pair_put(b, ks[i], vs[i])
        got[i] = pair_get(b, ks[i])


def _check(n, ops, make, apply, values, width, step):
    """Apply `ops` [(key, code)] in a kernel to fresh flags; each read back, and the flags at
    the end, equal a plain list's (`step(old, code)` -> new value)."""
    ops = [(k % n, code) for k, code in ops]
    b = make(n)
    assert b.shape[0] == -(-n * width // 8) and not b.any()
    ks, codes = (np.array(x, dtype=np.int64) for x in zip(*ops))
    got = np.zeros(len(ops), dtype=np.int64)
    apply(b, ks, codes, got)
    want, seen = [0] * n, []
    for k, code in ops:
        want[k] = step(want[k], code)
        seen.append(want[k])
    assert got.tolist() == seen
    assert values(b, n).tolist() == want


@given(n=st.integers(1, 41), ops=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 2)),
                                           min_size=1, max_size=200))
def test_bits_match_a_list(n, ops):  # code 0 sets, 1 clears, 2 only reads
    _check(n, ops, bits, _apply_bits, bit_values, 1,
           lambda old, code: 1 if code == 0 else 0 if code == 1 else old)


@given(n=st.integers(1, 41), ops=st.lists(st.tuples(st.integers(0, 40), st.integers(-1, 3)),
                                           min_size=1, max_size=200))
def test_pairs_match_a_list(n, ops):  # code v >= 0 puts v, -1 only reads
    _check(n, ops, pairs, _apply_pairs, pair_values, 2,
           lambda old, code: code if code >= 0 else old)
