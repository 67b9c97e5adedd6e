"""Traces at URLs (cachesim.io.urls): real reads through fsspec, no mocks. `memory://` in the
process, and a real HTTP server on loopback (tests/http_server.py: the stdlib file server with
byte ranges) for the CLI: a URL's replay, in memory and streamed, equals the local file's exactly.
A missing object or a protocol whose package is missing is one line; a plain path never imports
fsspec."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cachesim.errors import CachesimError
from cachesim.io import read_trace, write_trace
from cachesim.simulate import stream
from cachesim.simulate.access import replay
from cachesim.trace import Trace
from tests.http_server import serve


def fresh_fsspec_config(monkeypatch) -> None:
    """fsspec's configuration read again from this test's FSSPEC_* variables (fsspec reads them
    at import, as at a process's start), restored after the test."""
    import fsspec.config
    conf: dict = {}
    fsspec.config.set_conf_env(conf)
    monkeypatch.setattr(fsspec.config, "conf", conf)

fsspec = pytest.importorskip("fsspec")
ORACLE = "cloudphysics/cloudPhysicsIO.oracleGeneral.bin"
TXT = "cloudphysics/cloudPhysicsIO.txt"
ROOT = Path(__file__).resolve().parent.parent


def _batched(path, n=3000, seed=5):
    """A Parquet trace of 3 tables, batches of 1 to 30 accesses, keys that keep arriving."""
    rng = np.random.default_rng(seed)
    row = np.minimum(rng.zipf(1.3, n), 400) - 1 + np.arange(n) // 300
    return write_trace(Trace(table=rng.integers(0, 3, n).astype(np.int32), row=row,
                             batch=np.cumsum(rng.random(n) < 0.08), source="test"), path)


def store_traces(local: Path, shared_data: Path) -> list[Path]:
    """The traces an object-store test uploads, written to `local` (the files, each under
    `local`): the suite's oracleGeneral file, a Parquet trace (`_batched`), and that trace split
    into a folder of two files (`folder/`) and into a hive dataset (`hive/day=1`, `day=2`)."""
    import polars as pl
    (local / "cp.oracleGeneral.bin").write_bytes((shared_data / ORACLE).read_bytes())
    whole = pl.read_parquet(_batched(local / "batched.parquet"))
    for i in (1, 2):
        part = whole.slice((i - 1) * 1500, 1500)
        for folder in (f"folder/p{i}", f"hive/day={i}"):
            (local / folder).mkdir(parents=True)
            part.write_parquet(local / folder / "part.parquet")
    return sorted(local.rglob("*.*"))


# the replays an object-store test checks (`check_replay`): an oracleGeneral file, a Parquet trace
STORE_REPLAYS = [
    ("cp.oracleGeneral.bin", ["-p", "lru,opt", "-s", "1%,300", "--ways", "full"]),
    ("batched.parquet", ["--mode", "batch", "-p", "lru,lfu", "-s", "5%,50", "--cache-model",
                         "ideal", "--ways", "4"])]


def check_replay(local: Path, base: str, name: str, args) -> None:
    """replay of `base/name` (a store holding `store_traces(local)`), in memory and streamed,
    equals the local file's."""
    want = _records(_cli("replay", local / name, *args, "--json", "--no-stream"))
    assert len({r["hit_ratio"] for r in want}) == len(want) == 4 and want[0]["hits"] > 0
    assert _records(_cli("replay", f"{base}/{name}", *args, "--json", "--no-stream")) == want
    assert _records(_cli("replay", f"{base}/{name}", *args, "--json", "--stream")) == want


def check_folder_streams(local: Path, base: str, name: str) -> None:
    """The folder `name` ("folder" or "hive", of `store_traces`) at `base` streams as the local
    one (a hive dataset with its `day` key as a column)."""
    import polars as pl

    from cachesim.io.stream import parquet_frames
    args = ["--mode", "batch", "-p", "lru,lfu", "-s", "5%", "--cache-model", "ideal", "--json"]
    want = _records(_cli("replay", local / name, *args, "--stream"))
    assert len(want) == 2 and want[0]["requests"] == 3000 and want[0]["hits"] > 0
    assert _records(_cli("replay", f"{base}/{name}", *args, "--stream")) == want
    if name == "hive":
        _, frames = parquet_frames(f"{base}/hive", 1000, ("day", "row"))
        assert pl.concat(list(frames))["day"].to_list() == [1] * 1500 + [2] * 1500


def check_mrc(local: Path, base: str) -> None:
    """mrc of `base`/batched.parquet, in memory and streamed, equals the local file's."""
    want = _records(_cli("mrc", local / "batched.parquet", "--json", "--no-stream"))
    assert len(want) > 10 and len({r["miss_ratio"] for r in want}) > 10
    assert _records(_cli("mrc", f"{base}/batched.parquet", "--json", "--no-stream")) == want
    assert _records(_cli("mrc", f"{base}/batched.parquet", "--json", "--stream")) == want


def check_missing(url: str) -> None:
    """replay of a missing `url`, in memory and streamed: the missing-file error, one line,
    exit 2."""
    for extra in (["--no-stream"], ["--stream"]):
        res = _cli("replay", url, "-s", "1%", *extra)
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert res.output.startswith(f"cachesim: error: {url}: no such file"), res.output
        assert res.output.count("\n") == 1, res.output


@pytest.fixture(scope="module")
def served(shared_data, tmp_path_factory):
    """(local folder, its base URL): the suite's oracleGeneral file and a Parquet trace, served
    over HTTP on loopback."""
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp (test extra)")
    folder = tmp_path_factory.mktemp("served")
    (folder / "t.oracleGeneral.bin").symlink_to(shared_data / ORACLE)
    _batched(folder / "batched.parquet")
    with serve(folder) as base:
        yield folder, base


def _cli(*args):
    from click.testing import CliRunner

    from cachesim.cli import cli
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="cachesim")


def _records(res) -> list[dict]:
    assert res.exit_code == 0, res.output
    recs = json.loads(res.output)
    for r in recs:
        r.pop("seconds", None)
        r.pop("source", None)
    return recs


def _record(res) -> dict:
    rec = res.to_record(per_table=True)
    rec.pop("seconds")
    return rec


@pytest.mark.parametrize("name, args, source", [
    ("t.oracleGeneral.bin", ["-p", "lru,opt", "-s", "1%,300", "--ways", "full"], "StreamSource"),
    ("batched.parquet", ["--mode", "batch", "-p", "lru,lfu", "-s", "5%,50", "--cache-model",
                         "ideal", "--ways", "4"], "BatchStreamSource")])
def test_a_url_over_http_replays_as_the_local_file_in_memory_and_streamed(
        served, monkeypatch, name, args, source):
    folder, base = served
    local = _records(_cli("replay", folder / name, *args, "--json", "--no-stream"))
    assert len(local) == 4 and len({r["hit_ratio"] for r in local}) > 1
    assert _records(_cli("replay", f"{base}/{name}", *args, "--json")) == local  # in memory
    opened = []
    real = getattr(stream, source)

    class Spy(real):
        def __init__(self, *a, **k):
            opened.append(a[0])
            super().__init__(*a, **k)

    monkeypatch.setattr(stream, source, Spy)
    monkeypatch.setattr("cachesim.sizes.STREAM_THRESHOLD", 1000)  # so it streams by default
    assert _records(_cli("replay", f"{base}/{name}", *args, "--json")) == local
    assert opened == [f"{base}/{name}"]  # streamed from the URL itself, not a local copy


def test_a_memory_url_reads_and_streams_as_the_local_file(shared_data):
    data = (shared_data / ORACLE).read_bytes()
    with fsspec.open("memory://traces/cp.oracleGeneral.bin", "wb") as f:
        f.write(data)
    lines = (shared_data / TXT).read_bytes().split(b"\n")[:3001]
    with fsspec.open("memory://traces/cp.txt", "wb") as f:
        f.write(b"\n".join(lines))  # no newline after the last line
    try:
        local = read_trace(shared_data / ORACLE)
        url = read_trace("memory://traces/cp.oracleGeneral.bin")
        assert url.source == "memory://traces/cp.oracleGeneral.bin"
        assert url.fingerprint() == local.fingerprint() and len(url) == len(data) // 24
        want = _record(replay(local, "lru", "1%", None))
        with stream.StreamSource("memory://traces/cp.oracleGeneral.bin",
                                 chunk_accesses=1000) as src:
            assert _record(src.replay("lru", "1%", None)) == want
        txt = read_trace("memory://traces/cp.txt")
        assert len(txt) == 3001 and txt.row.tolist() == [int(x) for x in lines]
        want = _record(replay(txt, "fifo", "5%", None))
        with stream.StreamSource("memory://traces/cp.txt", chunk_accesses=7) as src:
            assert len(src) == 3001 and _record(src.replay("fifo", "5%", None)) == want
    finally:
        fsspec.filesystem("memory").rm("/traces", recursive=True)


def test_a_parquet_memory_url_streams_through_an_fsspec_file(tmp_path):
    path = _batched(tmp_path / "b.parquet")
    with fsspec.open("memory://pq/b.parquet", "wb") as f:
        f.write(path.read_bytes())
    try:
        want = [_record(r) for r in stream.BatchStreamSource(path, chunk_accesses=64).replay(
            ["lru", "lfu"], "5%", 4, cache_model="ideal")]
        src = stream.BatchStreamSource("memory://pq/b.parquet", chunk_accesses=64)
        assert [_record(r) for r in src.replay(["lru", "lfu"], "5%", 4,
                                               cache_model="ideal")] == want
        assert src.meta.table_names == ["t0", "t1", "t2"]
        # a folder of files (listed through fsspec) as the local folder; a hive dataset too,
        # its keys (which polars cannot read from a file object) read from its files' paths
        import polars as pl
        local, whole = tmp_path / "folder", pl.read_parquet(path)
        for i in (1, 2):
            (local / f"p{i}").mkdir(parents=True)
            part = local / f"p{i}" / "part.parquet"
            whole.slice((i - 1) * 1500, 1500).write_parquet(part)
            with fsspec.open(f"memory://pq/folder/p{i}/part.parquet", "wb") as f:
                f.write(part.read_bytes())
            with fsspec.open(f"memory://pq/hive/day={i}/part.parquet", "wb") as f:
                f.write(part.read_bytes())
        want = _record(stream.BatchStreamSource(local, chunk_accesses=64).replay(
            "lru", "5%", 4, cache_model="ideal"))
        got = stream.BatchStreamSource("memory://pq/folder", chunk_accesses=64)
        assert len(got) == 3000 and _record(got.replay("lru", "5%", 4,
                                                       cache_model="ideal")) == want
        hive = stream.BatchStreamSource("memory://pq/hive", chunk_accesses=64)
        assert _record(hive.replay("lru", "5%", 4, cache_model="ideal")) == want
        from cachesim.io.stream import parquet_frames
        _, frames = parquet_frames("memory://pq/hive", 1000, ("day", "row"))
        assert pl.concat(list(frames))["day"].to_list() == [1] * 1500 + [2] * 1500
    finally:
        fsspec.filesystem("memory").rm("/pq", recursive=True)


def test_a_hive_dataset_from_file_objects_whose_files_disagree_on_keys_is_refused(tmp_path):
    """Keys read from the files' paths (polars sees file objects) must be the same for each."""
    data = _batched(tmp_path / "b.parquet").read_bytes()
    try:
        for name in ("day=1/part.parquet", "day=2/hour=3/part.parquet"):
            with fsspec.open(f"memory://hk/{name}", "wb") as f:
                f.write(data)
        with pytest.raises(CachesimError, match=r"^memory:///?hk/day=2/hour=3/part\.parquet: its "
                                                r"hive keys \['day', 'hour'\] are not the "
                                                r"dataset's \['day'\]"):
            stream.BatchStreamSource("memory://hk")
    finally:
        fsspec.filesystem("memory").rm("/hk", recursive=True)


def test_a_missing_object_is_the_missing_file_error_with_its_url(served):
    _, base = served
    for url, extra in ((f"{base}/nope.oracleGeneral.bin", []), ("memory://none/x.parquet", []),
                       (f"{base}/nope.oracleGeneral.bin", ["--stream"])):
        res = _cli("replay", url, "-s", "1%", *extra)
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert res.output.startswith(f"cachesim: error: {url}: no such file"), res.output
        assert res.output.count("\n") == 1
    with pytest.raises(CachesimError, match=r"^memory://none/x\.bin: no such file or folder"):
        read_trace("memory://none/x.bin")
    import socket
    with socket.socket() as s:  # a port where nothing listens: not "no such file"
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = _cli("replay", f"http://127.0.0.1:{port}/t.oracleGeneral.bin", "-s", "1%")
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert res.output.startswith(f"cachesim: error: http://127.0.0.1:{port}/t.oracleGeneral.bin:"
                                 " cannot read it (Cannot connect to host"), res.output


def test_a_protocol_whose_package_is_missing_names_the_package(monkeypatch):
    import importlib.util

    from fsspec.registry import known_implementations
    # the first protocol whose package this environment lacks (the test extra installs s3fs,
    # gcsfs and adlfs), else one registered here whose package does not exist
    missing = [(p, pkg) for p, pkg in (("s3", "s3fs"), ("gs", "gcsfs"), ("az", "adlfs"))
               if importlib.util.find_spec(pkg) is None]
    if not missing:
        monkeypatch.setitem(known_implementations, "cachesimtest",
                            {"class": "cachesim_no_such_package.FileSystem"})
        missing = [("cachesimtest", "cachesim_no_such_package")]
    proto, pkg = missing[0]
    url = f"{proto}://bucket/trace.oracleGeneral.bin"
    res = _cli("replay", url, "-s", "1%")
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert res.output == (f"cachesim: error: {url}: reading {proto}:// URLs needs the package "
                          f"{pkg}; install it (pip install {pkg})\n")
    res = _cli("replay", "nosuchproto://bucket/t.txt", "-s", "1%")
    assert res.exit_code == 2 and "fsspec knows no protocol 'nosuchproto'" in res.output


def test_a_file_url_is_the_local_path(shared_data):
    url = (shared_data / ORACLE).resolve().as_uri()
    assert url.startswith("file:///")
    assert read_trace(url).fingerprint() == read_trace(shared_data / ORACLE).fingerprint()


def test_a_local_path_never_imports_fsspec(shared_data, tmp_path):
    path = _batched(tmp_path / "b.parquet")
    code = f"""
import json, sys
from cachesim.io import read_trace
from cachesim.simulate.stream import BatchStreamSource, StreamSource
from cachesim.cli import _streams
read_trace({str(shared_data / ORACLE)!r}); read_trace({str(path)!r})
with StreamSource({str(shared_data / ORACLE)!r}, chunk_accesses=50000) as s:
    s.replay("lru", "1%", None)
BatchStreamSource({str(path)!r}).replay("lru", "5%", 4, cache_model="ideal")
_streams({str(shared_data / ORACLE)!r}, None, None, mode="access")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "fsspec")))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_a_worker_rereads_an_object_that_changed_at_its_url(shared_data):
    """A worker keeps its source of a URL while the object's version (size, ETag or time) stays,
    and opens it again when it changes: then the client's fingerprint tells it apart."""
    from cachesim.io.libcachesim import ORACLE_DTYPE
    from cachesim.sweep_stream import StreamedTrace, worker_source
    url = "memory://changing/t.oracleGeneral.bin"
    rec = np.fromfile(shared_data / ORACLE, dtype=ORACLE_DTYPE, count=2000)
    with fsspec.open(url, "wb") as f:
        f.write(rec.tobytes())
    try:
        with StreamedTrace.open(url, "access", chunk_accesses=500) as st:
            src, _ = worker_source(st.spec, st.fingerprint())
            assert len(src) == 2000 and worker_source(st.spec, st.fingerprint())[0] is src
            with fsspec.open(url, "wb") as f:  # the same size, another order
                f.write(rec[::-1].tobytes())
            with pytest.raises(CachesimError, match=r"sees a different trace at memory://"
                                                    r"changing/t\.oracleGeneral\.bin"):
                worker_source(st.spec, st.fingerprint())
    finally:
        fsspec.filesystem("memory").rm("/changing", recursive=True)


def test_a_worker_reopens_a_url_folder_whose_part_was_rewritten():
    """A folder at a URL is stamped by its files: a part rewritten under the same name makes a
    worker open the folder again, where the folder's own information (no version) stayed."""
    import polars as pl

    from cachesim.io.urls import stamp
    from cachesim.sweep_stream import StreamedTrace, worker_source
    rng = np.random.default_rng(0)

    def part(i, n):
        with fsspec.open(f"memory://pqchange/d/part-{i}.parquet", "wb") as f:
            pl.DataFrame({"row": rng.integers(0, 40, n)}).write_parquet(f)

    try:
        part(0, 300), part(1, 300)
        url = "memory://pqchange/d"
        before = stamp(url)
        with StreamedTrace.open(url, "access", chunk_accesses=100) as st:
            src, _ = worker_source(st.spec, st.fingerprint())
            assert len(src) == 600 and worker_source(st.spec, st.fingerprint())[0] is src
        part(1, 350)
        assert stamp(url) != before
        with StreamedTrace.open(url, "access", chunk_accesses=100) as st:
            src, _ = worker_source(st.spec, st.fingerprint())  # opened again, not the kept one
            assert len(src) == 650
    finally:
        fsspec.filesystem("memory").rm("/pqchange", recursive=True)
