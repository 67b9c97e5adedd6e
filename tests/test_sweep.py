"""Sweeps: one replay per configuration, costs per precision, processes, resume, Dask, CLI."""
import io
import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.simulate.batch import replay_batch
from cachesim.cli import cli
from cachesim.costs import costs_for
from cachesim.sweep import make_configs, parts_dir, run_sweep
from tests import naive


def _trace(n=4000, seed=1):
    rng = np.random.default_rng(seed)
    return cachesim.Trace(table=rng.integers(0, 3, n), row=rng.zipf(1.2, n) % 2000,
                          batch=np.arange(n) // 100, table_dims=[16, 16, 32])


def _same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    """Equal tables, ignoring the replay's own run time."""
    return a.drop("replay_seconds").equals(b.drop("replay_seconds"))


# the ideal model: any ways, fully associative too (FBGEMM's model has 32 or 64 ways only)
SWEEP = dict(policies="lru,lfu", sizes="2%,10%", ways="8,none", precisions="fp32,int8,int4",
             cache_model="ideal")


def test_cross_product_checked_before_running():
    cfgs = make_configs("lru,lfu", "1%,5%,100", "32,none", "both", "batch", cache_model="ideal")
    assert len(cfgs) == 2 * 3 * 2 * 2
    assert len({c.key for c in cfgs}) == len(cfgs)
    with pytest.raises(cachesim.CachesimError, match="in bytes"):
        make_configs("lru", "1GiB", "none", "no", "batch")
    with pytest.raises(cachesim.CachesimError, match="unknown policy"):
        make_configs("nosuch", "1%", "none", "no", "batch")
    with pytest.raises(cachesim.CachesimError, match="--mode batch"):
        make_configs("lru", "1%", "none", "yes", "access")
    with pytest.raises(cachesim.CachesimError, match="--ways 'x'.*full for fully associative"):
        make_configs("lru", "1%", "x", "no", "batch")


def test_one_replay_per_config_and_costs_per_precision(monkeypatch):
    calls = []
    import cachesim.simulate.batch as batch_mod
    real = batch_mod.replay_batch
    monkeypatch.setattr(batch_mod, "replay_batch",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    tr = _trace()
    res = run_sweep(tr, per_table="both", jobs=1, **SWEEP)
    assert len(calls) == 2 * 2 * 2 * 2 == len(res.ran)          # no replay per precision
    t = res.table
    assert t.height == 16 * 3
    row = t.filter((pl.col("policy") == "lfu") & (pl.col("size") == "10%")
                   & (pl.col("ways") == 8) & (~pl.col("per_table"))
                   & (pl.col("precision") == "int4")).to_dicts()
    assert len(row) == 1
    direct = replay_batch(tr, "lfu", "10%", ways=8, cache_model="ideal")
    want = costs_for(direct, tr, "int4")
    for k in ("unique_misses", "conflict_unique_misses", "evictions", "calls", "n_lines"):
        assert row[0][k] == getattr(direct, k)
    for k in ("h2d_bytes", "d2h_bytes", "store_bytes", "cache_bytes", "metadata_bytes",
              "ratio_vs_fp32"):
        assert row[0][k] == want[k]
    # the precisions of one configuration share counters and differ in bytes
    same_cfg = t.filter((pl.col("policy") == "lru") & (pl.col("size") == "2%")
                        & (pl.col("ways") == 8) & (~pl.col("per_table")))
    assert same_cfg["unique_misses"].n_unique() == 1
    assert same_cfg["h2d_bytes"].n_unique() == 3


def test_processes_give_the_same_table():
    tr = _trace()
    one = run_sweep(tr, jobs=1, **SWEEP).table
    two = run_sweep(tr, jobs=2, **SWEEP).table
    assert _same(one, two)


def test_resume_runs_only_missing_configs(tmp_path):
    tr = _trace()
    out = tmp_path / "r.parquet"
    first = run_sweep(tr, out=out, jobs=2, **SWEEP)
    assert len(first.ran) == 8 and not first.reused
    assert _same(pl.read_parquet(out), first.table)
    parts = parts_dir(out)
    gone = sorted(p.stem for p in parts.glob("*.json") if p.name != "manifest.json")[:3]
    for key in gone:
        (parts / f"{key}.json").unlink()
    torn = next(c.key for c in first.configs if c.key not in gone)
    (parts / f"{torn}.json").write_text("{torn")                  # an interrupted write
    out.unlink()
    again = run_sweep(tr, out=out, jobs=2, **SWEEP)
    assert sorted(again.ran) == sorted(gone + [torn])
    assert len(again.reused) == 8 - len(again.ran)
    assert _same(again.table, first.table)
    assert _same(pl.read_parquet(out), first.table)
    assert not list(tmp_path.glob(".*tmp"))                       # atomic writes left nothing


def test_recost_without_replay_and_fresh(tmp_path):
    tr = _trace()
    out = tmp_path / "r.csv"
    run_sweep(tr, out=out, jobs=1, **SWEEP)
    more = run_sweep(tr, out=out, jobs=1, **{**SWEEP, "precisions": "int2,fp16"},
                     link_gbps=12.5)
    assert more.ran == [] and more.table.height == 8 * 2
    assert set(pl.read_csv(out)["precision"]) == {"int2", "fp16"}
    assert (more.table["link_gbps"] == 12.5).all()
    fresh = run_sweep(tr, out=out, jobs=1, fresh=True, **SWEEP)
    assert len(fresh.ran) == 8


def test_parts_of_another_trace_are_refused(tmp_path):
    out = tmp_path / "r.json"
    run_sweep(_trace(seed=1), out=out, jobs=1, policies="lru", sizes="5%", ways="none",
              cache_model="ideal")
    with pytest.raises(cachesim.CachesimError, match="--fresh"):
        run_sweep(_trace(seed=2), out=out, jobs=1, policies="lru", sizes="5%", ways="none",
                  cache_model="ideal")
    assert json.loads(out.read_text())[0]["policy"] == "lru"


def test_access_mode_and_trace_without_batches():
    keys = np.random.default_rng(4).integers(0, 200, 3000)
    tr = cachesim.Trace.from_keys(keys)
    res = run_sweep(tr, "lru", "5%,20%", mode="access", precisions="int8", jobs=1)
    direct = cachesim.replay(tr, "lru", "20%", mode="access")
    row = res.table.filter(pl.col("size") == "20%").to_dicts()[0]
    assert row["misses"] == direct.misses
    assert row["h2d_bytes"] == direct.misses * (16 + 8)
    assert row["steps"] is None and row["h2d_bytes_per_step"] is None
    with pytest.raises(cachesim.CachesimError, match="--mode access"):
        run_sweep(tr, "lru", "5%", jobs=1)


def test_dask_gives_the_same_table():
    distributed = pytest.importorskip("dask.distributed",
                                      reason="dask is the optional 'dist' extra")
    tr = _trace(n=2000)
    args = dict(policies="lru", sizes="5%,10%", ways="none", precisions="int8",
                cache_model="ideal")
    # an in-process cluster keeps the test fast; `dask="local"` starts worker processes
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            by_address = run_sweep(tr, dask=cluster.scheduler_address, jobs=2, **args).table
            by_client = run_sweep(tr, dask=client, **args).table
    alone = run_sweep(tr, jobs=1, **args).table
    assert _same(by_address, alone) and _same(by_client, alone)


def test_cli_sweep_writes_table_and_reports(tmp_path):
    trace_file = tmp_path / "keys.txt"
    keys = np.random.default_rng(5).integers(0, 300, 2000)
    trace_file.write_text("\n".join(map(str, keys)) + "\n")
    out = tmp_path / "res.parquet"
    res = CliRunner().invoke(cli, ["sweep", str(trace_file), "--mode", "access", "-p", "lru",
                                   "-s", "5%,10%", "--ways", "none", "--precision", "fp32,int8",
                                   "-o", str(out), "-j", "2"])
    assert res.exit_code == 0, res.output
    assert "replayed 2 of 2 configurations (0 reused)" in res.output
    # worked by hand: 299 distinct keys, so 5% = 15 rows and 10% = 30; rows 0..299 of 16 fp32
    # (64 bytes) or int8 + scale/bias (24 bytes); fp32 cache lines plus 16 bytes (tag, LRU
    # stamp) each; transfers (misses + write-backs) / (2 x 2000); ratio = 300 x 64 / total
    hits = [naive.lru(keys.tolist(), c)[0] for c in (15, 30)]
    assert hits == [103, 185]  # hit ratios 0.0515 and 0.0925
    assert res.stdout.splitlines() == [
        "policy  cache_model  size  ways  per_table  precision  hit_ratio  h2d_bytes_per_step  "
        "d2h_bytes_per_step  transfer_vs_no_cache  total_bytes  ratio_vs_fp32",
        "   lru            -    5%  none         no       fp32     0.0515                   -  "
        "                 -                0.9447       20,400         0.9412",
        "   lru            -    5%  none         no       int8     0.0515                   -  "
        "                 -                0.9447        8,400         2.2857",
        "   lru            -   10%  none         no       fp32     0.0925                   -  "
        "                 -                0.9000       21,600         0.8889",
        "   lru            -   10%  none         no       int8     0.0925                   -  "
        "                 -                0.9000        9,600         2.0000"]
    table = pl.read_parquet(out)
    assert table.height == 4 and {"h2d_bytes", "ratio_vs_fp32", "hit_ratio"} <= set(table.columns)
    # after a finished sweep, OUT.parts/ holds its manifest and one part per configuration only
    assert sorted(p.name for p in parts_dir(out).iterdir()) == [
        "access-lru-10pct-wfull-shared.json", "access-lru-5pct-wfull-shared.json",
        "manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.txt", "res.parquet",
                                                          "res.parquet.parts"]
    res = CliRunner().invoke(cli, ["sweep", str(trace_file), "-s", "5%"])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and "--mode access" in res.output


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_lines_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    import cachesim.sweep as sweep_mod
    tr = _trace()
    args = dict(policies="lru", sizes="2%,10%", ways="8,none", jobs=1, progress=True,
                cache_model="ideal")
    monkeypatch.setattr(sweep_mod, "LINES_AFTER_S", 1e9)  # before the threshold: nothing
    run_sweep(tr, **args)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sweep_mod, "LINES_AFTER_S", 0.0)
    run_sweep(tr, **args)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4
    assert [ln.split(" done:")[0] for ln in lines] == [f"sweep: {i} of 4" for i in (1, 2, 3, 4)]
    assert all("hit ratio 0." in ln and "elapsed)" in ln for ln in lines)
    assert any("lru 10% ways none shared" in ln for ln in lines)
    run_sweep(tr, **{**args, "progress": False})  # --quiet: nothing
    assert capsys.readouterr().err == ""


def test_progress_bar_on_a_terminal_and_no_lines(monkeypatch):
    import cachesim.sweep as sweep_mod
    monkeypatch.setattr(sweep_mod, "LINES_AFTER_S", 0.0)
    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    run_sweep(_trace(), policies="lru,lfu", sizes="5%", ways="none", jobs=1, progress=True,
              cache_model="ideal")
    text = term.getvalue()
    assert "sweep: 100%" in text and "2/2" in text and "config" in text
    assert " done:" not in text


def test_lines_wait_for_their_threshold():
    from cachesim.progress import Lines
    now = [100.0]
    out = io.StringIO()
    lines = Lines(True, after=3.0, file=out, clock=lambda: now[0])
    assert not lines.echo("early")
    now[0] = 103.0
    assert lines.echo("due")
    assert out.getvalue() == "due\n"
    quiet = Lines(False, file=out, clock=lambda: now[0])
    terminal = Lines(True, file=_Terminal(), clock=lambda: now[0])
    assert not quiet.echo("x") and not terminal.echo("x")


def test_configurations_go_out_longest_first_as_learnt_from_finished_replays():
    """`_LongestFirst`: the first of each family first (in the given order, larger sizes first),
    then the family with the longest mean replay so far; a family still unmeasured counts as
    the longest."""
    from cachesim.sweep import _LongestFirst, make_configs
    cfgs = {(c.policy, c.size): c for c in make_configs("lru,fifo", "5%,1%,0.5%", "none",
                                                         mode="access")}
    pending = [cfgs[p, s] for s in ("5%", "1%", "0.5%") for p in ("lru", "fifo")]
    order = _LongestFirst(pending)
    got = [order.pop(), order.pop()]
    assert [(c.policy, c.size) for c in got] == [("lru", "5%"), ("fifo", "5%")]
    order.done(cfgs["fifo", "5%"], {"seconds": 1.0})  # FIFO is measured, LRU still running
    assert (order.pop().policy, len(pending)) == ("lru", 6)  # lru 1%: unmeasured counts longest
    order.done(cfgs["lru", "5%"], {"seconds": 3.0})
    rest = []
    while order:
        rest.append(order.pop())
    assert [(c.policy, c.size) for c in rest] == [("lru", "0.5%"), ("fifo", "1%"),
                                                  ("fifo", "0.5%")]
