"""Trace readers and writers: numbering rules, real files, round trips, format inference."""
import csv
import gzip
import struct

import numpy as np
import polars as pl
import pytest
from hypothesis import given, strategies as st

from cachesim.io import (Trace, dense_remap, infer_format, read_parquet_metadata, read_trace,
                             write_trace)
from cachesim.io.fbgemm import write_fbgemm_npz
from cachesim.io.tabular import _first_bad_line
from tests import naive

FIELDS = ("table", "row", "batch", "sample", "ts", "size", "labels", "dense", "table_rows",
          "table_dims", "next_access_given")


def assert_same_trace(a: Trace, b: Trace):
    assert a.table_names == b.table_names
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name


# -- kernels against their naive twins -------------------------------------------------------------
@given(st.lists(st.integers(-2**63, 2**63 - 1) | st.integers(0, 40), max_size=400))
def test_dense_remap_matches_naive(keys):
    ids, distinct = dense_remap(np.array(keys, dtype=np.int64))
    n_ids, n_distinct = naive.dense_remap(keys)
    assert ids.dtype == np.int32
    assert ids.tolist() == n_ids and distinct.tolist() == n_distinct


def test_dense_remap_through_table_growth():
    # enough distinct keys to grow the hash table several times, in a scrambled order
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 300_000, 600_000) * 2_654_435_761
    ids, distinct = dense_remap(keys)
    _, first = np.unique(keys, return_index=True)
    order = np.sort(first)
    assert np.array_equal(distinct, keys[order])
    assert np.array_equal(distinct[ids], keys)
    assert ids[order].tolist() == list(range(order.shape[0]))


@given(st.lists(st.sampled_from([b"a", b"\t", b"\n", b"\r", b"7"]), max_size=80),
       st.integers(1, 4))
def test_field_count_kernel_matches_naive(chunks, expected):
    text = b"".join(chunks)
    buf = np.frombuffer(text, dtype=np.uint8)
    assert tuple(_first_bad_line(buf, 0, 9, expected)) == naive.first_bad_line(text, b"\t", expected)


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1),
                          st.integers(0, 2**32 - 1), st.integers(-1, 2**40)), max_size=50))
def test_oracle_general_reader_matches_struct(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("og") / "t.oracleGeneral.bin"
    path.write_bytes(b"".join(struct.pack("<IQIq", *r) for r in records))
    t = read_trace(path, format="oracle-general")  # an empty file has nothing to infer from
    assert t.ts.tolist() == [r[0] for r in records]
    assert t.row.view(np.uint64).tolist() == [r[1] for r in records]
    assert t.size.tolist() == [r[2] for r in records]
    assert t.table_names == ["objects"] and len(t) == len(records)


# -- criteo ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def criteo_path(shared_data):
    return shared_data / "criteo" / "kaggle_train_head10k.tsv"


@pytest.fixture(scope="module")
def criteo(criteo_path):
    return read_trace(criteo_path)


def test_criteo_real_file(criteo, criteo_path):
    assert len(criteo) == 260_000 and criteo.n_tables == 26
    assert criteo.labels.dtype == np.float32 and criteo.labels.shape == (10_000,)
    assert int(criteo.labels.sum()) == 2_182
    assert criteo.table_names == [f"C{i}" for i in range(1, 27)]
    assert criteo.dense.shape == (10_000, 13) and criteo.dense.dtype == np.float32
    assert (criteo.table_dims == 16).all()
    # line order, tables 0..25 within a line; DLRM default mini-batch 128
    assert criteo.table[:27].tolist() == list(range(26)) + [0]
    assert np.array_equal(criteo.sample, np.repeat(np.arange(10_000), 26))
    assert np.array_equal(criteo.batch, criteo.sample // 128)
    # every column against the plain-Python dictionary, labels and dense against the text
    with open(criteo_path, newline="") as fh:
        lines = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = criteo.row.reshape(10_000, 26)
    for t in range(26):
        want, n_rows = naive.dlrm_dictionary([ln[14 + t] or None for ln in lines])
        assert rows[:, t].tolist() == want
        assert criteo.table_rows[t] == n_rows
    assert criteo.labels.tolist() == [float(ln[0]) for ln in lines]
    dense = [[float(v) if v else 0.0 for v in ln[1:14]] for ln in lines]
    assert np.array_equal(criteo.dense, np.array(dense, dtype=np.float32))


def test_criteo_batch_size_option(criteo_path):
    t = read_trace(criteo_path, batch_size=1000)
    assert t.batch[-1] == 9 and np.array_equal(t.batch, t.sample // 1000)


def test_shipped_demo_trace_is_the_converted_sample(criteo):
    from cachesim.demo import demo_trace_path
    shipped = read_trace(demo_trace_path())
    assert_same_trace(shipped, criteo)
    meta = read_parquet_metadata(demo_trace_path())
    assert meta["source"] == "criteo:kaggle_train_head10k.tsv" and meta["format_version"] == 1


# -- avazu -----------------------------------------------------------------------------------------
def test_avazu_real_file(shared_data):
    path = shared_data / "avazu" / "train_head10k.csv"
    t = read_trace(path)
    with open(path, newline="") as fh:
        header, *lines = list(csv.reader(fh))
    names = header[3:]
    assert t.table_names == names and len(names) == 21
    assert len(t) == len(lines) * 21 and len(lines) == 9_999
    assert t.labels.tolist() == [float(ln[1]) for ln in lines]
    assert t.dense.shape == (9_999, 0) and np.array_equal(t.batch, t.sample // 128)
    assert t.ts[0] == 1413849600  # 14102100: 2014-10-21 00:00 UTC
    rows = t.row.reshape(-1, 21)
    for j in range(21):
        want, n_rows = naive.dlrm_dictionary([ln[3 + j] or None for ln in lines])
        assert rows[:, j].tolist() == want and t.table_rows[j] == n_rows


def test_avazu_missing_value_is_row_zero(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("id,click,hour,site,app\n1,1,14102100,x,\n2,0,14102101,,y\n3,0,14102101,x,z\n")
    t = read_trace(p)
    assert t.row.tolist() == [1, 0, 0, 1, 1, 2]
    assert t.table_rows.tolist() == [2, 3] and t.labels.tolist() == [1, 0, 0]
    assert t.ts.tolist() == [1413849600] * 2 + [1413853200] * 4


# -- parquet and csv -------------------------------------------------------------------------------
def test_parquet_round_trip_criteo(criteo, tmp_path):
    out = write_trace(criteo, tmp_path / "k.parquet")
    back = read_trace(out)
    assert_same_trace(back, criteo)
    assert back.source == str(out)
    assert [p.name for p in tmp_path.iterdir()] == ["k.parquet"]  # no temp file left behind


def test_parquet_round_trip_oracle_general(shared_data, tmp_path):
    t = read_trace(shared_data / "cloudphysics" / "cloudPhysicsIO.oracleGeneral.bin")
    back = read_trace(write_trace(t, tmp_path / "c.parquet"))
    assert_same_trace(back, t)
    assert back.table_names == ["objects"] and back.size.sum() == t.size.sum()


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50)), max_size=60),
       st.integers(0, 5), st.booleans())
def test_parquet_round_trip_any_trace(tmp_path_factory, accesses, n_samples, with_next):
    # samples need not all have accesses: per-sample data then goes in the metadata
    rng = np.random.default_rng(len(accesses) * 7 + n_samples)
    n = len(accesses)
    t = Trace(table=[a for a, _ in accesses], row=[b for _, b in accesses],
              sample=rng.integers(0, max(n_samples, 1), n), batch=np.arange(n) // 4,
              labels=rng.random(n_samples).astype(np.float32) if n_samples else None,
              dense=rng.random((n_samples, 2)).astype(np.float32) if n_samples else None,
              next_access_given=rng.integers(-1, 9, n) if with_next else None,
              table_names=["a", "b", "c", "d"])
    path = tmp_path_factory.mktemp("rt") / "t.parquet"
    assert_same_trace(read_trace(write_trace(t, path)), t)


def test_generic_csv_with_table_names(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("table,row,batch,size\nusers,5,0,64\nitems,2,0,64\nusers,5,1,64\n")
    t = read_trace(p)
    assert t.table_names == ["users", "items"]
    assert t.table.tolist() == [0, 1, 0] and t.row.tolist() == [5, 2, 5]
    assert t.batch.tolist() == [0, 0, 1] and t.size.tolist() == [64] * 3
    assert t.keys.tolist() == [5, 6 + 2, 5]  # users has 6 rows (0..5)


def test_generic_csv_round_trip(criteo, tmp_path):
    back = read_trace(write_trace(criteo.slice(0, 2600), tmp_path / "k.csv"))
    assert back.table_names == criteo.table_names
    for name in ("table", "row", "batch", "sample"):
        assert np.array_equal(getattr(back, name), getattr(criteo, name)[:2600])
    assert np.array_equal(back.labels, criteo.labels[:100])
    assert np.array_equal(back.dense, criteo.dense[:100])


def test_parquet_written_elsewhere(tmp_path):
    p = tmp_path / "x.parquet"
    pl.DataFrame({"table": ["b", "a", "b"], "row": [3, 1, 0], "ts": [1, 2, 3]}).write_parquet(p)
    t = read_trace(p)
    assert t.table_names == ["b", "a"] and t.table.tolist() == [0, 1, 0]
    assert t.table_rows.tolist() == [4, 2] and t.ts.tolist() == [1, 2, 3]


# -- fbgemm-npz and dlrm-pt ------------------------------------------------------------------------
def tbe_batch(rng, T, B, rows=50):
    lengths = rng.integers(0, 4, (T, B))
    offsets = np.concatenate([[0], np.cumsum(lengths.ravel())])
    indices = rng.integers(0, rows, offsets[-1])
    return indices, offsets, lengths


def naive_tbe(batches):
    """(table, row, batch, sample) per index of successive (indices, offsets, T, B) batches."""
    out, base = [], 0
    for b, (indices, offsets, T, B) in enumerate(batches):
        for t in range(T):
            for s in range(B):
                for j in range(offsets[t * B + s], offsets[t * B + s + 1]):
                    out.append((t, int(indices[j]), b, base + s))
        base += B
    return out


def columns(t):
    return list(zip(t.table.tolist(), t.row.tolist(), t.batch.tolist(), t.sample.tolist()))


def test_fbgemm_npz_folder_of_batches(tmp_path):
    rng = np.random.default_rng(3)
    batches = []
    for i in (1, 2, 10):  # natural order: batch_2 before batch_10
        ind, off, _ = tbe_batch(rng, 3, 4)
        write_fbgemm_npz(tmp_path / f"batch_{i}.npz", ind, off, num_tables=3, batch_size=4)
        batches.append((ind, off, 3, 4))
    assert infer_format(tmp_path).name == "fbgemm-npz"
    t = read_trace(tmp_path)
    assert columns(t) == naive_tbe(batches)
    assert t.n_tables == 3 and t.batch.max() == 2


def test_fbgemm_npz_tables_from_lengths_or_options(tmp_path):
    rng = np.random.default_rng(4)
    ind, off, lengths = tbe_batch(rng, 2, 5)
    np.savez(tmp_path / "l.npz", indices=ind, offsets=off, lengths=lengths)
    np.savez(tmp_path / "bare.npz", indices=ind, offsets=off)
    want = naive_tbe([(ind, off, 2, 5)])
    assert columns(read_trace(tmp_path / "l.npz")) == want
    assert columns(read_trace(tmp_path / "bare.npz", num_tables=2)) == want
    assert columns(read_trace(tmp_path / "bare.npz", batch_size=5)) == want
    with pytest.raises(Exception, match="cannot tell the number of tables"):
        read_trace(tmp_path / "bare.npz")


def test_dlrm_pt(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    batches = []
    for i, name in enumerate(["f0.pt", "f1.pt.gz"]):
        ind, off, lengths = tbe_batch(rng, 3, 2)
        obj = (torch.from_numpy(ind), torch.from_numpy(off), torch.from_numpy(lengths))
        if name.endswith(".gz"):
            with gzip.open(tmp_path / name, "wb") as fh:
                torch.save(obj, fh)
        else:
            torch.save(obj, tmp_path / name)
        batches.append((ind, off, 3, 2))
    assert infer_format(tmp_path / "f1.pt.gz").name == "dlrm-pt"
    assert columns(read_trace(tmp_path / "f0.pt")) == naive_tbe(batches[:1])
    assert columns(read_trace(tmp_path / "f1.pt.gz")) == naive_tbe(batches[1:])
    assert columns(read_trace(tmp_path, format="dlrm-pt")) == naive_tbe(batches)


def test_dlrm_pt_refuses_arbitrary_pickles(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"not": object()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="weights_only"):
        read_trace(tmp_path / "evil.pt")


# -- inference -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, text, fmt", [
    ("k.txt", "0\t1" + "\t" * 38 + "\n", "criteo"),
    ("k.tsv", "0" + "\t" * 39 + "\n", "criteo"),
    ("ids.txt", "12\n-3\n", "txt"),
    ("ids", "12\n7\n", "txt"),
    ("a.csv", "id,click,hour,C1\n1,0,14102100,5\n", "avazu"),
    ("t.csv", "table,row\n0,1\n", "csv"),
    ("t2.csv", "table,key\n0,1\n", "csv"),  # neither sniffs: csv, whose reader names `row`
])
def test_infer_format_by_suffix_and_content(tmp_path, name, text, fmt):
    p = tmp_path / name
    p.write_text(text)
    assert infer_format(p).name == fmt
    # gzipped: the suffix before .gz and the decompressed first line
    gz = tmp_path / (name + ".gz")
    gz.write_bytes(gzip.compress(text.encode()))
    assert infer_format(gz).name == fmt


def test_infer_format_binary_suffixes(tmp_path, shared_data):
    assert infer_format(shared_data / "cloudphysics" / "cloudPhysicsIO.oracleGeneral.bin").name \
        == "oracle-general"
    (tmp_path / "x.npz").write_bytes(b"PK")
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    assert infer_format(tmp_path / "x.npz").name == "fbgemm-npz"
    assert infer_format(tmp_path / "x.parquet").name == "parquet"


# -- dense_remap: the direct-address path and the hash path agree ---------------------------------
@given(st.lists(st.integers(-300, 300), max_size=300), st.integers(-2**62, 2**62))
def test_dense_remap_direct_matches_hash(keys, shift):
    arr = np.array(keys, dtype=np.int64) + shift  # any offset, negative keys included
    d_ids, d_keys = dense_remap(arr, method="direct")
    h_ids, h_keys = dense_remap(arr, method="hash")
    a_ids, a_keys = dense_remap(arr)
    n_ids, n_keys = naive.dense_remap(arr.tolist())
    for ids, distinct in ((d_ids, d_keys), (h_ids, h_keys), (a_ids, a_keys)):
        assert ids.dtype == np.int32 and distinct.dtype == np.int64
        assert ids.tolist() == n_ids and distinct.tolist() == n_keys


@given(st.lists(st.sampled_from([-2**63, -2**63 + 1, -1, 0, 1, 2**63 - 2, 2**63 - 1])
                | st.integers(-2**63, 2**63 - 1), max_size=200))
def test_dense_remap_hash_and_auto_at_int64_limits(keys):
    arr = np.array(keys, dtype=np.int64)
    expected = naive.dense_remap(keys)
    for method in ("hash", "auto"):
        ids, distinct = dense_remap(arr, method=method)
        assert (ids.tolist(), distinct.tolist()) == expected


def test_dense_remap_direct_refuses_a_wide_range():
    with pytest.raises(ValueError, match="key range"):
        dense_remap(np.array([0, 2**40]), method="direct")
