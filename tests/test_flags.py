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


ops_st = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 2)), min_size=1, max_size=200)


@given(n=st.integers(1, 41), ops=ops_st)
def test_bits_match_a_list(n, ops):
    ops = [(k % n, op) for k, op in ops]
    b = bits(n)
    assert b.shape[0] == (n + 7) // 8 and not b.any()
    ks, codes = (np.array(x, dtype=np.int64) for x in zip(*ops))
    got = np.zeros(len(ops), dtype=np.int64)
    _apply_bits(b, ks, codes, got)
    want, seen = [0] * n, []
    for k, op in ops:  # 0 set, 1 clear, 2 read only
        want[k] = 1 if op == 0 else 0 if op == 1 else want[k]
        seen.append(want[k])
    assert got.tolist() == seen
    assert bit_values(b, n).tolist() == want


@given(n=st.integers(1, 41), ops=st.lists(st.tuples(st.integers(0, 40), st.integers(-1, 3)),
                                           min_size=1, max_size=200))
def test_pairs_match_a_list(n, ops):
    ops = [(k % n, v) for k, v in ops]
    b = pairs(n)
    assert b.shape[0] == (n + 3) // 4 and not b.any()
    ks, vs = (np.array(x, dtype=np.int64) for x in zip(*ops))
    got = np.zeros(len(ops), dtype=np.int64)
    _apply_pairs(b, ks, vs, got)
    want, seen = [0] * n, []
    for k, v in ops:  # v = -1: read only
        want[k] = v if v >= 0 else want[k]
        seen.append(want[k])
    assert got.tolist() == seen
    assert pair_values(b, n).tolist() == want
