"""The Python API has one shape: one `Result` type in both modes with the same names for the same
things, `replay` on a path or a list of policies, 32 ways by default everywhere, errors naming
keyword arguments, `Trace.__eq__`, and the fully associative batch path against the oracle."""
import inspect

import numpy as np
import pytest
from hypothesis import given, strategies as st

import cachesim
from cachesim.simulate.batch import COUNTER_NAMES, _first_lines, _line_order, replay_batch
from cachesim.errors import CachesimError
from cachesim.io import write_trace
from tests import naive

DEMO = cachesim.__file__.rsplit("/", 1)[0] + "/data/criteo_kaggle_head10k.parquet"
BATCH_ONLY = ("calls", "requested_indices", "unique_indices", "unique_misses",
              "conflict_unique_misses", "conflict_misses")


# -- one result type -----------------------------------------------------------------------------
def test_both_modes_return_one_type_with_the_same_names():
    tr = cachesim.read_trace(DEMO)
    b = cachesim.replay(tr, "lru", "5%")                # batches: batch mode
    a = cachesim.replay(tr, "lru", "5%", mode="access")
    assert type(a) is type(b) is cachesim.Result and cachesim.BatchResult is cachesim.Result
    assert (a.mode, b.mode) == ("access", "batch")
    for r in (a, b):
        assert r.requests == len(tr) and r.hits + r.misses == r.requests
        assert r.hit_ratio == r.hits / r.requests and r.miss_ratio == r.misses / r.requests
        assert r.request_bytes == int((np.bincount(tr.table, minlength=tr.n_tables)
                                       * tr.row_bytes_fp32()).sum())
        assert r.ways == 32 and r.n_sets == -(-r.capacity // 32)
        assert sum(r.per_table["misses"]) == r.misses and sum(r.per_table["hits"]) == r.hits
        assert sum(r.per_table["miss_bytes"]) == r.miss_bytes
        assert r.h2d_bytes is None and r.d2h_bytes is None  # they need a storage precision
    assert all(getattr(a, n) is None for n in BATCH_ONLY)
    assert b.requested_indices == b.requests and b.misses >= b.unique_misses
    # per access in both modes: close on this trace (batch ~0.65), not the per-unique ~0.27
    assert abs(a.hit_ratio - b.hit_ratio) < 0.05
    assert b.hit_ratio > 2 * (1 - b.unique_misses / b.unique_indices)


def test_batch_hits_and_misses_are_per_access_hand_traced():
    # 2 rows, fully associative. batch 1 [1 2 1]: nothing cached, 3 accesses miss (1 twice);
    # batch 2 [1 3 3]: 1 was cached (a hit), 3 was not (2 misses); 3 evicts 2.
    tr = cachesim.Trace.from_keys([1, 2, 1, 1, 3, 3], batch=[0, 0, 0, 1, 1, 1])
    r = cachesim.replay(tr, "lru", 2, ways=None, cache_model="ideal")
    assert (r.mode, r.requests, r.hits, r.misses) == ("batch", 6, 1, 5)
    assert r.hit_ratio == 1 / 6 and r.unique_misses == 3 and r.unique_indices == 4
    assert r.miss_bytes == 5 * 64 and r.evictions == 1   # dim 16 fp32 rows: 64 B
    rec = r.to_record()
    assert rec["hit_ratio"] == 1 / 6 and rec["misses"] == 5 and "per_table" not in rec


def test_batch_misses_match_the_oracle():
    rng = np.random.default_rng(3)
    keys = rng.zipf(1.3, 3000) % 500
    tr = cachesim.Trace.from_keys(keys, batch=np.arange(3000) // 100)
    for policy, ways in (("lru", 8), ("lfu", None)):
        r = replay_batch(tr, policy, 60, ways=ways, cache_model="ideal")
        tot, per_t, _ = naive.batch_replay(tr.keys.tolist(), tr.table.tolist(), tr.batch.tolist(),
                                           1, policy, 60, ways)
        assert r.misses == tot["misses"] and r.hits == len(tr) - tot["misses"]


# -- replay's arguments ---------------------------------------------------------------------------
def test_replay_takes_a_path_and_a_list_of_policies(tmp_path):
    p = tmp_path / "keys.txt"
    p.write_text("1\n2\n1\n3\n2\n1\n")
    rs = cachesim.replay(p, ["lru", "fifo", "opt"], 2)
    assert [r.policy for r in rs] == ["lru", "fifo", "opt"]
    assert [r.hits for r in rs] == [1, 2, 2]   # as in test_cli_basics' hand trace
    assert cachesim.replay(str(p), "lru", 2).misses == 5


def test_readme_first_snippet():
    result = cachesim.replay(cachesim.read_trace(DEMO), "lru", "5%", ways=32)
    assert 0 < result.hit_ratio < 1 and result.miss_bytes > 0


def test_one_default_of_32_ways():
    from cachesim.reports.report import ReportOptions
    from cachesim.sweep import make_configs, run_sweep
    assert cachesim.DEFAULT_WAYS == 32
    assert inspect.signature(cachesim.replay).parameters["ways"].default == 32
    assert inspect.signature(replay_batch).parameters["ways"].default == 32
    assert inspect.signature(cachesim.train).parameters["ways"].default == 32
    assert tuple(inspect.signature(run_sweep).parameters["ways"].default) == (32,)
    assert tuple(inspect.signature(make_configs).parameters["ways"].default) == (32,)
    assert ReportOptions().ways == 32
    keys = np.random.default_rng(1).integers(0, 2000, 20000)
    tr = cachesim.Trace.from_keys(keys)
    d, w32, full = (cachesim.replay(tr, "lru", 200), cachesim.replay(tr, "lru", 200, ways=32),
                    cachesim.replay(tr, "lru", 200, ways=None))
    assert (d.ways, full.ways, full.n_sets) == (32, None, 1)
    assert d.misses == w32.misses != full.misses
    assert full.misses == naive.lru(keys.tolist(), 200)[1]
    # ways above the rows are lowered to the rows: one set, the fully associative policy
    small = cachesim.replay(tr, "lru", 20)
    assert small.ways == 20 and small.misses == naive.lru(keys.tolist(), 20)[1]
    # a policy without a set-associative form (and a byte size) is fully associative
    assert cachesim.replay(tr, "opt", 200).ways is None


def test_errors_name_keyword_arguments():
    plain = cachesim.Trace.from_keys([1, 2, 1])
    batched = cachesim.Trace.from_keys([1, 2, 1], batch=[0, 0, 1])
    cases = [
        (lambda: cachesim.replay(plain, "lru", 2, mode="batch"), 'mode="access"'),
        (lambda: cachesim.replay(plain, "lru", 2, mode="bulk"), "mode='bulk'"),
        (lambda: cachesim.replay(plain, "lru", 2, per_table=True), "per_table=True"),
        (lambda: cachesim.replay(plain, "lru", 2, ways=0), "ways=0"),
        (lambda: cachesim.replay(plain, "opt", 2, ways=4), "ways=4"),
        (lambda: cachesim.replay(batched, "fifo", 2), 'mode="access" for fifo'),
        (lambda: replay_batch(batched, "lru", [1, 2]), "per_table=True"),
    ]
    for call, words in cases:
        with pytest.raises(CachesimError) as err:
            call()
        assert words in str(err.value) and "--" not in str(err.value)


def test_cli_says_flags_for_the_same_errors(tmp_path):
    from click.testing import CliRunner
    import cachesim.cli
    p = tmp_path / "keys.txt"
    p.write_text("1\n2\n1\n")
    run = CliRunner().invoke(cachesim.cli.cli, ["replay", str(p), "-s", "1", "--mode", "batch"])
    assert run.exit_code == 2 and "--mode access" in run.output and 'mode="' not in run.output


# -- Trace equality -------------------------------------------------------------------------------
def test_trace_equality_round_trips(tmp_path):
    tr = cachesim.read_trace(DEMO)
    assert cachesim.read_trace(write_trace(tr, tmp_path / "t.parquet")) == tr
    assert cachesim.read_trace(write_trace(tr, tmp_path / "t.csv")) == tr
    small = cachesim.Trace.from_keys([1, 2, 3], batch=[0, 0, 1])
    assert cachesim.read_trace(write_trace(small, tmp_path / "s.csv")) == small
    changed = cachesim.Trace.from_keys([1, 2, 4], batch=[0, 0, 1])
    assert changed != small and small != cachesim.Trace.from_keys([1, 2, 3])  # batches differ
    renamed = cachesim.Trace.from_keys([1, 2, 3], batch=[0, 0, 1])
    renamed.table_names = ["other"]
    assert renamed != small and small != "not a trace"
    _ = small.dense_ids  # derived caches do not count
    assert small == cachesim.Trace.from_keys([1, 2, 3], batch=[0, 0, 1])
    with pytest.raises(TypeError):
        hash(small)


# -- the fully associative batch path ------------------------------------------------------------
@given(st.integers(0, 2**32 - 1), st.integers(1, 120), st.booleans())
def test_first_lines_are_the_head_of_the_full_order(seed, n, lfu):
    rng = np.random.default_rng(seed)
    _NONE = np.iinfo(np.int64).max
    ckey = rng.permutation(n * 4)[:n].astype(np.int64)       # distinct, like stamp|way
    ccnt = rng.integers(-1, 4, n).astype(np.int64)            # many ties
    used = rng.random(n) < 0.3
    ckey[used] = _NONE
    ccnt[used] = _NONE
    full = np.empty(n, np.int64)
    m = _line_order(ckey, ccnt, n, lfu, full)
    for k in sorted({1, 2, n // 3 + 1, n - 1, n, n + 5} - {0}):
        out = np.empty(n, np.int64)
        got = _first_lines(ckey, ccnt, n, lfu, k, out)
        assert got == min(k, m) and out[:got].tolist() == full[:got].tolist()


@given(st.integers(0, 2**32 - 1), st.sampled_from(["lru", "lfu"]), st.integers(65, 160),
       st.integers(1, 60))
def test_fully_associative_large_caches_match_the_oracle(seed, policy, capacity, batch_len):
    # above 64 lines a set is ordered by _first_lines, not scanned: check it against the rules
    rng = np.random.default_rng(seed)
    n = 600
    keys = rng.zipf(1.2, n) % 400
    tr = cachesim.Trace.from_keys(keys, batch=np.arange(n) // batch_len)
    r = replay_batch(tr, policy, capacity, ways=None, cache_model="ideal")
    tot, _, _ = naive.batch_replay(tr.keys.tolist(), tr.table.tolist(), tr.batch.tolist(), 1,
                                   policy, capacity, None)
    for name in COUNTER_NAMES:
        assert getattr(r, name) == tot[name], name
