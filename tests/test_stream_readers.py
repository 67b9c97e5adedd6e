"""Streamed batch readers (cachesim.io.stream): a folder of Parquet files, a hive-partitioned
dataset, fbgemm-npz and dlrm-pt folders give the in-memory reader's trace and replay results."""
from __future__ import annotations

import dataclasses
import itertools
import warnings

import numpy as np
import polars as pl
import pytest

from cachesim.errors import CachesimError
from cachesim.io import read_trace, write_trace
from cachesim.io.stream import batch_chunks, batch_streamable, parquet_files
from cachesim.simulate.batch import replay_batch
from cachesim.simulate.stream import BatchStreamSource
from cachesim.trace import Trace


def _fields(res):
    d = dataclasses.asdict(res)
    d.pop("seconds")
    return d


def _trace(n=2400, seed=11, tables=3):
    rng = np.random.default_rng(seed)
    table = rng.integers(0, tables, n).astype(np.int32)
    row = np.minimum(rng.zipf(1.3, n), 300) - 1 + np.arange(n) // 200
    batch = np.cumsum(rng.random(n) < 0.05)
    return Trace(table=table, row=row, batch=batch, source="test")


def _same_replays(path, want_trace, chunk, models=("fbgemm", "ideal"), **options):
    """Streamed replays of `path` equal the in-memory replays of `want_trace`."""
    src = BatchStreamSource(path, chunk_accesses=chunk, **options)
    assert len(src) == len(want_trace)
    assert np.array_equal(src.meta.table_rows, want_trace.table_rows)
    assert np.array_equal(src.meta.distinct_keys, want_trace.distinct_keys)
    evictions = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TableRowsInferredWarning: both sides alike
        for model in models:
            for pol, per_table in (("lru", False), ("lfu", True)):
                ways = 32 if model == "fbgemm" else 4
                want = replay_batch(want_trace, pol, "10%", ways, cache_model=model,
                                    per_table=per_table)
                got = src.replay(pol, "10%", ways, cache_model=model, per_table=per_table)
                assert want.requests == len(want_trace) and want.hits > 0
                evictions += want.evictions
                assert _fields(got) == _fields(want), (model, pol, per_table, chunk)
    assert evictions > 0


def test_parquet_folder_of_cachesim_files(tmp_path):
    """Parts written by cachesim (each a slice of one trace, same tables), named so that only
    natural order (part-2 before part-10) is the trace's order."""
    t = dataclasses.replace(_trace(), table_rows=np.array([400, 450, 500]),
                            table_rows_inferred=False)
    whole = tmp_path / "whole.parquet"
    write_trace(t, whole)
    folder = tmp_path / "parts"
    folder.mkdir()
    cuts = [0, 300, 301, 1000, 1777, len(t)]  # cuts fall inside batches too
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        write_trace(t.slice(a, b), folder / f"part-{2 * i + 2}.parquet")
    (folder / "_SUCCESS").write_text("")  # Spark's marker: not a data file
    names = [f.name for f in parquet_files(folder)]
    assert names == ["part-2.parquet", "part-4.parquet", "part-6.parquet", "part-8.parquet",
                     "part-10.parquet"]
    assert batch_streamable(folder) == "parquet"
    for chunk in (7, 1000):
        _same_replays(folder, read_trace(whole), chunk)
    # the CLI streams a Parquet folder without --stream: it has no in-memory reader
    from tests.test_stream import _cli, _records
    args = ("-p", "lru,lfu", "-s", "10%", "--per-table", "--json", "-q")
    got, want = _cli("replay", folder, *args), _cli("replay", whole, *args, "--no-stream")
    assert got.exit_code == 0 and want.exit_code == 0, got.output + want.output
    assert _records(got.output) == _records(want.output) and len(_records(got.output)) == 2


def test_hive_dataset_without_metadata(tmp_path):
    """A hive-partitioned dataset written by polars (no cachesim metadata): the tables and their
    rows are inferred as the in-memory reader infers them for one plain Parquet file."""
    t = _trace(seed=12)
    frame = pl.DataFrame({"table": t.table, "row": t.row, "batch": t.batch,
                          "day": t.batch // 40})
    root = tmp_path / "dataset"
    for day in frame["day"].unique().to_list():
        part = root / f"day={day}"
        part.mkdir(parents=True)
        frame.filter(pl.col("day") == day).drop("day").write_parquet(part / "data.parquet")
    assert len(list(root.iterdir())) >= 3  # day=10 sorts after day=2
    plain = tmp_path / "plain.parquet"
    frame.drop("day").write_parquet(plain)
    want = read_trace(plain)
    assert want.table_rows_inferred
    head = next(batch_chunks(root, 100))
    assert head.table_rows_inferred and head.table_names == want.table_names
    _same_replays(root, want, 100)


def test_parquet_refusals(tmp_path):
    named = tmp_path / "named.parquet"
    pl.DataFrame({"table": ["a", "b"], "row": [1, 2], "batch": [0, 0]}).write_parquet(named)
    with pytest.raises(CachesimError, match="numbered tables"):
        BatchStreamSource(named)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_trace(_trace(100), mixed / "a.parquet")
    pl.DataFrame({"table": [0], "row": [1], "batch": [9]}).write_parquet(mixed / "b.parquet")
    with pytest.raises(CachesimError, match="b.parquet: has no cachesim metadata"):
        BatchStreamSource(mixed)
    other = tmp_path / "other"
    other.mkdir()
    write_trace(_trace(100), other / "a.parquet")
    write_trace(_trace(100, tables=2), other / "b.parquet")
    with pytest.raises(CachesimError, match="tables .names or dims. differ"):
        BatchStreamSource(other)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CachesimError, match="no .parquet files"):
        list(batch_chunks(empty, 10, "parquet"))


def _tbe_batches(rng, n_files=6, T=3, B=4):
    """(indices, offsets, lengths) per file: T*B bags of 0 to 5 rows, table-major."""
    out = []
    for _ in range(n_files):
        lengths = rng.integers(0, 6, (T, B))
        offsets = np.concatenate([[0], np.cumsum(lengths.ravel())])
        indices = np.minimum(rng.zipf(1.4, int(offsets[-1])), 60) - 1
        out.append((indices, offsets, lengths))
    return out


def test_fbgemm_npz_folder(tmp_path):
    from cachesim.io.fbgemm import write_fbgemm_npz
    rng = np.random.default_rng(3)
    folder = tmp_path / "npz"
    folder.mkdir()
    for i, (ind, off, ln) in enumerate(_tbe_batches(rng, n_files=12)):
        write_fbgemm_npz(folder / f"b{i}.npz", ind, off, 3, 4, lengths=ln)
    want = read_trace(folder)
    assert want.batch_starts.shape[0] > 10
    chunks = list(batch_chunks(folder, 1))
    assert [len(c) for c in chunks[1:]] == np.diff(want.batch_starts).tolist()  # a file a chunk
    _same_replays(folder, want, 1)
    one = folder / "b3.npz"  # one file: one batch, fed whole however small the chunks
    want = replay_batch(read_trace(one), "lru", 4, None, cache_model="ideal")
    got = BatchStreamSource(one, chunk_accesses=5).replay("lru", 4, None, cache_model="ideal")
    assert want.calls == 1 and want.misses == want.requests > 5
    assert _fields(got) == _fields(want)


def test_dlrm_pt_folder(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    folder = tmp_path / "pt"
    folder.mkdir()
    for i, (ind, off, ln) in enumerate(_tbe_batches(rng, n_files=10)):
        torch.save((torch.from_numpy(ind), torch.from_numpy(off), torch.from_numpy(ln)),
                   folder / f"part{i}.pt")
    assert batch_streamable(folder) == "dlrm-pt"
    want = read_trace(folder)
    _same_replays(folder, want, 1000)


def test_sizes_kept_by_the_first_pass(tmp_path):
    """The first pass keeps each access's size only once they differ (constant sizes are one
    number): constant throughout, constant and then varying inside a late chunk, varying from
    the start; byte and row capacities, chunks of 1, 7 and 1,000, equal to the in-memory replay."""
    import cachesim
    from cachesim.io.libcachesim import ORACLE_DTYPE
    from cachesim.simulate.access import replay
    from cachesim.simulate.stream import StreamSource
    rng = np.random.default_rng(9)
    n = 3000
    keys = rng.zipf(1.2, n) % 300
    for name, sizes in (("constant", np.full(n, 64)),
                        ("late", np.where(np.arange(n) < 2203, 64, 1 + keys % 90)),
                        ("varying", 1 + keys % 90)):
        rec = np.zeros(n, dtype=ORACLE_DTYPE)
        rec["id"], rec["size"], rec["next"] = keys, sizes, -1
        path = tmp_path / f"{name}.oracleGeneral.bin"
        rec.tofile(path)
        trace = cachesim.read_trace(path)
        for chunk in (1, 7, 1000):
            with StreamSource(path, chunk_accesses=chunk) as src:
                for policy, cap in (("lru", "2KiB"), ("s3fifo", "3KiB"), ("opt", 30)):
                    want = replay(trace, policy, cap, None).to_record()
                    got = src.replay(policy, cap, None).to_record()
                    for k in ("hits", "misses", "miss_bytes", "request_bytes", "evictions"):
                        assert got[k] == want[k], (name, chunk, policy, k)
                assert (src._one_size is not None) == (name == "constant")
