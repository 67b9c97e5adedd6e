"""Miss-ratio curves and trace analysis of a trace file read chunk by chunk (issue 12): the same
answers as `mrc(read_trace(path), ...)` and `analyze(read_trace(path), ...)`, in memory bounded
by the distinct keys (SHARDS: by its sample), never by the trace length. Files: oracleGeneral
and txt (`cachesim.io.stream.stream_chunks`), and batched traces (`io.stream.batch_chunks`:
Parquet, fbgemm-npz, dlrm-pt) for `analyze` and the exact and SHARDS curves in rows over all
tables.

- exact LRU curve: one pass. A growing key map (`KeyMap.add`) numbers the keys as they come and
  `stack.LruStackStream` carries the stack-distance state across chunks (each key's last time
  slot, time slots compacted as they fill, the distance histogram).
- SHARDS: one pass feeding the raw keys to `shards.ShardsStream` (and to a key map only when a
  size is a share of the distinct keys).
- mini: one pass writes the hashed sample to a temporary file in the input's format (for bytes,
  checking one size per key, as in memory); each size then replays that file through the
  streamed replay (`cachesim.simulate.stream.StreamSource`), whose counters equal the in-memory
  replay's.
- analyze: two passes. The first numbers the keys (`StreamSource`, or `BatchStreamSource` with
  each key's table); the second counts accesses per key and per table, reuse times and stack
  depths (log2 bins per table), and per window the accesses, distinct keys and top-k keys
  (windows of accesses: arrays over the distinct keys, the top-k by a partition of the window's
  counts; batches, fed whole a chunk at a time: the in-memory function per chunk, stitched to
  the previous chunk's last top-k). Every number is exact, in memory bounded by the distinct
  keys (and one chunk), so no sketch is needed; the result says so (`streamed`).

The exact byte-capacity curve streams at the sizes given (a first pass, then one pass per band
of object sizes that holds one of them); its whole step function, with a point per distinct
byte distance, is only computed in memory (`stack.lru_bytes_curve`).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numba
import numpy as np

from ..errors import CachesimError
from ..io.libcachesim import ORACLE_DTYPE
from ..io.stream import (KeyMap, batch_chunks, batch_streamable, has_batch_column,
                         stream_chunks, streamable)
from ..io.urls import as_path
from ..progress import bar as progress_bar
from ..simulate.access import CHUNK
from ..trace import MAX_ROWS
from .mrc import (checked_method, curve_frame, default_grid, needs_distinct,
                  resolve_sizes, reliable_sizes)
from .profile import (consecutive_runs, window_accesses, default_top_k, log2_bins, report,
                      working_set_and_drift)
from .shards import start_rate, threshold, estimate_curve, sample_mask, shards
from .stack import (KeySizesStream, LruStackStream, byte_distances_kernel, new_byte_state,
                    slots_for)

_RECORD = ORACLE_DTYPE.itemsize


def _table_name(kind: str) -> str:
    """The one table's name, as the in-memory readers give it."""
    return "objects" if kind == "oracle-general" else "t0"


def _chunks(path: Path, fmt, chunk_accesses: int, progress: bool, desc: str,
            reader_options=None):
    """(keys, sizes or None) per chunk, with a progress bar on a terminal: `stream_chunks` of
    an oracleGeneral or txt file (the total from the file size for oracleGeneral), else the
    keys (linearised over the tables, as the whole trace's) of `batch_chunks`."""
    kind = streamable(path, fmt) if path.is_file() else None
    if kind is None and batch_streamable(path, fmt) is not None:
        chunks = _batched_keys(path, fmt, chunk_accesses, reader_options or {})
    else:
        chunks = stream_chunks(path, chunk_accesses, fmt)
    total = path.stat().st_size // _RECORD if kind == "oracle-general" else None
    bar = progress_bar(total, desc, progress, unit="req", unit_scale=True, delay=2.0)
    if bar is None:
        yield from chunks
        return
    try:
        for keys, sizes in chunks:
            yield keys, sizes
            bar.update(keys.shape[0])
    finally:
        bar.close()


def _batched_keys(path, fmt, chunk_accesses, reader_options):
    from ..simulate.stream import keys_of
    chunks = batch_chunks(path, chunk_accesses, fmt, **reader_options)
    next(chunks)  # the head: the tables every chunk linearises its keys over
    done = 0
    for tr in chunks:
        yield keys_of(tr, done), None
        done += len(tr)


def _empty(path) -> CachesimError:
    return CachesimError(f"{path}: the trace has no accesses (check the file and its --format)")


# -- curves --------------------------------------------------------------------------------------
def mrc_stream(path, policy: str = "lru", sizes=None, method: str = "exact",
               rate: float | None = None, bytes: bool = False, per_table: bool = False,
               s_max: int | None = None, adj: bool = True, *, fmt: str | None = None,
               chunk_accesses: int = CHUNK, progress: bool = False, tmp_dir=None,
               reader_options: dict | None = None):
    """`mrc(read_trace(path), ...)` of an oracleGeneral or txt file read in chunks of
    `chunk_accesses` accesses (the same DataFrame, and the same SampledCurveWarning), in memory
    bounded by the distinct keys (SHARDS without a share size: by its sample). Such a file
    holds one table, so `per_table` only adds the table column. The exact curve in bytes needs
    `sizes` (CachesimError without).

    A batched trace (`io.stream.batch_streamable`: Parquet file, folder or hive-partitioned
    dataset, fbgemm-npz or dlrm-pt; `reader_options` go to its reader, as `read_trace`'s)
    streams too, for the exact and SHARDS curves in rows over all tables (one LRU stack of the
    keys linearised over the tables, as in memory)."""
    path = as_path(path)  # a local Path, or a URL's RemotePath (`io.urls`)
    pol = checked_method(policy, method, bytes)
    if not (path.is_file() and streamable(path, fmt)) and (
            method == "mini" or bytes or per_table) and batch_streamable(path, fmt):
        raise CachesimError(f"{path}: a streamed curve of a batched trace is the exact or SHARDS "
                            "curve in rows over all tables; drop --method mini, --bytes or "
                            "--per-table, or read it in memory (--no-stream)")
    chunks = _chunks(path, fmt, int(chunk_accesses), progress, f"mrc {method}", reader_options)
    if method == "exact" and bytes:
        curve = _exact_bytes_curve(path, fmt, chunks, sizes, int(chunk_accesses))
    elif method == "exact":
        curve = _exact_curve(path, chunks, sizes)
    elif method == "shards":
        curve = _shards_curve(chunks, sizes, rate, s_max, adj)
    else:
        curve = _mini_curve(path, fmt, chunks, pol, sizes, rate, bytes, adj, int(chunk_accesses),
                            tmp_dir)
    name = _table_name(streamable(path, fmt)) if per_table else None
    return curve_frame([(name, curve)], method, per_table)


def _exact_curve(path, chunks, sizes):
    keymap, lru = KeyMap(), LruStackStream()
    for keys, _ in chunks:
        lru.feed(keymap.add(keys))
    n = lru.accesses
    if n == 0:
        raise _empty(path)
    curve = (n - lru.hits()) / n
    sz = resolve_sizes(sizes, keymap.n, None)
    if sz is None:
        return np.arange(curve.shape[0], dtype=np.int64), curve, None, None
    return sz, curve[np.minimum(sz, curve.shape[0] - 1)], None, None


def _exact_bytes_curve(path, fmt, chunks, sizes, chunk_accesses):
    """`stack.lru_bytes_curve` at the sizes given: a first pass numbers the keys and checks one
    size per key, then one pass per band of object sizes that holds a size
    (`stack.byte_distances_kernel`, its state carried across chunks) counts the hits at its sizes."""
    keymap = KeyMap()
    key_sizes = KeySizesStream(str(path))
    for keys, sz in chunks:
        key_sizes.feed(keymap.add(keys), keys, sz)
    n = key_sizes.accesses
    if n == 0:
        raise _empty(path)
    ks = key_sizes.sizes[:keymap.n]
    caps = resolve_sizes(sizes, keymap.n, int(ks.sum()))
    if caps is None:
        raise CachesimError(f"{path}: a streamed exact byte curve is computed at the sizes "
                            "given (the whole step function has a point per distinct byte "
                            "distance): give them (--size 64MiB,1GiB), or read the trace in "
                            "memory (--no-stream)")
    z = np.unique(ks)
    out = np.ones(caps.shape[0], dtype=np.float64)
    band_of = np.searchsorted(z, caps, side="right") - 1  # largest object size <= C
    for b in np.unique(band_of[band_of >= 0]).tolist():
        limit = int(z[b])
        at = np.flatnonzero(band_of == b)
        at = at[np.argsort(caps[at], kind="stable")]
        band_caps = caps[at]
        state = new_byte_state(keymap.n, slots_for(int((ks <= limit).sum()), n))
        below = np.zeros(band_caps.shape[0] + 1, dtype=np.int64)  # reuses by sizes below D
        for keys, _ in stream_chunks(path, chunk_accesses, fmt):
            ids = keymap.lookup(keys)
            d = np.empty(ids.shape[0], dtype=np.int64)
            byte_distances_kernel(ids, ks, limit, state, d)
            d = d[d >= 0]
            below += np.bincount(np.searchsorted(band_caps, d, side="left"),
                                 minlength=band_caps.shape[0] + 1)
        out[at] = (n - np.cumsum(below)[:-1]) / n  # hits at C: byte distances <= C
    return caps, out, None, None


def _shards_curve(chunks, sizes, rate, s_max, adj):
    keymap = KeyMap() if needs_distinct(sizes) else None

    def keys_only():
        for keys, _ in chunks:
            if keymap is not None:
                keymap.add(keys)
            yield keys
    values, weights, total, info = shards(keys_only(), rate, s_max, adj)
    sz = resolve_sizes(sizes, 0 if keymap is None else keymap.n, None)
    s, m = estimate_curve(values, weights, total, info, sz)
    return s, m, reliable_sizes(s, info["rate"]), info


def _mini_curve(path, fmt, chunks, pol, sizes, rate, bytes, adj, chunk_accesses, tmp_dir):
    from ..simulate.stream import StreamSource
    rate = start_rate(rate, None)
    threshold(rate)  # a bad rate fails before the pass
    kind = streamable(path, fmt)
    keymap = KeyMap()
    key_sizes = KeySizesStream(str(path)) if bytes else None
    n = 0
    with tempfile.TemporaryDirectory(prefix="cachesim-mini-", dir=tmp_dir) as tmp:
        sample_path = Path(tmp) / ("sample.oracleGeneral.bin" if kind == "oracle-general"
                                   else "sample.txt")
        with open(sample_path, "wb") as f:
            for keys, sz in chunks:
                ids = keymap.add(keys)
                if key_sizes is not None:
                    key_sizes.feed(ids, keys, sz)
                n += keys.shape[0]
                take = sample_mask(keys, rate)
                _write_accesses(f, kind, keys[take], None if sz is None else sz[take])
        if n == 0:
            raise _empty(path)
        total_bytes = int(key_sizes.sizes[:keymap.n].sum()) if bytes else None
        sz = resolve_sizes(sizes, keymap.n, total_bytes)
        if sz is None:
            sz = default_grid(total_bytes if bytes else keymap.n)
        out = np.ones(sz.shape[0], dtype=np.float64)
        if os.path.getsize(sample_path) == 0:
            raise CachesimError(f"the sample at rate {rate:g} has no accesses: raise the rate")
        with StreamSource(sample_path, kind, chunk_accesses, tmp_dir=tmp) as src:
            for i, c in enumerate(sz.tolist()):  # as `mini.run_mini`, one streamed replay a size
                if c <= 0:
                    continue
                scaled = max(1, int(round(c * rate)))
                res = src.replay(pol, f"{scaled}B" if bytes else scaled, ways=None)
                out[i] = min(1.0, res.misses / (n * rate)) if adj else res.miss_ratio
            info = {"rate": float(rate), "sampled_keys": int(src.meta.n_distinct),
                    "sample_accesses": float(len(src))}
    row_bytes = total_bytes / keymap.n if bytes else 1.0
    return sz, out, reliable_sizes(sz, rate, row_bytes), info


def _write_accesses(f, kind: str, keys: np.ndarray, sizes) -> None:
    """Append accesses to an open file in the stream format `kind` (what `stream_chunks` reads
    back as the same keys and sizes)."""
    if keys.shape[0] == 0:
        return
    if kind == "oracle-general":
        rec = np.zeros(keys.shape[0], dtype=ORACLE_DTYPE)
        rec["id"] = keys.view(np.uint64)
        rec["size"] = sizes
        rec["next"] = -1
        f.write(rec.tobytes())
    else:
        f.write(("\n".join(map(str, keys.tolist())) + "\n").encode())


# -- analysis ------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _count_and_reuse(ids, start, counts, last, out):
    """Accesses per id (into `counts`), and the reuse time of each access (accesses since the
    previous access to its id, -1 for a first access) into `out`, of the accesses
    start..start+len(ids) of a trace (`last`: each id's latest index)."""
    for i in range(ids.shape[0]):
        k = ids[i]
        counts[k] += 1
        p = last[k]
        out[i] = start + i - p if p >= 0 else -1
        last[k] = start + i


class _Log2Bins:
    """`profile.log2_bins` of a trace's values per table, added chunk by chunk."""

    def __init__(self, n_tables: int):
        self.counts = np.zeros((n_tables, 64), dtype=np.int64)

    def add(self, values: np.ndarray, table: np.ndarray) -> None:
        c, _ = log2_bins(values, table, self.counts.shape[0])
        self.counts[:, :c.shape[1]] += c

    def result(self):
        used = np.flatnonzero(self.counts.any(axis=0))
        nb = int(used[-1]) + 1 if used.shape[0] else 0
        return self.counts[:, :nb].copy(), [1 << i for i in range(nb)]


def _top_k(ids: np.ndarray, top_k: int) -> np.ndarray:
    """The `top_k` most accessed ids of a window's accesses, ties by the lower id."""
    uniq, cnt = np.unique(ids, return_counts=True)
    return uniq[np.argsort(-cnt, kind="stable")[:top_k]]


class _BatchWindows:
    """`profile.working_set_and_drift` over the batches of a batched trace, fed whole batches a
    chunk at a time: each chunk goes through the in-memory function, after a window holding the
    previous chunk's last top-k keys once each (its top-k is those keys), whose own entries are
    then dropped; so the chunk's first batch is compared with the batch before it."""

    def __init__(self, top_k: int):
        self.top_k = int(top_k)
        self.prev_top = None
        self.out = {"accesses": [], "distinct": [], "top_k": self.top_k, "jaccard": [],
                    "share": []}

    def feed(self, window_ids: np.ndarray, ids: np.ndarray) -> None:
        """`window_ids`: the chunk's consecutive window numbers, 0.."""
        if ids.shape[0] == 0:
            return
        if self.prev_top is None:
            res = working_set_and_drift(window_ids, ids, self.top_k)
        else:
            res = working_set_and_drift(
                np.concatenate([np.zeros(self.prev_top.shape[0], np.int64), window_ids + 1]),
                np.concatenate([self.prev_top, ids]), self.top_k)
            res["accesses"], res["distinct"] = res["accesses"][1:], res["distinct"][1:]
        for name in ("accesses", "distinct", "jaccard", "share"):
            self.out[name] += res[name]
        self.prev_top = _top_k(ids[window_ids == window_ids[-1]], self.top_k).astype(ids.dtype)

    def result(self) -> dict:
        return self.out


class _BatchStats:
    """`analyze`'s "batches" (count; accesses and distinct keys per batch: mean, min, max), fed
    whole batches a chunk at a time."""

    def __init__(self):
        self.count = 0
        self.acc = [0, None, None]  # sum, min, max
        self.dist = [0, None, None]

    def feed(self, batch_ids: np.ndarray, ids: np.ndarray) -> None:
        import polars as pl
        if ids.shape[0] == 0:
            return
        per = (pl.DataFrame({"w": batch_ids, "k": ids}).group_by("w")
               .agg(n=pl.len(), d=pl.col("k").n_unique()))
        self.count += per.height
        for agg, col in ((self.acc, per["n"]), (self.dist, per["d"])):
            agg[0] += int(col.sum())
            agg[1] = int(col.min()) if agg[1] is None else min(agg[1], int(col.min()))
            agg[2] = int(col.max()) if agg[2] is None else max(agg[2], int(col.max()))

    def result(self) -> dict:
        def stats(agg):
            return {"mean": agg[0] / self.count, "min": agg[1], "max": agg[2]}
        return {"count": self.count, "accesses": stats(self.acc), "distinct": stats(self.dist)}


@numba.njit(cache=True)
def _window_run(ids, i, window, wcount, touched, prev_top, meta):
    """Count ids[i:] into the current window until it holds `window` accesses; returns the index
    reached. meta = [accesses in the window, keys touched, accesses to the previous top-k]."""
    n_in, n_touched, hot = meta[0], meta[1], meta[2]
    while i < ids.shape[0] and n_in < window:
        k = ids[i]
        if wcount[k] == 0:
            touched[n_touched] = k
            n_touched += 1
        wcount[k] += 1
        if prev_top[k]:
            hot += 1
        n_in += 1
        i += 1
    meta[0], meta[1], meta[2] = n_in, n_touched, hot
    return i


class _Windows:
    """`profile.working_set_and_drift` over windows of `window` consecutive accesses, fed chunk
    by chunk, exact, in arrays over the distinct keys."""

    def __init__(self, n_keys: int, window: int, top_k: int):
        self.window, self.top_k = int(window), int(top_k)
        self.wcount = np.zeros(n_keys, dtype=np.int64)
        self.touched = np.empty(n_keys, dtype=np.int32)
        self.prev_top = np.zeros(n_keys, dtype=np.bool_)
        self.prev_keys = np.zeros(0, dtype=np.int32)
        self.meta = np.zeros(3, dtype=np.int64)
        self.out = {"accesses": [], "distinct": [], "top_k": self.top_k, "jaccard": [],
                    "share": []}

    def feed(self, ids: np.ndarray) -> None:
        i = 0
        while i < ids.shape[0]:
            i = _window_run(ids, i, self.window, self.wcount, self.touched, self.prev_top,
                            self.meta)
            if self.meta[0] == self.window:
                self._close()

    def _close(self) -> None:
        n_in, n_touched, hot = (int(v) for v in self.meta)
        if n_in == 0:
            return
        keys = self.touched[:n_touched]
        c = self.wcount[keys]
        if n_touched <= self.top_k:
            top = keys
        else:  # the top_k counts, ties by lower id
            kth = np.partition(c, n_touched - self.top_k)[n_touched - self.top_k]
            above = keys[c > kth]
            tied = np.sort(keys[c == kth])[:self.top_k - above.shape[0]]
            top = np.concatenate([above, tied])
        out = self.out
        if out["accesses"]:
            inter = int(self.prev_top[top].sum())
            out["jaccard"].append(inter / (top.shape[0] + self.prev_keys.shape[0] - inter))
            out["share"].append(hot / n_in)
        out["accesses"].append(n_in)
        out["distinct"].append(n_touched)
        self.prev_top[self.prev_keys] = False
        self.prev_top[top] = True
        self.prev_keys = top.copy()
        self.wcount[keys] = 0
        self.meta[:] = 0

    def result(self) -> dict:
        self._close()
        return self.out


def analyze_stream(path, window: int | None = None, top_k: int | None = None, *,
                   fmt: str | None = None, chunk_accesses: int = CHUNK, progress: bool = False,
                   reader_options: dict | None = None) -> dict:
    """`analyze(read_trace(path), window, top_k)` of a trace read in chunks of `chunk_accesses`
    accesses, in two passes and in memory bounded by the distinct keys: the same dict, plus
    `streamed` (passes, chunk size, and which numbers are estimates: none). The trace: an
    oracleGeneral or txt file, or a batched trace with a batch column (`io.stream.
    batch_streamable`: Parquet file, folder or dataset, fbgemm-npz, dlrm-pt; `reader_options`
    go to its reader), whose windows are its batches by default, as in memory."""
    from ..simulate.stream import BatchStreamSource, StreamSource
    path = as_path(path)  # a local Path, or a URL's RemotePath (`io.urls`)
    kind = streamable(path, fmt) if path.is_file() else None  # oracle-general, txt, or None
    keyed = kind is not None
    if not keyed and batch_streamable(path, fmt) is None:
        from ..io.stream import gzip_refusal
        raise CachesimError(f"{path}: a streamed analysis reads oracle-general and txt files, "
                            f"and Parquet, fbgemm-npz and dlrm-pt traces{gzip_refusal(path)}; "
                            "read it in memory (--no-stream)")
    with contextlib.ExitStack() as stack:  # pass 1: the key map (and each key's table)
        if keyed:
            src = stack.enter_context(StreamSource(path, fmt, int(chunk_accesses)))
            meta, key_table = src.meta, np.zeros(src.meta.n_distinct, np.int32)
            top = int(src.keymap.distinct_keys.view(np.uint64).max())
            table_rows = np.array([top + 1 if top < MAX_ROWS else meta.n_distinct], np.int64)
            chunks = ((ids, None, None) for ids, _ in src.chunks())
        else:
            if batch_streamable(path, fmt) == "parquet" and not has_batch_column(path):
                raise CachesimError(f"{path}: a streamed analysis of a Parquet trace follows its "
                                    "batch column, and it has none; read it in memory "
                                    "(--no-stream)")
            src = BatchStreamSource(path, fmt, int(chunk_accesses), **(reader_options or {}))
            meta, key_table, table_rows = src.meta, src.meta.key_table, src.meta.table_rows
            chunks = ((ids, tr.table, tr.batch) for tr, ids in src.batches())
        n, n_keys, n_tables = len(src), meta.n_distinct, len(meta.table_names)
        batch_windows = not keyed and window is None
        top_k = default_top_k(n_keys) if top_k is None else int(top_k)
        wins = (_BatchWindows(top_k) if batch_windows
                else _Windows(n_keys, window_accesses(n, window), top_k))
        batches = None if keyed else _BatchStats()
        counts = np.zeros(n_keys, dtype=np.int64)
        acc_t = np.zeros(n_tables, dtype=np.int64)
        last = np.full(n_keys, -1, dtype=np.int64)
        reuse, depth = _Log2Bins(n_tables), _Log2Bins(n_tables)
        lru = LruStackStream()
        bar = progress_bar(n, "analyze", progress, unit="req", unit_scale=True, delay=2.0)
        start = 0
        for ids, table, batch in chunks:  # pass 2: everything else
            if table is None:
                table = np.zeros(ids.shape[0], np.int32)
            times = np.empty(ids.shape[0], dtype=np.int64)
            _count_and_reuse(ids, start, counts, last, times)
            reuse.add(times, table)
            depth.add(lru.feed(ids, reuses_only=False).astype(np.int64) + 1, table)  # 0: first
            acc_t += np.bincount(table, minlength=n_tables)
            if batch is not None:
                batch_ids = consecutive_runs(batch)
                batches.feed(batch_ids, ids)
            if batch_windows:
                wins.feed(batch_ids, ids)
            else:
                wins.feed(ids)
            start += ids.shape[0]
            if bar is not None:
                bar.update(ids.shape[0])
        if bar is not None:
            bar.close()
        if start != n:
            raise CachesimError(f"{path}: the file changed while it was read ({start:,} "
                                f"accesses, {n:,} in the first pass); analyse it again once it "
                                "is complete")
    desc = "batch" if batch_windows else f"{window_accesses(n, window)} accesses"
    res = report(str(path), list(meta.table_names), np.asarray(table_rows, np.int64), key_table,
                 counts, acc_t, reuse.result(), depth.result(), desc, wins.result(),
                 None if batches is None else batches.result())
    # as the in-memory readers say: the rows of txt and oracleGeneral files come from their
    # largest key (+ 1), no header gives them
    res["rows_inferred"] = (True if keyed
                            else bool(getattr(meta, "table_rows_inferred", False)))
    res["streamed"] = {"passes": 2, "chunk_accesses": int(chunk_accesses), "estimated": [],
                       "note": "every number is exact: streamed in two passes, in memory "
                               "bounded by the distinct keys"}
    return res
