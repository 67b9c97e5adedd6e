"""sieve, arc and s3fifo: hand-traced states, plain-Python oracles on random traces (unit and byte
capacity), chunked replay, libCacheSim's golden counts, and the libcachesim wheel's counts."""
import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

import cachesim
from cachesim.simulate.access import Replayer
from cachesim.policies import arc as arc_mod, s3fifo as s3fifo_mod
from cachesim.policies.flags import pair_values
from tests import naive

ADVANCED = {"sieve": naive.sieve, "arc": naive.arc, "s3fifo": naive.s3fifo}
WHEEL = {"sieve": "Sieve", "arc": "ARC", "s3fifo": "S3FIFO"}

keys_st = st.lists(st.integers(0, 40), min_size=1, max_size=300)


@st.composite
def sized_trace(draw, max_size=50):
    """Keys with one size per object (as in real traces), sizes >= 1."""
    keys = draw(keys_st)
    size_of = draw(st.lists(st.integers(1, max_size), min_size=41, max_size=41))
    return keys, [size_of[k] for k in keys]


def counts(r):
    return r.hits, r.misses, r.miss_bytes, r.evictions


def _state_after(keys, name, capacity):
    """The policy's state arrays after replaying `keys` (dense id i = i-th distinct key)."""
    tr = cachesim.Trace.from_keys(keys)
    rp = Replayer(tr, cachesim.get_policy(name), capacity, True)
    rp.feed(0, len(tr))
    return tr, rp


def _members(tr, where, code):
    return sorted(int(k) for k in tr.distinct_keys[np.flatnonzero(where == code)])


# -- hand-traced states ---------------------------------------------------------------------------

def test_sieve_hand_traced_hand_stays_put():
    # cap 3: a b c fill; a hit (visited); d: the hand clears a, evicts b and stops on c;
    # c hit; e: the hand, still on c, clears it and evicts d (not a, the oldest: a hand that
    # restarted from the tail would evict a) and runs off the newest end; a hits; d misses: the
    # hand restarts at the tail, clears a and evicts c
    a, b, c, d, e = 1, 2, 3, 4, 5
    keys = [a, b, c, a, d, c, e, a, d]
    r = cachesim.replay(cachesim.Trace.from_keys(keys), "sieve", 3)
    assert (r.hits, r.misses, r.evictions) == (3, 6, 3)
    assert naive.sieve(keys, 3)[:2] == (3, 6)
    # FIFO evicts a at d, so the second-last a misses: 2 hits against SIEVE's 3
    assert cachesim.replay(cachesim.Trace.from_keys(keys[:8]), "fifo", 3).hits == 2
    assert cachesim.replay(cachesim.Trace.from_keys(keys[:8]), "sieve", 3).hits == 3
    tr, rp = _state_after(keys, "sieve", 3)
    (queue, flag, meta), _, _ = rp.state  # the request loop's (policy state, stored, used)
    flag = pair_values(flag, len(tr.distinct_keys))  # two bits a key: 0 absent, 1, 2 visited
    assert sorted(int(k) for k in tr.distinct_keys[flag > 0]) == [a, d, e]
    assert flag[tr.distinct_keys.tolist().index(a)] == 1  # the hand cleared a's visit
    # the queue, oldest first with holes: a, e, d; the hand on e (next newer than c)
    live = queue[meta[1]:meta[0]]
    assert tr.distinct_keys[live[live >= 0]].tolist() == [a, e, d]
    assert tr.distinct_keys[queue[meta[2]]] == e



@pytest.mark.parametrize("capacity", [7, "300B"])
def test_sieve_queue_compaction_keeps_order_and_hand(capacity):
    """SIEVE's queue leaves holes and moves its live entries to the front when full (2 x the
    residents + 1024 slots): many compactions, each with the hand somewhere in the middle, give
    the plain-Python twin's counts."""
    rng = np.random.default_rng(11)
    keys = (rng.zipf(1.3, 30_000) % 500).tolist()
    sizes = [1 + k % 37 for k in keys]
    unit = isinstance(capacity, int)
    tr = cachesim.Trace.from_keys(keys, None if unit else sizes)
    r = cachesim.replay(tr, "sieve", capacity)
    want = (naive.sieve(keys, capacity) if unit else
            naive.sieve(keys, 300, sizes, unit=False))
    assert counts(r)[:2] == want[:2] and r.evictions == want[3]
    rp = Replayer(tr, cachesim.get_policy("sieve"), capacity if unit else 300, unit)
    rp.feed(0, len(tr))
    (queue, _, meta), _, _ = rp.state
    assert r.misses > 3 * queue.shape[0]  # so the queue was compacted at least twice
    assert meta[0] < queue.shape[0]

def test_arc_hand_traced_lists_and_p():
    # cap 2. a, b -> T1 [b a]; a hits -> T2 [a]; c: REPLACE moves T1's LRU b to B1 (|T1| = 1 > p
    # = 0); b: B1 hit, p = 0 + max(|B2|/|B1|, 1) = 1, REPLACE (|T1| = 1 is not > p) moves T2's
    # a to B2, b enters T2; a: B2 hit, p = 1 - max(0/1, 1) = 0, REPLACE moves c to B1
    a, b, c = 10, 20, 30
    keys = [a, b, a, c, b, a]
    tr, rp = _state_after(keys, "arc", 2)
    (node, _, _, _, total, p, _), _, _ = rp.state  # (policy state, stored, used)
    where = node[:, arc_mod.WHERE]
    assert _members(tr, where, arc_mod.T1) == []
    assert _members(tr, where, arc_mod.T2) == [a, b]
    assert _members(tr, where, arc_mod.B1) == [c]
    assert _members(tr, where, arc_mod.B2) == []
    assert p[0] == 0.0 and total.tolist() == [0, 0, 2, 1, 0]
    r = cachesim.replay(tr, "arc", 2)
    assert (r.hits, r.misses, r.evictions) == (1, 5, 3)
    # c: B1 hit, p = 0 + max(|B2| / |B1|, 1) = 1; T1 is empty, so T2's LRU (b) goes to B2
    tr, rp = _state_after(keys + [c], "arc", 2)
    (node, _, _, _, _, p, _), _, _ = rp.state
    where = node[:, arc_mod.WHERE]
    assert p[0] == 1.0
    assert _members(tr, where, arc_mod.T2) == [a, c]
    assert _members(tr, where, arc_mod.B2) == [b]


def test_s3fifo_hand_traced_queues():
    # cap 20: small 2, main 18, ghost 18. 1 and 2 fill small; while nothing was evicted yet and
    # small is full, 3..20 go to main. 1 hits twice (count 2). 21: small's oldest (1, count 2)
    # moves to main, the next (2, count 0) is evicted into the ghost, 21 enters small. 2: a
    # ghost hit, main (19 > 18) evicts its oldest (3, count 0), 2 enters main. 3: not in the
    # ghost (main evicted it), main evicts 4, 3 enters small.
    keys = [1, 2, *range(3, 21), 1, 1, 21, 2, 3]
    tr, rp = _state_after(keys, "s3fifo", 20)
    (_, code, _, _, _, _), _, _ = rp.state
    queue = code & 3
    assert _members(tr, queue, s3fifo_mod.SMALL) == [3, 21]
    assert _members(tr, queue, s3fifo_mod.MAIN) == [1, 2, *range(5, 21)]
    assert _members(tr, queue, s3fifo_mod.GHOST) == []
    r = cachesim.replay(tr, "s3fifo", 20)
    assert (r.hits, r.misses, r.evictions) == (2, 23, 3)
    assert naive.s3fifo(keys, 20) == (2, 23, 0, 3)


def test_s3fifo_queue_sizes_and_refusal():
    assert s3fifo_mod.queue_sizes(1000) == (100, 900, 900)
    assert s3fifo_mod.queue_sizes(128 << 20) == (13421772, 120795956, 120795955)
    with pytest.raises(cachesim.CachesimError, match="at least 10"):
        cachesim.replay(cachesim.Trace.from_keys([1, 2, 3]), "s3fifo", 9)


def test_s3fifo_object_as_large_as_small_queue_is_not_cached():
    # cap 100 B: small 10 B. A 10-byte object is not inserted (libCacheSim: it would empty the
    # small queue), an 11-byte one is refused outright, a 9-byte one is cached.
    r = cachesim.replay(cachesim.Trace.from_keys([1, 1, 2, 2, 3, 3], [10, 10, 11, 11, 9, 9]),
                        "s3fifo", "100B")
    assert (r.hits, r.misses) == (1, 5)


@pytest.mark.parametrize("name", list(ADVANCED))
def test_aliases(name):
    pol = cachesim.get_policy(name)
    for alias in pol.aliases:
        assert cachesim.get_policy(alias) is pol


# -- oracles on random traces ---------------------------------------------------------------------

def _capacity_ok(name, capacity):
    return name != "s3fifo" or s3fifo_mod.queue_sizes(capacity)[0] > 0


@pytest.mark.parametrize("name", list(ADVANCED))
@given(keys=keys_st, capacity=st.integers(1, 50))
def test_matches_naive_unit(name, keys, capacity):
    if not _capacity_ok(name, capacity):
        capacity += 10
    r = cachesim.replay(cachesim.Trace.from_keys(keys), name, capacity)
    h, m, _, e = ADVANCED[name](keys, capacity)
    assert (r.hits, r.misses, r.evictions) == (h, m, e)


@pytest.mark.parametrize("name", list(ADVANCED))
@given(trace=sized_trace(), capacity=st.integers(10, 400))
def test_matches_naive_bytes(name, trace, capacity):
    keys, sizes = trace
    r = cachesim.replay(cachesim.Trace.from_keys(keys, sizes), name, f"{capacity}B")
    assert counts(r) == ADVANCED[name](keys, capacity, sizes, unit=False)


@pytest.mark.parametrize("name", list(ADVANCED))
def test_chunked_replay_and_many_tables_match_one_pass(name):
    """State lives in arrays: feeding the trace in uneven chunks gives the same counts; a trace
    split over tables (same linearised keys) counts per table and sums to the same totals."""
    rng = np.random.default_rng(5)
    n = 3000
    table = rng.integers(0, 3, n)
    row = rng.zipf(1.2, n) % 200
    multi = cachesim.Trace(table=table, row=row, size=rng.integers(1, 64, 600)[row])
    single = cachesim.Trace.from_keys(multi.keys, multi.size)
    for cap in (40, "2000B"):
        whole = cachesim.replay(single, name, cap)
        per = cachesim.replay(multi, name, cap)
        assert counts(per) == counts(whole)
        req = np.array(per.per_table["hits"]) + np.array(per.per_table["misses"])
        assert req.tolist() == np.bincount(table, minlength=3).tolist()
        assert sum(per.per_table["evictions"]) == per.evictions
        unit = isinstance(cap, int)
        rp = Replayer(multi, cachesim.get_policy(name), 40 if unit else 2000, unit)
        for start, stop in [(0, 1), (1, 777), (777, 778), (778, n)]:
            rp.feed(start, stop)
        assert rp.counters.sum(axis=0).tolist() == [per.hits, per.misses, per.miss_bytes,
                                                    per.evictions]


# -- golden counts and the libcachesim wheel ------------------------------------------------------

def test_golden_cloudphysics(shared_data):
    exp = json.loads((shared_data / "cloudphysics/expected.json").read_text())
    bc = exp["byte_capacity"]
    trace = cachesim.read_trace(shared_data / "cloudphysics/cloudPhysicsIO.oracleGeneral.bin")
    for name, theirs in WHEEL.items():
        got = [cachesim.replay(trace, name, f"{s}MiB").misses for s in bc["sizes_mib"]]
        assert got == bc["misses"][theirs], name


def _wheel_misses(name, keys, sizes, capacity):
    lcs = pytest.importorskip("libcachesim")
    cache = getattr(lcs, WHEEL[name])(capacity, hashpower=12)  # small tables: fast to build
    hits = sum(cache.get(lcs.Request(obj_size=int(s), obj_id=int(k))) for k, s in zip(keys, sizes))
    return len(keys) - hits


@pytest.mark.parametrize("name", list(ADVANCED))
def test_same_counts_as_libcachesim_wheel(name):
    rng = np.random.default_rng(11)
    for trial in range(24):
        n_keys = int(rng.integers(5, 300))
        keys = (rng.zipf(1.2, int(rng.integers(50, 2000))) % n_keys).astype(np.int64)
        if trial % 2:  # unit sizes, capacity in objects
            capacity = int(rng.integers(10, 80))
            sizes = np.ones(keys.shape[0], np.int64)
            r = cachesim.replay(cachesim.Trace.from_keys(keys), name, capacity)
        else:
            capacity = int(rng.integers(10, 3000))
            sizes = rng.integers(1, 200, n_keys)[keys]
            r = cachesim.replay(cachesim.Trace.from_keys(keys, sizes), name, f"{capacity}B")
        assert r.misses == _wheel_misses(name, keys, sizes, capacity), (trial, capacity)


