"""FBGEMM's inference cache (cachesim.simulate.fbgemm_inference, `--cache-model fbgemm-inference`)
against its plain-Python twin (tests/naive_fbgemm_inference.py, written from FBGEMM's source) and
against FBGEMM's own tests (fbgemm_gpu/test/tbe/inference/nbit_cache_test.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

import cachesim
from cachesim.cli import cli
from cachesim.errors import CachesimError
from cachesim.io import write_trace
from cachesim.simulate.batch import replay_batch
from cachesim.simulate.fbgemm import COUNTER_NAMES, FBGEMM_COUNTERS, TABLE_COUNTERS
from cachesim.simulate.fbgemm_inference import FbgemmInferenceCache
from tests import naive_fbgemm_inference as naive
from tests.test_fbgemm_cache import _dense, batched  # (table, row) batches; dense x -> batch


def _kernel(rows, batches, **kw):
    cache = FbgemmInferenceCache(rows, **kw)
    return [cache.step([t for t, _ in b], [r for _, r in b]) for b in batches], cache


def _check_tables(cache, rows, batches):
    """Per-table counters add up to the batch totals."""
    tot = cache.totals()
    for c, nm in enumerate(TABLE_COUNTERS):
        assert int(cache.table_counts[:, c].sum()) == tot[nm], nm
    per_t = np.bincount([t for b in batches for t, _ in b], minlength=len(rows))
    assert cache.table_counts[:, TABLE_COUNTERS.index("requested_indices")].tolist() == \
        per_t.tolist()


@settings(max_examples=60, deadline=None)
@given(batched(), st.sampled_from(["lru", "lfu"]), st.integers(1, 3))
def test_kernel_equals_naive_32_ways(data, policy, sets):
    rows, batches = data
    got, cache = _kernel(rows, batches, cache_sets=sets, policy=policy, ways=32)
    want, _ = naive.replay(batches, rows, policy, sets=sets, assoc=32)
    assert got == want
    _check_tables(cache, rows, batches)


@settings(max_examples=80, deadline=None)
@given(batched(), st.integers(1, 12))
def test_kernel_equals_naive_direct_mapped(data, sets):
    rows, batches = data
    got, cache = _kernel(rows, batches, cache_sets=sets, ways=1)
    want, _ = naive.replay(batches, rows, "lru", sets=sets, assoc=1)
    assert got == want
    _check_tables(cache, rows, batches)


@settings(max_examples=30, deadline=None)
@given(batched(), st.sampled_from([("lru", 32), ("lfu", 32), ("lru", 1)]),
       st.sampled_from([0.05, 0.3, 1.0]))
def test_kernel_equals_naive_by_load_factor(data, model, lf):
    rows, batches = data
    policy, ways = model
    got, cache = _kernel(rows, batches, load_factor=lf, policy=policy, ways=ways)
    want, oracle = naive.replay(batches, rows, policy, load_factor=lf, assoc=ways)
    assert got == want
    assert cache.n_sets == oracle.C
    assert list(cache.cache_miss_counter().values()) == oracle.miss_counter


def test_replay_batch_equals_naive():
    # through the Trace path (`feed_trace`, dense ids), over-full sets on a skewed multi-table trace
    rng = np.random.default_rng(5)
    rows = [300, 40, 900]
    n = 4000
    table = rng.integers(0, 3, n)
    row = (rng.zipf(1.3, n) - 1) % np.array(rows)[table]
    tr = cachesim.Trace(table=table, row=row, batch=np.repeat(np.arange(n // 100), 100),
                        table_rows=np.array(rows))
    batches = [list(zip(table[i:i + 100].tolist(), row[i:i + 100].tolist()))
               for i in range(0, n, 100)]
    for policy, ways in (("lru", 32), ("lfu", 32), ("lru", 1)):
        res = replay_batch(tr, policy, "2%", ways=ways, cache_model="fbgemm-inference")
        want, _ = naive.replay(batches, rows, policy, load_factor=0.02, assoc=ways)
        tot = {nm: sum(w[nm] for w in want) for nm in COUNTER_NAMES}
        assert res.cache_model == "fbgemm-inference" and res.inference and res.ways == ways
        assert res.n_sets == naive.inference_sets(sum(rows), 0.02, ways)
        for nm in FBGEMM_COUNTERS:
            assert getattr(res, nm) == tot[nm], (policy, ways, nm)
        assert res.misses == tot["misses"] and res.hits == n - tot["misses"]
        assert res.conflict_misses == tot["conflict_misses"] > 0  # sets did overflow
        assert res.evictions == tot["evictions"] > 0


# -- rules on small cases --------------------------------------------------------------------------
def test_direct_mapped_first_miss_wins_and_hit_blocks_insert():
    c = FbgemmInferenceCache([1000], cache_sets=1, ways=1)
    s = c.step([0] * 4, [5, 7, 5, 9])           # empty set: the first miss (5) wins it
    assert (s["num_conflict_unique_misses"], s["fills"], s["conflict_misses"]) == (1, 1, 2)
    assert c.cache_key[0, 0] == 5
    s = c.step([0] * 3, [7, 5, 8])              # 5 hits: the set is used, 7 is not inserted
    assert (s["num_conflict_unique_misses"], s["unique_misses"], s["conflict_misses"]) == (0, 2, 2)
    assert c.cache_key[0, 0] == 5
    s = c.step([0] * 2, [8, 7])                 # no hit: 8 replaces 5
    assert (s["fills"], s["evictions"], c.cache_key[0, 0]) == (1, 1, 8)
    assert (s["num_unique_indices"], s["num_unique_misses"]) == (0, 0)  # N/A for direct-mapped


def test_time_step_starts_at_one():
    # AtomicCounter starts at 0 and prefetch increments it first (the training op starts at 2)
    c = FbgemmInferenceCache([100], cache_sets=1, ways=1)
    c.step([0], [3])
    assert c.lru_state[0, 0] == 1
    c.step([], [])                              # an empty batch still advances the time step
    c.step([0], [3])
    assert c.lru_state[0, 0] == 3
    assert c.totals()["num_calls"] == 2         # but is no populate call


X123 = ([[[1], [1]], [[3], [4]]], [[[2], [1]], [[3], [4]]], [[[5], [6]], [[7], [8]]])


def test_nbit_uvm_cache_stats():
    # nbit_cache_test.py::test_nbit_uvm_cache_stats (T=2, E=1000, LRU, clf 0.2, 32 ways)
    for N in (1, 3):
        c = FbgemmInferenceCache([1000, 1000], load_factor=0.2)
        calls = idx = uniq = 0
        for x, (u, cum_misses) in zip(X123, ([3, 3], [4, 4], [4, 8])):
            for _ in range(N):
                c.step(*_dense(x))
                tot = c.totals()
                calls, idx, uniq = calls + 1, idx + 4, uniq + u
                assert [tot[nm] for nm in FBGEMM_COUNTERS] == [calls, idx, uniq, cum_misses, 0, 0]
        c1 = FbgemmInferenceCache([1000], cache_sets=1)
        for width, want in ((32, (0, 0)), (33, (1, 17)), (42, (10, 170))):
            for _ in range(N):
                s = c1.step(*_dense([[list(range(width))] * 17]))  # reset_uvm_cache_stats
                assert (s["num_conflict_unique_misses"], s["num_conflict_misses"]) == want


def test_nbit_direct_mapped_uvm_cache_stats():
    # nbit_cache_test.py::test_nbit_direct_mapped_uvm_cache_stats (cache_assoc=1)
    for N in (1, 3):
        c = FbgemmInferenceCache([1000, 1000], load_factor=0.2, ways=1)
        assert c.n_sets == 400
        calls = idx = 0
        for x, inserted in zip(X123, (3, 4, 8)):
            for _ in range(N):
                c.step(*_dense(x))
                tot = c.totals()
                calls, idx = calls + 1, idx + 4
                assert [tot[nm] for nm in FBGEMM_COUNTERS] == [calls, idx, 0, 0, inserted, 0]
        c1 = FbgemmInferenceCache([1000], cache_sets=1, ways=1)
        acc = 0
        for width, (ins, conflict) in ((1, (1, 0)), (2, (1, 17)), (11, (1, 170))):
            for _ in range(N):
                c1.step(*_dense([[list(range(width))] * 17]))  # no reset: cumulative
                acc += conflict
                tot = c1.totals()
                assert (tot["num_conflict_unique_misses"], tot["num_conflict_misses"]) == (ins, acc)


def test_nbit_cache_miss_counter():
    # nbit_cache_test.py::test_nbit_cache_miss_counter: cache_miss_counter[0:2] and the
    # table-wise unique misses (record_cache_metrics=RecordCacheMetrics(True, True))
    for N in (1, 4):
        c = FbgemmInferenceCache([1000, 1000], load_factor=0.2)
        for x, want, want_t in zip(X123, ([1, 3], [2, 4], [3, 8]), ([1, 2], [2, 2], [4, 4])):
            for _ in range(N):
                c.step(*_dense(x))
                got = c.cache_miss_counter()
                assert [got["cache_miss_forward_count"], got["unique_cache_miss_count"]] == want
                um = TABLE_COUNTERS.index("unique_misses")
                assert c.table_counts[:, um].tolist() == want_t


def test_errors():
    with pytest.raises(CachesimError, match="Direct Mapped for LRU only"):
        FbgemmInferenceCache([10], cache_sets=1, policy="lfu", ways=1)
    with pytest.raises(CachesimError, match="cache_assoc 32"):
        FbgemmInferenceCache([10], cache_sets=1, ways=8)
    with pytest.raises(CachesimError, match="not both"):
        FbgemmInferenceCache([10], ways=1)
    with pytest.raises(CachesimError, match="outside table 0"):
        FbgemmInferenceCache([10], cache_sets=1, ways=1).step([0], [10])


# -- through replay_batch and the CLI -------------------------------------------------------------
def test_replay_batch_rejects_what_the_op_lacks():
    tr = cachesim.Trace(table=np.zeros(4, np.int64), row=np.arange(4), batch=np.zeros(4, np.int64),
                        table_rows=np.array([10]))
    with pytest.raises(CachesimError, match="one cache over all its tables"):
        replay_batch(tr, "lru", "50%", cache_model="fbgemm-inference", per_table=True)
    with pytest.raises(CachesimError, match="never locks"):
        replay_batch(tr, "lru", "50%", cache_model="fbgemm-inference", prefetch_pipeline=True)
    with pytest.raises(CachesimError, match="--ways 4"):
        replay_batch(tr, "lru", "50%", ways=4, cache_model="fbgemm-inference")
    with pytest.raises(CachesimError, match="runs only lru and lfu"):
        replay_batch(tr, "fifo", "50%", cache_model="fbgemm-inference")


def test_cli_replay_fbgemm_inference(tmp_path):
    rows = [50, 20, 90]
    rng = np.random.default_rng(3)
    n = 600
    table = rng.integers(0, 3, n)
    row = (rng.zipf(1.4, n) - 1) % np.array(rows)[table]
    batch = np.repeat(np.arange(n // 40), 40)
    path = tmp_path / "small.parquet"
    write_trace(cachesim.Trace(table=table, row=row, batch=batch, table_rows=np.array(rows),
                               source="small"), path)
    batches = [list(zip(table[i:i + 40].tolist(), row[i:i + 40].tolist()))
               for i in range(0, n, 40)]
    for w in (32, 1):
        run = CliRunner().invoke(cli, ["replay", str(path), "--mode", "batch", "-p", "lru", "-s",
                                       "10%", "--cache-model", "fbgemm-inference", "-w", str(w),
                                       "--json", "-q"])
        assert run.exit_code == 0, run.output
        rec, = json.loads(run.stdout)
        want, _ = naive.replay(batches, rows, "lru", load_factor=0.1, assoc=w)
        assert rec["cache_model"] == "fbgemm-inference" and rec["ways"] == w
        assert rec["n_sets"] == naive.inference_sets(160, 0.1, w)
        for nm in FBGEMM_COUNTERS + ("unique_misses", "conflict_misses"):
            assert rec[nm] == sum(b[nm] for b in want), (w, nm)
    run = CliRunner().invoke(cli, ["replay", str(path), "--mode", "batch", "-p", "lfu", "-s",
                                   "10%", "--cache-model", "fbgemm-inference", "-w", "1", "-q"])
    assert run.exit_code == 2 and "Direct Mapped for LRU only" in run.output
    assert "Traceback" not in run.output
