"""Set-associative lru, lfu and fifo (`ways`): the plain-Python oracle on random multi-table
traces, W = C equal to the fully associative policy, sets taken from the linearised key, and
clear errors."""
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

import cachesim
from cachesim.cli import cli
from cachesim.hashing import set_index
from cachesim.trace import Trace
from tests import naive

RULES = ["lru", "lfu", "fifo"]


@st.composite
def multi_table_trace(draw):
    """A trace over 1-4 tables whose rows are scattered (not 0..n-1), so that linearisation and
    the hash of the key both matter."""
    n_tables = draw(st.integers(1, 4))
    stride = draw(st.sampled_from([1, 7, 1000, 123457]))
    pairs = draw(st.lists(st.tuples(st.integers(0, n_tables - 1), st.integers(0, 30)),
                          min_size=1, max_size=250))
    table = np.array([t for t, _ in pairs], dtype=np.int32)
    row = np.array([r * stride for _, r in pairs], dtype=np.int64)
    return cachesim.Trace(table=table, row=row)


def _counts(r):
    return r.hits, r.misses, 0, r.evictions


@pytest.mark.parametrize("rule", RULES)
@given(trace=multi_table_trace(), capacity=st.integers(1, 40), ways_pick=st.integers(0, 3))
def test_matches_naive(rule, trace, capacity, ways_pick):
    ways = [1, 2, max(1, capacity // 3), capacity][ways_pick]
    r = cachesim.replay(trace, rule, capacity, ways=ways)
    used = min(ways, capacity)  # more ways than rows: one set of all the rows
    assert _counts(r) == naive.set_associative(trace.keys.tolist(), capacity, used, rule)
    assert r.ways == used and r.capacity == -(-capacity // used) * used
    req = np.array(r.per_table["hits"]) + np.array(r.per_table["misses"])
    assert req.tolist() == np.bincount(trace.table, minlength=trace.n_tables).tolist()


@pytest.mark.parametrize("rule", RULES)
@given(trace=multi_table_trace(), capacity=st.integers(1, 40))
def test_one_set_of_all_ways_is_the_fully_associative_policy(rule, trace, capacity):
    full = cachesim.replay(trace, rule, capacity)
    one_set = cachesim.replay(trace, rule, capacity, ways=capacity)
    assert (one_set.hits, one_set.misses, one_set.evictions) == \
        (full.hits, full.misses, full.evictions)
    assert one_set.per_table["misses"] == full.per_table["misses"]


def test_set_comes_from_the_linearised_key_not_the_dense_id():
    # keys far from 0..n-1: hashing dense ids would put them in other sets and count otherwise
    rng = np.random.default_rng(3)
    table = rng.integers(0, 3, 400).astype(np.int32)
    row = rng.integers(0, 25, 400) * 1_000_003
    trace = cachesim.Trace(table=table, row=row)
    by_key = naive.set_associative(trace.keys.tolist(), 16, 2, "lru")
    by_dense = naive.set_associative(trace.dense_ids.tolist(), 16, 2, "lru")
    assert by_key != by_dense  # the check below can tell them apart
    assert _counts(cachesim.replay(trace, "lru", 16, ways=2)) == by_key


def test_direct_mapped_conflicts_hand_traced():
    # 2 sets of 1 way: two keys of the same set evict each other even with the other set empty
    sets = set_index(np.arange(200, dtype=np.int64), 2)
    a, b = [int(k) for k in np.flatnonzero(sets == 0)[:2]]
    c = int(np.flatnonzero(sets == 1)[0])
    keys = [a, b, a, b, c, c]
    r = cachesim.replay(cachesim.Trace.from_keys(keys), "lru", 2, ways=1)
    assert (r.hits, r.misses, r.evictions) == (1, 5, 3)
    # fully associative, a and b both fit
    assert cachesim.replay(cachesim.Trace.from_keys(keys), "lru", 2).hits == 3


def test_within_a_set_each_rule_picks_its_victim():
    # one set of 2 ways (capacity 2, W 2): a b a c, then a?  lru evicts b (a was used last);
    # fifo evicts a (filled first); lfu evicts b (count 1 < 2)
    keys = [1, 2, 1, 3, 1]
    hits = {rule: cachesim.replay(cachesim.Trace.from_keys(keys), rule, 2, ways=2).hits
            for rule in RULES}
    assert hits == {"lru": 2, "fifo": 1, "lfu": 2}
    # lfu ties go to the least recently used: a b b a (both count 2, a used last); c evicts b;
    # b evicts c (count 1 < 2); a hits
    r = cachesim.replay(cachesim.Trace.from_keys([1, 2, 2, 1, 3, 2, 1]), "lfu", 2, ways=2)
    assert (r.hits, r.misses) == (3, 4)


def test_sets_round_up_and_every_way_is_used():
    # capacity 10 with 4 ways: ceil(10/4) = 3 sets of 4 lines (12 lines)
    keys = np.arange(12)
    sets = set_index(keys, 3)
    r = cachesim.replay(cachesim.Trace.from_keys(keys), "lru", 10, ways=4)
    overflow = sum(max(0, int(n) - 4) for n in np.bincount(sets, minlength=3))
    assert r.evictions == overflow


def test_errors_name_the_rule():
    tr = cachesim.Trace.from_keys([1, 2, 3], [10, 10, 10])
    with pytest.raises(cachesim.CachesimError, match="rows"):
        cachesim.replay(tr, "lru", "100B", ways=2)
    with pytest.raises(cachesim.CachesimError, match="lru, lfu and fifo"):
        cachesim.replay(tr, "sieve", 2, ways=2)
    with pytest.raises(cachesim.CachesimError, match="at least 1"):
        cachesim.replay(tr, "lru", 2, ways=0)


def test_cli_ways(tmp_path):
    path = tmp_path / "keys.txt"
    keys = np.random.default_rng(0).integers(0, 50, 500)
    path.write_text("".join(f"{k}\n" for k in keys))
    res = CliRunner().invoke(cli, ["replay", str(path), "-p", "lru,lfu,fifo", "-s", "20",
                                   "--ways", "4", "--json", "-q"])
    assert res.exit_code == 0, res.output
    import json
    got = {rec["policy"]: rec["misses"] for rec in json.loads(res.output)}
    want = {rule: naive.set_associative(keys.tolist(), 20, 4, rule)[1] for rule in RULES}
    assert got == want


@settings(max_examples=40, deadline=None)
@pytest.mark.parametrize("rule", RULES)
@given(trace=multi_table_trace(), capacity=st.integers(41, 5000), ways=st.sampled_from([1, 2, 3]))
def test_more_sets_than_keys_matches_naive(rule, trace, capacity, ways):
    # the state then holds only the sets some key maps to: set-mates must stay set-mates
    r = cachesim.replay(trace, rule, capacity, ways=ways)
    assert _counts(r) == naive.set_associative(trace.keys.tolist(), capacity, ways, rule)
    assert r.n_sets == -(-capacity // ways) and r.capacity == r.n_sets * ways


def test_a_cache_far_larger_than_the_trace_replays_in_its_keys_memory(tmp_path):
    # 10^12 rows of 32 ways: 31,250,000,000 sets, once an allocation of 7 TiB
    keys = np.array([3, 9, 3, 12, 9, 7, 3, 10**9, 12], dtype=np.int64)
    trace = Trace.from_keys(keys)
    r = cachesim.replay(trace, "lru", 10**12, ways=32)
    assert _counts(r) == naive.set_associative(keys.tolist(), 10**12, 32, "lru")
    assert r.n_sets == 31_250_000_000 and r.hits == 4


def test_a_batch_cache_too_large_for_the_machine_is_one_line(tmp_path):
    from click.testing import CliRunner
    from cachesim.cli import cli
    from cachesim.io import write_trace
    write_trace(Trace.from_keys(np.arange(100) % 9, batch=np.arange(100) // 10),
                tmp_path / "t.parquet")
    r = CliRunner().invoke(cli, ["replay", str(tmp_path / "t.parquet"), "-s", "1000000000000"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "of state, more than this machine's" in r.stderr and "smaller --size" in r.stderr
