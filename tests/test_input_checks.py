"""No silent wrong answer from trace input and sizes: keys at the int64 limits, negative keys and
sizes, ways that round a cache up, binary or gzip input, a CSV without `row`, and the S3-FIFO
rule that tells libCacheSim versions apart."""
import gzip
import json
import struct

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

import cachesim
from cachesim.cli import cli
from cachesim.costs import cache_rows_for, memory_cost, parse_rows
from cachesim.errors import CachesimError
from cachesim.hashing import geometry_note, set_geometry
from cachesim.io import Trace, read_trace
from tests import naive

TOP = 2**63 - 1


def fails(*args) -> str:
    """The one stderr line of a CLI run that must stop with exit status 2."""
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 2, (r.output, r.exception)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cachesim: error: "), r.stderr
    return lines[0]


def same_trace(a: Trace, b: Trace) -> None:
    assert a.table_names == b.table_names and len(a) == len(b)
    for name in ("table", "row", "batch", "sample", "ts", "size", "labels", "dense",
                 "table_rows", "table_dims"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), name


# -- keys at the int64 limits, negative keys and sizes ---------------------------------------------
@pytest.mark.parametrize("command", ["memory", "analyze"])
def test_row_of_2_63_minus_1_is_refused_with_its_line(tmp_path, command):
    p = tmp_path / "big.csv"
    p.write_text(f"table,row\n0,5\n0,{TOP}\n")
    msg = fails(command, p)
    assert f"{p}, line 3: row 9,223,372,036,854,775,807 of table t0 is 2^63-1" in msg
    assert "overflow int64" in msg


def test_row_near_2_63_counts_its_rows_and_bytes_exactly(tmp_path):
    p = tmp_path / "near.csv"
    p.write_text(f"table,row\n0,5\n0,{TOP - 1}\n")
    r = CliRunner().invoke(cli, ["memory", str(p), "--precision", "fp32", "--size", "10",
                                 "--json"])
    assert r.exit_code == 0, r.output
    (rec,) = json.loads(r.stdout)
    assert rec["total_rows"] == TOP
    assert rec["store_data_bytes"] == TOP * 64 and rec["fp32_bytes"] == TOP * 64  # past int64
    assert rec["total_bytes"] == TOP * 64 + 32 * 64 + 32 * 16  # 10 rows: one set of 32 lines
    r = CliRunner().invoke(cli, ["analyze", str(p), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["rows"] == TOP and res["tables"][0]["rows"] == TOP


@pytest.mark.parametrize("command", ["memory", "analyze", "replay"])
def test_negative_row_is_refused_with_its_line(tmp_path, command):
    p = tmp_path / "neg.csv"
    p.write_text("table,row\n0,4\n0,-3\n0,-5\n")
    extra = ["-s", "2"] if command == "replay" else []
    msg = fails(command, p, *extra)
    assert f"{p}, line 3: row -3 of table t0 is negative" in msg


def test_negative_row_in_parquet_names_the_access(tmp_path):
    p = tmp_path / "neg.parquet"
    pl.DataFrame({"table": [0, 0, 0], "row": [1, 2, -7]}).write_parquet(p)
    with pytest.raises(CachesimError, match=r"neg.parquet: row -7 of table t0 is negative "
                                            r"\(access 2\)"):
        read_trace(p)


def test_uint64_parquet_row_past_int64_is_refused(tmp_path):
    p = tmp_path / "u.parquet"
    pl.DataFrame({"row": pl.Series([3, 2**64 - 1], dtype=pl.UInt64)}).write_parquet(p)
    with pytest.raises(CachesimError, match="18,446,744,073,709,551,615 \\(access 1\\)"):
        read_trace(p)


@pytest.mark.parametrize("key", [-4, TOP])
def test_txt_key_outside_row_ids_is_refused_with_its_line(tmp_path, key):
    p = tmp_path / "keys.txt"
    p.write_text(f"1\n2\n{key}\n")
    msg = fails("analyze", p)
    assert f"{p}, line 3: key {key:,} is outside 0..2^63-2" in msg


def test_negative_size_is_refused_with_its_line(tmp_path):
    p = tmp_path / "sizes.csv"
    p.write_text("table,row,size\n0,1,100\n0,2,-40\n")
    msg = fails("replay", p, "-s", "100B")
    assert f"{p}, line 3: size -40 is negative" in msg
    with pytest.raises(CachesimError, match="access 1 .*size -3 is negative"):
        Trace.from_keys([1, 2], sizes=[5, -3])


def test_rows_outside_their_table_are_refused_when_linearised():
    # table_rows given (as metadata would): row 5 of a 3-row table would be a key of table 1
    tr = Trace(table=np.array([0, 1]), row=np.array([5, 0]), table_rows=np.array([3, 2]))
    with pytest.raises(CachesimError, match="row 5 of table t0 is outside its 3 rows"):
        tr.keys
    with pytest.raises(CachesimError, match="at most 2\\^63-1"):
        Trace(table=np.array([0, 1]), row=np.array([0, 0]), table_rows=np.array([2**62, 2**62]))


def test_fbgemm_index_of_2_63_minus_1_is_refused(tmp_path):
    from cachesim.io.fbgemm import write_fbgemm_npz
    write_fbgemm_npz(tmp_path / "b.npz", np.array([3, TOP]), np.array([0, 1, 2]), 1, 2)
    with pytest.raises(CachesimError, match="b.npz: row 9,223,372,036,854,775,807 of table t0 "
                                            "is 2\\^63-1.*\\(access 1\\)"):
        read_trace(tmp_path / "b.npz")


def test_oracle_general_hashed_ids_count_distinct_rows(tmp_path):
    p = tmp_path / "h.oracleGeneral.bin"
    ids = [2**64 - 1, 5, 2**64 - 1, 2**63, 7]
    p.write_bytes(b"".join(struct.pack("<IQIq", 0, k, 10, -1) for k in ids))
    t = read_trace(p)
    assert t.table_rows.tolist() == [4] and t.n_distinct == 4  # not 2^64, not wrapped
    assert t.row.view(np.uint64).tolist() == ids
    small = tmp_path / "s.oracleGeneral.bin"
    small.write_bytes(b"".join(struct.pack("<IQIq", 0, k, 10, -1) for k in (3, 9, 3)))
    assert read_trace(small).table_rows.tolist() == [10]  # row ids: largest + 1


def test_memory_arithmetic_is_exact_past_int64():
    m = memory_cost([2**62, 2**62 - 1], 16, "fp32", 10)
    assert m.total_rows == TOP and m.store_data_bytes == TOP * 64 and m.fp32_bytes == TOP * 64
    with pytest.raises(CachesimError, match="at most 2\\^63-1"):
        parse_rows(f"{2**62},{2**62}")
    with pytest.raises(CachesimError, match="at most 2\\^63-1"):
        parse_rows(str(2**64))


# -- ways: the lines used, the same in both modes --------------------------------------------------
@pytest.mark.parametrize("size,ways,sets,used", [(10, 3, 4, 3), (10, 32, 1, 10), (12, 4, 3, 4),
                                                  (7, 1, 7, 1), (33, 32, 2, 32)])
def test_access_and_batch_use_the_same_lines(size, ways, sets, used):
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 60, 600)
    tr = Trace.from_keys(keys, batch=np.arange(600) // 20)
    a = cachesim.replay(tr, "lru", size, ways=ways, mode="access")
    b = cachesim.replay(tr, "lru", size, ways=ways, mode="batch", cache_model="ideal")
    for r in (a, b):
        assert (r.capacity, r.ways, r.n_sets, r.n_lines) == (sets * used, used, sets, sets * used)
        assert r.size == str(size)
    assert set_geometry(size, ways) == (sets, used)
    arr = set_geometry(np.array([size, 5]), ways)
    assert arr[0].tolist()[0] == sets and arr[1].tolist()[0] == used


def test_cli_says_the_lines_used(tmp_path):
    p = tmp_path / "keys.txt"
    p.write_text("".join(f"{k}\n" for k in np.random.default_rng(1).integers(0, 30, 200)))
    r = CliRunner().invoke(cli, ["replay", str(p), "-s", "10", "--ways", "3", "-q"])
    assert r.exit_code == 0, r.output
    assert r.stderr == "cachesim: note: --ways 3 --size 10: 4 sets of 3 ways = 12 lines\n"
    head, row = r.stdout.splitlines()
    assert dict(zip(head.split(), row.split()))["capacity"] == "12"
    r = CliRunner().invoke(cli, ["replay", str(p), "-s", "12", "--ways", "3", "-q"])
    assert r.exit_code == 0 and r.stderr == ""  # whole sets: nothing to say
    # at the default --ways, one line for the run however many sizes are rounded up
    r = CliRunner().invoke(cli, ["replay", str(p), "-s", "40,50,64", "-p", "lru,fifo", "-q"])
    assert r.exit_code == 0, r.output
    assert r.stderr == ("cachesim: note: a size that is not whole sets of 32 ways (the default "
                        "--ways) is rounded up to them, as the capacity column shows; give -w "
                        "full for a fully associative cache of exactly that size\n")
    caps = [dict(zip(r.stdout.splitlines()[0].split(), line.split()))["capacity"]
            for line in r.stdout.splitlines()[1:]]
    assert caps == ["64", "64", "64"] * 2
    r = CliRunner().invoke(cli, ["replay", str(p), "-s", "64", "-q"])
    assert r.exit_code == 0 and r.stderr == ""
    # a size under 32 rows is one set of that many ways: nothing is rounded, nothing to say
    r = CliRunner().invoke(cli, ["replay", str(p), "-s", "10", "-q"])
    assert r.exit_code == 0 and r.stderr == ""
    # FBGEMM's model (batch mode's default) rounds too, to whole sets of its 32 ways, a 10-row
    # cache included: one line for the run; none where the lines are the rows asked for
    p = tmp_path / "batched.csv"
    p.write_text("table,row,batch\n" + "".join(f"0,{k % 90},{k // 7}\n" for k in range(300)))
    fbgemm = ("cachesim: note: FBGEMM's cache is whole sets of 32 ways, at least one: a size "
              "that is not is rounded to them (rows and shares up, bytes down), as the capacity "
              "column shows\n")
    for size, note in (("10,1000", fbgemm), ("64,2KiB", "")):
        r = CliRunner().invoke(cli, ["replay", str(p), "--mode", "batch", "-s", size, "-q",
                                     "--table-rows", "90"])
        assert r.exit_code == 0, r.output
        assert r.stderr == note, (size, r.stderr)
    assert geometry_note("10", 10, 32) == ("--ways 32 --size 10: 1 set of 10 ways = 10 lines "
                                           "(ways lowered to the 10 rows)")


@pytest.mark.parametrize("size", ["10", "1000", "5%", "0.01%", "1KiB", "100KiB"])
def test_memory_lines_are_the_default_batch_replays(size):
    """`cachesim memory` sizes FBGEMM's cache as the default batch replay does: a share of the
    tables' rows truncated (FBGEMM's int(rows x cache_load_factor)), then whole sets of 32
    lines, never fewer than one set (it said 1,688,160 lines at 5% of Criteo Kaggle's
    33,762,577 rows where the replay has FBGEMM's 1,688,128)."""
    rows = [33_761_577, 1000]
    rng = np.random.default_rng(3)
    tr = Trace(table=rng.integers(0, 2, 400), row=rng.integers(0, 1000, 400),
               batch=np.arange(400) // 40, table_rows=rows)
    r = cachesim.replay(tr, "lru", size, mode="batch")  # the default model: fbgemm
    assert cache_rows_for(size, sum(rows), ways=32) == r.n_lines
    (rec,) = json.loads(CliRunner().invoke(cli, ["memory", "--rows", "33761577,1000", "-s", size,
                                                 "--precision", "fp32",
                                                 "--json"]).stdout)
    assert rec["cache_rows"] == r.n_lines
    want = {"10": 32, "1000": 1024, "5%": 52_754 * 32, "0.01%": 106 * 32, "1KiB": 32,
            "100KiB": 50 * 32}[size]  # by hand: 1,688,128.85 -> 1,688,128 = 52,754 x 32 ...
    assert r.n_lines == want


# -- binary input, a CSV without `row`, gzip -------------------------------------------------------
def test_binary_file_as_csv_is_not_text(tmp_path):
    p = tmp_path / "prog.csv"
    p.write_bytes(b"\x7fELF\x02\x01\x01\x00,row\n" + bytes(range(256)) * 4)
    msg = fails("replay", p, "-s", "2")
    assert msg.startswith(f"cachesim: error: {p}: not a text trace (byte offset 0 holds 0x7f: "
                          "an ELF executable)")
    assert "--format" in msg and "\\x7fELF" not in msg  # no bytes dumped as column names
    q = tmp_path / "keys.txt"
    q.write_bytes(b"12\n7\n\x00\x00\x00\x01\n")
    msg = fails("replay", q, "--format", "txt", "-s", "2")
    assert f"{q}: not a text trace (byte offset 5 holds 0x00)" in msg
    r = tmp_path / "data"  # no suffix, no sniffer: still says why
    r.write_bytes(b"\x00\x01\x02\x03" * 10)
    assert "not a text trace (byte offset 0 holds 0x00)" in fails("analyze", r)


def test_csv_without_row_column_names_it_without_format(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("table,key\n0,1\n0,2\n")
    msg = fails("replay", p, "-s", "2")
    assert f"{p}, line 1: no `row` column (columns: 'table', 'key')" in msg


@pytest.fixture(scope="module")
def criteo_slice(shared_data, tmp_path_factory):
    """The first 300 lines of the Criteo Kaggle head, plain and gzipped (.tsv.gz)."""
    folder = tmp_path_factory.mktemp("gz")
    lines = (shared_data / "criteo" / "kaggle_train_head10k.tsv").read_bytes().split(b"\n")
    text = b"\n".join(lines[:300]) + b"\n"
    plain = folder / "day.tsv"
    plain.write_bytes(text)
    packed = folder / "day.tsv.gz"
    packed.write_bytes(gzip.compress(text))
    return plain, packed


def test_gzip_criteo_reads_as_the_plain_file(criteo_slice):
    plain, packed = criteo_slice
    a, b = read_trace(plain), read_trace(packed)
    assert len(a) == 300 * 26
    same_trace(a, b)
    assert b.source == str(packed)


def test_gzip_magic_without_gz_suffix_and_other_text_formats(criteo_slice, tmp_path):
    plain, packed = criteo_slice
    hidden = tmp_path / "day2.tsv"
    hidden.write_bytes(packed.read_bytes())
    same_trace(read_trace(plain), read_trace(hidden))
    csv = tmp_path / "t.csv"
    csv.write_text("table,row,size\nA,1,10\nB,2,20\nA,1,10\n")
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(csv.read_bytes()))
    same_trace(read_trace(csv), read_trace(tmp_path / "t.csv.gz"))
    txt = tmp_path / "k.txt"
    txt.write_text("3\n1\n3\n")
    (tmp_path / "k.txt.gz").write_bytes(gzip.compress(txt.read_bytes()))
    same_trace(read_trace(txt), read_trace(tmp_path / "k.txt.gz"))


def test_gzip_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "k.txt.gz"
    bad.write_bytes(gzip.compress(b"1\n2\nxyz\n"))
    assert f"{bad}, line 3: expected one integer key a line" in fails("analyze", bad)
    cut = tmp_path / "cut.tsv.gz"
    whole = gzip.compress("".join(f"{k}\n" for k in range(5000)).encode())
    cut.write_bytes(whole[: len(whole) // 2])
    assert f"{cut}: a damaged gzip file" in fails("analyze", cut)


# -- S3-FIFO: the rule that tells libCacheSim versions apart ---------------------------------------
def test_s3fifo_follows_upstream_035d832_not_the_october_2024_checkout():
    # capacity 20: small 2, main 18. Keys 0..39 then 2..19. With the rule (before the first
    # eviction, a new key goes to main while small is full), 2..19 sit in main and all hit;
    # without it they enter small, are pushed into the ghost by 20..39, and all miss again.
    keys = list(range(40)) + list(range(2, 20))
    ours = cachesim.replay(Trace.from_keys(keys), "s3fifo", 20, ways=None)
    current = naive.s3fifo(keys, 20)
    older = naive.s3fifo(keys, 20, early_main=False)
    assert (ours.hits, ours.misses, ours.evictions) == (current[0], current[1], current[3])
    assert current[:2] == (18, 40) and older[:2] == (0, 58)
