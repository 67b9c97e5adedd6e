"""Output folders and files: cachesim never deletes or overwrites what it did not write, replaces
its own earlier output, handles `-o .`, and keeps the user's umask."""
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.errors import CachesimError
from cachesim.files import MARKER
from cachesim.reports.report import ReportOptions, build_report

SMALL = ReportOptions(fractions=(0.01, 0.05), precisions=("fp32", "int8"),
                      curve_policies=("lru",), policies=("lru",), jobs=1,
                      target_hit_ratio=0.5)
SMALL_ARGS = ["-q", "--size", "1%,5%", "--precision", "fp32,int8", "-p", "lru", "--jobs", "1"]


@pytest.fixture(scope="module")
def trace():
    rng = np.random.default_rng(3)
    n = 3000
    table = rng.integers(0, 2, n)
    rows = np.array([400, 900])
    row = np.minimum(rng.zipf(1.3, n) - 1, rows[table] - 1)
    return cachesim.Trace(table=table, row=row, batch=np.arange(n) // 200, table_rows=rows,
                          table_names=["a", "b"], source="tiny-zipf")


@pytest.fixture(scope="module")
def trace_file(trace, tmp_path_factory):
    from cachesim.io.tabular import write_trace
    path = tmp_path_factory.mktemp("trace") / "t.parquet"
    write_trace(trace, path)
    return path


@pytest.fixture
def umask_022():
    import cachesim.files as files
    old = os.umask(0o022)
    files._UMASK = None
    yield
    os.umask(old)
    files._UMASK = None


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="cachesim")


def user_folder(path: Path) -> Path:
    """A folder of the user's: a file and a subfolder with a file."""
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("1,2\n")
    return path


def assert_user_files_intact(path: Path):
    assert (path / "notes.txt").read_text() == "mine"
    assert (path / "sub" / "data.csv").read_text() == "1,2\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- report --------------------------------------------------------------------------------------
def test_report_refuses_a_users_folder_and_leaves_it_untouched(trace_file, tmp_path):
    out = user_folder(tmp_path / "results")
    before = sorted(p.name for p in out.rglob("*"))
    r = invoke("report", trace_file, "-o", out, *SMALL_ARGS)
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.output
    assert f"-o {out}: folder is not empty and was not written by cachesim" in r.stderr
    assert "--force" in r.stderr
    assert_user_files_intact(out)
    assert sorted(p.name for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no staging left


def test_report_with_force_writes_beside_the_users_files(trace_file, tmp_path):
    out = user_folder(tmp_path / "results")
    r = invoke("report", trace_file, "-o", out, "--force", *SMALL_ARGS)
    assert r.exit_code == 0, r.output
    assert_user_files_intact(out)
    assert (out / "report.html").is_file() and (out / "results.json").is_file()
    marker = json.loads((out / MARKER).read_text())
    assert "report.html" in marker["files"] and "notes.txt" not in marker["files"]


def test_force_never_overwrites_a_users_file_of_the_same_name(tmp_path):
    from cachesim.files import output_dir
    out = tmp_path / "results"
    out.mkdir()
    (out / "report.html").write_text("my own page")
    with pytest.raises(CachesimError, match="report.html in it was not written by cachesim"):
        with output_dir(out, "-o", force=True, command="report") as staging:
            (staging / "report.html").write_text("ours")
            (staging / "report.md").write_text("ours")
    assert (out / "report.html").read_text() == "my own page"
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]


def test_own_files_no_longer_written_are_removed_others_kept(tmp_path):
    from cachesim.files import output_dir
    out = tmp_path / "plots"
    with output_dir(out, command="analyze") as staging:
        (staging / "a.png").write_text("1")
        (staging / "b.png").write_text("1")
    (out / "c.png").write_text("mine")
    with output_dir(out, command="analyze") as staging:
        (staging / "a.png").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.png", "c.png"]
    assert (out / "a.png").read_text() == "2"


def test_a_file_changed_since_cachesim_wrote_it_is_the_users(tmp_path):
    """In a folder of cachesim's, a file the user replaced or edited since cachesim wrote it is
    theirs: a rerun that would overwrite it is refused, one that no longer writes it keeps it
    (both once replaced or deleted it, as the marker still named it)."""
    from cachesim.files import output_dir
    out = tmp_path / "plots"
    with output_dir(out, command="analyze") as staging:
        for name in ("a.png", "b.png", "c.png"):
            (staging / name).write_text("cachesim's")
    (out / "a.png").unlink()
    (out / "a.png").write_text("mine")          # replaced
    with open(out / "b.png", "a") as f:         # edited
        f.write(" and mine")
    for name in ("a.png", "b.png"):
        with pytest.raises(CachesimError, match=f"{name} in it changed since cachesim wrote it"):
            with output_dir(out, command="analyze") as staging:
                (staging / name).write_text("new")
    with output_dir(out, command="analyze") as staging:  # writes c only: a and b are stale
        (staging / "c.png").write_text("new")
    assert (out / "a.png").read_text() == "mine" and (out / "b.png").read_text().endswith("mine")
    assert (out / "c.png").read_text() == "new"
    with output_dir(out, command="analyze") as staging:  # now no longer ours: c is replaced
        (staging / "c.png").write_text("newer")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.png", "b.png", "c.png"]


def test_analyze_refuses_to_replace_a_plot_the_user_replaced(trace_file, tmp_path):
    out = tmp_path / "plots"
    assert invoke("analyze", trace_file, "--plots", out).exit_code == 0
    (out / "reuse_time.png").unlink()
    (out / "reuse_time.png").write_text("mine too")
    r = invoke("analyze", trace_file, "--plots", out)
    assert r.exit_code == 2 and "reuse_time.png in it changed since cachesim wrote it" in \
        r.stderr, r.output
    assert (out / "reuse_time.png").read_text() == "mine too"


def test_write_trace_never_replaces_a_users_file_unless_told(trace, tmp_path):
    from cachesim.io import read_trace, write_trace
    mine = tmp_path / "mine.parquet"
    mine.write_text("mine")
    with pytest.raises(CachesimError, match="exists and cachesim did not write it.*"
                                            "overwrite=True"):
        write_trace(trace, mine)
    assert mine.read_text() == "mine"
    write_trace(trace, mine, overwrite=True)  # asked for
    assert read_trace(mine) == trace
    write_trace(trace.slice(0, 10), mine)  # now cachesim's, unchanged: replaced as any output
    assert len(read_trace(mine)) == 10


def test_a_report_folder_from_before_the_marker_is_ours(tmp_path):
    from cachesim.files import output_dir
    out = tmp_path / "old-report"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(
        {"meta": {"cachesim_version": "0.1", "created": "2026-06-01T10:00:00"}}))
    (out / "report.html").write_text("<h1>cachesim report</h1><p class='meta'>cachesim 0.1, "
                                     "2026-06-01T10:00:00, 3.2 s</p>")
    (out / "notes.txt").write_text("mine")
    (out / "my_plot.png").write_text("mine")  # a PNG beside an old report is not ours
    with output_dir(out, command="report") as staging:
        (staging / "report.html").write_text("new")
        (staging / "results.json").write_text("{}")
    assert (out / "report.html").read_text() == "new"
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "my_plot.png").read_text() == "mine"


def test_a_users_report_md_beside_an_old_report_is_not_taken_for_ours(tmp_path):
    """B2: an old report's results.json copied into a folder of the user's, which holds their
    own report.md: the report is refused before any work, and nothing of theirs changes."""
    out = tmp_path / "analysis"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(
        {"meta": {"cachesim_version": "0.1", "created": "2026-06-01T10:00:00"}}))
    (out / "report.md").write_text("# my own notes on the cache\n")
    from cachesim.files import check_output_dir, REPORT_FILES
    with pytest.raises(CachesimError, match="report.md"):
        check_output_dir(out, names=REPORT_FILES, command="report")
    assert (out / "report.md").read_text() == "# my own notes on the cache\n"


def test_another_commands_files_in_the_folder_are_kept(tmp_path):
    """A report and analyze's plots in one folder: each command's rerun removes only its own
    earlier files."""
    from cachesim.files import output_dir
    out = tmp_path / "shared"
    with output_dir(out, command="report") as staging:
        (staging / "report.html").write_text("r")
        (staging / "results.json").write_text("{}")
    with pytest.raises(CachesimError, match="report.html in it belongs to `cachesim report`"):
        with output_dir(out, command="analyze") as staging:
            (staging / "report.html").write_text("not the report")
    assert (out / "report.html").read_text() == "r"
    with output_dir(out, command="analyze") as staging:
        (staging / "a.png").write_text("1")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.png", "report.html",
                                                     "results.json"]
    with output_dir(out, command="analyze") as staging:
        (staging / "b.png").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "b.png", "report.html",
                                                     "results.json"]
    with output_dir(out, command="report") as staging:
        (staging / "report.html").write_text("r2")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "b.png", "report.html"]
    marker = json.loads((out / MARKER).read_text())
    assert marker["by_command"] == {"analyze": ["b.png"], "report": ["report.html"]}
    assert marker["files"] == ["b.png", "report.html"]


def test_analyze_plots_into_a_report_folder_keep_the_report(trace_file, tmp_path):
    """Both write rank_frequency.png: analyze refuses rather than change the report's figure."""
    out = tmp_path / "rep"
    assert invoke("report", trace_file, "-o", out, "-p", "lru", "-s", "1%,5%").exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = invoke("analyze", trace_file, "--plots", out)
    assert res.exit_code == 2
    assert ("rank_frequency.png in it belongs to `cachesim report`'s output, which this would "
            "change; choose another path") in res.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("command", [("sweep", "{t}", "-s", "5%", "-q", "-o", "{t}"),
                                     ("convert", "{t}", "{t}"),
                                     ("mrc", "{t}", "-o", "{t}"),
                                     ("convert", "{d}", "{d}/all.parquet")])
def test_an_output_at_the_input_trace_is_refused_and_the_trace_kept(trace_file, tmp_path,
                                                                     command):
    import shutil
    t = tmp_path / "t.parquet"
    shutil.copy(trace_file, t)
    d = tmp_path / "folder.parquet.d"
    d.mkdir()
    shutil.copy(trace_file, d / "part-0.parquet")
    before = t.read_bytes(), sorted(os.listdir(d))
    res = invoke(*[a.format(t=t, d=d) for a in command])
    assert res.exit_code == 2
    assert "the input trace" in res.output and "choose another path" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert (t.read_bytes(), sorted(os.listdir(d))) == before


def test_rerun_replaces_its_own_report_and_keeps_files_the_user_added(trace, tmp_path,
                                                                      umask_022):
    out = tmp_path / "report"
    build_report(trace, out, SMALL)
    assert (out / MARKER).is_file()
    assert mode(out) == 0o755  # the umask's modes, not mkdtemp's 0700 and mkstemp's 0600
    files = list(out.iterdir())
    assert all(mode(p) == 0o644 for p in files), {p.name: oct(mode(p)) for p in files}
    first = (out / "report.html").stat().st_ino
    (out / "notes.txt").write_text("mine")  # the user adds a file to the report's folder
    build_report(trace, out, SMALL)
    assert (out / "report.html").stat().st_ino != first  # replaced by the new one
    assert (out / "report.html").read_text().startswith("<!")
    # (one the user edited since is theirs: test_a_file_changed_since_cachesim_wrote_it_...)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_report_into_the_current_folder(trace, tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    out = build_report(trace, ".", SMALL)
    assert (here / "report.html").is_file() and (here / MARKER).is_file()
    assert Path(out) == Path(".")
    assert not [p for p in here.iterdir() if p.name.startswith(".cachesim-tmp")]


# -- analyze --plots -----------------------------------------------------------------------------
def test_analyze_plots_follow_the_folder_rule(trace_file, tmp_path, umask_022):
    out = user_folder(tmp_path / "plots")
    r = invoke("analyze", trace_file, "--plots", out)
    assert r.exit_code == 2 and "not written by cachesim" in r.stderr, r.output
    assert_user_files_intact(out)
    assert not list(out.glob("*.png"))
    r = invoke("analyze", trace_file, "--plots", out, "--force")
    assert r.exit_code == 0, r.output
    assert_user_files_intact(out)
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["drift.png", "rank_frequency.png", "reuse_time.png",
                                      "stack_distance.png", "working_set.png"]
    assert all(mode(p) == 0o644 for p in pngs), [oct(mode(p)) for p in pngs]
    new = tmp_path / "new" / "plots"
    r = invoke("analyze", trace_file, "--plots", new)
    assert r.exit_code == 0, r.output
    assert mode(new) == 0o755 and all(mode(p) == 0o644 for p in new.iterdir())


# -- mrc --plot, sweep -o ------------------------------------------------------------------------
def test_mrc_plot_and_output_modes(trace_file, tmp_path, umask_022):
    r = invoke("mrc", trace_file, "-o", tmp_path / "m.csv", "--plot", tmp_path / "m.png")
    assert r.exit_code == 0, r.output
    assert mode(tmp_path / "m.csv") == 0o644 and mode(tmp_path / "m.png") == 0o644
    r = invoke("mrc", trace_file, "--plot", tmp_path)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1


def test_sweep_refuses_a_users_parts_folder(trace_file, tmp_path):
    out = tmp_path / "s.parquet"
    parts = user_folder(tmp_path / "s.parquet.parts")
    r = invoke("sweep", trace_file, "-s", "5%", "-p", "lru", "-j", "1", "-q", "-o", out)
    assert r.exit_code == 2 and "not written by a cachesim sweep" in r.stderr, r.output
    assert_user_files_intact(parts)
    assert not out.exists()


def test_sweep_fresh_removes_only_its_own_parts(trace, tmp_path, umask_022):
    from cachesim.sweep import run_sweep
    out = tmp_path / "s.parquet"
    run_sweep(trace, "lru", "5%,10%", out=out, jobs=1)
    parts = tmp_path / "s.parquet.parts"
    ours = sorted(p.name for p in parts.iterdir())
    assert "manifest.json" in ours and len(ours) == 3
    (parts / "notes.txt").write_text("mine")
    res = run_sweep(trace, "lru", "5%", out=out, jobs=1, fresh=True)
    assert res.reused == [] and len(res.ran) == 1
    assert (parts / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in parts.iterdir()) == sorted(
        ["manifest.json", "notes.txt", res.ran[0] + ".json"])
    assert mode(out) == 0o644 and all(mode(p) == 0o644 for p in parts.glob("*.json"))
    assert mode(parts) == 0o755


def test_sweep_output_checked_before_replaying(trace_file, tmp_path):
    r = invoke("sweep", trace_file, "-s", "5%", "-j", "1", "-q", "-o", tmp_path / "d.parquet",
               "-o", "/sys/cachesim-test.parquet")
    assert r.exit_code == 2 and "/sys/cachesim-test.parquet: cannot write" in r.stderr
    assert not Path("/sys/cachesim-test.parquet.parts").exists()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"cachesim": "0.2.0"}'])
def test_a_damaged_sweep_manifest_is_one_line_and_fresh_recovers(trace_file, tmp_path, text):
    out = tmp_path / "s.json"
    args = ("sweep", trace_file, "-p", "lru", "-s", "5%", "-q", "-j", "1", "-o", out)
    assert invoke(*args).exit_code == 0
    manifest = tmp_path / "s.json.parts" / "manifest.json"
    manifest.write_text(text)
    res = invoke(*args)
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert f"{manifest}: " in res.output and "--fresh" in res.output
    assert invoke(*args, "--fresh").exit_code == 0


# -- single files: only cachesim's own are replaced ----------------------------------------------
@pytest.mark.parametrize("command", [
    ["sweep", "{t}", "-s", "5%", "-p", "lru", "--jobs", "1", "-q", "-o", "{out}.parquet"],
    ["mrc", "{t}", "-s", "10,100", "-o", "{out}.csv"],
    ["convert", "{t}", "{out}.parquet"],
    ["generate", "{out}.parquet", "--samples", "50", "--tables", "2", "--rows", "100"],
    ["train", "{t}", "-s", "5%", "--precision", "int8", "--no-baselines", "-q",
     "-o", "{out}.json"],
], ids=lambda c: c[0])
def test_a_users_file_is_never_replaced_and_cachesims_own_is(trace_file, tmp_path, command):
    """A file the user made under the output's name is refused in one line, before any work,
    and kept; a rerun replaces what cachesim wrote; once the user edits it, it is theirs."""
    args = lambda: [a.format(t=trace_file, out=tmp_path / "o") for a in command]
    out = Path(next(a for a in args() if a.startswith(str(tmp_path / "o"))))
    out.write_text("mine\n")
    res = invoke(*args())
    assert res.exit_code == 2, res.output
    assert "exists and cachesim did not write it" in res.output and "remove it" in res.output
    assert len(res.stderr.strip().splitlines()) == 1 and out.read_text() == "mine\n"
    out.unlink()
    assert invoke(*args()).exit_code == 0
    first = out.read_bytes()
    assert first != b"mine\n"
    res = invoke(*args())  # cachesim's own output: replaced
    assert res.exit_code == 0, res.output
    with out.open("ab") as f:  # the user's edit makes it theirs
        f.write(b"\n")
    assert invoke(*args()).exit_code == 2 and out.read_bytes().endswith(b"\n")


def test_the_registry_records_what_atomic_writes_wrote(tmp_path, monkeypatch):
    from cachesim import files
    monkeypatch.setenv("CACHESIM_STATE_DIR", str(tmp_path / "state"))
    p = tmp_path / "x.json"
    assert not files.written_by_cachesim(p)
    files.atomic_write(p, "{}")
    assert files.written_by_cachesim(p)
    (tmp_path / "y.json").write_text("{}")
    os.replace(tmp_path / "y.json", p)  # the same name, another file (a new inode)
    assert not files.written_by_cachesim(p)
    with files.atomic_path(tmp_path / "z.json", record=False) as tmp:
        tmp.write_text("{}")
    assert not files.written_by_cachesim(tmp_path / "z.json")
    monkeypatch.setattr(files, "REGISTRY_MAX", 3)
    for i in range(5):
        files.atomic_write(tmp_path / f"f{i}", "a")
    kept = [files.written_by_cachesim(tmp_path / f"f{i}") for i in range(5)]
    assert kept == [False, False, True, True, True]  # the newest REGISTRY_MAX


@pytest.mark.parametrize("command, needle", [
    (["mrc", "{t}", "-s", "10", "-o", "{d}/m.txt"], "ending in .parquet, .csv or .json"),
    (["mrc", "{t}", "-s", "10", "--plot", "{d}/m.pdf"], "ending in .png"),
    (["convert", "{t}", "{d}/x.bogus"], "ending in .parquet, .pq or .csv"),
    (["generate", "{d}/g.txt", "--samples", "10"], "ending in .parquet, .pq or .csv"),
    (["generate", "{d}/g.parquet", "--bag-size", "0"], "every table's is 0"),
])
def test_an_output_name_of_another_format_is_refused(trace_file, tmp_path, command, needle):
    res = invoke(*[a.format(t=trace_file, d=tmp_path) for a in command])
    assert res.exit_code == 2 and needle in res.output, res.output
    assert os.listdir(tmp_path) == []


def test_mrc_writes_the_format_its_name_says(trace_file, tmp_path):
    import polars as pl
    frames = {}
    for suffix in (".csv", ".json", ".parquet"):
        out = tmp_path / f"m{suffix}"
        assert invoke("mrc", trace_file, "-s", "10,100", "-o", out).exit_code == 0
        frames[suffix] = (pl.read_csv(out) if suffix == ".csv" else pl.read_parquet(out)
                          if suffix == ".parquet" else pl.DataFrame(json.loads(out.read_text())))
    assert frames[".csv"]["size"].to_list() == [10, 100]
    assert frames[".csv"].equals(frames[".json"]) and frames[".csv"].equals(frames[".parquet"])


def test_a_name_clash_under_force_is_refused_before_any_work(trace_file, tmp_path, monkeypatch):
    """`report -o mine --force` with the user's mine/report.md was refused only after the
    whole report was computed; now before the sweep starts."""
    import cachesim.sweep
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("mine")

    def no_work(*a, **k):
        raise AssertionError("the sweep ran")
    monkeypatch.setattr(cachesim.sweep, "run_sweep", no_work)
    res = invoke("report", trace_file, "-o", mine, "--force", *SMALL_ARGS)
    assert res.exit_code == 2 and "report.md in it was not written by cachesim" in res.output
    assert (mine / "report.md").read_text() == "mine" and os.listdir(mine) == ["report.md"]
