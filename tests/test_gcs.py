"""gs:// traces against a real GCS API server on loopback (gcp-storage-emulator, the GCS JSON
API over HTTP on 127.0.0.1; no mocks in the process). cachesim is pointed at it as a user points
it at an emulator: the endpoint in STORAGE_EMULATOR_HOST (read by gcsfs) or in fsspec's
configuration alone (FSSPEC_GCS_ENDPOINT_URL), and FSSPEC_GCS_TOKEN=anon. polars' object store
cannot read this server (its objects come without a Last-Modified header), so at such an
endpoint Parquet reaches polars as fsspec's file objects, a hive dataset's keys read from its
files' paths. replay (in memory and streamed) and mrc of an object equal the local file's
exactly; a missing object or bucket is one line, exit 2."""
from __future__ import annotations

import importlib.util
import logging
import os
import socket
import sys
import urllib.parse
import urllib.request

import pytest

from tests.test_fsspec import (
    STORE_REPLAYS,
    check_folder_streams,
    check_missing,
    check_mrc,
    check_replay,
    fresh_fsspec_config,
    store_traces,
)

if importlib.util.find_spec("gcsfs") is None:  # not imported here: cachesim imports it
    pytest.skip("gs:// needs gcsfs (test extra)", allow_module_level=True)
emulator = pytest.importorskip("gcp_storage_emulator.server",
                               reason="the GCS server is gcp-storage-emulator's")
BUCKET = "traces"
VARIABLES = ("STORAGE_EMULATOR_HOST", "FSSPEC_GCS_ENDPOINT_URL")


def _upload(endpoint: str, bucket: str, name: str, data: bytes) -> None:
    """One object uploaded through the JSON API's simple (media) upload."""
    query = urllib.parse.urlencode({"uploadType": "media", "name": name})
    req = urllib.request.Request(f"{endpoint}/upload/storage/v1/b/{bucket}/o?{query}", data,
                                 {"Content-Type": "application/octet-stream"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as res:
        assert res.status == 200


@pytest.fixture(scope="module")
def store(shared_data, tmp_path_factory):
    """(local folder, the server's endpoint URL): a bucket holding the suite's traces
    (`store_traces`), each also kept in the local folder."""
    logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)  # its request log
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = emulator.create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    httpd = server._api._httpd  # its one HTTP server (serving a request at a time)
    report = httpd.handle_error

    def handle_error(request, address):  # a client that closed its connection early is no
        if not isinstance(sys.exc_info()[1], ConnectionError):  # error (its traceback, printed
            report(request, address)  # on stderr, would land in the CLI's captured output)
    httpd.handle_error = handle_error
    try:
        endpoint = f"http://127.0.0.1:{port}"
        local = tmp_path_factory.mktemp("gcs-local")
        for f in store_traces(local, shared_data):
            _upload(endpoint, BUCKET, f.relative_to(local).as_posix(), f.read_bytes())
        yield local, endpoint
    finally:
        server.stop()


@pytest.fixture(params=VARIABLES)
def gcs(request, store, monkeypatch):
    """(the local folder, the URL of its bucket), with the environment of a user of the server:
    anonymous access and the endpoint in the variable named by the parameter (fsspec reads its
    FSSPEC_* variables at import, as at a process's start: `set_conf_env` again, on a fresh
    config)."""
    local, endpoint = store
    for name in VARIABLES + ("GOOGLE_APPLICATION_CREDENTIALS",):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(request.param, endpoint)
    monkeypatch.setenv("FSSPEC_GCS_TOKEN", "anon")
    fresh_fsspec_config(monkeypatch)
    if "gcsfs" in sys.modules:
        sys.modules["gcsfs"].GCSFileSystem.clear_instance_cache()  # one kept per options
    yield local, f"gs://{BUCKET}"


@pytest.mark.parametrize("name, args", STORE_REPLAYS)
def test_replay_of_a_gcs_object_equals_the_local_file_in_memory_and_streamed(gcs, name, args):
    check_replay(*gcs, name, args)
    # gcsfs was imported by cachesim for the emulator: without the gRPC bucket-layout probe
    assert os.environ.get("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT") == "false"


def test_parquet_at_an_emulator_reaches_polars_as_a_file_object(gcs):
    """polars would ask Google's endpoint (or, pointed at the emulator, fail on its replies);
    the file object reads the object through gcsfs, at the emulator."""
    from cachesim.io.urls import as_path, polars_options, polars_source
    path = as_path(f"{gcs[1]}/batched.parquet")
    with polars_source(path) as source:
        assert not isinstance(source, str) and source.read(4) == b"PAR1"
    assert polars_options(path) is None


@pytest.mark.parametrize("name", ["folder", "hive"])
def test_a_parquet_folder_at_gcs_streams_as_the_local_folder(gcs, name):
    """A folder of files and a hive dataset (its keys read from the objects' paths) stream as
    the local ones."""
    check_folder_streams(*gcs, name)


def test_mrc_of_a_gcs_parquet_equals_the_local_file(gcs):
    check_mrc(*gcs)


@pytest.mark.parametrize("gcs", ["STORAGE_EMULATOR_HOST"], indirect=True)
@pytest.mark.parametrize("key", ["nope.oracleGeneral.bin", "nope/x.parquet", None])
def test_a_missing_object_or_bucket_is_one_line(gcs, key):
    check_missing(f"{gcs[1]}/{key}" if key else "gs://no-such-bucket/t.parquet")


def test_missing_credentials_are_one_line(monkeypatch):
    # google-auth's own error, raised where a store's client would raise it (reaching Google
    # for real needs a network this suite does not have): one line, exit 2, the fix named
    from click.testing import CliRunner
    from google.auth.exceptions import DefaultCredentialsError

    from cachesim import cli as cli_module

    def no_credentials(*args, **kwargs):
        try:
            raise DefaultCredentialsError("Your default credentials were not found.")
        except DefaultCredentialsError as err:
            raise OSError("gs://bucket/x.parquet: cannot open") from err
    monkeypatch.setattr(cli_module, "_read", no_credentials)
    r = CliRunner().invoke(cli_module.cli, ["replay", "gs://bucket/x.parquet", "-s", "5%",
                                            "--no-stream"])
    assert r.exit_code == 2, r.output
    assert "for want of credentials (DefaultCredentialsError" in r.output
    assert "GOOGLE_APPLICATION_CREDENTIALS" in r.output and "Traceback" not in r.output
