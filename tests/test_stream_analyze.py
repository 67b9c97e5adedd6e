"""Streamed trace analysis (cachesim.analysis.stream.analyze_stream) equals `analyze` exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cachesim.analysis.profile import analyze, format_summary
from cachesim.analysis.stream import analyze_stream
from cachesim.cli import cli
from cachesim.io import read_trace
from cachesim.trace import Trace
from tests.test_stream_mrc import parquet_trace  # noqa: F401 (a fixture)

ORACLE = "cloudphysics/cloudPhysicsIO.oracleGeneral.bin"
RECORD = 24


@pytest.fixture(scope="module")
def files(shared_data, tmp_path_factory):
    """(path, in-memory trace, chunk size): an oracleGeneral prefix in chunks of 1, a longer one
    in chunks of 7, and txt files in chunks of 1000: keys first seen in late chunks, and a
    trace of many ties (every key 1-3 accesses a window: the top-k is decided by the ids)."""
    folder = tmp_path_factory.mktemp("stream_analyze")
    data = (shared_data / ORACLE).read_bytes()
    out = []
    for n, chunk in ((2000, 1), (30000, 7)):
        p = folder / f"cp{n}.oraclegeneral.bin"
        p.write_bytes(data[:n * RECORD])
        out.append((p, chunk))
    rng = np.random.default_rng(11)
    late = np.concatenate([rng.integers(0, 40, 3000), rng.integers(10**15, 10**15 + 900, 2000),
                           rng.integers(0, 40, 500)])
    ties = rng.integers(0, 3000, 6000)
    for name, keys in (("late", late), ("ties", ties)):
        p = folder / f"{name}.txt"
        p.write_text("\n".join(map(str, keys.tolist())) + "\n")
        out.append((p, 1000))
    return [(p, read_trace(p), chunk) for p, chunk in out]


@pytest.mark.parametrize("i", range(4))
@pytest.mark.parametrize("window,top_k", [(None, None), (7, 3), (500, 50), (10**9, 5)])
def test_analyze_streams(files, i, window, top_k):
    path, trace, chunk = files[i]
    want = analyze(trace, window=window, top_k=top_k)
    got = analyze_stream(path, window=window, top_k=top_k, chunk_accesses=chunk)
    streamed = got.pop("streamed")
    assert streamed["passes"] == 2 and streamed["estimated"] == []
    assert got == want
    # a comparison of substance: reuse, depth and drift all have data
    assert sum(got["stack_depth"]["counts"]) == len(trace) - trace.n_distinct > 0
    if window in (7, 500):
        assert len(got["working_set"]["jaccard"]) == -(-len(trace) // window) - 1
        assert 0 < np.mean(got["working_set"]["share"]) < 1


def test_ties_are_broken_by_the_lower_id(tmp_path):
    """Window 1: keys 5, 6, 7 once each; window 2: 7, 6, 5: top-2 by count ties -> ids 0, 1
    (dense ids of keys 5 and 6), so the sets are equal and Jaccard is 1."""
    p = tmp_path / "t.txt"
    p.write_text("5\n6\n7\n7\n6\n5\n")
    got = analyze_stream(p, window=3, top_k=2, chunk_accesses=2)
    assert got["working_set"]["jaccard"] == [1.0]
    assert got["working_set"]["share"] == [2 / 3]
    got.pop("streamed")
    assert got == analyze(read_trace(p), window=3, top_k=2)


def _run(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    return res.exit_code, res.output


def test_cli_analyze_streams(files):
    path = files[1][0]
    code, out = _run("analyze", path, "--stream", "--json", "--window", "1000")
    assert code == 0, out
    got = json.loads(out)
    assert got.pop("streamed")["estimated"] == []
    code, out = _run("analyze", path, "--no-stream", "--json", "--window", "1000")
    assert code == 0 and got == json.loads(out)
    code, text = _run("analyze", path, "--stream")
    assert code == 0
    assert "streamed in 2 passes of 1,048,576-access chunks: every number is exact" in text
    code, in_memory = _run("analyze", path, "--no-stream")
    assert [ln for ln in text.splitlines() if not ln.startswith("streamed")] == \
        in_memory.splitlines()


def test_summary_names_estimates():
    res = analyze(Trace.from_keys(np.array([1, 2, 1, 3, 1])))
    res["streamed"] = {"passes": 2, "chunk_accesses": 10, "estimated": ["drift"]}
    lines = [ln for ln in format_summary(res).splitlines() if ln.startswith("streamed")]
    assert lines == ["streamed in 2 passes of 10-access chunks: estimated: drift; every other "
                     "number is exact"]


@pytest.mark.filterwarnings("ignore::cachesim.analysis.mrc.SampledCurveWarning")
def test_hashed_64_bit_ids(tmp_path):
    """oracleGeneral ids past 2^63 (hashes): rows = the distinct objects, as the reader says."""
    from cachesim.analysis.mrc import mrc
    from cachesim.analysis.stream import mrc_stream
    from cachesim.io.libcachesim import ORACLE_DTYPE
    rng = np.random.default_rng(3)
    rank = np.minimum((500 ** rng.random(5000)).astype(np.uint64), np.uint64(499))
    rec = np.zeros(5000, dtype=ORACLE_DTYPE)
    rec["id"] = (rank + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    rec["size"] = 4096
    p = tmp_path / "hashed.oraclegeneral.bin"
    p.write_bytes(rec.tobytes())
    trace = read_trace(p)
    assert (rec["id"] >= np.uint64(2**63)).any()
    got = analyze_stream(p, chunk_accesses=999)
    got.pop("streamed")
    assert got == analyze(trace) and got["rows"] == trace.n_distinct
    for kw in ({}, {"method": "shards", "rate": 0.5}):
        assert mrc_stream(p, chunk_accesses=999, **kw).equals(mrc(trace, **kw))


@pytest.mark.parametrize("window,top_k", [(None, None), (None, 4), (999, 5)])
def test_batched_traces_stream(parquet_trace, window, top_k):
    """Per-table bins and counts, windows by batch (the default) or by accesses, batches."""
    one, parts, trace = parquet_trace
    want = analyze(trace, window=window, top_k=top_k)
    assert want["n_tables"] == 26 and want["batches"]["count"] == 7
    for path, chunk in ((one, 7), (parts, 1000)):
        got = analyze_stream(path, window=window, top_k=top_k, chunk_accesses=chunk)
        assert got.pop("streamed")["estimated"] == []
        assert got.pop("source") == str(path)
        assert got == {k: v for k, v in want.items() if k != "source"}, (path, chunk)


def test_cli_analyze_streams_a_parquet_folder(parquet_trace, monkeypatch):
    import cachesim.io
    one, parts, trace = parquet_trace
    code, in_memory = _run("analyze", one, "--json")
    assert code == 0, in_memory
    monkeypatch.setattr("cachesim.sizes.STREAM_THRESHOLD", 1000)
    monkeypatch.setattr(cachesim.io, "read_trace", lambda *a, **k: 1 / 0)
    code, streamed = _run("analyze", parts, "--json")
    assert code == 0, streamed
    got, want = json.loads(streamed), json.loads(in_memory)
    assert got.pop("streamed")["passes"] == 2
    assert got.pop("source") == str(parts) and want.pop("source") == str(one)
    assert got == want
