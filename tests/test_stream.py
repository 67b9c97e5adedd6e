"""Streamed access replay (cachesim.simulate.stream) equals the in-memory replay exactly."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cachesim.errors import CachesimError
from cachesim.io import read_trace
from cachesim.io.stream import KeyMap, parquet_chunks, stream_chunks
from cachesim.policies import policy_names
from cachesim.simulate.access import replay
from cachesim.simulate.stream import StreamSource, replay_stream

ORACLE = "cloudphysics/cloudPhysicsIO.oracleGeneral.bin"
RECORD = 24


def _fields(res):
    d = dataclasses.asdict(res)
    d.pop("seconds")
    return d


@pytest.fixture(scope="module")
def prefixes(shared_data, tmp_path_factory):
    """oracleGeneral prefixes of the CloudPhysics trace: accesses -> (path, in-memory trace)."""
    data = (shared_data / ORACLE).read_bytes()
    out = {}
    folder = tmp_path_factory.mktemp("stream")
    for n in (3000, 30000, len(data) // RECORD):
        p = folder / f"cp{n}.oraclegeneral.bin"
        p.write_bytes(data[:n * RECORD])
        out[n] = (p, read_trace(p))
    return out


# (accesses, chunk size): chunk size 1 on a short prefix, 7 on a longer one, 1000 on all
CUTS = [(3000, 1), (30000, 7), (113872, 1000)]


def _configs(name):
    yield "10%", None
    if name in ("lru", "lfu", "fifo"):
        yield "10%", 32
    yield "256KiB", None


@pytest.mark.parametrize("n,chunk", CUTS)
@pytest.mark.parametrize("name", policy_names())
def test_stream_equals_in_memory(prefixes, name, n, chunk):
    path, trace = prefixes[n]
    assert len(trace) == n
    with StreamSource(path, chunk_accesses=chunk) as src:
        assert len(src) == n
        for size, ways in _configs(name):
            try:
                want = replay(trace, name, size, ways)
            except CachesimError as err:  # a row-only policy: the streamed replay says the same
                with pytest.raises(CachesimError, match="rows"):
                    src.replay(name, size, ways)
                assert "rows" in str(err)
                continue
            got = src.replay(name, size, ways)
            assert want.requests == n and want.hits > 0
            assert _fields(got) == _fields(want), (name, size, ways, chunk)


def test_keys_first_seen_in_late_chunks(tmp_path):
    """New keys arrive only in the last chunks, after the cache is full of old ones."""
    rng = np.random.default_rng(5)
    early = rng.integers(0, 50, 4000)
    late = np.concatenate([rng.integers(10**12, 10**12 + 500, 900), rng.integers(0, 50, 100)])
    keys = np.concatenate([early, late])
    p = tmp_path / "late.txt"
    p.write_text("\n".join(map(str, keys.tolist())) + "\n")
    trace = read_trace(p)
    assert trace.n_distinct > 450
    for chunk in (7, 1000):
        with StreamSource(p, chunk_accesses=chunk) as src:
            assert np.array_equal(src.keymap.distinct_keys, trace.distinct_keys)
            for name in ("lru", "opt", "arc"):
                want = replay(trace, name, 40, None)
                assert _fields(src.replay(name, 40, None)) == _fields(want)


def test_txt_stream_equals_in_memory(shared_data):
    path = shared_data / "cloudphysics" / "cloudPhysicsIO.txt"
    trace = read_trace(path)
    with StreamSource(path, chunk_accesses=1000) as src:
        assert len(src) == len(trace) > 100000
        for name, ways in (("lru", 32), ("opt", None), ("sieve", None)):
            want = replay(trace, name, "1%", ways)
            assert _fields(src.replay(name, "1%", ways)) == _fields(want)


def test_keymap_grows_and_numbers_in_first_access_order():
    rng = np.random.default_rng(1)
    keys = rng.integers(-2**63, 2**63 - 1, 30000, dtype=np.int64)
    assert np.unique(keys).shape[0] == 30000 and 0 not in keys
    keys = np.concatenate([keys, keys[::-1]])
    km = KeyMap()
    ids = np.concatenate([km.add(keys[i:i + 777]) for i in range(0, keys.shape[0], 777)])
    assert km.n == 30000
    assert np.array_equal(ids[:30000], np.arange(30000))
    assert np.array_equal(ids[30000:], np.arange(30000)[::-1])
    assert np.array_equal(km.lookup(keys[::3]), ids[::3])
    with pytest.raises(CachesimError, match="changed"):
        km.lookup(np.array([0], dtype=np.int64))  # 0 is not among the 30,000 random keys


def test_opt_next_access_across_chunks(tmp_path):
    """OPT's next accesses come from the backward pass; equal to in memory on a tiny trace."""
    keys = np.array([1, 2, 3, 1, 4, 2, 5, 1, 3, 4, 2, 1], dtype=np.int64)
    p = tmp_path / "t.txt"
    p.write_text("\n".join(map(str, keys)) + "\n")
    want = replay(read_trace(p), "opt", 2, None)
    for chunk in (1, 5):
        got = replay_stream(p, "opt", 2, None, chunk_accesses=chunk)
        assert _fields(got) == _fields(want)
        assert got.hits == want.hits == 3


def test_user_errors(tmp_path):
    cut = tmp_path / "cut.oraclegeneral.bin"
    cut.write_bytes(b"\0" * 30)
    with pytest.raises(CachesimError, match="24-byte"):
        replay_stream(cut, "lru", 10, None)
    empty = tmp_path / "empty.oraclegeneral.bin"
    empty.write_bytes(b"")
    with pytest.raises(CachesimError, match="no accesses"):
        replay_stream(empty, "lru", 10, None)
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n2\nx\n")
    with pytest.raises(CachesimError, match="line 3"):
        list(stream_chunks(bad, 2))
    with pytest.raises(CachesimError, match="oracle-general and txt"):
        replay_stream(tmp_path / "bad.txt", "lru", 10, None, fmt="csv")


def _cli(*args):
    from click.testing import CliRunner
    from cachesim.cli import cli
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="cachesim")


def _records(out):
    import json
    recs = json.loads(out)
    for r in recs:
        r.pop("seconds", None)
    return recs


def test_cli_stream_equals_in_memory(shared_data, monkeypatch):
    import cachesim.simulate.stream as stream
    path = shared_data / ORACLE
    args = ("replay", path, "-p", "lru,opt", "-s", "1%,1MiB", "--json", "-q")
    forced = _cli(*args, "--stream")
    memory = _cli(*args, "--no-stream")
    assert forced.exit_code == 0 and memory.exit_code == 0, forced.output + memory.output
    assert _records(forced.output) == _records(memory.output)
    assert len(_records(forced.output)) == 4
    # by default a file over STREAM_THRESHOLD streams: seen by the StreamSource it opens
    opened = []
    real = stream.StreamSource

    class Spy(real):
        def __init__(self, *a, **k):
            opened.append(a[0])
            super().__init__(*a, **k)

    monkeypatch.setattr(stream, "StreamSource", Spy)
    assert _cli(*args).exit_code == 0 and opened == []  # 2.7 MB: in memory
    monkeypatch.setattr("cachesim.sizes.STREAM_THRESHOLD", 1000)
    auto = _cli(*args)
    assert opened == [str(path)] and _records(auto.output) == _records(memory.output)


def test_cli_stream_refuses_batch_options(shared_data):
    res = _cli("replay", shared_data / ORACLE, "-p", "lru", "-s", "1%", "--stream",
               "--precision", "int8")
    assert res.exit_code == 2
    assert "drop --precision or --stream" in res.output and "Traceback" not in res.output


# -- batch mode ----------------------------------------------------------------------------------
def _batched(tmp_path, n=1500, seed=3):
    """A Parquet trace cachesim wrote: 3 tables, batches of 1 to 30 accesses, keys that keep
    arriving."""
    from cachesim.io import write_trace
    from cachesim.trace import Trace
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 3, n).astype(np.int32)
    row = np.minimum(rng.zipf(1.3, n), 400) - 1 + np.arange(n) // 300
    batch = np.cumsum(rng.random(n) < 0.08)
    p = tmp_path / "batched.parquet"
    write_trace(Trace(table=table, row=row, batch=batch, source="test"), p)
    return p


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_batch_stream_equals_in_memory(tmp_path, chunk):
    from cachesim.simulate.batch import replay_batch
    from cachesim.simulate.stream import replay_batch_stream
    path = _batched(tmp_path, n=400 if chunk == 1 else 1500)
    trace = read_trace(path)
    assert trace.batch_starts.shape[0] > 25  # many batches, so chunk boundaries cut some
    for name in ("lru", "lfu"):
        for size, ways in (("10%", 4), (30, None)):
            want = replay_batch(trace, name, size, ways, cache_model="ideal")
            got = replay_batch_stream(path, name, size, ways, chunk_accesses=chunk)
            assert want.hits > 0 and want.evictions > 0
            assert _fields(got) == _fields(want), (name, size, ways, chunk)


def test_batch_stream_kaggle_sample():
    """The shipped sample: 26 tables, batches of 3,328 accesses cut by chunks of 777."""
    from pathlib import Path
    from cachesim.simulate.batch import replay_batch
    from cachesim.simulate.stream import replay_batch_stream
    path = Path(__file__).resolve().parent.parent / "cachesim" / "data" / \
        "criteo_kaggle_head10k.parquet"
    trace = read_trace(path)
    sizes = [len(t) for t in list(parquet_chunks(path, 777))[1:]]
    assert max(sizes) <= 777 and len(sizes) > 300 and sum(sizes) == len(trace)
    assert 3328 % 777  # batches of 128 samples x 26 tables: chunk boundaries cut batches
    for name in ("lru", "lfu"):
        want = replay_batch(trace, name, "5%", 32, cache_model="ideal")
        got = replay_batch_stream(path, name, "5%", 32, chunk_accesses=777)
        assert _fields(got) == _fields(want)


def test_batch_stream_user_errors(tmp_path):
    import polars as pl
    from cachesim.simulate.stream import replay_batch_stream
    plain = tmp_path / "plain.parquet"
    # Parquet written elsewhere streams (tables inferred), but not with named tables
    pl.DataFrame({"table": ["a", "b"], "row": [1, 2], "batch": [0, 0]}).write_parquet(plain)
    with pytest.raises(CachesimError, match="cachesim convert"):
        replay_batch_stream(plain, "lru", 1, None)
    with pytest.raises(CachesimError, match="batch mode counts rows"):
        replay_batch_stream(_batched(tmp_path), "lru", "1MiB", None)


def test_cli_batch_stream(monkeypatch):
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "cachesim" / "data" / \
        "criteo_kaggle_head10k.parquet"
    args = ("replay", path, "-p", "lru,lfu", "-s", "5%,2000", "--cache-model", "ideal",
            "--json", "-q")
    streamed, memory = _cli(*args, "--stream"), _cli(*args)
    assert streamed.exit_code == 0 and memory.exit_code == 0, streamed.output + memory.output
    assert _records(streamed.output) == _records(memory.output)
    assert [r["mode"] for r in _records(streamed.output)] == ["batch"] * 4
    res = _cli("replay", path, "-p", "lru", "-s", "5%", "--stream", "--precision", "int8")
    assert res.exit_code == 2 and "drop --precision or --stream" in res.output
    # access mode: the 26 tables stream too, each key linearised over them as in memory
    for policies, ways in (("lru,fifo", "4"), ("opt", "full")):
        args = ("replay", path, "-p", policies, "-s", "5%,300", "-w", ways, "--mode", "access",
                "--json", "-q")
        streamed, memory = _cli(*args, "--stream"), _cli(*args, "--no-stream")
        assert streamed.exit_code == 0 and memory.exit_code == 0, streamed.output + memory.output
        recs = _records(streamed.output)
        assert recs == _records(memory.output)
        assert {r["mode"] for r in recs} == {"access"} and recs[0]["hits"] > 0
        assert recs[0]["ways"] == (4 if ways == "4" else None)
