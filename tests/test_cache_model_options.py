"""The batch cache options in every command: `sweep`, `train` and `report` take `--cache-model
fbgemm|ideal|fbgemm-inference`, `--per-table`, `--prefetch-pipeline`, `--warp` and
`--table-rows` through the same parsers as `replay --mode batch`, each option changes their
counters exactly as it changes that replay's, and every output names the cache it used."""
import csv
import json

import pytest
from click.testing import CliRunner

from cachesim.cli import cli
from cachesim.io.tabular import write_trace
from tests.test_cache_model import _batches, _trace

SIZE = "10%"  # fbgemm: 16 of the 160 rows, 1 set of 32 (of 64 with --warp 64): over-full
COUNTERS = ("requested_indices", "unique_indices", "unique_misses", "conflict_unique_misses",
            "conflict_misses", "evictions", "misses")
# an option (as replay spells it), the cache it gives: (cache_model, ways, warp, per_table,
# prefetch_pipeline)
CASES = {
    "default": ([], ("fbgemm", 32, 32, False, False)),
    "ideal": (["--cache-model", "ideal", "-w", "8"], ("ideal", 8, None, False, False)),
    "inference": (["--cache-model", "fbgemm-inference"], ("fbgemm-inference", 32, 32, False,
                                                         False)),
    "direct-mapped": (["--cache-model", "fbgemm-inference", "-w", "1"],
                      ("fbgemm-inference", 1, None, False, False)),
    "warp64": (["--warp", "64"], ("fbgemm", 64, 64, False, False)),
    "per-table": (["--per-table"], ("fbgemm", 32, 32, True, False)),
    "pipeline": (["--prefetch-pipeline"], ("fbgemm", 32, 32, False, True)),
    "table-rows": (["--table-rows", "300,120,540"], ("fbgemm", 32, 32, False, False)),
}


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    p = tmp_path_factory.mktemp("opts") / "small.parquet"
    write_trace(_trace(_batches()), p)  # 3 tables of 50, 20, 90 rows, 14 multi-hot batches
    return str(p)


def _run(*args):
    run = CliRunner().invoke(cli, [str(a) for a in args])
    assert run.exit_code == 0, run.output
    return run


def _json(*args):
    return json.loads(_run(*args, "--json", "-q").stdout)


_REPLAYS = {}


def _replay(path, case, policy="lru"):
    """`replay --mode batch` with the case's option: the reference every command must equal."""
    if (case, policy) not in _REPLAYS:
        rec, = _json("replay", path, "--mode", "batch", "-p", policy, "-s", SIZE, *CASES[case][0])
        _REPLAYS[case, policy] = rec
    return _REPLAYS[case, policy]


def _counts(rec):
    return {k: rec[k] for k in COUNTERS}


def _names_its_cache(rec, case):
    model, ways, warp, per_table, pipeline = CASES[case][1]
    assert (rec["cache_model"], rec["ways"], rec["warp"], rec["per_table"],
            rec["prefetch_pipeline"]) == (model, ways, warp, per_table, pipeline)


def test_the_cases_change_the_replay(path):
    # each option changes the reference replay (else the equalities below would prove little);
    # FBGEMM's 32-way inference cache has the training cache's rules without the pipeline, so
    # the same counts: what changes is that it is an inference cache (nothing written back)
    base = _counts(_replay(path, "default"))
    for case in CASES:
        if case not in ("default", "inference"):
            assert _counts(_replay(path, case)) != base, case
    assert _counts(_replay(path, "inference")) == base
    assert _replay(path, "inference")["inference"] and not _replay(path, "default")["inference"]
    assert _replay(path, "warp64")["n_sets"] == 1 and _replay(path, "table-rows")["n_sets"] == 3
    assert _replay(path, "per-table")["per_table_caches"] is True


# -- sweep -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
def test_sweep_equals_replay_with_the_same_option(path, tmp_path, case):
    args = [a for a in CASES[case][0] if a != "--per-table"]
    if "--per-table" in CASES[case][0]:
        args += ["--per-table", "yes"]
    out = tmp_path / "s.json"
    run = _run("sweep", path, "-p", "lru", "-s", SIZE, "--precision", "fp32", "-j", "1", "-q",
               "-o", out, *args)
    row, = json.loads(out.read_text())
    assert _counts(row) == _counts(_replay(path, case))
    _names_its_cache(row, case)
    # the printed table names it too
    head, line = run.stdout.splitlines()
    cells = dict(zip(head.split(), line.split()))
    model, ways, warp, per_table, pipeline = CASES[case][1]
    assert (cells["cache_model"], cells["ways"], cells["warp"], cells["per_table"],
            cells["prefetch_pipeline"]) == (model, str(ways), "-" if warp is None else str(warp),
                                            "yes" if per_table else "no",
                                            "yes" if pipeline else "no")
    if model == "fbgemm-inference":  # the inference cache writes nothing back
        assert row["inference"] is True and row["d2h_bytes_per_step"] == 0


def test_sweep_csv_names_the_ideal_model(path, tmp_path):
    out = tmp_path / "s.csv"
    _run("sweep", path, "-p", "lru,lfu", "-s", SIZE, "--precision", "fp32,int8", "-j", "1", "-q",
         "--cache-model", "ideal", "-o", out)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["cache_model"] for r in rows} == {"ideal"}
    assert {r["warp"] for r in rows} == {""} and {r["prefetch_pipeline"] for r in rows} == \
        {"false"}


# -- train -----------------------------------------------------------------------------------------
TRAIN = ("--precision", "int8", "--model", "small", "--no-baselines", "--device", "cpu",
         "--test-fraction", "0", "-s", SIZE)


@pytest.mark.parametrize("case,policy", [(c, "lru") for c in CASES if c != "direct-mapped"]
                         + [("inference", "lfu"), ("per-table", "lfu"), ("ideal", "lfu")])
def test_train_counters_equal_replay_with_the_same_option(path, case, policy):
    rec, = _json("train", path, "-p", policy, *TRAIN, *CASES[case][0])
    assert _counts(rec) == _counts(_replay(path, case, policy))
    _names_its_cache(rec, case)


def test_train_prints_its_cache(path):
    run = _run("train", path, *TRAIN, "--per-table", "--prefetch-pipeline", "--warp", "64", "-q")
    head, line = run.stdout.splitlines()
    cells = dict(zip(head.split(), line.split()))
    assert (cells["cache_model"], cells["ways"], cells["warp"], cells["per_table"],
            cells["prefetch_pipeline"]) == ("fbgemm", "64", "64", "yes", "yes")
    run = _run("train", path, *TRAIN, "--cache-model", "ideal", "-w", "8", "-q")
    head, line = run.stdout.splitlines()
    cells = dict(zip(head.split(), line.split()))
    assert (cells["cache_model"], cells["warp"], cells["prefetch_pipeline"]) == ("ideal", "-",
                                                                                 "no")
    assert "fbgemm" not in line


# -- report ----------------------------------------------------------------------------------------
def _report(path, out, *args):
    _run("report", path, "-o", out, "--size", SIZE, "--precision", "fp32", "-p", "lru",
         "--jobs", "1", "-q", *args)
    return (json.loads((out / "results.json").read_text()),
            (out / "report.html").read_text())


@pytest.mark.parametrize("cases", [[c] for c in CASES if c not in ("default", "direct-mapped")]
                         + [["per-table", "pipeline", "warp64"]], ids="+".join)
def test_report_replays_and_names_the_options(path, tmp_path, cases):
    args = [a for c in cases for a in CASES[c][0]]
    res, html = _report(path, tmp_path / "rep", *args)
    want, = _json("replay", path, "--mode", "batch", "-p", "lru", "-s", SIZE, *args)
    row, = res["sweep"]
    assert _counts(row) == _counts(want)
    model, ways, warp, _, _ = CASES[cases[0]][1]
    if len(cases) > 1:
        model, ways, warp = "fbgemm", 64, 64
    meta = res["meta"]
    assert (meta["cache_model"], meta["ways"], meta["warp"], meta["per_table"],
            meta["prefetch_pipeline"]) == (model, ways, warp, "per-table" in cases,
                                           "pipeline" in cases)
    assert (row["cache_model"], row["warp"], row["per_table"], row["prefetch_pipeline"]) == (
        model, warp, "per-table" in cases, "pipeline" in cases)
    # the recommendation and the transfers section name the model and the cache's options
    summary = html.split("<section id='summary'", 1)[1].split("<section", 1)[0]
    assert (f"(cache model {model})" if model != "ideal" else
            "cachesim&#x27;s ideal cache model, not FBGEMM&#x27;s") in summary
    assert f"(cache model {model}," in html
    if model != "fbgemm":
        assert "cache model fbgemm)" not in html and "cache model fbgemm," not in html
    geometry = ", ".join([f"{ways}-way set-associative"] + [f"warp {warp}"] * bool(warp)
                         + ["one cache per table" if "per-table" in cases else
                            "one cache over all tables"]
                         + (["FBGEMM&#x27;s prefetch pipeline" if "pipeline" in cases else
                             "no prefetch pipeline"] if model == "fbgemm" else []))
    ours = "not FBGEMM&#x27;s: " if model == "ideal" else ""
    assert f"Cache: {geometry}." in summary and f"(cache model {model}, {ours}{geometry}" in html


# -- the executor's API on a multi-hot trace ---------------------------------------------------
@pytest.mark.parametrize("policy,options", [
    ("lru", dict(per_table=True)), ("lfu", dict(per_table=True)),
    ("lru", dict(prefetch_pipeline=True)), ("lru", dict(prefetch_pipeline=True, per_table=True)),
    ("lfu", dict(warp=64)), ("lru", dict(cache_model="fbgemm-inference")),
    ("lfu", dict(cache_model="fbgemm-inference", warp=64)),
    ("lru", dict(cache_model="ideal", per_table=True)),
    ("lfu", dict(cache_model="ideal", per_table=True))])
def test_executor_counters_equal_replay_batch(policy, options):
    from cachesim.executor import train
    from cachesim.simulate.batch import replay_batch
    from cachesim.synth.generate import generate
    tr = generate(300, tables=3, rows=[300, 80, 1000], alpha=1.0, bag_size="poisson:1.5",
                  batch_size=16, seed=3, teacher=True, dim=4)
    rec, = train(tr, precision="int8", size="3%", policy=policy, model={"bottom": (4,),
                 "top": (4,)}, progress=False, baselines=False, test_fraction=0.0,
                 device="cpu", **{"cache_model": "fbgemm", **options})
    sim = replay_batch(tr, policy, "3%", **{"cache_model": "fbgemm", **options})
    assert _counts(rec) == {k: getattr(sim, k) for k in COUNTERS}
    assert rec["evictions"] > 0 and rec["cache_lines"] == sim.n_lines
    assert (rec["cache_model"], rec["per_table"], rec["prefetch_pipeline"]) == (
        sim.cache_model, sim.per_table_caches, sim.prefetch_pipeline)
    if sim.cache_model != "ideal":  # (the ideal model lowers the ways to a small cache's rows)
        assert rec["ways"] == rec["warp"] == sim.ways
