"""Cache allocation across tables: greedy on the hull against brute force and TorchRec's rule."""
import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.analysis.allocate import _upper_hull, allocate
from cachesim.cli import cli
from cachesim.errors import CachesimError
from cachesim.analysis.mrc import lru_hits


def depth_trace(rng, counts):
    """Keys of one table whose LRU stack distances are exactly counts[d] accesses at depth d
    (after one first access per depth), so its hits curve is sum(counts[:C]): concave when
    counts decrease."""
    k = len(counts)
    stack = list(range(k))
    keys = list(range(k - 1, -1, -1))  # first accesses leave stack = [0, 1, ..., k-1]
    depths = np.repeat(np.arange(k), counts)
    rng.shuffle(depths)
    for d in depths.tolist():
        key = stack.pop(d)
        stack.insert(0, key)
        keys.append(key)
    return keys


def multi_table(rng, per_table_counts):
    parts = [depth_trace(rng, c) for c in per_table_counts]
    order = np.concatenate([np.full(len(p), t) for t, p in enumerate(parts)])
    rng.shuffle(order)
    table, row = np.empty(order.size, np.int32), np.empty(order.size, np.int64)
    pos = [0] * len(parts)
    for i, t in enumerate(order.tolist()):  # keep each table's own order
        table[i], row[i] = t, parts[t][pos[t]]
        pos[t] += 1
    return cachesim.Trace(table=table, row=row, batch=np.arange(order.size) // 10)


def test_depth_trace_has_the_asked_distances():
    rng = np.random.default_rng(0)
    keys = depth_trace(rng, [5, 3, 2, 1])
    tr = cachesim.Trace.from_keys(keys)
    assert lru_hits(tr.dense_ids, tr.n_distinct).tolist() == [0, 5, 8, 10, 11]


def test_upper_hull():
    assert _upper_hull(np.array([0.0, 1, 3, 4, 4.4, 5])).tolist() == [0, 2, 3, 5]
    assert _upper_hull(np.array([0.0, 1, 3, 4, 4.6, 5])).tolist() == [0, 2, 3, 4, 5]
    assert _upper_hull(np.array([0.0, 2, 4, 6])).tolist() == [0, 3]   # collinear points drop


@pytest.mark.parametrize("seed", range(6))
def test_greedy_equals_brute_force_on_convex_curves(seed):
    rng = np.random.default_rng(seed)
    counts = [sorted(rng.integers(1, 9, rng.integers(2, 6)).tolist(), reverse=True)
              for _ in range(3)]
    tr = multi_table(rng, counts)
    hits = [np.concatenate([[0], np.cumsum(c)]) for c in counts]
    row_bytes = 64  # fp32, dim 16: every table's rows cost the same
    for budget_rows in range(1, sum(len(c) for c in counts) + 2):
        a = allocate(tr, budget_rows * row_bytes)
        best = max(sum(h[r] for h, r in zip(hits, rs))
                   for rs in itertools.product(*(range(len(h)) for h in hits))
                   if sum(rs) <= budget_rows)
        assert a.totals["greedy_hits"] == best
        assert a.totals["greedy_hits"] >= a.totals["torchrec_hits"]
        assert a.totals["greedy_bytes"] <= budget_rows * row_bytes
        assert [t["hits"] for t in a.tables] == [h[t["rows"]] for h, t in zip(hits, a.tables)]


def test_random_trace_beats_torchrec_rule_and_reports_unified():
    rng = np.random.default_rng(7)
    n = 30000
    table = rng.integers(0, 4, n)
    row = (rng.random(n) ** np.array([1.5, 3.0, 4.0, 6.0])[table] * 2000).astype(np.int64)
    tr = cachesim.Trace(table=table, row=row, batch=np.arange(n) // 100,
                        table_dims=[16, 32, 8, 64])
    for budget in ("8KiB", "32KiB", "128KiB"):
        a = allocate(tr, budget)
        t = a.totals
        assert t["greedy_hits"] >= t["torchrec_hits"]
        assert t["greedy_bytes"] <= a.budget_bytes and t["torchrec_bytes"] <= a.budget_bytes
        assert [x["row_bytes"] for x in a.tables] == [64, 128, 32, 256]
        # the unified cache: exact fully associative LRU on the linearised trace at the same
        # total rows (the exact curve has no sets)
        assert t["unified_hits"] == cachesim.replay(tr, "lru", t["unified_rows"],
                                                    mode="access", ways=None).hits


def test_budget_below_one_row_is_an_error():
    tr = cachesim.Trace(table=[0, 1, 1], row=[0, 0, 0], table_dims=[16, 8])
    with pytest.raises(CachesimError, match="below one cache row"):
        allocate(tr, 31)          # the cheapest row: 8 x 4 bytes
    assert allocate(tr, 32).tables[1]["rows"] == 1
    with pytest.raises(CachesimError, match="bytes"):
        allocate(tr, "5%")


def test_cli_allocate(shared_data):
    path = str(shared_data / "criteo/kaggle_train_head10k.tsv")
    r = CliRunner().invoke(cli, ["allocate", path, "--budget", "64KiB", "--precision", "fp16",
                                 "--json"])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.output)
    assert len(rec["tables"]) == 26 and rec["budget_bytes"] == 65536
    assert rec["totals"]["greedy_bytes"] <= 65536
    assert rec["totals"]["greedy_hits"] >= rec["totals"]["torchrec_hits"]
    r = CliRunner().invoke(cli, ["allocate", path, "--budget", "1B"])
    assert r.exit_code == 2 and "below one cache row" in r.output
