"""Trace generators: layout, seeds, drift, the planted teacher, the Criteo-shaped preset, and the
LRU-stack generator against plain Python and against the real Criteo sample's curve."""
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

import cachesim
from cachesim.cli import cli
from cachesim.errors import CachesimError
from cachesim.synth import criteo, fit, generate as gen, teacher
from tests import naive


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(-1, 10)), min_size=1, max_size=300))
def test_lru_stack_generator_matches_naive(pairs):
    tables = [t for t, _ in pairs]
    depths = [d for _, d in pairs]
    rows, n_rows = fit.lru_stack_rows(np.array(tables), np.array(depths), 3)
    assert rows.tolist() == naive.lru_stack_generate(tables, depths)
    assert n_rows.tolist() == [len({r for r, t in zip(rows, tables) if t == u}) for u in range(3)]


@given(st.lists(st.integers(0, 9), min_size=1, max_size=100), st.data())
def test_copy_from_earlier_matches_naive(vals, data):
    src = [data.draw(st.integers(-1, i - 1)) for i in range(len(vals))]
    got = np.array(vals, dtype=np.int64)
    gen.copy_from_earlier(got, np.array(src, dtype=np.int64))
    assert got.tolist() == naive.copy_from_earlier(vals, src)


def test_locality_shortens_reuse_and_keeps_popularity():
    from cachesim.analysis.profile import reuse_times, zipf_fit
    plain = gen.generate(200_000, tables=1, rows=20_000, alpha=0.9, seed=4)
    local = gen.generate(200_000, tables=1, rows=20_000, alpha=0.9, seed=4, locality="0.5:100")
    share_short = [np.mean((r > 0) & (r <= 100)) for r in
                   (reuse_times(t.dense_ids, t.n_distinct) for t in (plain, local))]
    assert share_short[1] > share_short[0] + 0.3
    alphas = [zipf_fit(np.bincount(t.row))["alpha"] for t in (plain, local)]
    assert abs(alphas[0] - alphas[1]) < 0.05
    assert "locality=0.5:100" in local.source


def test_layout_poisson_bags_and_metadata():
    tr = gen.generate(500, tables=3, rows=[50, 200, 1000], alpha=[1.0, 0.5, 1.5],
                      bag_size="poisson:1,3,6", batch_size=64, seed=11)
    assert np.all(np.diff(tr.sample) >= 0)               # sample-major
    cell = tr.sample * 3 + tr.table
    assert np.all(np.diff(cell) >= 0)                    # then table
    bags = np.bincount(cell, minlength=1500).reshape(500, 3)
    assert abs(bags.mean(axis=0) - [1, 3, 6]).max() < 0.5
    assert tr.table_rows.tolist() == [50, 200, 1000]
    assert tr.batch.tolist() == (tr.sample // 64).tolist()
    for t, n in enumerate([50, 200, 1000]):
        r = tr.row[tr.table == t]
        assert r.min() >= 0 and r.max() < n
    fixed = gen.generate(100, tables=2, bag_size=[2, 5], rows=100, seed=1)
    assert np.bincount(fixed.sample * 2 + fixed.table).tolist() == [2, 5] * 100


def test_seeded_and_hot_rows_permuted():
    a = gen.generate(2000, tables=4, rows=10_000, alpha=1.2, seed=5)
    b = gen.generate(2000, tables=4, rows=10_000, alpha=1.2, seed=5)
    c = gen.generate(2000, tables=4, rows=10_000, alpha=1.2, seed=6)
    assert np.array_equal(a.row, b.row) and not np.array_equal(a.row, c.row)
    hottest = [np.bincount(a.row[a.table == t]).argmax() for t in range(4)]
    assert sum(h == 0 for h in hottest) <= 1             # rank 0 is not row 0


def test_drift_rotates_the_hot_set():
    # 1000 rows, alpha 1.5; every 2 batches (of 1000 samples) the ranking moves by 50 rows
    tr = gen.generate(8000, tables=1, rows=1000, alpha=1.5, batch_size=1000, drift="0.05:2",
                      seed=2)
    epoch = tr.batch // 2

    def top(mask, k=5):
        c = np.bincount(tr.row[mask], minlength=1000)
        return set(np.argsort(-c, kind="stable")[:k].tolist())
    first_half = top((epoch == 0) & (tr.batch == 0))
    second_half = top((epoch == 0) & (tr.batch == 1))
    assert len(first_half & second_half) >= 4             # same epoch: same hot rows
    for e in range(3):
        assert not top(epoch == e) & top(epoch == e + 1)   # next epoch: the top 50 fell away
    with pytest.raises(CachesimError, match="SHARE"):
        gen.generate(10, drift="a:b")


def test_teacher_labels_and_dense():
    tr = gen.generate(20_000, tables=4, rows=500, alpha=1.0, seed=9, teacher=True)
    assert tr.labels.dtype == np.float32 and set(np.unique(tr.labels)) <= {0.0, 1.0}
    assert abs(tr.labels.mean() - 0.22) < 0.03
    assert tr.dense.shape == (20_000, 13) and tr.dense.min() >= 0
    assert "teacher(seed=9" in tr.source
    # labels follow the teacher's row scores: positives have higher summed scores
    score = np.bincount(tr.sample, weights=teacher.teacher_row_scores(tr.table, tr.row, 9))
    assert score[tr.labels == 1].mean() > score[tr.labels == 0].mean() + 0.3
    again = gen.generate(20_000, tables=4, rows=500, alpha=1.0, seed=9, teacher=True)
    assert np.array_equal(tr.labels, again.labels) and np.array_equal(tr.dense, again.dense)


def test_criteo_constants_match_a_refit(shared_data):
    refit = criteo.criteo_profile(shared_data / "criteo" / "kaggle_train_head10k.tsv")
    built_in = criteo.criteo_profile()
    for name in ("top", "n_head", "rest_mass", "rest_alpha", "singles", "distinct", "alpha"):
        assert np.allclose(getattr(refit, name), getattr(built_in, name)), name
    assert refit.n_lines == built_in.n_lines == 10_000


def test_criteo_like_shape_and_popularity():
    tr = gen.criteo_like(10_000, seed=3, batch_size=128)
    assert len(tr) == 260_000 and tr.table_names == [f"C{i}" for i in range(1, 27)]
    assert tr.table.tolist()[:52] == list(range(26)) * 2
    assert tr.batch.max() == (10_000 - 1) // 128
    assert tr.labels.shape == (10_000,) and tr.dense.shape == (10_000, 13)
    distinct = np.array([np.unique(tr.row[tr.table == t]).size for t in range(26)])
    want = criteo.criteo_profile().distinct
    assert np.all(np.abs(distinct - want) <= 0.1 * want + 2), (distinct, want)
    assert np.all(tr.table_rows <= criteo.CRITEO_FULL_ROWS)
    top = np.array([np.bincount(tr.row[tr.table == t]).max() for t in range(26)])
    real_top = criteo.criteo_profile().top[:, 0]
    assert np.all(np.abs(top - real_top) <= 0.1 * real_top + 30)
    bigger = gen.criteo_like(30_000, seed=3, teacher=False)
    assert np.all(bigger.table_rows >= tr.table_rows) and bigger.labels is None


def test_generate_like_matches_the_criteo_curve(shared_data):
    real = cachesim.read_trace(shared_data / "criteo" / "kaggle_train_head10k.tsv")
    prof = fit.fit_profile(real)
    assert prof.depth_counts[0].sum() == 10_000
    assert [int(d[0]) for d in prof.depth_counts] == prof.distinct.tolist()
    like = fit.generate_like(prof, 2 * len(real), seed=1)
    assert len(like) == 2 * len(real)
    assert like.table.tolist() == np.tile(real.table, 2).tolist()
    assert like.batch[len(real)] == real.batch.max() + 1
    cmp = fit.compare_curves(real, like)
    # bound stated in the README: mean absolute difference of the exact LRU curves < 0.02
    assert cmp["mae"] < 0.02, cmp["mae"]


def test_cli_generate_writes_and_reads_back(tmp_path):
    runner = CliRunner()
    out = tmp_path / "g.parquet"
    res = runner.invoke(cli, ["generate", str(out), "--samples", "300", "--tables", "3",
                              "--rows", "100,200,300", "--alpha", "1.1", "--bag-size", "2",
                              "--batch-size", "50", "--teacher", "--seed", "4"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"wrote {out}: 1,800 accesses, 3 tables,")
    back = cachesim.read_trace(out)
    want = gen.generate(300, tables=3, rows=[100, 200, 300], alpha=1.1, bag_size=2,
                        batch_size=50, teacher=True, seed=4)
    assert np.array_equal(back.row, want.row) and np.array_equal(back.table, want.table)
    assert np.array_equal(back.labels, want.labels) and back.table_rows.tolist() == [100, 200, 300]
    bad = runner.invoke(cli, ["generate", str(tmp_path / "x.parquet"), "--plot", "a.png"])
    assert bad.exit_code == 2 and "add --like TRACE" in bad.output
    bad = runner.invoke(cli, ["generate", str(tmp_path / "x.parquet"), "--rows", "1,2"])
    assert bad.exit_code == 2 and "2 values for 26 tables" in bad.output
    assert not (tmp_path / "x.parquet").exists()


def test_cli_generate_like_plot(tmp_path):
    src = tmp_path / "src.parquet"
    cachesim.io.write_trace(gen.generate(2000, tables=2, rows=3000, batch_size=100, seed=1),
                                src)
    runner = CliRunner()
    res = runner.invoke(cli, ["generate", str(tmp_path / "like.parquet"), "--like", str(src),
                              "--accesses", "8000", "--plot", str(tmp_path / "mrc.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mrc.png").read_bytes()[:4] == b"\x89PNG"
    like = cachesim.read_trace(tmp_path / "like.parquet")
    assert len(like) == 8000
    # the generated trace's exact LRU curve, worked out here with plain-Python stack distances,
    # stays within 0.01 (mean absolute difference) of the source's; the printed figure is it
    real = cachesim.read_trace(src)
    sizes = np.unique(np.geomspace(1, real.n_distinct, 60).round().astype(np.int64))
    mae = float(np.mean(np.abs(_lru_miss_ratios(real.keys, sizes)
                               - _lru_miss_ratios(like.keys, sizes))))
    assert mae < 0.01, mae
    assert f"mean absolute difference {mae:.4f}" in res.output


def _lru_miss_ratios(keys, sizes) -> np.ndarray:
    """LRU miss ratio at each size from plain-Python stack distances (an access hits a cache of c
    rows when fewer than c other keys were used since its key's last use)."""
    d = np.array(naive.stack_distances(keys.tolist()))
    return np.array([np.mean((d < 0) | (d >= c)) for c in sizes])
