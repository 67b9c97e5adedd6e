"""The cost model: row layouts, memory (pinned to hand-computed Criteo Kaggle figures and the
paper's ratios), transfers from counters, and `cachesim memory`."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.costs import (costs_for, memory_cost, metadata_bytes, row_layout, transfer_cost)
from tests import naive

# DLRM's Criteo Kaggle tables C1..C26 (shared/data/README.md)
CRITEO = [1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27,
          14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572]
R = 33_762_577


def _memory_json(*args):
    res = CliRunner().invoke(cli, ["memory", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


# -- row layouts -----------------------------------------------------------------------------
@pytest.mark.parametrize("precision, dim, data, sb", [
    ("fp32", 16, 64, 0), ("fp16", 16, 32, 0), ("bf16", 7, 14, 0),
    ("int8", 16, 16, 8), ("int8-fp16qp", 16, 16, 4),
    ("int4", 16, 8, 4), ("int4", 15, 8, 4), ("int2", 16, 4, 4), ("int2", 13, 4, 4),
])
def test_row_layouts(precision, dim, data, sb):
    lay = row_layout(precision, dim)
    assert (lay.data_bytes, lay.scale_bias_bytes, lay.padding_bytes) == (data, sb, 0)
    assert lay.row_bytes == data + sb


def test_alignment_pads_rows_like_fbgemm_inference():
    # int4 dim 16: 8 + 4 = 12 B, padded to 16; int8-fp16qp dim 64: 68 -> 80; fp32 dim 16 stays 64
    assert row_layout("int4", 16, align=16).padding_bytes == 4
    assert row_layout("int8-fp16qp", 64, align=16).row_bytes == 80
    assert row_layout("fp32", 16, align=16).padding_bytes == 0


def test_unknown_precision_names_the_choices():
    with pytest.raises(cachesim.CachesimError, match="int8-fp16qp"):
        row_layout("int3", 16)


# -- memory: the paper's arithmetic, by hand -----------------------------------------------------
def test_criteo_int8_5pct_dim16_pinned():
    (rec,) = _memory_json("--rows", ",".join(map(str, CRITEO)), "--dim", "16",
                          "--precision", "int8", "--size", "5%", "--ways", "full")
    cache_rows = 1_688_128     # int(0.05 x 33,762,577 = 1,688,128.85): FBGEMM's load factor
    assert sum(CRITEO) == R
    assert rec["cache_rows"] == cache_rows
    assert rec["store_bytes"] == R * (16 + 8) == 810_301_848
    assert rec["scale_bias_bytes"] == R * 8
    assert rec["cache_bytes"] == cache_rows * 16 * 4 == 108_040_192
    assert rec["metadata_bytes"] == cache_rows * (8 + 8)          # tag + LRU stamp
    assert rec["total_bytes"] == 810_301_848 + 108_040_192 + cache_rows * 16 == 945_352_088
    fp32 = R * 16 * 4
    assert fp32 == 2_160_804_928                                    # the paper's 2.16 GB
    assert rec["ratio_vs_fp32"] == pytest.approx(fp32 / 945_352_088)
    # the paper's figures leave metadata out: 2.35x with fp32 scale/bias, 3.33x without
    assert round(rec["ratio_vs_fp32_excl_metadata"], 2) == 2.35
    assert round(rec["ratio_vs_fp32_data_only"], 2) == 3.33


def test_criteo_fp16_scale_bias_gives_the_papers_2_76x():
    (rec,) = _memory_json("--rows", "criteo-kaggle", "--precision", "int8-fp16qp",
                          "--size", "5%")
    assert rec["store_bytes"] == R * 20
    assert round(rec["ratio_vs_fp32_excl_metadata"], 2) == 2.76


@pytest.mark.parametrize("dim", [64, 128])
def test_criteo_int4_1pct_pinned(dim):
    (rec,) = _memory_json("--rows", "criteo-kaggle", "--dim", str(dim), "--precision", "int4",
                          "--size", "1%", "--ways", "full")
    cache_rows = 337_625                        # int(0.01 x 33,762,577 = 337,625.77)
    store = R * (dim // 2 + 4)
    cache = cache_rows * dim * 4
    meta = cache_rows * 16
    assert rec["cache_rows"] == cache_rows
    assert rec["store_bytes"] == store
    assert rec["scale_bias_bytes"] == R * 4
    assert rec["cache_bytes"] == cache
    assert rec["metadata_bytes"] == meta
    assert rec["total_bytes"] == store + cache + meta
    assert rec["ratio_vs_fp32"] == pytest.approx(R * dim * 4 / (store + cache + meta))
    if dim == 64:
        assert rec["total_bytes"] == 1_307_286_772
    else:
        assert rec["total_bytes"] == 2_474_121_236


def test_lfu_metadata_counts_every_row():
    # FBGEMM's LFU keeps an int64 count per row of all tables (+1 sentinel) and a tag per line
    assert metadata_bytes("lfu", 100, 5000) == {"tag_bytes": 800,
                                                "policy_state_bytes": 8 * 5001}
    assert metadata_bytes("lru", 100, 5000) == {"tag_bytes": 800, "policy_state_bytes": 800}
    assert metadata_bytes("fifo", 100, 5000)["policy_state_bytes"] == 0


def test_shared_cache_lines_take_the_largest_dim_per_table_caches_their_own():
    shared = memory_cost([100, 200], [8, 32], "fp32", 10)
    assert shared.cache_bytes == 10 * 32 * 4
    own = memory_cost([100, 200], [8, 32], "fp32", [4, 6])
    assert own.cache_bytes == 4 * 8 * 4 + 6 * 32 * 4
    assert own.store_bytes == 100 * 32 + 200 * 128


def test_memory_ways_round_up_to_whole_sets_and_bytes_sizes():
    (rec,) = _memory_json("--rows", "1000", "--dim", "16", "--precision", "fp32",
                          "--size", "50", "--ways", "32")
    assert rec["cache_rows"] == 64
    (rec,) = _memory_json("--rows", "1000", "--dim", "16", "--precision", "fp32",
                          "--size", "1KiB", "--cache-precision", "fp16")
    assert rec["cache_rows"] == 1024 // 32


def test_memory_says_when_the_cache_is_larger_than_the_tables():
    over, whole = _memory_json("--rows", "1000,2000", "--precision", "int8",
                               "--size", "5000,100%", "--ways", "32")
    assert over["cache_rows"] == 5024 and whole["cache_rows"] == 3008  # (whole sets, as asked)
    assert over["note"] == ("the cache's 5,000 rows are more than the tables' 3,000: 2,000 of "
                            "them can never be filled; at most 100% (3,000 rows) holds every row")
    assert whole["note"] is None  # 100% is every row; its last set's padding is no mistake
    res = CliRunner().invoke(cli, ["memory", "--rows", "1000,2000", "--size", "5000"])
    assert res.exit_code == 0 and "  note: the cache's 5,000 rows are more than" in res.output


def test_memory_readable_output():
    res = CliRunner().invoke(cli, ["memory", "--rows", "criteo-kaggle", "--precision", "int8",
                                   "--size", "5%"])
    assert res.exit_code == 0
    out = res.output
    assert "33,762,577 rows, dim 16; all rows in fp32: 2,160,804,928 B" in out
    assert "16 B data + 8 B scale/bias (fp32 scale + fp32 bias) = 24 B" in out
    assert "    scale/bias  270,100,616 B" in out
    assert "2.29x  (2.35x without metadata; 3.33x without scale/bias" in out


def test_memory_without_tables_is_a_one_line_error():
    res = CliRunner().invoke(cli, ["memory", "--precision", "int8"])
    assert res.exit_code == 2
    assert "give a TRACE or --rows" in res.output
    res = CliRunner().invoke(cli, ["memory", "--rows", "10,20", "--dim", "8,8,8"])
    assert res.exit_code == 2 and "3 dims for 2 tables" in res.output


# -- transfers -----------------------------------------------------------------------------------
def _batch_record(**kw):
    rec = {"policy": "lru", "size": "5%", "mode": "batch", "capacity": 10, "ways": 2,
           "n_sets": 5, "n_lines": 10, "per_table_caches": False, "calls": 4,
           "per_table": {"table": ["a", "b"], "unique_indices": [50, 30],
                         "unique_misses": [20, 10], "evictions": [12, 5],
                         "conflict_unique_misses": [3, 1]}}
    rec.update(kw)
    return rec


def test_transfer_from_batch_counters_per_table_dims():
    # table a: int8 dim 16 -> 24 B; table b: int8 dim 64 -> 72 B
    t = transfer_cost(_batch_record(), [24, 72], link_gbps=10.0)
    assert t["h2d_bytes"] == 20 * 24 + 10 * 72
    assert t["d2h_bytes"] == (12 + 3) * 24 + (5 + 1) * 72
    assert t["no_cache_h2d_bytes"] == 50 * 24 + 30 * 72
    assert t["no_cache_d2h_bytes"] == t["no_cache_h2d_bytes"]
    assert t["h2d_bytes_per_step"] == t["h2d_bytes"] / 4
    moved = t["h2d_bytes"] + t["d2h_bytes"]
    assert t["transfer_vs_no_cache"] == moved / (2 * t["no_cache_h2d_bytes"])
    assert t["transfer_ms_per_step"] == pytest.approx(moved / 4 / 10e9 * 1e3)


def test_inference_writes_nothing_back():
    t = transfer_cost(_batch_record(), [24, 72], inference=True)
    assert t["d2h_bytes"] == 0 and t["no_cache_d2h_bytes"] == 0
    assert t["h2d_bytes"] == 20 * 24 + 10 * 72


def test_totals_only_record_needs_equal_dims():
    rec = {"mode": "batch", "unique_misses": 7, "evictions": 2, "conflict_unique_misses": 1,
           "unique_indices": 9, "calls": 1}
    assert transfer_cost(rec, [10, 10])["d2h_bytes"] == 30
    with pytest.raises(cachesim.CachesimError, match="per-table"):
        transfer_cost(rec, [10, 20])


def test_costs_for_access_result_uses_misses():
    keys = np.random.default_rng(3).integers(0, 40, 500)
    tr = cachesim.Trace.from_keys(keys, batch=np.arange(500) // 50)
    res = cachesim.replay(tr, "lru", 10, mode="access")
    h, m, _, e = naive.lru(keys.tolist(), 10)
    c = costs_for(res, tr, "int4", dims=16)
    assert c["h2d_bytes"] == m * 12 and c["d2h_bytes"] == e * 12
    assert c["no_cache_h2d_bytes"] == 500 * 12
    assert c["steps"] == 10 and c["cache_lines"] == 10
    assert c["transfer_basis"] == "every miss (access replay)"
    assert c["store_bytes"] == int(tr.table_rows.sum()) * 12


def test_costs_for_batch_result_matches_the_step_api():
    """Bytes from the counters equal the bytes a user of BatchCache.step actually moves."""
    from cachesim.simulate.batch import BatchCache, batch_starts, replay_batch
    rng = np.random.default_rng(7)
    n = 3000
    tr = cachesim.Trace(table=rng.integers(0, 2, n), row=rng.zipf(1.3, n) % 300,
                        batch=np.arange(n) // 60, table_dims=[8, 32])
    rb = np.array([8 + 8, 32 + 8])                      # int8 rows
    res = replay_batch(tr, "lru", 40, ways=4, cache_model="ideal")  # BatchCache's model
    c = costs_for(res, tr, "int8")
    cache = BatchCache.for_trace(tr, 40, ways=4, policy="lru")
    starts = batch_starts(tr)
    h2d = d2h = 0
    for i in range(starts.shape[0] - 1):
        st = cache.step(tr.dense_ids[starts[i]:starts[i + 1]])
        conflict = st.unique_ids[st.slot == -1]
        h2d += rb[tr.key_table[st.filled_ids]].sum() + rb[tr.key_table[conflict]].sum()
        d2h += rb[tr.key_table[st.evicted_ids]].sum() + rb[tr.key_table[conflict]].sum()
    assert (c["h2d_bytes"], c["d2h_bytes"]) == (h2d, d2h)
    assert c["cache_lines"] == res.n_sets * 4
    assert c["cache_bytes"] == res.n_sets * 4 * 32 * 4        # shared cache: largest dim, fp32
