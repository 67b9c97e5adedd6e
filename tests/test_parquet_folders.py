"""A folder of Parquet files, or a hive-partitioned dataset, read whole (`read_trace`, every
command's in-memory path) gives the trace of the one file they were cut from, as the streamed
readers do."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.simulate.batch import replay_batch
from cachesim.simulate.stream import replay_batch_stream

SAMPLE = Path(cachesim.__file__).parent / "data" / "criteo_kaggle_head10k.parquet"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{layout: folder} of the shipped sample cut in three at batch boundaries: flat files,
    nested sub-folders, and a hive dataset (day=0, day=1, day=10: path order is natural)."""
    root = tmp_path_factory.mktemp("pq")
    whole = cachesim.read_trace(SAMPLE)
    cuts = [0, 128 * 26 * 30, 128 * 26 * 61, len(whole)]
    layouts = {"flat": "part{i}.parquet", "nested": "p{i}/x.parquet",
               "hive": "day={day}/part.parquet"}
    out = {}
    for name, pattern in layouts.items():
        for i, (a, z) in enumerate(zip(cuts, cuts[1:])):
            f = root / name / pattern.format(i=i, day=(0, 1, 10)[i])
            f.parent.mkdir(parents=True, exist_ok=True)
            cachesim.write_trace(whole.slice(a, z), f)  # each file with cachesim's metadata
        out[name] = root / name
    return out


@pytest.mark.parametrize("layout", ["flat", "nested", "hive"])
def test_a_folder_reads_as_its_file(folders, layout):
    whole = cachesim.read_trace(SAMPLE)
    got = cachesim.read_trace(folders[layout])
    for col in ("table", "row", "batch"):
        assert np.array_equal(getattr(got, col), getattr(whole, col)), col
    assert got.n_tables == whole.n_tables and got.table_names == whole.table_names
    assert np.array_equal(got.table_rows, whole.table_rows)  # num_embeddings from the metadata
    assert replay_batch(got, "lru", "5%").to_record() | {"seconds": 0} == \
        replay_batch(whole, "lru", "5%").to_record() | {"seconds": 0}


def test_the_in_memory_folder_replay_equals_the_streamed_one(folders):
    tr = cachesim.read_trace(folders["hive"])
    mem = replay_batch(tr, "lfu", "2%").to_record()
    (streamed,) = [replay_batch_stream(folders["hive"], "lfu", "2%", cache_model="fbgemm",
                                       chunk_accesses=1000)]
    streamed = streamed.to_record()
    for rec in (mem, streamed):
        rec.pop("seconds")
    assert mem == streamed


def test_commands_take_a_folder_in_memory(folders):
    r = CliRunner().invoke(cli, ["analyze", str(folders["nested"])])
    assert r.exit_code == 0, r.output
    assert "accesses 260,000" in r.output
    r = CliRunner().invoke(cli, ["replay", str(folders["flat"]), "-s", "5%", "--no-stream",
                                  "-q", "--json"])
    assert r.exit_code == 0, r.output


def test_a_folder_without_traces_names_what_it_reads(tmp_path):
    (tmp_path / "notes.md").write_text("nothing here")
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path)])
    assert r.exit_code == 2
    assert "holds no trace files" in r.output and "Parquet" in r.output
    assert "Traceback" not in r.output


def test_labels_and_dense_features_survive_a_folder(tmp_path):
    # parts cut from one trace keep every sample's labels in their metadata: the folder's trace
    # has them all, so `train` learns from the real labels, not a planted teacher
    from cachesim.synth.generate import generate
    tr = generate(3000, tables=4, rows=500, teacher=True, batch_size=128, seed=1)
    cut = (len(tr) // 2) // (128 * 4) * (128 * 4)
    for i, (a, z) in enumerate(((0, cut), (cut, len(tr)))):
        (tmp_path / "f" / f"day={i}").mkdir(parents=True)
        cachesim.write_trace(tr.slice(a, z), tmp_path / "f" / f"day={i}" / "p.parquet")
    got = cachesim.read_trace(tmp_path / "f")
    assert np.array_equal(got.labels, tr.labels) and np.array_equal(got.dense, tr.dense)
    assert np.array_equal(got.sample, tr.sample)
    # a part of another trace (other labels) is refused, naming the file
    other = generate(3000, tables=4, rows=500, teacher=True, batch_size=128, seed=2)
    cachesim.write_trace(other.slice(cut, len(other)), tmp_path / "f" / "day=1" / "p.parquet")
    with pytest.raises(cachesim.CachesimError, match="labels and dense features differ"):
        cachesim.read_trace(tmp_path / "f")


def test_a_folder_without_metadata_says_its_rows_are_inferred(tmp_path, folders):
    import polars as pl
    (tmp_path / "raw").mkdir()
    for i, f in enumerate(sorted(folders["flat"].glob("*.parquet"))):
        pl.read_parquet(f).select("table", "row", "batch").write_parquet(tmp_path / "raw" /
                                                                         f"{i}.parquet")
    tr = cachesim.read_trace(tmp_path / "raw")
    assert tr.table_rows_inferred and len(tr) == 260_000
    for extra in ([], ["--stream"]):
        r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "raw"), *extra])
        assert r.exit_code == 0, r.output
        assert "rows (inferred: largest row + 1)" in r.output, extra
    r = CliRunner().invoke(cli, ["analyze", str(folders["flat"])])
    assert "rows (metadata)" in r.output


def test_batches_restarting_in_a_later_file_name_that_file(tmp_path):
    # two day files, each numbering its batches from 0
    import polars as pl
    df = pl.read_parquet(SAMPLE).select("table", "row", "batch")
    cut = 128 * 26 * 40
    df[:cut].write_parquet(tmp_path / "a.parquet")
    df[cut:].with_columns(pl.col("batch") - pl.col("batch").min()).write_parquet(
        tmp_path / "b.parquet")
    for cmd in (["analyze"], ["replay", "-s", "5%", "--no-stream", "-q"]):
        r = CliRunner().invoke(cli, [cmd[0], str(tmp_path), *cmd[1:]])
        assert r.exit_code == 2, r.output
        assert "b.parquet: its batches start at 0, below the last batch (39)" in r.output
        assert "Traceback" not in r.output
