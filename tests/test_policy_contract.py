"""The contract every registered policy keeps (cachetools' CacheTestMixin idea).

Parametrized over `cachesim.policy_names()`, so a policy registered later is covered without
touching this file. A policy that may refuse to insert a missed key (admission) declares
`params={"may_not_insert": True}` and is spared the checks that assume every miss is inserted.
"""
import numpy as np
import pytest

import cachesim
from cachesim.simulate.access import Replayer

POLICIES = cachesim.policy_names()


def _policy(name):
    pol = cachesim.get_policy(name)
    if pol.params.get("needs_ways"):
        pytest.skip(f"{name} needs --ways")
    return pol


def _inserts_every_miss(pol):
    return not pol.params.get("may_not_insert", False)


def _replay(trace, name, capacity):
    """The Result, or None when the policy refuses this capacity with a CachesimError (S3-FIFO
    needs room for its small FIFO): refusing clearly is also within the contract."""
    try:
        return cachesim.replay(trace, name, capacity, ways=None)  # the policy, not a set mapping
    except cachesim.CachesimError as exc:
        assert "capacity" in str(exc) or "size" in str(exc), exc
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


@pytest.mark.parametrize("name", POLICIES)
def test_deterministic_and_resumable(name):
    pol = _policy(name)
    tr = _trace(seed=3, tables=2)
    a = cachesim.replay(tr, name, 12)
    b = cachesim.replay(tr, name, 12)
    assert (a.hits, a.misses, a.evictions) == (b.hits, b.misses, b.evictions)
    if pol.is_python:
        return
    n = len(tr)
    rp = Replayer(tr, pol, 12, True)
    for start, stop in [(0, 1), (1, 400), (400, 401), (401, n)]:
        rp.feed(start, stop)
    assert int(rp.counters[:, 0].sum()) == a.hits
    assert int(rp.counters[:, 1].sum()) == a.misses
