"""The contract every registered policy keeps (cachetools' CacheTestMixin idea).

Parametrized over `cachesim.policy_names()`, so a policy registered later is covered without
touching this file.
"""
import numpy as np
import pytest

import cachesim
from cachesim.simulate.access import Replayer

POLICIES = cachesim.policy_names()


def _policy(name):
    return cachesim.get_policy(name)


def _inserts_every_miss(pol):
    return True  # every built-in policy inserts each missed object that fits in these traces


def _replay(trace, name, capacity):
    """The Result, or None when the policy refuses this capacity (S3-FIFO needs room for its
    small FIFO). Refusing is within the contract only as a CachesimError that names the policy
    and the capacity rule, and only for a small capacity: a policy that refuses a roomy cache,
    or says so vaguely, fails."""
    try:
        return cachesim.replay(trace, name, capacity, ways=None)  # the policy, not a set mapping
    except cachesim.CachesimError as exc:
        msg = str(exc)
        assert name in msg and "capacity" in msg, f"vague refusal: {msg}"
        cachesim.replay(trace, name, 1000, ways=None)  # raises if it refuses a roomy cache
        return None


def _trace(seed=0, n=1500, n_keys=60, sizes=False, tables=1):
    rng = np.random.default_rng(seed)
    keys = (rng.zipf(1.3, n) % n_keys).astype(np.int64)
    table = rng.integers(0, tables, n)
    sz = (rng.integers(1, 100, n_keys)[keys]) if sizes else None
    return cachesim.Trace(table=table, row=keys, size=sz)


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("capacity", [1, 7, "25%"])
def test_counts_add_up(name, capacity):
    _policy(name)
    tr = _trace(tables=3)
    r = _replay(tr, name, capacity)
    if r is None:
        return
    assert r.hits + r.misses == r.requests == len(tr)
    assert 0 <= r.evictions <= r.misses
    assert r.misses >= tr.n_distinct  # a key's first access always misses
    assert sum(r.per_table["hits"]) == r.hits and sum(r.per_table["misses"]) == r.misses
    req = np.array(r.per_table["hits"]) + np.array(r.per_table["misses"])
    assert req.tolist() == np.bincount(tr.table, minlength=tr.n_tables).tolist()
    assert r.hit_ratio == pytest.approx(r.hits / r.requests)


@pytest.mark.parametrize("name", POLICIES)
def test_room_for_everything_misses_only_compulsorily(name):
    pol = _policy(name)
    tr = _trace(seed=1)
    r = cachesim.replay(tr, name, tr.n_distinct, ways=None)
    if _inserts_every_miss(pol):
        assert (r.misses, r.evictions) == (tr.n_distinct, 0)
    if pol.supports_bytes:
        trb = _trace(seed=1, sizes=True)
        rb = cachesim.replay(trb, name, f"{int(trb.size.max()) * trb.n_distinct}B")
        if _inserts_every_miss(pol):
            assert (rb.misses, rb.evictions) == (trb.n_distinct, 0)
            # miss bytes: the first access of each object
            first = np.unique(trb.dense_ids, return_index=True)[1]
            assert rb.miss_bytes == int(trb.size[first].sum())


@pytest.mark.parametrize("name", POLICIES)
def test_capacity_one_hits_only_repeats(name):
    pol = _policy(name)
    keys = np.random.default_rng(2).integers(0, 4, 500)
    r = _replay(cachesim.Trace.from_keys(keys), name, 1)
    if r is None:
        return
    repeats = int((keys[1:] == keys[:-1]).sum())
    if _inserts_every_miss(pol):
        assert r.hits == repeats
    else:
        assert r.hits <= repeats


@pytest.mark.parametrize("name", POLICIES)
def test_object_larger_than_cache_never_hits(name):
    pol = _policy(name)
    if not pol.supports_bytes:
        pytest.skip(f"{name} counts rows only")
    keys = [1, 2, 1, 2, 1, 2, 3, 3]
    sizes = [10, 5000, 10, 5000, 10, 5000, 20, 20]
    r = cachesim.replay(cachesim.Trace.from_keys(keys, sizes), name, "1000B")
    # 2 (5000 B) never fits, so it misses every time and never displaces 1 or 3
    assert r.misses >= 3 + 2
    if _inserts_every_miss(pol):
        assert (r.hits, r.misses) == (3, 5)


def _counts(r):
    return (r.hits, r.misses, r.miss_bytes, r.evictions, r.per_table)


def _dirty_heap():
    """Leave freed memory full of junk, so that state built with np.empty (not zeroed) would
    likely start from it."""
    for n in (1 << 10, 1 << 14, 1 << 18):
        junk = np.full(n, 0x5A5A5A5A, dtype=np.int64)
        del junk


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("capacity", [12, "900B"])
def test_deterministic(name, capacity):
    """Same trace, same seed: the same counts, per table, however the memory it starts in was
    left (an uninitialised state array or an unseeded generator would differ)."""
    pol = _policy(name)
    if capacity == "900B" and not pol.supports_bytes:
        pytest.skip(f"{name} counts rows only")
    tr = _trace(seed=3, tables=2, sizes=True)
    a = _replay(tr, name, capacity)
    if a is None:
        return
    _dirty_heap()
    b = cachesim.replay(tr, name, capacity, ways=None)
    assert _counts(a) == _counts(b)


def _flat_state(state):
    if isinstance(state, tuple):
        return [x for part in state for x in _flat_state(part)]
    return [np.asarray(state)]


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("unit", [True, False])
def test_resumable(name, unit):
    """Fed in chunks (of one access, too), a kernel ends with exactly the counters (every
    column, every table) and the state of one whole feed: nothing it keeps in registers within a
    chunk is lost between chunks."""
    pol = _policy(name)
    if pol.is_python or (not unit and not pol.supports_bytes):
        pytest.skip(f"{name}: no kernel state in this mode")
    tr = _trace(seed=3, tables=2, sizes=not unit)
    capacity = 30 if unit else 1800  # S3-FIFO caches nothing with a 1-row small FIFO
    n = len(tr)
    whole = Replayer(tr, pol, capacity, unit)
    whole.feed(0, n)
    rp = Replayer(tr, pol, capacity, unit)
    for start, stop in [(0, 1), (1, 400), (400, 401), (401, 402), (402, n)]:
        rp.feed(start, stop)
    assert rp.counters.tolist() == whole.counters.tolist()
    assert int(whole.counters[:, 3].sum()) > 0  # the trace does evict
    for got, want in zip(_flat_state(rp.state), _flat_state(whole.state), strict=True):
        np.testing.assert_array_equal(got, want)
