"""FBGEMM-exact training cache (cachesim.simulate.fbgemm) against its plain-Python twin
(tests/naive_fbgemm.py, written from FBGEMM's kernels) and against FBGEMM's own unit tests."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from cachesim.errors import CachesimError
from cachesim.simulate.fbgemm import (COUNTER_NAMES, FbgemmCache, bitonic_order, bitonic_pairs,
                                   fbgemm_cache_sets, network_first, replay_fbgemm)
from cachesim.trace import Trace
from tests import naive_fbgemm as naive


# -- the warp bitonic network ------------------------------------------------------------------
def test_bitonic_ties_hand_worked():
    # costs [3]*16 + [1]*16. Merges L = 1..8 only pair lanes inside each half of 16 (i ^ (2L-1)
    # and i ^ stride stay below 16), where all costs are equal: nothing moves. Merge L = 16 first
    # exchanges lane i with lane 31 - i (i < 16): 3 > 1, so every pair swaps: lanes 0..15 now
    # hold cost 1 from ways 31, 30, ..., 16 and lanes 16..31 cost 3 from ways 15, ..., 0. The
    # strides 8, 4, 2, 1 again pair equal costs: nothing moves. So the oldest ways are taken
    # 31, 30, ..., 16 (a stable sort would give 16, 17, ..., 31).
    costs, ways = bitonic_order([3] * 16 + [1] * 16)
    assert costs.tolist() == [1] * 16 + [3] * 16
    assert ways.tolist() == list(range(31, -1, -1))
    k, v = naive.warp_bitonic_sort([3] * 16 + [1] * 16, list(range(32)))
    assert v == list(range(31, -1, -1)) and k == [1] * 16 + [3] * 16


def test_bitonic_all_equal_is_identity_and_network_size():
    assert bitonic_order([7] * 32)[1].tolist() == list(range(32))
    assert bitonic_pairs(32).shape == ((1 + 2 + 3 + 4 + 5) * 16, 2)
    assert bitonic_pairs(64).shape == ((1 + 2 + 3 + 4 + 5 + 6) * 32, 2)


@given(st.lists(st.integers(0, 4), min_size=32, max_size=32))
def test_bitonic_matches_lane_simulation(costs):
    k, v = bitonic_order(costs)
    nk, nv = naive.warp_bitonic_sort(costs, list(range(32)))
    assert k.tolist() == sorted(costs) == nk
    assert v.tolist() == nv


@given(st.lists(st.integers(0, 3), min_size=32, max_size=32))
def test_network_first_matches_lane_simulation(costs):
    # the one-miss fast path: lane 0's way without running the 240 compare-exchanges
    nk, nv = naive.warp_bitonic_sort(costs, list(range(32)))
    assert network_first(costs) == (nv[0], nk[0])


def test_memoised_first_lane_matches_lane_simulation():
    # the kernel's one-miss path: the memo of masks (hits, and masks that share a bucket) and the
    # one-lane and all-lane shortcuts give what the lanes of the warp sort give
    from cachesim.simulate.fbgemm import MEMO_BITS, _first_lane32
    rng = np.random.default_rng(7)
    memo = np.full(2 << MEMO_BITS, -1, np.int64)
    before = np.empty(15, np.int64)
    pool = [rng.integers(0, 3, 32) for _ in range(300)]  # repeated patterns: memo hits
    cases = [pool[i] for i in rng.integers(0, 300, 3000)] + [rng.integers(0, 2, 32) for _ in
                                                            range(6000)]  # > 4096 masks
    cases += [np.zeros(32, np.int64), np.r_[np.ones(31), 0], np.r_[5, np.full(31, 9)]]
    for costs in cases:
        costs = np.asarray(costs, np.int64)
        nk, nv = naive.warp_bitonic_sort(costs.tolist(), list(range(32)))
        assert _first_lane32(costs.copy(), before, memo) == (nv[0], nk[0])
    assert (memo[::2] >= 0).sum() > 2000  # the memo was filled (and reused)


def test_bitonic_64_lanes_sorts():
    rng = np.random.default_rng(3)
    c = rng.integers(0, 5, 64)
    k, v = bitonic_order(c)
    nk, nv = naive.warp_bitonic_sort(c.tolist(), list(range(64)))
    assert k.tolist() == sorted(c.tolist()) and v.tolist() == nv


def test_unrolled_network_in_sync():
    # cachesim/simulate/_bitonic32.py is generated from bitonic_pairs(32); an edit of either shows here
    from pathlib import Path

    import cachesim
    from cachesim.simulate.fbgemm import unrolled_source
    path = Path(cachesim.__file__).parent / "simulate" / "_bitonic32.py"
    assert path.read_text() == unrolled_source(32)


# -- kernel == naive on random multi-table, multi-hot traces -------------------------------------
@st.composite
def batched(draw):
    T = draw(st.integers(1, 3))
    rows = draw(st.lists(st.integers(1, 60), min_size=T, max_size=T))
    n_b = draw(st.integers(1, 8))
    batches = []
    for _ in range(n_b):
        n = draw(st.integers(0, 90))
        ts = draw(st.lists(st.integers(0, T - 1), min_size=n, max_size=n))
        batches.append([(t, draw(st.integers(0, rows[t] - 1))) for t in ts])
    return rows, batches


def _kernel(rows, batches, **kw):
    cache = FbgemmCache(rows, **kw)
    return [cache.step([t for t, _ in b], [r for _, r in b]) for b in batches], cache


@given(batched(), st.sampled_from(["lru", "lfu"]), st.integers(1, 3), st.booleans())
def test_kernel_equals_naive_by_sets(data, policy, sets, per_table):
    rows, batches = data
    got, _ = _kernel(rows, batches, cache_sets=sets, policy=policy, per_table=per_table)
    want = naive.replay(batches, rows, policy, sets=sets, per_table=per_table)
    assert got == want


@given(batched(), st.sampled_from(["lru", "lfu"]))
def test_kernel_equals_naive_64_ways(data, policy):
    rows, batches = data
    got, _ = _kernel(rows, batches, cache_sets=1, policy=policy, ways=64)
    assert got == naive.replay(batches, rows, policy, sets=1, ways=64)


@given(batched(), st.sampled_from(["lru", "lfu"]), st.integers(1, 3))
def test_kernel_equals_naive_huge_tables(data, policy, sets):
    # 2^41 rows per table: keys past 2^40 take the general miss sort, and step() numbers the
    # keys itself instead of indexing per-row arrays
    rows, batches = data
    huge = [1 << 41] * len(rows)
    batches = [[(t, r * 7_919_999_981 % (1 << 41)) for t, r in b] for b in batches]
    got, cache = _kernel(huge, batches, cache_sets=sets, policy=policy)
    assert cache._key_ids is not None
    assert got == naive.replay(batches, huge, policy, sets=sets)


@given(batched(), st.integers(1, 3), st.booleans())
def test_kernel_equals_naive_prefetch_pipeline(data, sets, per_table):
    rows, batches = data
    got, _ = _kernel(rows, batches, cache_sets=sets, policy="lru", prefetch_pipeline=True,
                     per_table=per_table)
    want = naive.replay(batches, rows, "lru", sets=sets, per_table=per_table,
                        prefetch_pipeline=True)
    assert got == want


@given(batched(), st.sampled_from(["lru", "lfu"]), st.sampled_from([0.05, 0.3, 1.0]),
       st.booleans())
def test_kernel_equals_naive_by_load_factor(data, policy, lf, per_table):
    rows, batches = data
    got, _ = _kernel(rows, batches, load_factor=lf, policy=policy, per_table=per_table)
    want = naive.replay(batches, rows, policy, load_factor=lf, per_table=per_table)
    assert got == want


@st.composite
def grouped(draw):
    """A batched trace of 2-4 tables and a TBE grouping of them (group numbers by first table)."""
    T = draw(st.integers(2, 4))
    rows = draw(st.lists(st.integers(1, 60), min_size=T, max_size=T))
    raw = draw(st.lists(st.integers(0, T - 1), min_size=T, max_size=T))
    order = {g: i for i, g in enumerate(dict.fromkeys(raw))}
    groups = [order[g] for g in raw]
    batches = []
    for _ in range(draw(st.integers(1, 8))):
        n = draw(st.integers(0, 90))
        ts = draw(st.lists(st.integers(0, T - 1), min_size=n, max_size=n))
        batches.append([(t, draw(st.integers(0, rows[t] - 1))) for t in ts])
    return rows, batches, groups


@given(grouped(), st.sampled_from(["lru", "lfu"]), st.sampled_from([0.05, 0.3, 1.0]),
       st.booleans())
def test_kernel_equals_naive_table_groups(data, policy, lf, pipeline):
    # one TBE op per group (TorchRec's group_tables): each op's own sets and linearisation
    rows, batches, groups = data
    if policy == "lfu":
        pipeline = False
    got, cache = _kernel(rows, batches, load_factor=lf, policy=policy, table_groups=groups,
                         prefetch_pipeline=pipeline)
    want = naive.replay(batches, rows, policy, load_factor=lf, groups=groups,
                        prefetch_pipeline=pipeline)
    assert got == want
    assert cache.n_groups == max(groups) + 1


@given(grouped(), st.integers(1, 3))
def test_kernel_equals_naive_table_groups_by_sets(data, sets):
    rows, batches, groups = data
    got, _ = _kernel(rows, batches, cache_sets=sets, table_groups=groups)
    assert got == naive.replay(batches, rows, "lru", sets=sets, groups=groups)


def test_table_groups_geometry():
    # op 0 = tables 0 and 2 (rows 3200 + 6400), op 1 = table 1 (rows 1000): sets of each op's
    # rows, keys linearised within the op (table 2's rows follow table 0's)
    c = FbgemmCache([3200, 1000, 6400], load_factor=0.1, table_groups=[0, 1, 0])
    assert c.group_sets.tolist() == [30, 4]  # (int(9600 * .1) + 31) // 32, (100 + 31) // 32
    assert c.tbl_sets.tolist() == [30, 4, 30] and c.set_base.tolist() == [0, 30, 0]
    # key - hash_off = the row within the op: table 2's row r is 3200 + r
    assert (c.offsets - c.hash_off).tolist() == [0, 0, 3200]
    with pytest.raises(CachesimError, match="none left empty"):
        FbgemmCache([10, 10], load_factor=0.5, table_groups=[0, 2])
    with pytest.raises(CachesimError, match="not both"):
        FbgemmCache([10, 10], load_factor=0.5, table_groups=[0, 1], per_table=True)


def test_replay_fbgemm_equals_step_and_naive():
    rng = np.random.default_rng(11)
    rows = [500, 80, 2000]
    n = 6000
    table = rng.integers(0, 3, n)
    row = (rng.zipf(1.3, n) - 1) % np.array(rows)[table]
    batch = np.repeat(np.arange(n // 200), 200)
    tr = Trace(table=table, row=row, batch=batch, table_rows=np.array(rows))
    batches = [list(zip(table[i:i + 200].tolist(), row[i:i + 200].tolist()))
               for i in range(0, n, 200)]
    for policy, pipe in (("lru", False), ("lru", True), ("lfu", False)):
        res = replay_fbgemm(tr, policy, load_factor=0.02, prefetch_pipeline=pipe)
        want = naive.replay(batches, rows, policy, load_factor=0.02, prefetch_pipeline=pipe)
        for nm in COUNTER_NAMES:
            assert res["per_batch"][nm].tolist() == [w[nm] for w in want], (policy, pipe, nm)
        assert res["total"]["num_conflict_misses"] == sum(w["num_conflict_misses"] for w in want)
        assert res["n_sets"] == fbgemm_cache_sets(sum(rows), 0.02) == 2  # int(51.6) -> 2 sets
    # over-full sets: some conflicts must happen for the comparison to mean something
    assert res["total"]["conflict_misses"] > 0


# -- rules shown on small cases ---------------------------------------------------------------
def test_lru_stops_at_way_used_this_batch():
    # one set: 33 distinct keys in a batch after 32 cached ones that the batch hits
    c = FbgemmCache([1000], cache_sets=1)
    c.step([0] * 32, list(range(32)))
    r = c.step([0] * 33, list(range(33)))
    assert (r["num_unique_misses"], r["num_conflict_unique_misses"], r["fills"]) == (1, 1, 0)


def test_lru_first_fill_takes_ways_in_network_order():
    # an empty set: all stamps 0, the network leaves the ways 0, 1, 2, ... (identity)
    c = FbgemmCache([1000], cache_sets=1)
    c.step([0, 0, 0], [5, 3, 9])
    assert c.cache_key[0, :3].tolist() == [3, 5, 9]  # ascending key to ascending way


def test_lfu_miss_replaces_line_hit_in_same_batch():
    # LFU has no lock: with one set full of count-1 keys, a batch hitting key 0 once (count 2)
    # and bringing key 100 three times (count 3) evicts a line: the hit key may be the victim
    c = FbgemmCache([1000], cache_sets=1, policy="lfu")
    c.step([0] * 32, list(range(32)))
    r = c.step([0] * 4, [0, 100, 100, 100])
    assert r["num_conflict_misses"] == 0 and r["fills"] == 1 and r["evictions"] == 1
    # FBGEMM fills only num_conflict_misses under LFU
    assert r["num_calls"] == r["num_unique_indices"] == r["num_unique_misses"] == 0
    assert r["unique_indices"] == 2 and r["unique_misses"] == 1


def test_lfu_lower_count_is_not_admitted():
    c = FbgemmCache([1000], cache_sets=1, policy="lfu")
    c.step([0] * 64, list(range(32)) * 2)  # 32 keys, count 2 each
    r = c.step([0], [500])                 # count 1 < 2: stop at the first way
    assert r["conflict_unique_misses"] == 1 and r["num_conflict_misses"] == 1
    r = c.step([0], [500])                 # count 2 == 2: admitted (> stops, == replaces)
    assert r["fills"] == 1 and r["num_conflict_misses"] == 0


def test_prefetch_pipeline_locks_previous_batch():
    # one set of 32: batch 1 fills 32 ways; batch 2 brings 32 new keys: without the pipeline
    # they all replace batch 1's lines; with it, batch 1's lines are locked (backward(1) comes
    # after prefetch(2)): all 32 are conflict misses; batch 3 (after the unlock) gets them in
    for pipe, want in ((False, (0, 32)), (True, (32, 0))):
        c = FbgemmCache([1000], cache_sets=1, prefetch_pipeline=pipe)
        c.step([0] * 32, list(range(32)))
        r = c.step([0] * 32, list(range(100, 132)))
        assert (r["num_conflict_unique_misses"], r["fills"]) == want
    r = c.step([0] * 32, list(range(100, 132)))
    assert r["fills"] == 32 and int(c.lock_cnt.sum()) == 32


# -- FBGEMM's own unit tests -------------------------------------------------------------------
def _dense(x):
    """get_table_batched_offsets_from_dense: x[T][B][L] -> (tables, rows), table-major."""
    return ([t for t, tb in enumerate(x) for bag in tb for _ in bag],
            [r for tb in x for bag in tb for r in bag])


def test_stb_uvm_cache_stats():
    # split_embeddings_test.py::test_stb_uvm_cache_stats (T=2, E=1000, default LRU, clf 0.2)
    for _ in range(2):
        c = FbgemmCache([1000, 1000], load_factor=0.2)
        t, r = _dense([[[1], [1]], [[3], [4]]])
        s = c.step(t, r)
        assert [s[nm] for nm in COUNTER_NAMES[:6]] == [1, 4, 3, 3, 0, 0]


def test_nbit_uvm_cache_stats():
    # nbit_cache_test.py::test_nbit_uvm_cache_stats. It runs FBGEMM's *inference* TBE
    # (IntNBitTableBatchedEmbeddingBagsCodegen, lru_cache_populate_byte); on these inputs its
    # counters equal the training cache's: no set is contested in part 1, and in part 2 every
    # way of the one set is hit by the batch, so the LRU stop (stamp == time step) decides.
    for N in (1, 3):
        c = FbgemmCache([1000, 1000], load_factor=0.2)
        calls = idx = uniq = 0
        for x, (u, cum_misses) in zip(
                ([[[1], [1]], [[3], [4]]], [[[2], [1]], [[3], [4]]], [[[5], [6]], [[7], [8]]]),
                ([3, 3], [4, 4], [4, 8])):
            for _ in range(N):
                c.step(*_dense(x))
                tot = c.totals()
                calls, idx, uniq = calls + 1, idx + 4, uniq + u
                assert [tot[nm] for nm in COUNTER_NAMES[:6]] == [calls, idx, uniq, cum_misses,
                                                                 0, 0]
        c1 = FbgemmCache([1000], cache_sets=1)
        for width, want in ((32, (0, 0)), (33, (1, 17)), (42, (10, 170))):
            x = [[list(range(width))] * 17]
            for _ in range(N):
                s = c1.step(*_dense(x))  # reset_uvm_cache_stats: per-call counters
                assert (s["num_conflict_unique_misses"], s["num_conflict_misses"]) == want


# -- geometry and errors -----------------------------------------------------------------------
def test_geometry():
    assert fbgemm_cache_sets(2000, 0.2) == 13       # int(400) / 32 rounded up
    assert fbgemm_cache_sets(10, 0.05) == 1         # 0 sets -> 1
    assert FbgemmCache([10, 20], load_factor=0.01, per_table=True).n_sets == 2
    assert FbgemmCache([3200, 6400], load_factor=0.5, per_table=True).tbl_sets.tolist() == [50, 100]
    assert FbgemmCache([100], cache_sets=2, ways=64).capacity_rows == 128


def test_errors():
    with pytest.raises(CachesimError, match="Only LRU"):
        FbgemmCache([10], cache_sets=1, policy="lfu", prefetch_pipeline=True)
    with pytest.raises(CachesimError, match="outside table 0"):
        FbgemmCache([10], cache_sets=1).step([0], [10])
    with pytest.raises(CachesimError, match="ways=16"):
        FbgemmCache([10], cache_sets=1, ways=16)
    with pytest.raises(CachesimError, match="load_factor"):
        FbgemmCache([10], load_factor=0)
    with pytest.raises(CachesimError, match="not both"):
        FbgemmCache([10])


def test_time_steps_past_31_bits_are_refused():
    # the batch marks hold a time step in 31 bits (and lru_state is int32): a replay that would
    # pass 2^31 - 1 is refused before it runs, and a cache just below the limit still counts as
    # one that started at FBGEMM's first time step
    from cachesim.simulate.fbgemm import STAMP32_END
    rng = np.random.default_rng(4)
    batches = [(np.zeros(40, np.int64), rng.integers(0, 90, 40)) for _ in range(6)]
    late, early = FbgemmCache([90], cache_sets=1), FbgemmCache([90], cache_sets=1)
    late.timestep = STAMP32_END - 7
    got = [late.step(t, r) for t, r in batches]
    assert got == [early.step(t, r) for t, r in batches]
    assert sum(g["evictions"] for g in got) > 0
    with pytest.raises(CachesimError, match="31 bits"):
        late.step(*batches[0])


# -- the misses' order (set, key), from RADIX_MIN misses by a radix sort on sets ----------------
@pytest.mark.parametrize("n_sets", [1, 3, 2048, 2049, 70_000, 5_000_000, 2**31 - 1])
def test_order_misses_is_set_then_key(n_sets):
    from cachesim.simulate.fbgemm import RADIX_MIN, _order_misses
    rng = np.random.default_rng(n_sets)
    for nm in (0, 1, 2, RADIX_MIN - 1, RADIX_MIN, RADIX_MIN + 1, 700, 6000):
        n_u = nm + 50
        # distinct keys, some past 2^40 (the comparison path's packed form does not hold them)
        ukey = rng.choice(1 << 45, size=n_u, replace=False).astype(np.int64)
        uset = rng.integers(0, min(n_sets, 40 if nm % 2 else n_sets), n_u).astype(np.int64)
        mu = rng.permutation(n_u)[:nm].astype(np.int64)
        want = mu[np.lexsort((ukey[mu], uset[mu]))]
        comp, comp2 = np.empty(n_u, np.int64), np.empty(n_u, np.int64)
        _order_misses(mu, nm, ukey, uset, comp, comp2, n_sets)
        assert mu.tolist() == want.tolist(), (n_sets, nm)


@pytest.mark.parametrize("policy", ["lru", "lfu"])
@pytest.mark.parametrize("sets", [1, 2, 7, 64])
def test_kernel_equals_naive_batches_of_many_misses(policy, sets):
    # batches of hundreds of misses (the radix order of misses) against the plain-Python oracle
    rng = np.random.default_rng(sets)
    rows = [3000, 500, 9000]
    batches = []
    for n in (400, 0, 900, 250, 1200, 60):
        ts = rng.integers(0, 3, n)
        batches.append([(int(t), int(rng.integers(0, rows[t]))) for t in ts])
    got, _ = _kernel(rows, batches, cache_sets=sets, policy=policy)
    want = naive.replay(batches, rows, policy, sets=sets)
    assert got == want
    assert max(b["unique_misses"] for b in got) >= 200  # the radix order ran
