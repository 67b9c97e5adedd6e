"""Miss-ratio curves: stack distances, exact curves (rows and bytes), SHARDS, miniature
simulation, the mrc() API, TorchRec export and the CLI."""
import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

import cachesim
from cachesim.cli import cli
from cachesim.errors import CachesimError
from cachesim.analysis import mrc as M, shards as S
from tests import naive


def zipf_keys(seed, n_keys, alpha, n):
    """n Zipf(alpha) draws over n_keys keys, key ids shuffled."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(np.arange(1, n_keys + 1, dtype=np.float64) ** -alpha)
    cdf /= cdf[-1]
    r = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), n_keys - 1)
    return rng.permutation(n_keys)[r]


keys_st = st.lists(st.integers(0, 40), min_size=1, max_size=400)


# -- stack distances and the exact row curve -----------------------------------------------------
@given(keys_st)
def test_stack_distances_match_naive(keys):
    tr = cachesim.Trace.from_keys(keys)
    got = M.stack_distances(tr.dense_ids, tr.n_distinct)
    assert got.tolist() == naive.stack_distances(keys)


def test_stack_distances_survive_compaction():
    # many accesses over few keys: the time slots are renumbered many times
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 70, 5000).tolist()
    tr = cachesim.Trace.from_keys(keys)
    assert M.stack_distances(tr.dense_ids, tr.n_distinct).tolist() == naive.stack_distances(keys)


def test_stack_distances_hand_traced():
    # a b c a b b d a : a@3 sees b,c (2); b@4 sees c,a (2); b@5 0; a@7 sees b,d (2)
    tr = cachesim.Trace.from_keys([1, 2, 3, 1, 2, 2, 4, 1])
    assert M.stack_distances(tr.dense_ids, tr.n_distinct).tolist() == [-1, -1, -1, 2, 2, 0, -1, 2]


def test_stack_distances_rejects_bad_ids():
    with pytest.raises(CachesimError, match="n_distinct"):
        M.stack_distances(np.array([0, 5]), 3)


@given(keys_st)
def test_exact_curve_matches_naive_and_replay(keys):
    tr = cachesim.Trace.from_keys(keys)
    curve = M.lru_curve(tr)
    assert curve.shape[0] == tr.n_distinct + 1 and curve[0] == 1.0
    assert curve.tolist() == pytest.approx(naive.lru_curve(keys), abs=0, rel=1e-15)
    for c in {1, max(1, tr.n_distinct // 2), tr.n_distinct}:
        assert curve[c] == cachesim.replay(tr, "lru", c, ways=None).miss_ratio


# -- exact byte curve ----------------------------------------------------------------------------
sized_st = st.lists(st.tuples(st.integers(0, 25), st.integers(0, 60)), min_size=1, max_size=200)


def _sized(pairs):
    size_of = {k: s for k, s in pairs}          # one size per key
    keys = [k for k, _ in pairs]
    return keys, [size_of[k] for k in keys]


@given(sized_st)
def test_byte_curve_matches_replay_at_every_capacity(pairs):
    keys, sizes = _sized(pairs)
    tr = cachesim.Trace.from_keys(keys, sizes)
    caps = np.arange(1, sum(sizes) + 70)
    got = M.lru_bytes_curve(tr, caps)
    want = [naive.lru(keys, int(c), sizes, unit=False)[1] / len(keys) for c in caps]
    assert got.tolist() == want
    # the step function says the same at every capacity
    xs, ys = M.lru_bytes_curve(tr)
    assert ys[np.searchsorted(xs, caps, side="right") - 1].tolist() == want
    for c in caps[::7]:
        assert got[c - 1] == cachesim.replay(tr, "lru", f"{c}B").miss_ratio


def test_byte_curve_is_not_monotone_below_the_largest_object():
    # the brief's rule "hit iff bytes since the last access + own size <= C" fails here: at C=9
    # the 10-byte object is not inserted, so 'a' stays and hits; at C=10 it pushes 'a' out
    tr = cachesim.Trace.from_keys([1, 2, 1], [1, 10, 1])
    got = M.lru_bytes_curve(tr, [9, 10, 11])
    assert got.tolist() == [2 / 3, 1.0, 2 / 3]
    assert [cachesim.replay(tr, "lru", f"{c}B").hits for c in (9, 10, 11)] == [1, 0, 1]


def test_byte_curve_needs_one_size_per_key():
    tr = cachesim.Trace.from_keys([1, 1], [4, 5])
    with pytest.raises(CachesimError, match="one size per key"):
        M.lru_bytes_curve(tr)
    with pytest.raises(CachesimError, match="no object sizes"):
        M.mrc(cachesim.Trace.from_keys([1, 2]), bytes=True)


# -- golden values on the CloudPhysics trace ------------------------------------------------------
def test_cloudphysics_golden(shared_data):
    exp = json.loads((shared_data / "cloudphysics/expected.json").read_text())
    txt = cachesim.read_trace(shared_data / "cloudphysics/cloudPhysicsIO.txt")
    curve = M.lru_curve(txt)
    assert curve.shape[0] == exp["distinct_objects"] + 1
    for n, ratio in exp["lru_miss_ratio_at_objects"].items():
        if n.isdigit():
            assert abs(curve[int(n)] - ratio) < exp["lru_miss_ratio_at_objects"]["tolerance"]
    u = exp["unit_size_lru"]
    misses = np.rint(curve[u["sizes_objects"]] * exp["requests"]).astype(int)
    assert misses.tolist() == u["misses"]
    binf = cachesim.read_trace(shared_data / "cloudphysics/cloudPhysicsIO.oracleGeneral.bin")
    bc = exp["byte_capacity"]
    caps = np.array(bc["sizes_mib"]) * 2**20
    got = np.rint(M.lru_bytes_curve(binf, caps) * exp["requests"]).astype(int)
    assert got.tolist() == bc["misses"]["LRU"]


# -- SHARDS --------------------------------------------------------------------------------------
@given(keys_st, st.sampled_from([0.3, 0.5, 1.0]))
def test_shards_fixed_rate_kernel_matches_naive(keys, rate):
    tmax = int(S.threshold(rate))
    hist_want, sampled_want = naive.shards_fixed_rate(keys, tmax)
    stats = np.zeros(6)
    hist = S._shards(np.array(keys, dtype=np.int64), np.uint64(tmax), 0, 1024, stats)
    assert int(stats[0]) == sampled_want
    assert {d: int(c) for d, c in enumerate(hist) if c} == hist_want


@given(keys_st, st.integers(1, 12))
def test_shards_fixed_size_kernel_matches_naive(keys, s_max):
    tmax = int(S.threshold(1.0))
    hist_want, total_want, rate_want = naive.shards_fixed_size(keys, tmax, s_max)
    stats = np.zeros(6)
    hist = S._shards(np.array(keys, dtype=np.int64), np.uint64(tmax), s_max, 1 << 16, stats)
    assert stats[3] == 1.0  # no bucket merging at this size
    got = {b: w for b, w in enumerate(hist) if w}
    assert got.keys() == hist_want.keys()
    for b, w in hist_want.items():
        assert got[b] == pytest.approx(w, rel=1e-9)
    assert stats[1] == pytest.approx(total_want, rel=1e-9)
    assert stats[2] == pytest.approx(rate_want, rel=1e-9)
    assert stats[4] <= s_max


def test_shards_rate_one_is_exact():
    keys = zipf_keys(1, 3000, 0.9, 30000)
    tr = cachesim.Trace.from_keys(keys)
    sizes, miss, _ = M.shards_curve(tr.keys, np.arange(tr.n_distinct + 1), rate=1.0)
    np.testing.assert_allclose(miss, M.lru_curve(tr), atol=1e-12)


@pytest.fixture(scope="module")
def zipf2m():
    tr = cachesim.Trace.from_keys(zipf_keys(0, 1_000_000, 1.0, 2_000_000))
    return tr, M.lru_curve(tr)


def test_shards_one_percent_error_on_zipf(zipf2m):
    tr, exact = zipf2m
    all_sizes = np.arange(exact.shape[0])
    _, miss, info = M.shards_curve(tr.keys, all_sizes, rate=0.01)
    assert np.abs(miss - exact).mean() < 0.01
    assert abs(info["estimated_keys"] / tr.n_distinct - 1) < 0.1
    # fixed size: at most s_max keys held, the rate lowered to fit
    _, miss_fs, info_fs = M.shards_curve(tr.keys, all_sizes, rate=0.05, s_max=4000)
    assert info_fs["sampled_keys"] <= 4000
    assert info_fs["rate"] == pytest.approx(4000 / tr.n_distinct, rel=0.2)
    assert np.abs(miss_fs - exact).mean() < 0.01


# -- miniature simulation ------------------------------------------------------------------------
def test_mini_at_rate_one_is_replay():
    keys = zipf_keys(2, 500, 0.8, 5000)
    tr = cachesim.Trace.from_keys(keys)
    sizes = [0, 5, 50, 200]
    for policy in ("fifo", "lru"):
        got = M.mini_curve(tr, policy, sizes, rate=1.0)
        want = [1.0] + [cachesim.replay(tr, policy, c, ways=None).miss_ratio for c in sizes[1:]]
        assert got.tolist() == want


def test_mini_error_on_zipf():
    # Bound stated in README: mean absolute error below 0.03 at a 10% sample on this trace
    # (measured 0.011 for lru and fifo). A hashed sample is only as good as the hot keys it
    # happens to hold: on steeper Zipf heads the error is larger (bench/RESULTS.md).
    tr = cachesim.Trace.from_keys(zipf_keys(0, 100_000, 0.7, 1_000_000))
    sizes = (np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.4]) * tr.n_distinct).astype(int)
    for policy in ("lru", "fifo"):
        est = M.mini_curve(tr, policy, sizes, rate=0.1)
        ref = np.array([cachesim.replay(tr, policy, int(c), ways=None).miss_ratio for c in sizes])
        assert np.abs(est - ref).mean() < 0.03


def test_mini_adj_on_a_steep_zipf_head(zipf2m):
    # the 5% sample holds 12% of the accesses (a top key fell in): the paper's estimator is off
    # by 0.2, dividing the misses by the expected sampled accesses brings it under 0.02
    tr, exact = zipf2m
    sizes = (np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.4]) * tr.n_distinct).astype(int)
    adj = np.abs(M.mini_curve(tr, "lru", sizes, rate=0.05) - exact[sizes]).mean()
    plain = np.abs(M.mini_curve(tr, "lru", sizes, rate=0.05, adj=False) - exact[sizes]).mean()
    assert adj < 0.02 < 0.1 < plain


# -- the mrc() API -------------------------------------------------------------------------------
def _multi_table(seed=0, n=6000):
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 3, n)
    row = (rng.random(n) ** 2 * np.array([50, 120, 300])[table]).astype(np.int64)
    return cachesim.Trace(table=table, row=row, batch=np.arange(n) // 50,
                          table_rows=[50, 120, 300])


def test_mrc_frame_and_per_table():
    tr = _multi_table()
    df = M.mrc(tr)
    assert df.columns == ["size", "miss_ratio", "hit_ratio"]
    assert df["size"].to_list() == list(range(tr.n_distinct + 1))
    per = M.mrc(tr, per_table=True, sizes="0,10,50%")
    assert per.columns == ["table", "size", "miss_ratio", "hit_ratio"]
    for t, name in enumerate(tr.table_names):
        sub = cachesim.Trace.from_keys(tr.row[tr.table == t])
        rows = per.filter(pl.col("table") == name)
        half = max(1, round(0.5 * sub.n_distinct))
        assert rows["size"].to_list() == [0, 10, half]
        assert rows["miss_ratio"].to_list() == [1.0] + [
            cachesim.replay(sub, "lru", c, ways=None).miss_ratio for c in (10, half)]


def test_mrc_rejects_what_it_cannot_do():
    tr = _multi_table()
    with pytest.raises(CachesimError, match="mini"):
        M.mrc(tr, policy="fifo")
    with pytest.raises(CachesimError, match="rate"):
        M.mrc(tr, method="shards", rate=0)
    with pytest.raises(CachesimError, match="bytes"):
        M.mrc(tr, sizes="1MiB")


# -- TorchRec export -----------------------------------------------------------------------------
def test_torchrec_histogram_reproduces_exact_curve():
    tr = _multi_table()
    stats = M.torchrec_stats(tr, bins=10)
    per = M.mrc(tr, per_table=True)
    lookups = M.expected_lookups(tr)
    for t, name in enumerate(tr.table_names):
        s = stats[name]
        assert s["height"] == tr.table_rows[t] and len(s["mrc_hist_counts"]) == 10
        assert sum(s["mrc_hist_counts"]) == int((tr.table == t).sum())
        b = tr.batch[tr.table == t]
        r = tr.row[tr.table == t]
        assert s["expected_lookups"] == pytest.approx(
            np.mean([len(set(r[b == x])) for x in np.unique(tr.batch)]))
        assert s["expected_lookups"] == pytest.approx(lookups[t])
        curve = per.filter(pl.col("table") == name)["miss_ratio"].to_numpy()
        for j in range(1, 9):  # load factors at bin edges below the last bin
            c = j * s["height"] // 10
            assert M.torchrec_miss_rate(s, j / 10) == pytest.approx(curve[min(c, len(curve) - 1)])
        assert M.torchrec_miss_rate(s, 0.0) == 1.0 and M.torchrec_miss_rate(s, 1.0) == 0.0
        area = np.mean([curve[min(c, len(curve) - 1)] for c in range(s["height"])])
        assert s["cacheability"] == pytest.approx(area)


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_mrc_outputs(tmp_path, shared_data):
    path = str(shared_data / "cloudphysics/cloudPhysicsIO.txt")
    runner = CliRunner()
    r = runner.invoke(cli, ["mrc", path, "--size", "0,1,20"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "size,miss_ratio,hit_ratio" and lines[1] == "0,1.0,0.0"
    assert lines[3].startswith("20,0.92701")
    r = runner.invoke(cli, ["mrc", path, "--json", "-o", str(tmp_path / "c.json"),
                            "--plot", str(tmp_path / "c.png"),
                            "--torchrec", str(tmp_path / "t.json")])
    assert r.exit_code == 0, r.output
    recs = json.loads((tmp_path / "c.json").read_text())
    assert [x["size"] for x in recs] == list(range(48975))
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    exported = json.loads((tmp_path / "t.json").read_text())
    assert set(exported["t0"]) == {"mrc_hist_counts", "height", "expected_lookups",
                                   "cacheability"}
    r = runner.invoke(cli, ["mrc", path, "--policy", "fifo"])
    assert r.exit_code == 2 and "method 'mini'" in r.output
