"""Streamed access replay: a trace file read chunk by chunk, in memory bounded by the cache.

`StreamSource(path)` makes one first pass over the file (`cachesim.io.stream`): it numbers the
keys in order of first access (`KeyMap`, as `Trace.dense_ids`), counts the accesses and their
bytes, and writes each access's dense id (4 bytes) and, unless every size is the same, its size
(8 bytes) to temporary files. Then `source.replay(policy, capacity, ways)` reads those back chunk
by chunk (no parsing, no key lookup) and feeds each chunk to the policy's kernel through
`Replayer.feed_arrays`, which keeps the policy's state across chunks; the `Result` equals the
in-memory `replay`'s counter for counter. The temporary files are the only disk cost (4-12
bytes an access, in `tmp_dir` or the system's temporary folder), removed by `close`. A Parquet
trace of several tables gives each access the in-memory trace's key (linearised over the
tables' rows, `io.stream.parquet_access_chunks`), so set hashes and OPT's next accesses are the
in-memory ones; each key's table (per-table counters) follows from its key and the tables' rows.

Why a first pass and not a map that grows during the replay: a size given as a share ('1%')
needs the number of distinct keys before the first access, set-associative caches need every
key's set, and each policy allocates its state by the number of keys (`Setup.n_keys`); with the
count known, state is allocated once and no policy has to grow. The first pass costs about what
the in-memory reader's read and renumbering cost, and each streamed replay reads the file again
and looks each key up (bench/RESULTS.md, "Streamed replay": 20M requests, first pass 1.25 s,
streamed LRU 1.13 s, against 1.60 s and 0.53 s in memory).

OPT needs each access's next access: a backward pass over the dense ids (written to a temporary
file by one more forward pass) writes it to a second temporary file, 8 bytes an access, read back
a chunk at a time. Both files are plain binary read with `readinto` into reused buffers, not
memory maps, whose pages would count as resident memory up to the whole file.

Batch mode (`BatchStreamSource`, `replay_batch_stream`): a Parquet file, folder or dataset, or
fbgemm-npz / dlrm-pt batches (`io.stream.batch_chunks`), through any batch model (fbgemm,
fbgemm-inference, ideal; unified or per-table caches). The same first pass numbers the keys
linearised over the tables and notes each one's table; the replay feeds whole batches (a batch
cut by a chunk boundary waits for the rest of it) to the model's own cache object, whose arrays
and time step carry across calls, as the in-memory replay feeds ~4M-access slices of whole
batches to it. FBGEMM's per-batch counters are summed as they come (memory flat in the number of
batches).

Progress (`progress.Throughput`): accesses, acc/s and an ETA from the share of the file read; on
a terminal a bar, elsewhere a line a minute.

Peak memory: the key map (40-80 bytes a distinct key), the policy's state, and one chunk.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np

from ..errors import CachesimError
from ..hashing import digest
from ..io.stream import (KeyMap, access_chunks, access_parquet, batch_chunks, chunk_keys,
                         read_ahead, source_bytes, streamable)
from ..io.urls import as_path, stamp
from ..progress import Throughput
from ..trace import DEFAULT_DIM, Trace
from .access import CHUNK, Replayer, access_result, plan
from .result import DEFAULT_WAYS, Result


@numba.njit(cache=True)
def _next_backward(ids, start, last, out):
    """out[i] = global index of the next access to ids[i] (-1 if none), for the accesses
    start..start+len(ids), given `last` (the first access of each id after this chunk)."""
    for i in range(ids.shape[0] - 1, -1, -1):
        k = ids[i]
        out[i] = last[k]
        last[k] = start + i


class _Meta:
    """What `plan`, `Replayer` and `access_result` read of a trace, for a streamed one: its
    tables (`io.stream.access_chunks`' dict: names, rows (None: not known, one table), dims
    (None: the default), whether rows were inferred) and, from the first pass, the distinct
    keys (linearised over the tables, as `Trace.keys`) and whether the accesses have sizes."""

    def __init__(self, source: str, distinct_keys, has_sizes: bool, tables: dict):
        self.source = source
        self.distinct_keys = distinct_keys
        self.n_distinct = int(distinct_keys.shape[0])
        self.has_sizes = has_sizes
        self.table_names = list(tables["table_names"])
        self.n_tables = len(self.table_names)
        rows, dims = tables["table_rows"], tables["table_dims"]
        self.table_rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.table_dims = np.full(self.n_tables, DEFAULT_DIM, dtype=np.int64) if dims is None \
            else np.broadcast_to(np.asarray(dims, dtype=np.int64), (self.n_tables,)).copy()
        self.table_rows_inferred = bool(tables["table_rows_inferred"])
        self.key_table = np.zeros(self.n_distinct, dtype=np.int32)
        if self.n_tables > 1:  # `Trace.key_table`: each key lies in its table's rows, so its
            # table is the last whose offset (rows of all earlier tables) is at most the key
            offsets = np.zeros(self.n_tables, dtype=np.int64)
            np.cumsum(self.table_rows[:-1], out=offsets[1:])
            self.key_table = (np.searchsorted(offsets, distinct_keys, side="right") - 1
                              ).astype(np.int32)
        self.size = None

    def row_bytes_fp32(self) -> np.ndarray:
        return 4 * self.table_dims


def _tupled(x):
    """A stamp (`io.urls.stamp`) that travelled as lists (JSON), as tuples again."""
    return tuple(_tupled(v) for v in x) if isinstance(x, (list, tuple)) else x


def _read_block(f, dtype, start: int, count: int) -> np.ndarray:
    out = np.empty(count, dtype=dtype)
    f.seek(start * out.itemsize)
    if f.readinto(out.view(np.uint8)) != out.nbytes:
        raise OSError(f"temporary file {f.name} is shorter than written")
    return out


def _one_table(fmt: str) -> dict:
    """The one table of an oracleGeneral or txt file (`_Meta`), named as the in-memory reader
    names it."""
    return {"table_names": ["objects" if fmt == "oracle-general" else "t0"],
            "table_rows": None, "table_dims": None, "table_rows_inferred": True}


class Streamed:
    """What every streamed trace object shares: `len` is its accesses (`self.n`), and `with`
    closes it (its `close` removes its temporary files)."""

    n = 0

    def __len__(self) -> int:
        return self.n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        pass


class StreamSource(Streamed):
    """One trace file, read in chunks of `chunk_accesses` accesses; see the module docstring.
    Use as a context manager (or call `close`) to remove the temporary files OPT needs."""

    def __init__(self, path, fmt: str | None = None, chunk_accesses: int = CHUNK,
                 tmp_dir: str | None = None, progress: bool = False):
        self.path = as_path(path)  # a local Path, or a URL's RemotePath (`io.urls`)
        self.fmt = streamable(self.path, fmt) or (
            "parquet" if access_parquet(self.path, fmt) else None)
        self.chunk = int(chunk_accesses)
        self._tmp_dir = tmp_dir
        self._tmp = None
        self._next_path = None
        self.keymap = KeyMap()
        n = total = 0
        has_sizes = False
        self.nbytes = source_bytes(self.path) if self.path.exists() else 0
        self._trace_stamp = stamp(self.path)  # what the first pass read (`publish`)
        # the first pass keeps each access's dense id (int32) and size (int64; not when every
        # size is the same, `self._one_size`) in temporary files, which each replay reads back
        # instead of parsing the trace and looking every key up again
        self._tmp = tempfile.TemporaryDirectory(prefix="cachesim-stream-", dir=self._tmp_dir)
        self._ids_path = Path(self._tmp.name) / "ids.i32"
        self._sizes_path = Path(self._tmp.name) / "sizes.i64"
        self._one_size = None  # the size of every access so far, while they are all equal
        # digests of the bytes written to the ids and sizes files, in order (`file_digests`:
        # the fingerprint's, without another pass over the files)
        self._ids_h, self._sizes_h = digest(), digest()
        bar = Throughput(f"{self.path.name}: first pass", self.nbytes, progress)
        try:
            with open(self._ids_path, "wb") as fi, open(self._sizes_path, "wb") as fs, \
                    ThreadPoolExecutor(1, thread_name_prefix="cachesim-write") as writer:
                # two reused buffers (no fresh pages a chunk): one is written out on the writer
                # thread while the next chunk is numbered into the other
                bufs = [np.empty(self.chunk, dtype=np.int32) for _ in range(2)]
                writes = [None, None]
                # Parquet: its tables (keys linearised over them), else one table
                tables, chunks = access_chunks(self.path, self.chunk, fmt, views=True)
                for c, (keys, sizes) in enumerate(read_ahead(chunks)):  # decoding overlaps
                    if writes[c & 1] is not None:
                        writes[c & 1].result()  # that buffer's last write is done (or raises)
                    ids = self.keymap.add(keys, out=bufs[c & 1][:keys.shape[0]])
                    writes[c & 1] = writer.submit(self._put, fi, self._ids_h, ids.data)
                    if sizes is not None and sizes.shape[0]:
                        has_sizes = True
                        total += int(sizes.sum())
                        self._keep_sizes(fs, sizes, n)
                    n += keys.shape[0]
                    # oracleGeneral's records are 24 bytes; a txt file's read share is not counted
                    bar.update(keys.shape[0], 24 * n if self.fmt == "oracle-general" else None)
                for w in writes:
                    if w is not None:
                        w.result()
        except BaseException:
            self.close()
            raise
        finally:
            bar.close()
        if n == 0:
            raise CachesimError(f"{self.path}: the trace has no accesses (check the file and "
                                "its --format)")
        self.n = n
        self.request_bytes = total
        self._tables = tables or _one_table(self.fmt)
        self.meta = _Meta(str(self.path), self.keymap.distinct_keys, has_sizes, self._tables)

    # -- sharing the first pass with other processes on this host ----------------------------
    _SHARED_FILES = ("ids.i32", "sizes.i64", "distinct.npy")

    def publish(self) -> dict:
        """Let other processes on this host replay from this source's first-pass files instead
        of making their own first pass (`attach`): writes the distinct keys beside the ids and
        returns a small picklable description (the folder, the files' and the trace's stamps).
        The files stay while this source is open."""
        if self._tmp is None:
            raise CachesimError(f"{self.path}: this stream source is closed; open it again")
        folder = Path(self._tmp.name)
        np.save(folder / "distinct.npy", self.meta.distinct_keys)
        return {"dir": str(folder), "n": self.n, "chunk": self.chunk, "fmt": self.fmt,
                "path": str(self.path), "nbytes": self.nbytes, "one_size": self._one_size,
                "request_bytes": self.request_bytes, "has_sizes": self.meta.has_sizes,
                "tables": self._tables, "trace": self._trace_stamp,
                "files": [stamp(folder / f) for f in self._SHARED_FILES]}

    @classmethod
    def attach(cls, info: dict) -> "StreamSource | None":
        """A source over another process's first-pass files (`publish`), with the same replays
        as a first pass of its own; None when they are not there (another host, or the other
        process closed its source) or they or the trace changed since (then make a first pass:
        `StreamSource(path)`). OPT's next-access file is this source's own."""
        folder = Path(info["dir"])
        if info["trace"] is None or stamp(info["path"]) != _tupled(info["trace"]) or [
                stamp(folder / f) for f in cls._SHARED_FILES] != [
                None if st is None else tuple(st) for st in info["files"]]:
            return None
        try:
            distinct = np.load(folder / "distinct.npy")
        except OSError:  # removed between the check and the load
            return None
        self = cls.__new__(cls)
        self.path, self.fmt, self.chunk = as_path(info["path"]), info["fmt"], int(info["chunk"])
        self._tmp_dir, self._next_path, self.keymap = None, None, None
        self._ids_h = self._sizes_h = None  # (`file_digests`: the other process's)
        self._tmp = tempfile.TemporaryDirectory(prefix="cachesim-stream-")
        self._ids_path, self._sizes_path = folder / "ids.i32", folder / "sizes.i64"
        self.nbytes, self._one_size = int(info["nbytes"]), info["one_size"]
        self.n, self.request_bytes = int(info["n"]), int(info["request_bytes"])
        self._tables, self._trace_stamp = info["tables"], _tupled(info["trace"])
        self.meta = _Meta(str(self.path), distinct, bool(info["has_sizes"]), self._tables)
        return self

    @property
    def one_size(self) -> int | None:
        """The size of every access when the trace has sizes and they are all the same (kept as
        this one number, not a column), else None."""
        return self._one_size if self.meta.has_sizes else None

    @staticmethod
    def _put(f, h, data) -> None:
        """Write `data` to `f` and hash it into `h` (on the writer thread: both release the
        GIL)."""
        h.update(data)
        f.write(data)

    def file_digests(self) -> tuple[bytes, bytes] | None:
        """(the digest (`hashing.digest`) of the ids file, of the sizes file) as the first pass
        wrote them; None for a source attached to another process's files (`attach`)."""
        if self._ids_h is None:
            return None
        return self._ids_h.digest(), self._sizes_h.digest()

    def _keep_sizes(self, fs, sizes: np.ndarray, done: int) -> None:
        """Write `sizes` (accesses done.. of the trace) to the sizes file, which stays empty
        while every size so far is the same one."""
        first = int(sizes[0])
        if fs.tell() == 0 and (self._one_size is None or self._one_size == first) and \
                bool((sizes == first).all()):
            self._one_size = first
            return
        if fs.tell() == 0 and done:  # the sizes differ from here on: write out the constant
            for start in range(0, done, self.chunk):
                self._put(fs, self._sizes_h, np.full(min(self.chunk, done - start),
                                                     self._one_size, dtype=np.int64).tobytes())
        self._one_size = None
        self._put(fs, self._sizes_h, np.ascontiguousarray(sizes, dtype=np.int64).tobytes())

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._next_path = None

    def chunks(self):
        """(dense ids, sizes (empty: none)) per chunk, in order, from the first pass's files."""
        if self._tmp is None:
            raise CachesimError(f"{self.path}: this stream source is closed; open it again")
        empty = np.zeros(0, dtype=np.int64)
        with open(self._ids_path, "rb") as fi, open(self._sizes_path, "rb") as fs:
            sized = fs.seek(0, os.SEEK_END) > 0
            fs.seek(0)
            for start in range(0, self.n, self.chunk):
                m = min(self.chunk, self.n - start)
                ids = np.empty(m, dtype=np.int32)
                if fi.readinto(ids.view(np.uint8)) != ids.nbytes:
                    raise CachesimError(f"{self.path}: the first pass's temporary file "
                                        f"{self._ids_path} got shorter; replay again")
                if sized:
                    sizes = np.empty(m, dtype=np.int64)
                    fs.readinto(sizes.view(np.uint8))
                elif self.meta.has_sizes:
                    sizes = np.full(m, self._one_size, dtype=np.int64)
                else:
                    sizes = empty
                yield ids, sizes

    def _next_file(self) -> Path:
        """The temporary file of next-access indices (int64, one per access)."""
        if self._next_path is not None:
            return self._next_path
        ids_path = self._ids_path
        next_path = Path(self._tmp.name) / "next.i64"
        last = np.full(self.meta.n_distinct, -1, dtype=np.int64)
        with open(ids_path, "rb") as fi, open(next_path, "wb") as fo:
            fo.truncate(8 * self.n)
            stop = self.n
            while stop > 0:
                start = max(0, stop - self.chunk)
                ids = _read_block(fi, np.int32, start, stop - start)
                out = np.empty(stop - start, dtype=np.int64)
                _next_backward(ids, start, last, out)
                fo.seek(8 * start)
                fo.write(out.tobytes())
                stop = start
        self._next_path = next_path
        return next_path

    def prepare(self, policy, capacity, ways: int | None = DEFAULT_WAYS) -> None:
        """Write now what `replay(policy, capacity, ways)` reads besides the dense ids (OPT's
        next-access file), so that processes forked afterwards share it rather than each
        writing it (a sweep's workers); not safe to call from two threads at once."""
        if plan(self.meta, policy, capacity, ways)[1].needs_next:
            self._next_file()

    def replay(self, policy, capacity, ways: int | None = DEFAULT_WAYS, *, seed: int = 0,
               progress: bool = False) -> Result:
        """The same `Result` as `cachesim.simulate.access.replay` of the whole file (access
        mode; `seconds` is this streamed replay's)."""
        if isinstance(policy, (list, tuple)):
            return [self.replay(p, capacity, ways, seed=seed, progress=progress)
                    for p in policy]
        pol, pol_run, cap, capacity_value, unit, ways = plan(self.meta, policy, capacity, ways)
        next_path = self._next_file() if pol_run.needs_next else None
        t_start = time.perf_counter()
        r = Replayer(self.meta, pol_run, capacity_value, unit, ways, seed)
        bar = Throughput(f"{pol.name} {cap.text}", self.nbytes, progress)
        empty = np.zeros(0, dtype=np.int64)
        fn = open(next_path, "rb") if next_path is not None else None
        try:
            for ids, sizes in read_ahead(self.chunks()):  # (fresh arrays: safe to read ahead)
                nxt = (_read_block(fn, np.int64, r.position, ids.shape[0]) if fn is not None
                       else empty)
                r.feed_arrays(ids, sizes, nxt)
                bar.update(ids.shape[0], self.nbytes * r.position // self.n)
        finally:
            if fn is not None:
                fn.close()
            bar.close()
        if r.position != self.n:
            raise CachesimError(f"{self.path}: the file changed while it was read "
                                f"({r.position:,} accesses, {self.n:,} in the first pass); "
                                "replay it again once it is complete")
        seconds = time.perf_counter() - t_start
        return access_result(self.meta, pol.name, cap, capacity_value, unit, ways, r.counters,
                       seconds, req_bytes=self.request_bytes)


def replay_stream(path, policy, capacity, ways: int | None = DEFAULT_WAYS, *, seed: int = 0,
                  chunk_accesses: int = CHUNK, fmt: str | None = None, progress: bool = False,
                  tmp_dir: str | None = None):
    """Replay the oracleGeneral, txt or Parquet trace `path` in chunks of `chunk_accesses`:
    the same Result(s) as `replay(read_trace(path), policy, capacity, ways)` in access mode,
    in memory bounded by the key map, the policy's state and one chunk."""
    with StreamSource(path, fmt, chunk_accesses, tmp_dir, progress=progress) as src:
        return src.replay(policy, capacity, ways, seed=seed, progress=progress)


# -- batch mode ----------------------------------------------------------------------------------
class BatchMeta:
    """What the batch models read of a trace, for a streamed one: its tables (the reader's head
    trace: names, rows, dims, source) and, from the first pass, the number of accesses, the
    linearised key of each dense id and its table."""

    def __init__(self, head, keymap: KeyMap, key_table: np.ndarray, n: int):
        self._head = head
        self.distinct_keys = keymap.distinct_keys
        self.key_table = key_table
        self.n_distinct = int(keymap.n)
        self.n = int(n)
        self.has_batches = True

    def __getattr__(self, name):  # the head's: table_names, table_rows, row_bytes_fp32, ...
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._head, name)

    def __len__(self) -> int:
        return self.n

    def require_nonempty(self) -> None:
        """Nothing to check: the first pass refused an empty trace."""


def _retabled(head, table, row, batch):
    """A Trace of these accesses with the head's tables."""
    return Trace(table=table, row=row, batch=batch, table_names=head.table_names,
                 table_rows=head.table_rows, table_dims=head.table_dims,
                 table_rows_inferred=head.table_rows_inferred, source=head.source)


def _whole_batches(chunks, head):
    """One Trace (the head's tables) of the whole batches of each chunk of a batched trace: a
    batch cut by a chunk boundary is carried into the next chunk."""
    carry = (np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    for tr in chunks:
        if tr.batch is None:
            raise CachesimError(f"{head.source}: batch mode needs a `batch` column")
        if carry[2].shape[0] and len(tr) and tr.batch[0] < carry[2][-1]:
            raise CachesimError(f"{head.source}: batch ids must not decrease, but batch "
                                f"{int(tr.batch[0])} comes after batch {int(carry[2][-1])}; "
                                "sort the trace by batch (or renumber its batches)")
        tr.batch_starts  # noqa: B018 (checks the chunk's batches do not decrease)
        table, row, batch = (np.concatenate([c, x]) for c, x in
                             zip(carry, (tr.table, tr.row, tr.batch)))
        if batch.shape[0] == 0:
            continue
        cut = int(np.searchsorted(batch, batch[-1], side="left"))
        if cut:
            yield _retabled(head, table[:cut], row[:cut], batch[:cut])
        carry = (table[cut:], row[cut:], batch[cut:])
    if carry[0].shape[0]:
        yield _retabled(head, *carry)


keys_of = chunk_keys  # tr.keys, a refused access named by its place in the whole trace


class BatchStreamSource:
    """A batched trace read in chunks of `chunk_accesses` accesses (`io.stream.batch_chunks`: a
    Parquet file, folder of files or hive-partitioned dataset; an fbgemm-npz or dlrm-pt file or
    folder, a file at a time), replayed in batch mode by any cache model in bounded memory.

    The first pass numbers the keys (a `KeyMap` of the keys linearised over the tables, in order
    of first access: `Trace.dense_ids`) and notes each key's table, so that sizes given as a
    share, per-table capacities and every model's per-key state are known before the replay.
    `replay` then reads the trace again and feeds whole batches (a batch cut by a chunk boundary
    waits for the rest of it) to the model's cache, whose state carries across chunks; the
    `Result` equals `replay_batch(read_trace(path), ...)`'s. `table_rows` (--table-rows) sets
    the tables' num_embeddings before the first pass, as `fbgemm.with_table_rows` in memory;
    `options` go to the reader (fbgemm-npz: num_tables, batch_size)."""

    def __init__(self, path, fmt: str | None = None, chunk_accesses: int = CHUNK, *,
                 table_rows=None, progress: bool = False, **options):
        self.path, self.fmt, self.chunk = as_path(path), fmt, int(chunk_accesses)
        self._options, self._table_rows = options, table_rows
        head, chunks = self._open()
        self.nbytes = source_bytes(self.path)
        self.keymap, tables, n = KeyMap(), [], 0
        bar = Throughput(f"{self.path.name}: first pass", self.nbytes, progress)
        for tr in read_ahead(chunks):  # (fresh arrays each chunk: safe to read ahead)
            before = self.keymap.n
            ids = self.keymap.add(keys_of(tr, n))
            new = ids >= before
            kt = np.empty(self.keymap.n - before, dtype=np.int32)
            kt[ids[new] - before] = tr.table[new]
            tables.append(kt)
            n += len(tr)
            bar.update(len(tr))
        bar.close()
        if n == 0:
            raise CachesimError(f"{self.path}: the trace has no accesses (check the file and its "
                                "--format)")
        self.meta = BatchMeta(head, self.keymap, np.concatenate(tables), n)

    def __len__(self) -> int:
        return self.meta.n

    def _open(self):
        """(the head trace, its chunks), with --table-rows applied."""
        chunks = batch_chunks(self.path, self.chunk, self.fmt, **self._options)
        head = next(chunks)
        if self._table_rows is None:
            return head, chunks
        from .fbgemm import with_table_rows  # its checks: one num_embeddings per table
        head = with_table_rows(head, self._table_rows)
        return head, (_retabled(head, tr.table, tr.row, tr.batch) for tr in chunks)

    def batches(self):
        """(whole-batch Trace, its dense ids) per chunk, in order."""
        head, chunks = self._open()
        done = 0
        for tr in read_ahead(_whole_batches(chunks, head)):
            ids = self.keymap.lookup(keys_of(tr, done))
            done += len(tr)
            yield tr, ids

    def replay(self, policy="lru", capacity="5%", ways=DEFAULT_WAYS, *, per_table=False,
               cache_model=None, inference=False, prefetch_pipeline=False, warp=None,
               progress: bool = False, table_groups=None):
        """`replay_batch(trace, policy, capacity, ways, ...)` of the whole trace, streamed: the
        same `Result` (`seconds` is this replay's); a list of policies gives a list."""
        if isinstance(policy, (list, tuple)):
            return [self.replay(p, capacity, ways, per_table=per_table, cache_model=cache_model,
                                inference=inference, prefetch_pipeline=prefetch_pipeline,
                                warp=warp, progress=progress, table_groups=table_groups)
                    for p in policy]
        t0 = time.perf_counter()
        feed, finish, desc = _batch_model(self.meta, policy, capacity, ways, per_table,
                                          cache_model, inference, prefetch_pipeline, warp,
                                          table_groups)
        bar = Throughput(desc, self.nbytes, progress)
        done = 0
        try:
            for tr, ids in self.batches():
                feed(tr, ids)
                done += len(tr)
                bar.update(len(tr), self.nbytes * done // self.meta.n)
        finally:
            bar.close()
        if done != self.meta.n:
            raise CachesimError(f"{self.path}: the trace changed while it was read ({done:,} "
                                f"accesses, {self.meta.n:,} in the first pass); replay it again "
                                "once it is complete")
        return finish(time.perf_counter() - t0)


def _batch_model(meta, policy, capacity, ways, per_table, cache_model, inference,
                 prefetch_pipeline, warp, table_groups=None):
    """(feed(whole-batch trace, dense ids), finish(seconds) -> Result, progress text) of a batch
    model's empty cache for the streamed trace `meta`, built as `replay_batch` builds it."""
    from .result import INFERENCE_CACHE_MODEL, resolve_cache_model
    named = str(cache_model).strip().lower() if cache_model is not None else None
    model = INFERENCE_CACHE_MODEL if named == INFERENCE_CACHE_MODEL else \
        resolve_cache_model(cache_model)
    from .groups import check_groups_model
    check_groups_model(table_groups, model)
    if model == "ideal":
        from .batch import BatchCache, batch_policy, batch_result, ideal_capacity
        if prefetch_pipeline or warp is not None:
            raise CachesimError("--prefetch-pipeline and --warp model FBGEMM's cache: they need "
                                "--cache-model fbgemm (the ideal model has no pipeline or warp)")
        name = batch_policy(policy).name
        cap_arg, size_text = ideal_capacity(meta, capacity, per_table)
        cache = BatchCache.for_trace(meta, cap_arg, ways=ways, policy=name)
        return (lambda tr, ids: cache.run(ids, tr.batch_starts),
                lambda seconds: batch_result(meta, cache, size_text, seconds,
                                             inference=inference),
                f"{name} {size_text} batch")
    from .fbgemm import REQ, feed_arrays
    if model == "fbgemm":
        from .fbgemm import fbgemm_cache_for, fbgemm_result
        cache, size_text, load_factor = fbgemm_cache_for(
            meta, policy, capacity, ways, per_table=per_table, warp=warp,
            prefetch_pipeline=prefetch_pipeline, stacklevel=5, table_groups=table_groups)

        def result(seconds):
            return fbgemm_result(meta, cache, size_text, load_factor, seconds,
                                 inference=inference)
    else:
        from .fbgemm_inference import inference_cache_for, inference_result
        cache, size_text, load_factor = inference_cache_for(
            meta, policy, capacity, ways, per_table=per_table,
            prefetch_pipeline=prefetch_pipeline, warp=warp, stacklevel=5)

        def result(seconds):
            return inference_result(meta, cache, size_text, load_factor, seconds)
    calls = [0]

    def feed(tr, ids):
        keys, tables, ids, starts = feed_arrays(tr.given_remap(ids, meta.distinct_keys), cache)
        calls[0] += int(np.count_nonzero(cache.run_batches(keys, tables, ids, starts)[:, REQ]))
        # per-batch counters summed as they come: memory stays flat however many batches
        cache.batches = [cache.per_batch().sum(axis=0, keepdims=True)]

    return (feed, lambda seconds: dataclasses.replace(result(seconds), calls=calls[0]),
            f"{cache.policy} {size_text} {model}")


def replay_batch_stream(path, policy="lru", capacity="5%", ways: int | None = DEFAULT_WAYS, *,
                        cache_model="ideal", per_table: bool = False, inference: bool = False,
                        prefetch_pipeline: bool = False, warp: int | None = None,
                        table_rows=None, fmt: str | None = None, chunk_accesses: int = CHUNK,
                        progress: bool = False):
    """Batch replay of a batched trace (`BatchStreamSource`) read in chunks of
    `chunk_accesses` accesses: the same Result(s) as `replay_batch(read_trace(path), policy,
    capacity, ways, cache_model=..., per_table=..., ...)`, in memory bounded by the key map, the
    cache and one chunk. `cache_model` is 'ideal' unless given (this function's first
    version streamed only that model); 'fbgemm' and 'fbgemm-inference' as in `replay_batch`."""
    src = BatchStreamSource(path, fmt, chunk_accesses, table_rows=table_rows, progress=progress)
    return src.replay(policy, capacity, ways, per_table=per_table, cache_model=cache_model,
                      inference=inference, prefetch_pipeline=prefetch_pipeline, warp=warp,
                      progress=progress)
