"""`cachesim convert`: any format in, Parquet (or CSV) out, atomically, with a one-line summary."""
import re

import numpy as np
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.io import read_parquet_metadata, read_trace
from cachesim.io.fbgemm import write_fbgemm_npz


def convert(*args):
    result = CliRunner().invoke(cli, ["convert", *map(str, args)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def test_convert_criteo_summary_and_metadata(shared_data, tmp_path):
    out = tmp_path / "k.parquet"
    text = convert(shared_data / "criteo" / "kaggle_train_head10k.tsv", out, "--batch-size", 256)
    assert re.fullmatch(rf"{re.escape(str(out))}: 260,000 accesses, 26 tables, 43,591 distinct "
                        r"keys, \d+\.\d\d s\n", text), text
    meta = read_parquet_metadata(out)
    assert meta["table_names"][0] == "C1" and meta["table_dims"] == [16] * 26
    assert meta["table_rows"][:3] == [176, 387, 5521] and meta["n_samples"] == 10_000
    back = read_trace(out)
    assert back.batch[-1] == 9_999 // 256
    assert [p.name for p in tmp_path.iterdir()] == ["k.parquet"]


def test_convert_txt_replays_the_same(shared_data, tmp_path):
    src = shared_data / "cloudphysics" / "cloudPhysicsIO.txt"
    out = tmp_path / "c.parquet"
    text = convert(src, out)
    assert text.startswith(f"{out}: 113,872 accesses, 1 table, 48,974 distinct keys, ")
    a, b = read_trace(src), read_trace(out)
    assert np.array_equal(a.row, b.row)
    assert cachesim.replay(a, "lru", 256).misses == cachesim.replay(b, "lru", 256).misses


def test_convert_npz_folder_with_tables_option(tmp_path):
    folder = tmp_path / "batches"
    folder.mkdir()
    for i in range(3):
        indices = np.arange(i, i + 8)
        offsets = np.arange(0, 9, 2)  # T=2 tables x B=2 samples, 2 lookups a bag
        np.savez(folder / f"b{i}.npz", indices=indices, offsets=offsets)
    out = tmp_path / "t.parquet"
    text = convert(folder, out, "--tables", 2)
    assert text.startswith(f"{out}: 24 accesses, 2 tables, ")
    t = read_trace(out)
    assert t.batch.tolist() == [0] * 8 + [1] * 8 + [2] * 8
    assert t.table.tolist()[:8] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert t.sample.tolist()[:8] == [0, 0, 1, 1, 0, 0, 1, 1]


def test_convert_to_csv(tmp_path):
    write_fbgemm_npz(tmp_path / "b.npz", [4, 5, 6], [0, 1, 3], num_tables=1, batch_size=2)
    out = tmp_path / "t.csv"
    convert(tmp_path / "b.npz", out)
    assert out.read_text().splitlines() == ["table,row,batch,sample", "t0,4,0,0", "t0,5,0,1",
                                            "t0,6,0,1"]


def test_failed_convert_leaves_the_old_output(tmp_path):
    out = tmp_path / "o.parquet"
    out.write_bytes(b"old")
    bad = tmp_path / "bad.txt"
    bad.write_text("1\nx\n")
    result = CliRunner().invoke(cli, ["convert", str(bad), str(out)])
    assert result.exit_code == 2 and out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "o.parquet"]


def test_convert_help_has_summary_and_example():
    result = CliRunner().invoke(cli, ["convert", "--help"])
    assert result.exit_code == 0
    assert "Convert a trace in any format" in result.output
    assert "Example: cachesim convert" in result.output
    assert re.search(r"default\s+128", result.output)
