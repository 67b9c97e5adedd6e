"""`cachesim replay` prints what `cachesim.replay` computes; exact table output; --version."""
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli

CRITEO = Path(cachesim.__file__).resolve().parent / "data" / "criteo_kaggle_head10k.parquet"


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], prog_name="cachesim")
    assert result.exit_code == 0, result.output
    return result


def without_timing(record: dict) -> dict:
    """The record as JSON gives it back, less the wall-clock seconds."""
    rec = json.loads(json.dumps(record))
    rec.pop("seconds")
    return rec


def test_replay_json_equals_api_access_mode(shared_data):
    path = shared_data / "cloudphysics" / "cloudPhysicsIO.txt"
    result = invoke("replay", path, "--policy", "lru,fifo", "--size", "1000,5%", "--json", "-q")
    assert result.stderr == ""
    printed = [without_timing(r) for r in json.loads(result.stdout)]
    trace = cachesim.read_trace(path)
    expected = [without_timing(cachesim.replay(trace, p, s).to_record())
                for p in ("lru", "fifo") for s in ("1000", "5%")]
    assert printed == expected
    # the configurations are the ones asked for, in order, and the counts are not trivial
    assert [(r["policy"], r["size"]) for r in printed] == [
        ("lru", "1000"), ("lru", "5%"), ("fifo", "1000"), ("fifo", "5%")]
    assert all(r["requests"] == 113_872 and 0 < r["hits"] < r["requests"] for r in printed)
    assert all(r["hits"] + r["misses"] == r["requests"] for r in printed)
    assert printed[0]["hits"] != printed[2]["hits"]  # lru and fifo differ


def test_replay_json_equals_api_batch_mode():
    result = invoke("replay", CRITEO, "-p", "lru", "-s", "5%", "-w", "32", "--mode", "batch",
                    "--json", "-q")
    (printed,) = json.loads(result.stdout)
    trace = cachesim.read_trace(CRITEO)
    res = cachesim.replay(trace, "lru", "5%", ways=32, mode="batch")
    assert without_timing(printed) == without_timing(res.to_record(per_table=True))
    assert printed["mode"] == "batch" and printed["ways"] == 32
    assert printed["requested_indices"] == len(trace) == 260_000
    assert 0 < printed["unique_misses"] < printed["unique_indices"]
    assert sum(printed["per_table"]["unique_misses"]) == printed["unique_misses"]


def test_replay_table_output_exact(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text("1\n2\n1\n3\n2\n1\n")
    result = invoke("replay", path, "--policy", "lru,fifo,opt", "--size", "2", "-q")
    # lru: 1m 2m 1h 3m(evicts 2) 2m(evicts 1) 1m; fifo: 3 evicts 1, then 2 hits, 1 misses;
    # opt: 3 evicts 1 (next used last), 2 hits, 1 misses. Rows of dim 16 in fp32: 64 B a miss.
    # The default 32 ways are lowered to the 2 rows (one set); opt has no set-associative form.
    assert result.stdout == (
        "policy  size  capacity  ways  requests  hits  misses  hit_ratio  miss_bytes\n"
        "   lru     2         2     2         6     1       5     0.1667         320\n"
        "  fifo     2         2     2         6     2       4     0.3333         256\n"
        "   opt     2         2     -         6     2       4     0.3333         256\n")
    assert result.stderr == ""


@pytest.mark.parametrize("args, message", [
    (["replay", "missing.txt", "-s", "2"], "missing.txt: no such file or folder"),
    (["replay", "{keys}", "-s", "2", "-p", "nosuch"], "unknown policy 'nosuch'"),
])
def test_replay_user_error_is_one_line_exit_2(tmp_path, args, message):
    keys = tmp_path / "keys.txt"
    keys.write_text("1\n2\n")
    args = [a.format(keys=keys) for a in args]
    result = CliRunner().invoke(cli, args, prog_name="cachesim")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("cachesim: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_version():
    result = invoke("--version")
    assert result.stdout == f"cachesim, version {cachesim.__version__}\n"


def test_replay_precision_reports_the_sweep_fields():
    """`replay --precision` gives, for one configuration, the bytes and memory `sweep` gives."""
    import polars as pl
    from cachesim.sweep import run_sweep
    path = str(CRITEO)
    r = CliRunner().invoke(cli, ["replay", path, "-p", "lfu", "-s", "5%", "-w", "32",
                                 "--precision", "int8,int4", "--json", "-q"])
    assert r.exit_code == 0, r.output
    got = {rec["precision"]: rec for rec in json.loads(r.output)}
    table = run_sweep(cachesim.read_trace(path), "lfu", "5%", ways="32",
                      precisions="int8,int4", jobs=1).table
    for row in table.to_dicts():
        rec = got[row["precision"]]
        for field in ("h2d_bytes", "d2h_bytes", "total_bytes", "store_bytes", "cache_bytes",
                      "metadata_bytes", "unique_misses", "evictions"):
            assert rec[field] == row[field], (row["precision"], field)
        assert rec["ratio_vs_fp32"] == pytest.approx(row["ratio_vs_fp32"])


def test_train_batch_size_rebatches_the_trace(shared_data):
    """--batch-size reaches the executor: the txt trace (no batches) trains in B-sample steps."""
    txt = shared_data / "cloudphysics" / "cloudPhysicsIO.txt"
    calls = {}
    for b in (128, 512):
        r = CliRunner().invoke(cli, ["train", str(txt), "--model", "small", "--no-baselines",
                                     "-p", "lru", "-s", "5%", "--precision", "int8", "-q",
                                     "--test-fraction", "0", "--batch-size", str(b), "--json"])
        assert r.exit_code == 0, r.output
        rec = json.loads(r.output[r.output.index("["):])[0]
        calls[b] = rec["calls"]
    assert calls[128] == -(-113872 // 128) and calls[512] == -(-113872 // 512)


def test_batch_cache_larger_than_the_keys_replays_as_all_keys():
    tr = cachesim.read_trace(CRITEO)
    big = cachesim.replay(tr, "lru", 10 * tr.n_distinct, mode="batch", ways=None)
    exact = cachesim.replay(tr, "lru", tr.n_distinct, mode="batch", ways=None)
    assert big.capacity == 10 * tr.n_distinct and big.n_lines == 10 * tr.n_distinct
    for f in ("unique_misses", "evictions", "conflict_misses", "unique_indices"):
        assert getattr(big, f) == getattr(exact, f)
    assert big.unique_misses == tr.n_distinct  # compulsory only


def test_shards_with_an_empty_sample_is_an_error():
    from cachesim.analysis.mrc import shards_curve
    with pytest.raises(cachesim.CachesimError, match="sampled none"):
        shards_curve(np.arange(1, 101, dtype=np.int64), rate=1e-9)  # fmix64(0) = 0 is always sampled
