"""Bad input: one line on stderr, "cachesim: error: ...", naming the file and where, exit 2."""
import subprocess
import sys

import polars as pl
import pytest
from click.testing import CliRunner

from cachesim.cli import cli

CRITEO_LINE = "0\t1\t\t3" + "\t5" * 10 + "".join(f"\t{i:08x}" for i in range(26)) + "\n"


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cachesim: error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def keys_txt(tmp_path):
    p = tmp_path / "keys.txt"
    p.write_text("1\n2\n1\n")
    return p


def test_truncated_binary_names_the_byte_offset(tmp_path):
    p = tmp_path / "t.oracleGeneral.bin"
    p.write_bytes(b"\0" * (24 * 3 + 5))
    msg = run("replay", p, "--size", "10")
    assert str(p) in msg and "byte offset 72" in msg and "truncated" in msg


def test_criteo_wrong_field_count(tmp_path):
    p = tmp_path / "day.tsv"
    p.write_text(CRITEO_LINE * 2 + "0\t1\t2\n" + CRITEO_LINE)
    msg = run("convert", p, tmp_path / "o.parquet")
    assert f"{p}, line 3: expected 40 tab-separated fields" in msg and "found 3 field(s)" in msg
    assert not (tmp_path / "o.parquet").exists()


def test_criteo_non_hex_categorical(tmp_path):
    p = tmp_path / "day.tsv"
    p.write_text(CRITEO_LINE + CRITEO_LINE.replace("00000005", "zz00qq05"))
    msg = run("convert", p, tmp_path / "o.parquet")
    assert f"{p}, line 2: column C6: expected a hexadecimal hash" in msg and "'zz00qq05'" in msg


def test_criteo_non_integer_count(tmp_path):
    p = tmp_path / "day.txt"
    p.write_text(CRITEO_LINE * 3 + CRITEO_LINE.replace("\t3\t", "\t3.5\t", 1))
    msg = run("convert", p, tmp_path / "o.parquet")
    assert f"{p}, line 4: column I3: expected an integer count" in msg and "fix" in msg


def test_txt_malformed_line(tmp_path):
    p = tmp_path / "keys.txt"
    p.write_text("1\n2\n3\nabc\n5\n")
    msg = run("replay", p, "--size", "2")
    assert f"{p}, line 4: expected one integer key a line" in msg and "'abc'" in msg


def test_csv_malformed_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("table,row\n0,1\n0,x7\n")
    msg = run("convert", p, tmp_path / "o.parquet")
    assert f"{p}, line 3: expected an integer in column `row`, found 'x7'" in msg


def test_csv_empty_field_is_named_as_such(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("table,row,batch\n0,1,0\n0,,0\n1,2,1\n")
    msg = run("convert", p, tmp_path / "o.parquet")
    assert f"{p}, line 3: expected an integer in column `row`, found an empty field" in msg


def test_parquet_null_is_named_as_such(tmp_path):
    p = tmp_path / "t.parquet"
    pl.DataFrame({"table": [0, 0, 1], "row": [1, None, 2]}).write_parquet(p)
    msg = run("analyze", p)
    assert f"{p}: expected an integer in column `row`, found a null (access 1)" in msg


def test_csv_extra_field(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("table,row\n0,1\n0,2\n0,3,4\n")
    msg = run("convert", p, tmp_path / "o.parquet")
    assert f"{p}, line 4: expected 2 ','-separated fields" in msg


def test_unknown_format(keys_txt):
    msg = run("replay", keys_txt, "--format", "nope", "--size", "2")
    assert "unknown trace format 'nope'" in msg and "criteo" in msg and "dlrm-pt" in msg


@pytest.mark.parametrize("size", ["0", "-5%"])
def test_bad_size(keys_txt, size):
    msg = run("replay", keys_txt, "--size", size)
    assert repr(size) in msg or size in msg
    assert "positive" in msg or "share" in msg or "cannot read" in msg


def test_unknown_policy(keys_txt):
    msg = run("replay", keys_txt, "--policy", "lru,nope", "--size", "2")
    assert "unknown policy 'nope'" in msg and "lru" in msg


def test_empty_file(tmp_path):
    p = tmp_path / "empty.txt"
    p.write_bytes(b"")
    msg = run("replay", p, "--size", "2")
    assert str(p) in msg and "empty" in msg
    msg = run("replay", p, "--format", "txt", "--size", "2")
    assert str(p) in msg and "no accesses" in msg


def test_missing_file(tmp_path):
    msg = run("convert", tmp_path / "nope.tsv", tmp_path / "o.parquet")
    assert f"{tmp_path / 'nope.tsv'}: no such file or folder" in msg


def test_folder_without_trace_files(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.md").write_text("hi")
    msg = run("convert", folder, tmp_path / "o.parquet")
    assert f"{folder}: the folder holds no trace files" in msg and ".npz" in msg


def test_fbgemm_npz_without_table_count(tmp_path):
    import numpy as np
    np.savez(tmp_path / "b.npz", indices=np.arange(6), offsets=np.array([0, 2, 4, 6]))
    msg = run("convert", tmp_path / "b.npz", tmp_path / "o.parquet")
    assert "cannot tell the number of tables" in msg and "--tables" in msg
    msg = run("convert", tmp_path / "b.npz", tmp_path / "o.parquet", "--tables", "2")
    assert "not T*B+1" in msg


def test_console_entry_point_prints_no_traceback(tmp_path):
    p = tmp_path / "t.oracleGeneral.bin"
    p.write_bytes(b"\0" * 50)
    proc = subprocess.run([sys.executable, "-c", "from cachesim.cli import main; main()",
                           "replay", str(p), "--size", "5"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"cachesim: error: {p}, byte offset 48: file is 50 bytes, not a whole number of 24-byte "
        "oracleGeneral records; the last record is cut short (the file is truncated: copy it "
        "again, or cut it to a multiple of 24 bytes)"]
    assert proc.stdout == ""


def test_not_utf8_names_line_and_offset(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"table,row\n0,1\n\xff,2\n")
    msg = run("convert", p, tmp_path / "o.parquet")
    assert f"{p}, line 3, byte offset 14: byte b'\\xff' is not UTF-8 text" in msg


def test_dlrm_pt_without_torch(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    (tmp_path / "b.pt").write_bytes(b"not read")
    msg = run("convert", tmp_path / "b.pt", tmp_path / "o.parquet")
    assert "needs torch: pip install 'cachesim[torch]'" in msg


def test_click_usage_errors_are_one_line_too(capsys):
    """An unknown option or a missing argument: one line, exit 2, like every user mistake."""
    from cachesim.cli import main
    for argv, needle in ((["sweep", "--bogus"], "--bogus"), (["replay"], "TRACE")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("cachesim: error:") and needle in err[0]


def test_outputs_into_a_missing_folder_or_onto_a_folder_are_one_line(tmp_path, shared_data):
    from click.testing import CliRunner
    from cachesim.cli import cli
    txt = str(shared_data / "cloudphysics" / "cloudPhysicsIO.txt")
    (tmp_path / "adir").mkdir()
    for args, needle in ((["mrc", txt, "-o", str(tmp_path / "nodir" / "m.csv")], "does not exist"),
                         (["convert", txt, str(tmp_path / "adir")], "is a folder")):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output, r.output
    r = CliRunner().invoke(cli, ["mrc", txt, "--size", "1,10", "-o", str(tmp_path / "m.csv")])
    assert r.exit_code == 0
    import os
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.csv").stat().st_mode & 0o777 == 0o666 & ~umask


def test_one_unreadable_file_of_a_parquet_folder_is_named(tmp_path):
    """A folder whose second file is empty: every command that reads it names that file, in
    one line (the metadata read of each file once raised polars' traceback)."""
    import numpy as np
    from cachesim.io import write_trace
    from cachesim.trace import Trace
    folder = tmp_path / "pf"
    folder.mkdir()
    write_trace(Trace.from_keys(np.arange(50) % 7), folder / "a.parquet")
    (folder / "b.parquet").write_bytes(b"")
    for args in (["analyze", folder], ["mrc", folder], ["convert", folder, tmp_path / "x.parquet"],
                 ["replay", folder, "--mode", "access", "-s", "2"], ["replay", folder, "-s", "2"],
                 ["allocate", folder, "--budget", "1KiB"]):
        line = run(*args)
        assert f"{folder / 'b.parquet'}: not a readable Parquet file" in line, (args, line)


def test_streamed_commands_name_a_damaged_parquet_file_and_a_missing_batch_column(tmp_path):
    """--stream of a truncated Parquet file is its one-line error in every command (train
    raised a TypeError traceback; analyze and allocate blamed the format); one without a batch
    column is refused by those that follow its batches, saying so."""
    import numpy as np
    from cachesim.io import write_trace
    from cachesim.trace import Trace
    whole = tmp_path / "whole.parquet"
    trace = Trace.from_keys(np.arange(4000) % 97, batch=np.arange(4000) // 100)
    trace.labels = (np.arange(4000) % 2).astype(np.float32)
    write_trace(trace, whole)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    for cmd in (["train", cut, "-q"], ["analyze", cut], ["allocate", cut, "--budget", "1KiB"],
                ["mrc", cut], ["report", cut, "-o", tmp_path / "r", "-q"]):
        line = run(*cmd, "--stream")
        assert f"{cut}: not a readable Parquet file" in line, (cmd, line)
    flat = tmp_path / "flat.parquet"
    write_trace(Trace.from_keys(np.arange(400) % 13), flat)  # no batch column
    for cmd in (["analyze", flat], ["allocate", flat, "--budget", "1KiB"],
                ["report", flat, "-o", tmp_path / "r", "-q"]):
        line = run(*cmd, "--stream")
        assert line == (f"cachesim: error: {flat}: {cmd[0]} --stream follows a Parquet trace's "
                        "batches, and this one has no batch column; drop --stream to read it "
                        "in memory"), line
    assert not (tmp_path / "r").exists()
    # a missing file is only that: no advice to train it in memory
    assert run("train", tmp_path / "nope.parquet", "--stream", "-q") == (
        f"cachesim: error: train --stream: {tmp_path / 'nope.parquet'}: no such file or folder "
        "(check the path)")


def test_a_test_fraction_of_no_batch_is_refused_before_training(shared_data):
    """5 batches at --test-fraction 0.1 rounds to no test batch: it once trained on all five
    and printed no accuracy without a word (the README's streamed example did)."""
    tsv = shared_data / "criteo" / "kaggle_train_head10k.tsv"
    for extra in ((), ("--stream",)):
        line = run("train", tsv, "--batch-size", "2048", "-s", "5%", "-q", *extra)
        assert "--test-fraction 0.1 of 5 batches is no test batch" in line, line
        assert "--test-fraction 0.2 or more" in line
    import warnings
    import cachesim
    from cachesim.executor.train import NoTestBatchWarning
    trace = cachesim.read_trace(tsv, batch_size=2048)
    with warnings.catch_warnings(record=True) as caught:  # the API warns and trains untested
        warnings.simplefilter("always")
        records = cachesim.train(trace, size="5%", precision="int8", baselines=False,
                                 progress=False)
    assert any(issubclass(w.category, NoTestBatchWarning) for w in caught)
    assert records[0]["test_samples"] == 0 and records[0]["auc"] is None


def test_text_or_parquet_given_as_oracle_general_is_refused(tmp_path, shared_data):
    """A txt trace cut to a multiple of 24 bytes was read as binary records: garbage keys."""
    text = (shared_data / "cloudphysics" / "cloudPhysicsIO.txt").read_bytes()
    keys = tmp_path / "keys24.txt"
    keys.write_bytes(text[:24 * 4000])
    for extra in ((), ("--stream",)):
        line = run("replay", keys, "-s", "5%", "--format", "oracle-general", "--mode", "access",
                   *extra)
        assert "is text, not 24-byte binary oracleGeneral records" in line
        assert "--format txt" in line
    from cachesim.io import write_trace
    from cachesim.trace import Trace
    import numpy as np
    write_trace(Trace.from_keys(np.arange(10)), tmp_path / "t.parquet")
    line = run("replay", tmp_path / "t.parquet", "-s", "2", "--format", "oracle-general")
    assert "byte offset 0: is Parquet, not oracleGeneral records" in line
    import cachesim
    real = cachesim.read_trace(shared_data / "cloudphysics" / "cloudPhysicsIO.oracleGeneral.bin")
    assert len(real) > 0  # real binary records still read


def test_streaming_gzip_text_names_the_compression(tmp_path, shared_data):
    import gzip
    gz = tmp_path / "cp.txt.gz"
    gz.write_bytes(gzip.compress((shared_data / "cloudphysics" / "cloudPhysicsIO.txt")
                                 .read_bytes()[:5000].rsplit(b"\n", 1)[0] + b"\n"))
    for args in (["replay", gz, "-s", "1%", "--stream", "--mode", "access"],
                 ["mrc", gz, "--stream"], ["analyze", gz, "--stream"]):
        line = run(*args)
        assert "it is gzip-compressed, and compressed text does not stream" in line, line
