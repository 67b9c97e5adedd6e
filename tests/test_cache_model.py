"""Batch replay's two cache models (`--cache-model fbgemm | ideal`): the fbgemm model through the
CLI equals tests/naive_fbgemm.py's oracle (written from FBGEMM's CUDA), the ideal model equals
tests/naive.py's, the geometry is FBGEMM's, inferred table sizes are warned about, bad
combinations are one-line errors, and sweep, report and train say which model they used."""
import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.errors import CachesimError
from cachesim.io.tabular import write_trace
from cachesim.simulate.batch import replay_batch
from cachesim.simulate.fbgemm import FBGEMM_COUNTERS, TableRowsInferredWarning
from cachesim.simulate.result import DEFAULT_CACHE_MODEL
from tests import naive, naive_fbgemm

ROWS = [50, 20, 90]  # num_embeddings of the three tables
OWN = ("requested_indices", "unique_indices", "unique_misses", "conflict_unique_misses",
       "conflict_misses", "evictions")
CRITEO = cachesim.__file__.rsplit("/", 1)[0] + "/data/criteo_kaggle_head10k.parquet"


def _batches(seed=3, n_batches=14):
    """Batches of (table, row), multi-hot and skewed, so that sets overflow."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        n = int(rng.integers(20, 60))
        t = rng.integers(0, len(ROWS), n)
        r = (rng.zipf(1.4, n) - 1) % np.array(ROWS)[t]
        out.append(list(zip(t.tolist(), r.tolist())))
    return out


def _trace(batches, rows=ROWS):
    table = [t for b in batches for t, _ in b]
    row = [r for b in batches for _, r in b]
    batch = [i for i, b in enumerate(batches) for _ in b]
    return cachesim.Trace(table=np.array(table), row=np.array(row), batch=np.array(batch),
                          table_rows=None if rows is None else np.array(rows), source="small")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(batches, a Parquet file with the tables' num_embeddings in its metadata)."""
    batches = _batches()
    path = tmp_path_factory.mktemp("cm") / "small.parquet"
    write_trace(_trace(batches), path)
    return batches, str(path)


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _json(*args):
    run = _cli(*args, "--json", "-q")
    assert run.exit_code == 0, run.output
    return json.loads(run.stdout)


def _naive_totals(batches, policy, **kw):
    per_batch = naive_fbgemm.replay(batches, ROWS, policy, **kw)
    return {k: sum(b[k] for b in per_batch) for k in per_batch[0]}


# -- fbgemm model == FBGEMM's oracle, through the CLI ----------------------------------------------
@pytest.mark.parametrize("policy,per_table,pipeline", [
    ("lru", False, False), ("lru", True, False), ("lru", False, True), ("lru", True, True),
    ("lfu", False, False), ("lfu", True, False)])
@pytest.mark.parametrize("size,geometry", [("10%", {"load_factor": 0.1}), ("20", {"sets": 1})])
def test_cli_fbgemm_equals_oracle(small, policy, per_table, pipeline, size, geometry):
    batches, path = small
    if per_table and "sets" in geometry:  # rows with per-table caches: rows / total rows each
        geometry = {"load_factor": 20 / sum(ROWS)}
    args = ["replay", path, "--mode", "batch", "-p", policy, "-s", size, "--cache-model", "fbgemm"]
    args += (["--per-table"] if per_table else []) + (["--prefetch-pipeline"] if pipeline else [])
    rec, = _json(*args)
    want = _naive_totals(batches, policy, per_table=per_table, prefetch_pipeline=pipeline,
                         **geometry)
    assert rec["cache_model"] == "fbgemm" and rec["prefetch_pipeline"] == pipeline
    for name in FBGEMM_COUNTERS:  # FBGEMM's values under FBGEMM's names (LFU: only the last)
        assert rec[name] == want[name], name
    for name in OWN:  # ours, defined alike for both policies
        assert rec[name] == want[name], name
    assert rec["misses"] == want["misses"]
    assert rec["hits"] == want["requested_indices"] - want["misses"]
    assert rec["calls"] == len(batches)
    if policy == "lfu":
        assert rec["num_unique_misses"] == 0 and rec["unique_misses"] > 0
    # per-table counters add up to the totals
    for name in OWN:
        assert sum(rec["per_table"][name]) == rec[name]
    # and something happened that tells the rules apart
    assert want["evictions"] > 0 and (want["conflict_unique_misses"] > 0 or per_table)


def test_geometry_is_fbgemms(small):
    _, path = small
    total = sum(ROWS)  # 160 rows
    rec, = _json("replay", path, "-s", "50%", "--cache-model", "fbgemm")
    assert (rec["n_sets"], rec["ways"], rec["capacity"]) == (3, 32, 96)  # ceil(80 / 32)
    assert rec["load_factor"] == 0.5 and rec["table_rows_inferred"] is False
    rec, = _json("replay", path, "-s", "1%", "--cache-model", "fbgemm")  # int(1.6) -> 1 set
    assert rec["n_sets"] == naive_fbgemm.fbgemm_sets(total, 0.01) == 1
    rec, = _json("replay", path, "-s", "50%", "--cache-model", "fbgemm", "--warp", "64")
    assert (rec["n_sets"], rec["ways"]) == (2, 64)  # ceil(80 / 64)
    rec, = _json("replay", path, "-s", "1000", "--cache-model", "fbgemm")
    assert rec["n_sets"] == 32  # 1000 lines: ceil(1000 / 32) sets
    rec, = _json("replay", path, "-s", "5%", "--cache-model", "fbgemm", "--per-table")
    # one cache per table, each at least one set of 32 lines
    assert rec["per_table"]["n_sets"] == [1, 1, 1] and rec["n_lines"] == 96
    rec, = _json("replay", path, "-s", "2KiB", "--cache-model", "fbgemm")
    assert rec["n_sets"] == 1  # 2 KiB of 64-byte fp32 rows (dim 16): 32 lines


def test_ideal_model_is_the_old_one(small):
    batches, path = small
    tr = cachesim.io.read_trace(path)
    for policy, ways in (("lru", 8), ("lfu", None)):
        w = ["-w", "8"] if ways else ["-w", "full"]
        rec, = _json("replay", path, "-p", policy, "-s", "10%", *w, "--cache-model", "ideal")
        want, _, _ = naive.batch_replay(tr.keys.tolist(), tr.table.tolist(), tr.batch.tolist(),
                                        tr.n_tables, policy, rec["capacity"], ways)
        assert rec["cache_model"] == "ideal" and rec["num_conflict_misses"] is None
        for name in OWN:
            assert rec[name] == want[name], name


def test_models_differ_on_ties_and_ways(small):
    # the same size, two models: FBGEMM's bitonic ties and its sets from num_embeddings
    _, path = small
    fb, = _json("replay", path, "-s", "10%", "--cache-model", "fbgemm")
    ideal, = _json("replay", path, "-s", "10%", "--cache-model", "ideal")
    assert (fb["cache_model"], ideal["cache_model"]) == ("fbgemm", "ideal")
    assert fb["capacity"] == 32 and ideal["capacity"] != fb["capacity"]


def test_default_model_is_the_constant(small):
    _, path = small
    rec, = _json("replay", path, "-s", "10%")
    assert rec["cache_model"] == DEFAULT_CACHE_MODEL
    assert cachesim.replay(path, "lru", "10%", mode="access").cache_model is None


# -- num_embeddings: given, inferred, overridden --------------------------------------------------
def test_inferred_table_rows_warn(tmp_path):
    batches = _batches(seed=5)
    csv = tmp_path / "small.csv"  # CSV keeps no table sizes
    write_trace(_trace(batches), csv)
    run = _cli("replay", csv, "-s", "10%", "--cache-model", "fbgemm", "-q")
    assert run.exit_code == 0, run.output
    warning = [ln for ln in run.stderr.splitlines() if "warning" in ln]
    assert warning == [f"cachesim: warning: {csv} has no table sizes; num_embeddings inferred "
                       "from the largest row seen per table; pass --table-rows N1,N2,... or a "
                       "Parquet file with metadata"]
    # --table-rows (in the trace's table order: a CSV numbers its tables as they first appear):
    # no warning, FBGEMM's geometry and keys on the given rows
    names = cachesim.io.read_trace(csv).table_names
    order = [int(nm[1:]) for nm in names]
    rows = [ROWS[t] for t in order]
    run = _cli("replay", csv, "-s", "10%", "--cache-model", "fbgemm", "--table-rows",
               ",".join(map(str, rows)), "--json", "-q")
    assert run.exit_code == 0 and "warning" not in run.stderr, run.output
    rec, = json.loads(run.stdout)
    renumbered = [[(order.index(t), r) for t, r in b] for b in batches]
    per_batch = naive_fbgemm.replay(renumbered, rows, "lru", load_factor=0.1)
    want = {k: sum(b[k] for b in per_batch) for k in per_batch[0]}
    assert rec["table_rows_inferred"] is False
    assert [rec[n] for n in FBGEMM_COUNTERS] == [want[n] for n in FBGEMM_COUNTERS]
    # the ideal model does not use num_embeddings for its geometry: no warning
    run = _cli("replay", csv, "-s", "10%", "--cache-model", "ideal", "-q")
    assert run.exit_code == 0 and "warning" not in run.stderr
    # the API warns with its own category
    tr = _trace(batches, rows=None)
    assert tr.table_rows_inferred
    with pytest.warns(TableRowsInferredWarning, match="no table sizes"):
        r = replay_batch(tr, "lru", "10%", cache_model="fbgemm")
    assert r.table_rows_inferred is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        replay_batch(_trace(batches), "lru", "10%", cache_model="fbgemm")


def test_table_rows_errors(small):
    _, path = small
    run = _cli("replay", path, "-s", "5%", "--cache-model", "fbgemm", "--table-rows", "50,20")
    assert run.exit_code == 2
    assert "--table-rows gives 2 tables but" in run.stderr and "has 3" in run.stderr
    run = _cli("replay", path, "-s", "5%", "--table-rows", "50,20,3")
    assert run.exit_code == 2 and "table t2 has 3 rows" in run.stderr
    run = _cli("replay", path, "-s", "5%", "--table-rows", "50,x,3")
    assert run.exit_code == 2 and "--table-rows '50,x,3'" in run.stderr


# -- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["-w", "16", "--cache-model", "fbgemm"],
     "--ways 16 with --cache-model fbgemm: FBGEMM's cache has one way per warp lane, 32 (or 64 "
     "with --warp 64, AMD CDNA); use --cache-model ideal for other ways"),
    (["-w", "full", "--cache-model", "fbgemm"], "--ways full with --cache-model fbgemm"),
    (["-w", "64", "--warp", "32", "--cache-model", "fbgemm"], "--ways 64 with --cache-model"),
    (["-p", "lfu", "--cache-model", "fbgemm", "--prefetch-pipeline"],
     "--prefetch-pipeline needs policy lru: FBGEMM asserts 'Only LRU cache policy supports "
     "prefetch_pipeline'"),
    (["--cache-model", "ideal", "--prefetch-pipeline"], "they need --cache-model fbgemm"),
    (["--cache-model", "ideal", "--warp", "64"], "they need --cache-model fbgemm"),
    (["--mode", "access", "--cache-model", "fbgemm"], "they need batch mode"),
])
def test_bad_combinations(small, args, message):
    _, path = small
    run = _cli("replay", path, "-s", "10%", *args)
    assert run.exit_code == 2, run.output
    assert run.stderr.startswith("cachesim: error: ") and len(run.stderr.splitlines()) == 1
    assert message in run.stderr


def test_api_errors(small):
    tr = _trace(_batches())
    with pytest.raises(CachesimError, match="use fbgemm"):
        replay_batch(tr, "lru", "5%", cache_model="fbgem")
    with pytest.raises(CachesimError, match='mode="access" for fifo'):
        replay_batch(tr, "fifo", "5%", cache_model="fbgemm")


# -- sweep, report and train name the model --------------------------------------------------------
def test_sweep_names_the_model_and_resumes_by_it(small, tmp_path):
    _, path = small
    out = tmp_path / "s.json"
    run = _cli("sweep", path, "-p", "lru", "-s", "10%", "--precision", "fp32",
               "--cache-model", "fbgemm", "-o", out, "-j", "1", "-q")
    assert run.exit_code == 0, run.output
    head = run.stdout.splitlines()[0].split()
    assert head[:2] == ["policy", "cache_model"] and run.stdout.splitlines()[1].split()[1] == \
        "fbgemm"
    rows = json.loads(out.read_text())
    assert [r["cache_model"] for r in rows] == ["fbgemm"]
    parts = sorted(p.name for p in (tmp_path / "s.json.parts").iterdir())
    assert parts == ["batch-fbgemm-lru-10pct-w32-shared.json", "manifest.json"]
    # the ideal model is another configuration: replayed, not reused
    run = _cli("sweep", path, "-p", "lru", "-s", "10%", "--precision", "fp32",
               "--cache-model", "ideal", "-o", out, "-j", "1")
    assert run.exit_code == 0, run.output
    assert "replayed 1 of 1 configurations (0 reused)" in run.stderr
    assert json.loads(out.read_text())[0]["cache_model"] == "ideal"
    # a part from before cache_model existed (same configuration otherwise) is not reused
    folder = tmp_path / "s.json.parts"
    old = json.loads((folder / "batch-fbgemm-lru-10pct-w32-shared.json").read_text())
    for k in ("cache_model", "prefetch_pipeline", "warp"):
        old["config"].pop(k)
    old["record"]["hit_ratio"] = 0.123456
    (folder / "batch-lru-10pct-w32-shared.json").write_text(json.dumps(old))
    (folder / "batch-fbgemm-lru-10pct-w32-shared.json").unlink()
    run = _cli("sweep", path, "-p", "lru", "-s", "10%", "--precision", "fp32",
               "--cache-model", "fbgemm", "-o", out, "-j", "1")
    assert "replayed 1 of 1 configurations (0 reused)" in run.stderr
    assert json.loads(out.read_text())[0]["hit_ratio"] != 0.123456
    run = _cli("sweep", path, "-p", "lfu", "-s", "10%", "--cache-model", "fbgemm",
               "--prefetch-pipeline")
    assert run.exit_code == 2 and "needs policy lru" in run.stderr


def test_report_names_the_model(small, tmp_path):
    _, path = small
    out = tmp_path / "rep"
    run = _cli("report", path, "-o", out, "--size", "10%,50%", "--precision", "fp32",
               "-p", "lru", "--cache-model", "fbgemm", "--jobs", "1", "-q")
    assert run.exit_code == 0, run.output
    res = json.loads((out / "results.json").read_text())
    assert res["meta"]["cache_model"] == "fbgemm"
    assert {r["cache_model"] for r in res["sweep"]} == {"fbgemm"}
    md = (out / "report.md").read_text()
    assert "Batch replay through FBGEMM's training cache (cache model fbgemm" in md
    # the recommendation itself names the model it was replayed with
    summary = md.split("## Recommendation", 1)[1].split("\n## ", 1)[0]
    assert "Replayed through FBGEMM's training cache, batch by batch (cache model fbgemm)." \
        in summary


def test_train_names_the_model(small):
    _, path = small
    recs = _json("train", path, "-s", "10%", "--precision", "int8", "--model", "small",
                 "--no-baselines", "--cache-model", "ideal", "--device", "cpu")
    assert [r["cache_model"] for r in recs] == ["ideal"]
    run = _cli("train", path, "-s", "10%", "--precision", "int8", "--model", "small",
               "--no-baselines", "--device", "cpu", "-q")
    assert run.exit_code == 0, run.output
    assert run.stdout.splitlines()[0].split()[:2] == ["policy", "cache_model"]


# -- the shipped Criteo sample: the README's numbers -----------------------------------------------
def test_criteo_per_table_and_unified():
    """Criteo Kaggle head (10,000 samples, 79 batches of 128, 26 tables), LRU at 5%.

    Golden values, produced by `cachesim replay cachesim/data/criteo_kaggle_head10k.parquet -p lru
    -s 5% --mode batch [--per-table] --cache-model fbgemm|ideal --json` and cross-checked here
    against tests/naive_fbgemm.py (the fbgemm model) on the same trace."""
    tr = cachesim.io.read_trace(CRITEO)
    got = {}
    for model in ("ideal", "fbgemm"):
        for pt in (False, True):
            r = replay_batch(tr, "lru", "5%", per_table=pt, cache_model=model)
            got[model, pt] = (r.unique_misses, r.conflict_unique_misses, r.conflict_misses)
            print(model, "per-table" if pt else "unified", got[model, pt])
    assert got["ideal", True] == (90_988, 13_020, 54_224)   # the measurement
    assert got["fbgemm", True] == (85_349, 5_854, 6_490)    # one 32-way FBGEMM cache per table
    assert got["fbgemm", False] == (84_295, 108, 112)
    starts = tr.batch_starts
    batches = [list(zip(tr.table[a:b].tolist(), tr.row[a:b].tolist()))
               for a, b in zip(starts[:-1], starts[1:])]
    for pt in (False, True):
        per_batch = naive_fbgemm.replay(batches, tr.table_rows.tolist(), "lru", load_factor=0.05,
                                        per_table=pt)
        want = tuple(sum(b[k] for b in per_batch) for k in
                     ("num_unique_misses", "num_conflict_unique_misses", "num_conflict_misses"))
        assert got["fbgemm", pt] == want
