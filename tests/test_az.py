"""az:// traces against a real Azure Blob API server on loopback (Azurite, Microsoft's storage
emulator, installed by `make test` from npm into .venv/azurite; no mocks in the process).
cachesim is pointed at it as a user points it at Azurite: the development account
(devstoreaccount1 and its published key) and the server's endpoint in a connection string, in
AZURE_STORAGE_CONNECTION_STRING (read by adlfs) or in fsspec's configuration alone
(FSSPEC_AZ_CONNECTION_STRING). polars reads no connection string: cachesim hands its endpoint and
key on to polars' object store, which reads Parquet at the server itself. replay (in memory and
streamed) and mrc of a blob equal the local file's exactly, a folder and a hive dataset stream
as the local ones; a missing blob or container is one line, exit 2."""
from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

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

AZURITE = Path(__file__).resolve().parent.parent / ".venv/azurite/node_modules/.bin/azurite-blob"
if importlib.util.find_spec("adlfs") is None:  # not imported here: cachesim imports it
    pytest.skip("az:// needs adlfs (test extra)", allow_module_level=True)
if not AZURITE.is_file() or shutil.which("node") is None:
    pytest.skip(f"the Azure Blob server is Azurite's: {AZURITE} (`make test` installs it with "
                "npm into .venv/azurite when npm is on PATH) and node are needed",
                allow_module_level=True)
CONTAINER = "traces"
VARIABLES = ("AZURE_STORAGE_CONNECTION_STRING", "FSSPEC_AZ_CONNECTION_STRING")
# Azurite's development account: the name and key Microsoft publishes for its emulators
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};")


def _wait_until_it_answers(proc: subprocess.Popen, port: int, log: Path) -> None:
    """Returns once the server answers HTTP on `port` (any status: an unsigned request is
    refused); fails, with its log, when it exits or stays silent for 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/{ACCOUNT}?comp=list", timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Azurite did not start (exit {proc.poll()}): {log.read_text()}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def store(shared_data, tmp_path_factory):
    """(local folder, the server's connection string): a container holding the suite's traces
    (`store_traces`), each also kept in the local folder."""
    from azure.storage.blob import BlobServiceClient
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tmp_path_factory.mktemp("azurite")
    log = work / "azurite.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port),
             "--inMemoryPersistence", "--silent", "--skipApiVersionCheck", "--loose",
             "--disableTelemetry"], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=work)
    try:
        _wait_until_it_answers(proc, port, log)
        connection = _connection_string(port)
        local = tmp_path_factory.mktemp("az-local")
        with BlobServiceClient.from_connection_string(connection) as client:
            container = client.create_container(CONTAINER)
            for f in store_traces(local, shared_data):
                container.upload_blob(f.relative_to(local).as_posix(), f.read_bytes())
        yield local, connection
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(params=VARIABLES)
def az(request, store, monkeypatch):
    """(the local folder, the URL of its container), with the environment of a user of the
    server: no other Azure credentials, and the connection string in the variable named by the
    parameter (fsspec reads its FSSPEC_* variables at import, as at a process's start:
    `set_conf_env` again, on a fresh config)."""
    import adlfs
    local, connection = store
    others = ("ACCOUNT_NAME", "ACCOUNT_KEY", "SAS_TOKEN", "ANON", "CLIENT_ID", "CLIENT_SECRET",
              "TENANT_ID", "USE_EMULATOR", "ENDPOINT")  # AZURE_STORAGE_*: adlfs's and polars'
    for name in VARIABLES + tuple(f"AZURE_STORAGE_{k}" for k in others) + (
            "AZURE_ENDPOINT", "AZURITE_BLOB_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(request.param, connection)
    fresh_fsspec_config(monkeypatch)
    adlfs.AzureBlobFileSystem.clear_instance_cache()  # an instance is kept per set of options
    yield local, f"az://{CONTAINER}"
    adlfs.AzureBlobFileSystem.clear_instance_cache()


@pytest.mark.parametrize("name, args", STORE_REPLAYS)
def test_replay_of_an_azure_blob_equals_the_local_file_in_memory_and_streamed(az, name, args):
    check_replay(*az, name, args)


def test_parquet_at_azurite_reaches_polars_as_its_url_with_the_endpoint_and_key(az, store):
    """polars reads the blob itself (no file object), at the server the connection string
    names, with the development account's key."""
    import polars as pl

    from cachesim.io.urls import as_path, polars_options, polars_source
    path = as_path(f"{az[1]}/batched.parquet")
    assert polars_source(path) == f"{az[1]}/batched.parquet"
    options = polars_options(path)
    assert options == {"azure_endpoint": store[1].split("BlobEndpoint=")[1].rstrip(";"),
                       "azure_allow_http": "true",
                       "azure_storage_account_name": ACCOUNT, "azure_storage_account_key": KEY}
    got = pl.read_parquet(polars_source(path), storage_options=options)
    assert got.equals(pl.read_parquet(az[0] / "batched.parquet")) and got.height == 3000


@pytest.mark.parametrize("name", ["folder", "hive"])
def test_a_parquet_folder_at_azure_streams_as_the_local_folder(az, name):
    """A folder of files and a hive dataset (whose keys polars reads from the blobs' paths)
    stream as the local ones."""
    check_folder_streams(*az, name)


def test_mrc_of_an_azure_parquet_equals_the_local_file(az):
    check_mrc(*az)


@pytest.mark.parametrize("az", ["AZURE_STORAGE_CONNECTION_STRING"], indirect=True)
@pytest.mark.parametrize("key", ["nope.oracleGeneral.bin", "nope/x.parquet", None])
def test_a_missing_blob_or_container_is_one_line(az, key):
    check_missing(f"{az[1]}/{key}" if key else "az://no-such-container/t.parquet")


def test_adlfs_options_reach_polars_under_its_names():
    """Without a connection string: the account, key or SAS token, service principal and host
    adlfs was given (fsspec's configuration); a development-storage connection string: Azurite's
    default endpoint and key."""
    import adlfs

    from cachesim.io.urls import RemotePath, polars_options

    def options(**kwargs):
        fs = adlfs.AzureBlobFileSystem(**kwargs, skip_instance_cache=True)
        return polars_options(RemotePath("az://c/x.parquet", fs, "c/x.parquet"))
    host = "acct.blob.core.chinacloudapi.cn"  # another cloud's
    assert options(account_name="acct", account_key="a2V5", account_host=host) == {
        "azure_storage_account_name": "acct", "azure_storage_account_key": "a2V5",
        "azure_endpoint": f"https://{host}"}
    assert options(account_name="acct", sas_token="?sv=1&sig=x%3D") == {
        "azure_storage_account_name": "acct", "azure_storage_sas_token": "sv=1&sig=x%3D"}
    assert options(account_name="acct", anon=True) == {
        "azure_storage_account_name": "acct", "azure_skip_signature": "true"}
    assert options(connection_string="UseDevelopmentStorage=true") == {
        "azure_endpoint": f"http://127.0.0.1:10000/{ACCOUNT}", "azure_allow_http": "true",
        "azure_storage_account_name": ACCOUNT, "azure_storage_account_key": KEY}
    assert options(connection_string="BlobEndpoint=https://proxy/acct;SharedAccessSignature=sv=1"
                   ) == {"azure_endpoint": "https://proxy/acct", "azure_storage_sas_token": "sv=1"}


def _results(folder: Path) -> dict:
    """A report's results.json less what names the run (its command, trace, times)."""
    import json
    got = json.loads((folder / "results.json").read_text())
    for key in ("command", "created", "seconds", "trace"):
        got["meta"].pop(key)
    got["trace"]["analysis"].pop("source")
    for rec in got["sweep"]:
        rec.pop("replay_seconds")
    return got


@pytest.mark.parametrize("az", ["AZURE_STORAGE_CONNECTION_STRING"], indirect=True)
@pytest.mark.parametrize("name", ["batched.parquet", "cp.oracleGeneral.bin"])
def test_streamed_report_and_allocate_of_an_azure_blob_equal_the_local_file(az, name, tmp_path):
    """A streamed report and allocation read the URL (they once made it a local path,
    'az:/traces/...', and refused it as an unstreamable trace)."""
    from tests.test_fsspec import _cli
    local, base = az
    for where, src in (("az", f"{base}/{name}"), ("local", local / name)):
        res = _cli("report", src, "--stream", "-o", tmp_path / where, "-q")
        assert res.exit_code == 0, res.output
    assert _results(tmp_path / "az") == _results(tmp_path / "local")
    assert _results(tmp_path / "az")["sweep"][0]["hits"] > 0
    got = [_cli("allocate", src, "-b", "64KiB", "--stream")
           for src in (f"{base}/{name}", local / name)]
    assert got[0].exit_code == got[1].exit_code == 0, got[0].output
    assert got[0].output.replace(f"{base}/", "") == got[1].output.replace(f"{local}/", "")


def _one_line(res, *want: str) -> None:
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert res.output.startswith("cachesim: error: az://traces/batched.parquet: "), res.output
    assert all(w in res.output for w in want), res.output


@pytest.mark.parametrize("az", ["AZURE_STORAGE_CONNECTION_STRING"], indirect=True)
@pytest.mark.parametrize("stream", ["--no-stream", "--stream"])
def test_a_users_azure_mistakes_are_one_line_naming_the_fix(az, store, stream, monkeypatch):
    """A wrong account key (the server's 403), a malformed or absent connection string (adlfs's
    ValueError), and an endpoint with no server (which Azure's SDK retries for over a minute)
    are each one line, exit 2, naming the variable to correct."""
    import adlfs

    from tests.test_fsspec import _cli
    connection = store[1]
    port = int(connection.split("127.0.0.1:")[1].split("/")[0])
    with socket.socket() as s:  # a port with no server behind it
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cases = [(connection.replace(KEY, "A" + KEY[1:]), ("refused the credentials", "403",
                                                      "AZURE_STORAGE_CONNECTION_STRING")),
             ("garbage;;x", ("malformed", "AZURE_STORAGE_CONNECTION_STRING")),
             (None, ("connection_string", "set AZURE_STORAGE_CONNECTION_STRING to")),
             (connection.replace(f":{port}/", f":{closed}/"),
              (f"cannot connect to the Azure endpoint 127.0.0.1:{closed}", "BlobEndpoint"))]
    for value, want in cases:
        if value is None:
            monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
        else:
            monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", value)
        adlfs.AzureBlobFileSystem.clear_instance_cache()
        _one_line(_cli("replay", f"{az[1]}/batched.parquet", "-s", "5%", stream), *want)
