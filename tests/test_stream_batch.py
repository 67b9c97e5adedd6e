"""Streamed batch replay (cachesim.simulate.stream.BatchStreamSource) equals the in-memory
replay_batch exactly, for every cache model (fbgemm, fbgemm-inference, ideal), unified and
per-table caches, LRU and LFU, on traces cut into chunks of 1, 7 and 1,000 accesses."""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

from cachesim.errors import CachesimError
from cachesim.io import read_trace, write_trace
from cachesim.simulate.batch import replay_batch
from cachesim.simulate.stream import BatchStreamSource, replay_batch_stream
from cachesim.trace import Trace
from tests.test_stream import _cli, _records

KAGGLE = Path(__file__).resolve().parent.parent / "cachesim" / "data" / \
    "criteo_kaggle_head10k.parquet"
ROWS = [300, 500, 700]


def _fields(res):
    d = dataclasses.asdict(res)
    d.pop("seconds")
    return d


def _trace(n: int, seed: int = 7, new_batch: float = 0.08) -> Trace:
    """3 tables of ROWS rows, batches of about 12 accesses, new keys arriving all along and a
    burst of keys never seen before in the last tenth of the trace."""
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 3, n).astype(np.int32)
    row = (np.minimum(rng.zipf(1.2, n), 150) - 1 + np.arange(n) // 40) % 250
    late = np.arange(n) >= n - n // 10
    row[late] = 250 + rng.integers(0, 50, int(late.sum()))  # rows 250.. appear only here
    batch = np.cumsum(rng.random(n) < new_batch)
    return Trace(table=table, row=row, batch=batch, table_rows=np.array(ROWS), source="test")


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    """{n: (parquet path, in-memory trace read back)} for 400 and 3,000 accesses."""
    folder = tmp_path_factory.mktemp("stream_batch")
    out = {}
    for n in (400, 3000):
        p = folder / f"batched{n}.parquet"
        write_trace(_trace(n), p)
        out[n] = (p, read_trace(p))
    return out


# (model, policy, per_table, ways, size): sizes small enough to evict
CONFIGS = [
    ("fbgemm", "lru", False, 32, "5%"), ("fbgemm", "lfu", False, 32, "5%"),
    ("fbgemm", "lru", True, 32, "10%"), ("fbgemm", "lfu", True, 32, "10%"),
    ("fbgemm-inference", "lru", False, 32, "5%"), ("fbgemm-inference", "lfu", False, 32, "5%"),
    ("fbgemm-inference", "lru", False, 1, "64"),
    ("ideal", "lru", True, 4, "10%"), ("ideal", "lfu", True, None, "10%"),
]


@pytest.mark.parametrize("n,chunk", [(400, 1), (3000, 7), (3000, 1000)])
def test_batch_stream_equals_in_memory(traces, n, chunk):
    path, trace = traces[n]
    starts = trace.batch_starts
    assert starts.shape[0] > 20 and len(trace) == n
    if chunk > 1:  # some chunk boundary falls inside a batch, so batches wait for their rest
        inside = np.setdiff1d(np.arange(chunk, n, chunk), starts)
        assert inside.size > 0
    # keys first seen in late chunks: rows 250.. appear only in the last tenth
    assert (trace.row[: n - n // 10] < 250).all() and (trace.row >= 250).sum() == n // 10
    src = BatchStreamSource(path, chunk_accesses=chunk)
    assert src.meta.n_distinct == trace.n_distinct and len(src) == n
    assert np.array_equal(src.meta.distinct_keys, trace.distinct_keys)
    for model, pol, per_table, ways, size in CONFIGS:
        want = replay_batch(trace, pol, size, ways, cache_model=model, per_table=per_table)
        got = src.replay(pol, size, ways, cache_model=model, per_table=per_table)
        assert want.hits > 0 and want.evictions > 0, (model, pol, per_table)
        assert _fields(got) == _fields(want), (model, pol, per_table, chunk)


def test_prefetch_pipeline_locks_carry_across_chunks(tmp_path):
    """The pipeline keeps the previous batch's lines locked: state the kernel hands from call to
    call (lock counters, the last batch's lines), so chunks of 7 must carry it. One set of 32
    ways and batches of about 25 accesses: locked lines leave misses without a way."""
    path = tmp_path / "pipeline.parquet"
    write_trace(_trace(2000, new_batch=0.04), path)
    trace = read_trace(path)
    want = replay_batch(trace, "lru", 32, 32, cache_model="fbgemm", prefetch_pipeline=True)
    plain = replay_batch(trace, "lru", 32, 32, cache_model="fbgemm")
    assert want.conflict_unique_misses > plain.conflict_unique_misses  # locking mattered
    got = replay_batch_stream(path, "lru", 32, 32, cache_model="fbgemm",
                              prefetch_pipeline=True, chunk_accesses=7)
    assert _fields(got) == _fields(want)


def test_kaggle_sample_fbgemm(tmp_path):
    """The shipped sample: 26 tables, batches of 3,328 accesses cut by chunks of 777."""
    trace = read_trace(KAGGLE)
    src = BatchStreamSource(KAGGLE, chunk_accesses=777)
    for pol in ("lru", "lfu"):
        for per_table in (False, True):
            want = replay_batch(trace, pol, "5%", 32, per_table=per_table)  # fbgemm: default
            got = src.replay(pol, "5%", 32, per_table=per_table)
            assert want.cache_model == "fbgemm" and want.calls == 79
            assert _fields(got) == _fields(want), (pol, per_table)


def test_table_rows_given_and_refused(traces):
    path, trace = traces[3000]
    from cachesim.simulate.fbgemm import with_table_rows
    rows = [400, 900, 1000]
    want = replay_batch(with_table_rows(trace, rows), "lru", "5%", 32)
    got = replay_batch_stream(path, "lru", "5%", 32, cache_model="fbgemm", table_rows=rows,
                              chunk_accesses=100)
    assert got.n_sets == want.n_sets != replay_batch(trace, "lru", "5%", 32).n_sets
    assert _fields(got) == _fields(want)
    with pytest.raises(CachesimError, match="--table-rows gives 2 tables"):
        BatchStreamSource(path, table_rows=[400, 900])
    # a row outside the given rows is named by its place in the whole trace, not the chunk's
    i = int(np.flatnonzero((trace.table == 1) & (trace.row >= 290))[0])
    with pytest.raises(CachesimError, match=f"access {i:,} "):
        BatchStreamSource(path, table_rows=[400, 290, 1000], chunk_accesses=100)


def test_inferred_rows_warn_once_per_replay(tmp_path):
    t = _trace(500)
    p = tmp_path / "inferred.parquet"
    write_trace(dataclasses.replace(t, table_rows=None), p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = replay_batch_stream(p, "lru", "5%", 32, cache_model="fbgemm", chunk_accesses=50)
    assert [type(w.message).__name__ for w in caught] == ["TableRowsInferredWarning"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = replay_batch(read_trace(p), "lru", "5%", 32)
    assert got.table_rows_inferred and _fields(got) == _fields(want)


def test_user_errors(traces, tmp_path):
    path, _ = traces[400]
    src = BatchStreamSource(path, chunk_accesses=50)
    with pytest.raises(CachesimError, match="drop --per-table"):
        src.replay("lru", "5%", 32, cache_model="fbgemm-inference", per_table=True)
    with pytest.raises(CachesimError, match="--cache-model ideal for other ways"):
        src.replay("lru", "5%", 8, cache_model="fbgemm")
    with pytest.raises(CachesimError, match="need --cache-model fbgemm"):
        src.replay("lru", "5%", 8, cache_model="ideal", warp=64)
    down = tmp_path / "down.parquet"
    write_trace(Trace(table=np.zeros(6, np.int32), row=np.arange(6), batch=[0, 0, 1, 1, 0, 0],
                      source="t"), down)
    with pytest.raises(CachesimError, match="must not decrease"):
        BatchStreamSource(down, chunk_accesses=4).replay("lru", 2, None, cache_model="ideal")


def test_cli_streams_fbgemm_per_table(monkeypatch, traces):
    path, _ = traces[3000]
    args = ("replay", path, "-p", "lru,lfu", "-s", "5%", "--json", "-q")
    for extra in ((), ("--per-table",), ("--cache-model", "fbgemm-inference", "-w", "1", "-p", "lru"),
                  ("--prefetch-pipeline", "-p", "lru")):
        streamed, memory = _cli(*args, *extra, "--stream"), _cli(*args, *extra, "--no-stream")
        assert streamed.exit_code == 0 and memory.exit_code == 0, streamed.output + memory.output
        assert _records(streamed.output) == _records(memory.output)
        assert {r["cache_model"] for r in _records(memory.output)} <= {"fbgemm",
                                                                       "fbgemm-inference"}
    # by default a batched trace over STREAM_THRESHOLD streams
    from cachesim.simulate import stream
    opened = []
    real = stream.BatchStreamSource

    class Spy(real):
        def __init__(self, *a, **k):
            opened.append(a[0])
            super().__init__(*a, **k)

    monkeypatch.setattr(stream, "BatchStreamSource", Spy)
    memory = _cli(*args, "--per-table")
    assert memory.exit_code == 0 and opened == []
    monkeypatch.setattr("cachesim.sizes.STREAM_THRESHOLD", 1000)
    auto = _cli(*args, "--per-table")
    assert opened == [Path(path)] or opened == [str(path)]
    assert _records(auto.output) == _records(memory.output)
    jobs = _cli(*args, "--jobs", "2")  # --jobs replays in memory
    assert jobs.exit_code == 0 and len(opened) == 1
    res = _cli(*args, "--stream", "--jobs", "2")
    assert res.exit_code == 2 and "drop --jobs or --stream" in res.output
