"""Streamed `allocate` and `report` (issue 12) equal the in-memory ones exactly."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.analysis.allocate import allocate, allocate_stream
from cachesim.cli import cli
from cachesim.io import read_trace, write_trace
from cachesim.reports.report import ReportOptions, build_report

ORACLE = "cloudphysics/cloudPhysicsIO.oracleGeneral.bin"
RECORD = 24


def _late_tables(rng, n: int = 3000) -> cachesim.Trace:
    """Three tables in batches of 50: tables 0 and 1 throughout (skewed rows), table 2 and new
    rows of table 0 only in the last fifth, so their keys are first seen in late chunks."""
    table = rng.integers(0, 2, n).astype(np.int32)
    row = (rng.random(n) ** 3 * 400).astype(np.int64)
    late = np.arange(n) >= n - n // 5
    table[late & (rng.random(n) < 0.5)] = 2
    row[late & (table == 0)] += 1000
    return cachesim.Trace(table=table, row=row, batch=np.arange(n) // 50,
                          table_names=["a", "b", "c"], table_rows=np.array([1400, 400, 400]),
                          table_dims=np.array([16, 8, 32]))


@pytest.fixture(scope="module")
def files(shared_data, tmp_path_factory):
    """(path, chunk accesses): an oracleGeneral prefix, a txt file whose later keys are new,
    and batched Parquet traces of several tables (Criteo's 26; three, one first seen late)."""
    folder = tmp_path_factory.mktemp("stream_allocate")
    og = folder / "cp.oraclegeneral.bin"
    og.write_bytes((shared_data / ORACLE).read_bytes()[:3000 * RECORD])
    rng = np.random.default_rng(5)
    keys = np.concatenate([rng.integers(0, 50, 1500), rng.integers(10**12, 10**12 + 300, 800),
                           rng.integers(0, 50, 200)])
    txt = folder / "late.txt"
    txt.write_text("\n".join(map(str, keys.tolist())) + "\n")
    sample = read_trace(Path(cachesim.__file__).parent / "data" / "criteo_kaggle_head10k.parquet")
    criteo = write_trace(sample.take(slice(0, 6000)), folder / "criteo.parquet")
    late = write_trace(_late_tables(rng), folder / "late.parquet")
    return {"oracle": (og, 7), "txt": (txt, 1), "criteo": (criteo, 1000), "late": (late, 7),
            "late1": (late, 1)}


@pytest.mark.parametrize("name", ["oracle", "txt", "criteo", "late", "late1"])
def test_streamed_allocation_equals_in_memory(files, name):
    path, chunk = files[name]
    trace = read_trace(path)
    for budget in ("2KiB", "24KiB", "1GiB"):
        want = allocate(trace, budget).to_record()
        got = allocate_stream(path, budget, chunk_accesses=chunk).to_record()
        assert got == want, (name, budget)
    if trace.n_tables > 1:  # a split of substance: several tables, some rows and hits each
        mid = allocate(trace, "24KiB")
        assert sum(t["rows"] > 0 for t in mid.tables) >= 2
        assert 0 < mid.totals["greedy_hits"] < len(trace)
        assert mid.totals["unified_hits"] > 0


def test_late_tables_and_dims_reach_the_split(files):
    path, chunk = files["late"]
    got = allocate_stream(path, "1GiB", cache_precision="fp16", chunk_accesses=chunk)
    assert [t["table"] for t in got.tables] == ["a", "b", "c"]
    assert [t["dim"] for t in got.tables] == [16, 8, 32]
    assert [t["row_bytes"] for t in got.tables] == [32, 16, 64]
    # everything fits: each table's misses are its first accesses
    assert all(t["hits"] == t["requests"] - t["distinct_rows"] > 0 for t in got.tables)
    assert got.to_record() == allocate(read_trace(path), "1GiB", "fp16").to_record()


def _run(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    return res.exit_code, res.output


def test_cli_allocate_streams_by_default_over_the_threshold(files, monkeypatch):
    import cachesim.analysis.allocate as A
    path, _ = files["late"]
    code, mem = _run("allocate", path, "-b", "24KiB", "--json", "--no-stream")
    assert code == 0, mem
    calls = []
    real = A.allocate_stream
    monkeypatch.setattr(A, "allocate_stream", lambda *a, **k: calls.append(1) or real(*a, **k))
    code, out = _run("allocate", path, "-b", "24KiB", "--json")
    assert code == 0 and calls == []  # a small file: in memory
    monkeypatch.setattr("cachesim.sizes.STREAM_THRESHOLD", 1000)
    code, out = _run("allocate", path, "-b", "24KiB", "--json")
    assert code == 0, out
    assert calls == [1] and json.loads(out) == json.loads(mem)


def test_cli_allocate_stream_refuses_what_it_cannot_read(tmp_path):
    p = tmp_path / "nobatch.parquet"
    write_trace(cachesim.Trace(table=np.array([0, 1, 1], np.int32), row=np.array([1, 2, 2])), p)
    code, out = _run("allocate", p, "-b", "1KiB", "--stream")
    assert code == 2
    assert "allocate --stream follows a Parquet trace's batches, and this one has no batch " \
        "column; drop --stream" in out
    code, out = _run("allocate", p, "-b", "1KiB")  # in memory by default: it works
    assert code == 0, out


# -- report ----------------------------------------------------------------------------------------
_VARYING = ("seconds", "replay_seconds", "samples_per_s", "created", "digest", "command", "streamed")


def _numbers(v):
    """results.json without what differs from run to run (times, the command) or by design (the
    fingerprint's digest, the streamed run's own note)."""
    if isinstance(v, dict):
        return {k: _numbers(x) for k, x in v.items() if k not in _VARYING}
    if isinstance(v, list):
        return [_numbers(x) for x in v]
    return v


def _report(path, out, **kw):
    opt = ReportOptions(policies=("lru", "lfu"), fractions=(0.01, 0.05, 0.2),
                        precisions=("fp32", "int8"), jobs=1, budget="1GiB", **kw)
    build_report(str(path), out, opt)
    return json.loads((out / "results.json").read_text()), (out / "report.md").read_text()


def _npz_batches(folder: Path, rng) -> Path:
    """fbgemm-npz batches: 2 tables, 20 samples a batch, bags of 1-3 rows, 6 batches."""
    from cachesim.io.fbgemm import write_fbgemm_npz
    folder.mkdir()
    for b in range(6):
        lengths = rng.integers(1, 4, 2 * 20)
        indices = (rng.random(int(lengths.sum())) ** 2 * 120).astype(np.int64)
        write_fbgemm_npz(folder / f"batch_{b}.npz", indices,
                         np.concatenate([[0], np.cumsum(lengths)]), num_tables=2, batch_size=20)
    return folder


@pytest.mark.parametrize("name", ["oracle", "late", "npz"])
def test_streamed_report_equals_in_memory(files, name, tmp_path):
    path, chunk = (_npz_batches(tmp_path / "npz", np.random.default_rng(3)), 100) \
        if name == "npz" else files[name]
    rows = {"table_rows": (200, 150)} if name == "npz" else {}  # --table-rows, streamed too
    want, _ = _report(path, tmp_path / "mem", **rows)
    got, md = _report(path, tmp_path / "st", stream=True, chunk_accesses=chunk, **rows)
    assert "streamed" not in want and got["streamed"]["chunk_accesses"] == chunk
    if rows:
        assert got["trace"]["table_rows"] == [200, 150]
        assert [t["rows"] for t in got["trace"]["analysis"]["tables"]] == [200, 150]
    assert set(got) == set(want) | {"streamed"}
    assert f"read in chunks of {chunk:,} accesses" in md
    batched = name != "oracle"
    if name == "npz":  # OPT is the one thing left out, and the report says so
        assert [r for r in want["curves"] if r["policy"] != "opt"] == got["curves"] != []
        assert any(r["policy"] == "opt" for r in want["curves"])
        assert got["streamed"]["skipped"] and "OPT is left out" in md
        want["curves"] = got["curves"]
    else:
        assert got["streamed"]["skipped"] == [] and "opt" in {r["policy"] for r in got["curves"]}
    for section in want:
        assert _numbers(got[section]) == _numbers(want[section]), section
    # sections of substance: a sweep, curves, the analysis; the allocation for several tables
    assert len(got["sweep"]) == 12 and got["trace"]["analysis"]["streamed"]["estimated"] == []
    assert (got["allocation"] is not None) == batched
    if batched:
        assert got["allocation"]["greedy"]["hits"] > 0
    assert got["meta"]["fingerprint"]["digest"] != want["meta"]["fingerprint"]["digest"]


def test_streamed_report_says_training_was_skipped(files, tmp_path):
    path, chunk = files["oracle"]
    got, md = _report(path, tmp_path / "st", stream=True, chunk_accesses=chunk, train=True)
    assert "training" not in got
    assert any("Accuracy (--train) was not measured" in s and "streamed training reads Criteo"
               in s for s in got["streamed"]["skipped"])
    assert "Accuracy (--train) was not measured" in md and "5. Accuracy" not in md


def test_streamed_report_trains_a_labelled_trace_as_in_memory(files, tmp_path):
    """A Criteo Parquet trace (labels, samples) trains streamed, batch by batch: the report's
    training records equal the in-memory report's."""
    path, chunk = Path(cachesim.__file__).parent / "data" / "criteo_kaggle_head10k.parquet", 1000
    train = dict(train=True, train_sizes=("5%",), train_precisions=("int8",), train_seeds=(0,))
    want, _ = _report(path, tmp_path / "mem", **train)
    got, md = _report(path, tmp_path / "st", stream=True, chunk_accesses=chunk, **train)
    assert got["streamed"]["skipped"] == [] and want["training"]
    assert _numbers(got["training"]) == _numbers(want["training"])
    assert "5. Accuracy" in md


def test_cli_report_streams_by_default_over_the_threshold(files, tmp_path, monkeypatch):
    path, _ = files["oracle"]
    monkeypatch.setattr("cachesim.sizes.STREAM_THRESHOLD", 1000)
    args = ["report", path, "-p", "lru", "-s", "1%,5%", "--precision", "fp32", "-j", "1", "-q"]
    code, out = _run(*args, "-o", tmp_path / "st")
    assert code == 0, out
    st = json.loads((tmp_path / "st" / "results.json").read_text())
    code, out = _run(*args, "--no-stream", "-o", tmp_path / "mem")
    assert code == 0, out
    mem = json.loads((tmp_path / "mem" / "results.json").read_text())
    assert "streamed" in st and "streamed" not in mem
    assert _numbers(st["sweep"]) == _numbers(mem["sweep"]) and len(st["sweep"]) == 2


def test_streamed_allocate_and_report_never_read_the_whole_trace(files, tmp_path, monkeypatch):
    import tracemalloc
    rng = np.random.default_rng(9)
    keys = rng.integers(0, 400, 300_000)  # 2.4 MB of int64 keys, 400 distinct
    p = tmp_path / "long.txt"
    p.write_text("\n".join(map(str, keys.tolist())) + "\n")
    want = allocate(read_trace(p), "4KiB").to_record()
    allocate_stream(p, "4KiB", chunk_accesses=1000)  # (warm: kernels loaded)

    def whole(*a, **k):
        raise AssertionError("a streamed command read the whole trace")
    monkeypatch.setattr("cachesim.io.read_trace", whole)
    tracemalloc.start()
    got = allocate_stream(p, "4KiB", chunk_accesses=1000).to_record()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got == want
    assert peak < keys.nbytes / 4, peak  # the key map, the stacks, a chunk: not the trace
    _report(files["late"][0], tmp_path / "st", stream=True, chunk_accesses=100)
