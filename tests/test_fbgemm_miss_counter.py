"""FBGEMM's RecordCacheMetrics(record_cache_miss_counter=True): the extra lookup before each
populate adds to num_conflict_misses, and cache_miss_counter counts forwards with a unique miss
and unique misses (tests/naive_fbgemm.py, written from `_prefetch` and lxu_cache_lookup_kernel)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import cachesim
from cachesim.trace import Trace
from tests import naive_fbgemm as naive


def _trace(rows, batches):
    flat = [(b, t, r) for b, batch in enumerate(batches) for t, r in batch]
    if not flat:
        flat = [(0, 0, 0)]
        batches[:] = [[(0, 0)]]
    b, t, r = (np.array(c, dtype=np.int64) for c in zip(*flat))
    return Trace(table=t, row=r, batch=b, table_rows=np.array(rows))


def _check(rows, batches, policy, per_table, lf, pipeline=False):
    tr = _trace(rows, batches)
    batches = [[] for _ in range(int(tr.batch.max()) + 1)]
    for b, t, r in zip(tr.batch.tolist(), tr.table.tolist(), tr.row.tolist()):
        batches[b].append((t, r))
    size = f"{lf * 100:g}%"
    got = cachesim.replay_batch(tr, policy, size, per_table=per_table, cache_model="fbgemm",
                                prefetch_pipeline=pipeline, record_cache_miss_counter=True)
    plain = cachesim.replay_batch(tr, policy, size, per_table=per_table, cache_model="fbgemm",
                                  prefetch_pipeline=pipeline)
    caches = []
    want = naive.replay(batches, rows, policy, load_factor=lf, per_table=per_table,
                        prefetch_pipeline=pipeline, record_miss_counter=True, caches_out=caches)
    assert got.num_conflict_misses == sum(w["num_conflict_misses"] for w in want)
    # cachesim's own counters and the other FBGEMM ones do not change
    for nm in ("conflict_misses", "misses", "num_unique_misses", "unique_misses"):
        assert getattr(got, nm) == getattr(plain, nm), nm
    # the extra lookup sees the cache as the batch began: every access not cached then
    assert got.num_conflict_misses == plain.num_conflict_misses + plain.misses
    if per_table:
        assert got.cache_miss_counter is None
    else:
        assert got.cache_miss_counter == caches[0].cache_miss_counter
    assert got.record_cache_miss_counter and not plain.record_cache_miss_counter
    return got


@st.composite
def batched(draw):
    T = draw(st.integers(1, 3))
    rows = draw(st.lists(st.integers(1, 80), min_size=T, max_size=T))
    batches = []
    for _ in range(draw(st.integers(1, 7))):
        ts = draw(st.lists(st.integers(0, T - 1), min_size=0, max_size=70))
        batches.append([(t, draw(st.integers(0, rows[t] - 1))) for t in ts])
    return rows, batches


@settings(max_examples=60, deadline=None)
@given(batched(), st.sampled_from(["lru", "lfu"]), st.booleans(), st.sampled_from([0.05, 0.4]))
def test_extra_lookup_equals_naive(data, policy, per_table, lf):
    rows, batches = data
    _check(rows, batches, policy, per_table, lf)


def test_extra_lookup_with_prefetch_pipeline_and_a_real_count():
    rng = np.random.default_rng(3)
    rows = [400, 90]
    batches = [[(int(t), int(rng.zipf(1.2) - 1) % rows[t]) for t in rng.integers(0, 2, 150)]
               for _ in range(12)]
    got = _check(rows, batches, "lru", False, 0.05, pipeline=True)
    assert got.cache_miss_counter[0] == 12 and got.cache_miss_counter[1] > 0
    assert got.num_conflict_misses > got.conflict_misses  # the lookup before populate counted


def test_the_ideal_model_refuses_it():
    tr = _trace([50], [[(0, 1), (0, 2)]])
    with pytest.raises(cachesim.CachesimError, match="record-cache-miss-counter"):
        cachesim.replay_batch(tr, "lru", "10%", cache_model="ideal",
                              record_cache_miss_counter=True)


def test_cli_flag(tmp_path):
    import json

    from click.testing import CliRunner

    from cachesim.cli import cli
    from pathlib import Path
    path = Path(__file__).parent / "data" / "criteo" / "kaggle_train_head10k.tsv"
    args = ["replay", str(path), "-p", "lru", "-s", "5%", "--mode", "batch", "--json", "-q",
            "--batch-size", "512"]
    plain = json.loads(CliRunner().invoke(cli, args).output)[0]
    run = CliRunner().invoke(cli, args + ["--record-cache-miss-counter"])
    assert run.exit_code == 0, run.output
    got = json.loads(run.output)[0]
    assert got["num_conflict_misses"] == plain["num_conflict_misses"] + plain["misses"]
    assert got["cache_miss_counter"][1] == got["num_unique_misses"] == plain["num_unique_misses"]
    bad = CliRunner().invoke(cli, args + ["--record-cache-miss-counter", "--cache-model",
                                          "ideal"])
    assert bad.exit_code == 2 and "needs --cache-model fbgemm" in bad.output
