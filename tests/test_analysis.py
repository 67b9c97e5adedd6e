"""Trace analysis: reuse times and histograms against plain Python, Zipf recovery, coverage,
working set and drift on hand-made windows, the CLI and its plots."""
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

import cachesim
from cachesim.cli import cli
from cachesim.analysis.profile import (PLOT_FILES, analyze, coverage, log2_bins, reuse_times,
                                      zipf_fit)
from cachesim.synth.generate import generate
from tests import naive


@given(st.lists(st.integers(0, 20), min_size=1, max_size=300))
def test_reuse_times_match_naive(keys):
    tr = cachesim.Trace.from_keys(keys)
    assert reuse_times(tr.dense_ids, tr.n_distinct).tolist() == naive.reuse_times(keys)


def _naive_log2_hist(values):
    hist = {}
    for v in values:
        if v > 0:
            b = int(math.floor(math.log2(v)))
            hist[b] = hist.get(b, 0) + 1
    n_bins = max(hist) + 1 if hist else 0
    return [hist.get(b, 0) for b in range(n_bins)]


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 15)), min_size=1, max_size=200))
def test_histograms_match_naive(pairs):
    table = [t for t, _ in pairs]
    row = [r for _, r in pairs]
    tr = cachesim.Trace(table=table, row=row, table_rows=[16, 16, 16])
    res = analyze(tr)
    keys = tr.keys.tolist()
    assert res["reuse_time"]["counts"] == _naive_log2_hist(naive.reuse_times(keys))
    depth = [d + 1 for d in naive.stack_distances(keys)]
    assert res["stack_depth"]["counts"] == _naive_log2_hist(depth)
    # per table: the same histograms restricted to the table's accesses (same bins)
    for t in range(3):
        want = _naive_log2_hist([r for r, tt in zip(naive.reuse_times(keys), table) if tt == t])
        got = res["tables"][t]["reuse_time"]["counts"]
        assert got[:len(want)] == want and not any(got[len(want):])
    assert res["accesses"] == len(keys) and res["distinct"] == len(set(keys))
    assert [t["distinct"] for t in res["tables"]] == [len({r for r, tt in zip(row, table)
                                                           if tt == t}) for t in range(3)]


def test_log2_bins_edges():
    counts, lo = log2_bins(np.array([1, 2, 3, 4, 7, 8, 0, -1]))
    assert lo == [1, 2, 4, 8] and counts.tolist() == [[1, 2, 2, 1]]


@pytest.mark.parametrize("alpha", [0.8, 1.0, 1.2])
def test_zipf_fit_recovers_exponent(alpha):
    tr = generate(1_000_000, tables=1, rows=100_000, alpha=alpha, seed=7)
    fit = analyze(tr)["zipf"]
    assert abs(fit["alpha"] - alpha) < 0.05, fit
    assert fit["r2"] > 0.95


def test_zipf_fit_exact_power_law():
    counts = np.round(1e6 * np.arange(1, 200, dtype=float) ** -1.3)
    fit = zipf_fit(counts)
    assert abs(fit["alpha"] - 1.3) < 1e-3 and fit["r2"] > 0.9999
    assert fit["rank_max"] == int((counts >= 20).sum())


def test_coverage_matches_numpy():
    tr = generate(50_000, tables=3, rows=[1000, 5000, 20000], alpha=[1.2, 0.9, 0.7],
                  batch_size=500, seed=3)
    res = analyze(tr)

    def direct(keys):
        _, c = np.unique(keys, return_counts=True)
        c = np.sort(c)[::-1]
        return [c[:max(1, math.ceil(s * c.size))].sum() / c.sum()
                for s in (0.001, 0.01, 0.05, 0.1)]

    assert list(res["coverage"].values()) == pytest.approx(direct(tr.keys), abs=1e-12)
    for t in range(3):
        got = list(res["tables"][t]["coverage"].values())
        assert got == pytest.approx(direct(tr.row[tr.table == t]), abs=1e-12)
    assert list(res["coverage"]) == ["top 0.1%", "top 1%", "top 5%", "top 10%"]


def test_batches_working_set_and_drift_by_hand():
    # windows of 4 accesses: {1,1,2,3} {1,2,2,4} {5,5,6,6}
    keys = [1, 1, 2, 3, 1, 2, 2, 4, 5, 5, 6, 6]
    tr = cachesim.Trace.from_keys(keys, batch=[0] * 4 + [1] * 4 + [2] * 4)
    res = analyze(tr, top_k=2)
    ws = res["working_set"]
    assert ws["window"] == "batch"
    assert ws["accesses"] == [4, 4, 4] and ws["distinct"] == [3, 3, 2]
    # top-2: {1, 2} (2 ties with 3: lower dense id), {2, 1}, {5, 6}
    assert ws["jaccard"] == [1.0, 0.0]
    assert ws["share"] == [3 / 4, 0.0]
    assert res["batches"] == {"count": 3, "accesses": {"mean": 4.0, "min": 4, "max": 4},
                              "distinct": {"mean": 8 / 3, "min": 2, "max": 3}}
    by_n = analyze(tr, window=6, top_k=1)["working_set"]
    assert by_n["window"] == "6 accesses" and by_n["distinct"] == [3, 4]


def test_result_is_json_safe_and_names_the_fit_range():
    tr = generate(2000, tables=2, rows=500, batch_size=100, seed=1)
    res = analyze(tr)
    assert json.loads(json.dumps(res)) == res
    assert "ranks 1.." in res["zipf"]["note"]


def test_cli_summary_json_and_plots(tmp_path):
    tr = generate(3000, tables=3, rows=2000, alpha=1.1, batch_size=200, seed=2)
    path = tmp_path / "t.parquet"
    cachesim.io.write_trace(tr, path)
    runner = CliRunner()
    out = runner.invoke(cli, ["analyze", str(path)])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == f"trace: {path}"
    assert lines[1].startswith(f"accesses 9,000   distinct rows {tr.n_distinct:,}   tables 3")
    assert lines[2].startswith("batches 15: accesses per batch mean 600.0 (min 600, max 600)")
    assert lines[-4].split() == ["table", "rows", "accesses", "distinct", "compulsory", "alpha",
                                 "R^2", "top", "1%"]
    out = runner.invoke(cli, ["analyze", str(path), "--json", "--plots", str(tmp_path / "p")])
    assert out.exit_code == 0, out.output
    res = json.loads(out.output)
    assert res["accesses"] == 9000 and len(res["tables"]) == 3
    for name in PLOT_FILES:
        png = (tmp_path / "p" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == sorted([".cachesim", *PLOT_FILES])


def test_cli_errors(tmp_path):
    runner = CliRunner()
    out = runner.invoke(cli, ["analyze", str(tmp_path / "missing.parquet")])
    assert out.exit_code == 2 and "no such file" in out.output


def test_coverage_function_small():
    assert coverage([5, 3, 1, 1], shares=(0.25, 0.5)) == {"top 25%": 0.5, "top 50%": 0.8}
