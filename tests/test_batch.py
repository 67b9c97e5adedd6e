"""Batch replay (FBGEMM's embedding-cache semantics): hand-traced steps, the plain-Python oracle
on random multi-table batched traces, step == replay, invariants, errors, engine and CLI."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

import cachesim
from cachesim.simulate.batch import COUNTER_NAMES, BatchCache, replay_batch, table_capacities
from cachesim.errors import CachesimError
from tests import naive


def check_invariants(res, distinct_keys=None):
    """What every batch replay must satisfy, summed and per table."""
    pt = res.per_table
    rows = [{n: pt[n][t] for n in COUNTER_NAMES} for t in range(len(pt["table"]))]
    tot = {n: getattr(res, n) for n in COUNTER_NAMES}
    for c in rows + [tot]:
        assert 0 <= c["unique_misses"] <= c["unique_indices"] <= c["requested_indices"]
        assert 0 <= c["conflict_unique_misses"] <= c["unique_misses"]
        assert c["conflict_unique_misses"] <= c["conflict_misses"]
    # evictions are counted in the evicted key's table: compare the sums only
    assert 0 <= res.evictions <= res.unique_misses - res.conflict_unique_misses
    for n in COUNTER_NAMES:
        assert sum(pt[n]) == getattr(res, n)
    assert res.n_lines >= res.capacity
    if distinct_keys is not None:
        assert res.unique_misses >= distinct_keys  # every key misses once at least


def _trace(batches, rows_per_table):
    """A trace from batches of (table, row) pairs."""
    table = [t for b in batches for t, _ in b]
    row = [r for b in batches for _, r in b]
    batch = [i for i, b in enumerate(batches) for _ in b]
    return cachesim.Trace(table=np.array(table), row=np.array(row), batch=np.array(batch),
                          table_rows=np.array(rows_per_table))


def _oracle(trace, policy, capacity, ways):
    return naive.batch_replay(trace.keys.tolist(), trace.table.tolist(), trace.batch.tolist(),
                              trace.n_tables, policy, capacity, ways)


# -- hand-traced -------------------------------------------------------------------------------
def test_hand_traced_lru():
    # one table, 2 rows fully associative
    # batch 1 [1 2 3]: 1 -> line 0, 2 -> line 1, 3 conflict (no line left)
    # batch 2 [3 3 1]: 1 hits (stamp 2); 3 takes line 1 (key 2 unused, stamp 1): evicts 2
    # batch 3 [2 4]:   both lines stamp 2, ties to the lowest way: 2 -> line 0, 4 -> line 1
    tr = cachesim.Trace.from_keys([1, 2, 3, 3, 3, 1, 2, 4], batch=[0, 0, 0, 1, 1, 1, 2, 2])
    cache = BatchCache.for_trace(tr, 2, ways=None, policy="lru")
    key = tr.distinct_keys
    s1 = cache.step(tr.dense_ids[:3])
    assert key[s1.unique_ids].tolist() == [1, 2, 3]
    assert s1.slot.tolist() == [0, 1, -1] and not s1.was_hit.any()
    assert s1.counters == {"calls": 1, "requested_indices": 3, "unique_indices": 3,
                           "unique_misses": 3, "conflict_unique_misses": 1,
                           "conflict_misses": 1, "evictions": 0, "misses": 3}
    s2 = cache.step(tr.dense_ids[3:6])
    assert key[s2.unique_ids].tolist() == [1, 3]
    assert key[s2.unique_ids][s2.inverse].tolist() == [3, 3, 1]
    assert s2.slot.tolist() == [0, 1] and s2.was_hit.tolist() == [True, False]
    assert s2.evicted_slots.tolist() == [1] and key[s2.evicted_ids].tolist() == [2]
    assert s2.filled_slots.tolist() == [1] and key[s2.filled_ids].tolist() == [3]
    s3 = cache.step(tr.dense_ids[6:])
    assert s3.slot.tolist() == [0, 1]
    assert sorted(zip(s3.evicted_slots.tolist(), key[s3.evicted_ids].tolist())) == [(0, 1), (1, 3)]
    assert cache.totals() == {"calls": 3, "requested_indices": 8, "unique_indices": 7,
                              "unique_misses": 6, "conflict_unique_misses": 1,
                              "conflict_misses": 1, "evictions": 3, "misses": 7}


def test_hand_traced_lfu():
    # one line: [5 5] fills it (count 2); [7] count 1 < 2 is refused; [7 7] count 3 >= 2 evicts 5
    tr = cachesim.Trace.from_keys([5, 5, 7, 7, 7], batch=[0, 0, 1, 2, 2])
    r = replay_batch(tr, "lfu", 1, ways=None, cache_model="ideal")
    assert (r.calls, r.unique_misses, r.conflict_unique_misses, r.conflict_misses,
            r.evictions) == (3, 3, 1, 1, 1)
    # LRU on the same trace: [7] evicts 5 (unused by the batch), [7 7] hits
    r = replay_batch(tr, "lru", 1, ways=None, cache_model="ideal")
    assert (r.unique_misses, r.conflict_unique_misses, r.evictions) == (2, 0, 1)


def test_lines_used_by_the_batch_are_never_taken():
    # 1 line: [1] fills it; [1 2]: 1 hits, 2 finds no line it may take -> conflict, 2 accesses
    tr = cachesim.Trace.from_keys([1, 1, 2, 2], batch=[0, 1, 1, 1])
    for pol in ("lru", "lfu"):
        r = replay_batch(tr, pol, 1, ways=1, cache_model="ideal")
        assert (r.unique_misses, r.conflict_unique_misses, r.conflict_misses, r.evictions) == \
            (2, 1, 2, 0)


# -- the oracle on random multi-table batched traces --------------------------------------------
@st.composite
def batched_traces(draw):
    n_tables = draw(st.integers(1, 3))
    rows = draw(st.lists(st.integers(1, 25), min_size=n_tables, max_size=n_tables))
    access = st.integers(0, n_tables - 1).flatmap(
        lambda t: st.tuples(st.just(t), st.integers(0, rows[t] - 1)))
    batches = draw(st.lists(st.lists(access, min_size=1, max_size=40), min_size=1, max_size=10))
    return _trace(batches, rows)


def _compare_with_oracle(tr, policy, capacity, ways, per_table):
    res = replay_batch(tr, policy, capacity, ways=ways, per_table=per_table, cache_model="ideal")
    tot, per_t, steps = _oracle(tr, policy, list(capacity) if per_table else capacity, ways)
    for n in COUNTER_NAMES:
        assert getattr(res, n) == tot[n], n
        assert res.per_table[n] == per_t[n], n
    assert res.calls == tot["calls"]
    check_invariants(res, tr.n_distinct)
    # step by step: the same counters and the same lines as the oracle
    cache = BatchCache.for_trace(tr, capacity if not per_table else list(capacity), ways=ways,
                                 policy=policy)
    starts = cachesim.simulate.batch.batch_starts(tr)
    keys = tr.distinct_keys
    for i, want in enumerate(steps):
        s = cache.step(tr.dense_ids[starts[i]:starts[i + 1]])
        uk = keys[s.unique_ids].tolist()
        assert uk == sorted(want["slot"])
        assert keys[s.unique_ids][s.inverse].tolist() == tr.keys[starts[i]:starts[i + 1]].tolist()
        assert s.slot.tolist() == [want["slot"][k] for k in uk]
        assert s.was_hit.tolist() == [want["was_hit"][k] for k in uk]
        assert sorted(zip(s.evicted_slots.tolist(), keys[s.evicted_ids].tolist())) == \
            want["evicted"]
        assert sorted(zip(s.filled_slots.tolist(), keys[s.filled_ids].tolist())) == \
            want["filled"]
    assert cache.totals() == {"calls": res.calls, **{n: getattr(res, n) for n in COUNTER_NAMES}}


@given(batched_traces(), st.sampled_from(["lru", "lfu"]), st.integers(1, 30),
       st.sampled_from([1, 2, 4, None]))
def test_unified_matches_oracle(tr, policy, capacity, ways):
    _compare_with_oracle(tr, policy, capacity, ways, per_table=False)


@given(batched_traces(), st.sampled_from(["lru", "lfu"]), st.data(),
       st.sampled_from([1, 2, 4, None]))
def test_per_table_matches_oracle(tr, policy, data, ways):
    caps = data.draw(st.lists(st.integers(1, 12), min_size=tr.n_tables, max_size=tr.n_tables))
    _compare_with_oracle(tr, policy, caps, ways, per_table=True)


@pytest.mark.parametrize("policy", ["lru", "lfu"])
@pytest.mark.parametrize("ways", [None, 64])
def test_large_sets_match_oracle(policy, ways):
    # sets of 64+ lines and 100+ misses a set: the argsort paths of the kernel
    rng = np.random.default_rng(7)
    batches = [[(int(t), int(r)) for t, r in zip(rng.integers(0, 2, n), rng.zipf(1.3, n) % 300)]
               for n in rng.integers(100, 400, 12)]
    tr = _trace(batches, [300, 300])
    _compare_with_oracle(tr, policy, 150, ways, per_table=False)
    _compare_with_oracle(tr, policy, [70, 90], ways, per_table=True)


# -- invariants, resumability ---------------------------------------------------------------------
def _zipf_trace(seed=3, n_batches=30, batch=300, rows=(500, 80, 2000)):
    rng = np.random.default_rng(seed)
    n = n_batches * batch
    table = rng.integers(0, len(rows), n)
    row = (rng.zipf(1.2, n) - 1) % np.asarray(rows)[table]
    return cachesim.Trace(table=table, row=row, batch=np.arange(n) // batch,
                          table_rows=np.asarray(rows))


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_cache_as_large_as_the_keys_misses_only_compulsorily(policy):
    tr = _zipf_trace()
    for kw in ({"capacity": "100%", "ways": None}, {"capacity": tr.n_distinct, "ways": None},
               {"capacity": "100%", "ways": None, "per_table": True},
               {"capacity": tr.n_distinct, "ways": tr.n_distinct}):
        r = replay_batch(tr, policy, **kw, cache_model="ideal")
        check_invariants(r, tr.n_distinct)
        assert r.unique_misses == tr.n_distinct and r.conflict_unique_misses == 0
        assert r.conflict_misses == 0 and r.evictions == 0, kw


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_replay_equals_steps_and_resumes(policy):
    tr = _zipf_trace(seed=5)
    res = replay_batch(tr, policy, "5%", ways=4, per_table=True, cache_model="ideal")
    check_invariants(res, tr.n_distinct)
    caps, _ = table_capacities(tr, "5%")
    a = BatchCache.for_trace(tr, caps, ways=4, policy=policy)
    starts = cachesim.simulate.batch.batch_starts(tr)
    for i in range(len(starts) - 1):
        a.step(tr.dense_ids[starts[i]:starts[i + 1]])
    # run() in two pieces (resuming from the arrays) gives the same counters
    b = BatchCache.for_trace(tr, caps, ways=4, policy=policy)
    h = 11
    b.run(tr.dense_ids[:starts[h]], starts[:h + 1])
    b.run(tr.dense_ids[starts[h]:], starts[h:] - starts[h])
    want = {"calls": res.calls, **{n: getattr(res, n) for n in COUNTER_NAMES}}
    assert a.totals() == want == b.totals()
    assert np.array_equal(a.counters, b.counters)
    assert a.line_ids.tolist() == b.line_ids.tolist()


def test_set_assoc_has_conflicts_and_more_ways_fewer():
    tr = _zipf_trace(seed=9)
    r1 = replay_batch(tr, "lru", "10%", ways=1, cache_model="ideal")
    r32 = replay_batch(tr, "lru", "10%", ways=32, cache_model="ideal")
    full = replay_batch(tr, "lru", "10%", ways=None, cache_model="ideal")
    for r in (r1, r32, full):
        check_invariants(r, tr.n_distinct)
    assert r1.conflict_unique_misses > r32.conflict_unique_misses
    assert r1.n_sets == r1.capacity and full.n_sets == 1 and full.ways is None
    assert r32.n_sets == -(-r32.capacity // 32)


def test_table_capacities():
    tr = _zipf_trace()
    distinct = np.bincount(tr.key_table, minlength=tr.n_tables)
    caps, text = table_capacities(tr, "5%")
    assert caps.tolist() == [max(1, round(0.05 * d)) for d in distinct] and text == "5%"
    caps, _ = table_capacities(tr, 100)  # split in proportion to distinct keys, summing to 100
    assert caps.sum() == 100 and (caps >= 1).all() and caps.argmax() == distinct.argmax()
    r = replay_batch(tr, "lru", [3, 4, 5], ways=2, per_table=True, cache_model="ideal")
    # 3, 4, 5 rows at 2 ways: 2 + 2 + 3 sets, and `capacity` is the lines used, 4 + 4 + 6
    assert r.capacity == 14 and r.per_table_caches and r.n_sets == 2 + 2 + 3


# -- errors ------------------------------------------------------------------------------------
def test_errors():
    tr = _zipf_trace()
    with pytest.raises(CachesimError, match="'fifo' has no batch rule.*with one: lru, lfu;.*"
                                            "mode=\"access\" for fifo"):
        replay_batch(tr, "fifo", "5%", cache_model="ideal")
    with pytest.raises(CachesimError, match="has no batches.*batch_size=N.*mode=\"access\""):
        replay_batch(cachesim.Trace.from_keys([1, 2, 3]), "lru", 2,
                     cache_model="ideal")
    with pytest.raises(CachesimError, match="must not decrease.*access 2 has batch 0 after batch 1"):
        replay_batch(cachesim.Trace.from_keys([1, 2, 3], batch=[0, 1, 0]), "lru", 2,
                     cache_model="ideal")
    with pytest.raises(CachesimError, match="batch mode counts rows"):
        replay_batch(tr, "lru", "1MiB", cache_model="ideal")
    with pytest.raises(CachesimError, match="give one per table"):
        replay_batch(tr, "lru", [1, 2], per_table=True, cache_model="ideal")
    with pytest.raises(CachesimError, match="needs per-table caches"):
        replay_batch(tr, "lru", [1, 2, 3], cache_model="ideal")
    with pytest.raises(CachesimError, match="at least 1"):
        replay_batch(tr, "lru", "5%", ways=0, cache_model="ideal")


def test_aliases_resolve():
    tr = _zipf_trace()
    assert replay_batch(tr, "least-recently-used", "5%", ways=8,
                        cache_model="ideal").policy == "lru"


# -- engine and CLI ------------------------------------------------------------------------------
def test_engine_dispatch():
    tr = _zipf_trace()
    # batched trace: batch mode by default
    r = cachesim.replay(tr, "lru", "5%", ways=8, cache_model="ideal")
    assert r.mode == "batch" and r.to_record() == replay_batch(
        tr, "lru", "5%", ways=8, cache_model="ideal").to_record() \
        | {"seconds": r.seconds}
    a = cachesim.replay(tr, "lru", "5%", mode="access")
    assert isinstance(a, cachesim.Result) and a.requests == len(tr)
    with pytest.raises(CachesimError, match="mode=\"access\" for fifo"):
        cachesim.replay(tr, "fifo", "5%")
    with pytest.raises(CachesimError, match="need batch mode"):
        cachesim.replay(tr, "lru", "5%", mode="access", per_table=True)
    plain = cachesim.Trace.from_keys([1, 2, 1])
    assert isinstance(cachesim.replay(plain, "lru", 1), cachesim.Result)


def test_cli_batch_mode(monkeypatch, tmp_path):
    tr = _zipf_trace()
    monkeypatch.setattr("cachesim.cli._read", lambda *a, **k: tr)
    run = CliRunner().invoke(cachesim.cli.cli, ["replay", "t", "-p", "lru,lfu", "-s", "5%",
                                                "--cache-model", "ideal",
                                                "-w", "8", "--per-table", "--json", "-q"])
    assert run.exit_code == 0, run.output
    recs = json.loads(run.output)
    want = replay_batch(tr, "lfu", "5%", ways=8, per_table=True,
                        cache_model="ideal").to_record(per_table=True)
    assert [r["policy"] for r in recs] == ["lru", "lfu"]
    assert {k: v for k, v in recs[1].items() if k != "seconds"} == \
        {k: v for k, v in want.items() if k != "seconds"}
    run = CliRunner().invoke(cachesim.cli.cli, ["replay", "t", "-s", "5%", "-w", "8", "-q",
                                                "--cache-model", "ideal"])
    assert run.exit_code == 0
    head = run.stdout.splitlines()[0].split()  # stderr: the note on the lines used
    assert head == ["policy", "cache_model", "size", "capacity", "ways", "calls",
                    "requested_indices", "unique_indices", "unique_misses",
                    "conflict_unique_misses", "conflict_misses", "evictions", "hit_ratio"]
    r = replay_batch(tr, "lru", "5%", ways=8, cache_model="ideal")
    assert run.stdout.splitlines()[1].split()[1] == "ideal"
    assert run.stdout.splitlines()[1].split()[5:8] == [f"{r.calls:,}", f"{r.requested_indices:,}",
                                                       f"{r.unique_indices:,}"]
    run = CliRunner().invoke(cachesim.cli.cli, ["replay", "t", "-p", "opt", "-s", "5%", "-q"])
    assert run.exit_code == 2
    assert "policy 'opt' has no batch rule" in run.output
    assert "(the policies with one: lru, lfu;" in run.output
    assert "use --mode access for opt" in run.output


def test_cli_trace_without_batches(tmp_path):
    p = tmp_path / "keys.txt"
    p.write_text("1\n2\n1\n")
    run = CliRunner().invoke(cachesim.cli.cli, ["replay", str(p), "-s", "1", "--mode", "batch"])
    assert run.exit_code == 2 and "has no batches" in run.output
