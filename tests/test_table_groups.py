"""--table-groups: which tables share one FBGEMM cache, as TorchRec's TBE ops (simulate/groups.py).
Each group replays as one cache of its own tables (the plain-Python oracle in naive_fbgemm.py,
one NaiveFbgemm per op, is the reference); a split by groups merges exactly; TorchRec's rule
groups by embedding dim only with the prefetch pipeline."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.errors import CachesimError
from cachesim.simulate.batch import replay_batch
from cachesim.simulate.groups import parse_groups, resolve_groups, torchrec_groups
from cachesim.simulate.partition import merge_parts, plan_parts, replay_part, replay_partitioned
from tests import naive_fbgemm as naive


def _trace(seed=0, n_tables=4, n=8000, dims=(16, 32, 16, 64)):
    rng = np.random.default_rng(seed)
    rows = rng.integers(40, 700, n_tables)
    table = rng.integers(0, n_tables, n).astype(np.int32)
    row = (rng.zipf(1.3, n) - 1) % rows[table]
    b = np.arange(n) // 250
    return cachesim.Trace(table=table, row=row.astype(np.int64), batch=b, table_rows=rows,
                          table_dims=np.array(dims[:n_tables]), source=f"groups-{seed}")


def _record(res):
    rec = res.to_record(per_table=True)
    rec.pop("seconds")
    return rec


def _naive_totals(tr, policy, lf, groups, pipeline=False):
    starts = tr.batch_starts
    batches = [list(zip(tr.table[a:z].tolist(), tr.row[a:z].tolist()))
               for a, z in zip(starts[:-1], starts[1:])]
    per_batch = naive.replay(batches, tr.table_rows.tolist(), policy, load_factor=lf,
                             groups=list(groups), prefetch_pipeline=pipeline)
    return {nm: sum(b[nm] for b in per_batch) for nm in ("unique_misses", "conflict_misses",
                                                          "conflict_unique_misses", "evictions")}


@pytest.mark.parametrize("policy,groups,pipeline", [("lru", "0,2/1,3", False),
                                                     ("lfu", "0/1-3", False),
                                                     ("lru", "torchrec", True)])
def test_a_grouped_replay_equals_one_cache_per_op(policy, groups, pipeline):
    tr = _trace(1)
    res = replay_batch(tr, policy, "10%", table_groups=groups, prefetch_pipeline=pipeline)
    g = resolve_groups(groups, tr, pipeline)
    want = _naive_totals(tr, policy, 0.1, g, pipeline)
    assert {nm: getattr(res, nm) for nm in want} == want
    assert res.evictions > 0 and res.hits > 0  # the trace exercises the caches
    # each table's cache is its group's: its sets are the group's (int(rows x lf) + 31) // 32
    rows = tr.table_rows
    for t in range(tr.n_tables):
        group_rows = int(rows[g == g[t]].sum())
        assert res.per_table["n_sets"][t] == max(1, (int(group_rows * 0.1) + 31) // 32)


def test_groups_change_the_answer_and_say_so():
    tr = _trace(2)
    one = replay_batch(tr, "lru", "10%")
    two = replay_batch(tr, "lru", "10%", table_groups="0,1/2,3")
    assert two.table_groups == "t0,t1/t2,t3" and one.table_groups is None
    assert two.n_sets != one.n_sets or two.unique_misses != one.unique_misses
    # one group is the shared cache, a group per table is --per-table: the same Results
    assert _record(replay_batch(tr, "lru", "10%", table_groups="0-3")) == _record(one)
    assert _record(replay_batch(tr, "lru", "10%", table_groups="table")) == \
        _record(replay_batch(tr, "lru", "10%", per_table=True))


def test_torchrec_groups_by_dim_only_with_the_prefetch_pipeline():
    dims = [16, 32, 16, 64, 32]
    assert torchrec_groups(dims, 5, False).tolist() == [0, 0, 0, 0, 0]  # SINGLE_BUCKET
    assert torchrec_groups(dims, 5, True).tolist() == [0, 1, 0, 2, 1]   # ALL_BUCKETS
    assert torchrec_groups(16, 3, True).tolist() == [0, 0, 0]


def test_parse_groups_reads_indices_names_and_ranges():
    names = ["C1", "C2", "C3", "C4"]
    assert parse_groups("C3,C1/C2,C4", names, 4).tolist() == [0, 1, 0, 1]
    assert parse_groups("2-3/0,1", names, 4).tolist() == [0, 0, 1, 1]  # numbered by first table
    for spec, msg in (("0,1/1-3", "in groups 1 and 2"), ("0/2-3", "no group has table"),
                      ("0-1//2-3", "group 2 is empty"), ("0-9", "out of range"),
                      ("C1/X", "neither a table index")):
        with pytest.raises(CachesimError, match=msg):
            parse_groups(spec, names, 4)


def test_groups_need_the_fbgemm_model_and_not_per_table():
    tr = _trace(3)
    with pytest.raises(CachesimError, match="needs --cache-model fbgemm"):
        replay_batch(tr, "lru", "10%", table_groups="0/1-3", cache_model="ideal")
    with pytest.raises(CachesimError, match="give one"):
        replay_batch(tr, "lru", "10%", table_groups="0/1-3", per_table=True)


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_a_split_by_groups_merges_exactly(monkeypatch, policy):
    from cachesim.simulate import partition
    monkeypatch.setattr(partition, "MIN_PART_ACCESSES", 1)
    tr = _trace(4)
    one = replay_batch(tr, policy, "10%", table_groups="0,3/1/2")
    assert _record(replay_partitioned(tr, policy, "10%", parts=2, table_groups="0,3/1/2")) == \
        _record(one)
    plan = plan_parts(tr, policy, "10%", 3, table_groups="0,3/1/2")
    assert plan.parts == 3 and plan.table_groups == (0, 1, 2, 0)
    parts = [replay_part(tr, plan, p) for p in range(plan.parts)]
    assert _record(merge_parts(tr, plan, parts)) == _record(one)


def test_cli_replay_with_table_groups(tmp_path):
    tr = _trace(5)
    path = tmp_path / "t.parquet"
    cachesim.write_trace(tr, path)
    r = CliRunner().invoke(cli, ["replay", str(path), "-p", "lru", "-s", "10%", "--json", "-q",
                                 "--table-groups", "0,2/1,3"])
    assert r.exit_code == 0, r.output
    (rec,) = json.loads(r.output)
    want = replay_batch(cachesim.read_trace(path), "lru", "10%", table_groups="0,2/1,3")
    assert rec["table_groups"] == "t0,t2/t1,t3"
    assert rec["unique_misses"] == want.unique_misses
    for extra in (["--stream"], ["--jobs", "2"]):
        r2 = CliRunner().invoke(cli, ["replay", str(path), "-p", "lru", "-s", "10%", "--json",
                                      "-q", "--table-groups", "0,2/1,3"] + extra)
        assert r2.exit_code == 0, r2.output
        got = json.loads(r2.output)[0]
        assert {k: got[k] for k in ("unique_misses", "conflict_misses", "table_groups")} == \
            {k: rec[k] for k in ("unique_misses", "conflict_misses", "table_groups")}, extra
    bad = CliRunner().invoke(cli, ["replay", str(path), "-s", "10%", "-q",
                                   "--table-groups", "0/1"])
    assert bad.exit_code == 2 and "no group has table" in bad.output
    assert "Traceback" not in bad.output


def test_sweep_with_table_groups(tmp_path):
    from cachesim.sweep import run_sweep
    tr = _trace(6)
    res = run_sweep(tr, "lru,lfu", "5%,10%", precisions="fp32", jobs=1,
                    table_groups="0,2/1,3", out=tmp_path / "s.parquet")
    rows = res.table.to_dicts()
    assert len(rows) == 4 and {r["table_groups"] for r in rows} == {"t0,t2/t1,t3"}
    for r in rows:
        want = replay_batch(tr, r["policy"], r["size"], table_groups="0,2/1,3")
        assert (r["unique_misses"], r["conflict_misses"]) == (want.unique_misses,
                                                              want.conflict_misses)
    # the groups are part of each configuration's resume key: another grouping replays anew
    again = run_sweep(tr, "lru", "5%", precisions="fp32", jobs=1, table_groups="0/1-3",
                      out=tmp_path / "s.parquet")
    assert again.ran and not again.reused
    with pytest.raises(CachesimError, match="no group has table"):
        run_sweep(tr, "lru", "5%", precisions="fp32", jobs=1, table_groups="0/1")
    with pytest.raises(CachesimError, match="give one"):
        run_sweep(tr, "lru", "5%", precisions="fp32", jobs=1, table_groups="0/1-3",
                  per_table="yes")


def test_cli_sweep_with_table_groups(tmp_path):
    tr = _trace(7)
    path = tmp_path / "t.parquet"
    cachesim.write_trace(tr, path)
    r = CliRunner().invoke(cli, ["sweep", str(path), "-p", "lru", "-s", "10%", "-q", "-j", "1",
                                 "--precision", "fp32", "--table-groups", "torchrec",
                                 "--prefetch-pipeline", "-o", str(tmp_path / "o.json")])
    assert r.exit_code == 0, r.output
    (row,) = json.loads((tmp_path / "o.json").read_text())
    # TorchRec with the pipeline: one op per dim (16: t0, t2; 32: t1; 64: t3)
    assert row["table_groups"] == "t0,t2/t1/t3"
    want = replay_batch(tr, "lru", "10%", table_groups="0,2/1/3", prefetch_pipeline=True)
    assert row["unique_misses"] == want.unique_misses


@pytest.mark.parametrize("policy,pipeline", [("lru", False), ("lfu", False), ("lru", True)])
def test_the_executor_with_table_groups_counts_as_the_replay(policy, pipeline):
    # train's FBGEMM cache (executor.fbgemm_step, one cache per group) counts what
    # `replay --table-groups` counts, and its record names the groups
    from cachesim.executor.train import train
    from cachesim.synth.generate import generate
    tr = generate(400, tables=3, rows=[300, 80, 1000], alpha=1.0, bag_size="poisson:1.5",
                  batch_size=16, seed=3, teacher=True, dim=4)
    names = ("unique_misses", "conflict_unique_misses", "conflict_misses", "evictions")
    rec, = train(tr, precision="int8", size="8%", policy=policy, ways=32,
                 model={"bottom": (4,), "top": (4,)}, progress=False, baselines=False,
                 test_fraction=0.0, device="cpu", table_groups="0,2/1",
                 prefetch_pipeline=pipeline)
    sim = replay_batch(tr, policy, "8%", table_groups="0,2/1", prefetch_pipeline=pipeline)
    assert rec["table_groups"] == sim.table_groups == "t0,t2/t1"
    assert rec["cache_lines"] == sim.n_lines
    assert {k: rec[k] for k in names} == {k: getattr(sim, k) for k in names}
    assert sim.evictions > 0


def test_report_with_table_groups(tmp_path):
    # the report's sweep runs the groups, its meta and its page name them
    import dataclasses

    from cachesim.reports.report import ReportOptions, build_report
    tr = _trace(8)
    opt = ReportOptions(fractions=(0.05, 0.2), precisions=("fp32", "int8"),
                        curve_policies=("lru",), jobs=1, target_hit_ratio=0.5,
                        table_groups="0,2/1,3")
    out = build_report(tr, tmp_path / "rep", opt)
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["table_groups"] == "t0,t2/t1,t3"
    for row in results["sweep"]:
        want = replay_batch(tr, row["policy"], row["size"], table_groups="0,2/1,3")
        assert (row["table_groups"], row["unique_misses"]) == ("t0,t2/t1,t3",
                                                               want.unique_misses)
    assert "one cache per table group (t0,t2/t1,t3)" in (out / "report.md").read_text()
    with pytest.raises(CachesimError, match="no group has table"):
        build_report(tr, tmp_path / "bad", dataclasses.replace(opt, table_groups="0/1"))
    assert not (tmp_path / "bad").exists()  # refused before any work


def test_sweep_keys_name_the_grouping_not_its_spelling(tmp_path):
    # specs naming one grouping share their results; a long spec makes a short file name
    from cachesim.sweep import run_sweep
    tr = _trace(10)
    out = tmp_path / "s.parquet"
    first = run_sweep(tr, "lru", "5%", precisions="fp32", jobs=1, table_groups="0,2/1,3",
                      out=out)
    again = run_sweep(tr, "lru", "5%", precisions="fp32", jobs=1, table_groups="t2,t0/t3,t1",
                      out=out)
    assert first.ran and again.reused == first.ran and not again.ran
    assert len(first.ran[0]) < 100
    # a group per table is --per-table's sweep row, one group the shared cache's
    per = run_sweep(tr, "lru", "5%", precisions="fp32", jobs=1, table_groups="table")
    assert per.table["per_table"].to_list() == [True]
    assert per.table["unique_misses"].to_list() == [replay_batch(tr, "lru", "5%",
                                                                 per_table=True).unique_misses]
    one = run_sweep(tr, "lru", "5%", precisions="fp32", jobs=1, table_groups="0-3")
    assert one.configs[0].table_groups is None


def test_spec_mistakes_get_their_own_message():
    names = ["C1", "C2", "C3"]
    with pytest.raises(CachesimError, match="runs backwards; give it as C1-C3"):
        parse_groups("C3-C1", names, 3)
    with pytest.raises(CachesimError, match="C1 is twice in group 1"):
        parse_groups("0,0/1-2", names, 3)
    from cachesim.simulate.fbgemm import FbgemmCache
    for bad in ("0/1-2", [0.5, 1, 2]):
        with pytest.raises(CachesimError, match="whole group number per table"):
            FbgemmCache([5, 5, 5], load_factor=0.5, table_groups=bad)


def test_replay_table_names_the_groups_and_access_mode_refuses_them(tmp_path):
    tr = _trace(11)
    path = tmp_path / "t.parquet"
    cachesim.write_trace(tr, path)
    r = CliRunner().invoke(cli, ["replay", str(path), "-s", "10%", "-q", "--table-groups",
                                 "0,2/1,3"])
    assert r.exit_code == 0 and "table_groups" in r.output and "t0,t2/t1,t3" in r.output
    for extra in ([], ["--jobs", "2"]):
        r = CliRunner().invoke(cli, ["replay", str(path), "-s", "10%", "-q", "--mode", "access",
                                     "--table-groups", "0,2/1,3", *extra])
        assert r.exit_code == 2 and "batch mode" in r.output, extra
