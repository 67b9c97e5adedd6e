"""Streamed training (`cachesim.executor.stream`, `cachesim train --stream`): the batches are
read from a Parquet or Criteo TSV trace as training goes, in chunks that cut batches (1, 7 and
1,000 accesses), and every record equals the in-memory run's: counters, losses, AUC, accuracy
and the final weights, for the same seeds; the counters also equal `replay --mode batch`'s."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import cachesim.sizes
from cachesim.cli import cli
from cachesim.errors import CachesimError
from cachesim.executor import stream as exstream
from cachesim.executor import train
from cachesim.executor.stream import StreamedData, train_stream
from cachesim.io import read_trace, write_trace
from cachesim.io.criteo import read_criteo
from cachesim.io.tabular import read_parquet_metadata
from cachesim.simulate.batch import replay_batch
from cachesim.synth.generate import generate

TINY = {"bottom": (4,), "top": (4,)}
TIMING = ("seconds", "samples_per_s")
COUNTERS = ("calls", "requested_indices", "unique_indices", "unique_misses",
            "conflict_unique_misses", "conflict_misses", "evictions", "misses")


@pytest.fixture(scope="module")
def multihot(tmp_path_factory):
    """3 tables, Poisson bags of 0..several rows (every sample has one access at least, so the
    labels ride on the access rows), 16 samples a batch, labels and dense from the teacher."""
    tr = generate(400, tables=3, rows=[300, 80, 1000], alpha=1.0, bag_size="poisson:2.5",
                  batch_size=16, seed=3, teacher=True, dim=4)
    path = tmp_path_factory.mktemp("st") / "multihot.parquet"
    write_trace(tr, path)
    assert read_parquet_metadata(path)["per_sample"] == "columns"
    return path


def _head_lines(shared_data, folder, n):
    lines = (shared_data / "criteo" / "kaggle_train_head10k.tsv").read_bytes().split(b"\n")
    tsv = folder / f"head{n}.tsv"
    tsv.write_bytes(b"\n".join(lines[:n]) + b"\n")
    return tsv


@pytest.fixture(scope="module")
def criteo(tmp_path_factory, shared_data):
    """The first 300 Criteo Kaggle lines (26 tables, 13 dense counts, real labels), converted."""
    folder = tmp_path_factory.mktemp("criteo")
    path = folder / "head300.parquet"
    write_trace(read_criteo(_head_lines(shared_data, folder, 300), batch_size=32), path)
    return path


@pytest.fixture(scope="module")
def tsv(tmp_path_factory, shared_data):
    """The first 120 Criteo Kaggle lines, as TSV."""
    return _head_lines(shared_data, tmp_path_factory.mktemp("tsv"), 120)


def _same(mem, streamed):
    assert len(mem) == len(streamed)
    for a, b in zip(mem, streamed):
        assert {k: v for k, v in a.items() if k not in TIMING + ("_state",)} == \
            {k: v for k, v in b.items() if k not in TIMING + ("_state",)}
        if "_state" in a:
            for k, v in a["_state"]["params"].items():
                np.testing.assert_array_equal(v, b["_state"]["params"][k])
            np.testing.assert_array_equal(a["_state"]["rows"], b["_state"]["rows"])


@pytest.mark.parametrize("chunk,baselines", [(1, False), (7, True), (1000, True)])
def test_streamed_train_equals_in_memory(multihot, chunk, baselines, monkeypatch):
    opts = dict(precision="int8", size="10%", policy="lru", ways=32, model=TINY, seed=1,
                progress=False, device="cpu", test_fraction=0.25, baselines=baselines,
                return_state=True)
    mem = train(read_trace(multihot), **opts)
    heights = []
    frames = exstream.parquet_frames

    def spy(path, chunk_accesses, columns, offset=0):
        head, it = frames(path, chunk_accesses, columns, offset)
        return head, (heights.append(df.height) or df for df in it)
    monkeypatch.setattr(exstream, "parquet_frames", spy)
    # never the whole trace: the in-memory readers are not called
    monkeypatch.setattr("cachesim.io.tabular.read_parquet", None)
    got = train_stream(multihot, chunk_accesses=chunk, **opts)
    _same(mem, got)
    assert max(heights) == chunk
    assert mem[-1]["calls"] > 0 and mem[-1]["evictions"] > 0 and mem[-1]["auc"] is not None


def test_rebatched_criteo_with_epochs_adagrad_and_per_table_caches(criteo):
    # --batch-size re-batches by sample (20, not the file's 32), chunks of 7 cut the batches
    opts = dict(precision="int8", size="5%", policy="lfu", ways=4, model=TINY, seed=0,
                progress=False, device="cpu", test_fraction=0.2, baselines=False, epochs=2,
                optimizer="adagrad", cache_model="ideal", per_table=True, batch_size=20,
                return_state=True)
    mem = train(read_trace(criteo), **opts)
    got = train_stream(criteo, chunk_accesses=7, **opts)
    _same(mem, got)
    assert got[0]["batch_samples"] == 20 and got[0]["train_samples"] == 2 * 240
    assert got[0]["test_samples"] == 60 and got[0]["labels"] == "trace"


@pytest.mark.parametrize("chunk,opts", [
    (7, dict(cache_model="fbgemm", ways=32, baselines=True, batch_size=16)),  # a line a chunk
    (1000, dict(cache_model="ideal", ways=4, per_table=True, batch_size=20, epochs=2,
                table_rows=[400] * 26))])
def test_streamed_criteo_tsv_equals_in_memory(tsv, chunk, opts):
    opts = dict(precision="int4", size="5%", policy="lru", model=TINY, seed=2, progress=False,
                device="cpu", test_fraction=0.2, return_state=True, **opts)
    trace = read_trace(tsv, **({"batch_size": opts["batch_size"]} if "batch_size" in opts
                               else {}))
    if "table_rows" in opts:
        from cachesim.simulate.fbgemm import with_table_rows
        trace = with_table_rows(trace, opts["table_rows"])
    mem = train(trace, **{k: v for k, v in opts.items() if k != "table_rows"})
    _same(mem, train_stream(tsv, chunk_accesses=chunk, **opts))
    assert mem[-1]["evictions"] > 0 and mem[-1]["test_samples"] > 0


def test_streamed_criteo_tsv_errors_name_the_line(tsv, tmp_path):
    lines = tsv.read_bytes().split(b"\n")
    lines[57] = b"2" + lines[57][1:]  # line 58: label 2
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"\n".join(lines))
    with pytest.raises(CachesimError) as mem:
        read_trace(bad)
    with pytest.raises(CachesimError) as streamed:
        StreamedData(bad, chunk_accesses=26 * 10)
    assert str(streamed.value) == str(mem.value) and "line 58" in str(mem.value)
    with pytest.raises(CachesimError, match="--table-rows"):  # below a table's rows
        StreamedData(tsv, table_rows=[2] * 26)


@pytest.mark.parametrize("ways", [4, None])
def test_streamed_counters_equal_batch_replay(multihot, ways):
    rec, = train_stream(multihot, chunk_accesses=7, precision="int8", size="10%", policy="lru",
                        ways=ways, model=TINY, progress=False, device="cpu", test_fraction=0.0,
                        baselines=False, cache_model="ideal")
    sim = replay_batch(read_trace(multihot), "lru", "10%", ways=ways, cache_model="ideal")
    assert {k: rec[k] for k in COUNTERS} == {k: getattr(sim, k) for k in COUNTERS}
    assert rec["requested_indices"] == len(read_trace(multihot))


def _json_records(args):
    res = CliRunner().invoke(cli, ["train", *args, "--json", "-q", "--device", "cpu",
                                   "--model", "small", "-s", "10%", "--seeds", "0"])
    assert res.exit_code == 0, res.output
    return [{k: v for k, v in r.items() if k not in TIMING} for r in json.loads(res.stdout)]


def _spy_streamed(monkeypatch):
    made = []
    init = StreamedData.__init__

    def spy(self, *a, **kw):
        made.append(a[0])
        init(self, *a, **kw)
    monkeypatch.setattr(StreamedData, "__init__", spy)
    return made


def test_cli_stream_flag_and_default_threshold(criteo, monkeypatch):
    made = _spy_streamed(monkeypatch)
    mem = _json_records([str(criteo), "--no-stream"])
    assert made == []
    assert _json_records([str(criteo), "--stream"]) == mem
    assert len(made) == 1
    monkeypatch.setattr(cachesim.sizes, "STREAM_THRESHOLD", 0)  # every trace is "large"
    assert _json_records([str(criteo)]) == mem
    assert len(made) == 2
    monkeypatch.setattr(cachesim.sizes, "STREAM_THRESHOLD", 1 << 40)
    assert _json_records([str(criteo)]) == mem
    assert len(made) == 2


def test_cli_refuses_what_cannot_train_streamed(tmp_path, shared_data, monkeypatch):
    oracle = shared_data / "cloudphysics" / "cloudPhysicsIO.oracleGeneral.bin"
    unlabelled = tmp_path / "nolabels.parquet"
    write_trace(generate(120, tables=3, rows=50, batch_size=8, seed=1, dim=4), unlabelled)
    in_meta = tmp_path / "meta.parquet"  # samples without accesses: labels in the metadata
    write_trace(generate(200, tables=3, rows=[300, 80, 1000], bag_size="poisson:1.5",
                         batch_size=16, seed=3, teacher=True, dim=4), in_meta)
    assert read_parquet_metadata(in_meta)["per_sample"] == "metadata"
    for path, words in [(oracle, "not oracle-general"), (unlabelled, "no `label` column"),
                        (in_meta, "metadata"), (tmp_path / "gone.parquet", "no such file")]:
        res = CliRunner().invoke(cli, ["train", str(path), "--stream", "-q", "--device", "cpu"])
        assert res.exit_code == 2, res.output
        err = res.output.strip()
        missing = words == "no such file"  # (then nothing could train in memory either)
        assert words in err and ("--no-stream" in err) != missing, err
        assert len(err.splitlines()) == 1, err
        assert "Traceback" not in err
    with pytest.raises(CachesimError, match="no `label` column"):
        StreamedData(unlabelled)
    # by default such a trace trains in memory (labels from the planted teacher) however large
    made = _spy_streamed(monkeypatch)
    monkeypatch.setattr(cachesim.sizes, "STREAM_THRESHOLD", 0)
    recs = _json_records([str(unlabelled), "--no-baselines"])
    assert made == [] and recs[0]["labels"].startswith("planted teacher")


def test_first_pass_refuses_unsorted_batches(tmp_path):
    tr = generate(64, tables=2, rows=40, batch_size=8, seed=2, teacher=True, dim=4)
    tr.batch = tr.batch[::-1].copy()  # batches out of order
    path = tmp_path / "unsorted.parquet"
    write_trace(tr, path)
    with pytest.raises(CachesimError, match="not in order"):
        train_stream(path, chunk_accesses=7, progress=False, device="cpu", model=TINY)
    with pytest.raises(CachesimError, match="test-fraction"):
        StreamedData(path, test_fraction=1.0)


def test_avazu_without_dense_features(tmp_path, shared_data):
    # Avazu has no dense counts (n_dense 0 in the metadata): no zero feature is made up
    lines = (shared_data / "avazu" / "train_head10k.csv").read_bytes().split(b"\n")
    csv = tmp_path / "head.csv"
    csv.write_bytes(b"\n".join(lines[:301]) + b"\n")
    path = tmp_path / "avazu.parquet"
    write_trace(read_trace(csv, format="avazu"), path)
    opts = dict(model=TINY, progress=False, device="cpu", size="5%", precision="int8", seed=0,
                test_fraction=0.2, baselines=False, batch_size=30, return_state=True)
    mem = train(read_trace(path), **opts)
    _same(mem, train_stream(path, chunk_accesses=1000, **opts))
    assert mem[0]["model"].split("bottom ")[1].startswith("0-")


def test_a_damaged_gzip_tsv_is_one_line_when_streamed(tmp_path):
    """A .tsv.gz cut short: the readers' one-line error with exit 2 (gzip's EOFError became
    click's "Aborted!")."""
    import gzip
    from pathlib import Path
    src = Path(__file__).parent / "data" / "criteo" / "kaggle_train_head10k.tsv"
    whole = gzip.compress(src.read_bytes())
    cut = tmp_path / "cut.tsv.gz"
    cut.write_bytes(whole[:len(whole) // 2])
    res = CliRunner().invoke(cli, ["train", str(cut), "--stream", "-q"], prog_name="cachesim")
    assert res.exit_code == 2, res.output
    assert f"{cut}: a damaged gzip file" in res.output and "gzip -t" in res.output
    assert "Aborted" not in res.output and "Traceback" not in res.output
