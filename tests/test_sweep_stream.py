"""Streamed sweeps (cachesim.sweep_stream): a sweep of a trace read in chunks equals the in-memory
sweep row for row (access and batch mode, local and on a real Dask cluster), resumes, and refuses
a worker that sees another file."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

from cachesim.errors import CachesimError
from cachesim.io import read_trace
from cachesim.io.libcachesim import ORACLE_DTYPE
from cachesim.sweep import run_sweep
from cachesim.sweep_stream import StreamedTrace, worker_source
from cachesim.trace import Trace
from tests.test_dask_cluster import cluster  # noqa: F401 (the loopback scheduler and 2 workers)

TIMING = ("replay_seconds",)


def _oracle(path, n=6000, seed=1, shift=0):
    """An oracleGeneral file: skewed keys, sizes that vary, and keys first seen in late chunks."""
    rng = np.random.default_rng(seed)
    keys = np.minimum(rng.zipf(1.2, n), 3000) + 10 * (np.arange(n) // 1000) + shift
    rec = np.zeros(n, dtype=ORACLE_DTYPE)
    rec["id"], rec["size"], rec["next"] = keys, rng.integers(1, 5000, n), -1
    rec.tofile(path)
    return path


def _parquet(path, n=2500, seed=3):
    from cachesim.io import write_trace
    rng = np.random.default_rng(seed)
    row = np.minimum(rng.zipf(1.3, n), 300) - 1 + np.arange(n) // 400
    tr = Trace(table=rng.integers(0, 3, n).astype(np.int32), row=row,
               batch=np.cumsum(rng.random(n) < 0.05), table_names=["t0", "t1", "t2"],
               table_rows=np.array([400, 410, 420]), table_dims=np.array([4, 8, 16]))
    return write_trace(tr, path)


def _same(a, b) -> bool:
    return a.drop(TIMING).equals(b.drop(TIMING))


ACCESS = [dict(policies="lru,fifo,lfu", sizes="1%,5%,200", ways="4,none"),
          dict(policies="opt,sieve,arc,clock", sizes="0.5%,2%,300", ways="none")]


@pytest.mark.parametrize("args", ACCESS)
def test_access_sweep_streamed_equals_in_memory(tmp_path, args):
    path = _oracle(tmp_path / "t.oracleGeneral.bin")
    args = dict(args, mode="access", precisions="fp32,int8")
    want = run_sweep(read_trace(path), jobs=1, **args).table
    with StreamedTrace.open(path, "access", chunk_accesses=7) as st:
        assert st.n_distinct == read_trace(path).n_distinct
        one = run_sweep(st, jobs=1, **args).table
        forked = run_sweep(st, jobs=2, **args).table  # the pool shares the client's source
    assert want.height == 2 * len(args["policies"].split(",")) * 3 * len(args["ways"].split(","))
    assert _same(one, want) and _same(forked, want)


@pytest.mark.parametrize("kind", ["hashed", "txt"])
def test_hashed_ids_and_text_keys_cost_the_same_host_store(tmp_path, kind):
    """Table rows as the in-memory readers infer them: largest key + 1, or the distinct keys when
    an oracleGeneral id is past 2^63-2 (hashed ids)."""
    keys = np.minimum(np.random.default_rng(4).zipf(1.3, 3000), 900)
    if kind == "hashed":
        path = tmp_path / "h.oracleGeneral.bin"
        rec = np.zeros(keys.shape[0], dtype=ORACLE_DTYPE)
        rec["id"] = keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # some past 2^63
        rec["size"] = 100
        rec.tofile(path)
        assert (rec["id"] >= np.uint64(2**63)).any()
    else:
        path = tmp_path / "k.txt"
        path.write_text("".join(f"{k}\n" for k in keys))
    args = dict(policies="lru,clock", sizes="3%,40", ways="none", mode="access",
                precisions="fp32,int4", jobs=1)
    want = run_sweep(read_trace(path), **args).table
    with StreamedTrace.open(path, "access", chunk_accesses=100) as st:
        got = run_sweep(st, **args).table
    assert int(got["total_bytes"][0]) > 0 and _same(got, want)


@pytest.mark.parametrize("model,ways", [("ideal", "4,none"), ("fbgemm", "32")])
def test_batch_sweep_streamed_equals_in_memory(tmp_path, model, ways):
    path = _parquet(tmp_path / "t.parquet")
    args = dict(policies="lru,lfu", sizes="1%,5%,60", ways=ways, per_table="both",
                cache_model=model, precisions="fp32,int4", jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fbgemm: num_embeddings are the file's, not inferred
        want = run_sweep(read_trace(path), **args).table
        with StreamedTrace.open(path, "batch", chunk_accesses=97) as st:  # batches cut by chunks
            got = run_sweep(st, **args).table
    assert got.height == 2 * 3 * len(ways.split(",")) * 2 * 2
    assert set(got["cache_model"]) == {model}
    assert _same(got, want)


def test_streamed_sweep_resumes_and_keeps_its_parts_apart(tmp_path):
    path = _oracle(tmp_path / "t.oracleGeneral.bin")
    out = tmp_path / "r.parquet"
    args = dict(policies="lru,sieve", sizes="1%,3%", ways="none", mode="access", out=out)
    with StreamedTrace.open(path, "access", chunk_accesses=500) as st:
        first = run_sweep(st, **args)
        parts = sorted((tmp_path / "r.parquet.parts").glob("access-*.json"))
        assert len(parts) == 4 and len(first.ran) == 4
        parts[0].unlink()
        kept = {p.name: p.stat().st_mtime_ns for p in parts[1:]}
    # another process's first pass, with another chunk size, finds the same fingerprint
    with StreamedTrace.open(path, "access", chunk_accesses=64) as st:
        again = run_sweep(st, **args)
    assert len(again.ran) == 1 and len(again.reused) == 3
    assert {p.name: p.stat().st_mtime_ns for p in parts[1:]} == kept
    assert _same(again.table, first.table)
    with pytest.raises(CachesimError, match="other --stream/--no-stream setting"):
        run_sweep(read_trace(path), **args)


def test_a_pickled_stand_in_opens_its_own_source_once_and_checks_the_file(tmp_path):
    from cachesim import sweep_stream
    from cachesim.sweep import make_configs, replay_config
    path = _oracle(tmp_path / "t.oracleGeneral.bin")
    configs = make_configs("lru,opt", "2%,5%", "none", mode="access")
    with StreamedTrace.open(path, "access", chunk_accesses=300) as st:
        want = [replay_config(st, c) for c in configs]
    blob = pickle.dumps(st)
    assert len(blob) < 2000  # a worker gets the path and the fingerprint, not the key map
    remote = pickle.loads(blob)
    opens = sweep_stream._WORKER_OPENS[0]
    got = [replay_config(remote, c) for c in configs]
    assert sweep_stream._WORKER_OPENS[0] == opens + 1  # one first pass for four configurations
    for g, w in zip(got, want):
        g.pop("seconds"), w.pop("seconds")
        assert g == w
    _oracle(path, seed=2)  # the file changes under the workers
    with pytest.raises(CachesimError) as err:
        worker_source(remote.spec, remote.fingerprint())
    assert f"sees a different trace at {path}; all workers must see the same file" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("sizes", ["vary", "constant", "vary late", "none"])
def test_the_fingerprint_hashed_in_the_first_pass_is_the_one_a_pass_over_its_files_gives(
        tmp_path, sizes, monkeypatch):
    from cachesim.simulate.stream import StreamSource
    from cachesim.sweep_stream import StreamSpec, stream_fingerprint
    path = _oracle(tmp_path / "t.oracleGeneral.bin")
    if sizes == "none":
        path = tmp_path / "t.txt"
        path.write_text("\n".join(map(str, np.fromfile(
            _oracle(tmp_path / "k.bin"), dtype=ORACLE_DTYPE)["id"].tolist())))
    elif sizes != "vary":
        rec = np.fromfile(path, dtype=ORACLE_DTYPE)
        rec["size"][:4500 if sizes == "vary late" else None] = 7  # constant for 15 chunks
        rec.tofile(path)
    spec = StreamSpec(str(path), "access", chunk=300)
    with StreamSource(path, chunk_accesses=300) as src:
        assert src.file_digests() is not None
        hashed = stream_fingerprint(src, spec)
        monkeypatch.setattr(src, "file_digests", lambda: None)  # a pass over the files
        assert stream_fingerprint(src, spec) == hashed
    with StreamSource(path, chunk_accesses=1000) as other:  # whatever the chunks
        assert stream_fingerprint(other, spec) == hashed


def test_a_published_first_pass_replays_as_its_own_until_it_or_the_trace_changes(tmp_path):
    from cachesim.simulate.stream import StreamSource
    path = _oracle(tmp_path / "t.oracleGeneral.bin")
    with StreamSource(path, chunk_accesses=300) as src:
        info = pickle.loads(pickle.dumps(src.publish()))
        with StreamSource.attach(info) as other:
            for pol in ("lru", "opt", "sieve"):  # opt: its next-access file is the other's own
                a, b = src.replay(pol, "2%"), other.replay(pol, "2%")
                assert a.hits > 0 and a.to_record() | {"seconds": 0} == \
                    b.to_record() | {"seconds": 0}
            assert other._next_path.parent != src._ids_path.parent
        assert src._ids_path.exists()  # closing the attached source left the client's files
        os.utime(path, ns=(1, 1))  # the trace changed (or seems to) since the first pass
        assert StreamSource.attach(info) is None
    info2 = dict(info, trace=list(info["trace"]))
    assert StreamSource.attach(info2) is None  # the client closed: its files are gone


def test_a_streamed_batch_sweep_on_a_local_pool_finishes_and_equals_one_process(tmp_path):
    """Its workers read the Parquet again with polars, whose thread pool does not survive a
    fork (a forked pool hung here): the pool is spawned."""
    path = _parquet(tmp_path / "t.parquet")
    out = {}
    for jobs in ("1", "2"):
        proc = subprocess.run([sys.executable, "-m", "cachesim", "sweep", str(path), "--stream",
                               "--mode", "batch", "-p", "lru,lfu", "-s", "2%,50", "--precision",
                               "fp32", "-q", "-j", jobs, "-o", str(tmp_path / f"j{jobs}.csv")],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        out[jobs] = proc.stdout
    assert out["1"] == out["2"] and "lfu" in out["1"]


def test_sweep_cli_streams_and_says_which_formats_batch_mode_streams(tmp_path):
    from click.testing import CliRunner

    from cachesim.cli import cli
    path = _oracle(tmp_path / "t.oracleGeneral.bin")
    runner = CliRunner()
    common = [str(path), "--mode", "access", "-p", "lru,clock", "-s", "1%,2%", "--ways", "full",
              "-q", "-j", "1"]
    a = runner.invoke(cli, ["sweep", *common, "--stream", "-o", str(tmp_path / "s.csv")])
    b = runner.invoke(cli, ["sweep", *common, "--no-stream", "-o", str(tmp_path / "m.csv")])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert a.output == b.output  # the printed table
    bad = runner.invoke(cli, ["sweep", str(path), "-p", "lru", "-s", "1%", "--stream"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "sweep --stream --mode batch reads Parquet, fbgemm-npz and dlrm-pt" in bad.output


# -- a real Dask cluster -------------------------------------------------------------------------
def test_streamed_sweep_on_a_real_cluster_shares_the_clients_first_pass(cluster, tmp_path):  # noqa: F811
    """Workers on the client's host replay from the client's first-pass files (no first pass
    and no fingerprint of their own), and the sweep equals the in-memory one."""
    import polars as pl
    from dask.distributed import Client

    path = _oracle(tmp_path / "big.oracleGeneral.bin", n=8000)
    opts = [str(path), "--mode", "access", "-p", "lru,fifo,clock,sieve", "-s", "0.5%,1%,2%,5%",
            "--ways", "full", "--precision", "fp32", "-q"]
    local, remote = tmp_path / "local.parquet", tmp_path / "remote.parquet"
    for extra in (["--no-stream", "-j", "1", "-o", str(local)],
                  ["--dask", cluster, "--stream", "-o", str(remote)]):
        proc = subprocess.run([sys.executable, "-m", "cachesim", "sweep", *opts, *extra],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
    a, b = pl.read_parquet(local), pl.read_parquet(remote)
    assert b.height == 16 and _same(a, b)
    with Client(cluster, timeout=20) as client:
        from cachesim import sweep_stream
        opens = client.run(lambda: sweep_stream._WORKER_OPENS[0])
        attaches = client.run(lambda: sweep_stream._WORKER_ATTACHES[0])
    assert sorted(opens.values()) == [0, 0], opens  # no worker read the trace again
    assert sorted(attaches.values()) in ([1, 1], [0, 1]), attaches  # never once per config


def test_a_cluster_worker_seeing_another_file_fails_with_one_line(cluster, tmp_path):  # noqa: F811
    from dask.distributed import Client
    path = _oracle(tmp_path / "a.oracleGeneral.bin")
    with StreamedTrace.open(path, "access") as st:
        # the workers see the new contents, the client the old; a file changed since the
        # client's first pass is not the client's to share, so each worker reads it itself
        _oracle(path, n=6001, seed=9)
        with Client(cluster, timeout=20) as client, pytest.raises(
                CachesimError, match=r"^worker tcp://127\.0\.0\.1:\d+ sees a different trace at "
                                     r".*a\.oracleGeneral\.bin; all workers must see the same "
                                     r"file [^\n]*$"):
            run_sweep(st, "lru", "1%,2%", ways="none", mode="access", dask=client)


def test_batch_sweep_streamed_on_a_real_cluster_equals_in_memory(cluster, tmp_path):  # noqa: F811
    from dask.distributed import Client
    path = _parquet(tmp_path / "t.parquet")
    args = dict(policies="lru,lfu", sizes="2%,50", ways="4,none", per_table="both",
                cache_model="ideal", precisions="fp32")
    want = run_sweep(read_trace(path), jobs=1, **args).table
    with StreamedTrace.open(path, "batch", chunk_accesses=200) as st, \
            Client(cluster, timeout=20) as client:
        got = run_sweep(st, dask=client, **args).table
    assert got.height == 16 and _same(got, want)


def test_sweeps_of_an_http_url_on_a_real_cluster_are_read_by_the_workers(cluster, tmp_path):  # noqa: F811
    """The trace at an http:// URL (a real server on loopback): the workers open the URL
    themselves, streamed (`StreamedTrace`) and in memory (`TraceSource`), and the sweeps equal
    the local file's."""
    from dask.distributed import Client

    from cachesim import sweep, sweep_stream
    from tests.http_server import serve
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp (test extra)")
    path = _oracle(tmp_path / "u.oracleGeneral.bin", n=3000)
    args = dict(policies="lru,fifo", sizes="1%,5%", ways="none", mode="access",
                precisions="fp32")
    want = run_sweep(read_trace(path), jobs=1, **args).table
    with serve(tmp_path) as base, Client(cluster, timeout=20) as client:
        url = f"{base}/u.oracleGeneral.bin"
        opens = client.run(lambda: sweep_stream._WORKER_OPENS[0])
        with StreamedTrace.open(url, "access") as st:
            streamed = run_sweep(st, dask=client, **args).table
        assert sum(client.run(lambda: sweep_stream._WORKER_OPENS[0]).values()) > sum(
            opens.values())  # the client's source was closed: the workers opened the URL
        reads = client.run(lambda: sweep._WORKER_READS[0])
        in_memory = run_sweep(read_trace(url), dask=client, source=sweep.TraceSource.of(url),
                              **args).table
        assert sum(client.run(lambda: sweep._WORKER_READS[0]).values()) > sum(reads.values())
    assert streamed.height == 4 and _same(streamed, want) and _same(in_memory, want)


def _rewrite_part_in_place(folder, seed):
    """Rewrite the folder's first part file under the same name, with other accesses, and give
    the folder back its own mtime: only the file shows the change."""
    import polars as pl
    part = sorted(folder.glob("*.parquet"))[0]
    before = os.stat(folder)
    rows = np.random.default_rng(seed).integers(0, 50, pl.read_parquet(part).height)
    with open(part, "r+b") as f:  # (in place: the folder's entries stay as they were)
        f.truncate(0)
        pl.DataFrame({"row": rows}).write_parquet(f)
    os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(folder).st_mtime_ns == before.st_mtime_ns


def _parquet_folder(folder, n_parts=3, n=400):
    import polars as pl
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n_parts):
        pl.DataFrame({"row": rng.integers(0, 60, n)}).write_parquet(folder / f"part-{i}.parquet")
    return folder


def test_a_part_file_rewritten_in_place_is_a_changed_folder(tmp_path):
    """A folder's stamp covers its files: a worker's kept source, a published first pass and the
    in-memory workers' kept trace all see a part rewritten in place as a changed trace."""
    from cachesim import sweep, sweep_stream
    from cachesim.io.urls import stamp
    from cachesim.simulate.stream import StreamSource
    folder = _parquet_folder(tmp_path / "trace.parquet.d")
    old = stamp(folder)
    spec_src = StreamedTrace.open(folder, "access", chunk_accesses=100)
    remote = pickle.loads(pickle.dumps(spec_src))
    worker_source(remote.spec, remote.fingerprint())  # a worker keeps this source
    with StreamSource(folder, chunk_accesses=100) as src:
        info = src.publish()
        source = sweep.TraceSource.of(folder)
        fp = read_trace(folder).fingerprint()
        sweep._source_trace(source, fp)  # ... and this in-memory trace
        reads = sweep._WORKER_READS[0]
        _rewrite_part_in_place(folder, seed=5)
        assert stamp(folder) != old
        assert StreamSource.attach(info) is None  # the client's first pass is of the old files
    spec_src.close()
    fresh = StreamedTrace.open(folder, "access", chunk_accesses=100)
    assert fresh.fingerprint() != remote.fingerprint()
    opens = sweep_stream._WORKER_OPENS[0]
    worker_source(fresh.spec, fresh.fingerprint())  # a new first pass, not the kept one's error
    assert sweep_stream._WORKER_OPENS[0] == opens + 1
    new_fp = read_trace(folder).fingerprint()
    assert sweep._source_trace(source, new_fp).fingerprint() == new_fp  # read again
    assert sweep._WORKER_READS[0] == reads + 1
    fresh.close()
