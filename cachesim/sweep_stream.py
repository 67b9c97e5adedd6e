"""Sweeps over a trace larger than memory: the trace is read in chunks, never held whole.

`StreamedTrace.open(path, mode)` makes one first pass over the file (`simulate.stream`:
`StreamSource` in access mode, oracle-general, txt and Parquet; `BatchStreamSource` in batch mode,
Parquet files, folders and datasets, fbgemm-npz and dlrm-pt) and stands in for the trace in
`cachesim.sweep.run_sweep`: it has what the configurations and their costs read (distinct keys
for sizes given as a share, tables, their rows and dims) and a fingerprint of the contents, and
replays each configuration on a stream source, in memory bounded by the key map and the cache
state, never by the trace.

Where the replays run:
- in the process (`jobs=1`), and in a local pool forked from it, on the client's own source (its
  temporary files are on this machine; the forked workers inherit its key map);
- in spawned pool workers and Dask workers, on a source each worker process opens itself on the
  same path (`worker_source`: once per process, kept while the file's mtime and size stay), whose
  fingerprint must equal the client's: a worker that sees another file fails with one line.
  Only the path, the reader options and the fingerprint travel to the workers.

The fingerprint (`stream_fingerprint`) is a digest (`hashing.digest`), as `Trace.fingerprint`'s,
of what a streamed replay reads: the dense id of every access and the keys in order of first
access (which together are the key sequence), the access sizes, the batch ids in batch mode, the
tables' rows and names and the cachesim version. In access mode the first pass hashes its
temporary files as it writes them; in batch mode it takes one more pass over the trace. It
differs from the in-memory trace's fingerprint, so a streamed sweep and an in-memory one keep
their OUT.parts/ apart (a rerun with the other setting is told so and asked for --fresh or
another -o).

Per-table configurations on Dask run as one task each (the in-memory sweep splits them by table).
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CachesimError
from .files import jsonable
from .hashing import digest
from .simulate.access import CHUNK
from .simulate.stream import BatchStreamSource, StreamSource, Streamed
from .trace import MAX_ROWS, Trace

MODES = ("access", "batch")


@dataclass(frozen=True)
class StreamSpec:
    """Where and how every process opens the stream source: `path` (absolute; a path all
    workers see), `mode` ('access' or 'batch'), the reader `fmt`, `chunk` accesses a chunk,
    `table_rows` (--table-rows) and the batch reader's `options` (fbgemm-npz: batch_size)."""

    path: str
    mode: str
    fmt: str | None = None
    chunk: int = CHUNK
    table_rows: tuple | None = None
    options: tuple = ()

    def open(self, progress: bool = False):
        """A new stream source of the file (its first pass)."""
        if self.mode == "access":
            return StreamSource(self.path, self.fmt, self.chunk, progress=progress)
        return BatchStreamSource(self.path, self.fmt, self.chunk, progress=progress,
                                 table_rows=None if self.table_rows is None else
                                 list(self.table_rows), **dict(self.options))


def _feed(h, arr) -> None:
    h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))


def stream_fingerprint(src, spec: StreamSpec, progress: bool = False) -> str:
    """The contents' identity of stream source `src` (see the module docstring), 32 hex digits:
    equal for two sources of the same trace, whatever their chunk size."""
    from .progress import Throughput
    from .version import __version__
    ids_h, sizes_h, batch_h = digest(), digest(), digest()
    n, done = len(src), 0
    bar = Throughput(f"{Path(spec.path).name}: fingerprint", src.nbytes, progress)
    one = src.one_size if spec.mode == "access" else None  # constant sizes: one number
    if one is not None:
        sizes_h.update(np.full(1, one, dtype=np.int64).tobytes())
    # the ids and sizes as int64: in access mode exactly the first pass's files, hashed as it
    # wrote them (`file_digests`), so no pass here
    digests = src.file_digests() if spec.mode == "access" else None
    try:
        for ids, column in (() if digests is not None else
                            src.chunks() if spec.mode == "access" else
                            ((ids, tr.batch) for tr, ids in src.batches())):
            _feed(ids_h, ids)
            if one is None:
                _feed(sizes_h if spec.mode == "access" else batch_h, column)
            done += ids.shape[0]
            bar.update(ids.shape[0], src.nbytes * done // n)
    finally:
        bar.close()
    parts = [ids_h.digest(), sizes_h.digest(), batch_h.digest()]
    if digests is not None:
        parts[0] = digests[0]
        if one is None:  # (constant sizes: the file stays empty, the one number is hashed)
            parts[1] = digests[1]
    meta = src.meta
    h = digest()
    h.update(f"cachesim {__version__} streamed {spec.mode} {len(src)}".encode())
    for part in parts:
        h.update(part)
    _feed(h, meta.distinct_keys)
    rows, names = _tables_of(src, spec)[:2]
    _feed(h, np.asarray(rows, dtype=np.int64))
    h.update(json.dumps(list(names)).encode())
    return h.hexdigest()


def _tables_of(src, spec: StreamSpec):
    """(table rows, table names, table dims, rows inferred?) of a stream source's trace; in
    access mode as the in-memory readers infer them (largest key + 1, or the distinct keys when
    a key is 2^63-1 or more), with --table-rows applied."""
    meta = src.meta
    if spec.mode == "batch":
        return meta.table_rows, meta.table_names, meta.table_dims, meta.table_rows_inferred
    if meta.table_rows is not None and spec.table_rows is None:  # a Parquet trace's own tables
        return meta.table_rows, meta.table_names, meta.table_dims, meta.table_rows_inferred
    if meta.n_tables > 1:  # its keys linearised over its own rows in the first pass
        raise CachesimError(f"{spec.path}: --table-rows moves the keys of a trace of "
                            f"{meta.n_tables} tables, which a streamed access sweep numbered "
                            "by the trace's own rows; drop --table-rows, or sweep in memory "
                            "(--no-stream) or in batch mode (--mode batch)")
    top = int(meta.distinct_keys.view(np.uint64).max())
    rows = top + 1 if top < MAX_ROWS else meta.n_distinct  # (hashed ids: the distinct ones)
    head = Trace(table=np.zeros(1, np.int32), row=np.array([rows - 1], np.int64),
                 table_names=list(meta.table_names), table_rows=np.array([rows], np.int64),
                 source=str(spec.path))  # one access: the largest row, for --table-rows' check
    if spec.table_rows is not None:
        from .simulate.fbgemm import with_table_rows
        head = with_table_rows(head, list(spec.table_rows))
    return head.table_rows, head.table_names, head.table_dims, head.table_rows_inferred


# -- the workers' own sources --------------------------------------------------------------------
_WORKER_SOURCES: dict = {}  # one source per worker process: {(spec, mtime, size): (src, fp, lock)}
_WORKER_OPENS = [0]  # how many first passes this process made for a sweep (a test counts them)
_WORKER_ATTACHES = [0]  # how many times it used the client's first pass instead (same host)
_OPEN_LOCK = threading.Lock()


def _stamp(path: str):
    from .io.urls import stamp
    return stamp(path)  # (mtime, size), a URL's version; None: the source reports it


def _who() -> str:
    try:
        from dask.distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        import socket
        return f"{socket.gethostname()} (pid {os.getpid()})"


def worker_source(spec: StreamSpec, fingerprint: str, shared: dict | None = None):
    """(stream source, its lock) of `spec` in this process, opened once (kept while the file's
    mtime and size stay), checked against the client's `fingerprint`. With `shared` (the
    client's `StreamSource.publish`), a worker on the client's host replays from the client's
    first-pass files while they and the trace are unchanged (`StreamSource.attach`): the
    client's own numbering of the trace, so no first pass and no fingerprint here."""
    # (a client's published first pass is its own: another client's is another key)
    key = (spec, _stamp(spec.path), None if shared is None else shared["dir"])
    with _OPEN_LOCK:  # threads of one worker share one first pass
        hit = _WORKER_SOURCES.get(key)
        if hit is None:
            src = StreamSource.attach(shared) if shared is not None else None
            if src is not None:
                hit = (src, fingerprint, threading.Lock())
                _WORKER_ATTACHES[0] += 1
            else:
                src = spec.open()
                hit = (src, stream_fingerprint(src, spec), threading.Lock())
                _WORKER_OPENS[0] += 1
            _WORKER_SOURCES.clear()  # (an older file's source: its temporary files go with it)
            _WORKER_SOURCES[key] = hit
    src, seen, lock = hit
    if seen != fingerprint:
        raise CachesimError(f"worker {_who()} sees a different trace at {spec.path}; all workers "
                            "must see the same file (a shared path: NFS, or a copy of the same "
                            "file at the same path on every host)")
    return src, lock


# -- the stand-in --------------------------------------------------------------------------------
class StreamedTrace(Streamed):
    """A trace file read in chunks, standing in for the in-memory trace in `run_sweep` (see the
    module docstring). Open it with `StreamedTrace.open`; `close` (or a `with` block) removes
    the client's temporary files. Pickled (to spawned or Dask workers) it carries only its spec
    and fingerprint."""

    def __init__(self, spec: StreamSpec, src, fingerprint: str):
        self.spec, self._src, self._fingerprint = spec, src, fingerprint
        self._shared = None  # the client's first pass, published for workers on its host
        self._lock = threading.Lock()
        meta = src.meta
        self.meta = meta
        self.source = spec.path
        self.n = len(src)
        self.n_distinct = int(meta.n_distinct)
        self.key_table = meta.key_table
        self.dense_ids = None  # (read by the workers from the source, never held)
        self.batch = None  # (batch records count their own calls)
        (self.table_rows, self.table_names, self.table_dims,
         self.table_rows_inferred) = _tables_of(src, spec)
        self.table_rows = np.asarray(self.table_rows, dtype=np.int64)
        self.n_tables = len(self.table_names)
        self.has_batches = spec.mode == "batch"
        self.has_sizes = bool(getattr(meta, "has_sizes", False))

    @classmethod
    def open(cls, path, mode: str = "access", fmt: str | None = None, *,
             chunk_accesses: int = CHUNK, table_rows=None, batch_size: int | None = None,
             progress: bool = False) -> StreamedTrace:
        """One first pass over `path` (access mode: oracle-general, txt or Parquet; batch mode:
        Parquet, fbgemm-npz or dlrm-pt), and the fingerprint of its contents."""
        if mode not in MODES:
            raise CachesimError(f"--mode {mode!r}: use batch or access")
        p = str(path)
        if "://" not in p:
            p = os.path.abspath(p)  # workers may run in another directory
        from .io.urls import as_path
        if not as_path(p).exists():  # (a URL: fsspec's; the workers open it themselves)
            raise CachesimError(f"{path}: no such file or folder (check the path)")
        rows = None if table_rows is None else tuple(int(r) for r in np.atleast_1d(table_rows))
        spec = StreamSpec(p, mode, fmt, int(chunk_accesses), rows,
                          () if batch_size is None else (("batch_size", int(batch_size)),))
        src = spec.open(progress)
        try:
            return cls(spec, src, stream_fingerprint(src, spec, progress))
        except BaseException:
            if mode == "access":
                src.close()
            raise

    def close(self) -> None:
        """Remove the client's temporary files (the workers' go with their processes)."""
        if self._src is not None and self.spec.mode == "access":
            self._src.close()
        self._src = None

    def __getstate__(self):
        state = dict(self.__dict__)
        # a worker opens its own source: the key map and the first pass's arrays stay here
        state["_src"] = state["_lock"] = state["meta"] = state["key_table"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def require_nonempty(self) -> None:
        """Nothing to check: the first pass refused an empty trace."""

    @property
    def workers_read_the_trace(self) -> bool:
        """Whether pool workers read the trace file again (batch mode: each replay re-reads
        it; access mode replays the first pass's files), so they must not be forked from a
        process whose polars thread pool has started (`sweep._mp_context`)."""
        return self.spec.mode == "batch"

    def fingerprint(self) -> str:
        return self._fingerprint

    def _source(self):
        if self._src is not None:  # the client, or a process forked from it
            return self._src, self._lock
        return worker_source(self.spec, self._fingerprint, self._shared)

    def prepare_sweep(self, pending, remote: bool = False) -> None:
        """Before any worker starts: check the configurations' mode; with `remote` (a Dask
        sweep: every worker opens its own source) publish the client's first pass for workers
        on this host (access mode, a local file: `StreamSource.publish`; its files stay until
        `close`) and free its key map, or close it (freeing its temporary files); else write
        what the client's replays read besides the dense ids (OPT's next accesses), so that
        forked workers share it."""
        for cfg in pending:
            if cfg.mode != self.spec.mode:
                raise CachesimError(f"{self.source} was opened for {self.spec.mode} mode; a "
                                    f"--mode {cfg.mode} sweep needs it opened for that mode")
        access = self._src is not None and self.spec.mode == "access"
        if not (remote and pending):
            for cfg in pending if access else ():
                self._src.prepare(cfg.policy, cfg.size, cfg.ways)
        elif access and "://" not in self.spec.path:
            self._shared = self._src.publish()
            self._src.keymap = None  # (the workers number nothing)
        else:
            self.close()

    def replay_sweep_config(self, cfg) -> dict:
        """`sweep.replay_config` of one configuration, streamed: the same record."""
        src, lock = self._source()
        if cfg.mode == "access":
            with lock:  # OPT's next-access file: written once, by one thread
                src.prepare(cfg.policy, cfg.size, cfg.ways)
            res = src.replay(cfg.policy, cfg.size, cfg.ways)
        else:
            res = src.replay(cfg.policy, cfg.size, cfg.ways, per_table=cfg.per_table,
                             cache_model=cfg.cache_model, inference=cfg.inference,
                             prefetch_pipeline=cfg.prefetch_pipeline, warp=cfg.warp,
                             table_groups=cfg.table_groups)
        return jsonable(res.to_record(per_table=True))
