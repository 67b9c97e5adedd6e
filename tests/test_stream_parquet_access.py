"""A one-table Parquet trace streams in access mode: the same Result as the in-memory replay."""
from __future__ import annotations

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


def test_parquet_access_stream_refuses_what_it_cannot_read(tmp_path):
    several = tmp_path / "two.parquet"
    pl.DataFrame({"table": [0, 1, 1], "row": [1, 2, 3]}).write_parquet(several)
    with pytest.raises(CachesimError, match="reads one table"):
        StreamSource(several)
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
