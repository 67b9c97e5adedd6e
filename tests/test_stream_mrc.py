"""Streamed miss-ratio curves (cachesim.analysis.stream) equal the in-memory ones exactly."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
import cachesim.io
from cachesim.analysis import stream as S
from cachesim.analysis.mrc import mrc
from cachesim.analysis.shards import shards
from cachesim.analysis.stack import LruStackStream, lru_hits
from cachesim.cli import cli
from cachesim.errors import CachesimError
from cachesim.io import read_trace
from cachesim.io.stream import KeyMap, streamable

ORACLE = "cloudphysics/cloudPhysicsIO.oracleGeneral.bin"
RECORD = 24


def _late_keys(seed=5):
    """Keys whose new ones arrive only in the last chunks, after the old ones were reused."""
    rng = np.random.default_rng(seed)
    early = rng.integers(0, 60, 4000)
    late = np.concatenate([rng.integers(10**12, 10**12 + 700, 1500), rng.integers(0, 60, 300)])
    return np.concatenate([early, late])


@pytest.fixture(scope="module")
def files(shared_data, tmp_path_factory):
    """name -> (path, in-memory trace, chunk size): an oracleGeneral prefix cut in chunks of 1,
    a longer one in chunks of 7, and a txt file of late keys in chunks of 1000."""
    folder = tmp_path_factory.mktemp("stream_mrc")
    data = (shared_data / ORACLE).read_bytes()
    out = {}
    for n, chunk in ((2000, 1), (30000, 7)):
        p = folder / f"cp{n}.oraclegeneral.bin"
        p.write_bytes(data[:n * RECORD])
        out[f"cp{n}"] = (p, read_trace(p), chunk)
    p = folder / "late.txt"
    p.write_text("\n".join(map(str, _late_keys().tolist())) + "\n")
    out["late"] = (p, read_trace(p), 1000)
    return out


NAMES = ["cp2000", "cp30000", "late"]


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_stack_stream_equals_lru_hits_with_late_keys(chunk):
    keys = _late_keys(7)
    km = KeyMap()
    ids = km.add(keys)
    want = lru_hits(ids, km.n)
    lru, km2 = LruStackStream(), KeyMap()
    for i in range(0, keys.shape[0], chunk):
        lru.feed(km2.add(keys[i:i + chunk]))
    assert lru.accesses == keys.shape[0] and lru.n_ids == km.n > 600
    assert np.array_equal(lru.hits(), want)
    assert want[-1] > 4000  # the early keys' reuses: a curve worth comparing
    # state over the distinct keys, not the 5,800 accesses
    assert lru.nbytes() < 64 * km.n + 64 * 1024


@pytest.mark.parametrize("name", NAMES)
def test_exact_curve_streams(files, name):
    path, trace, chunk = files[name]
    want = mrc(trace)
    got = S.mrc_stream(path, chunk_accesses=chunk)
    assert got.height == trace.n_distinct + 1
    assert got.equals(want)
    assert 0 < float(got["miss_ratio"][trace.n_distinct // 2]) < 1
    kw = dict(sizes="1%,5,100000", per_table=True)
    got = S.mrc_stream(path, chunk_accesses=chunk, **kw)
    assert got.equals(mrc(trace, **kw)) and got["table"][0] == trace.table_names[0]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kw", [dict(rate=0.1), dict(s_max=64), dict(rate=0.5, sizes="2%,10")])
def test_shards_streams(files, name, kw):
    path, trace, chunk = files[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small samples: both warn alike
        want = mrc(trace, method="shards", **kw)
        got = S.mrc_stream(path, method="shards", chunk_accesses=chunk, **kw)
    assert got.equals(want)
    assert got.height > 1
    rate, s_max = kw.get("rate"), kw.get("s_max")
    chunks = (trace.keys[i:i + chunk] for i in range(0, len(trace), chunk))
    v1, w1, t1, info1 = shards(trace.keys, rate, s_max)
    v2, w2, t2, info2 = shards(chunks, rate, s_max)
    assert np.array_equal(v1, v2) and np.array_equal(w1, w2) and t1 == t2 and info1 == info2


def test_shards_stream_state_follows_the_sample():
    """Fixed size: the state stays that of s_max keys, however many keys the stream has."""
    rng = np.random.default_rng(2)
    chunks = [rng.integers(0, 2**40, 20000) for _ in range(10)]
    *_, info = shards(iter(chunks), None, 256)
    assert info["sampled_keys"] == 256 and info["estimated_keys"] > 100000
    assert info["state_bytes"] < 200 * 1024


@pytest.mark.parametrize("name", NAMES)
def test_mini_streams(files, name):
    path, trace, chunk = files[name]
    kw = dict(method="mini", rate=0.2, sizes="1%,10%,50%")
    for policy in ("lru", "fifo"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = mrc(trace, policy=policy, **kw)
            got = S.mrc_stream(path, policy=policy, chunk_accesses=max(chunk, 7), **kw)
        assert got.equals(want), policy
        assert 0 < float(got["miss_ratio"][1]) < 1
    if trace.has_sizes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = mrc(trace, bytes=True, **kw)
            got = S.mrc_stream(path, bytes=True, chunk_accesses=1000, **kw)
        assert got.equals(want)


@pytest.mark.parametrize("name", ["cp2000", "cp30000"])
def test_exact_bytes_curve_streams_at_given_sizes(files, name):
    path, trace, chunk = files[name]
    # below the smallest object (miss ratio 1), inside several bands, past the largest object,
    # unsorted, a share of the distinct keys' bytes
    sizes = "100,5000,1MiB,512,64KiB,4MiB,70000,10MiB,1%,300MiB"
    want = mrc(trace, bytes=True, sizes=sizes)
    got = S.mrc_stream(path, bytes=True, sizes=sizes, chunk_accesses=chunk)
    assert got.equals(want)
    mr = got["miss_ratio"].to_list()
    assert mr[0] == 1.0 and 0 < min(mr) < max(mr[1:]) < 1


@pytest.fixture(scope="module")
def parquet_trace(tmp_path_factory):
    """The shipped Criteo sample's first 20,000 accesses (26 tables, batches of 128) as Parquet:
    one file, a folder of two files, and the file read in memory."""
    from cachesim.io import write_trace
    sample = read_trace(Path(cachesim.__file__).parent / "data" / "criteo_kaggle_head10k.parquet")
    folder = tmp_path_factory.mktemp("stream_parquet")
    one = write_trace(sample.take(slice(0, 20000)), folder / "head.parquet")
    (folder / "parts").mkdir()
    write_trace(sample.take(slice(0, 12800)), folder / "parts" / "part-1.parquet")
    write_trace(sample.take(slice(12800, 20000)), folder / "parts" / "part-2.parquet")
    return one, folder / "parts", read_trace(one)


@pytest.mark.parametrize("kw", [dict(), dict(sizes="1%,5%,1000"), dict(method="shards", rate=0.2),
                                dict(method="shards", s_max=300, sizes="5%")])
def test_batched_traces_stream(parquet_trace, kw):
    one, parts, trace = parquet_trace
    assert trace.n_tables == 26
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = mrc(trace, **kw)
        for path, chunk in ((one, 7), (parts, 1000)):
            got = S.mrc_stream(path, chunk_accesses=chunk, **kw)
            assert got.equals(want), (path, chunk)
    assert 0 < float(want["miss_ratio"][want.height // 2]) < 1
    with pytest.raises(CachesimError, match="exact or SHARDS curve in rows over all tables"):
        S.mrc_stream(one, method="mini", sizes="5%")


def test_mini_bytes_checks_one_size_per_key(tmp_path):
    rec = np.zeros(6, dtype=cachesim.io.libcachesim.ORACLE_DTYPE)
    rec["id"] = [1, 2, 3, 1, 2, 3]
    rec["size"] = [10, 20, 30, 10, 25, 30]
    p = tmp_path / "sizes.oraclegeneral.bin"
    p.write_bytes(rec.tobytes())
    with pytest.raises(CachesimError, match="access 4 of .*key 2 has size 25 B but 20 B") as err:
        S.mrc_stream(p, method="mini", bytes=True, rate=1.0, sizes="10", chunk_accesses=2)
    with pytest.raises(CachesimError) as mem:
        mrc(read_trace(p), method="mini", bytes=True, rate=1.0, sizes="10")
    assert str(err.value) == str(mem.value)


def test_user_errors(files, tmp_path):
    path = files["cp2000"][0]
    with pytest.raises(CachesimError, match="at the sizes given.*--size.*--no-stream"):
        S.mrc_stream(path, bytes=True)
    with pytest.raises(CachesimError, match="LRU's curve only"):
        S.mrc_stream(path, policy="fifo")
    empty = tmp_path / "empty.oraclegeneral.bin"
    empty.write_bytes(b"")
    for method in ("exact", "shards", "mini"):
        with pytest.raises(CachesimError, match="no accesses"):
            S.mrc_stream(empty, method=method, sizes="10")


def test_criteo_txt_is_not_streamed_as_keys(shared_data, tmp_path):
    """A .txt name is shared by Criteo's files: the format sniffer decides, as in memory."""
    p = tmp_path / "train.txt"
    p.write_bytes((shared_data / "criteo/kaggle_train_head10k.tsv").read_bytes())
    assert streamable(p) is None
    assert streamable(files_txt := tmp_path / "keys.txt") is None  # no such file
    files_txt.write_text("1\n2\n")
    assert streamable(files_txt) == "txt"


def _run(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    return res.exit_code, res.output


def test_cli_mrc_streams(files, monkeypatch):
    path = files["cp30000"][0]
    for args in ([], ["-m", "shards", "--rate", "0.1"], ["-m", "mini", "-p", "fifo", "--rate",
                                                          "0.1", "-s", "1%,10%", "--json"]):
        code, streamed = _run("mrc", path, "--stream", *args)
        assert code == 0, streamed
        code, in_memory = _run("mrc", path, "--no-stream", *args)
        assert code == 0 and streamed == in_memory and streamed.count("\n") > 3
    # by default a file over the threshold streams: it is never read whole
    monkeypatch.setattr("cachesim.sizes.STREAM_THRESHOLD", 1000)

    def no_read(*a, **k):
        raise AssertionError("read in memory")
    monkeypatch.setattr(cachesim.io, "read_trace", no_read)
    code, out = _run("mrc", path, "-s", "1%,10%", "--json")
    assert code == 0, out
    assert [r["size"] for r in json.loads(out)] == [round(0.01 * files["cp30000"][1].n_distinct),
                                                     round(0.1 * files["cp30000"][1].n_distinct)]


def test_cli_mrc_stream_errors(files, shared_data):
    path = files["cp2000"][0]
    code, out = _run("mrc", path, "--stream", "--torchrec", "x.json")
    assert code == 2 and "--torchrec needs the whole trace in memory" in out
    code, out = _run("mrc", path, "--stream", "--bytes")
    assert code == 2 and "--bytes needs the whole trace in memory; unless sizes are given" in out
    code, streamed = _run("mrc", path, "--stream", "--bytes", "-s", "1MiB,8MiB")
    code2, in_memory = _run("mrc", path, "--no-stream", "--bytes", "-s", "1MiB,8MiB")
    assert code == code2 == 0 and streamed == in_memory and streamed.count("\n") == 3
    code, out = _run("mrc", shared_data / "criteo/kaggle_train_head10k.tsv", "--stream")
    assert code == 2 and "reads oracle-general and txt files" in out


def test_cli_mrc_streams_a_parquet_folder(parquet_trace, monkeypatch):
    one, parts, trace = parquet_trace
    code, in_memory = _run("mrc", one, "-s", "1%,10%", "-m", "shards", "--rate", "0.5")
    assert code == 0, in_memory
    monkeypatch.setattr("cachesim.sizes.STREAM_THRESHOLD", 1000)
    monkeypatch.setattr(cachesim.io, "read_trace", lambda *a, **k: 1 / 0)
    code, streamed = _run("mrc", parts, "-s", "1%,10%", "-m", "shards", "--rate", "0.5")
    assert code == 0 and streamed == in_memory
    code, out = _run("mrc", parts, "--stream", "-m", "mini")
    assert code == 2 and "Parquet, fbgemm-npz and dlrm-pt" in out
