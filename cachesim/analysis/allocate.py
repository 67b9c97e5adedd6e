"""Split a memory budget across per-table LRU caches to maximise total hits.

Each table gets its own LRU cache of r_t rows costing r_t x (dim_t x bytes per element of the
cache precision). Every table's exact hits-vs-rows curve comes from one stack-distance pass.

The split: greedy on the upper concave hull of each table's hits-vs-rows curve (the lower convex
hull of its misses): hull segments from all tables are taken in order of hits gained per byte
until the budget runs out (the segment that does not fit is taken in part, whole rows only).
This is optimal when every table's miss curve is convex and rows cost the same in every table;
with different row costs it is optimal up to the one segment taken in part (a fractional
knapsack), and for a non-convex curve the hull only promises hits at its vertices.

Compared with: one unified LRU cache over all tables with the same total rows (exact curve of
the linearised trace), and TorchRec's rule (the planner spreads spare memory in proportion to
cacheability x expected lookups; here capped at each table's distinct rows, with the excess
handed on to the other tables).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from ..errors import CachesimError
from .stack import lru_hits
from .torchrec import tables_with_accesses, expected_lookups

NOTE = ("greedy on the convex hull of each table's miss curve: optimal for convex curves and "
        "equal row costs, else up to the one segment taken in part")


@numba.njit(cache=True)
def _upper_hull(y):
    """Indices of the upper concave hull of the points (i, y[i]), i = 0..n-1, left to right."""
    n = y.shape[0]
    hull = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        while m >= 2:
            a, b = hull[m - 2], hull[m - 1]
            # drop b when it lies on or below the chord from a to i
            if (y[b] - y[a]) * (i - a) <= (y[i] - y[a]) * (b - a):
                m -= 1
            else:
                break
        hull[m] = i
        m += 1
    return hull[:m].copy()


@numba.njit(cache=True)
def _greedy(seg_table, seg_start, seg_rows, seg_cost, budget, n_tables, rows):
    """Take segments in the given order; a table stops at the first segment it cannot take
    whole (after taking what rows fit). Returns the bytes left."""
    closed = np.zeros(n_tables, dtype=np.bool_)
    left = budget
    for j in range(seg_table.shape[0]):
        t = seg_table[j]
        if closed[t] or rows[t] != seg_start[j]:
            continue
        c = seg_cost[t]
        if seg_rows[j] * c <= left:
            rows[t] += seg_rows[j]
            left -= seg_rows[j] * c
        else:
            take = left // c
            rows[t] += take
            left -= take * c
            closed[t] = True
    return left


@dataclass
class Allocation:
    """Per-table rows and hits under the three splits, and their totals."""

    budget_bytes: int
    cache_precision: str
    requests: int
    tables: list = field(default_factory=list)   # one dict per table
    totals: dict = field(default_factory=dict)
    note: str = NOTE

    def to_record(self) -> dict:
        return {"budget_bytes": self.budget_bytes, "cache_precision": self.cache_precision,
                "requests": self.requests, "totals": self.totals, "tables": self.tables,
                "note": self.note}


def _row_cost(cache_precision: str, dims) -> np.ndarray:
    try:
        from ..costs import cache_row_bytes
    except ImportError:  # the cost model is optional: fp32 is 4 bytes, fp16 2
        per = {"fp32": 4, "fp16": 2}
        p = str(cache_precision).lower()
        if p not in per:
            raise CachesimError(f"cache precision {cache_precision!r}: use fp32 or fp16")
        return np.array([per[p] * int(d) for d in dims], dtype=np.int64)
    return np.array([cache_row_bytes(cache_precision, int(d)) for d in dims], dtype=np.int64)


def _parse_budget(budget) -> int:
    from ..sizes import parse_bytes
    if isinstance(budget, np.integer):
        budget = int(budget)
    return parse_bytes(budget, "budget")


def _torchrec_rows(weights, cap_rows, cost, budget) -> np.ndarray:
    """Bytes in proportion to `weights`, capped at `cap_rows` per table, excess handed on."""
    rows = np.zeros(weights.shape[0], dtype=np.int64)
    open_ = (weights > 0) & (cap_rows > 0)
    left = float(budget)
    while open_.any() and left >= cost[open_].min():
        share = left * weights / weights[open_].sum()
        want = np.where(open_, np.floor(share / cost), 0).astype(np.int64)
        full = open_ & (rows + want >= cap_rows)
        if not full.any():
            rows += want
            break
        add = cap_rows[full] - rows[full]
        rows[full] += add
        left -= float((add * cost[full]).sum())
        open_ &= ~full
    return rows


def _miss_area(hits: np.ndarray, requests: int, height: int) -> float:
    """TorchRec's cacheability: the area under the miss-ratio curve over load factors 0..1, as
    the mean miss ratio at 0..height-1 rows."""
    miss = 1.0 - hits / requests
    inside = miss[:min(height, miss.shape[0])].sum()
    return float((inside + max(0, height - miss.shape[0]) * miss[-1]) / height)


def _checked_costs(budget_b: int, cache_precision: str, dims: np.ndarray) -> np.ndarray:
    """Each table's cache row cost; CachesimError when the budget is below the cheapest."""
    cost = _row_cost(cache_precision, dims)
    if budget_b < cost.min():
        raise CachesimError(
            f"budget {budget_b} B is below one cache row ({int(cost.min())} B at "
            f"{cache_precision}, dim {int(dims[np.argmin(cost)])}): raise --budget")
    return cost


def _dims(table_dims, tids, dim) -> np.ndarray:
    dims = np.asarray(table_dims)[tids] if dim is None else np.full(len(tids), int(dim))
    if dim is not None and int(dim) < 1:
        raise CachesimError(f"--dim {dim}: an embedding dim is at least 1")
    return dims


def allocate(trace, budget, cache_precision: str = "fp32", dim: int | None = None) -> Allocation:
    """Split `budget` (bytes, or text such as '2GiB') across per-table LRU caches (see module
    docstring). `dim` overrides every table's embedding dim. CachesimError when the budget is
    below one row of the cheapest table."""
    trace.require_nonempty()
    budget_b = _parse_budget(budget)
    tids = tables_with_accesses(trace)
    dims = _dims(trace.table_dims, tids, dim)
    cost = _checked_costs(budget_b, cache_precision, dims)
    names, hits, requests = [], [], []
    for _, tr in trace.per_table():
        names.append(tr.table_names[0])
        hits.append(lru_hits(tr.dense_ids, tr.n_distinct))
        requests.append(len(tr))
    return _split(names, hits, requests, dims, cost, trace.table_rows[tids],
                  expected_lookups(trace)[tids], lru_hits(trace.dense_ids, trace.n_distinct),
                  len(trace), budget_b, cache_precision)


def _split(names, hits, requests, dims, cost, table_rows, lookups, all_hits, n: int,
           budget_b: int, cache_precision: str) -> Allocation:
    """The three splits of `budget_b` from each table's exact LRU hits at every size (`hits`,
    with its `requests`, `table_rows` and TorchRec's `lookups`, over the tables with accesses),
    and the unified cache's (`all_hits`, of the `n` accesses)."""
    n_t = len(names)
    # hull segments of every table, ordered by hits per byte (ties: table, then position)
    seg_t, seg_s, seg_r, seg_g = [], [], [], []
    for t, h in enumerate(hits):
        v = _upper_hull(h.astype(np.float64))
        seg_t.append(np.full(v.shape[0] - 1, t, dtype=np.int64))
        seg_s.append(v[:-1])
        seg_r.append(np.diff(v))
        seg_g.append(np.diff(h[v]))
    seg_t, seg_s, seg_r, seg_g = (np.concatenate(a) for a in (seg_t, seg_s, seg_r, seg_g))
    useful = seg_g > 0  # flat hull segments add rows and no hits
    seg_t, seg_s, seg_r, seg_g = seg_t[useful], seg_s[useful], seg_r[useful], seg_g[useful]
    density = seg_g / (seg_r * cost[seg_t])
    order = np.lexsort((seg_s, seg_t, -density))
    rows = np.zeros(n_t, dtype=np.int64)
    _greedy(seg_t[order], seg_s[order], seg_r[order], cost, budget_b, n_t, rows)
    greedy_hits = np.array([h[r] for h, r in zip(hits, rows)], dtype=np.int64)

    # TorchRec's rule
    distinct = np.array([h.shape[0] - 1 for h in hits], dtype=np.int64)
    req = np.asarray(requests, dtype=np.int64)
    height = np.maximum(np.asarray(table_rows, dtype=np.int64), distinct)
    miss_area = np.array([_miss_area(h, r, ht) for h, r, ht in zip(hits, req, height)])
    tr_rows = _torchrec_rows(miss_area * lookups, distinct, cost, budget_b)
    tr_hits = np.array([h[r] for h, r in zip(hits, tr_rows)], dtype=np.int64)

    # one unified cache with the same total rows
    unified_rows = int(rows.sum())
    unified_hits = int(all_hits[min(unified_rows, all_hits.shape[0] - 1)])

    tables = [{"table": names[t], "dim": int(dims[t]), "row_bytes": int(cost[t]),
               "distinct_rows": int(distinct[t]), "requests": int(req[t]),
               "rows": int(rows[t]), "bytes": int(rows[t] * cost[t]), "hits": int(greedy_hits[t]),
               "hit_ratio": float(greedy_hits[t] / req[t]),
               "torchrec_rows": int(tr_rows[t]), "torchrec_hits": int(tr_hits[t]),
               "cacheability": float(miss_area[t]), "expected_lookups": float(lookups[t])}
              for t in range(n_t)]
    totals = {"greedy_hits": int(greedy_hits.sum()), "greedy_rows": unified_rows,
              "greedy_bytes": int((rows * cost).sum()),
              "torchrec_hits": int(tr_hits.sum()), "torchrec_rows": int(tr_rows.sum()),
              "torchrec_bytes": int((tr_rows * cost).sum()),
              "unified_hits": unified_hits, "unified_rows": unified_rows,
              "greedy_hit_ratio": float(greedy_hits.sum() / n),
              "torchrec_hit_ratio": float(tr_hits.sum() / n),
              "unified_hit_ratio": float(unified_hits / n)}
    return Allocation(budget_bytes=budget_b, cache_precision=str(cache_precision), requests=n,
                      tables=tables, totals=totals)


# -- streamed --------------------------------------------------------------------------------------
def source_ids(src):
    """(dense ids, batch ids or None) per chunk of an open stream source, in order: a
    `simulate.stream.StreamSource`'s chunks (no batches), or a `BatchStreamSource`'s whole
    batches (each batch within one chunk)."""
    if hasattr(src, "batches"):
        for tr, ids in src.batches():
            yield ids, tr.batch
    else:
        for ids, _ in src.chunks():
            yield ids, None


def _local_ids(key_table: np.ndarray, n_tables: int) -> np.ndarray:
    """Each dense id's number within its table (0.. in order of the dense ids: of first access,
    as `Trace.per_table`'s traces number their keys)."""
    counts = np.bincount(key_table, minlength=n_tables)
    order = np.argsort(key_table, kind="stable")
    local = np.empty(key_table.shape[0], dtype=np.int64)
    local[order] = np.arange(key_table.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    return local


class _Distinct:
    """TorchRec's expected lookups (`torchrec.expected_lookups`) fed whole batches a chunk at a
    time: the distinct (batch, key) pairs per table, and the batches."""

    def __init__(self, n_tables: int):
        self.per_table = np.zeros(n_tables, dtype=np.int64)
        self.batches = 0

    def feed(self, ids: np.ndarray, batch: np.ndarray, key_table: np.ndarray) -> None:
        if ids.shape[0] == 0:
            return
        o = np.lexsort((ids, batch))
        b, k = batch[o], ids[o]
        first = np.ones(b.shape[0], dtype=np.bool_)
        first[1:] = (b[1:] != b[:-1]) | (k[1:] != k[:-1])
        self.per_table += np.bincount(key_table[k[first]], minlength=self.per_table.shape[0])
        self.batches += int((b[1:] != b[:-1]).sum()) + 1


def allocate_source(src, budget, cache_precision: str = "fp32", dim: int | None = None, *,
                    table_rows=None, table_dims=None, progress: bool = False) -> Allocation:
    """`allocate` of the trace an open stream source reads (`simulate.stream.StreamSource` or
    `BatchStreamSource`, after its first pass): the same Allocation, from one more pass in which
    each table's exact LRU hits come from its own `stack.LruStackStream` (fed the table's keys,
    numbered within it) and the unified cache's from one more, in memory bounded by the
    distinct keys. `table_rows` and `table_dims` (per table; default the source's) are those
    the in-memory trace would have."""
    from ..progress import Throughput
    from ..trace import DEFAULT_DIM
    from .stack import LruStackStream
    budget_b = _parse_budget(budget)
    meta = src.meta
    n_tables = len(meta.table_names)
    key_table = np.asarray(meta.key_table, dtype=np.int64)
    tids = [0] if n_tables == 1 else np.flatnonzero(
        np.bincount(key_table, minlength=n_tables)).tolist()
    if table_dims is None:
        table_dims = getattr(meta, "table_dims", None)
    if table_dims is None:
        table_dims = np.full(n_tables, DEFAULT_DIM, dtype=np.int64)
    dims = _dims(table_dims, tids, dim)
    cost = _checked_costs(budget_b, cache_precision, dims)
    if table_rows is None:
        table_rows = meta.table_rows
    local = _local_ids(key_table, n_tables)
    stacks = {t: LruStackStream() for t in tids}
    unified = LruStackStream()
    acc_t = np.zeros(n_tables, dtype=np.int64)
    lookups = _Distinct(n_tables)
    batched = False
    bar = Throughput(f"{Path(str(meta.source)).name}: allocate", src.nbytes, progress)
    done, n = 0, len(src)
    try:
        for ids, batch in source_ids(src):
            unified.feed(ids)
            t_acc = key_table[ids]
            acc_t += np.bincount(t_acc, minlength=n_tables)
            o = np.argsort(t_acc, kind="stable")
            bounds = np.searchsorted(t_acc[o], np.arange(n_tables + 1))
            for t in np.flatnonzero(np.diff(bounds)).tolist():
                stacks[t].feed(local[ids[o[bounds[t]:bounds[t + 1]]]])
            if batch is not None:
                batched = True
                lookups.feed(ids, batch, key_table)
            done += ids.shape[0]
            bar.update(ids.shape[0], src.nbytes * done // n)
    finally:
        bar.close()
    if done != n:
        raise CachesimError(f"{meta.source}: the trace changed while it was read ({done:,} "
                            f"accesses, {n:,} in the first pass); allocate again once it is "
                            "complete")
    per_batch = (lookups.per_table / lookups.batches) if batched else acc_t / n
    hits = [stacks[t].hits() for t in tids]
    names = [meta.table_names[t] for t in tids]
    return _split(names, hits, acc_t[tids].tolist(), dims, cost,
                  np.asarray(table_rows, dtype=np.int64)[tids], per_batch[tids],
                  unified.hits(), n, budget_b, cache_precision)


def keyed_table_rows(distinct_keys: np.ndarray) -> np.ndarray:
    """The one table's rows of an oracle-general or txt trace, as the in-memory readers infer
    them: the largest key + 1, or the distinct keys when a key is 2^63-1 or more (hashed ids)."""
    from ..trace import MAX_ROWS
    top = int(np.asarray(distinct_keys).view(np.uint64).max())
    return np.array([top + 1 if top < MAX_ROWS else distinct_keys.shape[0]], dtype=np.int64)


def keyed_stream(path, fmt: str | None, what: str) -> bool:
    """Whether `path` streams per access (an oracle-general or txt file: True) or per batch (a
    Parquet trace with a batch column, fbgemm-npz or dlrm-pt: False); CachesimError naming
    `what` ('allocation', 'report') for a trace that streams neither way."""
    from ..io.stream import batch_streamable, has_batch_column, streamable
    from ..io.urls import as_path
    path = as_path(path)  # a URL: a RemotePath (a Path would lose its "//")
    if path.is_file() and streamable(path, fmt) is not None:
        return True
    kind = batch_streamable(path, fmt)
    if kind == "parquet" and not has_batch_column(path):  # (unreadable: its own error)
        from ..io.stream import no_batch_column
        raise no_batch_column(path, f"a streamed {what}")
    if kind is None:
        from ..io.stream import gzip_refusal
        raise CachesimError(f"{path}: a streamed {what} reads oracle-general and txt files, and "
                            "Parquet (with a batch column), fbgemm-npz and dlrm-pt traces"
                            f"{gzip_refusal(path)}; read it in memory (--no-stream)")
    return False


def allocate_stream(path, budget, cache_precision: str = "fp32", dim: int | None = None, *,
                    fmt: str | None = None, chunk_accesses: int | None = None,
                    progress: bool = False, reader_options: dict | None = None) -> Allocation:
    """`allocate(read_trace(path), budget, ...)` of a trace read in chunks of `chunk_accesses`
    accesses (two passes: `simulate.stream`'s first pass numbers the keys, then
    `allocate_source`), in memory bounded by the distinct keys, never by the trace: an
    oracle-general or txt file, or a batched trace with a batch column (Parquet file, folder or
    dataset; fbgemm-npz, dlrm-pt; `reader_options` go to its reader)."""
    from ..simulate.access import CHUNK
    from ..io.urls import as_path
    from ..simulate.stream import BatchStreamSource, StreamSource
    path = as_path(path)
    _parse_budget(budget)  # a bad budget fails before the first pass
    if dim is not None and int(dim) < 1:
        raise CachesimError(f"--dim {dim}: an embedding dim is at least 1")
    chunk = CHUNK if chunk_accesses is None else int(chunk_accesses)
    if keyed_stream(path, fmt, "allocation"):
        with StreamSource(path, fmt, chunk, progress=progress) as src:
            return allocate_source(src, budget, cache_precision, dim, progress=progress,
                                   table_rows=keyed_table_rows(src.meta.distinct_keys))
    src = BatchStreamSource(path, fmt, chunk, progress=progress, **(reader_options or {}))
    return allocate_source(src, budget, cache_precision, dim, progress=progress)
