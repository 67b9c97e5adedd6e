"""Dask for clusters: a real scheduler and two worker processes on loopback; the workers read the
trace file themselves (once per process), per-table configurations are split by table and merged
exactly, and a sweep on the cluster resumes like a local one. Also: table-partitioned replay
equals the single-process per-table replay (property test)."""
from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from cachesim.simulate.batch import replay_batch
from cachesim.simulate.tables import replay_by_table
from cachesim.trace import Trace

TIMING = ("replay_seconds",)


def _trace(rng, n, n_tables, rows, n_batches) -> Trace:
    return Trace(row=rng.integers(0, rows, n), table=rng.integers(0, n_tables, n).astype(np.int32),
                 batch=np.sort(rng.integers(0, n_batches, n)),
                 table_names=[f"t{i}" for i in range(n_tables)],
                 table_rows=np.full(n_tables, rows) + np.arange(n_tables),
                 table_dims=np.array([4, 8, 16, 32][:n_tables]))


def _record(res) -> dict:
    rec = res.to_record(per_table=True)
    rec.pop("seconds")
    return rec


# -- table partitioning: exact --------------------------------------------------------------------
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), n_tables=st.integers(2, 4),
       rows=st.integers(1, 60), n_batches=st.integers(1, 25),
       model=st.sampled_from(["ideal", "fbgemm"]), policy=st.sampled_from(["lru", "lfu"]),
       size=st.sampled_from(["1%", "10%", "50%", "100%", "7", "40"]),
       ways=st.sampled_from([None, 1, 2, 32]))
def test_table_partitioned_replay_merges_to_the_single_process_result(
        seed, n, n_tables, rows, n_batches, model, policy, size, ways):
    tr = _trace(np.random.default_rng(seed), n, n_tables, rows, n_batches)
    if model == "fbgemm":
        ways = 32
    elif ways is None and not size.endswith("%"):
        ways = 2
    if not size.endswith("%") and int(size) < n_tables:
        size = str(n_tables)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = replay_batch(tr, policy, size, ways, per_table=True, cache_model=model)
        merged = replay_by_table(tr, policy, size, ways, cache_model=model)
    assert _record(merged) == _record(whole)


def test_a_table_without_accesses_counts_zeros():
    rng = np.random.default_rng(3)
    tr = _trace(rng, 200, 3, 30, 10)
    tr = tr.take(np.flatnonzero(tr.table != 1))  # table 1 keeps its rows, loses its accesses
    whole = replay_batch(tr, "lru", "20%", 2, per_table=True, cache_model="ideal")
    merged = replay_by_table(tr, "lru", "20%", 2, cache_model="ideal")
    assert merged.per_table["requests"][1] == 0
    assert _record(merged) == _record(whole)


# -- a real scheduler and two workers on loopback -------------------------------------------------
DASK = Path(sys.executable).with_name("dask")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    pytest.importorskip("dask.distributed", reason="dask is the optional 'dist' extra")
    if not DASK.exists():
        pytest.skip("the dask command line is not installed")
    procs, address = [], None
    tmp_path = tmp_path_factory.mktemp("dask")
    log = tmp_path / "scheduler.log"
    try:
        with open(log, "w") as f:
            procs.append(subprocess.Popen(
                [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                 "--no-dashboard"], stdout=f, stderr=subprocess.STDOUT))
        t0 = time.monotonic()
        while address is None and time.monotonic() - t0 < 20:
            m = re.search(r"tcp://127\.0\.0\.1:\d+", log.read_text())
            address = m.group(0) if m else None
            time.sleep(0.1)
        assert address, log.read_text()
        for i in range(2):
            procs.append(subprocess.Popen(
                [str(DASK), "worker", address, "--nworkers", "1", "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--name", f"w{i}"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, cwd=str(tmp_path)))
        from dask.distributed import Client
        with Client(address, timeout=20) as client:
            client.wait_for_workers(2, timeout=20)
        yield address
    finally:
        if address is not None:  # scheduler and workers stop at once
            from dask.distributed import Client
            with contextlib.suppress(Exception), Client(address, timeout=10) as client:
                client.shutdown()
        t0 = time.monotonic()
        while any(p.poll() is None for p in procs) and time.monotonic() - t0 < 5:
            time.sleep(0.05)
        for p in procs:  # what did not stop when asked is killed
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
    assert all(p.returncode is not None for p in procs)  # the workers and scheduler stopped


def _sweep(args) -> str:
    """`cachesim sweep ARGS` as a user runs it (bounded: a stuck cluster fails the test); its
    stderr."""
    proc = subprocess.run([sys.executable, "-m", "cachesim", "sweep", *args], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_sweep_on_a_real_cluster_reads_the_file_on_the_workers_and_resumes(cluster, tmp_path):
    import polars as pl
    from dask.distributed import Client

    from cachesim.io.tabular import write_trace
    tr = _trace(np.random.default_rng(7), 3000, 3, 400, 40)
    path = write_trace(tr, tmp_path / "trace.parquet")
    opts = [str(path), "-p", "lru,lfu", "-s", "1%,5%", "--per-table", "both",
            "--cache-model", "ideal", "--ways", "4,none", "--precision", "fp32,int8"]
    local, remote = tmp_path / "local.parquet", tmp_path / "remote.parquet"
    _sweep([*opts, "-j", "1", "-q", "-o", str(local)])
    _sweep([*opts, "--dask", cluster, "-q", "-o", str(remote)])
    a, b = pl.read_parquet(local), pl.read_parquet(remote)
    assert b.height == 2 * 2 * 2 * 2 * 2
    assert a.drop(TIMING).equals(b.drop(TIMING))
    with Client(cluster, timeout=20) as client:
        from cachesim import sweep as sweep_module
        reads = client.run(lambda: sweep_module._WORKER_READS[0])
        # each worker read the file itself, once, though it ran many tasks
        assert sorted(reads.values()) == [1, 1], reads
    # resume: drop two parts; the rerun replays only those, on the cluster
    parts = sorted(p for p in (tmp_path / "remote.parquet.parts").glob("batch-*.json"))
    assert len(parts) == 16
    for p in parts[:2]:
        p.unlink()
    before = {p.name: p.stat().st_mtime_ns for p in parts[2:]}
    err = _sweep([*opts, "--dask", cluster, "-o", str(remote)])
    assert "replayed 2 of 16 configurations (14 reused)" in err
    assert {p.name: p.stat().st_mtime_ns for p in parts[2:]} == before
    assert pl.read_parquet(remote).drop(TIMING).equals(a.drop(TIMING))


def test_a_worker_seeing_another_file_is_refused(cluster, tmp_path):
    from dask.distributed import Client

    from cachesim.errors import CachesimError
    from cachesim.io.tabular import write_trace
    from cachesim.sweep import TraceSource, run_sweep
    rng = np.random.default_rng(11)
    path = write_trace(_trace(rng, 500, 2, 50, 10), tmp_path / "t.parquet")
    other = _trace(rng, 500, 2, 50, 10)  # the client's trace is not the file's
    with Client(cluster, timeout=20) as client, pytest.raises(
            CachesimError, match=r"worker tcp://127\.0\.0\.1:\d+ sees a different trace at "
                                 r".*t\.parquet; all workers must see the same file"):
        run_sweep(other, "lru", "5%", cache_model="ideal", dask=client,
                  source=TraceSource.of(path))


def test_an_in_memory_trace_is_scattered_and_per_table_caches_split_by_table(cluster):
    from dask.distributed import Client

    from cachesim import sweep as sweep_module
    from cachesim.sweep import run_sweep
    tr = _trace(np.random.default_rng(5), 2000, 4, 300, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for model, ways in (("fbgemm", "32"), ("ideal", "2,none")):
            args = dict(policies="lru,lfu", sizes="3%,200", ways=ways, per_table="both",
                        cache_model=model, precisions="fp32")
            local = run_sweep(tr, jobs=1, **args).table
            with Client(cluster, timeout=20) as client:
                reads = client.run(lambda: sweep_module._WORKER_READS[0])
                remote = run_sweep(tr, dask=client, **args).table
                # no source: the trace travelled (scattered), no worker read a file
                assert client.run(lambda: sweep_module._WORKER_READS[0]) == reads
            assert local.drop(TIMING).equals(remote.drop(TIMING))
