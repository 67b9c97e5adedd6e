"""`cachesim replay` prints what the plain-Python oracles (tests/naive.py) count; exact table
output; --version."""
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from tests import naive

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


def test_replay_json_matches_the_plain_python_oracle_access_mode(shared_data):
    path = shared_data / "cloudphysics" / "cloudPhysicsIO.txt"
    result = invoke("replay", path, "--policy", "lru,fifo", "--size", "1000,5%", "--json", "-q")
    assert result.stderr == ""
    printed = json.loads(result.stdout)
    # the configurations are the ones asked for, in order
    assert [(r["policy"], r["size"]) for r in printed] == [
        ("lru", "1000"), ("lru", "5%"), ("fifo", "1000"), ("fifo", "5%")]
    # each count as tests/naive.py's plain-Python 32-way cache (the default ways) gives it: the
    # keys are read here as plain integers, one a line (48,974 distinct: 5% = 2,449 rows); the
    # rows fill whole sets of 32 (1,024 and 2,464 lines)
    keys = [int(k) for k in path.read_text().split()]
    assert len(keys) == 113_872 and len(set(keys)) == 48_974
    for rec in printed:
        rows = 1000 if rec["size"] == "1000" else 2449
        hits, misses, _, evictions = naive.set_associative(keys, rows, 32, rec["policy"])
        assert rec["capacity"] == {1000: 1024, 2449: 2464}[rows]
        assert rec["ways"] == 32 and rec["requests"] == len(keys)
        assert (rec["hits"], rec["misses"], rec["evictions"]) == (hits, misses, evictions)
        assert rec["hit_ratio"] == pytest.approx(hits / len(keys))
        assert rec["miss_bytes"] == 64 * misses  # one fp32 row of dim 16 a miss
    assert printed[0]["hits"] != printed[2]["hits"]  # lru and fifo differ


def test_replay_json_matches_the_plain_python_oracle_batch_mode():
    # the ideal model (tests/naive.py's rules); the fbgemm model's oracle is
    # tests/naive_fbgemm.py (tests/test_cache_model.py)
    result = invoke("replay", CRITEO, "-p", "lru", "-s", "5%", "-w", "32", "--mode", "batch",
                    "--cache-model", "ideal", "--json", "-q")
    (printed,) = json.loads(result.stdout)
    trace = cachesim.read_trace(CRITEO)
    assert printed["mode"] == "batch" and printed["ways"] == 32
    assert printed["cache_model"] == "ideal"
    assert printed["requested_indices"] == len(trace) == 260_000
    # FBGEMM's batch rules, literally (tests/naive.py): 5% of 43,591 keys = 2,180 rows, in
    # 69 sets of 32 ways = 2,208 lines
    totals, per_table, _ = naive.batch_replay(trace.keys.tolist(), trace.table.tolist(),
                                              trace.batch.tolist(), trace.n_tables, "lru",
                                              2180, 32)
    assert printed["capacity"] == printed["n_lines"] == 2208
    assert totals["calls"] == printed["calls"] == 79
    for name, value in per_table.items():
        assert printed[name] == totals[name], name
        assert printed["per_table"][name] == value, name
    assert 0 < printed["unique_misses"] < printed["unique_indices"]


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
    # the ideal model: fully associative (FBGEMM's cache has 32 or 64 ways)
    big = cachesim.replay(tr, "lru", 10 * tr.n_distinct, mode="batch", ways=None,
                          cache_model="ideal")
    exact = cachesim.replay(tr, "lru", tr.n_distinct, mode="batch", ways=None,
                            cache_model="ideal")
    assert big.capacity == 10 * tr.n_distinct and big.n_lines == 10 * tr.n_distinct
    for f in ("unique_misses", "evictions", "conflict_misses", "unique_indices"):
        assert getattr(big, f) == getattr(exact, f)
    assert big.unique_misses == tr.n_distinct  # compulsory only


def test_shards_with_an_empty_sample_is_an_error():
    from cachesim.analysis.mrc import shards_curve
    with pytest.raises(cachesim.CachesimError, match="sampled none"):
        shards_curve(np.arange(1, 101, dtype=np.int64), rate=1e-9)  # fmix64(0) = 0 is always sampled


@pytest.mark.parametrize("command, new, old, value", [
    ("mrc", "--size", "--sizes", "1,2"),
    ("report", "--size", "--sizes", "5%"),
    ("allocate", "--cache-precision", "--precision", "fp16"),
])
def test_renamed_options_still_take_their_old_spelling_but_help_shows_the_new(
        tmp_path, command, new, old, value):
    helptext = invoke(command, "--help").stdout
    assert f"{new} " in helptext and f"{old} " not in helptext
    if command == "mrc":  # LRU on 1 2 1 3 2 1: one row hits nothing, two rows hit the 2nd 1
        path = tmp_path / "keys.txt"
        path.write_text("1\n2\n1\n3\n2\n1\n")
        for flag in (new, old):
            assert invoke("mrc", path, flag, value).stdout == (
                "size,miss_ratio,hit_ratio\n1,1.0,0.0\n2,0.8333333333333334,0.16666666666666663\n")
    elif command == "allocate":
        got = [json.loads(invoke("allocate", CRITEO, "--budget", "64KiB", flag, value,
                                 "--json").stdout) for flag in (new, old)]
        assert got[0] == got[1] and got[0]["cache_precision"] == "fp16"
        # fp16 rows of dim 16 are 32 bytes: 64 KiB holds 2,048 of them
        assert got[0]["totals"]["greedy_rows"] == 2048
    else:  # a bad value is named by the new spelling, whichever was typed
        for flag in (new, old):
            r = CliRunner().invoke(cli, [command, str(CRITEO), "-o", str(tmp_path / "r"), flag,
                                         "5%,abc"])
            assert r.exit_code == 2 and "--size 'abc'" in r.stderr
        assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["replay", "sweep", "report", "train", "analyze", "mrc",
                                     "allocate"])
def test_every_command_with_progress_takes_quiet(command):
    """README: `-q/--quiet` turns off the progress bars, in every command that shows one."""
    assert "-q, --quiet" in invoke(command, "--help").stdout


@pytest.mark.parametrize("args", [["analyze", "--json"], ["mrc", "-s", "10,100"],
                                  ["allocate", "--budget", "4KiB", "--json"]])
def test_quiet_streamed_analysis_prints_the_same(shared_data, args):
    path = shared_data / "cloudphysics" / "cloudPhysicsIO.txt"
    cmd, *rest = args
    loud = invoke(cmd, path, "--stream", *rest)
    quiet = invoke(cmd, path, "--stream", "-q", *rest)
    assert quiet.stderr == ""
    if cmd == "analyze":  # its JSON carries the wall-clock seconds of the pass
        strip = lambda out: {k: v for k, v in json.loads(out).items() if "seconds" not in k}  # noqa: E731
        assert strip(quiet.stdout) == strip(loud.stdout)
    else:
        assert quiet.stdout == loud.stdout


def test_a_reports_other_warnings_pass_through_once(capsys):
    """`report` prints the table-rows warning once and passes any other warning on: once, and
    then returns (passing it on inside the recording recorded it again, so the loop over the
    recorded warnings never ended and grew without bound: a CI worker reached 23 GB)."""
    import signal
    import warnings

    from cachesim.cli import _table_rows_warning_once
    from cachesim.simulate.fbgemm import TableRowsInferredWarning
    def hung(signum, frame):
        raise TimeoutError("the warnings were never passed on: the loop did not end")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # (that bug never returned: fail instead of hanging the suite)
    try:
        with warnings.catch_warnings(record=True) as outer:
            warnings.simplefilter("always")
            with _table_rows_warning_once():
                warnings.warn("a font was not found", UserWarning)
                warnings.warn("rows inferred", TableRowsInferredWarning)
                warnings.warn("rows inferred", TableRowsInferredWarning)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert [(w.category, str(w.message)) for w in outer] == [(UserWarning,
                                                              "a font was not found")]
    assert capsys.readouterr().err == "cachesim: warning: rows inferred\n"
