"""The executor's FBGEMM cache step as array code (`cachesim.executor.fbgemm_step`, run here on
NumPy): batch by batch equal to the numba kernel (`FbgemmCache`: lines, stamps, counts, locks,
counters), its slots equal to the plain-Python oracle's lookups, and `train` on it gives the
counters of `replay_fbgemm` on the same trace."""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from cachesim.errors import CachesimError
from cachesim.executor import train
from cachesim.executor.fbgemm_step import XpFbgemmCache, bitonic_sort_rows, fmix64_xp
from cachesim.hashing import fmix64
from cachesim.simulate.batch import replay_batch
from cachesim.simulate.fbgemm import FbgemmCache, bitonic_order, replay_fbgemm
from cachesim.synth.generate import generate
from tests.naive_fbgemm import NaiveFbgemm

TINY = {"bottom": (4,), "top": (4,)}
EXECUTOR_COUNTERS = ("requested_indices", "unique_indices", "unique_misses",
                     "conflict_unique_misses", "conflict_misses", "evictions", "misses")


def _batch(rng, table_rows, n):
    """A multi-hot batch over the tables: skewed rows (many repeats), table ids at random."""
    t = rng.integers(0, len(table_rows), n)
    r = (rng.zipf(1.3, n) - 1) % np.asarray(table_rows)[t]
    return t, r


def _state(c):
    return (np.asarray(c.cache_key), np.asarray(c.cache_id), np.asarray(c.lru_state),
            np.asarray(c.lock_cnt))


@given(seed=st.integers(0, 2 ** 32 - 1), n_tables=st.integers(1, 3), sets=st.integers(1, 3),
       kind=st.sampled_from(["lru", "lfu", "lru-pipeline"]), per_table=st.booleans(),
       ways=st.sampled_from([32, 32, 64]))
def test_xp_step_equals_numba_kernel(seed, n_tables, sets, kind, per_table, ways):
    # few sets, skewed multi-hot batches: over-full sets, equal stamps and counts (ties)
    rng = np.random.default_rng(seed)
    rows = rng.integers(1, 300, n_tables)
    policy = kind.split("-")[0]
    kw = dict(cache_sets=sets, policy=policy, ways=ways, per_table=per_table,
              prefetch_pipeline=kind.endswith("pipeline"))
    ref, xp = FbgemmCache(rows, **kw), XpFbgemmCache(np, rows, **kw)
    for b in range(6):
        t, r = _batch(rng, rows, int(rng.integers(0, 200)) if b != 3 else 0)
        assert xp.step(t, r) == ref.step(t, r), f"batch {b}"
        for got, want in zip(_state(xp), _state(ref)):
            assert np.array_equal(got, want), f"batch {b}"
        if policy == "lfu":
            assert np.array_equal(xp.counts, ref.counts[:xp.counts.shape[0]])
    assert xp.totals() == ref.totals()


def test_xp_step_hits_every_rule():
    # the inputs above do reach evictions, conflicts and LFU's replaced hits
    rng = np.random.default_rng(1)
    rows = [40, 90]
    for kw in (dict(policy="lru"), dict(policy="lfu"), dict(policy="lru", prefetch_pipeline=True)):
        c = XpFbgemmCache(np, rows, cache_sets=1, **kw)
        for _ in range(6):
            c.step(*_batch(rng, rows, 150))
        tot = c.totals()
        assert tot["evictions"] > 0 and tot["conflict_unique_misses"] > 0
        assert tot["conflict_misses"] > tot["conflict_unique_misses"]


@pytest.mark.parametrize("policy,lock", [("lru", False), ("lfu", False), ("lru", True)])
def test_slots_equal_the_oracle_lookups(policy, lock):
    # the step's line per access (slot[inverse]) is where FBGEMM's lookup finds the key; the
    # evicted lines held the old keys, the filled lines hold the new ones
    rng = np.random.default_rng(7)
    rows = [50, 70, 30]
    offs = np.concatenate([[0], np.cumsum(rows)[:-1]])
    c = XpFbgemmCache(np, rows, cache_sets=2, policy=policy, prefetch_pipeline=lock)
    naive = NaiveFbgemm(2, policy, 32, lock)
    evicted = filled = 0
    for _ in range(8):
        t, r = _batch(rng, rows, 120)
        keys = r + offs[t]
        before = c.cache_id.reshape(-1).copy()
        s = c.step_keys(keys, t, keys)
        _, _, locations = naive.prefetch(keys.tolist())
        assert s.slot[s.inverse].tolist() == locations
        assert np.array_equal(s.unique_ids, np.unique(keys))
        assert np.array_equal(before[s.evicted_slots], s.evicted_ids)
        assert np.array_equal(c.cache_id.reshape(-1)[s.filled_slots], s.filled_ids)
        assert np.isin(s.evicted_slots, s.filled_slots).all()
        evicted += len(s.evicted_ids)
        filled += len(s.filled_ids)
    assert evicted > 0 and filled > evicted


def test_network_on_all_sets_at_once_equals_the_warp_sort():
    rng = np.random.default_rng(3)
    for ways in (32, 64):
        cost = rng.integers(0, 4, (200, ways))        # many ties: the network is not stable
        cost[0] = [3] * (ways // 2) + [1] * (ways // 2)
        slot = np.broadcast_to(np.arange(ways), cost.shape).copy()
        got_cost, got_slot = bitonic_sort_rows(np, cost, slot)
        for g in range(cost.shape[0]):
            want_cost, want_slot = bitonic_order(cost[g])
            assert np.array_equal(got_cost[g], want_cost)
            assert np.array_equal(got_slot[g], want_slot)
        if ways == 32:  # the hand-worked tie example (fbgemm_rules.md)
            assert got_slot[0].tolist() == list(range(31, -1, -1))


def test_fmix64_over_arrays_equals_the_kernel_hash():
    rng = np.random.default_rng(5)
    k = rng.integers(0, 2 ** 63 - 1, 500, dtype=np.int64).astype(np.uint64)
    k[:3] = [0, 1, 2 ** 64 - 1]
    assert [int(v) for v in fmix64_xp(np, k)] == [int(fmix64(v)) for v in k]


# -- the executor on it ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def multihot():
    return generate(400, tables=3, rows=[300, 80, 1000], alpha=1.0, bag_size="poisson:1.5",
                    batch_size=16, seed=3, teacher=True, dim=4)


@pytest.mark.parametrize("policy,size", [("lru", 40), ("lfu", 40), ("lfu", 100), ("lru", "3%"),
                                         ("lfu", "2KiB")])
def test_train_counters_equal_replay_fbgemm(multihot, policy, size):
    # the executor's counters are `cachesim replay --mode batch --cache-model fbgemm`'s (the
    # same geometry: rows are ceil(rows / 32) sets, a share is FBGEMM's load factor)
    rec, = train(multihot, precision="int8", size=size, policy=policy, ways=32, model=TINY,
                 progress=False, baselines=False, test_fraction=0.0, device="cpu")
    sim = replay_batch(multihot, policy, size, ways=32, cache_model="fbgemm")
    assert rec["cache_model"] == "fbgemm" and rec["cache_lines"] == sim.n_lines
    assert {k: rec[k] for k in EXECUTOR_COUNTERS} == {k: getattr(sim, k)
                                                      for k in EXECUTOR_COUNTERS}
    assert rec["hit_ratio"] == pytest.approx(sim.hit_ratio)
    assert rec["calls"] == len(np.unique(multihot.batch))
    assert rec["evictions"] > 0 and rec["conflict_unique_misses"] > 0
    if isinstance(size, int):  # and the kernel's own replay, sized in sets
        tot = replay_fbgemm(multihot, policy, sets=math.ceil(size / 32))["total"]
        assert {k: rec[k] for k in EXECUTOR_COUNTERS} == {k: tot[k] for k in EXECUTOR_COUNTERS}


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_fp32_store_behind_fbgemm_cache_trains_exactly_like_device_rows(multihot, policy):
    # write-backs, fills, conflict misses (and LFU's replaced hits) lose nothing with an fp32
    # store: every weight is bit-identical to all rows on the device
    kw = dict(precision="fp32", policy=policy, ways=32, return_state=True, lr=0.5, model=TINY,
              progress=False, baselines=False, test_fraction=0.2, device="cpu")
    dev, = train(multihot, size="all", **kw)
    cached, = train(multihot, size=40, **kw)
    assert cached["evictions"] > 0 and cached["conflict_unique_misses"] > 0
    assert np.array_equal(cached["_state"]["rows"], dev["_state"]["rows"])
    assert cached["auc"] == dev["auc"] and cached["logloss"] == dev["logloss"]


def test_fbgemm_cache_model_needs_warp_ways(multihot):
    with pytest.raises(CachesimError, match="--cache-model ideal"):
        train(multihot, precision="int8", size="10%", ways=4, model=TINY, progress=False,
              device="cpu")
    with pytest.raises(CachesimError, match="cache model 'exact'"):
        train(multihot, precision="int8", size="10%", model=TINY, progress=False,
              device="cpu", cache_model="exact")
    rec, = train(multihot, precision="int8", size="10%", ways=4, model=TINY, progress=False,
                 device="cpu", cache_model="ideal", baselines=False)
    assert rec["cache_model"] == "ideal"


def test_gpu_check_cpu_dry_run_compares_the_step(capsys):
    path = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--cpu-dry-run", "--check-samples", "400", "--speed-samples", "400",
                     "--batch-size", "64", "--step-batches", "4"]) == 0
    out = capsys.readouterr().out
    assert "xp cache step equals the numba kernel" in out and "DIFFER" not in out
    assert "cache on the device" in out and "cache on the host" in out


def test_evaluation_reads_the_fbgemm_cache_without_changing_it(multihot):
    from cachesim.executor.cache import CachedTable
    from cachesim.executor.xp import get_xp
    tr = multihot
    rows0 = np.random.default_rng(0).random((tr.n_distinct, 4), dtype=np.float32)
    emb = CachedTable(get_xp("cpu"), rows0, "int8", capacity_rows=40, ways=32, policy="lfu",
                      distinct_keys=tr.distinct_keys, key_table=tr.key_table,
                      n_tables=tr.n_tables, table_rows=tr.table_rows)
    ids = tr.dense_ids
    for a in range(0, 600, 100):
        inverse, rows = emb.gather(ids[a:a + 100])
        emb.apply(np.ones_like(rows), 0.1)
    state = [emb.cache.cache_key.copy(), emb.cache.counts.copy(), emb.lines.copy(),
             dict(emb.counters), emb.h2d_bytes, emb.d2h_bytes]
    assert emb.counters["evictions"] > 0 and emb.device_bytes > emb.lines.nbytes
    want = emb.weights()
    inverse, rows = emb.lookup(ids[600:900])
    assert np.array_equal(rows[inverse], want[ids[600:900]])
    cached = np.asarray(emb.cache.lines_of(tr.keys[600:900], tr.table[600:900].astype(np.int64)))
    assert 0 < (cached >= 0).sum() < 300  # some rows from lines, some from the store
    after = [emb.cache.cache_key, emb.cache.counts, emb.lines, emb.counters, emb.h2d_bytes,
             emb.d2h_bytes]
    for x, y in zip(state, after):
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
