"""s3:// traces against a real S3 API server on loopback (moto's ThreadedMotoServer, the S3 REST
API over HTTP on 127.0.0.1; no mocks in the process). cachesim is pointed at it as a user points
it at MinIO or Ceph: dummy keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the endpoint in
AWS_ENDPOINT_URL (read by botocore for s3fs and by polars' object store) or in fsspec's
configuration alone (FSSPEC_S3_ENDPOINT_URL, which cachesim hands on to polars). replay (in
memory and streamed), sweep and mrc of an object equal the local file's exactly; a missing key or
bucket is one line, exit 2."""
from __future__ import annotations

import logging

import polars as pl
import pytest

from tests.test_fsspec import (
    STORE_REPLAYS,
    _cli,
    check_folder_streams,
    check_missing,
    check_mrc,
    check_replay,
    fresh_fsspec_config,
    store_traces,
)

pytest.importorskip("s3fs", reason="s3:// needs s3fs (test extra)")
moto_server = pytest.importorskip("moto.server", reason="the S3 server is moto[server]'s")
# a bucket per way of naming the endpoint: polars keeps an object store per bucket and options
BUCKETS = {"AWS_ENDPOINT_URL": "traces-aws", "FSSPEC_S3_ENDPOINT_URL": "traces-fsspec"}


@pytest.fixture(scope="module")
def store(shared_data, tmp_path_factory):
    """(local folder, the server's endpoint URL): a bucket holding the suite's oracleGeneral file,
    a Parquet trace, that trace split into a folder of two files and into a hive dataset, each
    also kept in the local folder."""
    import boto3
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's access log
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        local = tmp_path_factory.mktemp("s3-local")
        files = store_traces(local, shared_data)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="dummy", aws_secret_access_key="dummy")
        for bucket in BUCKETS.values():
            client.create_bucket(Bucket=bucket)
            for f in files:
                client.upload_file(str(f), bucket, f.relative_to(local).as_posix())
        yield local, endpoint
    finally:
        server.stop()


@pytest.fixture(params=list(BUCKETS))
def s3(request, store, monkeypatch):
    """(the local folder, the URL of its bucket), with the environment of a user of the server:
    dummy keys, no AWS config files, and the endpoint in the variable named by the parameter
    (fsspec reads its FSSPEC_* variables at import, as at a process's start: `set_conf_env`
    again, on a fresh config)."""
    import s3fs
    local, endpoint = store
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "dummy")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "dummy")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(local / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(local / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv(request.param, endpoint)
    fresh_fsspec_config(monkeypatch)
    s3fs.S3FileSystem.clear_instance_cache()  # an instance is kept per set of options
    yield local, f"s3://{BUCKETS[request.param]}"
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.parametrize("name, args", STORE_REPLAYS)
def test_replay_of_an_s3_object_equals_the_local_file_in_memory_and_streamed(s3, name, args):
    check_replay(*s3, name, args)


@pytest.mark.parametrize("name", ["folder", "hive"])
def test_a_parquet_folder_at_s3_streams_as_the_local_folder(s3, name):
    """A folder of files and a hive dataset (whose keys polars reads from the objects' paths at
    s3, where an fsspec file object carries none) stream as the local ones."""
    check_folder_streams(*s3, name)


def test_mrc_of_an_s3_parquet_equals_the_local_file(s3):
    check_mrc(*s3)


@pytest.mark.parametrize("s3", ["FSSPEC_S3_ENDPOINT_URL"], indirect=True)
def test_sweep_of_an_s3_parquet_equals_the_local_file(s3, tmp_path):
    """In memory, and streamed with 2 worker processes that each open the object themselves
    (through polars, with the endpoint cachesim hands on from fsspec's configuration, which a
    spawned worker reads from FSSPEC_S3_ENDPOINT_URL at its start)."""
    local, base = s3
    args = ["-p", "lru,lfu", "-s", "5%,50", "-w", "4,full", "--cache-model", "ideal",
            "--precision", "fp32,int8", "-q"]
    tables = {}
    for key, trace, extra in (("local", local / "batched.parquet", ["--no-stream", "-j", "1"]),
                              ("memory", f"{base}/batched.parquet", ["--no-stream", "-j", "1"]),
                              ("stream", f"{base}/batched.parquet", ["--stream", "-j", "2"])):
        out = tmp_path / f"{key}.parquet"
        res = _cli("sweep", trace, *args, *extra, "-o", out)
        assert res.exit_code == 0, res.output
        tables[key] = pl.read_parquet(out).drop("replay_seconds", "source", strict=False)
    assert tables["local"].height == 2 * 2 * 2 * 2 and tables["local"]["hits"].min() > 0
    assert tables["memory"].equals(tables["local"]) and tables["stream"].equals(tables["local"])


@pytest.mark.parametrize("s3", ["AWS_ENDPOINT_URL"], indirect=True)
@pytest.mark.parametrize("key", ["nope.oracleGeneral.bin", "nope/x.parquet", None])
def test_a_missing_key_or_bucket_is_one_line(s3, key):
    check_missing(f"{s3[1]}/{key}" if key else "s3://no-such-bucket/t.parquet")


def test_s3fs_options_reach_polars_under_its_names():
    import s3fs

    from cachesim.io.urls import RemotePath, polars_options
    fs = s3fs.S3FileSystem(key="k", secret="s", token="t", requester_pays=True,
                           client_kwargs={"region_name": "eu-west-1",
                                          "endpoint_url": "http://store:9000"})
    assert polars_options(RemotePath("s3://b/x.parquet", fs, "b/x.parquet")) == {
        "aws_access_key_id": "k", "aws_secret_access_key": "s", "aws_session_token": "t",
        "aws_region": "eu-west-1", "aws_endpoint_url": "http://store:9000",
        "aws_allow_http": "true", "aws_request_payer": "true"}
    fs = s3fs.S3FileSystem(anon=True, endpoint_url="https://store")  # top level, https
    assert polars_options(RemotePath("s3://b/x", fs, "b/x")) == {
        "aws_endpoint_url": "https://store", "aws_skip_signature": "true"}
    assert polars_options(RemotePath("s3://b/x", s3fs.S3FileSystem(), "b/x")) is None
    assert polars_options("/local/x.parquet") is None
