"""Batch mode is open to every policy: a plugin that declares a `BatchRule` (tests/
batch_fifo_plugin.py: FIFO by fill stamp) replays in batch mode, sweeps, reports and trains,
and its counts equal tests/naive.py's batch model written from the rule's definition."""
import importlib
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.costs import metadata_bytes
from cachesim.errors import CachesimError
from cachesim.policies import BatchRule, batch_policy_names
from cachesim.simulate.batch import COUNTER_NAMES, BatchCache, replay_batch
from cachesim.synth.generate import generate
from tests import naive
from tests.test_plugins import registry  # noqa: F401  (a fixture: the registry is restored)

PLUGIN = "tests.batch_fifo_plugin"
NAME = "fillfifo"


@pytest.fixture
def fresh(registry):
    """The plugin is registered for the test only: test_plugins' `registry` restores the
    registry; the module is dropped so that each test's import registers it again."""
    sys.modules.pop(PLUGIN, None)
    yield
    sys.modules.pop(PLUGIN, None)


@pytest.fixture
def plugin(fresh):
    return importlib.import_module(PLUGIN)


def _oracle(trace, policy, capacity, ways):
    return naive.batch_replay(trace.keys.tolist(), trace.table.tolist(), trace.batch.tolist(),
                              trace.n_tables, policy, capacity, ways)


def _random_trace(rng, n_batches=40):
    """Several tables, skewed rows, batches of varying length with repeats."""
    tables, rows, batch = [], [], []
    for b in range(n_batches):
        n = int(rng.integers(1, 30))
        tables += rng.integers(0, 3, n).tolist()
        rows += np.minimum(rng.zipf(1.3, n) - 1, 59).tolist()
        batch += [b] * n
    return cachesim.Trace(table=np.array(tables), row=np.array(rows), batch=np.array(batch),
                          table_rows=np.array([60, 60, 60]))


# -- the rule ------------------------------------------------------------------------------------
def test_batch_rule_is_checked():
    with pytest.raises(ValueError, match="order 'age'"):
        BatchRule(order="age")
    with pytest.raises(ValueError, match="admission 'never'"):
        BatchRule(admission="never")
    with pytest.raises(ValueError, match="'count-at-least' needs order 'count'"):
        BatchRule(order="stamp", admission="count-at-least")


def test_the_registry_lists_the_batch_policies(plugin):
    assert batch_policy_names() == ["lru", "lfu", NAME]
    assert cachesim.policies.get_policy("fifo").batch_rule is None


def test_hand_traced_fifo_differs_from_lru(plugin):
    # 2 rows, fully associative. batch 1 [1 2]: 1 -> line 0, 2 -> line 1 (both fill stamp 1)
    # batch 2 [1]: a hit (LRU restamps line 0 to 2; FIFO keeps stamp 1)
    # batch 3 [3]: LRU takes the oldest stamp, line 1 (evicts 2); FIFO the oldest fill, ties to
    #              the lowest way: line 0 (evicts 1)
    tr = cachesim.Trace.from_keys([1, 2, 1, 3], batch=[0, 0, 1, 2])
    key = tr.distinct_keys
    for policy, evicted, line in (("lru", 2, 1), (NAME, 1, 0)):
        cache = BatchCache.for_trace(tr, 2, ways=None, policy=policy)
        cache.step(tr.dense_ids[:2])
        assert cache.step(tr.dense_ids[2:3]).was_hit.tolist() == [True]
        s3 = cache.step(tr.dense_ids[3:])
        assert key[s3.evicted_ids].tolist() == [evicted] and s3.evicted_slots.tolist() == [line]
        assert s3.filled_slots.tolist() == [line]


@pytest.mark.parametrize("seed", range(4))
def test_plugin_equals_the_naive_model(plugin, seed):
    rng = np.random.default_rng(seed)
    tr = _random_trace(rng)
    for capacity, ways in ((1, None), (7, None), (12, 4), (30, 2), (9, 1), ([3, 5, 2], 2)):
        per_table = isinstance(capacity, list)
        want, want_t, steps = _oracle(tr, "fifo", capacity, ways)
        r = replay_batch(tr, NAME, capacity, ways=ways, per_table=per_table, cache_model="ideal")
        assert r.policy == NAME
        assert {n: getattr(r, n) for n in COUNTER_NAMES} == {n: want[n] for n in COUNTER_NAMES}
        assert r.calls == want["calls"]
        for n in COUNTER_NAMES:
            assert r.per_table[n] == want_t[n]
        # step by step: the same lines
        cache = BatchCache.for_trace(tr, capacity, ways=ways, policy=NAME)
        starts = np.flatnonzero(np.diff(tr.batch, prepend=-1, append=-2) != 0)
        key = tr.distinct_keys
        for i, st in enumerate(steps):
            s = cache.step(tr.dense_ids[starts[i]:starts[i + 1]])
            assert dict(zip(key[s.unique_ids].tolist(), s.slot.tolist())) == st["slot"]
            assert sorted(zip(s.evicted_slots.tolist(), key[s.evicted_ids].tolist())) == \
                st["evicted"]
            assert sorted(zip(s.filled_slots.tolist(), key[s.filled_ids].tolist())) == st["filled"]


def test_the_plugin_gets_a_set_associative_variant(plugin):
    # it declares set_rule="fifo": --ways in access mode replays FIFO within each set
    tr = _random_trace(np.random.default_rng(9))
    r = cachesim.replay(tr, NAME, 12, ways=4, mode="access")
    hits, misses, _, evictions = naive.set_associative(tr.keys.tolist(), 12, 4, "fifo")
    assert (r.hits, r.misses, r.evictions) == (hits, misses, evictions)
    assert r.ways == 4


def test_the_plugin_declares_its_metadata(plugin):
    assert metadata_bytes(NAME, 100, 5000) == {"tag_bytes": 800, "policy_state_bytes": 400}


# -- the commands --------------------------------------------------------------------------------
@pytest.fixture
def trace_file(tmp_path):
    from cachesim.io import write_trace
    tr = generate(300, tables=3, rows=100, batch_size=16, seed=3, teacher=True, dim=4)
    path = tmp_path / "t.parquet"
    write_trace(tr, path)
    return path, cachesim.read_trace(path)


def _invoke(args):
    res = CliRunner().invoke(cli, ["--plugin", PLUGIN, *args])
    assert res.exit_code == 0, res.output
    return res


def test_cli_replay_batch(fresh, trace_file):
    path, tr = trace_file
    res = _invoke(["replay", str(path), "--mode", "batch", "-p", f"lru,{NAME}", "-s", "10%",
                   "-w", "4", "--json", "-q", "--cache-model", "ideal"])
    recs = json.loads(res.stdout)
    assert [r["policy"] for r in recs] == ["lru", NAME]
    want, _, _ = _oracle(tr, "fifo", recs[1]["capacity"], 4)
    assert {n: recs[1][n] for n in COUNTER_NAMES} == {n: want[n] for n in COUNTER_NAMES}
    lru, _, _ = _oracle(tr, "lru", recs[0]["capacity"], 4)
    assert want["misses"] != lru["misses"]  # the rule matters on this trace


def test_cli_sweep(fresh, trace_file, tmp_path):
    path, tr = trace_file
    out = tmp_path / "sweep.json"
    _invoke(["sweep", str(path), "-p", f"{NAME},lru", "-s", "5%,20%", "-w", "4", "--precision",
             "fp32", "-o", str(out), "--jobs", "1", "-q", "--cache-model", "ideal"])
    rows = json.loads(out.read_text())
    mine = [r for r in rows if r["policy"] == NAME]
    assert len(mine) == 2
    for r in mine:
        want, _, _ = _oracle(tr, "fifo", r["capacity"], 4)
        assert (r["unique_misses"], r["evictions"], r["misses"]) == \
            (want["unique_misses"], want["evictions"], want["misses"])
        assert r["policy_state_bytes"] == 4 * r["cache_lines"]  # the plugin's declaration


def test_cli_report(fresh, trace_file, tmp_path):
    path, tr = trace_file
    out = tmp_path / "rep"
    _invoke(["report", str(path), "-o", str(out), "-q", "--size", "5%,20%", "--precision",
             "fp32", "--policy", f"lru,{NAME}", "--jobs", "1", "--cache-model", "ideal"])
    res = json.loads((out / "results.json").read_text())
    mine = [r for r in res["sweep"] if r["policy"] == NAME]
    assert mine
    for r in mine:
        want, _, _ = _oracle(tr, "fifo", r["capacity"], r["ways"])
        assert r["unique_misses"] == want["unique_misses"] and r["misses"] == want["misses"]
    curve = [r for r in res["curves"] if r["policy"] == NAME]  # access mode: the fifo kernel
    assert [r["misses"] for r in curve] == \
        [naive.fifo(tr.dense_ids.tolist(), r["capacity"])[1] for r in curve]
    assert NAME.upper() in (out / "report.md").read_text()


def test_cli_train(fresh, trace_file):
    path, tr = trace_file
    res = _invoke(["train", str(path), "--precision", "int8", "--size", "10%", "--policy", NAME,
                   "--ways", "4", "--model", "small", "--device", "cpu", "--json", "--quiet",
                   "--seeds", "0", "--cache-model", "ideal"])
    recs = json.loads(res.stdout)
    mine = [r for r in recs if r["policy"] == NAME]
    assert len(mine) == 1
    rec = mine[0]
    # the cache saw the training batches (the first 90% of the batches) under the plugin's rule
    n_train = int(rec["calls"])
    starts = np.flatnonzero(np.diff(tr.batch, prepend=-1) != 0)
    head = tr.slice(0, int(starts[n_train])) if n_train < len(starts) else tr
    want, _, _ = _oracle(head, "fifo", rec["capacity"], 4)
    assert {n: rec[n] for n in COUNTER_NAMES} == {n: want[n] for n in COUNTER_NAMES}


def test_fbgemms_model_names_the_ideal_one_for_a_plugin(fresh, trace_file):
    path, _ = trace_file
    for cmd in (["replay", "--mode", "batch", "-s", "5%", "-q"], ["sweep", "-s", "5%", "-q"],
                ["train", "--size", "5%", "--quiet"]):
        res = CliRunner().invoke(cli, ["--plugin", PLUGIN, cmd[0], str(path), "-p", NAME,
                                       "--cache-model", "fbgemm", *cmd[1:]])
        assert res.exit_code == 2, (cmd, res.output)
        assert f"policy '{NAME}': FBGEMM's cache model runs only lru and lfu" in res.output
        assert "--cache-model ideal" in res.output and "Traceback" not in res.output


def test_a_policy_without_a_rule_is_refused_everywhere(trace_file):
    path, tr = trace_file
    with pytest.raises(CachesimError, match="'fifo' has no batch rule"):
        replay_batch(tr, "fifo", "5%")
    res = CliRunner().invoke(cli, ["sweep", str(path), "-p", "fifo", "-s", "5%"])
    assert res.exit_code == 2 and "has no batch replay" in res.output and "lru, lfu" in res.output
    res = CliRunner().invoke(cli, ["train", str(path), "--policy", "fifo", "--size", "5%"])
    assert res.exit_code == 2 and "'fifo'" in res.output and "batch rule" in res.output


# -- figures ---------------------------------------------------------------------------------------
def test_figures_style_any_number_of_policies():
    from cachesim.reports import figures
    names = ["lru", "lfu", "opt"] + [f"plugin{i}" for i in range(15)]
    looks = figures.policy_styles(names)
    assert set(looks) == set(names)
    assert len(set(looks.values())) == len(names)  # no two policies look the same
    assert looks["lru"] == (figures._COLORS["lru"], figures.MARKERS["lru"])
    # the transfers plot: six policies, a (line style, marker) pair each, named in the caption
    pols = ["lru", "lfu", NAME, "p4", "p5", "p6"]
    results = {"sweep": [{"policy": p, "precision": "fp32", "cache_lines": 10,
                          "h2d_bytes_per_step": 1.0, "d2h_bytes_per_step": 1.0, "steps": 4,
                          "no_cache_transfer_bytes": 40} for p in pols]}
    styles, markers = figures.transfer_styles(results), figures.transfer_markers(results)
    assert len({(styles[p], markers[p]) for p in pols}) == len(pols)
    cap = figures.transfers_caption(results)
    for p in pols:
        assert (f"{p.upper()} {figures.style_word(styles[p])} with "
                f"{figures.MARKER_WORDS[markers[p]]}") in cap
    fig = figures.transfers_figure(results, {"trace": "t.parquet"})
    drawn = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    for p in pols:  # (the fourth style is a dash tuple: drawn, not taken for a format string)
        assert drawn[f"FP32 {p.upper()}"].get_marker() == markers[p]
