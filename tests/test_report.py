"""`cachesim report`: files, numbers traceable to results.json, a real browser, bad input."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.errors import CachesimError
from cachesim.reports.report import ReportOptions, build_report, fingerprint

SMALL = ReportOptions(fractions=(0.01, 0.05, 0.2), precisions=("fp32", "int8", "int4"),
                      curve_policies=("lru", "fifo"), jobs=1, target_hit_ratio=0.5)


@pytest.fixture(scope="module")
def small_trace():
    """Three tables, batched, Zipf-like popularity: small enough to report in seconds."""
    rng = np.random.default_rng(7)
    n = 6000
    table = rng.integers(0, 3, n)
    rows = np.array([500, 2000, 50])
    row = np.minimum((rng.zipf(1.3, n) - 1), rows[table] - 1)
    tr = cachesim.Trace(table=table, row=row, batch=np.arange(n) // 300, table_rows=rows,
                        table_names=["a", "b", "c"], source="small-zipf")
    return tr


@pytest.fixture(scope="module")
def report_dir(small_trace, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "report"
    build_report(small_trace, out, SMALL)
    return out


def test_writes_every_file(report_dir):
    names = {p.name for p in report_dir.iterdir()}
    assert {"report.html", "report.md", "results.json", "results.parquet", "hit_ratio.png",
            "transfers.png", "memory.png", "rank_frequency.png", "allocation.png"} <= names
    md = (report_dir / "report.md").read_text()
    for png in ("hit_ratio.png", "memory.png", "transfers.png"):
        assert f"]({png})" in md


def test_recommendation_traces_to_results(report_dir, small_trace):
    res = json.loads((report_dir / "results.json").read_text())
    assert res["meta"]["fingerprint"] == fingerprint(small_trace)
    rec = res["recommendation"]
    best = rec["best"]
    row = res["sweep"][best["index"]]
    assert (row["policy"], row["size"], row["precision"]) == (best["policy"], best["size"],
                                                              best["precision"])
    assert row["hit_ratio"] == pytest.approx(best["hit_ratio"])
    assert row["total_bytes"] == best["total_bytes"]
    # it is the cheapest configuration meeting the target
    meeting = [r for r in res["sweep"] if r["hit_ratio"] >= rec["target_hit_ratio"]]
    assert best["total_bytes"] == min(r["total_bytes"] for r in meeting)
    html = (report_dir / "report.html").read_text()
    assert f"sweep[{best['index']}]" in html


def test_results_parquet_holds_every_number(report_dir):
    import polars as pl
    res = json.loads((report_dir / "results.json").read_text())
    tab = pl.read_parquet(report_dir / "results.parquet")
    got = tab.filter(pl.col("path") == "recommendation" + ".best.total_bytes") if False else \
        tab.filter((pl.col("section") == "recommendation") & (pl.col("path") == "best.total_bytes"))
    assert got["value"][0] == res["recommendation"]["best"]["total_bytes"]
    assert tab.filter(pl.col("section") == "sweep").height > 0


def test_page_loads_in_a_real_browser(report_dir):
    from cachesim.reports.browser import check_in_browser, find_chromium
    if find_chromium() is None:
        pytest.skip("chromium is not installed and `make test` could not install it "
                    "(apt-get install chromium)")
    seen = check_in_browser(report_dir / "report.html")
    assert seen["images"] >= 5
    assert seen["loaded"] == seen["images"]
    for key in ("summary", "trace", "curves", "transfers", "memory", "allocation", "provenance"):
        assert key in seen["sections"]


def test_from_saved_results_rerenders_same_recommendation(report_dir, small_trace, tmp_path):
    out = tmp_path / "again"
    build_report(small_trace, out, SMALL, from_results=report_dir / "results.json")
    a = json.loads((report_dir / "results.json").read_text())["recommendation"]
    b = json.loads((out / "results.json").read_text())["recommendation"]
    assert a == b


def test_results_from_another_trace_are_refused(report_dir, small_trace, tmp_path):
    other = small_trace.slice(0, 3000)
    with pytest.raises(CachesimError, match="another trace"):
        build_report(other, tmp_path / "x", SMALL, from_results=report_dir / "results.json")
    assert not (tmp_path / "x").exists()


def test_bad_input_gives_one_line_and_no_report(tmp_path, small_trace):
    trace_file = tmp_path / "t.parquet"
    from cachesim.traces.tabular import write_trace
    write_trace(small_trace, trace_file)
    runner = CliRunner()
    out = tmp_path / "rep"
    for args, needle in (
            (["--from", str(tmp_path / "missing.json")], "no such file"),
            (["--budget", "100B"], "below the smallest cache"),
            (["--target-hit-ratio", "1.5"], "between 0 and 1")):
        r = runner.invoke(cli, ["report", str(trace_file), "-o", str(out), "-q", "--sizes",
                                "1%,5%", "--precision", "fp32,int8", "--jobs", "1", *args])
        assert r.exit_code == 2, r.output
        assert needle in r.output
        assert "Traceback" not in r.output
        assert not out.exists()


def test_interrupted_render_leaves_old_report_intact(small_trace, tmp_path, monkeypatch):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.html").write_text("old")
    from cachesim.reports import figures

    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(figures, "memory", boom)
    with pytest.raises(KeyboardInterrupt):
        build_report(small_trace, out, SMALL)
    assert (out / "report.html").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]


def test_training_results_from_another_trace_are_refused(small_trace, tmp_path):
    from cachesim.executor import train
    from cachesim.executor.train import write_results
    other = small_trace.slice(0, 3000)
    recs = train(other, precision=["int8"], size=["5%"], policy=["lru"], model="small",
                 baselines=False, progress=False)
    write_results(recs, tmp_path / "train.parquet")
    with pytest.raises(CachesimError, match="another trace"):
        build_report(small_trace, tmp_path / "x", SMALL, from_results=tmp_path / "train.parquet")
    assert not (tmp_path / "x").exists()
