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
    from ..sizes import parse_size
    if isinstance(budget, (int, np.integer)) and not isinstance(budget, bool):
        value = int(budget)
    else:
        cap = parse_size(budget)
        if cap.kind == "fraction":
            raise CachesimError(f"budget {cap.text!r}: give bytes (2GiB, 500MB), not a share")
        value = int(cap.value)
    if value <= 0:
        raise CachesimError(f"budget {budget!r} must be a positive number of bytes")
    return value


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


def allocate(trace, budget, cache_precision: str = "fp32", dim: int | None = None) -> Allocation:
    """Split `budget` (bytes, or text such as '2GiB') across per-table LRU caches (see module
    docstring). `dim` overrides every table's embedding dim. CachesimError when the budget is
    below one row of the cheapest table."""
    trace.require_nonempty()
    budget_b = _parse_budget(budget)
    tids = tables_with_accesses(trace)
    dims = trace.table_dims[tids] if dim is None else np.full(len(tids), int(dim))
    if dim is not None and int(dim) < 1:
        raise CachesimError(f"--dim {dim}: an embedding dim is at least 1")
    cost = _row_cost(cache_precision, dims)
    if budget_b < cost.min():
        raise CachesimError(
            f"budget {budget_b} B is below one cache row ({int(cost.min())} B at "
            f"{cache_precision}, dim {int(dims[np.argmin(cost)])}): raise --budget")
    names, hits, requests = [], [], []
    for _, tr in trace.per_table():
        names.append(tr.table_names[0])
        hits.append(lru_hits(tr.dense_ids, tr.n_distinct))
        requests.append(len(tr))
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
    height = np.maximum(trace.table_rows[tids], distinct)
    miss_area = np.array([_miss_area(h, n, ht) for h, n, ht in zip(hits, req, height)])
    lookups = expected_lookups(trace)[tids]
    tr_rows = _torchrec_rows(miss_area * lookups, distinct, cost, budget_b)
    tr_hits = np.array([h[r] for h, r in zip(hits, tr_rows)], dtype=np.int64)

    # one unified cache with the same total rows
    unified_rows = int(rows.sum())
    all_hits = lru_hits(trace.dense_ids, trace.n_distinct)
    unified_hits = int(all_hits[min(unified_rows, all_hits.shape[0] - 1)])

    n = len(trace)
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
