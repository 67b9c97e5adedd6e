"""A Parquet trace of one table or several streams in access mode: the same Result as the
in-memory replay."""
from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

import cachesim
from cachesim.errors import CachesimError
from cachesim.simulate.access import replay
from cachesim.simulate.stream import StreamSource


def _fields(r):
    rec = r.to_record(per_table=True)
    rec.pop("seconds")
    return rec


def test_parquet_access_stream_equals_in_memory(tmp_path):
    rng = np.random.default_rng(2)
    rows = np.concatenate([rng.zipf(1.2, 3000) % 400, 10_000 + rng.integers(0, 300, 500)])
    plain = tmp_path / "rows.parquet"
    pl.DataFrame({"row": rows}).write_parquet(plain)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(3):  # natural order of the parts: part-2 before part-10
        pl.DataFrame({"row": rows[i * 1200:(i + 1) * 1200]}).write_parquet(
            folder / f"part-{[2, 10, 11][i]}.parquet")
    written = tmp_path / "cachesim.parquet"
    cachesim.write_trace(cachesim.Trace.from_keys(rows), written)
    for path in (plain, folder, written):
        trace = cachesim.read_trace(plain if path == folder else path)
        for chunk in (7, 1000):
            with StreamSource(path, chunk_accesses=chunk) as src:
                assert src.n == len(trace)
                for name, size, ways in (("lru", "5%", None), ("opt", 30, None),
                                         ("lfu", 64, 8), ("s3fifo", 40, None)):
                    want = replay(trace, name, size, ways)
                    assert _fields(src.replay(name, size, ways)) == _fields(want), (path, name)


def _tables_trace(n, seed=5):
    """5 tables (t1 has no rows, t4's accesses all come in the last tenth), rows that keep
    arriving (keys first seen in late chunks), one size per access, dims 8..64."""
    rng = np.random.default_rng(seed)
    table = rng.choice([0, 2, 3], n).astype(np.int32)
    late = np.arange(n) >= n - n // 10
    table[late & (rng.random(n) < 0.5)] = 4
    row = np.minimum(rng.zipf(1.3, n), 200) - 1 + np.arange(n) // (n // 6)
    return cachesim.Trace(table=table, row=row, size=rng.integers(1, 900, n),
                          table_names=["a", "empty", "c", "d", "late"],
                          table_rows=np.array([300, 0, 256, 270, 300]),
                          table_dims=np.array([8, 16, 32, 64, 16]), source="test")


CONFIGS = [("lru", "10%", None), ("lfu", 40, None), ("fifo", "5%", None), ("opt", 30, None),
           ("lru", 40, 4), ("lfu", "10%", 4), ("fifo", 40, 4), ("lru", "8KiB", None)]


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_parquet_access_stream_of_several_tables(tmp_path, chunk):
    """Several tables: each key the in-memory trace's (linearised over the tables' rows, from
    cachesim's metadata or, for Parquet written elsewhere, inferred by a first pass), so every
    policy, set-associative ones (set hashes of the keys), OPT (next accesses from the backward
    pass) and byte sizes count as in memory, table by table; files, folders of files."""
    n = 300 if chunk == 1 else 2000
    tr = _tables_trace(n)
    meta = tmp_path / "meta.parquet"  # cachesim's metadata: rows, names and dims from it
    cachesim.write_trace(tr, meta)
    plain = tmp_path / "plain.parquet"  # written elsewhere: rows inferred, dims the default
    pl.DataFrame({"table": tr.table, "row": tr.row}).write_parquet(plain)
    parts, meta_parts = tmp_path / "parts", tmp_path / "meta_parts"
    parts.mkdir()
    meta_parts.mkdir()
    cuts = [0, n // 3, n // 3 + 1, n - n // 20, n]  # the last part: only late keys
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        name = f"part-{[1, 2, 10, 11][i]}.parquet"  # natural order: part-2 before part-10
        pl.DataFrame({"table": tr.table[a:b], "row": tr.row[a:b]}).write_parquet(parts / name)
        cachesim.write_trace(tr.slice(a, b), meta_parts / name)
    first = np.unique(tr.keys, return_index=True)[1]
    assert (first > n - n // 20).sum() >= 3  # keys first seen in the last chunks
    for path, whole in ((meta, meta), (plain, plain), (parts, plain), (meta_parts, meta)):
        memory = cachesim.read_trace(whole)
        with StreamSource(path, chunk_accesses=chunk) as src:
            assert src.n == n and src.meta.table_names == memory.table_names
            assert np.array_equal(src.meta.key_table, memory.key_table)
            for name, size, ways in CONFIGS:
                if memory.size is None and size.__class__ is str and size.endswith("B"):
                    continue  # bytes need the size column
                want = replay(memory, name, size, ways)
                assert want.hits > 0 and want.evictions > 0
                got = src.replay(name, size, ways)
                assert _fields(got) == _fields(want), (path.name, name, size, ways)
    assert len(want.per_table["table"]) == 5 and want.per_table["requests"][1] == 0


def test_parquet_access_stream_of_a_hive_dataset_and_sizes(tmp_path):
    """A dataset partitioned by `table=` (its accesses in the order of its files: table by
    table), and one table with a `size` column (byte capacities, as in memory)."""
    tr = _tables_trace(1200)
    order = np.argsort(tr.table, kind="stable")
    dataset = tmp_path / "ds"
    for t in np.unique(tr.table).tolist():
        (dataset / f"table={t}").mkdir(parents=True)
        pl.DataFrame({"row": tr.row[tr.table == t]}).write_parquet(
            dataset / f"table={t}" / "part-0.parquet")
    whole = tmp_path / "sorted.parquet"
    pl.DataFrame({"table": tr.table[order], "row": tr.row[order]}).write_parquet(whole)
    sized = tmp_path / "sized.parquet"
    pl.DataFrame({"row": tr.row, "size": tr.size}).write_parquet(sized)
    for path, memory in ((dataset, whole), (sized, sized)):
        memory = cachesim.read_trace(memory)
        with StreamSource(path, chunk_accesses=7) as src:
            for name, size, ways in (("lru", "8KiB", None), ("opt", 40, None), ("fifo", 40, 4)):
                if size.__class__ is str and memory.size is None:
                    size = "5%"
                want = replay(memory, name, size, ways)
                assert want.hits > 0 and _fields(src.replay(name, size, ways)) == _fields(want)
    assert memory.has_sizes and want.request_bytes == int(tr.size.sum())


def test_parquet_access_stream_sweep_of_several_tables(tmp_path):
    """A streamed access sweep of several tables: the in-memory sweep's rows (costs from the
    metadata's dims)."""
    from cachesim.sweep import run_sweep
    from cachesim.sweep_stream import StreamedTrace
    path = tmp_path / "t.parquet"
    cachesim.write_trace(_tables_trace(1500), path)
    args = dict(policies="lru,fifo", sizes="5%,60", ways="4,none", mode="access",
                precisions="fp32,int8")
    want = run_sweep(cachesim.read_trace(path), jobs=1, **args).table
    with StreamedTrace.open(path, "access", chunk_accesses=7) as st:
        got = run_sweep(st, jobs=1, **args).table
        assert list(st.table_dims) == [8, 16, 32, 64, 16]
    assert want.height == 16 and got.drop("replay_seconds").equals(want.drop("replay_seconds"))
    with pytest.raises(CachesimError, match="--table-rows moves the keys"):
        StreamedTrace.open(path, "access", table_rows=[300, 1, 256, 270, 300])


def test_parquet_access_stream_refuses_what_it_cannot_read(tmp_path):
    several = tmp_path / "two.parquet"  # several tables stream (they were refused once)
    pl.DataFrame({"table": [0, 1, 1, 0, 1], "row": [1, 2, 3, 1, 2]}).write_parquet(several)
    with StreamSource(several, chunk_accesses=2) as src:
        got = src.replay("lru", 3, None)
    assert _fields(got) == _fields(replay(cachesim.read_trace(several), "lru", 3, None))
    assert got.per_table["table"] == ["t0", "t1"] and got.per_table["hits"] == [1, 1]
    named = tmp_path / "named.parquet"
    pl.DataFrame({"table": ["a", "b"], "row": [1, 2]}).write_parquet(named)
    with pytest.raises(CachesimError, match="needs numbered tables"):
        StreamSource(named)
    outside = tmp_path / "outside.parquet"  # metadata gives 5 rows to table t0: row 7 is t1's
    cachesim.write_trace(cachesim.Trace(table=np.array([0, 1, 0]), row=np.array([1, 2, 7]),
                                        table_rows=np.array([5, 5])), outside)
    with pytest.raises(CachesimError, match=r"access 2 \(0-based\): row 7 of table t0"):
        StreamSource(outside, chunk_accesses=2)  # named by its place in the whole trace
    negative = tmp_path / "neg.parquet"
    pl.DataFrame({"row": [4, 5, -1, 6]}).write_parquet(negative)
    with pytest.raises(CachesimError, match="access 2: row -1 is negative"):
        StreamSource(negative)


def test_cli_access_stream_of_parquet(tmp_path, monkeypatch):
    import json

    import cachesim.simulate.stream as stream
    opened = []

    class Spy(stream.StreamSource):
        def __init__(self, *a, **k):
            opened.append(str(a[0]))
            super().__init__(*a, **k)

    monkeypatch.setattr(stream, "StreamSource", Spy)

    from click.testing import CliRunner

    from cachesim.cli import cli
    path = tmp_path / "rows.parquet"
    pl.DataFrame({"row": np.random.default_rng(1).zipf(1.3, 5000) % 700}).write_parquet(path)
    args = ["replay", str(path), "--mode", "access", "-p", "lru,arc", "-s", "2%", "--ways",
            "full", "--json", "-q"]
    streamed = CliRunner().invoke(cli, args + ["--stream"])
    memory = CliRunner().invoke(cli, args + ["--no-stream"])
    assert streamed.exit_code == 0 and memory.exit_code == 0, streamed.output + memory.output

    def recs(out):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(out)]
    assert recs(streamed.output) == recs(memory.output)
    assert opened == [str(path)]  # --stream read it in chunks; --no-stream did not
