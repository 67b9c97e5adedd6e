"""Streamed access replay: a trace file read chunk by chunk, in memory bounded by the cache.

`StreamSource(path)` makes one first pass over the file (`cachesim.io.stream`): it numbers the
keys in order of first access (`KeyMap`, as `Trace.dense_ids`), counts the accesses and their
bytes. Then `source.replay(policy, capacity, ways)` reads the file again chunk by chunk and
feeds each chunk to the policy's kernel through `Replayer.feed_arrays`, which keeps the policy's
state across chunks; the `Result` equals the in-memory `replay`'s counter for counter.

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

Peak memory: the key map (40-80 bytes a distinct key), the policy's state, and one chunk.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from ..errors import CachesimError
from ..io.stream import KeyMap, parquet_chunks, stream_chunks, streamable
from ..progress import bar as progress_bar
from ..trace import DEFAULT_DIM
from .access import CHUNK, Replayer, _result, plan
from .result import DEFAULT_WAYS, Result

STREAM_THRESHOLD = 1 << 30  # `cachesim replay` streams files larger than this (bytes)


@numba.njit(cache=True)
def _next_backward(ids, start, last, out):
    """out[i] = global index of the next access to ids[i] (-1 if none), for the accesses
    start..start+len(ids), given `last` (the first access of each id after this chunk)."""
    for i in range(ids.shape[0] - 1, -1, -1):
        k = ids[i]
        out[i] = last[k]
        last[k] = start + i


class _Meta:
    """What `plan`, `Replayer` and `_result` read of a trace, for a streamed one."""

    def __init__(self, source: str, distinct_keys, has_sizes: bool, table_name: str):
        self.source = source
        self.distinct_keys = distinct_keys
        self.n_distinct = int(distinct_keys.shape[0])
        self.key_table = np.zeros(self.n_distinct, dtype=np.int32)
        self.has_sizes = has_sizes
        self.table_names = [table_name]
        self.n_tables = 1
        self.size = None

    def row_bytes_fp32(self) -> np.ndarray:
        return np.array([4 * DEFAULT_DIM], dtype=np.int64)


def _read_block(f, dtype, start: int, count: int) -> np.ndarray:
    out = np.empty(count, dtype=dtype)
    f.seek(start * out.itemsize)
    if f.readinto(out.view(np.uint8)) != out.nbytes:
        raise OSError(f"temporary file {f.name} is shorter than written")
    return out


class StreamSource:
    """One trace file, read in chunks of `chunk_accesses` accesses; see the module docstring.
    Use as a context manager (or call `close`) to remove the temporary files OPT needs."""

    def __init__(self, path, fmt: str | None = None, chunk_accesses: int = CHUNK,
                 tmp_dir: str | None = None):
        self.path = Path(path)
        self.fmt = streamable(self.path, fmt)
        self.chunk = int(chunk_accesses)
        self._tmp_dir = tmp_dir
        self._tmp = None
        self._next_path = None
        self.keymap = KeyMap()
        n = total = 0
        has_sizes = False
        for keys, sizes in stream_chunks(self.path, self.chunk, fmt):
            self.keymap.add(keys)
            n += keys.shape[0]
            if sizes is not None:
                has_sizes = True
                total += int(sizes.sum())
        if n == 0:
            raise CachesimError(f"{self.path}: the trace has no accesses (check the file and "
                                "its --format)")
        self.n = n
        self.request_bytes = total
        self.meta = _Meta(str(self.path), self.keymap.distinct_keys, has_sizes,
                          "objects" if self.fmt == "oracle-general" else "t0")

    def __len__(self) -> int:
        return self.n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._next_path = None

    def chunks(self):
        """(dense ids, sizes (empty: none)) per chunk, in order."""
        empty = np.zeros(0, dtype=np.int64)
        for keys, sizes in stream_chunks(self.path, self.chunk, self.fmt):
            yield self.keymap.lookup(keys), (empty if sizes is None else sizes)

    def _next_file(self) -> Path:
        """The temporary file of next-access indices (int64, one per access)."""
        if self._next_path is not None:
            return self._next_path
        self._tmp = tempfile.TemporaryDirectory(prefix="cachesim-stream-", dir=self._tmp_dir)
        ids_path = Path(self._tmp.name) / "ids.i32"
        next_path = Path(self._tmp.name) / "next.i64"
        with open(ids_path, "wb") as f:
            for ids, _ in self.chunks():
                f.write(ids.tobytes())
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
        os.remove(ids_path)
        self._next_path = next_path
        return next_path

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
        bar = progress_bar(self.n, f"{pol.name} {cap.text}", progress, unit="req",
                           unit_scale=True, delay=2.0)
        empty = np.zeros(0, dtype=np.int64)
        fn = open(next_path, "rb") if next_path is not None else None
        try:
            for ids, sizes in self.chunks():
                nxt = (_read_block(fn, np.int64, r.position, ids.shape[0]) if fn is not None
                       else empty)
                r.feed_arrays(ids, sizes, nxt)
                if bar is not None:
                    bar.update(ids.shape[0])
        finally:
            if fn is not None:
                fn.close()
            if bar is not None:
                bar.close()
        if r.position != self.n:
            raise CachesimError(f"{self.path}: the file changed while it was read "
                                f"({r.position:,} accesses, {self.n:,} in the first pass); "
                                "replay it again once it is complete")
        seconds = time.perf_counter() - t_start
        return _result(self.meta, pol.name, cap, capacity_value, unit, ways, r.counters,
                       seconds, req_bytes=self.request_bytes)


def replay_stream(path, policy, capacity, ways: int | None = DEFAULT_WAYS, *, seed: int = 0,
                  chunk_accesses: int = CHUNK, fmt: str | None = None, progress: bool = False,
                  tmp_dir: str | None = None):
    """Replay the oracleGeneral or txt file `path` in chunks of `chunk_accesses` accesses:
    the same Result(s) as `replay(read_trace(path), policy, capacity, ways)` in access mode,
    in memory bounded by the key map, the policy's state and one chunk."""
    with StreamSource(path, fmt, chunk_accesses, tmp_dir) as src:
        return src.replay(policy, capacity, ways, seed=seed, progress=progress)


# -- batch mode ----------------------------------------------------------------------------------
def _whole_batches(chunks, keymap: KeyMap, source: str):
    """(dense ids, batch starts) of the whole batches of each chunk of a batched trace; a batch
    cut by a chunk boundary is carried into the next chunk."""
    carry_ids = np.zeros(0, dtype=np.int32)
    carry_batch = np.zeros(0, dtype=np.int64)
    for tr in chunks:
        if tr.batch is None:
            raise CachesimError(f"{source}: batch mode needs a `batch` column")
        ids = np.concatenate([carry_ids, keymap.lookup(tr.keys)])
        batch = np.concatenate([carry_batch, tr.batch])
        if batch.shape[0] == 0:
            continue
        if carry_batch.shape[0] and tr.batch.shape[0] and tr.batch[0] < carry_batch[-1]:
            raise CachesimError(f"{source}: batch ids must not decrease, but batch "
                                f"{int(tr.batch[0])} comes after batch {int(carry_batch[-1])}; "
                                "sort the trace by batch (or renumber its batches)")
        tr.batch_starts  # noqa: B018 (checks the chunk's batches do not decrease)
        cut = int(np.searchsorted(batch, batch[-1], side="left"))
        if cut:
            yield ids[:cut], _starts(batch[:cut])
        carry_ids, carry_batch = ids[cut:], batch[cut:]
    if carry_ids.shape[0]:
        yield carry_ids, _starts(carry_batch)


def _starts(batch: np.ndarray) -> np.ndarray:
    cuts = np.flatnonzero(np.diff(batch) != 0) + 1
    return np.concatenate([[0], cuts, [batch.shape[0]]]).astype(np.int64)


def replay_batch_stream(path, policy="lru", capacity="5%", ways: int | None = DEFAULT_WAYS, *,
                        chunk_accesses: int = CHUNK, progress: bool = False) -> Result:
    """Batch replay (the ideal cache model, one cache over all tables) of a Parquet trace that
    cachesim wrote, read in chunks of `chunk_accesses` accesses: the same Result as
    `replay_batch(read_trace(path), policy, capacity, ways, cache_model="ideal")`. A first pass
    numbers the keys and their tables; the replay then feeds whole batches (a batch cut by a
    chunk boundary waits for the rest of it)."""
    from ..sizes import parse_size
    from .batch import BatchCache, batch_policy, batch_result
    name = batch_policy(policy).name
    cap = parse_size(capacity)
    if cap.is_bytes:
        raise CachesimError(f"cache size {cap.text!r}: batch mode counts rows; give rows "
                            "(1000) or a share of the distinct keys (5%)")
    chunks = parquet_chunks(path, chunk_accesses)
    meta = next(chunks)
    keymap, tables, n = KeyMap(), [], 0
    for tr in chunks:
        before = keymap.n
        ids = keymap.add(tr.keys)
        new = ids >= before
        kt = np.empty(keymap.n - before, dtype=np.int32)
        kt[ids[new] - before] = tr.table[new]
        tables.append(kt)
        n += len(tr)
    if n == 0:
        raise CachesimError(f"{path}: the trace has no accesses (check the file and its "
                            "--format)")
    key_table = np.concatenate(tables)
    t0 = time.perf_counter()
    cache = BatchCache(keymap.n, keymap.distinct_keys, key_table, meta.n_tables,
                       cap.resolve(keymap.n), ways=ways, policy=name)
    bar = progress_bar(n, f"{name} {cap.text} batch", progress, unit="req", unit_scale=True,
                       delay=2.0)
    chunks = parquet_chunks(path, chunk_accesses)
    next(chunks)
    for ids, starts in _whole_batches(chunks, keymap, str(path)):
        cache.run(ids, starts)
        if bar is not None:
            bar.update(ids.shape[0])
    if bar is not None:
        bar.close()
    return batch_result(meta, cache, cap.text, time.perf_counter() - t0)
