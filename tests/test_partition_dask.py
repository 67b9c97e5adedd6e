"""`cachesim replay --mode batch --jobs N --dask tcp://127.0.0.1:PORT`: one replay split by set
ranges (or by tables with --per-table) over a real Dask scheduler and two workers on loopback
(the `cluster` fixture of tests/test_dask_cluster.py, which stops them at the end), each worker
reading the trace file itself; the merged counts equal the single-process replay's exactly."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from cachesim.cli import cli
from tests.test_dask_cluster import cluster  # noqa: F401 -- the fixture (scheduler, 2 workers)


def _trace():
    import cachesim
    rng = np.random.default_rng(21)
    n, n_tables = 6000, 3
    rows = np.array([900, 1500, 2600])
    table = rng.integers(0, n_tables, n).astype(np.int32)
    return cachesim.Trace(row=(rng.zipf(1.3, n) - 1) % rows[table], table=table,
                          batch=np.repeat(np.arange(n // 300), 300), table_rows=rows,
                          table_names=["a", "b", "c"])


def _replay(args) -> list[dict]:
    res = CliRunner().invoke(cli, ["replay", *args, "--mode", "batch", "--json", "-q"])
    assert res.exit_code == 0, res.output
    recs = json.loads(res.stdout)
    for r in recs:
        r.pop("seconds")
    return recs


@pytest.mark.parametrize("model,extra", [("fbgemm", []), ("ideal", ["--ways", "4"]),
                                         ("fbgemm", ["--per-table"]),
                                         ("fbgemm", ["--table-groups", "a,c/b"]),
                                         ("ideal", ["--per-table"])])
def test_a_split_replay_on_a_real_cluster_equals_one_process(cluster, tmp_path, model, extra):  # noqa: F811
    from dask.distributed import Client

    from cachesim import sweep as sweep_module
    from cachesim.io.tabular import write_trace
    path = str(write_trace(_trace(), tmp_path / "trace.parquet"))
    args = [path, "-p", "lru,lfu", "-s", "2%,6%", "--cache-model", model, *extra]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = _replay(args)
        with Client(cluster, timeout=20) as client:
            before = client.run(lambda: sweep_module._WORKER_READS[0])
            split = _replay([*args, "--jobs", "3", "--dask", cluster])
            after = client.run(lambda: sweep_module._WORKER_READS[0])
    assert len(one) == 4 and all(r["misses"] > 0 and r["hits"] > 0 for r in one)
    assert any(r["evictions"] > 0 for r in one)
    assert split == one
    # the workers read the file themselves (the trace did not travel), each at most once for
    # the 4 replays x 3 parts
    grew = [after[w] - before[w] for w in after]
    assert 1 <= sum(grew) <= 2 and max(grew) == 1, (before, after)


def test_dask_refuses_an_access_replay(tmp_path):
    from cachesim.io.tabular import write_trace
    path = str(write_trace(_trace(), tmp_path / "trace.parquet"))
    res = CliRunner().invoke(cli, ["replay", path, "-s", "5%", "--mode", "access", "--dask",
                                   "tcp://127.0.0.1:1"])
    assert res.exit_code == 2
    assert "--dask tcp://127.0.0.1:1 splits a batch replay" in res.output


def test_an_in_memory_trace_is_scattered_for_a_split_replay(cluster):  # noqa: F811
    from dask.distributed import Client

    from cachesim import sweep as sweep_module
    from cachesim.simulate.batch import replay_batch
    from cachesim.sweep import replay_split_dask
    tr = _trace()
    runs = [("lru", "3%", 32), ("lfu", "5%", 32)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Client(cluster, timeout=20) as client:
            reads = client.run(lambda: sweep_module._WORKER_READS[0])
            split = replay_split_dask(tr, runs, client, 4)
            assert client.run(lambda: sweep_module._WORKER_READS[0]) == reads  # no file read
        for (policy, size, ways), res in zip(runs, split):
            one = replay_batch(tr, policy, size, ways)
            rec, ref = res.to_record(per_table=True), one.to_record(per_table=True)
            rec.pop("seconds"), ref.pop("seconds")
            assert rec == ref and one.evictions > 0
