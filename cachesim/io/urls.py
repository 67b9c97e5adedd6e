"""Traces at URLs: object storage and other remote files, read through fsspec.

A trace named `PROTOCOL://...` (s3://, gs://, az://, http(s)://, memory://, any protocol fsspec
knows, chained ones such as `simplecache::s3://...` too) is read through fsspec; a `file://` URL
is a local path. `as_path(path)` gives a `pathlib.Path` for a local path and a `RemotePath` for a
URL; both answer what the readers ask (`name`, `exists`, `is_file`, `is_dir`, `stat().st_size`,
`open("rb")`), so a streamed reader reads either. A plain path never imports fsspec.

In memory (`read_remote`): the object (or folder) is copied to a temporary folder under its own
name and read there by the format's reader, so every format reads a URL as it reads a local
file, with the same errors (naming the URL). Streamed: the readers read the object through
fsspec a chunk at a time (oracleGeneral, txt), and Parquet through polars, which reads s3, gs,
az and http(s) itself (its object store asks for the footer and then only the byte ranges of the
columns and row groups it reads, a record batch at a time) and any other protocol from fsspec's
file object (read through Python, a request per block). Listing a folder, sizes and the
missing-object check are fsspec's for every protocol. An s3 endpoint, keys or region given to
s3fs by fsspec's configuration (FSSPEC_S3_ENDPOINT_URL, ...) reach polars too
(`polars_options`); AWS_ENDPOINT_URL and the other AWS_* variables each reads itself. An az://
connection string (AZURE_STORAGE_CONNECTION_STRING: Azurite's, another endpoint's), read by
adlfs alone, reaches polars as its endpoint and keys (`_azure_options`). gs:// at
an endpoint other than Google's (STORAGE_EMULATOR_HOST, FSSPEC_GCS_ENDPOINT_URL: an emulator)
reaches polars as fsspec's file objects (`_gcs_endpoint`).

A protocol whose package is missing (s3fs for s3://, gcsfs for gs://, adlfs for az://, aiohttp
for http(s)://) is one CachesimError naming the package; a missing object is the missing-file
error, with the URL.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

from ..errors import CachesimError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+(::[A-Za-z][A-Za-z0-9+.\-]+)*://")
# the protocols polars reads itself (object_store); others reach polars as fsspec file objects
POLARS_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "gcp", "az", "azure", "abfs", "abfss", "adl",
                    "http", "https", "hf")
READ_BLOCK = 8 << 20  # bytes fsspec fetches a request (streamed reads ask for whole chunks)


def is_url(path) -> bool:
    """Whether `path` names a URL (`PROTOCOL://...`): a string (a pathlib.Path has lost the
    second slash) or a RemotePath."""
    return isinstance(path, RemotePath) or (isinstance(path, str) and bool(_URL.match(path)))


def missing(path) -> CachesimError:
    """The error for a file or folder that is not there (local path or URL)."""
    return CachesimError(f"{path}: no such file or folder (check the path)")


def as_path(path):
    """`path` as a `pathlib.Path`, or a `RemotePath` when it is a URL (`file://` URLs are
    local paths)."""
    if isinstance(path, (Path, RemotePath)):
        return path
    if is_url(path):
        if path.lower().startswith("file://"):
            return Path(unquote(urlsplit(path).path))
        return RemotePath(path)
    return Path(path)


def _filesystem(url: str):
    """(fsspec filesystem, path within it) of `url`; a CachesimError naming the package a
    protocol needs when it is missing, or an unknown protocol."""
    import fsspec
    protocol = url.split("://", 1)[0].split("::")[-1].lower()
    if protocol in ("gs", "gcs") and _gcs_endpoint(fsspec.config.conf):
        # gcsfs's default filesystem asks Google's gRPC storage-control API each bucket's
        # layout (retrying for a minute an operation), which an emulator does not serve; it
        # reads this variable once, at its import
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    try:
        fs, fs_path = fsspec.core.url_to_fs(url)
        if protocol in ("az", "abfs", "abfss", "azure", "adl") and "::" not in url and getattr(
                fs, "service_client", None) is not None:
            _azure_reachable(url, fs)
        return fs, fs_path
    except ImportError as err:
        need = getattr(err.__cause__, "name", None) or _package_of(protocol)
        raise CachesimError(f"{url}: reading {protocol}:// URLs needs the package {need}; "
                            f"install it (pip install {need})") from None
    except ValueError as err:
        text = str(err)
        if text.startswith("unable to connect to account"):  # adlfs's: no usable account
            why = text.removeprefix("unable to connect to account for ").rstrip("!")
            raise CachesimError(f"{url}: adlfs cannot connect to an Azure account ({why}); "
                                f"{_AZ_FIX}") from None
        if "protocol" not in str(err).lower():
            raise
        raise CachesimError(f"{url}: fsspec knows no protocol {protocol!r}; give a local path "
                            "or a URL of a protocol fsspec reads (s3, gs, az, http, https, "
                            "memory, ...)") from None


_AZ_FIX = ("set AZURE_STORAGE_CONNECTION_STRING to the store's connection string "
           "(Azurite: UseDevelopmentStorage=true, or DefaultEndpointsProtocol=http;AccountName=NAME;"
           "AccountKey=KEY;BlobEndpoint=http://HOST:PORT/NAME) or AZURE_STORAGE_ACCOUNT_NAME with "
           "AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN")


def _azure_reachable(url: str, fs) -> None:
    """A CachesimError when the endpoint that adlfs's `fs` reads cannot be connected to (no
    server at that port, a host that does not resolve): Azure's SDK would retry it for over a
    minute before failing."""
    import socket
    endpoint = urlsplit(fs.service_client.url)
    host = endpoint.hostname or ""
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as err:
        raise CachesimError(f"{url}: cannot connect to the Azure endpoint {host}:{port} "
                            f"({err.strerror or err}); start the server there, or correct "
                            "the BlobEndpoint (or AccountName) of AZURE_STORAGE_CONNECTION_STRING"
                            ) from None


def _azure_error(url: str, err: Exception) -> CachesimError:
    """One line for an error of Azure's SDK: a refused key or SAS (403), else its first line."""
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    if getattr(err, "status_code", None) in (401, 403):
        return CachesimError(f"{url}: the Azure store refused the credentials (HTTP "
                             f"{err.status_code}: {first}); check the account name and key "
                             "(or SAS token) in AZURE_STORAGE_CONNECTION_STRING or "
                             "AZURE_STORAGE_*")
    return CachesimError(f"{url}: cannot read it ({first})")


def _package_of(protocol: str) -> str:
    from fsspec.registry import known_implementations
    impl = known_implementations.get(protocol, {}).get("class", "fsspec")
    return impl.split(".")[0]


class RemotePath:
    """A file or folder at a URL, with the few `pathlib.Path` methods the readers use. `str`
    gives the URL. Its information (size, kind) is asked once and kept."""

    def __init__(self, url: str, fs=None, fs_path: str | None = None, info: dict | None = None):
        self.url = url
        if fs is None:
            fs, fs_path = _filesystem(url)
        self.fs, self.fs_path, self._info = fs, fs_path, info

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemotePath({self.url!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RemotePath) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    @property
    def protocol(self) -> str:
        proto = self.fs.protocol
        return (proto if isinstance(proto, str) else proto[0]).lower()

    @property
    def name(self) -> str:
        return urlsplit(self.url.split("::")[-1]).path.rstrip("/").rsplit("/", 1)[-1]

    def info(self) -> dict | None:
        """fsspec's information on the object (name, size, type), None when there is none."""
        if self._info is None:
            try:
                self._info = self.fs.info(self.fs_path)
            except (FileNotFoundError, NotADirectoryError) as err:
                # fsspec's HTTP filesystem says "not found" for any failed request: only a 404
                # (or 410) is a missing object, a refused connection or a 403 is not
                cause, status = err.__cause__, getattr(err.__cause__, "status", None)
                reached = not isinstance(cause, OSError) or isinstance(cause, FileNotFoundError)
                if reached and (status is None or status in (404, 410)):
                    return None
                raise CachesimError(f"{self.url}: cannot read it "
                                    f"({str(cause).splitlines()[0] or type(cause).__name__})"
                                    ) from None
            except OSError as err:
                raise CachesimError(f"{self.url}: cannot read it ({err})") from None
            except Exception as err:
                if type(err).__module__.split(".")[0] != "azure":
                    raise
                raise _azure_error(self.url, err) from None
        return self._info

    def exists(self) -> bool:
        return self.info() is not None

    def is_dir(self) -> bool:
        return (self.info() or {}).get("type") == "directory"

    def is_file(self) -> bool:
        info = self.info()
        return info is not None and info.get("type") != "directory"

    def stat(self):
        info = self.info()
        if info is None:
            raise missing(self.url)
        return SimpleNamespace(st_size=int(info.get("size") or 0))

    def open(self, mode: str = "rb"):
        """A binary file object reading the object (a missing one: the missing-file error)."""
        try:
            return self.fs.open(self.fs_path, mode, block_size=READ_BLOCK)
        except FileNotFoundError:
            raise missing(self.url) from None

    def rglob(self, pattern: str = "*") -> list[RemotePath]:
        """The files under this folder, at any depth, each with its size known (`pattern`: "*"
        only, as the readers ask)."""
        if pattern != "*":
            raise ValueError(f"RemotePath.rglob({pattern!r}): only '*' is supported")
        found = self.fs.find(self.fs_path, detail=True)
        return [RemotePath(self.fs.unstrip_protocol(p), self.fs, p, info)
                for p, info in found.items() if info.get("type") != "directory"]

    def relative_to(self, folder: RemotePath) -> PurePosixPath:
        """This file's path below `folder`."""
        return PurePosixPath(self.fs_path[len(folder.fs_path.rstrip("/")) + 1:])


_VERSION_KEYS = ("ETag", "etag", "LastModified", "last_modified", "mtime", "updated", "created",
                 "generation", "version_id")


def stamp(path):
    """What tells a changed trace from the same one, for a cache of it kept across calls: (mtime
    in ns, size) of a local file; of an object at a URL, its size and the version fields its
    store gives (ETag, modification time, generation); of a folder (a Parquet folder or dataset,
    local or at a URL), those of every file under it with its path below the folder, since a
    file rewritten in place leaves its folder's own stamp as it was; None when it cannot be read
    (its reader reports that)."""
    local = not is_url(path) or str(path).lower().startswith("file://")
    try:
        p = as_path(path)
        if local:
            if os.path.isdir(p):
                return tuple(_local_files(p))
            st = os.stat(p)
            return st.st_mtime_ns, st.st_size
        info = p.info()
        if info is None:
            return None
        if info.get("type") == "directory":
            return tuple(sorted((str(f.relative_to(p)), _version(f.info())) for f in p.rglob()))
        return _version(info)
    except (OSError, CachesimError):
        return None


def _local_files(folder):
    """(path below `folder`, mtime in ns, size) of every file under it, in order."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            st = os.stat(full)
            yield os.path.relpath(full, folder), st.st_mtime_ns, st.st_size


def _version(info: dict) -> tuple:
    """An object's size and the version fields of its store's information."""
    return (info.get("size"),) + tuple(str(info.get(k)) for k in _VERSION_KEYS if k in info)


def open_lines(path):
    """A binary file object of `path` to iterate by lines: a local file as `open` gives it; a
    URL's behind a buffer of READ_BLOCK bytes (fsspec's own readline asks for 100 bytes a
    time)."""
    if not isinstance(path, RemotePath):
        return open(path, "rb")
    return io.BufferedReader(path.open("rb"), READ_BLOCK)


def polars_source(path):
    """What polars' Parquet readers read for `path`: a local path's string, the URL of a protocol
    polars reads itself (s3, gs, az, http(s), hf), else (gs:// at an emulator too) an fsspec
    file object."""
    if not isinstance(path, RemotePath):
        return str(path)
    if (path.protocol in POLARS_PROTOCOLS and "::" not in path.url
            and not (path.protocol in ("gs", "gcs")
                     and _gcs_endpoint({"gs": path.fs.storage_options}))):
        return path.url
    return path.open("rb")


def _gcs_endpoint(conf: dict) -> str | None:
    """The GCS endpoint other than Google's that gcsfs reads (an emulator's, a proxy's):
    `endpoint_url` in gcsfs's options `conf` (by protocol, as fsspec's configuration holds them:
    FSSPEC_GCS_ENDPOINT_URL) or STORAGE_EMULATOR_HOST; None for Google's. polars' object store
    cannot read through one such as gcp-storage-emulator (its responses lack the Last-Modified
    header), so there Parquet reaches polars as fsspec's file objects."""
    for key in ("gs", "gcs", "GCSFileSystem"):
        if (conf.get(key) or {}).get("endpoint_url"):
            return conf[key]["endpoint_url"]
    host = os.environ.get("STORAGE_EMULATOR_HOST", "")
    return host if host not in ("", "default") else None


# s3fs's options (as fsspec's configuration gives them) under the names of polars' object store
_S3_POLARS = {"endpoint_url": "aws_endpoint_url", "key": "aws_access_key_id",
              "username": "aws_access_key_id", "secret": "aws_secret_access_key",
              "password": "aws_secret_access_key", "token": "aws_session_token",
              "region_name": "aws_region"}


def polars_options(path) -> dict | None:
    """The `storage_options` for polars' reader of `polars_source(path)`: for an s3:// URL, the
    endpoint, keys and region that s3fs was given (fsspec's configuration: FSSPEC_S3_ENDPOINT_URL,
    FSSPEC_S3='{...}', its config files), which polars does not read, so both read the same
    store; None when there are none (polars reads the AWS_* variables itself, as botocore
    does); for an az:// URL, adlfs's account, keys and endpoint (`_azure_options`); None for
    every other source."""
    if isinstance(path, RemotePath) and path.protocol in ("abfs", "az", "abfss"):
        return None if "::" in path.url else _azure_options(path.fs)
    if not isinstance(path, RemotePath) or path.protocol not in ("s3", "s3a") or "::" in path.url:
        return None
    given = {k: v for d in (path.fs.storage_options.get("client_kwargs") or {},
                            path.fs.storage_options) for k, v in d.items() if v is not None}
    options = {_S3_POLARS[k]: str(v) for k, v in given.items() if k in _S3_POLARS and v}
    if given.get("anon"):
        options["aws_skip_signature"] = "true"
    if given.get("requester_pays"):
        options["aws_request_payer"] = "true"
    if options.get("aws_endpoint_url", "").lower().startswith("http://"):
        options["aws_allow_http"] = "true"
    return options or None


# adlfs's credentials (its options, or its AZURE_STORAGE_* variables) under polars' names
_AZ_POLARS = {"account_name": "azure_storage_account_name",
              "account_key": "azure_storage_account_key", "sas_token": "azure_storage_sas_token",
              "client_id": "azure_storage_client_id",
              "client_secret": "azure_storage_client_secret",
              "tenant_id": "azure_storage_tenant_id"}


def _azure_options(fs) -> dict | None:
    """polars' options for the account that adlfs's filesystem `fs` reads. A connection string
    (AZURE_STORAGE_CONNECTION_STRING, FSSPEC_AZ_CONNECTION_STRING: the way to name Azurite or
    any endpoint to adlfs) polars does not read: its endpoint, account and key or SAS, as
    Azure's SDK parsed it for adlfs, go on as polars' options (plain HTTP allowed for an http://
    endpoint). Otherwise the account, keys and `account_host` adlfs was given (fsspec's
    configuration, which polars does not read, or the variables, which it reads too)."""
    if fs.connection_string:
        client = fs.service_client
        url = urlsplit(client.url)
        options = {"azure_endpoint": f"{url.scheme}://{url.netloc}{url.path}".rstrip("/"),
                   "azure_storage_account_name": client.account_name,
                   "azure_storage_account_key": getattr(client.credential, "account_key", None),
                   "azure_storage_sas_token": url.query}
    else:
        options = {name: getattr(fs, key, None) for key, name in _AZ_POLARS.items()}
        if getattr(fs, "account_host", None):
            options["azure_endpoint"] = f"https://{fs.account_host}"  # as adlfs reads it
        if fs.anon:
            options["azure_skip_signature"] = "true"
    options = {k: str(v).lstrip("?") if k.endswith("sas_token") else str(v)
               for k, v in options.items() if v}
    if options.get("azure_endpoint", "").lower().startswith("http://"):
        options["azure_allow_http"] = "true"
    return options or None


def read_remote(url: str, format: str | None, read, **options):
    """`read(local copy, format, **options)` of the file or folder at `url`, copied into a
    temporary folder under its own name (so its name and bytes say its format as a local
    file's would); the trace's source and any error name the URL."""
    import shutil
    import tempfile
    src = as_path(url)
    if not src.exists():
        raise missing(url)
    with tempfile.TemporaryDirectory(prefix="cachesim-url-") as tmp:
        local = Path(tmp) / (src.name or "trace")
        try:
            if src.is_dir():
                src.fs.get(src.fs_path.rstrip("/") + "/", str(local), recursive=True)
            else:
                with src.open("rb") as fin, open(local, "wb") as fout:
                    shutil.copyfileobj(fin, fout, READ_BLOCK)
        except OSError as err:
            raise CachesimError(f"{url}: cannot read it ({err})") from None
        try:
            trace = read(local, format, **options)
        except CachesimError as err:
            err.args = tuple(str(a).replace(str(local), url) for a in err.args)
            if hasattr(err, "path"):
                err.path = url
            raise
        trace.source = url
        return trace
