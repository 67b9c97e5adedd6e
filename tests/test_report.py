"""`cachesim report`: files, numbers traceable to results.json, a real browser, bad input."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.errors import CachesimError
from cachesim.reports.report import ReportOptions, build_report, fingerprint
from cachesim.simulate.batch import replay_batch

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
    # sections numbered as shown: without --train there is no Accuracy, and no gap for it
    heads = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert heads == ["Recommendation", "1. Trace", "2. Hit ratio vs cache size", "3. Transfers",
                     "4. Memory", "5. Per-table allocation", "How this report was made"], heads


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
    # it is the cheapest configuration meeting the target, worked out here from an independent
    # replay of each configuration and the memory it adds up to
    assert rec["target_hit_ratio"] == SMALL.target_hit_ratio
    meeting = []
    for i, r in enumerate(res["sweep"]):
        hit = replay_batch(small_trace, r["policy"], r["size"], ways=r["ways"]).hit_ratio
        assert r["hit_ratio"] == pytest.approx(hit)
        assert r["total_bytes"] == r["store_bytes"] + r["cache_bytes"] + r["metadata_bytes"]
        if hit >= SMALL.target_hit_ratio:
            meeting.append((r["total_bytes"], i))
    assert best["index"] == min(meeting)[1]
    # the target decides: the cheapest of all misses it, the best hit ratio costs more
    assert min(r["total_bytes"] for r in res["sweep"]) < best["total_bytes"]
    assert max(r["hit_ratio"] for r in res["sweep"]) > best["hit_ratio"]
    html = (report_dir / "report.html").read_text()
    assert f"sweep[{best['index']}]" in html


def test_results_parquet_holds_every_number(report_dir):
    import polars as pl
    res = json.loads((report_dir / "results.json").read_text())
    tab = pl.read_parquet(report_dir / "results.parquet")
    got = tab.filter((pl.col("section") == "recommendation")
                     & (pl.col("path") == "best.total_bytes"))
    assert got.height == 1 and got["value"][0] == res["recommendation"]["best"]["total_bytes"]
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
    from cachesim.io.tabular import write_trace
    write_trace(small_trace, trace_file)
    runner = CliRunner()
    out = tmp_path / "rep"
    for args, needle in (
            (["--from", str(tmp_path / "missing.json")], "no such file"),
            (["--budget", "100B"], "below the smallest cache"),
            (["--target-hit-ratio", "1.5"], "between 0 and 1")):
        r = runner.invoke(cli, ["report", str(trace_file), "-o", str(out), "-q", "--size",
                                "1%,5%", "--precision", "fp32,int8", "--jobs", "1", *args])
        assert r.exit_code == 2, r.output
        assert needle in r.output
        assert "Traceback" not in r.output
        assert not out.exists()


def test_interrupted_render_leaves_old_report_intact(small_trace, tmp_path, monkeypatch):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.html").write_text("old")
    (out / ".cachesim").write_text(json.dumps({"written_by": "cachesim",  # an earlier report
                                               "files": ["report.html"]}))
    from cachesim.reports import figures

    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(figures, "memory", boom)
    with pytest.raises(KeyboardInterrupt):
        build_report(small_trace, out, SMALL)
    assert (out / "report.html").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]
    assert sorted(p.name for p in out.iterdir()) == [".cachesim", "report.html"]  # no staging


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


# -- what the plots and sections say agrees with what they draw and with the recommendation -----
def _results(report_dir):
    return json.loads((report_dir / "results.json").read_text())


def _labels(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


def test_hit_ratio_plot_draws_the_batch_hit_ratio_the_recommendation_uses(report_dir):
    from cachesim.reports import figures
    res = _results(report_dir)
    best = res["recommendation"]["best"]
    fig = figures.hit_ratio_figure(res, res["meta"], SMALL)
    top, bottom = fig.axes[:2]
    line = next(ln for lab, ln in _labels(top).items() if best["policy"].upper() in lab.split(" = "))
    rows = sorted((r["cache_lines"], r["hit_ratio"]) for r in res["sweep"]
                  if r["policy"] == best["policy"] and r["precision"] == best["precision"])
    assert list(line.get_xdata()) == [x for x, _ in rows]
    assert list(line.get_ydata()) == pytest.approx([y for _, y in rows])
    # the recommended point sits on that curve at the recommendation's hit ratio
    star = next(ln for lab, ln in _labels(top).items() if lab.startswith("recommended"))
    assert star.get_ydata()[0] == pytest.approx(best["hit_ratio"])
    # the target is drawn against the batch curves only, not against the per-access ones
    assert any(lab.startswith("target") for lab in _labels(top))
    assert not any(lab.startswith("target") for lab in _labels(bottom))
    assert {"LRU", "FIFO"} <= set(_labels(bottom))


def test_coinciding_curves_are_named_together(report_dir):
    from cachesim.reports import figures
    res = _results(report_dir)
    res["curves"] += [{**r, "policy": "sieve"} for r in res["curves"] if r["policy"] == "fifo"]
    fig = figures.hit_ratio_figure(res, res["meta"], SMALL)
    labels = set(_labels(fig.axes[1]))
    assert "FIFO = SIEVE" in labels and "SIEVE" not in labels
    assert "FIFO = SIEVE" in figures.hit_ratio_caption(res, res["meta"])
    groups = figures.coincident_groups({"a": ([1, 2], [0.5, 0.6]), "b": ([1, 2], [0.5, 0.6 + 1e-12]),
                                        "c": ([1, 2], [0.5, 0.61])})
    assert groups == [["a", "b"], ["c"]]
    assert figures.near_groups({"a": ([1, 2], [0.5, 0.6]), "c": ([1, 2], [0.5, 0.605]),
                                "d": ([1, 2], [0.5, 0.7])}) == [["a", "c"]]


def _tick_texts(fig):
    fig.canvas.draw()
    axes = list(fig.axes)
    axes += [c for ax in fig.axes for c in ax.child_axes]
    texts = []
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            texts += [t.get_text() for t in axis.get_ticklabels(which="both") if t.get_visible()]
    return [t for t in texts if t]


def test_tick_labels_read_without_exponents(report_dir):
    from cachesim.reports import figures
    res = _results(report_dir)
    for fig in (figures.hit_ratio_figure(res, res["meta"], SMALL),
                figures.transfers_figure(res, res["meta"])):
        texts = _tick_texts(fig)
        assert texts
        for t in texts:
            assert "^" not in t and "times" not in t and "\u2212" not in t, t
    hit = _tick_texts(figures.hit_ratio_figure(res, res["meta"], SMALL))
    assert "40%" in hit and any(t.startswith("1%\n") for t in hit)
    assert any("KiB" in t for t in hit)
    tr = _tick_texts(figures.transfers_figure(res, res["meta"]))
    assert any(t.endswith(" µs") or t.endswith(" ns") or t.endswith(" ms") for t in tr)


def test_captions_name_the_line_styles_the_figures_draw(report_dir):
    from cachesim.reports import figures
    res = _results(report_dir)
    st = figures.LINE_STYLES
    fig = figures.hit_ratio_figure(res, res["meta"], SMALL)
    top, bottom = (_labels(ax) for ax in fig.axes[:2])
    opt = next(ln for lab, ln in bottom.items() if lab.startswith("OPT"))
    target = next(ln for lab, ln in top.items() if lab.startswith("target"))
    assert opt.get_linestyle() == st["opt"] == "--"
    assert target.get_linestyle() == st["target"] == ":"
    cap = figures.hit_ratio_caption(res, res["meta"])
    assert f"the {figures.style_word('target')} line is the target" in cap
    assert f"OPT {figures.style_word('opt')}" in cap
    fig = figures.transfers_figure(res, res["meta"])
    lines = _labels(fig.axes[0])
    styles = figures.transfer_styles(res)
    cap = figures.transfers_caption(res)
    for pol, style in styles.items():
        drawn = [ln for lab, ln in lines.items() if lab.endswith(f" {pol.upper()}")]
        assert drawn and all(ln.get_linestyle() == style for ln in drawn)
        assert f"{pol.upper()} {figures.style_word(style)}" in cap
    no_cache = [ln for lab, ln in lines.items() if lab.endswith("no cache")]
    assert no_cache and all(ln.get_linestyle() == st["no_cache"] for ln in no_cache)
    assert f"the {figures.style_word('no_cache')} horizontal lines are no cache" in cap


def _section_rows(html_text, section):
    from cachesim.reports.browser import report_tables
    head, *rows = report_tables(html_text)[section][0]
    return [dict(zip(head, r)) for r in rows]


def test_memory_section_shows_the_recommendation_with_its_numbers(report_dir):
    res = _results(report_dir)
    rec = res["recommendation"]
    html = (report_dir / "report.html").read_text()
    box = {r[""]: r for r in _section_rows(html, "summary")}
    mem = {r[""]: r for r in _section_rows(html, "memory")}
    for role in ("recommended", "runner-up"):
        for col in ("policy", "size", "ways", "precision", "hit ratio", "memory", "device",
                    "vs FP32", "results.json"):
            assert mem[role][col] == box[role][col], (role, col)
    best = rec["best"]
    from cachesim.sizes import format_bytes
    assert mem["recommended"]["memory"] == format_bytes(best["total_bytes"])
    assert mem["recommended"]["policy"] == best["policy"]
    row = res["sweep"][best["index"]]
    assert mem["recommended"]["tags+policy state"] == format_bytes(row["metadata_bytes"])


def test_allocation_splits_the_recommended_cache(report_dir):
    res = _results(report_dir)
    best = res["recommendation"]["best"]
    assert res["allocation"]["budget_bytes"] == res["sweep"][best["index"]]["cache_bytes"]
    assert best["policy"].upper() in res["allocation"]["budget_source"]


def test_command_line_is_recorded_from_the_cli(small_trace, tmp_path):
    from cachesim.io.tabular import write_trace
    trace_file = tmp_path / "t.parquet"
    write_trace(small_trace, trace_file)
    out = tmp_path / "rep"
    args = ["report", str(trace_file), "-o", str(out), "-q", "--size", "1%,5%", "--precision",
            "fp32,int8", "--jobs", "1", "--target-hit-ratio", "0.3"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    import shlex
    command = json.loads((out / "results.json").read_text())["meta"]["command"]
    assert command == shlex.join(["cachesim", *args])
    assert f"Command: {command}" in (out / "report.md").read_text()


def _train_rows(diffs, base=(0.62, 0.68, 0.65), precision="int4", size="5%", policy="lru",
                test=912):
    rows = [{"precision": "fp32", "size": "all", "policy": "none", "seed": s, "auc": a,
             "logloss": 0.5, "test_samples": test, "accuracy": 0.77} for s, a in enumerate(base)]
    rows += [{"precision": precision, "size": size, "policy": policy, "seed": s,
              "auc": base[s] + d, "logloss": 0.5, "test_samples": test, "accuracy": 0.77}
             for s, d in enumerate(diffs)]
    return rows


def test_accuracy_is_held_only_beyond_the_seed_noise():
    from cachesim.reports.report import _accuracy_rows, auc_comparison, recommend
    held = auc_comparison(_train_rows([0.0005, 0.0004, 0.0006]), "int4", "5%", "lru")
    assert held["verdict"] == "held" and held["diff_mean"] == pytest.approx(0.0005)
    # mean inside the band, but the seeds disagree by more than the band: cannot tell
    noisy = auc_comparison(_train_rows([0.004, -0.003, 0.001]), "int4", "5%", "lru")
    assert noisy["verdict"] == "not distinguishable"
    assert "not distinguishable at this sample size" in noisy["text"]
    assert "912 test samples" in noisy["text"]
    assert f"seed spread {np.std([0.004, -0.003, 0.001], ddof=1):.4f}" in noisy["text"]
    lost = auc_comparison(_train_rows([-0.010, -0.011, -0.012]), "int4", "5%", "lru")
    assert lost["verdict"] == "lost"
    one = auc_comparison(_train_rows([0.0001]), "int4", "5%", "lru")
    assert one["verdict"] == "not distinguishable"
    assert auc_comparison(None, "int4", "5%", "lru")["verdict"] == "not measured"
    # a configuration shown to lose accuracy is not recommended; one that cannot be told is,
    # with a note that says so
    sweep = [{"policy": "lru", "size": "5%", "ways": 32, "precision": p, "hit_ratio": 0.6,
              "total_bytes": t, "cache_bytes": 10, "metadata_bytes": 1, "cache_lines": 1,
              "store_bytes": t - 11, "ratio_vs_fp32": 1.0} for p, t in (("int4", 100), ("int8", 200))]
    rec = recommend({"sweep": sweep, "training": _train_rows([-0.010, -0.011, -0.012])}, 0.5, None)
    assert rec["best"]["precision"] == "int8"
    rec = recommend({"sweep": sweep, "training": _train_rows([0.004, -0.003, 0.001])}, 0.5, None)
    assert rec["best"]["precision"] == "int4"
    assert any("not distinguishable" in n for n in rec["notes"])
    table = _accuracy_rows(_train_rows([0.004, -0.003, 0.001]))
    assert [r[7] for r in table] == ["baseline", "not distinguishable"]
    assert all(0.77 not in r and "77.0%" not in r for r in table)  # no majority-class column


def test_a_curve_given_as_results_is_one_line_and_no_report(small_trace, tmp_path):
    """`--from` an mrc curve (it has hit_ratio, not a sweep's costs) was a KeyError."""
    import polars as pl
    curve = tmp_path / "m.csv"
    pl.DataFrame({"size": [1, 2], "miss_ratio": [0.9, 0.8], "hit_ratio": [0.1, 0.2]}
                 ).write_csv(curve)
    with pytest.raises(CachesimError, match=r"^--from .*m\.csv: not a `cachesim sweep -o` "
                                            r"table \(no policy, cache_bytes, metadata_bytes"):
        build_report(small_trace, tmp_path / "x", SMALL, from_results=curve)
    assert not (tmp_path / "x").exists()


def test_a_loaded_sweep_is_described_by_its_own_cache(small_trace, tmp_path):
    """`--from` an ideal-cache sweep of several ways: a report of the fbgemm model is refused
    (its curves would be another cache's), and one of the ideal model describes the
    recommendation by its own row's ways, not the report's 32."""
    import dataclasses
    from cachesim.sweep import run_sweep
    sweep = tmp_path / "ideal.parquet"
    run_sweep(small_trace, ["lru", "lfu"], ["5%", "20%"], ways=[8, None], precisions=["int8"],
              mode="batch", jobs=1, cache_model="ideal").table.write_parquet(sweep)
    with pytest.raises(CachesimError, match=r"replayed by the ideal cache model, and this report "
                                            r"replays fbgemm; pass --cache-model ideal"):
        build_report(small_trace, tmp_path / "x", SMALL, from_results=sweep)
    out = tmp_path / "r"
    build_report(small_trace, out, dataclasses.replace(SMALL, cache_model="ideal"),
                 from_results=sweep)
    res = json.loads((out / "results.json").read_text())
    best = res["recommendation"]["best"]
    row = res["sweep"][best["index"]]
    assert row["cache_model"] == "ideal" and best["ways"] == row["ways"]
    md = (out / "report.md").read_text()
    summary = next(line for line in md.splitlines() if line.startswith("Use a"))
    words = "fully associative" if row["ways"] is None else f"{row['ways']}-way set-associative"
    assert f"Cache: {words}," in summary and "32-way" not in summary
    assert "each row's ways (8-way set-associative, fully associative)" in md
