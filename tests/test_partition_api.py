"""The split batch replay's parts API (plan_parts, replay_part, merge_parts: what a Dask worker
runs) and the shared take of `replay_partitioned`: set-partitioned and table-partitioned replays
merge to exactly the single-process result (hand-picked cases and a property test over small
traces cut into many parts)."""
import warnings

import numpy as np
import pytest

import cachesim
from cachesim.errors import CachesimError
from cachesim.simulate.batch import replay_batch
from cachesim.simulate.partition import (
    chunk_batches,
    merge_parts,
    plan_parts,
    replay_part,
    replay_partitioned,
)
from tests.test_partition import random_trace


@pytest.fixture(autouse=True)
def _fork_small_traces(monkeypatch):
    """Small test traces split into processes too (by default they run in one)."""
    from cachesim.simulate import partition
    monkeypatch.setattr(partition, "MIN_PART_ACCESSES", 1)


def _trace(seed, n=4000, n_tables=3, batch=250):
    return random_trace(seed, n_tables, n, batch, rows=(300, 2500))


def _record(res):
    rec = res.to_record(per_table=True)
    rec.pop("seconds")
    return rec


def _by_parts(tr, policy, cap, parts, **kw):
    """The split as a cluster runs it: each part on its own, from the trace, then merged."""
    plan = plan_parts(tr, policy, cap, parts, **kw)
    return plan, merge_parts(tr, plan, [replay_part(tr, plan, p) for p in range(plan.parts)])


@pytest.mark.parametrize("model", ["fbgemm", "ideal"])
@pytest.mark.parametrize("per_table", [False, True])
@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_parts_run_one_by_one_merge_to_the_single_process_replay(model, per_table, policy):
    tr = _trace(1)
    kw = dict(per_table=per_table, cache_model=model, ways=32 if model == "fbgemm" else 8)
    one = replay_batch(tr, policy, "4%", **kw)
    assert one.evictions > 0 and one.hits > 0  # the cache is exercised
    plan, merged = _by_parts(tr, policy, "4%", 3, **kw)
    assert plan.parts == 3 and plan.cache_model == model and plan.policy == policy
    assert _record(merged) == _record(one)
    # and each part did only its share: the parts' accesses add up to the trace's, none empty
    parts = [replay_part(tr, plan, p) for p in range(plan.parts)]
    if model == "fbgemm":
        req = [int(r[0][:, 0].sum()) for r in parts]  # TABLE_COUNTERS[0]: requests
        assert sum(req) == len(tr) and min(req) > 0


def test_the_pipelined_fbgemm_replay_splits_by_sets_exactly():
    tr = _trace(2)
    kw = dict(cache_model="fbgemm", prefetch_pipeline=True)
    one = replay_batch(tr, "lru", "3%", **kw)
    assert _record(_by_parts(tr, "lru", "3%", 4, **kw)[1]) == _record(one)
    assert _record(replay_partitioned(tr, "lru", "3%", parts=4, **kw)) == _record(one)


def test_a_plan_is_small_and_travels():
    import pickle
    tr = _trace(3, n=30_000)
    plan = plan_parts(tr, "lru", "5%", 2)
    assert len(pickle.dumps(plan)) < 1000  # the trace never travels with it
    assert pickle.loads(pickle.dumps(plan)) == plan


def test_parts_and_merge_refuse_what_does_not_fit():
    tr = _trace(4)
    plan = plan_parts(tr, "lru", "5%", 2)
    with pytest.raises(CachesimError, match=r"part 2: the plan has parts 0\.\.1"):
        replay_part(tr, plan, 2)
    with pytest.raises(CachesimError, match="1 results for a plan of 2 parts"):
        merge_parts(tr, plan, [replay_part(tr, plan, 0)])
    with pytest.raises(CachesimError, match="--jobs 128: give 1 to 127"):
        plan_parts(tr, "lru", "5%", 128)


def test_a_row_outside_its_table_is_the_replays_own_error():
    tr = _trace(5)
    bad = cachesim.Trace(table=tr.table, row=tr.row.copy(), batch=tr.batch,
                         table_rows=tr.table_rows, source="bad-row")
    bad.row[1234] = int(tr.table_rows[tr.table[1234]]) + 5  # past its table's last row
    with pytest.raises(CachesimError) as one:
        replay_batch(bad, "lru", "5%")
    for split in (lambda: replay_partitioned(bad, "lru", "5%", parts=2),
                  lambda: _by_parts(bad, "lru", "5%", 2)):
        with pytest.raises(CachesimError) as err:
            split()
        assert str(err.value) == str(one.value) and "access 1,234" in str(err.value)


def test_chunks_are_whole_batches_of_about_equal_accesses():
    starts = np.array([0, 10, 10, 40, 55, 90, 100, 100])
    cuts = chunk_batches(starts, 3)
    assert cuts[0] == 0 and cuts[-1] == 7 and (np.diff(cuts) >= 0).all()
    assert cuts.tolist() == [0, 3, 5, 7]  # accesses 0-39 | 40-89 | 90-99 and the empty batch
    assert chunk_batches(np.array([0, 5]), 4).tolist() == [0, 1, 1, 1, 1]


# -- property: many parts, small traces -----------------------------------------------------------
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 600), n_tables=st.integers(1, 5),
       rows=st.integers(1, 3000), n_batches=st.integers(1, 30), parts=st.integers(2, 9),
       model=st.sampled_from(["fbgemm", "ideal"]), policy=st.sampled_from(["lru", "lfu"]),
       per_table=st.booleans(), size=st.sampled_from(["3%", "10%", "40%", "64", "300"]),
       ways=st.sampled_from([1, 2, 4, 32]), forked=st.booleans())
def test_split_replays_merge_exactly(seed, n, n_tables, rows, n_batches, parts, model, policy,
                                     per_table, size, ways, forked):
    rng = np.random.default_rng(seed)
    tr = cachesim.Trace(row=(rng.zipf(1.2, n) - 1) % rows,  # skewed: repeats hit
                        table=rng.integers(0, n_tables, n).astype(np.int32),
                        batch=np.sort(rng.integers(0, n_batches, n)),
                        table_rows=np.full(n_tables, rows) + np.arange(n_tables))
    if model == "fbgemm":
        ways = 32
    if per_table and not size.endswith("%") and int(size) < n_tables:
        size = "100%"
    kw = dict(ways=ways, per_table=per_table, cache_model=model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # table rows inferred, geometry notes
        one = replay_batch(tr, policy, size, **kw)
        if forked:  # the shared take over processes
            split = replay_partitioned(tr, policy, size, parts=parts, **kw)
        else:  # the parts one by one, as Dask workers run them
            split = _by_parts(tr, policy, size, parts, **kw)[1]
    assert _record(split) == _record(one)


# -- access mode: set-associative caches split by set ranges --------------------------------------
@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo"])
@pytest.mark.parametrize("sized", [False, True])
def test_an_access_replay_split_by_sets_is_exact(policy, sized):
    from cachesim.simulate.access import replay
    from cachesim.simulate.partition import replay_access_partitioned
    rng = np.random.default_rng(8)
    n = 12_000
    tr = cachesim.Trace(row=(rng.zipf(1.2, n) - 1) % 4000, table=rng.integers(0, 2, n).astype(
        np.int32), size=rng.integers(1, 4000, n) if sized else None)
    one = replay(tr, policy, "5%", ways=4, mode="access")
    assert one.hits > 0 and one.evictions > 0
    split = replay_access_partitioned(tr, policy, "5%", 3, ways=4)
    assert split.ways == 4 and _record(split) == _record(one)
    if sized:  # the sizes travelled with their accesses
        assert _record(split)["miss_bytes"] == _record(one)["miss_bytes"] > one.misses


def test_an_access_split_needs_sets():
    from cachesim.simulate.partition import replay_access_partitioned
    tr = cachesim.Trace(row=np.arange(100) % 7, table=np.zeros(100, np.int32))
    with pytest.raises(CachesimError, match="arc at 5% is one fully associative cache here"):
        replay_access_partitioned(tr, "arc", "5%", 2)
    with pytest.raises(CachesimError, match="lru at 5% is one fully associative cache here"):
        replay_access_partitioned(tr, "lru", "5%", 2, ways=None)


def test_cli_access_replay_with_jobs_equals_one_process(shared_data):
    import json

    from click.testing import CliRunner

    from cachesim.cli import cli
    path = str(shared_data / "criteo/kaggle_train_head10k.tsv")
    args = ["replay", path, "-p", "lru,fifo", "-s", "2%", "--mode", "access", "--json", "-q"]
    recs = []
    for extra in ([], ["--jobs", "2"]):
        res = CliRunner().invoke(cli, args + extra)
        assert res.exit_code == 0, res.output
        recs.append([{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(res.stdout)])
    assert recs[0] == recs[1] and recs[0][0]["ways"] == 32 and recs[0][0]["evictions"] > 0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 600), n_tables=st.integers(1, 4),
       rows=st.integers(1, 400), parts=st.integers(2, 9), ways=st.sampled_from([1, 2, 4, 8]),
       policy=st.sampled_from(["lru", "lfu", "fifo"]), size=st.sampled_from(["5%", "20%", "64"]),
       sized=st.booleans())
def test_access_split_replays_merge_exactly(seed, n, n_tables, rows, parts, ways, policy, size,
                                            sized):
    from cachesim.simulate.access import replay
    from cachesim.simulate.partition import replay_access_partitioned
    rng = np.random.default_rng(seed)
    tr = cachesim.Trace(row=(rng.zipf(1.2, n) - 1) % rows,
                        table=rng.integers(0, n_tables, n).astype(np.int32),
                        size=rng.integers(1, 100, n) if sized else None)
    one = replay(tr, policy, size, ways=ways, mode="access")
    assert _record(replay_access_partitioned(tr, policy, size, parts, ways=ways)) == _record(one)


def test_a_small_trace_runs_in_one_process(monkeypatch):
    from cachesim.simulate import partition
    monkeypatch.setattr(partition, "MIN_PART_ACCESSES", 3000)
    tr = _trace(6)  # 4,000 accesses: one process's worth
    seen = []
    real = partition._run_local
    monkeypatch.setattr(partition, "_run_local", lambda setup: seen.append(setup.plan.parts)
                        or real(setup))
    one = replay_batch(tr, "lru", "4%")
    assert _record(replay_partitioned(tr, "lru", "4%", parts=2)) == _record(one)
    monkeypatch.setattr(partition, "MIN_PART_ACCESSES", 2000)
    assert _record(replay_partitioned(tr, "lru", "4%", parts=3)) == _record(one)
    assert seen == [2]  # (one part: the one-process replay itself)
