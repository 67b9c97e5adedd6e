"""Executor training: counters equal the batch simulator's, bytes equal the cost model's, the
cache plumbing is exact (fp32 store behind a cache trains bit-for-bit like all rows on the
device), evaluation touches nothing, and no CuPy at import."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from cachesim import costs as cost
from cachesim.simulate.batch import replay_batch
from cachesim.errors import CachesimError
from cachesim.executor import get_xp, train
from cachesim.executor.train import with_batches
from cachesim.synth.generate import generate

COUNTERS = ("calls", "requested_indices", "unique_indices", "unique_misses",
            "conflict_unique_misses", "conflict_misses", "evictions", "misses")
TINY = {"bottom": (4,), "top": (4,)}


@pytest.fixture(scope="module")
def multihot():
    # 3 tables, Poisson bags (0..several rows per (sample, table)), labels from the teacher
    return generate(400, tables=3, rows=[300, 80, 1000], alpha=1.0, bag_size="poisson:1.5",
                    batch_size=16, seed=3, teacher=True, dim=4)


@pytest.fixture(scope="module")
def onehot():
    return generate(300, tables=4, rows=500, alpha=1.1, batch_size=8, seed=5, dim=4)


def _train(trace, **kw):
    # the ideal cache model (BatchCache, any ways): these tests compare with replay_batch; the
    # fbgemm model (32 ways) is tests/test_executor_fbgemm.py's
    opts = dict(model=TINY, progress=False, baselines=False, test_fraction=0.0, device="cpu",
                cache_model="ideal")
    opts.update(kw)
    return train(trace, **opts)


@pytest.mark.parametrize("policy,ways,size", [("lru", 4, "10%"), ("lru", None, "5%"),
                                              ("lfu", 8, "10%"), ("lfu", 2, "3%"),
                                              ("lru", 1, "2%")])
def test_counters_equal_batch_replay(multihot, policy, ways, size):
    rec, = _train(multihot, precision="int8", size=size, policy=policy, ways=ways)
    sim = replay_batch(multihot, policy, size, ways=ways, cache_model="ideal")
    assert {k: rec[k] for k in COUNTERS} == {k: getattr(sim, k) for k in COUNTERS}
    assert rec["evictions"] > 0 and rec["conflict_unique_misses"] > 0 or ways is None
    assert rec["hit_ratio"] == pytest.approx(sim.hit_ratio)
    assert rec["cache_lines"] == sim.n_lines


@pytest.mark.parametrize("precision", ["fp32", "int8", "int4"])
def test_bytes_equal_cost_model(multihot, precision):
    rec, = _train(multihot, precision=precision, size="10%", policy="lru", ways=4)
    sim = replay_batch(multihot, "lru", "10%", ways=4, cache_model="ideal").to_record(
        per_table=True)
    want = cost.transfer_cost(sim, cost.row_bytes(precision, multihot.table_dims))
    assert rec["h2d_bytes"] == want["h2d_bytes"] > 0
    assert rec["d2h_bytes"] == want["d2h_bytes"] > 0
    # no cache: every unique row of every batch read and written back
    nc, = _train(multihot, precision=precision, size="0")
    assert nc["h2d_bytes"] == nc["d2h_bytes"] == want["no_cache_h2d_bytes"]
    assert nc["unique_misses"] == nc["unique_indices"] == sim["unique_indices"]


def test_counters_cover_training_steps_only(multihot):
    rec, = _train(multihot, precision="int4", size="10%", policy="lfu", ways=4,
                  test_fraction=0.25)
    n_batches = len(np.unique(multihot.batch))
    n_train = n_batches - round(0.25 * n_batches)
    stop = int(np.searchsorted(multihot.batch, np.unique(multihot.batch)[n_train]))
    prefix = multihot.slice(0, stop)
    sim = replay_batch(prefix, "lfu", rec["capacity"], ways=4, cache_model="ideal")
    assert rec["calls"] == n_train
    assert {k: rec[k] for k in COUNTERS} == {k: getattr(sim, k) for k in COUNTERS}
    assert rec["test_samples"] > 0 and 0 <= rec["auc"] <= 1


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_fp32_store_behind_cache_trains_exactly_like_device_rows(multihot, optimizer):
    # an fp32 store is lossless, so write-backs, fills and conflict-miss read-modify-writes must
    # leave every weight bit-identical to training with all rows on the device
    kw = dict(precision="fp32", policy="lru", ways=2, optimizer=optimizer, return_state=True,
              lr=0.5)
    dev, = _train(multihot, size="all", **kw)
    for size in ("3%", "0"):
        cached, = _train(multihot, size=size, **kw)
        assert size == "0" or cached["evictions"] > 0 and cached["conflict_unique_misses"] > 0
        assert np.array_equal(cached["_state"]["rows"], dev["_state"]["rows"])
        for k, v in dev["_state"]["params"].items():
            assert np.array_equal(cached["_state"]["params"][k], v)
    moved = np.abs(dev["_state"]["rows"] - _train(multihot, size="all", epochs=1, lr=0.0,
                                                  **{k: v for k, v in kw.items() if k != "lr"})
                   [0]["_state"]["rows"]).max()
    assert moved > 1e-3  # training did change the rows


def test_low_precision_store_tracks_fp32(onehot):
    # int8 with a cache stays close to fp32; deterministic rounding is reproducible
    kw = dict(policy="lru", ways=4, return_state=True, rounding="deterministic", lr=0.3)
    dev, = _train(onehot, precision="fp32", size="all", **kw)
    a, = _train(onehot, precision="int8", size="20%", **kw)
    b, = _train(onehot, precision="int8", size="20%", **kw)
    assert np.array_equal(a["_state"]["rows"], b["_state"]["rows"])
    err = np.abs(a["_state"]["rows"] - dev["_state"]["rows"]).max()
    span = np.ptp(dev["_state"]["rows"], axis=1).max()
    assert 0 < err < 0.05 * span


def _cache_state(emb) -> list:
    """What evaluation must leave alone: counters, byte counters, every row, the cache's lines."""
    c = emb.cache
    return [dict(emb.counters), emb.h2d_bytes, emb.d2h_bytes, emb.weights(), c.line_ids.copy(),
            c.slot_of.copy(), c.counters.copy(), c.calls]


def test_evaluation_does_not_touch_the_cache(onehot, monkeypatch):
    from cachesim.executor.cache import CachedTable
    real, checked = CachedTable.lookup, []

    def lookup(emb, ids):  # each evaluation read: the state before and after, and its rows
        before = _cache_state(emb)
        inverse, rows = real(emb, ids)
        after = _cache_state(emb)
        for a, b in zip(before, after):
            assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
        # the rows it reads are the rows as trained: the line where cached, else the store
        assert np.array_equal(np.asarray(rows)[np.asarray(inverse)], before[3][ids])
        checked.append(len(ids))
        return inverse, rows

    monkeypatch.setattr(CachedTable, "lookup", lookup)
    rec, = _train(onehot, precision="int8", size="10%", policy="lru", ways=4, test_fraction=0.3)
    assert checked and sum(checked) == rec["test_samples"] * onehot.n_tables
    assert rec["evictions"] > 0  # the cache was busy when evaluation began


def test_baselines_and_record_shape(multihot):
    recs = train(multihot, precision=["int8", "int4"], size=["10%"], policy=["lru", "lfu"],
                 ways=4, model=TINY, progress=False, device="cpu", seed=[0, 1],
                 cache_model="ideal")
    got = [(r["precision"], r["size"], r["policy"], r["seed"]) for r in recs]
    want = []
    for s in (0, 1):
        want += [("fp32", "all", "none", s), ("int8", "0", "none", s), ("int4", "0", "none", s)]
        want += [(p, "10%", pol, s) for p in ("int8", "int4") for pol in ("lru", "lfu")]
    assert got == want
    r = recs[3]
    assert list(r)[:4] == ["policy", "size", "ways", "precision"]
    for k in ("auc", "logloss", "accuracy", "hit_ratio", "h2d_bytes", "d2h_bytes",
              "samples_per_s", "device_bytes", "host_bytes", "loss_curve") + COUNTERS:
        assert k in r
    assert r["labels"] == "trace"
    assert recs[0]["h2d_bytes"] == 0 and recs[0]["host_bytes"] == 0
    # int4 store: ceil(4/2) + 4 = 6 bytes a row; int8: 4 + 8
    assert recs[1]["host_bytes"] == 12 * multihot.n_distinct
    assert recs[2]["host_bytes"] == 6 * multihot.n_distinct


def test_learns_the_planted_teacher():
    tr = generate(3000, tables=4, rows=200, alpha=0.8, batch_size=32, seed=7, teacher=True, dim=4)
    r, = train(tr, precision="int8", size="0", model=TINY, progress=False, device="cpu",
               baselines=False, epochs=3, lr=0.1, test_fraction=0.2)
    assert r["auc"] > 0.68
    assert r["loss_curve"][-1] < r["loss_curve"][0]


def test_teacher_labels_when_the_trace_has_none(onehot):
    r, = _train(onehot, precision="int8", size="0", test_fraction=0.2)
    assert r["labels"].startswith("planted teacher (seed ")


def test_batch_size_rebatches_like_the_simulator(onehot):
    rec, = _train(onehot, precision="int8", size="10%", policy="lru", ways=4, batch_size=20)
    sim = replay_batch(with_batches(onehot, 20), "lru", "10%", ways=4, cache_model="ideal")
    assert rec["calls"] == sim.calls == 15
    assert {k: rec[k] for k in COUNTERS} == {k: getattr(sim, k) for k in COUNTERS}


def test_user_errors(onehot):
    with pytest.raises(CachesimError, match="fp32"):
        _train(onehot, precision="int8", size="all")
    with pytest.raises(CachesimError, match="'opt'.*batch rule.*pass one of lru, lfu"):
        _train(onehot, precision="int8", size="5%", policy="opt")
    with pytest.raises(CachesimError, match="test-fraction"):
        _train(onehot, precision="int8", size="0", test_fraction=1.0)
    with pytest.raises(CachesimError, match="one embedding dim"):
        tr = generate(50, tables=2, rows=10, batch_size=8, seed=1)
        tr.table_dims = np.array([4, 8])
        _train(tr, precision="int8", size="0")


def test_gpu_without_cupy_is_a_clear_error():
    if "cupy" in sys.modules:
        pytest.skip("CuPy is present")
    with pytest.raises(CachesimError, match="CuPy"):
        get_xp("gpu")
    assert get_xp("auto").name == "cpu"


def test_import_does_not_import_cupy():
    code = ("import sys, cachesim, cachesim.executor, cachesim.executor.train; "
            "print('cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_train_json(tmp_path):
    tr = generate(200, tables=3, rows=100, batch_size=16, seed=2, teacher=True, dim=4)
    path = tmp_path / "t.parquet"
    try:
        from cachesim.io import write_trace
    except ImportError:
        pytest.skip("no trace writer yet")
    write_trace(tr, path)
    from cachesim.cli import cli
    res = CliRunner().invoke(cli, ["train", str(path), "--precision", "int8", "--size", "10%",
                                   "--policy", "lru", "--ways", "32", "--model", "small",
                                   "--device", "cpu", "--json", "--quiet", "--seeds", "0,1"])
    assert res.exit_code == 0, res.output
    recs = json.loads(res.output)
    assert [(r["precision"], r["size"], r["seed"]) for r in recs] == [
        ("fp32", "all", 0), ("int8", "0", 0), ("int8", "10%", 0),
        ("fp32", "all", 1), ("int8", "0", 1), ("int8", "10%", 1)]
    res = CliRunner().invoke(cli, ["train", str(path), "--precision", "int3", "--size", "1%"])
    assert res.exit_code == 2
    assert "int3" in res.output


def test_gpu_check_script_dry_run(capsys):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if "cupy" not in sys.modules:
        assert mod.main([]) == 2
        assert "needs CuPy" in capsys.readouterr().err
    assert mod.main(["--dry-run", "--check-samples", "600", "--speed-samples", "600",
                     "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "counters and bytes equal" in out and "DIFFER" not in out


def _trace_file(tmp_path):
    from cachesim.io import write_trace
    path = tmp_path / "t.parquet"
    write_trace(generate(200, tables=3, rows=100, batch_size=16, seed=2, teacher=True, dim=4),
                path)
    return path


def test_cli_train_prints_a_line_per_configuration_off_a_terminal(tmp_path):
    from cachesim.cli import cli
    args = ["train", str(_trace_file(tmp_path)), "--precision", "int8", "--size", "10%",
            "--policy", "lru", "--ways", "32", "--model", "small", "--device", "cpu"]
    res = CliRunner().invoke(cli, args)              # CliRunner's stderr is not a terminal
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("train: ")]
    assert [ln.split(":")[1].split(" seed")[0] for ln in lines] == [
        " 1/3 fp32 all rows on device", " 2/3 int8 no cache", " 3/3 int8 lru 10%"]
    for ln in lines:
        assert " seed 0: " in ln and " samples/s, loss 0." in ln and ", auc " in ln
    quiet = CliRunner().invoke(cli, args + ["--quiet"])
    assert quiet.exit_code == 0 and "train: " not in quiet.stderr


def test_train_shows_a_bar_per_configuration_on_a_terminal(onehot, monkeypatch):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    _train(onehot, precision="int8", size="10%", policy="lru", ways=4, baselines=True,
           progress=True)
    text = term.getvalue()
    for desc in ("fp32 all rows on device seed 0", "int8 no cache seed 0",
                 "int8 lru 10% seed 0"):
        assert desc in text
    assert "sample/s" in text and "loss=0." in text
    assert "train: " not in text                      # lines are for non-terminals only
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    _train(onehot, precision="int8", size="10%", policy="lru", ways=4, progress=False)
    assert quiet.getvalue() == ""
