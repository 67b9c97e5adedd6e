"""Sampled miss-ratio curves say when they cannot be trusted: a warning for a sample with too few
keys or accesses, `reliable` false for sizes under MIN_SAMPLED_ROWS sampled rows, and fixed-size
SHARDS (`--s-max`) that fills its sample to s_max keys."""
import json
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from cachesim.cli import cli
from cachesim.analysis import mrc as M
from cachesim.io import read_trace
from cachesim.synth.generate import generate

CRITEO = Path(__file__).resolve().parents[1] / "cachesim/data/criteo_kaggle_head10k.parquet"


@pytest.fixture(scope="module")
def criteo():
    tr = read_trace(str(CRITEO))
    return tr, M.lru_curve(tr)


def _records(text):
    return {r["size"]: r for r in json.loads(text)}


def test_shards_on_the_criteo_sample_warns_and_marks_small_sizes():
    # 1% of 43,591 keys: 421 keys and 1,462 accesses; 100 sampled rows = 10,000 rows
    r = CliRunner().invoke(cli, ["mrc", str(CRITEO), "--method", "shards",
                                 "--size", "1,99,100,436,9999,10000,20000"])
    assert r.exit_code == 0, r.output
    err = r.stderr.splitlines()
    assert len(err) == 1 and err[0].startswith("cachesim: warning: the shards sample at rate "
                                               "0.01 holds 421 keys and 1,462 accesses")
    assert "sizes below 10,000 rows" in err[0]
    lines = r.stdout.splitlines()
    assert lines[0] == "size,miss_ratio,hit_ratio,reliable"
    got = {int(x.split(",")[0]): x.split(",")[3] for x in lines[1:]}
    assert got == {1: "false", 99: "false", 100: "false", 436: "false", 9999: "false",
                   10000: "true", 20000: "true"}


def test_mini_on_the_criteo_sample_warns_and_marks_small_sizes_in_json():
    r = CliRunner().invoke(cli, ["mrc", str(CRITEO), "--method", "mini", "--policy", "fifo",
                                 "--size", "50,436,10000", "--json"])
    assert r.exit_code == 0, r.output
    assert "cachesim: warning: the mini sample at rate 0.01 holds 421 keys" in r.stderr
    recs = _records(r.stdout)
    assert [recs[s]["reliable"] for s in (50, 436, 10000)] == [False, False, True]


def test_reliable_follows_the_rate():
    # at rate 0.1 the floor is 1,000 rows; the same rule in bytes scales by the mean object size
    assert M.reliable_sizes([0, 999, 1000], 0.1).tolist() == [False, False, True]
    assert M.reliable_sizes([0, 99, 100], 1.0).tolist() == [False, False, True]
    assert M.reliable_sizes([7999, 8000], 0.1, row_bytes=8.0).tolist() == [False, True]


def test_no_warning_when_the_sample_is_big_enough():
    # 60,000 accesses over ~37,000 keys: at 50% the sample holds ~18,000 keys and ~30,000
    # accesses, above both floors; at 1% it does not
    tr = generate(60_000, tables=1, rows=200_000, alpha=0.6, seed=3)
    exact = M.lru_curve(tr)
    with warnings.catch_warnings():
        warnings.simplefilter("error", M.SampledCurveWarning)
        df = M.mrc(tr, method="shards", rate=0.5, sizes=[100, 199, 200, 5000])
    assert df["reliable"].to_list() == [False, False, True, True]
    assert np.abs(df["miss_ratio"].to_numpy()[2:] - exact[[200, 5000]]).max() < 0.02
    with pytest.warns(M.SampledCurveWarning, match="holds"):
        M.mrc(tr, method="shards", rate=0.01, sizes=[100])


def test_per_table_gives_one_warning():
    tr = read_trace(str(CRITEO))
    with pytest.warns(M.SampledCurveWarning) as rec:
        df = M.mrc(tr, method="mini", rate=0.1, sizes=[10, 2000], per_table=True)
    assert len(rec) == 1 and str(rec[0].message).startswith("26 of 26 tables' samples")
    assert df.filter(pl.col("size") == 10)["reliable"].to_list() == [False] * 26
    assert df.filter(pl.col("size") == 2000)["reliable"].to_list() == [True] * 26


def test_exact_has_no_reliable_column_and_no_warning():
    r = CliRunner().invoke(cli, ["mrc", str(CRITEO), "--size", "1,436"])
    assert r.exit_code == 0 and r.stderr == ""
    assert r.stdout.splitlines()[0] == "size,miss_ratio,hit_ratio"


def test_s_max_fills_the_sample_and_beats_the_fixed_rate(criteo):
    tr, exact = criteo
    sizes = np.arange(tr.n_distinct + 1)
    _, fixed_rate, info_rate = M.shards_curve(tr.keys, sizes, rate=0.01)
    _, fixed_size, info = M.shards_curve(tr.keys, sizes, s_max=8192)
    # starts at rate 1: the sample fills to s_max keys, then the rate falls to keep it there
    assert info["sampled_keys"] == 8192 and 0.15 < info["rate"] < 0.25
    assert info_rate["sampled_keys"] == 421
    assert np.abs(fixed_size - fixed_rate).max() > 0.1
    err_size = np.abs(fixed_size - exact)
    err_rate = np.abs(fixed_rate - exact)
    assert err_size.mean() < 0.5 * err_rate.mean()
    ok = M.reliable_sizes(sizes, info["rate"])
    assert err_size[ok].max() < 0.01
    # an explicit start rate is still honoured
    _, _, info_start = M.shards_curve(tr.keys, sizes[:10], rate=0.01, s_max=8192)
    assert info_start["rate"] == 0.01 and info_start["sampled_keys"] == 421


def test_cli_s_max_differs_from_the_rate_and_does_not_warn():
    runner = CliRunner()
    sizes = ["--size", "1000,5000,20000", "--json"]
    a = runner.invoke(cli, ["mrc", str(CRITEO), "--method", "shards", "--s-max", "8192", *sizes])
    b = runner.invoke(cli, ["mrc", str(CRITEO), "--method", "shards", *sizes])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert a.stderr == "" and "warning" in b.stderr
    ra, rb = _records(a.stdout), _records(b.stdout)
    assert abs(ra[5000]["miss_ratio"] - rb[5000]["miss_ratio"]) > 0.01
    assert all(ra[s]["reliable"] for s in (1000, 5000, 20000))


def test_plot_draws_the_unreliable_sizes_differently(tmp_path):
    df = pl.DataFrame({"size": [0, 10, 100, 1000, 10000],
                       "miss_ratio": [1.0, 0.8, 0.5, 0.3, 0.2]})
    df = df.with_columns(hit_ratio=1.0 - pl.col("miss_ratio"))
    M.plot_mrc(df, tmp_path / "plain.png", "t")
    M.plot_mrc(df.with_columns(reliable=pl.col("size") >= 1000), tmp_path / "marked.png", "t")
    import matplotlib.image as mpimg
    plain = mpimg.imread(tmp_path / "plain.png")[..., :3]
    marked = mpimg.imread(tmp_path / "marked.png")[..., :3]
    # the hatched grey band left of 1,000 rows: the marked plot has many more grey pixels
    def grey(im):
        return int(((np.ptp(im, axis=-1) < 0.02) & (im[..., 0] > 0.6) & (im[..., 0] < 0.97)).sum())
    assert grey(marked) > grey(plain) + 5000
