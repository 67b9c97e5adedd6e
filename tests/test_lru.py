"""LRU: hand-traced order, the plain-Python oracle on random traces, and golden counts."""
import json

import numpy as np
from hypothesis import given, strategies as st

import cachesim
from tests import naive


def test_hand_traced_eviction_order():
    # capacity 2: a b a c (evicts b) b (miss, evicts a) a (miss)
    r = cachesim.replay(cachesim.Trace.from_keys([1, 2, 1, 3, 2, 1]), "lru", 2)
    assert (r.hits, r.misses, r.evictions) == (1, 5, 3)


@given(st.lists(st.integers(0, 30), min_size=1, max_size=300), st.integers(1, 40))
def test_matches_naive_unit(keys, capacity):
    r = cachesim.replay(cachesim.Trace.from_keys(keys), "lru", capacity, ways=None)
    h, m, _, e = naive.lru(keys, capacity)
    assert (r.hits, r.misses, r.evictions) == (h, m, e)


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 50)), min_size=1, max_size=300),
       st.integers(1, 300))
def test_matches_naive_bytes(pairs, capacity):
    keys = [k for k, _ in pairs]
    # an object keeps one size, as in real traces
    size_of = {k: s for k, s in pairs}
    sizes = [size_of[k] for k in keys]
    r = cachesim.replay(cachesim.Trace.from_keys(keys, sizes), "lru", f"{capacity}B")
    assert (r.hits, r.misses, r.miss_bytes, r.evictions) == naive.lru(keys, capacity, sizes, unit=False)


def _feed(kernel, trace, capacity, chunks):
    """Counters and state after feeding `trace` to `kernel` in the given chunks (rows, one
    table)."""
    from cachesim.simulate.access import Replayer
    rp = Replayer(trace, cachesim.get_policy("lru"), capacity, True)
    empty = np.zeros(0, dtype=np.int64)
    for start, stop in chunks:
        kernel(trace.dense_ids[start:stop], empty, empty, trace.key_table, True, capacity, start,
               rp.state, rp.counters)
    (pos, queue, _stale, meta), _, used = rp.state
    assert rp.counters[0, 3] > 0  # the trace evicts
    return rp.counters.tolist(), pos.tolist(), queue[meta[0]:meta[1]].tolist(), meta.tolist(), \
        used.tolist()


def test_chunks_and_compactions_resume_exactly():
    """The kernel resumes across chunks and queue compactions (a small capacity compacts often):
    the same counters and state as one whole call, and the misses of tests/naive.py's LRU."""
    from cachesim.policies import lru
    rng = np.random.default_rng(7)
    for capacity in (1, 3, 40):
        tr = cachesim.Trace.from_keys(rng.zipf(1.2, 6000) % 300)
        n = len(tr)
        chunked = _feed(lru.kernel, tr, capacity, [(0, 1), (1, 2500), (2500, n)])
        whole = _feed(lru.kernel, tr, capacity, [(0, n)])
        assert chunked[0] == whole[0] and chunked[1] == whole[1], capacity
        assert chunked[2] == whole[2], capacity  # the live queue, oldest first
        assert chunked[0][0][1] == naive.lru(tr.dense_ids.tolist(), capacity)[1]


def test_golden_cloudphysics(shared_data):
    exp = json.loads((shared_data / "cloudphysics/expected.json").read_text())
    txt = cachesim.read_trace(shared_data / "cloudphysics/cloudPhysicsIO.txt")
    got = [cachesim.replay(txt, "lru", s, ways=None).misses  # libCacheSim: fully associative
           for s in exp["unit_size_lru"]["sizes_objects"]]
    assert got == exp["unit_size_lru"]["misses"]
    binf = cachesim.read_trace(shared_data / "cloudphysics/cloudPhysicsIO.oracleGeneral.bin")
    bc = exp["byte_capacity"]
    res = [cachesim.replay(binf, "lru", f"{s}MiB") for s in bc["sizes_mib"]]
    assert [r.misses for r in res] == bc["misses"]["LRU"]
    assert [r.miss_bytes for r in res] == bc["miss_bytes"]["LRU"]
    for n, ratio in exp["lru_miss_ratio_at_objects"].items():
        if n.isdigit() and int(n) > 0:
            assert abs(cachesim.replay(txt, "lru", int(n), ways=None).miss_ratio - ratio) < 1e-4
