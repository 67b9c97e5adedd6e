"""Every command with bad option values and unwritable outputs: exit 2, exactly one line on
stderr, no traceback; output paths are checked before any work starts."""
import errno
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.errors import CachesimError

TRACE = str(Path(cachesim.__file__).resolve().parent / "data" / "criteo_kaggle_head10k.parquet")
ROOT = os.geteuid() == 0


def one_line_error(args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], prog_name="cachesim")
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), result.stderr
    assert lines[0].startswith("cachesim: error: "), lines[0]
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception
    return lines[0]


BAD_VALUES = [
    # replay
    (["replay", TRACE, "-s", "5%", "--ways", "abc"], "--ways 'abc'"),
    (["replay", TRACE, "-s", "5%", "--ways", "0"], "at least 1"),
    (["replay", TRACE, "-s", "5%", "-w", "-3"], "at least 1"),
    (["replay", TRACE, "-s", "5x"], "--size '5x'"),
    (["replay", TRACE, "-s", ","], "--size is empty"),
    (["replay", TRACE, "-s", "5%", "-p", "lru,nosuch"], "unknown policy 'nosuch'"),
    (["replay", TRACE, "-s", "5%", "--precision", "fp32,fp7"], "--precision fp7"),
    (["replay", TRACE, "-s", "5%", "--seed", "x"], "--seed"),
    (["replay", TRACE, "-s", "5%", "--mode", "sideways"], "--mode"),
    (["replay", TRACE, "-s", "5%", "--cache-model", "fbgem"], "--cache-model 'fbgem'"),
    (["replay", TRACE, "-s", "5%", "--warp", "48"], "--warp '48'"),
    # memory
    (["memory", "--rows", "100", "--ways", "x"], "--ways 'x'"),
    (["memory", "--rows", "100", "--precision", "int9"], "--precision int9"),
    (["memory", "--rows", "100", "-s", "lots"], "--size 'lots'"),
    (["memory", "--rows", "100", "--align", "0"], "--align"),
    # a bad size is named once, as the option's, by every command that takes sizes (mrc too)
    *[([cmd, TRACE, *extra, "-s", size], f"--size {size!r}: {why}")
      for cmd, extra in (("replay", []), ("mrc", []), ("sweep", []),
                         ("report", ["-o", "{tmp}/r"]))
      for size, why in (("200%", "a share must be above 0% and at most 100%"),
                        ("abc", "give a row count (1000), a share"),
                        ("1.5", "a row count must be a whole number"))],
    (["replay", TRACE, "-s", "0"], "--size '0': must be positive"),
    (["memory", "--rows", "0"], "--rows '0': give at least one table, each of at least one row"),
    (["memory", "--rows", "5,0"], "--rows '5,0': give at least one table, each of at least one"),
    (["memory", "--rows", "100", "-p", "bogus"], "unknown policy 'bogus'"),
    (["memory", "--rows", "100", "-p", "lru,lfu"], "give one policy"),
    # sweep
    (["sweep", TRACE, "-s", "5%", "--ways", "32,x"], "--ways 'x'"),
    (["sweep", TRACE, "-s", "5%", "--precision", "fp32,bad"], "--precision bad"),
    (["sweep", TRACE, "-s", "5%", "-p", "lru,zzz"], "unknown policy 'zzz'"),
    (["sweep", TRACE, "-s", "5%,1e"], "--size '1e'"),
    (["sweep", TRACE, "-s", "5%", "--jobs", "0"], "--jobs"),
    (["sweep", TRACE, "-s", "5%", "-o", "out.txt"], "write .parquet, .csv or .json"),
    (["sweep", TRACE, "-s", "5%", "--cache-model", "exact"], "--cache-model 'exact'"),
    (["sweep", TRACE, "-s", "5%", "--warp", "16"], "--warp '16'"),
    (["sweep", TRACE, "-s", "5%", "--per-table", "maybe"], "--per-table 'maybe'"),
    (["sweep", TRACE, "-s", "5%", "--table-rows", "1,x"], "--table-rows '1,x'"),
    (["sweep", TRACE, "-s", "5%", "--cache-model", "ideal", "--warp", "64"],
     "--warp 64 with --cache-model ideal"),
    (["sweep", TRACE, "-s", "5%", "--cache-model", "fbgemm-inference", "--per-table", "both"],
     "--per-table with --cache-model fbgemm-inference"),
    (["sweep", TRACE, "-s", "5%", "--cache-model", "fbgemm-inference", "--prefetch-pipeline"],
     "--prefetch-pipeline with --cache-model fbgemm-inference"),
    (["sweep", TRACE, "-s", "5%", "--cache-model", "fbgemm-inference", "-w", "1", "-p", "lfu"],
     "policy lfu with --ways 1"),
    # train
    (["train", TRACE, "--seeds", "0,x"], "--seeds 'x'"),
    (["train", TRACE, "--ways", "abc"], "--ways 'abc'"),
    (["train", TRACE, "--precision", "int3"], "--precision int3"),
    (["train", TRACE, "-p", "bogus"], "unknown policy 'bogus'"),
    (["train", TRACE, "--epochs", "0"], "--epochs"),
    (["train", TRACE, "-o", "records.txt"], "write .parquet, .csv or .json"),
    (["train", TRACE, "--cache-model", "lru"], "--cache-model 'lru'"),
    (["train", TRACE, "--warp", "48"], "--warp '48'"),
    (["train", TRACE, "--table-rows", "0"], "--table-rows '0'"),
    (["train", TRACE, "--cache-model", "fbgemm-inference", "-w", "1"],
     "--ways 1 with --cache-model fbgemm-inference"),
    (["train", TRACE, "--cache-model", "ideal", "--prefetch-pipeline"],
     "--prefetch-pipeline with --cache-model ideal"),
    (["train", TRACE, "-p", "lfu", "--prefetch-pipeline"], "needs policy lru"),
    (["train", TRACE, "--warp", "64", "-w", "16"], "--ways 16: FBGEMM's cache has one way per"),
    # report
    (["report", TRACE, "-o", "{tmp}/r", "--ways", "abc"], "--ways 'abc'"),
    (["report", TRACE, "-o", "{tmp}/r", "--seeds", "0,x"], "--seeds 'x'"),
    (["report", TRACE, "-o", "{tmp}/r", "--size", "5%,abc"], "--size 'abc'"),
    (["report", TRACE, "-o", "{tmp}/r", "--sizes", "5%,abc"], "--size 'abc'"),  # old spelling
    (["report", TRACE, "-o", "{tmp}/r", "--precision", "fp33"], "--precision fp33"),
    (["report", TRACE, "-o", "{tmp}/r", "-p", "nope"], "unknown policy 'nope'"),
    (["report", TRACE, "-o", "{tmp}/r", "--jobs", "0"], "--jobs"),
    (["report", TRACE, "-o", "{tmp}/r", "--target-hit-ratio", "x"], "--target-hit-ratio"),
    (["report", TRACE, "-o", "{tmp}/r", "--cache-model", "x"], "--cache-model 'x'"),
    (["report", TRACE, "-o", "{tmp}/r", "--warp", "1"], "--warp '1'"),
    (["report", TRACE, "-o", "{tmp}/r", "--table-rows", "abc"], "--table-rows 'abc'"),
    (["report", TRACE, "-o", "{tmp}/r", "--cache-model", "ideal", "--warp", "64"],
     "--warp 64 with --cache-model ideal"),
    (["report", TRACE, "-o", "{tmp}/r", "--cache-model", "fbgemm-inference", "--per-table"],
     "--per-table with --cache-model fbgemm-inference"),
    (["report", TRACE, "-o", "{tmp}/r", "--cache-model", "fbgemm-inference", "-w", "1",
      "--train"], "--ways 1 with --cache-model fbgemm-inference"),
    # generate
    (["generate", "{tmp}/g.parquet", "--rows", "10,x"], "--rows '10,x'"),
    (["generate", "{tmp}/g.parquet", "--alpha", "abc"], "--alpha 'abc'"),
    (["generate", "{tmp}/g.parquet", "--seed", "x"], "--seed"),
    (["generate", "{tmp}/g.parquet", "--samples", "0"], "--samples"),
    (["generate", "{tmp}/g.parquet", "--rows", str(2**63 - 1)], "at most 2,147,483,648 rows"),
    (["generate", "{tmp}/g.parquet", "--alpha", "nan"], "alpha nan: Zipf exponents must be "
     "finite numbers >= 0"),
    (["generate", "{tmp}/g.parquet", "--alpha", "inf"], "must be finite"),
    (["generate", "{tmp}/g.parquet", "--samples", "200", "--tables", "2", "--rows", "100",
      "--bag-size", "poisson:0.001"], "drew no access in 200 samples"),
    (["generate", "{tmp}/g.parquet", "--accesses", "10"], "--accesses sets how many accesses "
     "--like TRACE generates"),
    (["generate", "{tmp}/g.parquet", "--like", TRACE, "--criteo", "--samples", "5"],
     "so --samples, --criteo would be ignored; drop them"),
    (["train", TRACE, "--seeds", "1,2,1"], "--seeds '1,2,1': seed 1 is given twice"),
    (["train", TRACE, "--lr", "nan"], "--lr nan: the learning rate must be a finite number"),
    (["train", TRACE, "--lr", "inf"], "--lr inf: the learning rate must be a finite number"),
    # mrc, analyze, allocate, convert
    (["mrc", TRACE, "--rate", "abc"], "--rate"),
    (["mrc", TRACE, "--method", "guess"], "--method"),
    (["mrc", TRACE, "-p", "bogus", "--method", "mini"], "unknown policy 'bogus'"),
    (["allocate", TRACE, "--budget", "1GiB", "--cache-precision", "int8"], "--cache-precision"),
    (["allocate", TRACE, "--budget", "1GiB", "--precision", "int8"], "--cache-precision"),
    (["analyze", TRACE, "--window", "0"], "--window"),
    (["allocate", TRACE, "--budget", "1GiB", "--dim", "0"], "--dim"),
    # a budget is bytes with a unit: not rows, not a share, not a bare number
    *[([cmd, TRACE, *out, "--budget", b], f"--budget {b!r}: give bytes with a unit")
      for cmd, out in (("allocate", []), ("report", ["-o", "{tmp}/r"]))
      for b in ("abc", "0", "5%", "1000")],
    (["report", TRACE, "-o", "{tmp}/r", "--budget", "0.5B"], "--budget '0.5B' must be at least 1"),
    (["convert", TRACE, "{tmp}/o.parquet", "--batch-size", "0"], "--batch-size"),
]


@pytest.mark.parametrize("args, needle", BAD_VALUES,
                         ids=[" ".join(a[:1] + a[2:]) for a, _ in BAD_VALUES])
def test_bad_value_is_one_line_exit_2(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)  # relative outputs (out.txt) land in tmp_path
    line = one_line_error([a.format(tmp=tmp_path) for a in args])
    assert needle in line, line
    assert not (tmp_path / "r").exists() and not (tmp_path / "g.parquet").exists()


def test_ways_full_and_default_are_the_same_everywhere():
    """One --ways option: same help in every command that has it, default 32."""
    from cachesim.options import WAYS_HELP
    seen = []
    for name, cmd in cli.commands.items():
        for p in cmd.params:
            if p.name == "ways":
                seen.append(name)
                assert p.help.startswith(WAYS_HELP), (name, p.help)
                assert p.type.convert(p.default, p, None) in (32, [32]), name
    assert set(seen) >= {"replay", "memory", "sweep", "train", "report"}


def test_ways_full_means_fully_associative():
    from cachesim.options import WAYS, WAYS_LIST
    assert WAYS.convert("full", None, None) is None
    assert WAYS.convert("none", None, None) is None
    assert WAYS.convert("8", None, None) == 8
    assert WAYS_LIST.convert("32, full,1", None, None) == [32, None, 1]


def test_replay_default_ways_is_32_and_full_is_fully_associative():
    r = CliRunner().invoke(cli, ["replay", TRACE, "-p", "lru,opt", "-s", "1000", "--json", "-q",
                                 "--mode", "access"])
    assert r.exit_code == 0, r.output
    import json
    recs = {d["policy"]: d for d in json.loads(r.stdout)}
    assert recs["lru"]["ways"] == 32  # the default applies where the policy has sets
    assert recs["opt"]["ways"] is None  # opt has no set-associative form: fully associative
    r = CliRunner().invoke(cli, ["replay", TRACE, "-p", "opt", "-s", "1000", "-w", "8", "-q",
                                 "--mode", "access"])
    assert r.exit_code == 2 and "set-associative" in r.stderr  # an explicit --ways applies
    # even when it is the default's value: -w 32 with OPT or a byte size is refused too (it
    # was a fully associative cache without a word), before any replay (lru's comes first)
    cloud = Path(TRACE).parents[2] / "tests/data/cloudphysics/cloudPhysicsIO.oracleGeneral.bin"
    for args, needle in (
            (["-p", "lru,opt", "-s", "1000", "-w", "32"],
             "policy 'opt' has no set-associative form; --ways 32 works with lru, lfu and fifo"),
            (["-p", "lru", "-s", "1000,128MiB", "-w", "32"],
             "--ways 32: a set-associative cache counts rows; give the size as rows or %, not "
             "bytes, or --ways full")):
        r = CliRunner().invoke(cli, ["replay", str(cloud), *args])
        assert r.exit_code == 2 and r.stdout == "" and needle in r.stderr, r.output
    r = CliRunner().invoke(cli, ["replay", str(cloud), "-p", "lru", "-s", "128MiB", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["ways"] is None  # the default: none


def test_sweep_labels_a_policy_without_sets_fully_associative():
    """In an access-mode sweep the default 32 ways leave OPT fully associative: its rows say
    `none` (they said 32), and 32 and none are one configuration for it."""
    from cachesim.sweep import make_configs
    cfgs = make_configs("lru,opt", "1000", [32, None], mode="access")
    assert [(c.policy, c.ways) for c in cfgs] == [("lru", 32), ("lru", None), ("opt", None)]
    both = make_configs("lru,lfu", "1000", [32, None], mode="access")
    assert [c.ways for c in both] == [32, None] * 2


# -- outputs that cannot be written: checked before the trace is read ---------------------------
def _unwritable_places(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    places = {"sys": Path("/sys/cachesim-test-out"),          # sysfs: no files can be created
              "missing": Path("/proc/cachesim-test/out"),      # a folder that does not exist
              "under-a-file": a_file / "out"}                  # parent is a regular file
    return places


OUTPUT_COMMANDS = [
    ("convert", lambda out: ["convert", "{trace}", f"{out}.parquet"]),
    ("generate", lambda out: ["generate", f"{out}.parquet", "--samples", "10"]),
    ("generate --plot", lambda out: ["generate", "{tmp}/g.parquet", "--like", "{trace}",
                                     "--plot", f"{out}.png"]),
    ("mrc -o", lambda out: ["mrc", "{trace}", "-o", f"{out}.csv"]),
    ("mrc --plot", lambda out: ["mrc", "{trace}", "--plot", f"{out}.png"]),
    ("mrc --torchrec", lambda out: ["mrc", "{trace}", "--torchrec", f"{out}.json"]),
    ("sweep -o", lambda out: ["sweep", "{trace}", "-s", "5%", "-o", f"{out}.parquet"]),
    ("train -o", lambda out: ["train", "{trace}", "-o", f"{out}.parquet"]),
    ("report -o", lambda out: ["report", "{trace}", "-o", f"{out}"]),
    ("analyze --plots", lambda out: ["analyze", "{trace}", "--plots", f"{out}"]),
]


@pytest.mark.parametrize("place", ["sys", "missing", "under-a-file"])
@pytest.mark.parametrize("name, make", OUTPUT_COMMANDS, ids=[c[0] for c in OUTPUT_COMMANDS])
def test_unwritable_output_fails_before_the_work(tmp_path, name, make, place):
    out = _unwritable_places(tmp_path)[place]
    # the trace does not exist: were it read first, the error would name it instead
    missing_trace = tmp_path / "no-such-trace.parquet"
    args = [a.format(trace=missing_trace, tmp=tmp_path) for a in make(out)]
    line = one_line_error(args)
    assert str(out) in line, line
    assert "no-such-trace" not in line, line
    assert not (tmp_path / "g.parquet").exists()


@pytest.mark.skipif(ROOT, reason="root ignores folder permissions")
def test_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        line = one_line_error(["convert", tmp_path / "missing.txt", ro / "o.parquet"])
        assert f"{ro}" in line and "cannot write" in line
        line = one_line_error(["report", tmp_path / "missing.txt", "-o", ro])
        assert "cannot write" in line
    finally:
        ro.chmod(0o755)


def test_train_output_checked_before_training(tmp_path, monkeypatch):
    """`train -o` on an unwritable path fails before any training (was: after it, with a
    PermissionError traceback)."""
    import importlib
    train_mod = importlib.import_module("cachesim.executor.train")

    def no_training(*a, **k):
        raise AssertionError("training started before the output was checked")
    monkeypatch.setattr(train_mod, "train", no_training)
    line = one_line_error(["train", TRACE, "-o", "/sys/cachesim-test.parquet"])
    assert "/sys/cachesim-test.parquet" in line and "cannot write" in line


def test_a_folder_where_a_file_is_expected(tmp_path):
    (tmp_path / "d.parquet").mkdir()
    line = one_line_error(["convert", tmp_path / "none.txt", tmp_path / "d.parquet"])
    assert "is a folder" in line


def test_a_file_where_a_folder_is_expected(tmp_path):
    (tmp_path / "plots").write_text("mine")
    line = one_line_error(["analyze", tmp_path / "none.txt", "--plots", tmp_path / "plots"])
    assert "is a file" in line or "a file is in the way" in line, line
    assert (tmp_path / "plots").read_text() == "mine"


def test_full_disk_while_writing_is_one_error_naming_the_file(tmp_path):
    from cachesim.files import atomic_path
    target = tmp_path / "x.parquet"
    with pytest.raises(CachesimError, match="x.parquet.*No space left"):
        with atomic_path(target, "-o"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []  # no temp file left behind


def test_full_disk_in_a_command_is_one_line(tmp_path, monkeypatch):
    import polars as pl

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    out = tmp_path / "t.parquet"
    line = one_line_error(["sweep", TRACE, "-s", "5%", "-p", "lru", "-j", "1", "-q", "-o", out])
    assert str(out) in line and "No space left" in line
