"""Streamed training from a URL (`cachesim.executor.stream` over `cachesim.io.urls`): a Criteo
TSV, a gzip TSV and a Parquet trace served over HTTP on loopback (tests/http_server.py: byte
ranges) and from `memory://` train exactly as the local file does (counters, losses, AUC,
accuracy and weights), read a block at a time and never copied; a missing URL is one line."""
from __future__ import annotations

import gzip
import json

import pytest
from click.testing import CliRunner

import cachesim.sizes
from cachesim.cli import cli
from cachesim.errors import CachesimError
from cachesim.executor.stream import StreamedData, train_stream
from cachesim.io import write_trace
from cachesim.synth.generate import generate
from tests.http_server import RangeHandler, serve
from tests.test_stream_train import TIMING, TINY, _head_lines, _same

fsspec = pytest.importorskip("fsspec")
BLOCK = 4096  # bytes an HTTP request asks for (io.urls.READ_BLOCK), so a file takes several
OPTS = dict(precision="int8", size="10%", policy="lru", model=TINY, seed=1,
            progress=False, device="cpu", test_fraction=0.25, return_state=True)
# name, chunk_accesses (Criteo: max(1, chunk // 26) lines a chunk), options
CASES = {"head120.tsv": (7, dict(batch_size=16, baselines=False, cache_model="fbgemm", ways=32)),
         "head120.tsv.gz": (60, dict(batch_size=20, cache_model="ideal", ways=4,
                                        per_table=True)),
         "multihot.parquet": (7, dict(baselines=False, cache_model="ideal", ways=4))}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, shared_data):
    """The traces of CASES in a local folder, and the records of training each from there."""
    folder = tmp_path_factory.mktemp("url_train")
    tsv = _head_lines(shared_data, folder, 120)
    tsv.rename(folder / "head120.tsv")
    (folder / "head120.tsv.gz").write_bytes(gzip.compress((folder / "head120.tsv").read_bytes(),
                                                          mtime=0))
    write_trace(generate(300, tables=3, rows=[300, 80, 1000], alpha=1.0, bag_size="poisson:2.5",
                         batch_size=16, seed=3, teacher=True, dim=4), folder / "multihot.parquet")
    return folder


_LOCAL: dict = {}


def _local(folder, name):
    """The records of training `name` streamed from its local path (once per file)."""
    if name not in _LOCAL:
        chunk, opts = CASES[name]
        _LOCAL[name] = train_stream(folder / name, chunk_accesses=chunk, **OPTS, **opts)
    return _LOCAL[name]


@pytest.fixture
def never_copied(monkeypatch):
    """Fail a test that copies a URL (`read_remote`) or reads a Parquet trace whole."""
    def refuse(*_, **__):
        raise AssertionError("the URL was copied or read whole")
    for where in ("cachesim.io.urls.read_remote", "cachesim.io.formats.read_remote",
                  "cachesim.io.tabular.read_parquet"):
        monkeypatch.setattr(where, refuse)


@pytest.fixture
def requests(monkeypatch):
    """The (method, path, Range header) of every request the loopback server answers."""
    seen = []
    send_head = RangeHandler.send_head

    def spy(handler):
        seen.append((handler.command, handler.path, handler.headers.get("Range")))
        return send_head(handler)
    monkeypatch.setattr(RangeHandler, "send_head", spy)
    monkeypatch.setattr("cachesim.io.urls.READ_BLOCK", BLOCK)
    return seen


@pytest.mark.parametrize("name", list(CASES))
def test_a_url_over_http_trains_as_the_local_file(folder, name, requests, never_copied):
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp (test extra)")
    want = _local(folder, name)
    chunk, opts = CASES[name]
    with serve(folder) as base:
        got = train_stream(f"{base}/{name}", chunk_accesses=chunk, **OPTS, **opts)
    _same(want, got)
    assert want[-1]["calls"] > 0 and want[-1]["evictions"] > 0 and want[-1]["auc"] is not None
    gets = [r for m, p, r in requests if m == "GET" and p == f"/{name}"]
    assert gets and all(r is not None for r in gets)  # byte ranges only, never the whole file
    if name.endswith(".parquet"):
        return  # polars asks for the footer, then the columns of each pass
    size = (folder / name).stat().st_size
    assert size > 2 * BLOCK
    spans = [tuple(int(x) for x in r.removeprefix("bytes=").split("-")) for r in gets]
    assert max(b - a + 1 for a, b in spans) <= 2 * BLOCK  # a block (two when it reads ahead)
    # the whole file read to its end by the first pass, then by each record's (configuration's)
    # training pass and evaluation (which reads the lines before the test batches too); the
    # other requests sniff its first bytes
    assert sum(b == size - 1 for _, b in spans) == 1 + 2 * len(got)


@pytest.mark.parametrize("name", list(CASES))
def test_a_memory_url_trains_as_the_local_file(folder, name, never_copied):
    url = f"memory://train-url/{name}"
    with fsspec.open(url, "wb") as f:
        f.write((folder / name).read_bytes())
    try:
        chunk, opts = CASES[name]
        data = StreamedData(url, chunk_accesses=chunk, batch_size=opts.get("batch_size"),
                            test_fraction=OPTS["test_fraction"])
        assert str(data.path) == url and data.meta.source == url
        _same(_local(folder, name), train_stream(url, chunk_accesses=chunk, **OPTS, **opts))
    finally:
        fsspec.filesystem("memory").rm("/train-url", recursive=True)


def _cli_records(*args):
    res = CliRunner().invoke(cli, ["train", *map(str, args), "--json", "-q", "--device", "cpu",
                                   "--model", "small", "-s", "10%", "--seeds", "0",
                                   "--no-baselines"])
    assert res.exit_code == 0, res.output
    return [{k: v for k, v in r.items() if k not in TIMING} for r in json.loads(res.stdout)]


def test_cli_streams_a_url_over_the_threshold_as_the_local_file_in_memory(folder, monkeypatch):
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp (test extra)")
    made = []
    init = StreamedData.__init__

    def spy(self, *a, **kw):
        made.append(str(a[0]))
        init(self, *a, **kw)
    monkeypatch.setattr(StreamedData, "__init__", spy)
    mem = _cli_records(folder / "head120.tsv", "--no-stream", "--batch-size", "16")
    monkeypatch.setattr(cachesim.sizes, "STREAM_THRESHOLD", 1000)  # the file is "large"
    with serve(folder) as base:
        assert _cli_records(f"{base}/head120.tsv", "--batch-size", "16") == mem
    assert made == [f"{base}/head120.tsv"]  # streamed from the URL, no --stream needed


def test_a_missing_url_is_one_line(folder):
    with pytest.raises(CachesimError, match=r"^memory://train-url/none\.tsv: no such file or "
                                            r"folder \(check the path\)$"):
        StreamedData("memory://train-url/none.tsv")
    pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp (test extra)")
    with serve(folder) as base:
        for url in (f"{base}/none.tsv", f"{base}/none.parquet"):
            res = CliRunner().invoke(cli, ["train", url, "--stream", "-q", "--device", "cpu"])
            assert res.exit_code == 2 and "Traceback" not in res.output, res.output
            assert res.output == (f"cachesim: error: train --stream: {url}: no such file or "
                                  "folder (check the path)\n"), res.output
